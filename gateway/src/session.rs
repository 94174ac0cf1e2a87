//! One session: a browser on an agent, at most one viewer attached. The session task owns the
//! agent's session stream, runs every frame through the sanitizer, re-frames it and queues it
//! for the viewer; it validates and rate-limits viewer input and re-encodes it for the agent;
//! it enforces the linger, idle and absolute timeouts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use quinn::SendStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::Instrument;
use tsuitate_protocol::{
    AgentSessionToGateway, GatewayToAgentSession, GatewayToViewer, InputEvent, NalSanitizer,
    Reason, VideoFrame, VideoHeader,
};

use crate::broker::SessionState;
use crate::error::{GatewayError, Side, Violation};
use crate::relay::input::InputPolicy;
use crate::relay::video::{FpsLimit, FrameAction, KeyframePacer, OutFrame, ViewerFlow};
use crate::session_end::{End, SessionStats};
use crate::state::{lock, now_us, State};
use crate::streams::{write_msg, write_msg_timeout};
use tsuitate_protocol::ClockEstimator;
use tsuitate_transport::{spawn_reader, ReadEnd, ReadItem};

/// What a viewer connection tells its session.
#[derive(Debug)]
pub(crate) enum SessionCommand {
    /// A viewer logged in for this session (first time or reconnect).
    Attach(ViewerSink),
    /// The viewer's connection ended.
    Detach { viewer_id: u64 },
    /// Decoded viewer input.
    Input(Vec<InputEvent>),
    /// The viewer's window changed size.
    Resize { width: u16, height: u16 },
    /// The viewer needs a keyframe.
    KeyframeRequest,
    /// End now (logout, or a viewer violation already counted by the caller).
    End { reason: Reason },
}

/// What goes to a viewer's writer task.
#[derive(Debug)]
pub(crate) enum ToViewer {
    /// A control message.
    Msg(GatewayToViewer),
    /// A sanitized frame.
    Video(OutFrame),
    /// The last message.
    Bye(Reason),
}

/// The sending side of an attached viewer.
#[derive(Debug, Clone)]
pub(crate) struct ViewerSink {
    pub id: u64,
    pub addr: SocketAddr,
    pub tx: mpsc::Sender<ToViewer>,
}

/// A session stream on which the agent answered `Started`.
pub(crate) struct Opened {
    send: SendStream,
    rx: mpsc::Receiver<ReadItem<AgentSessionToGateway>>,
    width: u16,
    height: u16,
    conn: quinn::Connection,
    clock: Arc<Mutex<ClockEstimator>>,
}

/// Open a session stream on `agent` and wait for `Started`, all within
/// `session.start_timeout_s`: an agent that never grants a stream, never reads `Open` or
/// never answers must not hold the viewer's login (and its broker slot) forever.
pub(crate) async fn open(
    state: &Arc<State>,
    session_id: u64,
    agent: &str,
    width: u16,
    height: u16,
) -> Result<Opened, GatewayError> {
    let limit = Duration::from_secs(state.cfg.session.start_timeout_s);
    match timeout(limit, open_stream(state, session_id, agent, width, height)).await {
        Ok(r) => r,
        Err(_) => Err(GatewayError::Internal(
            "agent did not start the browser in time".into(),
        )),
    }
}

async fn open_stream(
    state: &Arc<State>,
    session_id: u64,
    agent: &str,
    width: u16,
    height: u16,
) -> Result<Opened, GatewayError> {
    let link = state.hub().agents.get(agent).cloned();
    let link = link.ok_or_else(|| GatewayError::Internal("agent disconnected".into()))?;
    let (mut send, recv) = link
        .conn
        .open_bi()
        .await
        .map_err(|e| GatewayError::Connection(Side::Agent, e))?;
    let open = GatewayToAgentSession::Open {
        session_id,
        width,
        height,
    };
    write_msg(&mut send, &open, Side::Agent).await?;
    let mut rx = spawn_reader::<AgentSessionToGateway>(recv, state.limits.clone(), 4);
    let Some(first) = rx.recv().await else {
        return Err(GatewayError::Closed(Side::Agent));
    };
    match first {
        Ok(AgentSessionToGateway::Started { width, height }) => Ok(Opened {
            send,
            rx,
            width,
            height,
            conn: link.conn,
            clock: link.clock,
        }),
        Ok(AgentSessionToGateway::Ended { reason }) => Err(GatewayError::Internal(format!(
            "agent could not start a browser: {}",
            reason.name()
        ))),
        Ok(AgentSessionToGateway::Video(_)) => Err(GatewayError::Violation(
            Side::Agent,
            Violation::Unexpected("video before Started"),
        )),
        Err(ReadEnd::Wire(w)) => Err(GatewayError::Violation(Side::Agent, Violation::Wire(w))),
        Err(_) => Err(GatewayError::Closed(Side::Agent)),
    }
}

/// A running session.
pub(crate) struct Session {
    pub(crate) id: u64,
    pub(crate) user: String,
    pub(crate) agent: String,
    pub(crate) state: Arc<State>,
    pub(crate) send: SendStream,
    pub(crate) conn: quinn::Connection,
    pub(crate) viewer: Option<(ViewerSink, ViewerFlow)>,
    pub(crate) last_viewer: Option<SocketAddr>,
    pub(crate) stats: SessionStats,
    pub(crate) sanitizer: NalSanitizer,
    clock: Arc<Mutex<ClockEstimator>>,
    width: u16,
    height: u16,
    seq: u64,
    fps: FpsLimit,
    pacer: KeyframePacer,
    input: InputPolicy,
    started: Instant,
    last_input: Instant,
    linger_since: Option<Instant>,
    ever_attached: bool,
    requested_size: Option<(u16, u16)>,
}

impl Session {
    pub(crate) fn started_elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Spawn the task of a session whose browser started. Returns its command sender.
pub(crate) fn spawn(
    state: &Arc<State>,
    opened: Opened,
    id: u64,
    user: &str,
    agent: &str,
) -> mpsc::Sender<SessionCommand> {
    let (tx, rx) = mpsc::channel(16);
    // Registered before the task runs, so a session that ends at once also unregisters.
    state
        .hub()
        .sessions
        .insert(id, crate::state::SessionLink { tx: tx.clone() });
    let now = Instant::now();
    let cfg = &state.cfg;
    let session = Session {
        id,
        user: user.to_owned(),
        agent: agent.to_owned(),
        state: state.clone(),
        send: opened.send,
        conn: opened.conn,
        viewer: None,
        last_viewer: None,
        stats: SessionStats::default(),
        sanitizer: NalSanitizer::new(state.limits.clone())
            .with_policy(state.cfg.video.drop_policy.sanitizer_policy()),
        clock: opened.clock,
        width: opened.width,
        height: opened.height,
        seq: 0,
        fps: FpsLimit::new(now.into_std(), cfg.limits.max_fps),
        pacer: KeyframePacer::new(Duration::from_millis(
            cfg.session.keyframe_request_interval_ms,
        )),
        input: InputPolicy::new(now.into_std(), &cfg.input, opened.width, opened.height),
        started: now,
        last_input: now,
        linger_since: Some(now),
        ever_attached: false,
        requested_size: None,
    };
    let span = tracing::info_span!("session", session = id, user = %user, agent = %agent);
    tokio::spawn(session.run(opened.rx, rx).instrument(span));
    tx
}

impl Session {
    async fn run(
        mut self,
        mut agent_rx: mpsc::Receiver<ReadItem<AgentSessionToGateway>>,
        mut cmd_rx: mpsc::Receiver<SessionCommand>,
    ) {
        let mut shutdown = self.state.shutdown.clone();
        let end = loop {
            let deadline = self.deadline();
            let step = tokio::select! {
                m = agent_rx.recv() => self.on_agent(m).await,
                c = cmd_rx.recv() => match c {
                    Some(c) => self.on_command(c).await,
                    None => Err(End::both(Reason::Internal)),
                },
                _ = sleep_until(deadline) => self.on_deadline(),
                _ = crate::state::stopped(&mut shutdown) => Err(End::both(Reason::Shutdown)),
            };
            if let Err(end) = step {
                break end;
            }
        };
        self.finish(end).await;
    }

    fn deadline(&self) -> Instant {
        let s = &self.state.cfg.session;
        let far = Instant::now() + Duration::from_secs(3600);
        let mut d = far;
        if s.idle_timeout_s > 0 {
            d = d.min(self.last_input + Duration::from_secs(s.idle_timeout_s));
        }
        if s.absolute_timeout_s > 0 {
            d = d.min(self.started + Duration::from_secs(s.absolute_timeout_s));
        }
        if let Some(t) = self.linger_since {
            // Before the first attach the viewer is logging in: same allowance.
            d = d.min(t + Duration::from_secs(s.linger_s.max(s.login_timeout_s)));
        }
        d
    }

    fn on_deadline(&mut self) -> Result<(), End> {
        let s = &self.state.cfg.session;
        let now = Instant::now();
        if s.absolute_timeout_s > 0
            && now >= self.started + Duration::from_secs(s.absolute_timeout_s)
        {
            return Err(End::both(Reason::AbsoluteTimeout));
        }
        if s.idle_timeout_s > 0 && now >= self.last_input + Duration::from_secs(s.idle_timeout_s) {
            return Err(End::both(Reason::IdleTimeout));
        }
        if let Some(t) = self.linger_since {
            if now >= t + Duration::from_secs(s.linger_s.max(s.login_timeout_s)) {
                return Err(End::both(Reason::Normal));
            }
        }
        Ok(())
    }

    async fn on_agent(&mut self, m: Option<ReadItem<AgentSessionToGateway>>) -> Result<(), End> {
        match m {
            Some(Ok(AgentSessionToGateway::Video(frame))) => self.on_video(frame).await,
            Some(Ok(AgentSessionToGateway::Ended { reason })) => Err(End::agent_ended(reason)),
            Some(Ok(AgentSessionToGateway::Started { .. })) => Err(End::agent_violation(
                Violation::Unexpected("second Started"),
            )),
            Some(Err(ReadEnd::Wire(w))) => Err(End::agent_violation(Violation::Wire(w))),
            Some(Err(_)) | None => Err(End::agent_lost()),
        }
    }

    /// docs/gateway.md §Video: sanitize, re-frame with the gateway clock, queue or drop.
    async fn on_video(&mut self, frame: VideoFrame) -> Result<(), End> {
        let before = self.sanitizer.counters().dropped_by_type;
        let result = self.sanitizer.sanitize(&frame.header, &frame.data);
        let after = self.sanitizer.counters().dropped_by_type;
        let mut diff = [0u64; 32];
        for (d, (a, b)) in diff.iter_mut().zip(after.iter().zip(before.iter())) {
            *d = a.saturating_sub(*b);
        }
        self.state.metrics.sanitizer_drops(&diff);
        let clean = match result {
            Ok(c) => c,
            Err(e) => {
                self.state
                    .metrics
                    .sanitizer_refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(End::agent_violation(Violation::Sanitizer(e)));
            }
        };
        let h = frame.header;
        if h.keyframe {
            self.width = h.width;
            self.height = h.height;
            self.input.resize(h.width, h.height);
        }
        let now = Instant::now();
        self.seq += 1;
        let header = VideoHeader {
            sequence: self.seq,
            capture_us: lock(&self.clock).to_local(h.capture_us, now_us()),
            keyframe: h.keyframe,
            width: h.width,
            height: h.height,
        };
        let out = OutFrame::new(header, Bytes::from(clean));
        self.stats.frames_in += 1;
        if !self.fps.admit(now.into_std()) {
            self.state
                .metrics
                .frames_dropped_fps
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some((_, flow)) = self.viewer.as_mut() {
                flow.wait_for_keyframe();
            }
            return self.request_keyframe(false).await;
        }
        self.deliver(out).await
    }

    async fn deliver(&mut self, out: OutFrame) -> Result<(), End> {
        let Some((sink, flow)) = self.viewer.as_mut() else {
            return Ok(());
        };
        let m = &self.state.metrics;
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        let kf = out.keyframe;
        if flow.before(kf) == FrameAction::Drop {
            m.frames_dropped_slow_viewer.fetch_add(1, relaxed);
            self.stats.frames_dropped += 1;
            return Ok(());
        }
        let bytes = out.data.len() as u64;
        let queued = sink.tx.try_send(ToViewer::Video(out)).is_ok();
        if queued {
            m.frames_relayed.fetch_add(1, relaxed);
            m.bytes_relayed.fetch_add(bytes, relaxed);
            self.stats.frames_out += 1;
            self.stats.bytes_out += bytes;
        } else {
            m.frames_dropped_slow_viewer.fetch_add(1, relaxed);
            self.stats.frames_dropped += 1;
        }
        if flow.after(kf, queued) {
            return self.request_keyframe(false).await;
        }
        Ok(())
    }

    async fn request_keyframe(&mut self, force: bool) -> Result<(), End> {
        let allowed = self.pacer.allow(Instant::now().into_std());
        if !(allowed || force) {
            return Ok(());
        }
        self.state
            .metrics
            .keyframe_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.send_agent(&GatewayToAgentSession::KeyframeRequest)
            .await
    }

    async fn send_agent(&mut self, msg: &GatewayToAgentSession) -> Result<(), End> {
        write_msg_timeout(&mut self.send, msg, Side::Agent, Duration::from_secs(5))
            .await
            .map_err(|_| End::agent_lost())
    }

    async fn on_command(&mut self, c: SessionCommand) -> Result<(), End> {
        match c {
            SessionCommand::Attach(sink) => self.attach(sink).await,
            SessionCommand::Detach { viewer_id } => self.detach(viewer_id).await,
            SessionCommand::Input(events) => self.on_input(events).await,
            SessionCommand::Resize { width, height } => self.on_resize(width, height).await,
            SessionCommand::KeyframeRequest => self.request_keyframe(false).await,
            SessionCommand::End { reason } => Err(End::both(reason)),
        }
    }

    async fn attach(&mut self, sink: ViewerSink) -> Result<(), End> {
        if let Some((old, _)) = self.viewer.take() {
            if old.id != sink.id {
                let _ = old.tx.try_send(ToViewer::Bye(Reason::Replaced));
            }
        }
        let resumed = self.ever_attached;
        let ready = GatewayToViewer::SessionReady {
            width: self.width,
            height: self.height,
            resumed,
        };
        let _ = sink.tx.try_send(ToViewer::Msg(ready));
        self.last_viewer = Some(sink.addr);
        self.state
            .audit(serde_json::json!({"event": "viewer_attached", "session": self.id, "user": self.user, "viewer": sink.addr.to_string(), "resumed": resumed}));
        let flow = if resumed {
            ViewerFlow::waiting()
        } else {
            ViewerFlow::default()
        };
        self.viewer = Some((sink, flow));
        self.ever_attached = true;
        self.linger_since = None;
        self.state
            .hub()
            .broker
            .set_state(self.id, SessionState::Attached);
        if resumed {
            self.state
                .metrics
                .sessions_resumed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return self.request_keyframe(true).await;
        }
        Ok(())
    }

    async fn detach(&mut self, viewer_id: u64) -> Result<(), End> {
        if self.viewer.as_ref().is_none_or(|(v, _)| v.id != viewer_id) {
            return Ok(());
        }
        self.viewer = None;
        let now = Instant::now();
        self.linger_since = Some(now);
        self.state
            .hub()
            .broker
            .set_state(self.id, SessionState::Lingering(now.into_std()));
        self.state.audit(
            serde_json::json!({"event": "viewer_detached", "session": self.id, "user": self.user}),
        );
        let held = self.input.release_all();
        if held.is_empty() {
            return Ok(());
        }
        self.send_agent(&GatewayToAgentSession::Input(held)).await
    }

    /// A resize costs one input event and is paced to `RESIZES_PER_S` (so a flood is
    /// throttled and cut off like any other, and cannot make the agent host refit windows
    /// and restart encoders hundreds of times a second); it is forwarded only when the size
    /// differs from the last one asked for.
    async fn on_resize(&mut self, width: u16, height: u16) -> Result<(), End> {
        let now = Instant::now().into_std();
        if !self
            .input
            .admit_control(now)
            .map_err(End::viewer_violation)?
        {
            return Ok(());
        }
        if self.requested_size == Some((width, height)) {
            return Ok(());
        }
        self.requested_size = Some((width, height));
        self.send_agent(&GatewayToAgentSession::Resize { width, height })
            .await
    }

    async fn on_input(&mut self, events: Vec<InputEvent>) -> Result<(), End> {
        let now = Instant::now();
        self.last_input = now;
        let f = self
            .input
            .filter(now.into_std(), events)
            .map_err(End::viewer_violation)?;
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        self.state
            .metrics
            .input_dropped
            .fetch_add(u64::from(f.dropped), relaxed);
        self.state
            .metrics
            .input_events
            .fetch_add(f.events.len() as u64, relaxed);
        self.stats.input_events += f.events.len() as u64;
        self.stats.input_dropped += u64::from(f.dropped);
        if f.events.is_empty() {
            return Ok(());
        }
        // Rebuilt, never passed through: a new message from the validated events.
        self.send_agent(&GatewayToAgentSession::Input(f.events))
            .await
    }
}
