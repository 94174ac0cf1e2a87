//! One session: `Open` → start the browser → `Started` → video; apply `Input`,
//! `KeyframeRequest`, `Resize`, `Close`; `Ended` when the browser or display dies. When its
//! gateway stream is lost the browser lingers, and `Open{resume}` through any gateway hands it
//! a new stream (docs/agent.md "Sessions live on the agent"). Anything malformed from the
//! gateway ends the session with a clear error, never a panic (docs/protocol.md §5.2).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::{RecvStream, SendStream};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;
use tsuitate_protocol::{
    AgentSessionToGateway, GatewayToAgentSession, InputEvent, Limits, Message, Reason,
    SessionOwner, VideoFrame, Watermark,
};
use tsuitate_transport::{spawn_reader, ReadEnd, ReadItem};

use crate::browser::BrowserSession;
use crate::config::{AgentConfig, EncoderUsage, Encoding};
use crate::encode::{EncoderSettings, OpenH264Encoder, VideoEncoder};
use crate::frame::FrameSource;
use crate::held::{Handover, Registry};
use crate::pipeline::Pipeline;
use crate::size::clamp_size;
use crate::watermark::{Painter, Retext, Watermarked};
use crate::writer::DamageEncoder;
use crate::x11::{self, WindowSizer, X11Capture, X11Injector};

/// Counters across all sessions (for `Stats`).
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Frames sent.
    pub frames_encoded: AtomicU64,
    /// Captures dropped or skipped.
    pub frames_skipped: AtomicU64,
}

/// Why a session stream failed before or while running.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The gateway broke the protocol on this stream.
    #[error("protocol violation by gateway: {0}")]
    Protocol(String),
    /// The stream or connection failed.
    #[error("stream: {0}")]
    Stream(String),
    /// The browser could not start.
    #[error("browser: {0}")]
    Browser(String),
}

impl From<ReadEnd> for SessionError {
    fn from(end: ReadEnd) -> Self {
        match end {
            ReadEnd::Wire(e) => SessionError::Protocol(e.to_string()),
            ReadEnd::Finished => SessionError::Stream("finished".into()),
            ReadEnd::Io(e) => SessionError::Stream(e),
        }
    }
}

async fn send_msg(send: &mut SendStream, msg: &AgentSessionToGateway) -> Result<(), SessionError> {
    tsuitate_transport::write(send, msg)
        .await
        .map_err(|e| SessionError::Stream(e.to_string()))
}

/// One gateway's session stream, after its `Open`.
pub struct Stream {
    send: SendStream,
    incoming: mpsc::Receiver<ReadItem<GatewayToAgentSession>>,
}

impl Stream {
    /// Answer `Ended{reason}` and close (best effort: the stream may already be gone).
    pub async fn refuse(mut self, reason: Reason) {
        let _ = send_msg(&mut self.send, &AgentSessionToGateway::Ended { reason }).await;
        let _ = self.send.finish();
    }
}

/// What a gateway's `Open` asked for.
pub struct OpenRequest {
    /// The gateway's number for the session (logs only).
    pub session_id: u64,
    /// Size for a new browser.
    pub size: (u16, u16),
    /// Drawn into every picture of a new browser.
    pub watermark: Option<Watermark>,
    /// Whose session it is.
    pub owner: SessionOwner,
    /// The agent's session to take over, if it is `owner`'s.
    pub resume: Option<u64>,
}

/// Read the stream's first message, which must be `Open` (within 10 s); anything else is
/// answered `Ended{ProtocolViolation}` and the stream closed. Never panics on gateway input.
pub async fn read_open(mut send: SendStream, recv: RecvStream) -> Option<(OpenRequest, Stream)> {
    // A bounded channel: full → stop reading → QUIC flow control pushes back on the gateway.
    let mut incoming = spawn_reader::<GatewayToAgentSession>(recv, Limits::default(), 16);
    let first = tokio::time::timeout(Duration::from_secs(10), incoming.recv()).await;
    match first {
        Ok(Some(Ok(GatewayToAgentSession::Open {
            session_id,
            width,
            height,
            watermark,
            owner,
            resume,
        }))) => Some((
            OpenRequest {
                session_id,
                size: (width, height),
                watermark,
                owner,
                resume,
            },
            Stream { send, incoming },
        )),
        other => {
            let why = match other {
                Err(_) => "no Open within 10 s".to_string(),
                Ok(Some(Err(e))) => SessionError::from(e).to_string(),
                Ok(None) => "stream closed".into(),
                Ok(Some(Ok(m))) => format!("first message must be Open, got kind {:#x}", m.kind()),
            };
            tracing::warn!(error = %why, "session stream rejected");
            let _ = send_msg(
                &mut send,
                &AgentSessionToGateway::Ended {
                    reason: Reason::ProtocolViolation,
                },
            )
            .await;
            let _ = send.finish();
            None
        }
    }
}

/// What every session needs from the agent.
pub struct SessionContext {
    /// The configuration.
    pub config: Arc<AgentConfig>,
    /// Counters across sessions.
    pub stats: Arc<AgentStats>,
    /// The sessions held, told to every gateway.
    pub registry: Arc<Registry>,
    /// Becomes true when the agent shuts down (a lingering session then ends at once).
    pub shutdown: watch::Receiver<bool>,
}

/// How one gateway stream of a session ended.
enum Outcome {
    /// The session is over: tell the gateway `Ended{reason}` when there is one.
    End(Option<Reason>),
    /// The stream or its connection failed: the browser lingers.
    Lost(String),
    /// The session's owner took it over through another stream (another gateway), asking for
    /// this watermark.
    Replaced(Stream, Option<Watermark>),
}

/// Whether a handed-over stream can take this browser: a gateway that asks for a watermark
/// never gets a browser started without one (its stream is given back, a new browser starts).
/// The new text (it names the new viewer) is drawn from the next picture on.
fn take_watermark(running: &Running, wanted: Option<Watermark>) -> bool {
    match (&running.retext, wanted) {
        (Some(retext), Some(spec)) => {
            retext.set(spec.text);
            true
        }
        (None, Some(_)) => {
            tracing::warn!("a resume asks for a watermark this browser was started without: refused, a new browser starts");
            false
        }
        (_, None) => true,
    }
}

/// Start a browser for `open` and serve it on `stream`, and on every stream handed over to
/// it, until it ends: a `Close`, the browser's end, or a linger that nobody resumes.
pub async fn serve_new(open: OpenRequest, stream: Stream, ctx: &SessionContext) {
    let span = tracing::info_span!("session", session = open.session_id);
    serve_inner(open, stream, ctx).instrument(span).await
}

async fn serve_inner(open: OpenRequest, stream: Stream, ctx: &SessionContext) {
    let config = &ctx.config;
    // Even sizes within the screen (docs/agent.md §Sizes); the gateway learns the real
    // size from Started.
    let (width, height) = clamp_size(open.size, config.browser.max_size);
    let (video_tx, mut video_rx) = mpsc::channel::<VideoFrame>(4);
    let cfg = Arc::clone(config);
    let watermark = open.watermark;
    let started = tokio::task::spawn_blocking(move || {
        start_blocking(&cfg, width, height, watermark, video_tx)
    })
    .await
    .map_err(|e| SessionError::Browser(e.to_string()))
    .and_then(|r| r);
    let mut running = match started {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "session failed");
            stream.refuse(Reason::Internal).await;
            return;
        }
    };
    let born = std::time::Instant::now();
    let (handover_tx, mut handovers) = mpsc::channel::<Handover>(1);
    let held = ctx.registry.register(open.owner, handover_tx);
    tracing::info!(held, "session held");
    let mut next = Some(stream);
    let mut resumed = false;
    // When the current linger ends (set when the stream is lost, kept across refused offers).
    let mut linger_until = None;
    // The stream to tell why the session ended, once the browser is gone.
    let last: Option<(Stream, Option<Reason>)> = loop {
        let Some(mut s) = next.take() else {
            let until = *linger_until.get_or_insert_with(|| {
                ctx.registry.set_lingering(held, true);
                tracing::info!(
                    held,
                    linger_s = config.linger.as_secs(),
                    "session lingering: its gateway stream was lost"
                );
                tokio::time::Instant::now() + config.linger
            });
            match linger(&mut running, &mut video_rx, &mut handovers, ctx, until).await {
                Some(h) => {
                    if take_watermark(&running, h.watermark) {
                        // A new picture at once, as a keyframe: the new viewer starts there.
                        running.pipeline.pause(false);
                        let _ = h.reply.send(Ok(()));
                        next = Some(h.stream);
                        resumed = true;
                    } else {
                        let _ = h.reply.send(Err(h.stream));
                    }
                    continue;
                }
                None => break None,
            }
        };
        ctx.registry.set_lingering(held, false);
        linger_until = None;
        let age = resumed.then(|| born.elapsed());
        let outcome = drive(
            &mut s,
            &mut running,
            &mut video_rx,
            &ctx.stats,
            &mut handovers,
            age,
        )
        .await;
        match outcome {
            Outcome::End(reason) => break Some((s, reason)),
            Outcome::Lost(why) => {
                tracing::warn!(error = %why, "gateway stream lost");
                let _ = s.send.finish();
                if config.linger.is_zero() || *ctx.shutdown.borrow() {
                    break None;
                }
            }
            Outcome::Replaced(other, watermark) => {
                tracing::info!(held, "session taken over through another gateway");
                s.refuse(Reason::Replaced).await;
                take_watermark(&running, watermark);
                next = Some(other);
                resumed = true;
            }
        }
    };
    // Streams offered from now on get a new browser instead, and no gateway is told any
    // more that this session can be resumed (its slot is free once the browser is gone:
    // `Capacity` says so).
    handovers.close();
    while let Ok(h) = handovers.try_recv() {
        let _ = h.reply.send(Err(h.stream));
    }
    ctx.registry.remove(held);
    let skipped = running
        .pipeline
        .stats()
        .frames_skipped
        .load(Ordering::Relaxed);
    ctx.stats
        .frames_skipped
        .fetch_add(skipped, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || {
        let Running {
            browser,
            mut pipeline,
            input,
            ..
        } = running;
        pipeline.stop();
        drop(input);
        let stopped = browser.lock().map(|mut b| b.stop());
        if let Ok(left) = stopped {
            if !left.is_empty() {
                tracing::error!(?left, "session processes left behind");
            }
        }
    })
    .await;
    // Told once the browser is gone and its directory wiped.
    if let Some((mut s, reason)) = last {
        if let Some(reason) = reason {
            tracing::info!(reason = reason.name(), "session ended");
            let _ = send_msg(&mut s.send, &AgentSessionToGateway::Ended { reason }).await;
        }
        let _ = s.send.finish();
    }
}

/// Keep the browser without a gateway until `deadline`: nothing is captured or encoded, keys
/// the viewer held are released. Returns the stream handed over to resume it, or `None` when it ends (the
/// linger ran out, the browser exited, the agent shuts down).
async fn linger(
    running: &mut Running,
    video_rx: &mut mpsc::Receiver<VideoFrame>,
    handovers: &mut mpsc::Receiver<Handover>,
    ctx: &SessionContext,
    deadline: tokio::time::Instant,
) -> Option<Handover> {
    // Never waits: a stuck injection thread must not keep the linger from ending.
    let _ = running.input.try_send(Inject::ReleaseAll);
    // Nobody watches: a lingering browser costs no capture or encoding (the page may still
    // animate); what was under way is discarded below.
    running.pipeline.pause(true);
    let mut shutdown = ctx.shutdown.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            h = handovers.recv() => return h,
            f = video_rx.recv() => if f.is_none() {
                tracing::info!("browser gone while lingering");
                return None;
            },
            _ = tokio::time::sleep_until(deadline) => {
                tracing::info!("linger over: nobody resumed the session");
                return None;
            }
            _ = shutdown.wait_for(|s| *s) => return None,
            _ = tick.tick() => {
                let gone = running.browser.lock().map_or(true, |mut b| b.memory_exceeded() || b.exited().is_some());
                if gone {
                    tracing::info!("browser gone while lingering");
                    return None;
                }
            }
        }
    }
}

/// Everything running for one session; dropped (in a blocking task) to kill and wipe it.
struct Running {
    browser: Arc<Mutex<BrowserSession>>,
    pipeline: Pipeline,
    input: mpsc::Sender<Inject>,
    windows: Arc<WindowSizer>,
    /// The session size now (even, within the screen).
    size: (u16, u16),
    /// Where its watermark's text is changed, when it has one.
    retext: Option<Retext>,
}

/// What the injection thread is told, in order.
enum Inject {
    /// Viewer input in frame coordinates.
    Events(Vec<InputEvent>),
    /// The frame size changed: clamp pointer moves to it.
    Resize(u16, u16),
    /// Release every key and button held (the gateway stream was lost mid-press).
    ReleaseAll,
}

fn start_blocking(
    config: &AgentConfig,
    width: u16,
    height: u16,
    watermark: Option<Watermark>,
    video: mpsc::Sender<VideoFrame>,
) -> Result<Running, SessionError> {
    let b = |e: &dyn std::fmt::Display| SessionError::Browser(e.to_string());
    // Checked before the browser starts: a session that must show a watermark never runs
    // without one.
    let painter = match watermark {
        Some(spec) => {
            let font = crate::watermark::font(config.watermark_font.as_deref()).ok_or_else(|| {
                SessionError::Browser(
                    "the gateway asks for a watermark and no font is installed (fonts-noto-cjk, or watermark_font)".into(),
                )
            })?;
            Some(Painter::new(spec, font))
        }
        None => None,
    };
    let browser = BrowserSession::start(&config.browser, width, height).map_err(|e| b(&e))?;
    let (width, height) = browser.size();
    let connect = || x11::connect(browser.display(), Duration::from_secs(5)).map_err(|e| b(&e));
    let mut capture = X11Capture::new(connect()?, config.capture).map_err(|e| b(&e))?;
    capture.set_size(width, height).map_err(|e| b(&e))?;
    let mut injector = X11Injector::new(connect()?, Some(capture.waker())).map_err(|e| b(&e))?;
    injector.set_size(width, height);
    let windows = WindowSizer::new(connect()?, width, height).map_err(|e| b(&e))?;
    let settings = EncoderSettings {
        width,
        height,
        fps: config.fps,
        bitrate_kbps: config.bitrate_kbps,
        screen_content: config.encoder == EncoderUsage::Screen,
    };
    let encoder: Box<dyn VideoEncoder> = match config.encoding {
        Encoding::Damage => Box::new(
            DamageEncoder::new(settings)
                .map_err(|e| b(&e))?
                .with_patch_qp(i32::from(config.patch_qp))
                .with_refine_qp(config.refine_qp.map(i32::from)),
        ),
        Encoding::Openh264 => Box::new(OpenH264Encoder::new(settings).map_err(|e| b(&e))?),
    };
    let (source, retext): (Box<dyn FrameSource>, _) = match painter {
        Some(p) => {
            let marked = Watermarked::new(Box::new(capture), p);
            let retext = marked.retext();
            (Box::new(marked), Some(retext))
        }
        None => (Box::new(capture), None),
    };
    let pipeline = Pipeline::start(source, encoder, config.fps, video).map_err(|e| b(&e))?;
    let (input, mut input_rx) = mpsc::channel::<Inject>(32);
    std::thread::Builder::new()
        .name("inject".into())
        .spawn(move || {
            while let Some(cmd) = input_rx.blocking_recv() {
                let events = match cmd {
                    Inject::Events(events) => events,
                    Inject::Resize(w, h) => {
                        injector.set_size(w, h);
                        continue;
                    }
                    Inject::ReleaseAll => {
                        let _ = injector.release_all();
                        continue;
                    }
                };
                if let Err(e) = injector.apply(&events) {
                    tracing::warn!(error = %e, "input injection stopped");
                    return;
                }
            }
            let _ = injector.release_all();
        })
        .map_err(|e| b(&e))?;
    Ok(Running {
        browser: Arc::new(Mutex::new(browser)),
        pipeline,
        input,
        windows: Arc::new(windows),
        size: (width, height),
        retext,
    })
}

/// Serve the session on one gateway stream; `resumed_at_age`: the browser was handed over, at
/// this age. A resumed session starts with a fresh keyframe: frames encoded while it lingered
/// are discarded, and so is everything before the keyframe.
async fn drive(
    stream: &mut Stream,
    running: &mut Running,
    video_rx: &mut mpsc::Receiver<VideoFrame>,
    stats: &AgentStats,
    handovers: &mut mpsc::Receiver<Handover>,
    resumed_at_age: Option<Duration>,
) -> Outcome {
    let (width, height) = running.size;
    let resumed = resumed_at_age.is_some();
    let age_s = resumed_at_age.map_or(0, |a| u32::try_from(a.as_secs()).unwrap_or(u32::MAX));
    let started = AgentSessionToGateway::Started {
        width,
        height,
        resumed,
        age_s,
    };
    if let Err(e) = send_msg(&mut stream.send, &started).await {
        return Outcome::Lost(e.to_string());
    }
    tracing::info!(width, height, resumed, "session started");
    let mut need_keyframe = false;
    if resumed {
        // Whatever the previous viewer held (its releases may have been lost with its gateway)
        // is released before the new one types.
        let _ = running.input.try_send(Inject::ReleaseAll);
        while video_rx.try_recv().is_ok() {}
        running.pipeline.request_keyframe();
        need_keyframe = true;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            frame = video_rx.recv() => match frame {
                Some(f) if need_keyframe && !f.header.keyframe => {
                    stats.frames_skipped.fetch_add(1, Ordering::Relaxed);
                }
                Some(f) => {
                    need_keyframe = false;
                    if let Err(e) = send_msg(&mut stream.send, &AgentSessionToGateway::Video(f)).await {
                        return Outcome::Lost(e.to_string());
                    }
                    stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    let exited = running.browser.lock().ok().and_then(|mut b| b.exited());
                    tracing::warn!(why = ?running.pipeline.ended(), ?exited, "capture ended");
                    return Outcome::End(Some(browser_gone(running)));
                }
            },
            msg = stream.incoming.recv() => match msg {
                Some(Ok(GatewayToAgentSession::Input(events))) => {
                    tracing::trace!(events = events.len(), "input");
                    if running.input.send(Inject::Events(events)).await.is_err() {
                        return Outcome::End(Some(browser_gone(running)));
                    }
                }
                Some(Ok(GatewayToAgentSession::KeyframeRequest)) => running.pipeline.request_keyframe(),
                Some(Ok(GatewayToAgentSession::Resize { width: w, height: h })) => {
                    if !resize(running, (w, h)).await {
                        return Outcome::End(Some(browser_gone(running)));
                    }
                }
                Some(Ok(GatewayToAgentSession::Close { reason })) => {
                    tracing::info!(reason = reason.name(), "closed by gateway");
                    return Outcome::End(None);
                }
                Some(Ok(GatewayToAgentSession::Open { .. })) => {
                    tracing::warn!("protocol violation by gateway: second Open on a session stream");
                    return Outcome::End(Some(Reason::ProtocolViolation));
                }
                Some(Err(ReadEnd::Wire(e))) => {
                    tracing::warn!(error = %e, "protocol violation by gateway");
                    return Outcome::End(Some(Reason::ProtocolViolation));
                }
                Some(Err(e)) => return Outcome::Lost(SessionError::from(e).to_string()),
                None => return Outcome::Lost("reader ended".into()),
            },
            h = handovers.recv() => if let Some(h) = h {
                if running.retext.is_none() && h.watermark.is_some() {
                    tracing::warn!("a takeover asks for a watermark this browser was started without: refused, a new browser starts");
                    let _ = h.reply.send(Err(h.stream));
                    continue;
                }
                let _ = h.reply.send(Ok(()));
                return Outcome::Replaced(h.stream, h.watermark);
            },
            _ = tick.tick() => {
                let Ok(mut b) = running.browser.lock() else {
                    return Outcome::End(Some(Reason::Internal));
                };
                // A process killed at the memory limit ends the session even when Chromium
                // survives it (a crashed tab would otherwise stay on screen).
                if b.memory_exceeded() {
                    tracing::warn!("the session's memory limit was reached (OOM kill in its cgroup)");
                    return Outcome::End(Some(Reason::MemoryExceeded));
                }
                if let Some(why) = b.exited() {
                    tracing::warn!(why, "browser exited");
                    return Outcome::End(Some(Reason::BrowserExited));
                }
            }
        }
    }
}

/// Why the browser's side of a session is gone: its memory limit (an OOM kill in its cgroup)
/// or an exit.
fn browser_gone(running: &Running) -> Reason {
    let oom = running.browser.lock().is_ok_and(|b| b.memory_exceeded());
    if oom {
        Reason::MemoryExceeded
    } else {
        Reason::BrowserExited
    }
}

/// docs/agent.md §Resize: fit the browser windows to the new size, then switch the injector,
/// the capture rectangle and the encoder (a new stream: SPS/PPS + IDR whose header carries the
/// new size, which is how the gateway learns it). `false` when the display is gone.
async fn resize(running: &mut Running, requested: (u16, u16)) -> bool {
    let max = running
        .browser
        .lock()
        .map_or(running.size, |b| b.screen_size());
    let size = clamp_size(requested, max);
    if size == running.size {
        tracing::debug!(
            requested_w = requested.0,
            requested_h = requested.1,
            "resize: size unchanged"
        );
        return true;
    }
    let windows = Arc::clone(&running.windows);
    let fitted = tokio::task::spawn_blocking(move || windows.resize(size.0, size.1)).await;
    match fitted {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "resize: display lost");
            return false;
        }
        Err(e) => {
            tracing::warn!(error = %e, "resize task failed");
            return false;
        }
    }
    if running
        .input
        .send(Inject::Resize(size.0, size.1))
        .await
        .is_err()
    {
        return false;
    }
    running.pipeline.resize(size.0, size.1);
    tracing::info!(
        requested_w = requested.0,
        requested_h = requested.1,
        width = size.0,
        height = size.1,
        "session resized"
    );
    running.size = size;
    true
}
