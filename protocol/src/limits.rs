//! Every bound the protocol enforces, in one place (docs/protocol.md §6).

/// Bounds applied while decoding and sanitizing. The defaults are the safe values from
/// docs/protocol.md §6; a deployment may only make them stricter or raise them deliberately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest H.264 access unit (bytes) in one video frame.
    pub max_frame_bytes: usize,
    /// Largest frame width in pixels.
    pub max_width: u16,
    /// Largest frame height in pixels.
    pub max_height: u16,
    /// Most Unicode scalar values in one committed-text input event.
    pub max_text_chars: usize,
    /// Most input events in one input batch.
    pub max_events_per_message: usize,
    /// Most NAL units in one access unit.
    pub max_nal_units: usize,
    /// Highest H.264 `level_idc` accepted (e.g. 51 = level 5.1).
    pub max_level_idc: u8,
}

/// Smallest frame dimension accepted anywhere (docs/protocol.md §6).
pub const MIN_DIMENSION: u16 = 64;
/// Largest control (non-video) message payload in bytes (docs/protocol.md §6).
pub const MAX_CONTROL_PAYLOAD: usize = 1024;
/// Largest user name in bytes.
pub const MAX_USER_BYTES: usize = 64;
/// Largest password in bytes.
pub const MAX_PASSWORD_BYTES: usize = 255;
/// Largest agent id in bytes.
pub const MAX_AGENT_ID_BYTES: usize = 64;
/// Longest watermark text the gateway sends an agent (UTF-8 bytes).
pub const MAX_WATERMARK_BYTES: usize = 128;
/// Largest wheel delta (in notches) per event, either sign.
pub const MAX_WHEEL_DELTA: i16 = 120;
/// Bytes of the video header that precede the access unit.
pub const VIDEO_HEADER_BYTES: usize = 8 + 8 + 1 + 2 + 2;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 4 * 1024 * 1024,
            max_width: 3840,
            max_height: 2160,
            max_text_chars: 64,
            max_events_per_message: 64,
            max_nal_units: 256,
            max_level_idc: 51,
        }
    }
}

impl Limits {
    /// Largest payload a message of kind `video` (or not) may have.
    pub fn max_payload(&self, video: bool) -> usize {
        if video {
            self.max_frame_bytes.saturating_add(VIDEO_HEADER_BYTES)
        } else {
            // Input batches are the largest control payloads: bound them by their event cap.
            let input = 1 + self
                .max_events_per_message
                .saturating_mul(2 + self.max_text_chars.saturating_mul(4));
            input.max(MAX_CONTROL_PAYLOAD)
        }
    }

    /// Whether `width`×`height` is an acceptable frame size.
    pub fn dimensions_ok(&self, width: u16, height: u16) -> bool {
        (MIN_DIMENSION..=self.max_width).contains(&width)
            && (MIN_DIMENSION..=self.max_height).contains(&height)
    }
}
