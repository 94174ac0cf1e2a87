//! Per-session capture and encode threads. Capture is damage-driven and rate-limited to the
//! configured fps; the encoder always takes the newest capture (older ones are dropped, never
//! queued), so when encoding is slower than the frame interval the frame rate drops and the
//! latency does not grow.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tsuitate_protocol::{VideoFrame, VideoHeader};

use crate::convert::{bgra_to_i420_rows, I420};
use crate::encode::{EncodedAu, VideoEncoder};
use crate::frame::{union_rows, Change, Frame, FrameSource};

/// Counters shared with the session (for `Stats`).
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Access units sent.
    pub frames_encoded: AtomicU64,
    /// Captures replaced by a newer one before encoding, or skipped by rate control.
    pub frames_skipped: AtomicU64,
    /// Of the access units sent, refinements of a still screen.
    pub frames_refined: AtomicU64,
}

/// Everything the threads are told, under one lock with one condition variable: a change is
/// made while holding the lock and then signalled, so a waiting encoder never misses it
/// between its check and its wait.
#[derive(Debug, Default)]
struct Control {
    /// The newest capture not yet encoded.
    newest: Option<Frame>,
    /// The next frame must be an IDR.
    keyframe: bool,
    /// A new capture size the capture thread has not applied yet.
    resize: Option<(u16, u16)>,
    /// Nobody watches (the session lingers): neither thread captures or encodes.
    paused: bool,
    /// A pause ended: the capture thread takes a picture at once (it may not have seen the
    /// pause at all, if it was short).
    fresh: bool,
    /// A picture nobody needs any more, for the next capture's buffer.
    spare: Option<Frame>,
    /// A picture was dropped without its changed rows going to a later one: the next one
    /// counts as changed everywhere.
    rows_lost: bool,
}

#[derive(Debug, Default)]
struct Shared {
    /// Also read without the lock by loops that only need to know whether to go on.
    stop: AtomicBool,
    control: Mutex<Control>,
    cv: Condvar,
    ended: Mutex<Option<String>>,
    stats: PipelineStats,
}

impl Shared {
    /// Change the control state under its lock, then wake the threads.
    fn tell(&self, f: impl FnOnce(&mut Control)) {
        // A poisoned lock (a thread panicked holding it) still takes the change: `stop` must
        // always reach the threads, or `Pipeline::stop` would wait for them forever.
        f(&mut self
            .control
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
        self.cv.notify_all();
    }

    fn stop(&self) {
        // Set under the lock so that a waiter cannot check `stop` and then sleep through it.
        self.tell(|_| self.stop.store(true, Ordering::SeqCst));
    }

    fn end(&self, why: String) {
        if let Ok(mut e) = self.ended.lock() {
            e.get_or_insert(why);
        }
        self.stop();
    }
}

/// The two threads of one session.
#[derive(Debug)]
pub struct Pipeline {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Start capturing from `source` at up to `fps` and sending frames into `out` (a bounded
    /// channel: when it is full the encoder waits, and the newest-capture slot absorbs the
    /// difference).
    pub fn start(
        source: Box<dyn FrameSource>,
        encoder: Box<dyn VideoEncoder>,
        fps: u32,
        out: mpsc::Sender<VideoFrame>,
    ) -> std::io::Result<Pipeline> {
        let shared = Arc::new(Shared::default());
        shared.tell(|c| c.keyframe = true);
        let interval = Duration::from_micros(1_000_000 / u64::from(fps.clamp(1, 60)));
        let s1 = Arc::clone(&shared);
        let capture = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || capture_loop(source, interval, &s1))?;
        let s2 = Arc::clone(&shared);
        let encode = std::thread::Builder::new()
            .name("encode".into())
            .spawn(move || encode_loop(encoder, interval, out, &s2))?;
        Ok(Pipeline {
            shared,
            threads: vec![capture, encode],
        })
    }

    /// Make the next frame an IDR (re-encoding the last picture if the screen is idle).
    pub fn request_keyframe(&self) {
        self.shared.tell(|c| c.keyframe = true);
    }

    /// Capture and encode `width`×`height` pictures from now on (the session was resized).
    /// The capture thread applies it before its next picture, which it takes at once; the
    /// encoder starts a new stream (an IDR with new SPS/PPS) at the first picture of the new
    /// size. The frame headers carry the new size from that IDR on.
    pub fn resize(&self, width: u16, height: u16) {
        self.shared.tell(|c| c.resize = Some((width, height)));
    }

    /// Stop capturing and encoding while nobody watches (`true`: the session lingers without
    /// a gateway), or go on (`false`). A pause forgets the pictures not yet sent; going on
    /// takes a new picture at once and encodes it as a keyframe (the viewer that resumes has
    /// none of the stream before).
    pub fn pause(&self, paused: bool) {
        self.shared.tell(|c| {
            c.paused = paused;
            if paused {
                c.newest = None;
                c.rows_lost = true;
            } else {
                c.fresh = true;
                c.keyframe = true;
            }
        });
    }

    /// Counters.
    pub fn stats(&self) -> &PipelineStats {
        &self.shared.stats
    }

    /// Why the pipeline stopped by itself (capture or encode failure), if it did.
    pub fn ended(&self) -> Option<String> {
        self.shared.ended.lock().ok().and_then(|e| e.clone())
    }

    /// Stop both threads and wait for them.
    pub fn stop(&mut self) {
        self.shared.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Apply a pending resize to the source. `Ok(true)` when the size changed.
fn apply_resize(source: &mut dyn FrameSource, shared: &Shared) -> Result<bool, String> {
    let pending = shared
        .control
        .lock()
        .map_err(|_| "poisoned control")?
        .resize
        .take();
    match pending {
        Some((w, h)) if (w, h) != source.size() => {
            source.set_size(w, h).map_err(|e| format!("resize: {e}"))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Wait while the pipeline is paused; true when a pause ended since the last call (the next
/// picture is then taken at once, as the first one is).
fn wait_while_paused(shared: &Shared) -> bool {
    let Ok(mut c) = shared.control.lock() else {
        return false;
    };
    while c.paused && !shared.stop.load(Ordering::SeqCst) {
        c = match shared.cv.wait(c) {
            Ok(guard) => guard,
            Err(_) => return false,
        };
    }
    std::mem::take(&mut c.fresh)
}

fn capture_loop(mut source: Box<dyn FrameSource>, interval: Duration, shared: &Shared) {
    let mut last: Option<Instant> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        if wait_while_paused(shared) {
            last = None;
            continue;
        }
        let mut resized = match apply_resize(source.as_mut(), shared) {
            Ok(r) => r,
            Err(e) => return shared.end(e),
        };
        // The first picture is taken without waiting for damage: the viewer needs a keyframe
        // even if the screen never changes. So is the first one after a resize.
        if last.is_some() && !resized {
            match source.wait_change(Duration::from_millis(100)) {
                Ok(Change::Idle) => continue,
                Ok(Change::Damaged) => {}
                Err(e) => return shared.end(format!("capture: {e}")),
            }
            resized = match apply_resize(source.as_mut(), shared) {
                Ok(r) => r,
                Err(e) => return shared.end(e),
            };
        }
        // Rate limit: at most one capture per interval; damage meanwhile is coalesced.
        if let (Some(t), false) = (last, resized) {
            let next = t + interval;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
        last = Some(Instant::now());
        let spare = shared.control.lock().ok().and_then(|mut c| c.spare.take());
        if let Some(old) = spare {
            source.recycle(old);
        }
        let mut frame = match source.capture() {
            Ok(f) => f,
            Err(e) => return shared.end(format!("capture: {e}")),
        };
        shared.tell(|c| {
            // A picture taken as the pause began is not kept: it would be sent as the first
            // one after it, older than the screen by the whole pause.
            if c.paused {
                c.rows_lost = true;
                c.spare = Some(frame);
                return;
            }
            if std::mem::take(&mut c.rows_lost) {
                frame.changed_rows = None;
            }
            if let Some(old) = c.newest.take() {
                // What changed in the picture replaced changed against the one encoded last.
                frame.changed_rows = union_rows(frame.changed_rows, old.changed_rows);
                shared.stats.frames_skipped.fetch_add(1, Ordering::Relaxed);
                c.spare = Some(old);
            }
            c.newest = Some(frame);
        });
    }
}

/// What the encode loop should do next.
enum Work {
    Encode(Frame, bool),
    /// The screen has been still for [`REFINE_AFTER`] since the last frame sent.
    Refine,
    Stop,
}

/// A screen still for this long after a frame is refined ([`VideoEncoder::refine`]): long
/// enough that typing and scrolling, whose next change comes sooner, do not pay for it. While
/// the encoder has more to refine, it is asked again after as long.
pub const REFINE_AFTER: Duration = Duration::from_millis(600);

/// A screen that never stays still that long (a blinking caret in a focused field) is
/// refined at the latest this long after the first frame since the last refinement.
pub const REFINE_AT_MOST_AFTER: Duration = Duration::from_millis(2500);

/// The last picture, encoded again (a keyframe request on an idle screen, or a retry after
/// rate control skipped it): nothing changed on screen since, so it shows the screen as it is
/// now, and is stamped now — idle time must not show as latency at the viewer.
fn restamped(mut f: Frame) -> Frame {
    f.capture_us = crate::frame::now_us();
    f
}

/// When a still screen is next refined ([`REFINE_AFTER`], [`REFINE_AT_MOST_AFTER`]). A pause
/// starts it again.
#[derive(Debug, Default)]
struct RefineClock {
    /// When the first frame not refined yet was sent.
    first_unrefined: Option<Instant>,
    /// When a refinement is due, if it is.
    due: Option<Instant>,
}

impl RefineClock {
    /// A frame was sent at `now`.
    fn frame_sent(&mut self, now: Instant) {
        let first = *self.first_unrefined.get_or_insert(now);
        self.due = Some((now + REFINE_AFTER).min(first + REFINE_AT_MOST_AFTER));
    }

    /// A refinement was sent at `now`: more may be left, asked for if it stays still.
    fn refinement_sent(&mut self, now: Instant) {
        self.due = Some(now + REFINE_AFTER);
    }
}

/// The next work; `refine`: when a still screen is due for refinement.
fn next_work(
    shared: &Shared,
    last: &mut Option<Frame>,
    retry: bool,
    interval: Duration,
    refine: &mut RefineClock,
) -> Work {
    let Ok(mut c) = shared.control.lock() else {
        return Work::Stop;
    };
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return Work::Stop;
        }
        if c.paused {
            // The last picture is not encoded again after the pause: it is old by then.
            *last = None;
            *refine = RefineClock::default();
            c = match shared.cv.wait(c) {
                Ok(guard) => guard,
                Err(_) => return Work::Stop,
            };
            continue;
        }
        if let Some(f) = c.newest.take() {
            return Work::Encode(f, std::mem::take(&mut c.keyframe));
        }
        if c.keyframe || retry {
            if let Some(f) = last.take() {
                return Work::Encode(restamped(f), std::mem::take(&mut c.keyframe));
            }
        }
        let wait = if retry {
            interval
        } else if let Some(at) = refine.due {
            let now = Instant::now();
            if now >= at {
                *refine = RefineClock::default();
                return Work::Refine;
            }
            at - now
        } else {
            Duration::from_millis(500)
        };
        c = match shared.cv.wait_timeout(c, wait) {
            Ok((guard, _)) => guard,
            Err(_) => return Work::Stop,
        };
        if retry && !c.paused && c.newest.is_none() {
            if let Some(f) = last.take() {
                return Work::Encode(restamped(f), std::mem::take(&mut c.keyframe));
            }
        }
    }
}

fn encode_loop(
    mut encoder: Box<dyn VideoEncoder>,
    interval: Duration,
    out: mpsc::Sender<VideoFrame>,
    shared: &Shared,
) {
    let mut last: Option<Frame> = None;
    let mut picture: Option<I420> = None;
    let mut sequence = 0u64;
    let mut retry = false;
    let mut size: Option<(u16, u16)> = None;
    let mut refine = RefineClock::default();
    loop {
        let (frame, mut idr) = match next_work(shared, &mut last, retry, interval, &mut refine) {
            Work::Encode(f, idr) => (f, idr),
            Work::Refine => {
                let au = match encoder.refine() {
                    Ok(au) => au,
                    Err(e) => return shared.end(format!("encode: {e}")),
                };
                let Some(au) = au else {
                    continue;
                };
                let Some((width, height)) = size else {
                    return shared.end("encode: a refinement before any picture".into());
                };
                // Nothing new was captured: stamped when made, like a keyframe of an idle
                // screen.
                let header = VideoHeader {
                    sequence,
                    capture_us: crate::frame::now_us(),
                    keyframe: false,
                    width,
                    height,
                };
                if !send_au(&out, header, au, shared) {
                    return;
                }
                sequence += 1;
                shared.stats.frames_refined.fetch_add(1, Ordering::Relaxed);
                refine.refinement_sent(Instant::now());
                continue;
            }
            Work::Stop => return,
        };
        // A new picture size starts a new stream (SPS/PPS + IDR, docs/protocol.md §3.3).
        if size != Some((frame.width, frame.height)) {
            if let Err(e) = encoder.resize(frame.width, frame.height) {
                return shared.end(format!("encode: {e}"));
            }
            idr |= size.is_some();
            size = Some((frame.width, frame.height));
        }
        // `picture` holds the last frame taken here, converted: only the rows changed since
        // are converted again (all of them for a new picture).
        let mut rows = frame.changed_rows;
        if picture
            .as_ref()
            .is_none_or(|p| (p.width, p.height) != (frame.width, frame.height))
        {
            picture = Some(I420::new(frame.width, frame.height));
            rows = None;
        }
        let Some(pic) = picture.as_mut() else {
            return shared.end("no picture".into());
        };
        let rows = rows.unwrap_or((0, frame.height));
        if let Err(e) = bgra_to_i420_rows(&frame.bgra, frame.stride, pic, rows) {
            return shared.end(e.to_string());
        }
        let au = match encoder.encode(pic, idr) {
            Ok(au) => au,
            Err(e) => return shared.end(format!("encode: {e}")),
        };
        let header = VideoHeader {
            sequence,
            capture_us: frame.capture_us,
            keyframe: false,
            width: frame.width,
            height: frame.height,
        };
        if let Some(old) = last.replace(frame) {
            if let Ok(mut c) = shared.control.lock() {
                c.spare = Some(old);
            }
        }
        let Some(au) = au else {
            // Rate control skipped this picture: try again after an interval unless a newer
            // capture arrives first, so the viewer never keeps a stale screen.
            shared.stats.frames_skipped.fetch_add(1, Ordering::Relaxed);
            if idr {
                shared.tell(|c| c.keyframe = true);
            }
            retry = true;
            continue;
        };
        retry = false;
        if !send_au(&out, header, au, shared) {
            return;
        }
        sequence += 1;
        refine.frame_sent(Instant::now());
    }
}

/// Send an access unit with `header` (its keyframe flag taken from the unit) and count it;
/// false when the pipeline stopped ([`send_or_stop`]).
fn send_au(
    out: &mpsc::Sender<VideoFrame>,
    header: VideoHeader,
    au: EncodedAu,
    shared: &Shared,
) -> bool {
    let frame = VideoFrame {
        header: VideoHeader {
            keyframe: au.keyframe,
            ..header
        },
        data: Bytes::from(au.data),
    };
    let sent = send_or_stop(out, frame, shared);
    if sent {
        shared.stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
    }
    sent
}

/// Send a frame, waiting while the channel is full (backpressure from the QUIC stream) but
/// giving up when the pipeline is stopped, so `stop` never hangs on an undrained receiver.
fn send_or_stop(out: &mpsc::Sender<VideoFrame>, mut frame: VideoFrame, shared: &Shared) -> bool {
    loop {
        match out.try_send(frame) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Full(f)) => {
                if shared.stop.load(Ordering::SeqCst) {
                    return false;
                }
                frame = f;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                shared.end("video receiver closed".into());
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{EncoderSettings, OpenH264Encoder};
    use crate::frame::{SyntheticContent, SyntheticSource};

    fn encoder_320x240() -> OpenH264Encoder {
        let enc = OpenH264Encoder::new(EncoderSettings {
            width: 320,
            height: 240,
            fps: 30,
            bitrate_kbps: 2000,
            screen_content: true,
        });
        let Ok(enc) = enc else { panic!("encoder") };
        enc
    }

    #[test]
    fn synthetic_source_produces_increasing_frames_starting_with_idr() {
        let src = SyntheticSource::new(320, 240, SyntheticContent::Scroll);
        let enc = encoder_320x240();
        let (tx, mut rx) = mpsc::channel(2);
        let p = Pipeline::start(Box::new(src), Box::new(enc), 30, tx);
        let Ok(mut p) = p else { panic!("pipeline") };
        let mut frames = Vec::new();
        while frames.len() < 5 {
            match rx.blocking_recv() {
                Some(f) => frames.push(f),
                None => break,
            }
        }
        // The receiver is full and not drained: stop must still return.
        std::thread::sleep(Duration::from_millis(300));
        p.stop();
        assert_eq!(frames.len(), 5);
        assert!(frames[0].header.keyframe);
        assert!(frames
            .windows(2)
            .all(|w| w[0].header.sequence < w[1].header.sequence));
    }

    #[test]
    fn resize_starts_a_new_stream_the_gateway_accepts() {
        use tsuitate_protocol::{Limits, NalSanitizer};
        let src = SyntheticSource::new(320, 240, SyntheticContent::Scroll);
        let enc = encoder_320x240();
        let (tx, mut rx) = mpsc::channel(4);
        let Ok(mut p) = Pipeline::start(Box::new(src), Box::new(enc), 30, tx) else {
            panic!("pipeline")
        };
        let mut frames = Vec::new();
        let mut resized = false;
        while let Some(f) = rx.blocking_recv() {
            frames.push(f);
            if frames.len() == 3 && !resized {
                p.resize(480, 272);
                resized = true;
            }
            if frames.iter().filter(|f| f.header.width == 480).count() >= 3 {
                break;
            }
        }
        p.stop();
        // The gateway's sanitizer checks that a new SPS comes with an IDR and that the SPS
        // size equals the header size.
        let mut sanitizer = NalSanitizer::new(Limits::default());
        for f in &frames {
            let r = sanitizer.sanitize(&f.header, &f.data);
            assert!(r.is_ok(), "frame {} refused: {r:?}", f.header.sequence);
        }
        let first_new = frames.iter().position(|f| f.header.width == 480);
        let Some(first_new) = first_new else {
            panic!("no frame at the new size")
        };
        assert!(
            frames[first_new].header.keyframe,
            "new size starts with an IDR"
        );
        assert_eq!(frames[first_new].header.height, 272);
        assert!(frames[first_new..].iter().all(|f| f.header.width == 480));
        assert!(frames[..first_new].iter().all(|f| f.header.width == 320));
    }

    /// A source that counts its captures and the buffers given back to it.
    struct Counted(SyntheticSource, Arc<AtomicU64>, Arc<AtomicU64>);

    impl FrameSource for Counted {
        fn size(&self) -> (u16, u16) {
            self.0.size()
        }
        fn wait_change(&mut self, timeout: Duration) -> Result<Change, crate::frame::CaptureError> {
            self.0.wait_change(timeout)
        }
        fn capture(&mut self) -> Result<Frame, crate::frame::CaptureError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.capture()
        }
        fn set_size(&mut self, w: u16, h: u16) -> Result<(), crate::frame::CaptureError> {
            self.0.set_size(w, h)
        }
        fn recycle(&mut self, frame: Frame) {
            assert_eq!(frame.bgra.len(), 320 * 240 * 4, "a whole picture's buffer");
            self.2.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn picture_buffers_go_back_to_the_source() {
        let (captures, recycled) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let src = Counted(
            SyntheticSource::new(320, 240, SyntheticContent::Scroll),
            Arc::clone(&captures),
            Arc::clone(&recycled),
        );
        let (tx, mut rx) = mpsc::channel(4);
        let Ok(mut p) = Pipeline::start(Box::new(src), Box::new(encoder_320x240()), 30, tx) else {
            panic!("pipeline")
        };
        for _ in 0..10 {
            assert!(rx.blocking_recv().is_some());
        }
        p.stop();
        // Every capture but the few still held (the newest, the last encoded, one spare)
        // reused the buffer of an earlier one.
        let (c, r) = (
            captures.load(Ordering::SeqCst),
            recycled.load(Ordering::SeqCst),
        );
        assert!(r + 3 >= c && r >= 7, "{r} of {c} captures reused a buffer");
    }

    #[test]
    fn a_paused_pipeline_neither_captures_nor_encodes_and_goes_on_with_a_fresh_keyframe() {
        // A scroll changes every frame: without the pause it is captured 30 times a second.
        let captures = Arc::new(AtomicU64::new(0));
        let src = Counted(
            SyntheticSource::new(320, 240, SyntheticContent::Scroll),
            Arc::clone(&captures),
            Arc::default(),
        );
        let (tx, mut rx) = mpsc::channel(4);
        let Ok(mut p) = Pipeline::start(Box::new(src), Box::new(encoder_320x240()), 30, tx) else {
            panic!("pipeline")
        };
        for _ in 0..3 {
            assert!(rx.blocking_recv().is_some());
        }
        p.pause(true);
        // What was under way as the pause began (at most one picture in each thread).
        std::thread::sleep(Duration::from_millis(300));
        while rx.try_recv().is_ok() {}
        let before = captures.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(
            captures.load(Ordering::SeqCst),
            before,
            "captured while paused"
        );
        assert!(rx.try_recv().is_err(), "encoded while paused");

        let resumed_at = crate::frame::now_us();
        p.pause(false);
        let Some(f) = rx.blocking_recv() else {
            panic!("nothing after the pause")
        };
        p.stop();
        assert!(
            f.header.keyframe,
            "the first frame after the pause is a keyframe"
        );
        assert!(
            f.header.capture_us >= resumed_at,
            "and a picture taken after the pause, not before it"
        );
        assert!(captures.load(Ordering::SeqCst) > before);
    }

    /// A pipeline over a still page (nothing changes unless asked).
    fn still_pipeline() -> (Pipeline, mpsc::Receiver<VideoFrame>) {
        let mut src = SyntheticSource::new(320, 240, SyntheticContent::StaticCaret);
        src.changing = false;
        let (tx, rx) = mpsc::channel(4);
        let Ok(p) = Pipeline::start(Box::new(src), Box::new(encoder_320x240()), 30, tx) else {
            panic!("pipeline")
        };
        (p, rx)
    }

    /// A damage encoder at a low bitrate (openh264's keyframe coarse: much to refine) behind
    /// a pipeline over the synthetic page, changing every frame or still.
    fn coarse_pipeline(changing: bool) -> (Pipeline, mpsc::Receiver<VideoFrame>) {
        let mut src = SyntheticSource::new(320, 240, SyntheticContent::StaticCaret);
        src.changing = changing;
        let settings = EncoderSettings {
            width: 320,
            height: 240,
            fps: 30,
            bitrate_kbps: 100,
            screen_content: true,
        };
        let Ok(enc) = crate::writer::DamageEncoder::new(settings) else {
            panic!("encoder")
        };
        let (tx, rx) = mpsc::channel(64);
        let Ok(p) = Pipeline::start(Box::new(src), Box::new(enc), 30, tx) else {
            panic!("pipeline")
        };
        (p, rx)
    }

    /// A still screen coded coarsely: refinements follow at [`REFINE_AFTER`] intervals, each
    /// stamped when made, until nothing is left to refine; then nothing.
    #[test]
    fn a_still_screen_is_refined_and_then_left_alone() {
        let (mut p, mut rx) = coarse_pipeline(false);
        let Some(first) = rx.blocking_recv() else {
            panic!("no first frame")
        };
        let sent = Instant::now();
        let mut later: Vec<(Duration, VideoFrame)> = Vec::new();
        // Until 2 s pass without a frame (at most 15 s: a busy machine may be slow).
        let quiet = Duration::from_millis(2000);
        while sent.elapsed() < Duration::from_secs(15)
            && sent.elapsed()
                < later.last().map_or(Duration::ZERO, |(t, _)| *t) + quiet + REFINE_AFTER
        {
            match rx.try_recv() {
                Ok(f) => later.push((sent.elapsed(), f)),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        let refined = p.stats().frames_refined.load(Ordering::Relaxed);
        p.stop();
        let times: Vec<Duration> = later.iter().map(|(t, _)| *t).collect();
        assert!(first.header.keyframe);
        assert!(
            (1..=4).contains(&later.len()),
            "refinements, each at most a quarter of the picture: {times:?}"
        );
        assert_eq!(refined, later.len() as u64);
        // Times are when this thread saw each frame (polling every 10 ms), not when it was
        // sent: a gap may look shorter than REFINE_AFTER by that much.
        let slack = Duration::from_millis(50);
        let mut previous = Duration::ZERO;
        for (at, f) in &later {
            assert!(*at + slack >= previous + REFINE_AFTER, "{times:?}");
            assert!(!f.header.keyframe);
            assert!(f.header.capture_us > first.header.capture_us);
            previous = *at;
        }
        assert!(
            sent.elapsed() >= previous + quiet,
            "then nothing for two seconds and more: {times:?}"
        );
    }

    /// A screen that changes all the time (the caret of a focused field) is refined anyway,
    /// [`REFINE_AT_MOST_AFTER`] after the first frame.
    #[test]
    fn a_screen_that_never_stays_still_is_refined_too() {
        let (mut p, mut rx) = coarse_pipeline(true);
        // REFINE_AT_MOST_AFTER and then some: a busy machine may be slow.
        let until = Instant::now() + REFINE_AT_MOST_AFTER + Duration::from_secs(6);
        let mut frames = 0;
        while Instant::now() < until && p.stats().frames_refined.load(Ordering::Relaxed) == 0 {
            while rx.try_recv().is_ok() {
                frames += 1;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let refined = p.stats().frames_refined.load(Ordering::Relaxed);
        p.stop();
        assert!(frames > 10, "the screen kept changing: {frames} frames");
        assert!(refined >= 1, "no refinement in {frames} frames");
    }

    /// A pause starts the refinement clock again: the frames after it are refined
    /// [`REFINE_AT_MOST_AFTER`] after the first of them at the earliest (on a screen that
    /// never stays still), not at once for frames sent before the pause.
    #[test]
    fn a_pause_starts_the_refinement_clock_again() {
        let (mut p, mut rx) = coarse_pipeline(true);
        assert!(rx.blocking_recv().is_some(), "the first frame");
        std::thread::sleep(Duration::from_millis(300));
        p.pause(true);
        // Past REFINE_AT_MOST_AFTER since the first frame while paused.
        std::thread::sleep(REFINE_AT_MOST_AFTER);
        let refined = p.stats().frames_refined.load(Ordering::Relaxed);
        p.pause(false);
        let resumed = Instant::now();
        let mut frames = 0;
        while resumed.elapsed() < REFINE_AT_MOST_AFTER / 2 {
            while rx.try_recv().is_ok() {
                frames += 1;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let after = p.stats().frames_refined.load(Ordering::Relaxed);
        p.stop();
        assert_eq!(refined, 0, "nothing refined before the pause");
        assert!(
            frames > 5,
            "the screen kept changing after the pause: {frames} frames"
        );
        assert_eq!(after, 0, "refined right after the pause");
    }

    #[test]
    fn a_pause_too_short_for_the_capture_thread_to_see_still_gives_a_keyframe() {
        // A still screen: nothing but the pause's end makes a new picture.
        let (mut p, mut rx) = still_pipeline();
        assert!(rx.blocking_recv().is_some(), "the first frame");
        std::thread::sleep(Duration::from_millis(300));
        let resumed_at = crate::frame::now_us();
        // Over before the capture thread is back from waiting for damage.
        p.pause(true);
        p.pause(false);
        let until = Instant::now() + Duration::from_secs(3);
        let got = loop {
            match rx.try_recv() {
                Ok(f) => break Some(f),
                Err(_) if Instant::now() > until => break None,
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        p.stop();
        let Some(f) = got else {
            panic!("no frame after the pause")
        };
        assert!(f.header.keyframe, "a keyframe after the pause");
        assert!(f.header.capture_us >= resumed_at, "of a new picture");
    }

    #[test]
    fn a_keyframe_of_an_idle_screen_is_stamped_when_it_is_encoded() {
        let (mut p, mut rx) = still_pipeline();
        let Some(first) = rx.blocking_recv() else {
            panic!("no first frame")
        };
        // The screen stays idle; a keyframe is asked for a second later.
        std::thread::sleep(Duration::from_millis(1000));
        let asked = crate::frame::now_us();
        p.request_keyframe();
        let Some(again) = rx.blocking_recv() else {
            panic!("no keyframe")
        };
        p.stop();
        assert!(again.header.keyframe);
        assert!(
            again.header.capture_us >= asked,
            "stamped when encoded ({} µs after the first capture), not with the old capture time",
            again
                .header
                .capture_us
                .saturating_sub(first.header.capture_us)
        );
    }
}
