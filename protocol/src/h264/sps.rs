//! Sequence parameter sets (ITU-T H.264 §7.3.2.1.1, VUI §E.1.1): parsed completely, checked
//! against the allow-list, and written anew by the gateway (docs/protocol.md §3.3) — no byte of
//! an agent's SPS reaches a viewer.
//!
//! Allowed: profiles Baseline (66, with or without the Constrained flag), Main (77) and High
//! (100); 4:2:0, 8 bit, no lossless transform bypass, no scaling matrices; progressive frames
//! only; picture order count types 0, 1 and 2; at most 16 reference frames; cropping of less
//! than one macroblock per axis. The VUI is parsed (HRD included) to check its syntax and then
//! reduced to what display needs: the video signal type (range, colour description) is
//! carried; everything else (aspect ratio, timing, HRD, …) is dropped, and the gateway writes a
//! bitstream restriction saying frames are output as soon as they are decoded (no reordering:
//! the gateway refuses B slices).

use thiserror::Error;

use super::bits::{unescape, BitReader, BitWriter, OutOfBits};

/// Everything the gateway keeps of an SPS, and the sizes it implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpsInfo {
    /// `profile_idc`: 66, 77 or 100.
    pub profile_idc: u8,
    /// `constraint_set0_flag` … `constraint_set5_flag` in the top six bits.
    pub constraint_flags: u8,
    /// `level_idc` (e.g. 40 = level 4.0).
    pub level_idc: u8,
    /// `seq_parameter_set_id`, 0–31.
    pub sps_id: u32,
    /// log2(MaxFrameNum), 4–16.
    pub log2_max_frame_num: u32,
    /// `pic_order_cnt_type`, 0–2.
    pub poc_type: u32,
    /// log2(MaxPicOrderCntLsb), 4–16 (type 0).
    pub log2_max_poc_lsb: u32,
    /// Type 1: `delta_pic_order_always_zero_flag`.
    pub delta_pic_order_always_zero: bool,
    /// Type 1: `offset_for_non_ref_pic`, `offset_for_top_to_bottom_field`.
    pub poc_offsets: (i32, i32),
    /// Type 1: `offset_for_ref_frame[]` (at most 255).
    pub poc_cycle: Vec<i32>,
    /// `max_num_ref_frames`, 0–16.
    pub max_num_ref_frames: u32,
    /// `gaps_in_frame_num_value_allowed_flag`.
    pub gaps_allowed: bool,
    /// Coded width in macroblocks.
    pub width_mbs: u32,
    /// Coded height in macroblocks (frames only).
    pub height_mbs: u32,
    /// `direct_8x8_inference_flag`.
    pub direct_8x8_inference: bool,
    /// Crop offsets left, right, top, bottom in units of two pixels.
    pub crop: [u32; 4],
    /// From the VUI: `video_format`, `video_full_range_flag` and, when present,
    /// colour primaries, transfer characteristics and matrix coefficients.
    pub video_signal: Option<VideoSignal>,
    /// Cropped width in pixels.
    pub width: u32,
    /// Cropped height in pixels.
    pub height: u32,
}

/// The VUI's video signal type: how the decoded samples map to colours on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSignal {
    /// `video_format` (0–5).
    pub format: u8,
    /// `video_full_range_flag`.
    pub full_range: bool,
    /// `colour_primaries`, `transfer_characteristics`, `matrix_coefficients`.
    pub colour: Option<(u8, u8, u8)>,
}

/// Why an SPS was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpsError {
    /// The SPS ended early or holds an out-of-range exp-Golomb code.
    #[error("SPS is truncated or malformed")]
    Malformed,
    /// A syntax element is outside the range the standard or the allow-list allows.
    #[error("SPS field `{0}` is out of range")]
    OutOfRange(&'static str),
    /// Only Baseline (66), Main (77) and High (100) are accepted.
    #[error("SPS profile {0} is not allowed")]
    Profile(u8),
    /// Only 4:2:0 8-bit video is accepted.
    #[error("SPS chroma format or bit depth is not 4:2:0 8-bit")]
    Format,
    /// A feature outside the allow-list (interlace, scaling matrices, lossless).
    #[error("SPS uses {0}, which is not allowed")]
    Feature(&'static str),
    /// Bytes follow the SPS's last syntax element.
    #[error("SPS has data after its last field")]
    TrailingData,
}

impl From<OutOfBits> for SpsError {
    fn from(_: OutOfBits) -> Self {
        SpsError::Malformed
    }
}

fn bounded(v: u32, max: u32, field: &'static str) -> Result<u32, SpsError> {
    if v > max {
        Err(SpsError::OutOfRange(field))
    } else {
        Ok(v)
    }
}

fn int(v: i64, field: &'static str) -> Result<i32, SpsError> {
    i32::try_from(v).map_err(|_| SpsError::OutOfRange(field))
}

/// The levels of Table A-1 (9 is level 1b), up to 5.2: any other `level_idc` makes decoders
/// refuse the SPS (and with it every picture).
const LEVELS: [u8; 17] = [
    9, 10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 52,
];

/// Baseline, Main, High; of these only High (100) carries the chroma/bit-depth fields.
const ALLOWED_PROFILES: [u8; 3] = [66, 77, 100];
const HIGH: u8 = 100;

/// Parse and check an SPS NAL unit (including its one-byte NAL header).
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, SpsError> {
    let rbsp = unescape(nal.get(1..).ok_or(SpsError::Malformed)?);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)? as u8;
    let constraints = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    let sps_id = bounded(r.ue()?, 31, "seq_parameter_set_id")?;
    if !ALLOWED_PROFILES.contains(&profile_idc) {
        return Err(SpsError::Profile(profile_idc));
    }
    if !LEVELS.contains(&level_idc) {
        return Err(SpsError::OutOfRange("level_idc"));
    }
    if profile_idc == HIGH {
        let chroma_format_idc = bounded(r.ue()?, 3, "chroma_format_idc")?;
        if chroma_format_idc != 1 {
            return Err(SpsError::Format);
        }
        let luma = bounded(r.ue()?, 6, "bit_depth_luma_minus8")?;
        let chroma = bounded(r.ue()?, 6, "bit_depth_chroma_minus8")?;
        if luma != 0 || chroma != 0 {
            return Err(SpsError::Format);
        }
        if r.flag()? {
            return Err(SpsError::Feature("the lossless transform bypass"));
        }
        if r.flag()? {
            return Err(SpsError::Feature("scaling matrices"));
        }
    }
    let log2_max_frame_num = bounded(r.ue()?, 12, "log2_max_frame_num_minus4")? + 4;
    let poc_type = bounded(r.ue()?, 2, "pic_order_cnt_type")?;
    let mut log2_max_poc_lsb = 0;
    let mut delta_pic_order_always_zero = false;
    let mut poc_offsets = (0, 0);
    let mut poc_cycle = Vec::new();
    match poc_type {
        0 => log2_max_poc_lsb = bounded(r.ue()?, 12, "log2_max_pic_order_cnt_lsb_minus4")? + 4,
        1 => {
            delta_pic_order_always_zero = r.flag()?;
            poc_offsets = (
                int(r.se()?, "offset_for_non_ref_pic")?,
                int(r.se()?, "offset_for_top_to_bottom_field")?,
            );
            let n = bounded(r.ue()?, 255, "num_ref_frames_in_pic_order_cnt_cycle")?;
            for _ in 0..n {
                poc_cycle.push(int(r.se()?, "offset_for_ref_frame")?);
            }
        }
        _ => {}
    }
    let max_num_ref_frames = bounded(r.ue()?, 16, "max_num_ref_frames")?;
    let gaps_allowed = r.flag()?;
    let width_mbs = bounded(r.ue()?, 1023, "pic_width_in_mbs_minus1")? + 1;
    let height_mbs = bounded(r.ue()?, 1023, "pic_height_in_map_units_minus1")? + 1;
    if !r.flag()? {
        return Err(SpsError::Feature("interlaced coding"));
    }
    let direct_8x8_inference = r.flag()?;
    let mut crop = [0u32; 4];
    if r.flag()? {
        for c in crop.iter_mut() {
            *c = bounded(r.ue()?, 7, "frame_crop_offset")?;
        }
    }
    // Less than one macroblock cropped per axis (4:2:0 frames: two pixels per unit).
    if crop[0] + crop[1] >= 8 || crop[2] + crop[3] >= 8 {
        return Err(SpsError::OutOfRange("frame_cropping"));
    }
    let video_signal = if r.flag()? { parse_vui(&mut r)? } else { None };
    if !r.at_trailing_bits() {
        return Err(SpsError::TrailingData);
    }
    let width = width_mbs * 16 - 2 * (crop[0] + crop[1]);
    let height = height_mbs * 16 - 2 * (crop[2] + crop[3]);
    Ok(SpsInfo {
        profile_idc,
        // reserved_zero_2bits are written as zero.
        constraint_flags: constraints & 0xfc,
        level_idc,
        sps_id,
        log2_max_frame_num,
        poc_type,
        log2_max_poc_lsb,
        delta_pic_order_always_zero,
        poc_offsets,
        poc_cycle,
        max_num_ref_frames,
        gaps_allowed,
        width_mbs,
        height_mbs,
        direct_8x8_inference,
        crop,
        video_signal,
        width,
        height,
    })
}

/// `vui_parameters()`: every field read and range-checked; the video signal type returned.
fn parse_vui(r: &mut BitReader<'_>) -> Result<Option<VideoSignal>, SpsError> {
    if r.flag()? {
        // aspect_ratio_idc; 255 = Extended_SAR with sar_width, sar_height.
        if r.bits(8)? == 255 {
            r.bits(16)?;
            r.bits(16)?;
        }
    }
    if r.flag()? {
        r.flag()?; // overscan_appropriate_flag
    }
    let mut signal = None;
    if r.flag()? {
        let format = bounded(r.bits(3)?, 5, "video_format")? as u8;
        let full_range = r.flag()?;
        let colour = if r.flag()? {
            Some((r.bits(8)? as u8, r.bits(8)? as u8, r.bits(8)? as u8))
        } else {
            None
        };
        signal = Some(VideoSignal {
            format,
            full_range,
            colour,
        });
    }
    if r.flag()? {
        bounded(r.ue()?, 5, "chroma_sample_loc_type_top_field")?;
        bounded(r.ue()?, 5, "chroma_sample_loc_type_bottom_field")?;
    }
    if r.flag()? {
        let units = r.bits(32)?;
        let scale = r.bits(32)?;
        if units == 0 || scale == 0 {
            return Err(SpsError::OutOfRange("timing_info"));
        }
        r.flag()?; // fixed_frame_rate_flag
    }
    let nal_hrd = r.flag()?;
    if nal_hrd {
        parse_hrd(r)?;
    }
    let vcl_hrd = r.flag()?;
    if vcl_hrd {
        parse_hrd(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.flag()?; // low_delay_hrd_flag
    }
    r.flag()?; // pic_struct_present_flag
    if r.flag()? {
        r.flag()?; // motion_vectors_over_pic_boundaries_flag
        bounded(r.ue()?, 16, "max_bytes_per_pic_denom")?;
        bounded(r.ue()?, 16, "max_bits_per_mb_denom")?;
        bounded(r.ue()?, 16, "log2_max_mv_length_horizontal")?;
        bounded(r.ue()?, 16, "log2_max_mv_length_vertical")?;
        bounded(r.ue()?, 16, "max_num_reorder_frames")?;
        bounded(r.ue()?, 16, "max_dec_frame_buffering")?;
    }
    Ok(signal)
}

/// `hrd_parameters()` (§E.1.2): read and checked, never carried.
fn parse_hrd(r: &mut BitReader<'_>) -> Result<(), SpsError> {
    let cpb_cnt = bounded(r.ue()?, 31, "cpb_cnt_minus1")? + 1;
    r.bits(4)?; // bit_rate_scale
    r.bits(4)?; // cpb_size_scale
    for _ in 0..cpb_cnt {
        bounded(r.ue()?, u32::MAX - 1, "bit_rate_value_minus1")?;
        bounded(r.ue()?, u32::MAX - 1, "cpb_size_value_minus1")?;
        r.flag()?; // cbr_flag
    }
    r.bits(5)?; // initial_cpb_removal_delay_length_minus1
    r.bits(5)?; // cpb_removal_delay_length_minus1
    r.bits(5)?; // dpb_output_delay_length_minus1
    r.bits(5)?; // time_offset_length
    Ok(())
}

impl SpsInfo {
    /// Macroblocks per picture.
    pub fn mbs(&self) -> u32 {
        self.width_mbs * self.height_mbs
    }

    /// The SPS NAL unit the gateway forwards: every field written from the parsed values by
    /// the gateway's own writer (`nal_ref_idc` 3).
    pub fn write(&self) -> Vec<u8> {
        let mut w = BitWriter::new();
        w.bits(u32::from(self.profile_idc), 8);
        w.bits(u32::from(self.constraint_flags), 8);
        w.bits(u32::from(self.level_idc), 8);
        w.ue(self.sps_id);
        if self.profile_idc == HIGH {
            w.ue(1); // chroma_format_idc: 4:2:0
            w.ue(0); // bit_depth_luma_minus8
            w.ue(0); // bit_depth_chroma_minus8
            w.bit(false); // qpprime_y_zero_transform_bypass_flag
            w.bit(false); // seq_scaling_matrix_present_flag
        }
        w.ue(self.log2_max_frame_num - 4);
        w.ue(self.poc_type);
        match self.poc_type {
            0 => w.ue(self.log2_max_poc_lsb - 4),
            1 => {
                w.bit(self.delta_pic_order_always_zero);
                w.se(i64::from(self.poc_offsets.0));
                w.se(i64::from(self.poc_offsets.1));
                w.ue(self.poc_cycle.len() as u32);
                for o in &self.poc_cycle {
                    w.se(i64::from(*o));
                }
            }
            _ => {}
        }
        w.ue(self.max_num_ref_frames);
        w.bit(self.gaps_allowed);
        w.ue(self.width_mbs - 1);
        w.ue(self.height_mbs - 1);
        w.bit(true); // frame_mbs_only_flag
        w.bit(self.direct_8x8_inference);
        let cropped = self.crop.iter().any(|c| *c != 0);
        w.bit(cropped);
        if cropped {
            for c in self.crop {
                w.ue(c);
            }
        }
        w.bit(true); // vui_parameters_present_flag
        self.write_vui(&mut w);
        w.into_nal(0x67)
    }

    /// The VUI the gateway writes: the video signal type when the agent gave one, and a
    /// bitstream restriction that lets decoders output each frame at once.
    fn write_vui(&self, w: &mut BitWriter) {
        w.bit(false); // aspect_ratio_info_present_flag
        w.bit(false); // overscan_info_present_flag
        match self.video_signal {
            Some(s) => {
                w.bit(true);
                w.bits(u32::from(s.format), 3);
                w.bit(s.full_range);
                match s.colour {
                    Some((p, t, m)) => {
                        w.bit(true);
                        w.bits(u32::from(p), 8);
                        w.bits(u32::from(t), 8);
                        w.bits(u32::from(m), 8);
                    }
                    None => w.bit(false),
                }
            }
            None => w.bit(false),
        }
        w.bit(false); // chroma_loc_info_present_flag
        w.bit(false); // timing_info_present_flag
        w.bit(false); // nal_hrd_parameters_present_flag
        w.bit(false); // vcl_hrd_parameters_present_flag
        w.bit(false); // pic_struct_present_flag
        w.bit(true); // bitstream_restriction_flag
        w.bit(true); // motion_vectors_over_pic_boundaries_flag
        w.ue(2); // max_bytes_per_pic_denom (the default)
        w.ue(1); // max_bits_per_mb_denom (the default)
        w.ue(16); // log2_max_mv_length_horizontal (the default)
        w.ue(16); // log2_max_mv_length_vertical (the default)
        w.ue(0); // max_num_reorder_frames: no B slices cross
        w.ue(self.max_num_ref_frames); // max_dec_frame_buffering
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SpsInfo {
        SpsInfo {
            profile_idc: 66,
            constraint_flags: 0xc0,
            level_idc: 31,
            sps_id: 0,
            log2_max_frame_num: 15,
            poc_type: 2,
            log2_max_poc_lsb: 0,
            delta_pic_order_always_zero: false,
            poc_offsets: (0, 0),
            poc_cycle: Vec::new(),
            max_num_ref_frames: 1,
            gaps_allowed: false,
            width_mbs: 86,
            height_mbs: 48,
            direct_8x8_inference: true,
            crop: [0, 5, 0, 0],
            video_signal: Some(VideoSignal {
                format: 5,
                full_range: false,
                colour: Some((1, 1, 1)),
            }),
            width: 1366,
            height: 768,
        }
    }

    #[test]
    fn a_written_sps_parses_back_to_the_same_values() {
        for s in [
            sample(),
            SpsInfo {
                profile_idc: 100,
                poc_type: 0,
                log2_max_poc_lsb: 8,
                video_signal: None,
                crop: [0; 4],
                width: 1376,
                ..sample()
            },
            SpsInfo {
                profile_idc: 77,
                poc_type: 1,
                poc_offsets: (-3, 70_000),
                poc_cycle: vec![2, -2, 1_000_000],
                ..sample()
            },
        ] {
            let nal = s.write();
            assert_eq!(parse_sps(&nal).as_ref(), Ok(&s));
            // Idempotent: writing what was parsed gives the same bytes.
            assert_eq!(parse_sps(&nal).map(|p| p.write()), Ok(nal));
        }
    }

    #[test]
    fn anything_after_the_last_field_is_refused() {
        let mut nal = sample().write();
        nal.extend_from_slice(&[0x12, 0x34]);
        assert_eq!(parse_sps(&nal), Err(SpsError::TrailingData));
        let mut huge = sample().write();
        huge.extend(std::iter::repeat_n(0x5a, 1 << 20));
        assert_eq!(parse_sps(&huge), Err(SpsError::TrailingData));
    }

    #[test]
    fn sizes_and_cropping_are_bounded() {
        let wide = SpsInfo {
            width_mbs: 1024,
            ..sample()
        };
        assert!(
            parse_sps(&wide.write()).is_ok(),
            "1024 MBs is the syntax limit"
        );
        // Wider than 1024 MBs (and "cropped" back): protocol/tests/sanitizer.rs
        // hostile_parameter_sets_and_slices_are_refused.
        let over_crop = SpsInfo {
            crop: [4, 4, 0, 0],
            ..sample()
        };
        assert_eq!(
            parse_sps(&over_crop.write()),
            Err(SpsError::OutOfRange("frame_cropping"))
        );
    }
}
