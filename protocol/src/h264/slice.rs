//! Slice headers (ITU-T H.264 §7.3.3): parsed completely against the active SPS and the PPS
//! they name, and checked (docs/protocol.md §3.3); then the slice data is walked to its end
//! ([`super::cavlc`]).
//!
//! Allowed: I and P slices (B, SP and SI refused, so frames never need reordering); an IDR
//! unit holds I slices only and is a reference picture; `first_mb_in_slice` inside the picture;
//! a P slice refers only to pictures the decoder holds (`refs`, which the sanitizer tracks: the
//! sliding window; list modifications, long-term references and memory-management operations
//! are refused); QP and deblocking offsets in range.

use thiserror::Error;

use super::bits::{unescape, BitReader, OutOfBits, PADDING};
use super::cavlc::{verify_slice_data, SliceShape};
use super::pps::PpsInfo;
use super::sps::SpsInfo;

/// What the gateway learns from a slice header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceHeader {
    /// `first_mb_in_slice`.
    pub first_mb: u32,
    /// `slice_type` % 5: 0 = P, 2 = I.
    pub kind: u32,
    /// `pic_parameter_set_id`.
    pub pps_id: u32,
    /// `frame_num`.
    pub frame_num: u32,
    /// `nal_ref_idc` (0: not a reference picture).
    pub nal_ref_idc: u8,
    /// The macroblock after the slice's last one.
    pub end_mb: u32,
}

/// Why a slice was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SliceError {
    /// Truncated or malformed header.
    #[error("slice header is truncated or malformed")]
    Malformed,
    /// A field out of range.
    #[error("slice header field `{0}` is out of range")]
    OutOfRange(&'static str),
    /// B, SP and SI slices are not allowed.
    #[error("slice type {0} is not allowed (only I and P)")]
    Type(u32),
    /// An IDR unit with a P slice, or an IDR that is not a reference picture.
    #[error("an IDR unit must hold reference I slices")]
    IdrNotIntra,
    /// Bytes follow the last macroblock's data (or the data ends early).
    #[error("slice data does not end exactly at its trailing bits")]
    TrailingData,
    /// Entropy coding the gateway cannot verify (CABAC, the 8x8 transform).
    #[error("slice uses {0}, which the gateway cannot verify")]
    Unverifiable(&'static str),
}

impl From<OutOfBits> for SliceError {
    fn from(_: OutOfBits) -> Self {
        SliceError::Malformed
    }
}

fn bounded(v: u32, max: u32, field: &'static str) -> Result<u32, SliceError> {
    if v > max {
        Err(SliceError::OutOfRange(field))
    } else {
        Ok(v)
    }
}

fn signed(v: i64, min: i64, max: i64, field: &'static str) -> Result<i64, SliceError> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(SliceError::OutOfRange(field))
    }
}

/// The `pic_parameter_set_id` a slice names (its third field), to find the PPS to parse it with.
pub fn slice_pps_id(nal: &[u8]) -> Result<u32, SliceError> {
    let head = unescape(&nal[1..nal.len().min(64)]);
    let mut r = BitReader::new(&head);
    r.ue()?;
    r.ue()?;
    bounded(r.ue()?, 255, "pic_parameter_set_id")
}

/// Parse and check slice NAL unit `nal` (type 1 or 5): its header, then every macroblock of
/// its data, which must end exactly at the trailing bits. `refs`: the reference pictures the
/// decoder holds for it (a P slice may not refer to more).
pub fn parse_slice(
    nal: &[u8],
    sps: &SpsInfo,
    pps: &PpsInfo,
    refs: u32,
) -> Result<SliceHeader, SliceError> {
    if pps.cabac {
        return Err(SliceError::Unverifiable("CABAC"));
    }
    if pps.high.is_some_and(|(transform_8x8, _)| transform_8x8) {
        return Err(SliceError::Unverifiable("the 8x8 transform"));
    }
    let mut rbsp = unescape(&nal[1..]);
    rbsp.extend_from_slice(&[0; PADDING]);
    let mut r = BitReader::padded(&rbsp);
    let (mut header, active_l0) = header(nal[0], &mut r, sps, pps, refs)?;
    header.end_mb = verify_slice_data(
        &mut r,
        SliceShape {
            width_mbs: sps.width_mbs,
            total_mbs: sps.mbs(),
            first_mb: header.first_mb,
            intra: header.kind == 2,
            ref_idx_active: active_l0,
            constrained_intra_pred: pps.constrained_intra_pred,
        },
    )?;
    Ok(header)
}

/// The slice header from `r`'s position; returns it and `num_ref_idx_l0_active`.
fn header(
    nal_header: u8,
    r: &mut BitReader<'_>,
    sps: &SpsInfo,
    pps: &PpsInfo,
    refs: u32,
) -> Result<(SliceHeader, u32), SliceError> {
    let nal_ref_idc = (nal_header >> 5) & 3;
    let idr = nal_header & 0x1f == 5;
    let first_mb = r.ue()?;
    if first_mb >= sps.mbs() {
        return Err(SliceError::OutOfRange("first_mb_in_slice"));
    }
    let slice_type = bounded(r.ue()?, 9, "slice_type")?;
    let kind = slice_type % 5;
    if kind != 0 && kind != 2 {
        return Err(SliceError::Type(slice_type));
    }
    if idr && (kind != 2 || nal_ref_idc == 0) {
        return Err(SliceError::IdrNotIntra);
    }
    let pps_id = bounded(r.ue()?, 255, "pic_parameter_set_id")?;
    let frame_num = r.bits(sps.log2_max_frame_num)?;
    if idr {
        if frame_num != 0 {
            return Err(SliceError::OutOfRange("frame_num"));
        }
        bounded(r.ue()?, 65_535, "idr_pic_id")?;
    }
    match sps.poc_type {
        0 => {
            r.bits(sps.log2_max_poc_lsb)?;
            if pps.bottom_field_pic_order {
                signed(
                    r.se()?,
                    -(1 << 31),
                    (1 << 31) - 1,
                    "delta_pic_order_cnt_bottom",
                )?;
            }
        }
        1 if !sps.delta_pic_order_always_zero => {
            signed(r.se()?, -(1 << 31), (1 << 31) - 1, "delta_pic_order_cnt")?;
            if pps.bottom_field_pic_order {
                signed(r.se()?, -(1 << 31), (1 << 31) - 1, "delta_pic_order_cnt")?;
            }
        }
        _ => {}
    }
    let mut active_l0 = pps.num_ref_idx_default.0;
    if kind == 0 {
        if r.flag()? {
            active_l0 = bounded(r.ue()?, 15, "num_ref_idx_l0_active_minus1")? + 1;
        } else if active_l0 > 16 {
            return Err(SliceError::OutOfRange("num_ref_idx_l0_active"));
        }
        // Only the frames the decoder holds can be referred to (its short-term list, newest
        // first; a longer list would hold "no reference picture" entries).
        if active_l0 > refs {
            return Err(SliceError::OutOfRange("num_ref_idx_l0_active"));
        }
        // ref_pic_list_modification() (§8.2.4.3.1): each entry must name a picture the decoder
        // holds — with the sliding window and no gaps, the `refs` pictures with PicNum
        // CurrPicNum − 1 … CurrPicNum − refs. Long-term entries are refused (there are none).
        if r.flag()? {
            let max = 1i64 << sps.log2_max_frame_num;
            let curr = i64::from(frame_num);
            let mut pred = curr;
            let mut ops = 0;
            loop {
                match bounded(r.ue()?, 3, "modification_of_pic_nums_idc")? {
                    3 => break,
                    idc @ (0 | 1) => {
                        let diff = i64::from(bounded(
                            r.ue()?,
                            (max - 1) as u32,
                            "abs_diff_pic_num_minus1",
                        )?) + 1;
                        let mut no_wrap = if idc == 0 { pred - diff } else { pred + diff };
                        if no_wrap < 0 {
                            no_wrap += max;
                        } else if no_wrap >= max {
                            no_wrap -= max;
                        }
                        pred = no_wrap;
                        let pic_num = if no_wrap > curr {
                            no_wrap - max
                        } else {
                            no_wrap
                        };
                        if pic_num >= curr || pic_num < curr - i64::from(refs) {
                            return Err(SliceError::OutOfRange("abs_diff_pic_num_minus1"));
                        }
                    }
                    _ => return Err(SliceError::Unverifiable("long-term references")),
                }
                ops += 1;
                if ops > active_l0 {
                    return Err(SliceError::OutOfRange("ref_pic_list_modification"));
                }
            }
        }
        if pps.weighted_pred {
            pred_weight_table(r, active_l0)?;
        }
    }
    if nal_ref_idc != 0 {
        // dec_ref_pic_marking(): the sliding window only (our agents never send long-term
        // references or memory-management operations), so the gateway knows which pictures the
        // decoder holds.
        if idr {
            r.flag()?; // no_output_of_prior_pics_flag
            if r.flag()? {
                return Err(SliceError::Unverifiable("long-term references"));
            }
        } else if r.flag()? {
            return Err(SliceError::Unverifiable("memory management operations"));
        }
    }
    if pps.cabac && kind != 2 {
        bounded(r.ue()?, 2, "cabac_init_idc")?;
    }
    let delta = signed(r.se()?, -87, 77, "slice_qp_delta")?;
    let qp = 26 + i64::from(pps.pic_init_qp_minus26) + delta;
    if !(0..=51).contains(&qp) {
        return Err(SliceError::OutOfRange("slice_qp_delta"));
    }
    if pps.deblocking_control {
        let idc = bounded(r.ue()?, 2, "disable_deblocking_filter_idc")?;
        if idc != 1 {
            signed(r.se()?, -6, 6, "slice_alpha_c0_offset_div2")?;
            signed(r.se()?, -6, 6, "slice_beta_offset_div2")?;
        }
    }
    Ok((
        SliceHeader {
            first_mb,
            kind,
            pps_id,
            frame_num,
            nal_ref_idc,
            end_mb: first_mb,
        },
        active_l0,
    ))
}

/// `pred_weight_table()` for a P slice (4:2:0): read and range-checked.
fn pred_weight_table(r: &mut BitReader<'_>, active_l0: u32) -> Result<(), SliceError> {
    bounded(r.ue()?, 7, "luma_log2_weight_denom")?;
    bounded(r.ue()?, 7, "chroma_log2_weight_denom")?;
    for _ in 0..active_l0 {
        if r.flag()? {
            signed(r.se()?, -128, 127, "luma_weight_l0")?;
            signed(r.se()?, -128, 127, "luma_offset_l0")?;
        }
        if r.flag()? {
            for _ in 0..2 {
                signed(r.se()?, -128, 127, "chroma_weight_l0")?;
                signed(r.se()?, -128, 127, "chroma_offset_l0")?;
            }
        }
    }
    Ok(())
}
