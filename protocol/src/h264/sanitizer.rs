//! The NAL sanitizer: the gateway's video allow-list (docs/protocol.md §3.3).

use thiserror::Error;

use super::annexb::nal_units;
use super::bits::{unescape, BitReader};
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
    /// The SPS picture size is above the limits.
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
    /// A PPS is malformed or names an unknown SPS.
    #[error("PPS refused")]
    Pps,
    /// A slice is malformed, or refers to an unknown PPS.
    #[error("slice header refused")]
    Slice,
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
            SanitizeError::Pps => "pps",
            SanitizeError::Slice => "slice",
            SanitizeError::NoKeyframeYet => "no_keyframe_yet",
            SanitizeError::ParameterChangeWithoutIdr => "parameter_change_without_idr",
            SanitizeError::KeyframeMismatch => "keyframe_mismatch",
            SanitizeError::NoSlice => "no_slice",
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

/// Parameter-set state of one video stream.
#[derive(Debug, Clone, Default)]
struct StreamState {
    /// The active SPS (raw bytes and what it says).
    sps: Option<(Vec<u8>, SpsInfo)>,
    /// Known PPS ids (bit set), each with the SPS id it names.
    pps: Vec<(u32, Vec<u8>)>,
}

/// Sanitizes the access units of one video stream (one session). Keeps NAL types 1, 5, 7, 8,
/// drops (or, by its [`DropPolicy`], refuses) everything else and counts it by type, checks
/// parameter sets against the limits and the frame header, and re-assembles the kept units
/// with fresh 4-byte start codes. Idempotent.
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
        let mut out = Vec::with_capacity(au.len().saturating_add(16));
        let (mut nals, mut kept, mut slices) = (0usize, 0u64, 0usize);
        let mut has_idr = false;
        let mut params_changed = false;
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
            match ty {
                7 => params_changed |= self.accept_sps(&mut state, header, nal)?,
                8 => params_changed |= accept_pps(&mut state, nal)?,
                // 1 or 5: the allow-list's slices.
                _ => {
                    check_slice(&state, nal)?;
                    has_idr |= ty == 5;
                    slices += 1;
                }
            }
            kept += 1;
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
        }
        if slices == 0 {
            return Err(SanitizeError::NoSlice);
        }
        if params_changed && !has_idr {
            return Err(SanitizeError::ParameterChangeWithoutIdr);
        }
        if header.keyframe != has_idr {
            return Err(SanitizeError::KeyframeMismatch);
        }
        if let Some((_, info)) = &state.sps {
            check_size(info, header)?;
        }
        self.state = state;
        self.counters.kept += kept;
        Ok(out)
    }

    /// Returns whether the SPS differs from the active one.
    fn accept_sps(
        &self,
        state: &mut StreamState,
        header: &VideoHeader,
        nal: &[u8],
    ) -> Result<bool, SanitizeError> {
        let info = parse_sps(nal)?;
        if info.level_idc > self.limits.max_level_idc {
            return Err(SanitizeError::Level(info.level_idc));
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
        let changed = state
            .sps
            .as_ref()
            .is_none_or(|(raw, _)| raw.as_slice() != nal);
        if changed {
            state.pps.clear();
        }
        state.sps = Some((nal.to_vec(), info));
        Ok(changed)
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

/// Returns whether the PPS is new or changed.
fn accept_pps(state: &mut StreamState, nal: &[u8]) -> Result<bool, SanitizeError> {
    let rbsp = unescape(&nal[1..]);
    let mut r = BitReader::new(&rbsp);
    let pps_id = r.ue().map_err(|_| SanitizeError::Pps)?;
    let sps_id = r.ue().map_err(|_| SanitizeError::Pps)?;
    let Some((_, sps)) = &state.sps else {
        return Err(SanitizeError::Pps);
    };
    if pps_id > 255 || sps_id != sps.sps_id {
        return Err(SanitizeError::Pps);
    }
    if let Some(entry) = state.pps.iter_mut().find(|(id, _)| *id == pps_id) {
        if entry.1 == nal {
            return Ok(false);
        }
        entry.1 = nal.to_vec();
    } else {
        state.pps.push((pps_id, nal.to_vec()));
    }
    Ok(true)
}

fn check_slice(state: &StreamState, nal: &[u8]) -> Result<(), SanitizeError> {
    let Some((_, sps)) = &state.sps else {
        return Err(SanitizeError::NoKeyframeYet);
    };
    // The slice header starts within the first bytes; unescape only those.
    let head = unescape(&nal[1..nal.len().min(33)]);
    let mut r = BitReader::new(&head);
    let first_mb = r.ue().map_err(|_| SanitizeError::Slice)?;
    let slice_type = r.ue().map_err(|_| SanitizeError::Slice)?;
    let pps_id = r.ue().map_err(|_| SanitizeError::Slice)?;
    let mbs = (u64::from(sps.width).div_ceil(16)) * (u64::from(sps.height).div_ceil(16));
    if u64::from(first_mb) >= mbs || slice_type > 9 {
        return Err(SanitizeError::Slice);
    }
    if !state.pps.iter().any(|(id, _)| *id == pps_id) {
        return Err(SanitizeError::NoKeyframeYet);
    }
    Ok(())
}
