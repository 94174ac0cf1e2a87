//! H.264 decoding on its own thread. The newest frame wins: the queue toward the decoder is
//! small and bounded; when it is full the frame is dropped and everything up to the next
//! keyframe is skipped (a keyframe is requested), and of a backlog only the newest decoded
//! picture is converted to RGB and shown.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use thiserror::Error;
use tokio::sync::watch;
use tsuitate_protocol::{Limits, VideoFrame};

use crate::clock::ClockOffset;
use crate::report::Stats;

/// Frames queued toward the decoder before the newest-wins rule drops them.
pub const DECODE_QUEUE: usize = 8;

/// One decoded picture, RGB8, row-major, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes.
    pub rgb: Vec<u8>,
    /// The frame's sequence number.
    pub sequence: u64,
    /// Capture time (gateway clock, µs).
    pub capture_us: u64,
}

/// Where the decoder leaves the newest picture, with a counter that changes on every one.
#[derive(Debug)]
pub struct FrameSlot {
    latest: Mutex<Option<Arc<DecodedFrame>>>,
    counter: watch::Sender<u64>,
}

impl Default for FrameSlot {
    fn default() -> Self {
        FrameSlot {
            latest: Mutex::new(None),
            counter: watch::Sender::new(0),
        }
    }
}

impl FrameSlot {
    /// The newest picture, if any.
    pub fn latest(&self) -> Option<Arc<DecodedFrame>> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Number of pictures published so far.
    pub fn count(&self) -> u64 {
        *self.counter.borrow()
    }

    /// Watch the picture counter (to wait for a new picture).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.counter.subscribe()
    }

    fn publish(&self, frame: DecodedFrame) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(frame));
        self.counter.send_modify(|c| *c += 1);
    }
}

/// Why the decoder could not start.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// openh264 failed to initialise.
    #[error("H.264 decoder failed to start: {0}")]
    Init(String),
    /// The thread could not be spawned.
    #[error("decoder thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// What happened to a submitted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submit {
    /// Queued for decoding.
    Queued,
    /// Dropped while waiting for a keyframe.
    Skipped,
    /// Dropped because the decoder is behind: ask the gateway for a keyframe.
    DroppedNeedKeyframe,
    /// The decoder thread is gone.
    Closed,
}

/// The sending side of the decoder: owned by the connection loop.
#[derive(Debug)]
pub struct DecoderInput {
    tx: SyncSender<VideoFrame>,
    waiting_for_keyframe: bool,
}

impl DecoderInput {
    /// Queue a frame unless the newest-wins rule drops it.
    pub fn submit(&mut self, frame: VideoFrame) -> Submit {
        if self.waiting_for_keyframe && !frame.header.keyframe {
            return Submit::Skipped;
        }
        match self.tx.try_send(frame) {
            Ok(()) => {
                self.waiting_for_keyframe = false;
                Submit::Queued
            }
            Err(TrySendError::Full(_)) => {
                self.waiting_for_keyframe = true;
                Submit::DroppedNeedKeyframe
            }
            Err(TrySendError::Disconnected(_)) => Submit::Closed,
        }
    }

    /// Skip everything until the next keyframe (e.g. after a reconnect).
    pub fn resync(&mut self) {
        self.waiting_for_keyframe = true;
    }
}

/// Everything the decode thread shares with the rest of the viewer.
pub struct DecoderShared {
    /// Where pictures go.
    pub slot: Arc<FrameSlot>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Gateway clock estimate, for latency.
    pub clock: Arc<ClockOffset>,
    /// Bounds on picture size.
    pub limits: Limits,
    /// Called after each published picture (e.g. to wake the window).
    pub on_picture: Box<dyn Fn() + Send>,
    /// Called when the decoder needs a keyframe (after a decode error).
    pub on_need_keyframe: Box<dyn Fn() + Send>,
}

/// Start the decode thread. It ends when the [`DecoderInput`] is dropped.
pub fn spawn_decoder(shared: DecoderShared) -> Result<(DecoderInput, JoinHandle<()>), DecodeError> {
    let decoder = Decoder::new().map_err(|e| DecodeError::Init(e.to_string()))?;
    let (tx, rx) = mpsc::sync_channel(DECODE_QUEUE);
    let handle = std::thread::Builder::new()
        .name("tsuitate-decode".into())
        .spawn(move || decode_loop(decoder, rx, shared))?;
    Ok((
        DecoderInput {
            tx,
            waiting_for_keyframe: true,
        },
        handle,
    ))
}

fn decode_loop(mut decoder: Decoder, rx: Receiver<VideoFrame>, shared: DecoderShared) {
    let mut waiting_for_keyframe = true;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        // Newest wins: a keyframe later in the backlog makes everything before it useless.
        if let Some(k) = batch.iter().rposition(|f| f.header.keyframe) {
            if k > 0 {
                shared.stats.frames_dropped(k as u64);
                batch.drain(..k);
            }
        }
        let last = batch.len() - 1;
        for (i, frame) in batch.into_iter().enumerate() {
            if waiting_for_keyframe && !frame.header.keyframe {
                shared.stats.frames_dropped(1);
                continue;
            }
            match decode_one(&mut decoder, &frame, i == last, &shared) {
                Ok(()) => waiting_for_keyframe = false,
                Err(msg) => {
                    tracing::warn!(sequence = frame.header.sequence, error = %msg, "decode failed");
                    shared.stats.decode_error();
                    waiting_for_keyframe = true;
                    (shared.on_need_keyframe)();
                    if msg == PANICKED {
                        match Decoder::new() {
                            Ok(d) => decoder = d,
                            Err(_) => return,
                        }
                    }
                }
            }
        }
    }
}

const PANICKED: &str = "decoder panicked";

/// Decode one access unit; convert it to RGB and publish it when `show` is set.
fn decode_one(
    decoder: &mut Decoder,
    frame: &VideoFrame,
    show: bool,
    shared: &DecoderShared,
) -> Result<(), String> {
    let result = catch_unwind(AssertUnwindSafe(
        || -> Result<Option<DecodedFrame>, String> {
            let Some(yuv) = decoder.decode(&frame.data).map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            let (w, h) = yuv.dimensions();
            let (Ok(w16), Ok(h16)) = (u16::try_from(w), u16::try_from(h)) else {
                return Err(format!("picture {w}x{h} is too large"));
            };
            if !shared.limits.dimensions_ok(w16, h16) {
                return Err(format!("picture {w}x{h} is outside the limits"));
            }
            if !show {
                return Ok(Some(DecodedFrame {
                    width: 0,
                    height: 0,
                    rgb: Vec::new(),
                    sequence: frame.header.sequence,
                    capture_us: frame.header.capture_us,
                }));
            }
            let mut rgb = vec![0u8; w * h * 3];
            yuv.write_rgb8(&mut rgb);
            Ok(Some(DecodedFrame {
                width: u32::from(w16),
                height: u32::from(h16),
                rgb,
                sequence: frame.header.sequence,
                capture_us: frame.header.capture_us,
            }))
        },
    ));
    let picture = match result {
        Ok(r) => r?,
        Err(_) => return Err(PANICKED.into()),
    };
    let Some(picture) = picture else {
        return Ok(());
    };
    let latency = shared.clock.latency_since(frame.header.capture_us);
    shared.stats.frame_decoded(frame.header.keyframe, latency);
    if show {
        shared.slot.publish(picture);
        (shared.on_picture)();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tsuitate_protocol::VideoHeader;

    fn frame(sequence: u64, keyframe: bool) -> VideoFrame {
        VideoFrame {
            header: VideoHeader {
                sequence,
                capture_us: 0,
                keyframe,
                width: 64,
                height: 64,
            },
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        }
    }

    #[test]
    fn a_full_queue_drops_until_the_next_keyframe() {
        let (tx, rx) = mpsc::sync_channel(2);
        let mut input = DecoderInput {
            tx,
            waiting_for_keyframe: true,
        };
        assert_eq!(
            input.submit(frame(1, false)),
            Submit::Skipped,
            "no keyframe yet"
        );
        assert_eq!(input.submit(frame(2, true)), Submit::Queued);
        assert_eq!(input.submit(frame(3, false)), Submit::Queued);
        assert_eq!(input.submit(frame(4, false)), Submit::DroppedNeedKeyframe);
        assert_eq!(input.submit(frame(5, false)), Submit::Skipped);
        let _ = rx.recv();
        assert_eq!(
            input.submit(frame(6, false)),
            Submit::Skipped,
            "still no keyframe"
        );
        assert_eq!(input.submit(frame(7, true)), Submit::Queued);
        drop(rx);
        assert_eq!(input.submit(frame(8, false)), Submit::Closed);
    }
}
