//! H.264 encoding behind a trait; the openh264 implementation (built from source with nasm).
//!
//! Settings (see docs/agent.md for the measurements behind them): Baseline profile (no
//! B-frames), one slice, one thread, IDR only at start and on request, constant SPS/PPS ids,
//! a level derived from the frame size and rate, bitrate rate control with frame skipping so
//! the configured cap holds, and screen-content usage by default.

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, Level, Profile,
    RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSlices;
use openh264::OpenH264API;
use tsuitate_protocol::h264::{keep_allowed, AllowedUnits};

use crate::convert::I420;

/// One encoded access unit (Annex-B), SPS/PPS included before IDR pictures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedAu {
    /// Annex-B bytes holding only NAL types 1, 5, 7 and 8.
    pub data: Vec<u8>,
    /// Whether the unit holds an IDR picture.
    pub keyframe: bool,
}

/// Why encoding failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoder rejected its parameters or a picture.
    #[error("openh264: {0}")]
    Codec(String),
    /// The picture does not fit what the encoder supports.
    #[error("unsupported picture: {0}")]
    Unsupported(String),
}

/// What an encoder needs to know besides the pictures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderSettings {
    /// Frame width.
    pub width: u16,
    /// Frame height.
    pub height: u16,
    /// Highest frame rate.
    pub fps: u32,
    /// Bitrate cap in kbit/s.
    pub bitrate_kbps: u32,
    /// Screen-content (true) or camera (false) tuning.
    pub screen_content: bool,
}

/// A video encoder: pictures in, access units out. It never sees wire types.
pub trait VideoEncoder: Send {
    /// Encode one picture. `Ok(None)`: the rate control skipped it (nothing to send).
    fn encode(&mut self, picture: &I420, force_idr: bool)
        -> Result<Option<EncodedAu>, EncodeError>;
    /// Encode `width`×`height` pictures from now on. A changed size starts a new stream: the
    /// next access unit is an IDR with new SPS/PPS. The same size changes nothing.
    fn resize(&mut self, width: u16, height: u16) -> Result<(), EncodeError>;
    /// The screen has stayed as it was at the last picture encoded: an access unit that
    /// brings what decoders show closer to that picture (a finer residual where it was coded
    /// coarsely), or `None` when there is nothing to refine. Encoders that do not refine
    /// return `None`.
    fn refine(&mut self) -> Result<Option<EncodedAu>, EncodeError> {
        Ok(None)
    }
}

/// The H.264 level (`level_idc` × 10 encoded as in the standard, e.g. 31 = 3.1) that a stream
/// of this size, rate and bitrate needs (H.264 Table A-1: MaxFS, MaxMBPS, MaxBR for Baseline).
pub fn level_idc_for(width: u16, height: u16, fps: u32, bitrate_kbps: u32) -> u8 {
    // (level_idc, MaxFS in macroblocks, MaxMBPS, MaxBR in kbit/s)
    const TABLE: &[(u8, u64, u64, u64)] = &[
        (10, 99, 1_485, 64),
        (11, 396, 3_000, 192),
        (12, 396, 6_000, 384),
        (13, 396, 11_880, 768),
        (20, 396, 11_880, 2_000),
        (21, 792, 19_800, 4_000),
        (22, 1_620, 20_250, 4_000),
        (30, 1_620, 40_500, 10_000),
        (31, 3_600, 108_000, 14_000),
        (32, 5_120, 216_000, 20_000),
        (40, 8_192, 245_760, 20_000),
        (41, 8_192, 245_760, 50_000),
        (42, 8_704, 522_240, 50_000),
        (50, 22_080, 589_824, 135_000),
        (51, 36_864, 983_040, 240_000),
        (52, 36_864, 2_073_600, 240_000),
    ];
    let wmb = u64::from(width).div_ceil(16);
    let hmb = u64::from(height).div_ceil(16);
    let fs = wmb * hmb;
    let mbps = fs * u64::from(fps.max(1));
    for &(idc, max_fs, max_mbps, max_br) in TABLE {
        // A.3.1: each dimension is at most sqrt(8 * MaxFS) macroblocks.
        let side_ok = wmb * wmb <= 8 * max_fs && hmb * hmb <= 8 * max_fs;
        if fs <= max_fs && side_ok && mbps <= max_mbps && u64::from(bitrate_kbps) <= max_br {
            return idc;
        }
    }
    52
}

fn level_from_idc(idc: u8) -> Level {
    match idc {
        10 => Level::Level_1_0,
        11 => Level::Level_1_1,
        12 => Level::Level_1_2,
        13 => Level::Level_1_3,
        20 => Level::Level_2_0,
        21 => Level::Level_2_1,
        22 => Level::Level_2_2,
        30 => Level::Level_3_0,
        31 => Level::Level_3_1,
        32 => Level::Level_3_2,
        40 => Level::Level_4_0,
        41 => Level::Level_4_1,
        42 => Level::Level_4_2,
        50 => Level::Level_5_0,
        51 => Level::Level_5_1,
        _ => Level::Level_5_2,
    }
}

/// openh264 with tsuitate's low-latency settings.
pub struct OpenH264Encoder {
    inner: Encoder,
    settings: EncoderSettings,
    started: bool,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for OpenH264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenH264Encoder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OpenH264Encoder {
    /// An encoder for pictures of `settings.width`×`settings.height`.
    pub fn new(settings: EncoderSettings) -> Result<Self, EncodeError> {
        Ok(OpenH264Encoder {
            inner: build(&settings)?,
            settings,
            started: false,
            scratch: Vec::new(),
        })
    }

    /// The current settings (the size follows [`VideoEncoder::resize`]).
    pub fn settings(&self) -> EncoderSettings {
        self.settings
    }
}

/// A fresh openh264 encoder for `settings` (its first picture is an IDR with SPS/PPS).
fn build(settings: &EncoderSettings) -> Result<Encoder, EncodeError> {
    let (w, h) = (settings.width, settings.height);
    if w % 2 != 0 || h % 2 != 0 || w > 3840 || h > 2160 || w == 0 || h == 0 {
        return Err(EncodeError::Unsupported(format!(
            "{w}x{h}: sizes must be even and at most 3840x2160"
        )));
    }
    let fps = settings.fps.clamp(1, 60);
    let level = level_from_idc(level_idc_for(w, h, fps, settings.bitrate_kbps));
    let usage = if settings.screen_content {
        UsageType::ScreenContentRealTime
    } else {
        UsageType::CameraVideoRealTime
    };
    let config = EncoderConfig::new()
        .usage_type(usage)
        .profile(Profile::Baseline)
        .level(level)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(
            settings.bitrate_kbps.saturating_mul(1000),
        ))
        .max_frame_rate(FrameRate::from_hz(fps as f32))
        .skip_frames(true)
        .sps_pps_strategy(SpsPpsStrategy::ConstantId)
        .intra_frame_period(IntraFramePeriod::from_num_frames(0))
        .adaptive_quantization(!settings.screen_content)
        .background_detection(!settings.screen_content)
        .complexity(Complexity::Medium)
        .num_threads(1)
        .debug(false);
    Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| EncodeError::Codec(e.to_string()))
}

impl VideoEncoder for OpenH264Encoder {
    fn resize(&mut self, width: u16, height: u16) -> Result<(), EncodeError> {
        if (width, height) == (self.settings.width, self.settings.height) {
            return Ok(());
        }
        // openh264 cannot change the picture size of a running encoder: start a new one.
        let settings = EncoderSettings {
            width,
            height,
            ..self.settings
        };
        self.inner = build(&settings)?;
        self.settings = settings;
        self.started = false;
        Ok(())
    }

    fn encode(&mut self, pic: &I420, force_idr: bool) -> Result<Option<EncodedAu>, EncodeError> {
        same_size(pic, &self.settings)?;
        if force_idr && self.started {
            self.inner.force_intra_frame();
        }
        let (w, cw) = (usize::from(pic.width), pic.chroma_width());
        let src = YUVSlices::new(
            (&pic.y, &pic.u, &pic.v),
            (w, usize::from(pic.height)),
            (w, cw, cw),
        );
        let bits = self
            .inner
            .encode(&src)
            .map_err(|e| EncodeError::Codec(e.to_string()))?;
        self.started = true;
        self.scratch.clear();
        bits.write_vec(&mut self.scratch);
        Ok(filter_access_unit(&self.scratch))
    }
}

/// A picture must have the size an encoder was set up for.
pub(crate) fn same_size(pic: &I420, settings: &EncoderSettings) -> Result<(), EncodeError> {
    if (pic.width, pic.height) != (settings.width, settings.height) {
        return Err(EncodeError::Unsupported(format!(
            "picture {}x{} does not match encoder {}x{}",
            pic.width, pic.height, settings.width, settings.height
        )));
    }
    Ok(())
}

/// Keep only SPS, PPS, IDR and non-IDR slices (the protocol crate's one allow-list,
/// docs/protocol.md §3.3: the agent never emits what the gateway would drop), each behind a
/// 4-byte start code. `None` when no slice is left.
pub fn filter_access_unit(annexb: &[u8]) -> Option<EncodedAu> {
    keep_allowed(annexb).map(|AllowedUnits { data, keyframe }| EncodedAu { data, keyframe })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_match_common_sizes() {
        assert_eq!(level_idc_for(1280, 720, 30, 5000), 31);
        assert_eq!(level_idc_for(1920, 1080, 30, 8000), 40);
        assert_eq!(level_idc_for(1920, 1080, 60, 8000), 42);
        assert_eq!(level_idc_for(640, 480, 30, 2000), 30);
        assert_eq!(level_idc_for(3840, 2160, 30, 20000), 51);
    }

    #[test]
    fn filter_drops_sei_and_aud() {
        let au = [
            0, 0, 0, 1, 0x09, 0xf0, // AUD
            0, 0, 0, 1, 0x06, 5, 1, 0xff, // SEI
            0, 0, 0, 1, 0x67, 0x42, // SPS
            0, 0, 1, 0x65, 0x88, // IDR
        ];
        let out = filter_access_unit(&au);
        assert_eq!(
            out,
            Some(EncodedAu {
                data: vec![0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x65, 0x88],
                keyframe: true
            })
        );
        assert_eq!(filter_access_unit(&[0, 0, 1, 0x06, 1]), None);
    }
}
