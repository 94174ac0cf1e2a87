//! Sequence parameter set parsing (ITU-T H.264 §7.3.2.1.1), as far as the sanitizer needs:
//! profile, level, chroma format, bit depth and the cropped picture size.

use thiserror::Error;

use super::bits::{unescape, BitReader, OutOfBits};

/// What the sanitizer learns from an SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// `profile_idc`.
    pub profile_idc: u8,
    /// `level_idc` (e.g. 40 = level 4.0).
    pub level_idc: u8,
    /// `seq_parameter_set_id`.
    pub sps_id: u32,
    /// Cropped width in pixels.
    pub width: u32,
    /// Cropped height in pixels.
    pub height: u32,
}

/// Why an SPS was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpsError {
    /// The SPS ended early or holds an out-of-range exp-Golomb code.
    #[error("SPS is truncated or malformed")]
    Malformed,
    /// A syntax element is outside the range the standard allows.
    #[error("SPS field `{0}` is out of range")]
    OutOfRange(&'static str),
    /// Only Baseline (66), Main (77) and High (100) are accepted.
    #[error("SPS profile {0} is not allowed")]
    Profile(u8),
    /// Only 4:2:0 8-bit video is accepted.
    #[error("SPS chroma format or bit depth is not 4:2:0 8-bit")]
    Format,
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

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), SpsError> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(SpsError::OutOfRange("delta_scale"));
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

const HIGH_PROFILES: [u8; 12] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134];
const ALLOWED_PROFILES: [u8; 3] = [66, 77, 100];

/// Parse an SPS NAL unit (including its one-byte NAL header).
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, SpsError> {
    let rbsp = unescape(nal.get(1..).ok_or(SpsError::Malformed)?);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)? as u8;
    let _constraints = r.bits(8)?;
    let level_idc = r.bits(8)? as u8;
    let sps_id = bounded(r.ue()?, 31, "seq_parameter_set_id")?;
    if !ALLOWED_PROFILES.contains(&profile_idc) {
        return Err(SpsError::Profile(profile_idc));
    }
    let mut chroma_format_idc = 1;
    if HIGH_PROFILES.contains(&profile_idc) {
        chroma_format_idc = bounded(r.ue()?, 3, "chroma_format_idc")?;
        if chroma_format_idc == 3 {
            r.flag()?; // separate_colour_plane_flag
        }
        let luma = bounded(r.ue()?, 6, "bit_depth_luma_minus8")?;
        let chroma = bounded(r.ue()?, 6, "bit_depth_chroma_minus8")?;
        if luma != 0 || chroma != 0 {
            return Err(SpsError::Format);
        }
        r.flag()?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    if chroma_format_idc != 1 {
        return Err(SpsError::Format);
    }
    bounded(r.ue()?, 12, "log2_max_frame_num_minus4")?;
    match bounded(r.ue()?, 2, "pic_order_cnt_type")? {
        0 => {
            bounded(r.ue()?, 12, "log2_max_pic_order_cnt_lsb_minus4")?;
        }
        1 => {
            r.flag()?;
            r.se()?;
            r.se()?;
            let n = bounded(r.ue()?, 255, "num_ref_frames_in_pic_order_cnt_cycle")?;
            for _ in 0..n {
                r.se()?;
            }
        }
        _ => {}
    }
    bounded(r.ue()?, 16, "max_num_ref_frames")?;
    r.flag()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        r.flag()?; // mb_adaptive_frame_field_flag
    }
    r.flag()?; // direct_8x8_inference_flag
    let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
    let full_w = width_mbs
        .checked_mul(16)
        .ok_or(SpsError::OutOfRange("width"))?;
    let full_h = height_units
        .checked_mul(16 * field_factor)
        .ok_or(SpsError::OutOfRange("height"))?;
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if r.flag()? {
        let (left, right) = (u64::from(r.ue()?), u64::from(r.ue()?));
        let (top, bottom) = (u64::from(r.ue()?), u64::from(r.ue()?));
        // 4:2:0: CropUnitX = 2, CropUnitY = 2 * (2 - frame_mbs_only_flag).
        crop_x = (left + right) * 2;
        crop_y = (top + bottom) * 2 * field_factor;
    }
    let width = full_w.checked_sub(crop_x).filter(|w| *w > 0);
    let height = full_h.checked_sub(crop_y).filter(|h| *h > 0);
    let (Some(width), Some(height)) = (width, height) else {
        return Err(SpsError::OutOfRange("frame_cropping"));
    };
    let width = u32::try_from(width).map_err(|_| SpsError::OutOfRange("width"))?;
    let height = u32::try_from(height).map_err(|_| SpsError::OutOfRange("height"))?;
    Ok(SpsInfo {
        profile_idc,
        level_idc,
        sps_id,
        width,
        height,
    })
}
