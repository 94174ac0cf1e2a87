//! One session stream opened by the gateway: `Open` → start the browser → `Started` → video;
//! apply `Input`, `KeyframeRequest`, `Resize`, `Close`; `Ended` when the browser or display
//! dies. Anything malformed from the gateway ends the session with a clear error, never a
//! panic (docs/protocol.md §5.2).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::{RecvStream, SendStream};
use tokio::sync::mpsc;
use tracing::Instrument;
use tsuitate_protocol::{
    AgentSessionToGateway, GatewayToAgentSession, InputEvent, Limits, Message, Reason, VideoFrame,
    Watermark,
};
use tsuitate_transport::{spawn_reader, ReadEnd, ReadItem};

use crate::browser::BrowserSession;
use crate::config::{AgentConfig, EncoderUsage};
use crate::encode::{EncoderSettings, OpenH264Encoder};
use crate::frame::FrameSource;
use crate::pipeline::Pipeline;
use crate::size::clamp_size;
use crate::watermark::{Painter, Watermarked};
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

/// Serve one session stream to its end. Never panics on gateway input.
pub async fn serve(
    mut send: SendStream,
    recv: RecvStream,
    config: Arc<AgentConfig>,
    stats: Arc<AgentStats>,
) {
    // A bounded channel: full → stop reading → QUIC flow control pushes back on the gateway.
    let mut incoming = spawn_reader::<GatewayToAgentSession>(recv, Limits::default(), 16);
    let first = tokio::time::timeout(Duration::from_secs(10), incoming.recv()).await;
    let (session_id, width, height, watermark) = match first {
        Ok(Some(Ok(GatewayToAgentSession::Open {
            session_id,
            width,
            height,
            watermark,
        }))) => (session_id, width, height, watermark),
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
            return;
        }
    };
    let span = tracing::info_span!("session", session = session_id);
    async move {
        let size = (width, height);
        let reason = match run(&mut send, &mut incoming, &config, &stats, size, watermark).await {
            Ok(reason) => reason,
            Err(e) => {
                tracing::warn!(error = %e, "session failed");
                match e {
                    SessionError::Protocol(_) => Some(Reason::ProtocolViolation),
                    SessionError::Browser(_) => Some(Reason::Internal),
                    SessionError::Stream(_) => None,
                }
            }
        };
        if let Some(reason) = reason {
            tracing::info!(reason = reason.name(), "session ended");
            let _ = send_msg(&mut send, &AgentSessionToGateway::Ended { reason }).await;
        }
        let _ = send.finish();
    }
    .instrument(span)
    .await
}

/// Everything running for one session; dropped (in a blocking task) to kill and wipe it.
struct Running {
    browser: Arc<Mutex<BrowserSession>>,
    pipeline: Pipeline,
    input: mpsc::Sender<Inject>,
    windows: Arc<WindowSizer>,
    /// The session size now (even, within the screen).
    size: (u16, u16),
}

/// What the injection thread is told, in order.
enum Inject {
    /// Viewer input in frame coordinates.
    Events(Vec<InputEvent>),
    /// The frame size changed: clamp pointer moves to it.
    Resize(u16, u16),
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
    let encoder = OpenH264Encoder::new(EncoderSettings {
        width,
        height,
        fps: config.fps,
        bitrate_kbps: config.bitrate_kbps,
        screen_content: config.encoder == EncoderUsage::Screen,
    })
    .map_err(|e| b(&e))?;
    let source: Box<dyn FrameSource> = match painter {
        Some(p) => Box::new(Watermarked::new(Box::new(capture), p)),
        None => Box::new(capture),
    };
    let pipeline =
        Pipeline::start(source, Box::new(encoder), config.fps, video).map_err(|e| b(&e))?;
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
    })
}

async fn run(
    send: &mut SendStream,
    incoming: &mut mpsc::Receiver<ReadItem<GatewayToAgentSession>>,
    config: &Arc<AgentConfig>,
    stats: &AgentStats,
    (width, height): (u16, u16),
    watermark: Option<Watermark>,
) -> Result<Option<Reason>, SessionError> {
    // Even sizes within the screen (docs/agent.md §Sizes); the gateway learns the real
    // size from Started.
    let (width, height) = clamp_size((width, height), config.browser.max_size);
    let (video_tx, mut video_rx) = mpsc::channel::<VideoFrame>(4);
    let cfg = Arc::clone(config);
    let mut running = tokio::task::spawn_blocking(move || {
        start_blocking(&cfg, width, height, watermark, video_tx)
    })
    .await
    .map_err(|e| SessionError::Browser(e.to_string()))??;
    let result = drive(send, incoming, &mut running, &mut video_rx, stats).await;
    let skipped = running
        .pipeline
        .stats()
        .frames_skipped
        .load(Ordering::Relaxed);
    stats.frames_skipped.fetch_add(skipped, Ordering::Relaxed);
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
    result
}

async fn drive(
    send: &mut SendStream,
    incoming: &mut mpsc::Receiver<ReadItem<GatewayToAgentSession>>,
    running: &mut Running,
    video_rx: &mut mpsc::Receiver<VideoFrame>,
    stats: &AgentStats,
) -> Result<Option<Reason>, SessionError> {
    let (width, height) = running.size;
    send_msg(send, &AgentSessionToGateway::Started { width, height }).await?;
    tracing::info!(width, height, "session started");
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            frame = video_rx.recv() => match frame {
                Some(f) => {
                    send_msg(send, &AgentSessionToGateway::Video(f)).await?;
                    stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    let exited = running.browser.lock().ok().and_then(|mut b| b.exited());
                    tracing::warn!(why = ?running.pipeline.ended(), ?exited, "capture ended");
                    return Ok(Some(browser_gone(running)));
                }
            },
            msg = incoming.recv() => match msg {
                Some(Ok(GatewayToAgentSession::Input(events))) => {
                    tracing::trace!(events = events.len(), "input");
                    if running.input.send(Inject::Events(events)).await.is_err() {
                        return Ok(Some(browser_gone(running)));
                    }
                }
                Some(Ok(GatewayToAgentSession::KeyframeRequest)) => running.pipeline.request_keyframe(),
                Some(Ok(GatewayToAgentSession::Resize { width: w, height: h })) => {
                    if !resize(running, (w, h)).await {
                        return Ok(Some(browser_gone(running)));
                    }
                }
                Some(Ok(GatewayToAgentSession::Close { reason })) => {
                    tracing::info!(reason = reason.name(), "closed by gateway");
                    return Ok(None);
                }
                Some(Ok(GatewayToAgentSession::Open { .. })) => {
                    return Err(SessionError::Protocol("second Open on a session stream".into()));
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Err(SessionError::Stream("reader ended".into())),
            },
            _ = tick.tick() => {
                let Ok(mut b) = running.browser.lock() else {
                    return Ok(Some(Reason::Internal));
                };
                // A process killed at the memory limit ends the session even when Chromium
                // survives it (a crashed tab would otherwise stay on screen).
                if b.memory_exceeded() {
                    tracing::warn!("the session's memory limit was reached (OOM kill in its cgroup)");
                    return Ok(Some(Reason::MemoryExceeded));
                }
                if let Some(why) = b.exited() {
                    tracing::warn!(why, "browser exited");
                    return Ok(Some(Reason::BrowserExited));
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
