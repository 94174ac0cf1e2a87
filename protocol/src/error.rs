//! Decoding errors: everything that makes a message malformed (docs/protocol.md §7).

use thiserror::Error;

/// Why bytes from a peer are not a valid message. "Need more bytes" is not an error: decoders
/// return `Ok(None)` for it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The kind byte is not a message this direction may carry.
    #[error("message kind 0x{0:02x} is not allowed in this direction")]
    UnexpectedKind(u8),
    /// The declared payload length exceeds the limit for that kind.
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    Oversize { len: usize, max: usize },
    /// The payload ended before a field was complete.
    #[error("payload ends inside field `{0}`")]
    Truncated(&'static str),
    /// Bytes remain after the last field.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// A text field is not UTF-8.
    #[error("field `{0}` is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// A text or list field is longer than its limit.
    #[error("field `{field}` has {len}, more than the limit of {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// A field holds a value outside its closed set or range.
    #[error("field `{field}` has invalid value {value}")]
    InvalidValue { field: &'static str, value: u64 },
    /// Frame width/height outside the limits.
    #[error("dimensions {width}x{height} are outside the limits")]
    Dimensions { width: u16, height: u16 },
}

impl WireError {
    /// A short stable name for metrics and audit records (docs/protocol.md §7.1).
    pub fn code(&self) -> &'static str {
        match self {
            WireError::UnexpectedKind(_) => "unexpected_kind",
            WireError::Oversize { .. } => "oversize",
            WireError::Truncated(_) => "truncated",
            WireError::TrailingBytes(_) => "trailing_bytes",
            WireError::InvalidUtf8(_) => "invalid_utf8",
            WireError::TooLong { .. } => "too_long",
            WireError::InvalidValue { .. } => "invalid_value",
            WireError::Dimensions { .. } => "dimensions",
        }
    }
}
