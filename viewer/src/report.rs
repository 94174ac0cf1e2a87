//! Session statistics (frames, bytes, capture→decoded latency) and the headless JSON report.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;

/// Most latency samples kept for the final report (about 4 MB); later samples replace older
/// ones round-robin so memory stays bounded on long runs.
const MAX_SAMPLES: usize = 1_000_000;

#[derive(Debug, Default)]
struct Inner {
    frames_received: u64,
    frames_decoded: u64,
    keyframes: u64,
    bytes: u64,
    dropped_frames: u64,
    decode_errors: u64,
    last_sequence: Option<u64>,
    latency_us: Vec<u32>,
    next_slot: usize,
    window_us: Vec<u32>,
    window_bytes: u64,
    window_frames: u64,
    window_start: Option<Instant>,
    last_window: WindowStats,
    /// When the first picture was decoded.
    first_frame: Option<Instant>,
    /// Timeout warnings from the gateway (at most [`MAX_WARNINGS`]).
    warnings: Vec<TimeoutWarning>,
    /// When the connection was lost, while no picture has been decoded since.
    lost: Option<u64>,
    /// Connections lost and pictures back (at most [`MAX_WARNINGS`]).
    reconnects: Vec<Reconnect>,
}

/// A lost connection, and the first picture decoded after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reconnect {
    /// When the loss was noticed, in ms after the start.
    pub lost_ms: u64,
    /// When the next picture was decoded (through whichever gateway), in ms after the start.
    pub back_ms: u64,
    /// The same moment as milliseconds since the Unix epoch (for comparing with events
    /// outside the viewer, such as when a gateway was stopped).
    pub back_unix_ms: u64,
}

/// Most timeout warnings kept for the report.
const MAX_WARNINGS: usize = 100;

/// A timeout warning the gateway sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeoutWarning {
    /// `idle` or `absolute`.
    pub kind: &'static str,
    /// Seconds left when it was sent.
    pub seconds: u32,
    /// Milliseconds after the start.
    pub at_ms: u64,
}

/// Counters shared by the connection loop, the decode thread and the UI.
#[derive(Debug)]
pub struct Stats {
    inner: Mutex<Inner>,
    start: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            inner: Mutex::new(Inner::default()),
            start: Instant::now(),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

/// Values for the overlay and for `LatencyReport`, over the window since the last call.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowStats {
    /// Frames decoded in the window.
    pub frames: u32,
    /// Median latency (µs).
    pub p50_us: u32,
    /// 95th percentile latency (µs).
    pub p95_us: u32,
    /// Frames per second over the window.
    pub fps: f64,
    /// Received video bits per second over the window.
    pub bitrate_bps: f64,
}

/// Nearest-rank percentile of sorted samples (`p` in 0..=100).
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update of plain counters.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A frame arrived from the gateway (before decoding). Sequence gaps count as dropped
    /// frames (the gateway skipped them for a slow link).
    pub fn frame_received(&self, sequence: u64, bytes: usize) {
        let mut s = self.lock();
        s.frames_received += 1;
        s.bytes += bytes as u64;
        s.window_bytes += bytes as u64;
        if let Some(last) = s.last_sequence {
            if sequence > last {
                // The gateway picks the numbers: a huge jump must not overflow the counter.
                s.dropped_frames = s.dropped_frames.saturating_add(sequence - last - 1);
            }
        }
        s.last_sequence = Some(sequence);
    }

    /// Frames the viewer itself dropped (decoder behind, or waiting for a keyframe).
    pub fn frames_dropped(&self, n: u64) {
        self.lock().dropped_frames += n;
    }

    /// The connection to the gateway was lost (a reconnect follows).
    pub fn connection_lost(&self) {
        let at = self.ms_since_start(Instant::now());
        self.lock().lost.get_or_insert(at);
    }

    fn ms_since_start(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    /// A frame was decoded with this capture→decoded latency.
    pub fn frame_decoded(&self, keyframe: bool, latency_us: u32) {
        let now = Instant::now();
        let back_ms = self.ms_since_start(now);
        let mut s = self.lock();
        s.first_frame.get_or_insert(now);
        if let Some(lost_ms) = s.lost.take() {
            if s.reconnects.len() < MAX_WARNINGS {
                s.reconnects.push(Reconnect {
                    lost_ms,
                    back_ms,
                    back_unix_ms: crate::clock::unix_us() / 1000,
                });
            }
        }
        s.frames_decoded += 1;
        s.window_frames += 1;
        if keyframe {
            s.keyframes += 1;
        }
        if s.latency_us.len() < MAX_SAMPLES {
            s.latency_us.push(latency_us);
        } else {
            let slot = s.next_slot;
            s.latency_us[slot] = latency_us;
            s.next_slot = (slot + 1) % MAX_SAMPLES;
        }
        if s.window_us.len() < MAX_SAMPLES {
            s.window_us.push(latency_us);
        }
    }

    /// The gateway warned of a timeout.
    pub fn timeout_warning(&self, kind: tsuitate_protocol::TimeoutKind, seconds: u32) {
        let at_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut s = self.lock();
        if s.warnings.len() < MAX_WARNINGS {
            s.warnings.push(TimeoutWarning {
                kind: kind.name(),
                seconds,
                at_ms,
            });
        }
    }

    /// A frame failed to decode.
    pub fn decode_error(&self) {
        self.lock().decode_errors += 1;
    }

    /// Frames decoded so far.
    pub fn frames_decoded(&self) -> u64 {
        self.lock().frames_decoded
    }

    /// Stats since the previous call, then start a new window.
    pub fn take_window(&self) -> WindowStats {
        let mut s = self.lock();
        let now = Instant::now();
        let secs = s
            .window_start
            .map_or(now - self.start, |t| now - t)
            .as_secs_f64()
            .max(1e-3);
        let mut w = std::mem::take(&mut s.window_us);
        w.sort_unstable();
        let out = WindowStats {
            frames: u32::try_from(s.window_frames).unwrap_or(u32::MAX),
            p50_us: percentile(&w, 50.0),
            p95_us: percentile(&w, 95.0),
            fps: s.window_frames as f64 / secs,
            bitrate_bps: s.window_bytes as f64 * 8.0 / secs,
        };
        s.window_frames = 0;
        s.window_bytes = 0;
        s.window_start = Some(now);
        s.last_window = out;
        out
    }

    /// The most recent window taken by [`Stats::take_window`] (for the overlay).
    pub fn last_window(&self) -> WindowStats {
        self.lock().last_window
    }

    /// Frames dropped so far.
    pub fn dropped_frames(&self) -> u64 {
        self.lock().dropped_frames
    }

    /// The report's numbers (everything but the end reason and script outcome).
    pub fn summary(&self) -> Report {
        let s = self.lock();
        let duration = self.start.elapsed();
        let mut lat = s.latency_us.clone();
        lat.sort_unstable();
        let ms = |us: u32| f64::from(us) / 1000.0;
        let secs = duration.as_secs_f64().max(1e-3);
        Report {
            frames_decoded: s.frames_decoded,
            keyframes: s.keyframes,
            bytes: s.bytes,
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            timeout_warnings: s.warnings.clone(),
            reconnects: s.reconnects.clone(),
            first_frame_ms: s
                .first_frame
                .map(|t| u64::try_from((t - self.start).as_millis()).unwrap_or(u64::MAX)),
            latency_ms: LatencyMs {
                p50: ms(percentile(&lat, 50.0)),
                p95: ms(percentile(&lat, 95.0)),
                p99: ms(percentile(&lat, 99.0)),
                max: ms(lat.last().copied().unwrap_or(0)),
            },
            fps: s.frames_decoded as f64 / secs,
            dropped_frames: s.dropped_frames,
            frames_received: s.frames_received,
            decode_errors: s.decode_errors,
            end_reason: String::new(),
            script_completed: false,
            exit_code: 0,
            error: None,
            message: None,
            clock_offset_ms: 0.0,
        }
    }
}

/// The headless report (docs/viewer.md "Report").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Frames decoded into pictures.
    pub frames_decoded: u64,
    /// Of those, keyframes (IDR).
    pub keyframes: u64,
    /// Video access-unit bytes received.
    pub bytes: u64,
    /// Time from start to end, in ms.
    pub duration_ms: u64,
    /// Timeout warnings the gateway sent, in order.
    pub timeout_warnings: Vec<TimeoutWarning>,
    /// Each lost connection and when a picture was back (docs/viewer.md "Several gateways").
    pub reconnects: Vec<Reconnect>,
    /// Time from start (before the QUIC handshake and the login) to the first decoded picture,
    /// in ms: the session start time a user waits through; `None` without a picture.
    pub first_frame_ms: Option<u64>,
    /// Capture→decoded latency percentiles over the whole run.
    pub latency_ms: LatencyMs,
    /// Decoded frames per second over the run.
    pub fps: f64,
    /// Frames skipped by the gateway (sequence gaps) or by the viewer (decoder behind).
    pub dropped_frames: u64,
    /// Video frames received.
    pub frames_received: u64,
    /// Frames the decoder rejected.
    pub decode_errors: u64,
    /// Why the session ended: a `Reason` name (`Logout`, `IdleTimeout`, ...) or a viewer-side
    /// cause (`script_failed`, `connection_lost`, `unreachable`, `denied`, ...).
    pub end_reason: String,
    /// Whether every script line ran.
    pub script_completed: bool,
    /// The process exit code (docs/viewer.md "Exit codes").
    pub exit_code: i32,
    /// A message when something failed.
    pub error: Option<String>,
    /// The user-facing message for the outcome (in the viewer's language), if any.
    pub message: Option<String>,
    /// Gateway clock minus viewer clock, from ping/pong (0 before the first pong).
    pub clock_offset_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[7], 99.0), 7);
    }

    #[test]
    fn the_first_decoded_picture_is_timed_once() {
        let s = Stats::default();
        assert_eq!(s.summary().first_frame_ms, None);
        std::thread::sleep(std::time::Duration::from_millis(30));
        s.frame_decoded(true, 1000);
        let first = s.summary().first_frame_ms;
        assert!(first.is_some_and(|ms| ms >= 30), "{first:?}");
        std::thread::sleep(std::time::Duration::from_millis(30));
        s.frame_decoded(false, 1000);
        assert_eq!(
            s.summary().first_frame_ms,
            first,
            "later pictures do not move it"
        );
    }

    #[test]
    fn huge_sequence_jumps_do_not_overflow() {
        let s = Stats::default();
        s.frame_received(0, 1);
        s.frame_received(u64::MAX, 1);
        s.frame_received(0, 1);
        s.frame_received(u64::MAX, 1);
        assert_eq!(s.summary().dropped_frames, u64::MAX);
    }

    #[test]
    fn sequence_gaps_are_dropped_frames() {
        let s = Stats::default();
        s.frame_received(1, 10);
        s.frame_received(2, 10);
        s.frame_received(5, 10);
        s.frame_received(3, 10); // a reset (new stream) is not a gap
        s.frames_dropped(1);
        s.frame_decoded(true, 2000);
        s.frame_decoded(false, 4000);
        let r = s.summary();
        assert_eq!(r.dropped_frames, 3);
        assert_eq!(r.bytes, 40);
        assert_eq!(r.keyframes, 1);
        assert_eq!(r.latency_ms.max, 4.0);
        assert_eq!(r.latency_ms.p50, 2.0);
        let w = s.take_window();
        assert_eq!(w.frames, 2);
        assert_eq!(w.p95_us, 4000);
        assert_eq!(s.take_window().frames, 0);
    }
}
