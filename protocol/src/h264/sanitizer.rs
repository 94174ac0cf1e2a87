//! The NAL sanitizer: the gateway's video allow-list (docs/protocol.md §3.3).

use thiserror::Error;

use super::annexb::nal_units;
use super::pps::{parse_pps, PpsError, PpsInfo};
use super::slice::{parse_slice, slice_pps_id, SliceError};
use super::sps::{parse_sps, SpsError, SpsInfo};
use crate::limits::Limits;
use crate::video::VideoHeader;

/// NAL unit types that may cross: non-IDR slice (1), IDR slice (5), SPS (7), PPS (8).
/// The one allow-list: the sanitizer's match and the agent's own filter both use it.
pub const ALLOWED_NAL_TYPES: [u8; 4] = [1, 5, 7, 8];

/// Whether NAL unit type `ty` may cross (docs/protocol.md §3.3).
pub fn nal_type_allowed(ty: u8) -> bool {
    ALLOWED_NAL_TYPES.contains(&ty)
}

/// What the sanitizer does with a NAL unit outside [`ALLOWED_NAL_TYPES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DropPolicy {
    /// Drop and count it; the rest of the access unit is forwarded.
    #[default]
    Drop,
    /// Refuse the whole access unit with [`SanitizeError::ForbiddenNal`] (our agents never emit
    /// such units, so one means a hostile agent). It is counted by type all the same.
    Refuse,
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Why an access unit was refused. Any of these closes the agent's session (§3.3).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SanitizeError {
    /// More NAL units than `max_nal_units`.
    #[error("access unit has more than {0} NAL units")]
    TooManyNalUnits(usize),
    /// A NAL unit type outside the allow-list under [`DropPolicy::Refuse`].
    #[error("NAL unit type {0} is not allowed")]
    ForbiddenNal(u8),
    /// A NAL unit has its forbidden_zero_bit set.
    #[error("NAL unit has forbidden_zero_bit set")]
    ForbiddenBit,
    /// The SPS is malformed or not allowed.
    #[error("SPS refused: {0}")]
    Sps(#[from] SpsError),
    /// The SPS level is above `max_level_idc`.
    #[error("SPS level {0} exceeds the limit")]
    Level(u8),
    /// The SPS picture size (coded or cropped) is above the limits.
    #[error("SPS size {width}x{height} exceeds the limits")]
    SpsTooLarge { width: u32, height: u32 },
    /// The SPS size differs from the frame header.
    #[error("SPS size {sps_width}x{sps_height} disagrees with frame header {width}x{height}")]
    SizeMismatch {
        sps_width: u32,
        sps_height: u32,
        width: u16,
        height: u16,
    },
    /// A PPS is malformed or not allowed.
    #[error("PPS refused: {0}")]
    Pps(#[from] PpsError),
    /// A PPS names an SPS that is not the active one.
    #[error("PPS names an unknown SPS")]
    PpsUnknownSps,
    /// A slice header is malformed or not allowed.
    #[error("slice header refused: {0}")]
    Slice(#[from] SliceError),
    /// An IDR access unit without its SPS and PPS (every IDR carries both, so the viewer's
    /// decoder and the gateway always agree on the active parameter sets).
    #[error("an IDR access unit must carry its SPS and PPS")]
    IdrWithoutParameterSets,
    /// A slice arrived before any SPS/PPS/IDR.
    #[error("the stream must start with a keyframe (SPS, PPS, IDR)")]
    NoKeyframeYet,
    /// New parameter sets without an IDR picture in the same access unit.
    #[error("parameter sets changed without an IDR picture")]
    ParameterChangeWithoutIdr,
    /// The header's keyframe flag disagrees with the presence of an IDR slice.
    #[error("keyframe flag disagrees with the access unit")]
    KeyframeMismatch,
    /// Nothing decodable is left.
    #[error("access unit holds no slice")]
    NoSlice,
    /// A picture's `frame_num` does not follow the last reference picture's (a gap the
    /// decoder would see as lost references).
    #[error("frame_num does not follow the previous reference picture")]
    FrameNumGap,
    /// The slices do not cover the picture's macroblocks exactly once, in order (a decoder would
    /// conceal the rest and predict from the concealment).
    #[error("the slices do not cover the picture exactly once, in order")]
    IncompletePicture,
    /// Slices of one access unit disagree on the picture (IDR or not, frame_num, nal_ref_idc).
    #[error("the slices of one access unit belong to different pictures")]
    SlicesDisagree,
}

impl SanitizeError {
    /// A short stable name for metrics and audit records.
    pub fn code(&self) -> &'static str {
        match self {
            SanitizeError::TooManyNalUnits(_) => "too_many_nal_units",
            SanitizeError::ForbiddenNal(_) => "forbidden_nal",
            SanitizeError::ForbiddenBit => "forbidden_bit",
            SanitizeError::Sps(_) => "sps",
            SanitizeError::Level(_) => "level",
            SanitizeError::SpsTooLarge { .. } => "sps_too_large",
            SanitizeError::SizeMismatch { .. } => "size_mismatch",
            SanitizeError::Pps(_) => "pps",
            SanitizeError::PpsUnknownSps => "pps_unknown_sps",
            SanitizeError::Slice(_) => "slice",
            SanitizeError::IdrWithoutParameterSets => "idr_without_parameter_sets",
            SanitizeError::NoKeyframeYet => "no_keyframe_yet",
            SanitizeError::ParameterChangeWithoutIdr => "parameter_change_without_idr",
            SanitizeError::KeyframeMismatch => "keyframe_mismatch",
            SanitizeError::NoSlice => "no_slice",
            SanitizeError::FrameNumGap => "frame_num_gap",
            SanitizeError::SlicesDisagree => "slices_disagree",
            SanitizeError::IncompletePicture => "incomplete_picture",
        }
    }
}

/// What the sanitizer has kept and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SanitizerCounters {
    /// NAL units dropped, indexed by NAL type.
    pub dropped_by_type: [u64; 32],
    /// NAL units kept.
    pub kept: u64,
    /// Access units passed.
    pub frames_passed: u64,
    /// Access units refused.
    pub frames_refused: u64,
}

impl SanitizerCounters {
    /// All dropped NAL units.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_by_type.iter().sum()
    }
}

/// Parameter-set and reference state of one video stream.
#[derive(Debug, Clone, Default)]
struct StreamState {
    /// The active SPS.
    sps: Option<SpsInfo>,
    /// Known PPSs (of the active SPS).
    pps: Vec<PpsInfo>,
    /// `frame_num` of the last reference picture (`PrevRefFrameNum`); none before an IDR.
    prev_ref_frame_num: Option<u32>,
    /// Reference pictures the decoder holds (the sliding window, at most `max_num_ref_frames`).
    refs: u32,
}

/// What all slices of one picture must agree on (`nal_ref_idc` only as zero or not, §7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Picture {
    idr: bool,
    frame_num: u32,
    reference: bool,
}

/// Sanitizes the access units of one video stream (one session). Keeps NAL types 1, 5, 7, 8,
/// drops (or, by its [`DropPolicy`], refuses) everything else and counts it by type. Parameter
/// sets are parsed completely, checked against the allow-list, the limits and the frame
/// header, and **written anew** (no byte of an agent's SPS or PPS is forwarded); slice headers
/// are parsed completely and checked; every IDR access unit must carry its SPS and PPS. The
/// kept units are re-assembled with fresh 4-byte start codes. Idempotent.
#[derive(Debug, Clone)]
pub struct NalSanitizer {
    limits: Limits,
    policy: DropPolicy,
    state: StreamState,
    counters: SanitizerCounters,
}

impl NalSanitizer {
    /// A sanitizer for a new stream that drops and counts NAL units outside the allow-list.
    pub fn new(limits: Limits) -> Self {
        NalSanitizer {
            limits,
            policy: DropPolicy::Drop,
            state: StreamState::default(),
            counters: SanitizerCounters::default(),
        }
    }

    /// The same sanitizer with `policy` for NAL units outside the allow-list.
    pub fn with_policy(mut self, policy: DropPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Counters so far.
    pub fn counters(&self) -> &SanitizerCounters {
        &self.counters
    }

    /// Sanitize one access unit. On error nothing of it may be forwarded; the stream state is
    /// left as before the call.
    pub fn sanitize(&mut self, header: &VideoHeader, au: &[u8]) -> Result<Vec<u8>, SanitizeError> {
        let mut dropped = [0u64; 32];
        let result = self.sanitize_inner(header, au, &mut dropped);
        for (total, d) in self.counters.dropped_by_type.iter_mut().zip(dropped) {
            *total = total.saturating_add(d);
        }
        match &result {
            Ok(_) => self.counters.frames_passed += 1,
            Err(_) => self.counters.frames_refused += 1,
        }
        result
    }

    fn sanitize_inner(
        &mut self,
        header: &VideoHeader,
        au: &[u8],
        dropped: &mut [u64; 32],
    ) -> Result<Vec<u8>, SanitizeError> {
        let mut state = self.state.clone();
        let mut out = Vec::with_capacity(au.len().saturating_add(64));
        let (mut nals, mut kept, mut slices) = (0usize, 0u64, 0usize);
        let (mut has_idr, mut has_sps, mut has_pps) = (false, false, false);
        let mut params_changed = false;
        let mut picture: Option<Picture> = None;
        // The next macroblock a slice must start at: slices cover the picture once, in order.
        let mut next_mb = 0u32;
        for nal in nal_units(au) {
            nals += 1;
            if nals > self.limits.max_nal_units {
                return Err(SanitizeError::TooManyNalUnits(self.limits.max_nal_units));
            }
            if nal[0] & 0x80 != 0 {
                return Err(SanitizeError::ForbiddenBit);
            }
            let ty = nal[0] & 0x1f;
            if !nal_type_allowed(ty) {
                // docs/protocol.md §3.3: everything else is dropped and counted by type, or
                // refuses the access unit.
                dropped[usize::from(ty)] += 1;
                match self.policy {
                    DropPolicy::Drop => continue,
                    DropPolicy::Refuse => return Err(SanitizeError::ForbiddenNal(ty)),
                }
            }
            out.extend_from_slice(&START_CODE);
            match ty {
                7 => {
                    let sps = self.accept_sps(header, nal)?;
                    let changed = state.sps.as_ref() != Some(&sps);
                    if changed {
                        state.pps.clear();
                    }
                    params_changed |= changed;
                    has_sps = true;
                    // Rebuilt: the gateway's own bytes.
                    out.extend_from_slice(&sps.write());
                    state.sps = Some(sps);
                }
                8 => {
                    let pps = parse_pps(nal)?;
                    if state.sps.as_ref().is_none_or(|s| s.sps_id != pps.sps_id) {
                        return Err(SanitizeError::PpsUnknownSps);
                    }
                    match state.pps.iter_mut().find(|p| p.pps_id == pps.pps_id) {
                        Some(p) if *p == pps => {}
                        Some(p) => {
                            *p = pps.clone();
                            params_changed = true;
                        }
                        None => {
                            state.pps.push(pps.clone());
                            params_changed = true;
                        }
                    }
                    has_pps = true;
                    out.extend_from_slice(&pps.write());
                }
                // 1 or 5: the allow-list's slices.
                _ => {
                    let Some(sps) = &state.sps else {
                        return Err(SanitizeError::NoKeyframeYet);
                    };
                    let pps_id = slice_pps_id(nal)?;
                    let Some(pps) = state.pps.iter().find(|p| p.pps_id == pps_id) else {
                        return Err(SanitizeError::NoKeyframeYet);
                    };
                    // An IDR empties the decoder's reference list; a P slice has what the
                    // stream left in it.
                    let refs = if ty == 5 { 0 } else { state.refs };
                    let h = parse_slice(nal, sps, pps, refs)?;
                    if h.first_mb != next_mb {
                        return Err(SanitizeError::IncompletePicture);
                    }
                    next_mb = h.end_mb;
                    let this = Picture {
                        idr: ty == 5,
                        frame_num: h.frame_num,
                        reference: h.nal_ref_idc != 0,
                    };
                    match picture {
                        None => {
                            if !this.idr {
                                // frame_num follows the last reference picture (no gaps).
                                let Some(prev) = state.prev_ref_frame_num else {
                                    return Err(SanitizeError::NoKeyframeYet);
                                };
                                let max = 1u32 << sps.log2_max_frame_num;
                                if this.frame_num != (prev + 1) % max {
                                    return Err(SanitizeError::FrameNumGap);
                                }
                            }
                            picture = Some(this);
                        }
                        Some(p) if p != this => return Err(SanitizeError::SlicesDisagree),
                        Some(_) => {}
                    }
                    has_idr |= ty == 5;
                    slices += 1;
                    out.extend_from_slice(nal);
                }
            }
            kept += 1;
        }
        if slices == 0 {
            return Err(SanitizeError::NoSlice);
        }
        if has_idr && !(has_sps && has_pps) {
            return Err(SanitizeError::IdrWithoutParameterSets);
        }
        if params_changed && !has_idr {
            return Err(SanitizeError::ParameterChangeWithoutIdr);
        }
        if header.keyframe != has_idr {
            return Err(SanitizeError::KeyframeMismatch);
        }
        if let Some(info) = &state.sps {
            check_size(info, header)?;
            if next_mb != info.mbs() {
                return Err(SanitizeError::IncompletePicture);
            }
            // The decoder's reference pictures after this one (sliding window).
            if let Some(p) = picture.filter(|p| p.reference) {
                let held = if p.idr { 0 } else { state.refs };
                state.refs = (held + 1).min(info.max_num_ref_frames);
                state.prev_ref_frame_num = Some(p.frame_num);
            }
        }
        self.state = state;
        self.counters.kept += kept;
        Ok(out)
    }

    /// Parse an SPS and check it against the limits and the frame header.
    fn accept_sps(&self, header: &VideoHeader, nal: &[u8]) -> Result<SpsInfo, SanitizeError> {
        let info = parse_sps(nal)?;
        if info.level_idc > self.limits.max_level_idc {
            return Err(SanitizeError::Level(info.level_idc));
        }
        // The coded size too, not only the cropped one (cropping is less than a macroblock).
        let (coded_w, coded_h) = (info.width_mbs * 16, info.height_mbs * 16);
        let round = |v: u16| u32::from(v).div_ceil(16) * 16;
        if coded_w > round(self.limits.max_width) || coded_h > round(self.limits.max_height) {
            return Err(SanitizeError::SpsTooLarge {
                width: coded_w,
                height: coded_h,
            });
        }
        if info.width > u32::from(self.limits.max_width)
            || info.height > u32::from(self.limits.max_height)
        {
            return Err(SanitizeError::SpsTooLarge {
                width: info.width,
                height: info.height,
            });
        }
        check_size(&info, header)?;
        Ok(info)
    }
}

fn check_size(info: &SpsInfo, header: &VideoHeader) -> Result<(), SanitizeError> {
    if info.width != u32::from(header.width) || info.height != u32::from(header.height) {
        return Err(SanitizeError::SizeMismatch {
            sps_width: info.width,
            sps_height: info.height,
            width: header.width,
            height: header.height,
        });
    }
    Ok(())
}
