//! H.264 Annex-B parsing and the NAL sanitizer (docs/protocol.md §3.3).

mod annexb;
mod bits;
mod cavlc;
pub mod cavlc_tables;
mod pps;
mod sanitizer;
mod slice;
mod sps;

pub use annexb::{nal_units, NalUnits};
pub use bits::BitWriter;
pub use pps::{parse_pps, PpsError, PpsInfo};
pub use sanitizer::{
    nal_type_allowed, DropPolicy, NalSanitizer, SanitizeError, SanitizerCounters, ALLOWED_NAL_TYPES,
};
pub use slice::{parse_slice, SliceError, SliceHeader};
pub use sps::{parse_sps, SpsError, SpsInfo, VideoSignal};

/// The NAL unit type (low five bits of the first byte).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// An access unit reduced to the allow-listed NAL units, each behind a 4-byte start code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedUnits {
    /// Annex-B bytes of the kept units.
    pub data: Vec<u8>,
    /// Whether an IDR slice was kept.
    pub keyframe: bool,
}

/// Keep only the NAL units of [`ALLOWED_NAL_TYPES`] (docs/protocol.md §3.3), as an encoder's
/// own output filter: the agent never emits what the gateway would drop. `None` when no slice
/// is left. This checks types only; the gateway's [`NalSanitizer`] checks everything.
pub fn keep_allowed(annexb: &[u8]) -> Option<AllowedUnits> {
    let mut data = Vec::with_capacity(annexb.len());
    let (mut keyframe, mut slices) = (false, 0usize);
    for nal in nal_units(annexb) {
        let Some(ty) = nal_type(nal) else { continue };
        if !nal_type_allowed(ty) {
            continue;
        }
        keyframe |= ty == 5;
        if ty == 1 || ty == 5 {
            slices += 1;
        }
        data.extend_from_slice(&[0, 0, 0, 1]);
        data.extend_from_slice(nal);
    }
    (slices > 0).then_some(AllowedUnits { data, keyframe })
}

/// A xorshift generator for the property tests: the same numbers every run.
#[cfg(test)]
fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}
