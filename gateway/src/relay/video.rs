//! Video relay policy (sans-IO): re-framing, the slow-viewer drop rule, the frame-rate limit
//! and keyframe-request pacing.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tsuitate_protocol::{GatewayToViewer, Message, VideoFrame, VideoHeader, FRAME_HEADER_BYTES};

use super::input::TokenBucket;

/// A sanitized frame ready for a viewer: the framed message header (kind, length, video
/// header) and the access unit, both shared `Bytes`, written with one vectored write and never
/// copied per viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFrame {
    /// Kind + length + video header.
    pub head: Bytes,
    /// The sanitized access unit.
    pub data: Bytes,
    /// Whether it is a keyframe.
    pub keyframe: bool,
}

impl OutFrame {
    /// Re-frame a sanitized access unit with a gateway-assigned header.
    pub fn new(header: VideoHeader, data: Bytes) -> OutFrame {
        // Encode the message with an empty access unit, then fix the length to include the
        // data that will follow in a second chunk (docs/protocol.md §2 framing).
        let empty = GatewayToViewer::Video(VideoFrame {
            header,
            data: Bytes::new(),
        });
        let mut head = empty.to_bytes();
        let len = head.len() - FRAME_HEADER_BYTES + data.len();
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        head[1..FRAME_HEADER_BYTES].copy_from_slice(&len.to_be_bytes());
        OutFrame {
            head: Bytes::from(head),
            data,
            keyframe: header.keyframe,
        }
    }

    /// Bytes on the wire.
    pub fn wire_len(&self) -> usize {
        self.head.len() + self.data.len()
    }
}

/// What to do with a frame for one viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameAction {
    /// Queue it.
    Send,
    /// Drop it (the viewer waits for the next keyframe).
    Drop,
}

/// The per-viewer drop rule: once a frame could not be queued, every frame up to the next
/// keyframe is dropped (a P-frame without its references would only show garbage).
#[derive(Debug, Clone, Default)]
pub struct ViewerFlow {
    waiting_for_keyframe: bool,
}

impl ViewerFlow {
    /// A flow that starts by waiting for a keyframe (a resumed viewer).
    pub fn waiting() -> Self {
        ViewerFlow {
            waiting_for_keyframe: true,
        }
    }

    /// Whether the flow is waiting for a keyframe.
    pub fn is_waiting(&self) -> bool {
        self.waiting_for_keyframe
    }

    /// Decide before trying to queue.
    pub fn before(&self, keyframe: bool) -> FrameAction {
        if self.waiting_for_keyframe && !keyframe {
            FrameAction::Drop
        } else {
            FrameAction::Send
        }
    }

    /// Report whether queueing worked. Returns `true` when a keyframe should be requested.
    pub fn after(&mut self, keyframe: bool, queued: bool) -> bool {
        if queued {
            if keyframe {
                self.waiting_for_keyframe = false;
            }
            false
        } else {
            self.waiting_for_keyframe = true;
            true
        }
    }

    /// Start waiting for a keyframe (e.g. after the agent's frame rate was exceeded).
    pub fn wait_for_keyframe(&mut self) {
        self.waiting_for_keyframe = true;
    }
}

/// Paces keyframe requests to an agent.
#[derive(Debug, Clone)]
pub struct KeyframePacer {
    interval: Duration,
    last: Option<Instant>,
}

impl KeyframePacer {
    /// At most one request per `interval`.
    pub fn new(interval: Duration) -> Self {
        KeyframePacer {
            interval,
            last: None,
        }
    }

    /// Whether a request may be sent now (and if so, records it).
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.interval => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

/// The agent's frame-rate limit: `max_fps` frames per second with one second of burst.
#[derive(Debug, Clone)]
pub struct FpsLimit(TokenBucket);

impl FpsLimit {
    /// A limit of `max_fps`.
    pub fn new(now: Instant, max_fps: u32) -> Self {
        let r = f64::from(max_fps.max(1));
        FpsLimit(TokenBucket::new(now, r, r))
    }

    /// Whether one more frame fits now.
    pub fn admit(&mut self, now: Instant) -> bool {
        self.0.take(now, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsuitate_protocol::Limits;

    fn header(keyframe: bool) -> VideoHeader {
        VideoHeader {
            sequence: 7,
            capture_us: 123,
            keyframe,
            width: 640,
            height: 480,
        }
    }

    #[test]
    fn out_frame_matches_the_protocol_encoding() {
        let data = Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88, 0x84]);
        let f = OutFrame::new(header(true), data.clone());
        let mut wire = f.head.to_vec();
        wire.extend_from_slice(&f.data);
        let full = GatewayToViewer::Video(VideoFrame {
            header: header(true),
            data,
        });
        assert_eq!(wire, full.to_bytes());
        let (back, used) = GatewayToViewer::decode(&wire, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(back, full);
    }

    #[test]
    fn full_queue_drops_until_keyframe() {
        let mut flow = ViewerFlow::default();
        assert_eq!(flow.before(false), FrameAction::Send);
        assert!(!flow.after(false, true));
        // Queue full: drop and ask for a keyframe.
        assert!(flow.after(false, false));
        assert_eq!(flow.before(false), FrameAction::Drop);
        assert_eq!(flow.before(true), FrameAction::Send);
        // The keyframe did not fit either: still waiting.
        assert!(flow.after(true, false));
        assert_eq!(flow.before(false), FrameAction::Drop);
        assert!(!flow.after(true, true));
        assert_eq!(flow.before(false), FrameAction::Send);
    }

    #[test]
    fn pacer_limits_keyframe_requests() {
        let t = Instant::now();
        let mut p = KeyframePacer::new(Duration::from_millis(500));
        assert!(p.allow(t));
        assert!(!p.allow(t + Duration::from_millis(100)));
        assert!(p.allow(t + Duration::from_millis(600)));
    }

    #[test]
    fn fps_limit() {
        let t = Instant::now();
        let mut l = FpsLimit::new(t, 30);
        assert_eq!((0..40).filter(|_| l.admit(t)).count(), 30);
        assert!(l.admit(t + Duration::from_millis(40)));
    }
}
