//! Video frames: the only payload that may cross toward LGWAN (docs/protocol.md §3).

use bytes::Bytes;

use crate::codec::Reader;
use crate::error::WireError;
use crate::limits::Limits;

/// The metadata before each access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VideoHeader {
    /// Frame number within the session, strictly increasing.
    pub sequence: u64,
    /// Capture time in microseconds. From the agent: its own clock; from the gateway: the
    /// gateway clock (the gateway converts with the ping-measured offset, §3.2).
    pub capture_us: u64,
    /// Whether the access unit holds an IDR picture.
    pub keyframe: bool,
    /// Frame width in pixels.
    pub width: u16,
    /// Frame height in pixels.
    pub height: u16,
}

/// One encoded access unit (Annex-B, H.264) with its header. A "frame" in tsuitate is always
/// this: one access unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VideoFrame {
    /// Metadata.
    pub header: VideoHeader,
    /// The Annex-B access unit.
    pub data: Bytes,
}

impl VideoFrame {
    /// Append the payload encoding.
    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        let h = &self.header;
        out.extend_from_slice(&h.sequence.to_be_bytes());
        out.extend_from_slice(&h.capture_us.to_be_bytes());
        out.push(u8::from(h.keyframe));
        out.extend_from_slice(&h.width.to_be_bytes());
        out.extend_from_slice(&h.height.to_be_bytes());
        out.extend_from_slice(&self.data);
    }

    /// Parse a payload: the header, then the access unit, which is the rest of the payload and
    /// must be 1..=max_frame_bytes long (docs/protocol.md §3.1).
    pub fn decode_payload(r: &mut Reader<'_>, limits: &Limits) -> Result<VideoFrame, WireError> {
        let sequence = r.u64("video.sequence")?;
        let capture_us = r.u64("video.capture_us")?;
        let keyframe = r.bool("video.keyframe")?;
        let (width, height) = r.dimensions(limits)?;
        let data = r.rest();
        if data.is_empty() || data.len() > limits.max_frame_bytes {
            return Err(WireError::TooLong {
                field: "video.data",
                len: data.len(),
                max: limits.max_frame_bytes,
            });
        }
        Ok(VideoFrame {
            header: VideoHeader {
                sequence,
                capture_us,
                keyframe,
                width,
                height,
            },
            data: Bytes::copy_from_slice(data),
        })
    }
}
