//! H.264 Annex-B parsing and the NAL sanitizer (docs/protocol.md §3.3).

mod annexb;
mod bits;
mod sanitizer;
mod sps;

pub use annexb::{nal_units, NalUnits};
pub use sanitizer::{NalSanitizer, SanitizeError, SanitizerCounters, ALLOWED_NAL_TYPES};
pub use sps::{parse_sps, SpsError, SpsInfo};

/// The NAL unit type (low five bits of the first byte).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}
