//! One session as a sans-IO state machine, in quinn-proto's shape: the driver
//! ([`super`]) feeds it what arrived — `handle_agent(now, …)`, `handle_command(now, …)` — and
//! the time — `poll_timeout()`, `handle_timeout(now)` — and carries out what it asks for:
//! `poll_agent()` (messages for the agent's session stream) and `poll_event()` (audit records
//! and broker state). It never reads a clock, never awaits and never touches a socket, so
//! every rule here is tested with injected time.
//!
//! What it does: every frame through the sanitizer, re-stamped and re-framed, queued for the
//! viewer or dropped (docs/protocol.md §3); viewer input validated, rate-limited and rebuilt
//! for the agent (§4); the linger, idle and absolute timeouts (docs/gateway.md).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tsuitate_protocol::{
    AgentSessionToGateway, ClockEstimator, GatewayToAgentSession, GatewayToViewer, InputEvent,
    Limits, NalSanitizer, Reason, TimeoutKind, VideoFrame, VideoHeader,
};

use crate::broker::SessionState;
use crate::config::Config;
use crate::error::{Side, Violation};
use crate::metrics::Metrics;
use crate::relay::input::InputPolicy;
use crate::relay::video::{FpsLimit, FrameAction, KeyframePacer, OutFrame, ViewerFlow};
use crate::state::{lock, SessionCommand, SessionView, ToViewer, ViewerCommand, ViewerSink};

/// How far before its arrival a frame's capture time may lie (docs/protocol.md §3.2).
pub const CAPTURE_WINDOW_US: u64 = 10_000_000;

/// Microseconds as milliseconds (one decimal).
fn ms(us: u32) -> f64 {
    (f64::from(us) / 100.0).round() / 10.0
}

/// Per-session counters for the audit record.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionStats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub frames_dropped: u64,
    pub bytes_out: u64,
    pub input_events: u64,
    pub input_dropped: u64,
    /// The viewer's latency reports: how many, the last (p50, p95) and the worst p95 (µs).
    pub latency_reports: u64,
    pub latency_last_us: Option<(u32, u32)>,
    pub latency_worst_p95_us: u32,
}

/// The end of a session.
#[derive(Debug)]
pub(crate) struct End {
    /// `Close` reason for the agent's session stream; `None` when the agent ended it.
    pub to_agent: Option<Reason>,
    /// `Bye` reason for the viewer.
    pub to_viewer: Reason,
    /// A violation that caused the end, and who committed it.
    pub violation: Option<(Side, Violation)>,
}

impl End {
    pub fn both(reason: Reason) -> End {
        End {
            to_agent: Some(reason),
            to_viewer: reason,
            violation: None,
        }
    }
    pub fn agent_ended(reason: Reason) -> End {
        End {
            to_agent: None,
            to_viewer: reason,
            violation: None,
        }
    }
    /// The gateway stops: the viewer is told, the agent is not asked to close the browser
    /// (its stream just ends, and the browser lingers there for a resume through another
    /// gateway or this one restarted).
    pub fn gateway_shutdown() -> End {
        End {
            to_agent: None,
            to_viewer: Reason::Shutdown,
            violation: None,
        }
    }
    pub fn agent_lost() -> End {
        End {
            to_agent: None,
            to_viewer: Reason::AgentLost,
            violation: None,
        }
    }
    /// The agent broke the protocol: its connection is closed; the viewer did nothing wrong.
    pub fn agent_violation(v: Violation) -> End {
        End {
            to_agent: None,
            to_viewer: Reason::AgentLost,
            violation: Some((Side::Agent, v)),
        }
    }
    /// The viewer broke the protocol or a rate limit.
    pub fn viewer_violation(v: Violation) -> End {
        let r = v.reason();
        End {
            to_agent: Some(r),
            to_viewer: r,
            violation: Some((Side::Viewer, v)),
        }
    }
}

/// Something for the driver to record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// An audit record.
    Audit(Value),
    /// The broker's view of the session changed.
    State(SessionState),
}

/// The session's timeouts (docs/gateway.md `[session]`), `None` = never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// No input for this long ends the session (`IdleTimeout`).
    pub idle: Option<Duration>,
    /// The longest a session lives (`AbsoluteTimeout`).
    pub absolute: Option<Duration>,
    /// How long a session without a viewer waits (before the first attach: the login
    /// allowance, whichever is longer).
    pub linger: Duration,
    /// How long before the idle or absolute timeout the viewer is warned.
    pub warning: Option<Duration>,
}

impl Timeouts {
    pub fn from_config(cfg: &Config) -> Timeouts {
        let s = &cfg.session;
        Timeouts {
            idle: s.idle_timeout,
            absolute: s.absolute_timeout,
            linger: s.linger.max(s.login_timeout),
            warning: s.timeout_warning,
        }
    }
}

/// A session whose browser started.
pub(crate) struct SessionCore {
    pub id: u64,
    pub user: String,
    pub agent: String,
    metrics: Arc<Metrics>,
    timeouts: Timeouts,
    viewer: Option<(ViewerSink, ViewerFlow)>,
    last_viewer: Option<SocketAddr>,
    stats: SessionStats,
    sanitizer: NalSanitizer,
    clock: Arc<Mutex<ClockEstimator>>,
    width: u16,
    height: u16,
    seq: u64,
    fps: FpsLimit,
    pacer: KeyframePacer,
    input: InputPolicy,
    started: Instant,
    last_input: Instant,
    /// The idle period (its `last_input`) whose warning was given.
    idle_warned_for: Option<Instant>,
    /// Whether the absolute-timeout warning was given.
    absolute_warned: bool,
    linger_since: Option<Instant>,
    ever_attached: bool,
    /// The agent handed this session over and no viewer has attached yet.
    resumed_on_agent: bool,
    requested_size: Option<(u16, u16)>,
    to_agent: VecDeque<GatewayToAgentSession>,
    events: VecDeque<Event>,
}

/// Who the session is and what it started with.
pub(crate) struct SessionInit<'a> {
    pub id: u64,
    pub user: &'a str,
    pub agent: &'a str,
    /// The size the agent's browser started at.
    pub width: u16,
    pub height: u16,
    /// The agent handed over a browser it held: the first viewer resumes it (from a
    /// keyframe, told `resumed`).
    pub resumed: bool,
    /// How long that browser has run: the absolute timeout counts from its start.
    pub age: Duration,
    /// The agent's clock offset (shared with its control stream's pings).
    pub clock: Arc<Mutex<ClockEstimator>>,
}

impl SessionCore {
    pub fn new(
        now: Instant,
        init: SessionInit<'_>,
        cfg: &Config,
        limits: &Limits,
        metrics: Arc<Metrics>,
    ) -> SessionCore {
        SessionCore {
            id: init.id,
            user: init.user.to_owned(),
            agent: init.agent.to_owned(),
            metrics,
            timeouts: {
                // A browser resumed from an agent has what is left of its absolute limit.
                let mut t = Timeouts::from_config(cfg);
                t.absolute = t.absolute.map(|a| a.saturating_sub(init.age));
                t
            },
            viewer: None,
            last_viewer: None,
            stats: SessionStats::default(),
            sanitizer: NalSanitizer::new(limits.clone())
                .with_policy(cfg.video.drop_policy.sanitizer_policy()),
            clock: init.clock,
            width: init.width,
            height: init.height,
            seq: 0,
            fps: FpsLimit::new(now, cfg.limits.max_fps),
            pacer: KeyframePacer::new(cfg.session.keyframe_request_interval),
            input: InputPolicy::new(now, &cfg.input, init.width, init.height),
            started: now,
            last_input: now,
            idle_warned_for: None,
            absolute_warned: false,
            linger_since: Some(now),
            ever_attached: init.resumed,
            resumed_on_agent: init.resumed,
            requested_size: None,
            to_agent: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The next message for the agent's session stream, in order.
    pub fn poll_agent(&mut self) -> Option<GatewayToAgentSession> {
        self.to_agent.pop_front()
    }

    /// The next audit record or broker change, in order.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The address of the last viewer that attached.
    pub fn last_viewer(&self) -> Option<SocketAddr> {
        self.last_viewer
    }

    /// The attached viewer's sink (to tell it goodbye).
    pub fn take_viewer(&mut self) -> Option<ViewerSink> {
        self.viewer.take().map(|(sink, _)| sink)
    }

    /// When the warning before a `timeout` from `since` is due: `warning` ahead, at most half
    /// the timeout (so short timeouts warn too).
    fn warn_at(&self, since: Instant, timeout: Option<Duration>) -> Option<Instant> {
        let (d, w) = (timeout?, self.timeouts.warning?);
        Some(since + d - w.min(d / 2))
    }

    /// When the idle warning is due, unless it was given for the current idle period.
    fn idle_warn_at(&self) -> Option<Instant> {
        (self.idle_warned_for != Some(self.last_input))
            .then(|| self.warn_at(self.last_input, self.timeouts.idle))
            .flatten()
    }

    /// When the absolute-timeout warning is due, unless it was given.
    fn absolute_warn_at(&self) -> Option<Instant> {
        (!self.absolute_warned)
            .then(|| self.warn_at(self.started, self.timeouts.absolute))
            .flatten()
    }

    /// When [`Self::handle_timeout`] must next be called; `None`: no timeout is running.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = &self.timeouts;
        [
            t.idle.map(|d| self.last_input + d),
            t.absolute.map(|d| self.started + d),
            self.linger_since.map(|since| since + t.linger),
            self.idle_warn_at(),
            self.absolute_warn_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Tell the attached viewer that a timeout ends the session at `at`.
    fn warn(&mut self, now: Instant, kind: TimeoutKind, at: Instant) {
        let seconds =
            u32::try_from(at.saturating_duration_since(now).as_secs()).unwrap_or(u32::MAX);
        if let Some((sink, _)) = &self.viewer {
            let _ = sink
                .tx
                .try_send(ToViewer::Msg(GatewayToViewer::TimeoutWarning {
                    kind,
                    seconds,
                }));
        }
        self.events.push_back(Event::Audit(json!({
            "event": "timeout_warning",
            "session": self.id,
            "user": self.user,
            "kind": kind.name(),
            "seconds": seconds,
        })));
    }

    /// The time has come (or passed): end the session if a timeout expired. The absolute
    /// timeout wins over idle, idle over linger.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), End> {
        let t = self.timeouts;
        if t.absolute.is_some_and(|d| now >= self.started + d) {
            return Err(End::both(Reason::AbsoluteTimeout));
        }
        if t.idle.is_some_and(|d| now >= self.last_input + d) {
            return Err(End::both(Reason::IdleTimeout));
        }
        if self
            .linger_since
            .is_some_and(|since| now >= since + t.linger)
        {
            return Err(End::both(Reason::Normal));
        }
        if self.absolute_warn_at().is_some_and(|w| now >= w) {
            self.absolute_warned = true;
            if let Some(d) = t.absolute {
                self.warn(now, TimeoutKind::Absolute, self.started + d);
            }
        }
        if self.idle_warn_at().is_some_and(|w| now >= w) {
            self.idle_warned_for = Some(self.last_input);
            if let Some(d) = t.idle {
                self.warn(now, TimeoutKind::Idle, self.last_input + d);
            }
        }
        Ok(())
    }

    /// A message from the agent's session stream. `unix_us` is the gateway's wall clock, for
    /// re-stamping capture times (docs/protocol.md §3.2).
    pub fn handle_agent(
        &mut self,
        now: Instant,
        unix_us: u64,
        msg: AgentSessionToGateway,
    ) -> Result<(), End> {
        match msg {
            AgentSessionToGateway::Video(frame) => self.on_video(now, unix_us, frame),
            AgentSessionToGateway::Ended { reason } => Err(End::agent_ended(reason)),
            AgentSessionToGateway::Started { .. } => Err(End::agent_violation(
                Violation::Unexpected("second Started"),
            )),
        }
    }

    /// A command from a viewer connection.
    pub fn handle_command(&mut self, now: Instant, c: SessionCommand) -> Result<(), End> {
        match c {
            SessionCommand::Attach(sink) => self.attach(now, sink),
            SessionCommand::Detach { viewer_id } => self.detach(now, viewer_id),
            SessionCommand::Viewer { viewer_id, cmd } => {
                if self.viewer.as_ref().is_none_or(|(v, _)| v.id != viewer_id) {
                    // A replaced (or detached) viewer: it no longer speaks for the session.
                    self.metrics.stale_viewer_commands.fetch_add(1, Relaxed);
                    return Ok(());
                }
                self.on_viewer(now, cmd)
            }
            SessionCommand::End { reason } => Err(End::both(reason)),
        }
    }

    fn on_viewer(&mut self, now: Instant, cmd: ViewerCommand) -> Result<(), End> {
        match cmd {
            ViewerCommand::Input(events) => self.on_input(now, events),
            ViewerCommand::Resize { width, height } => self.on_resize(now, width, height),
            ViewerCommand::KeyframeRequest => {
                self.request_keyframe(now, false);
                Ok(())
            }
            ViewerCommand::Latency { p50_us, p95_us } => {
                let s = &mut self.stats;
                s.latency_reports += 1;
                s.latency_last_us = Some((p50_us, p95_us));
                s.latency_worst_p95_us = s.latency_worst_p95_us.max(p95_us);
                Ok(())
            }
            ViewerCommand::End { reason } => Err(End::both(reason)),
        }
    }

    /// docs/protocol.md §3.3: sanitize; §3.2: re-stamp; then queue or drop for the viewer.
    fn on_video(&mut self, now: Instant, unix_us: u64, frame: VideoFrame) -> Result<(), End> {
        let before = self.sanitizer.counters().dropped_by_type;
        let result = self.sanitizer.sanitize(&frame.header, &frame.data);
        let after = self.sanitizer.counters().dropped_by_type;
        let mut diff = [0u64; 32];
        for (d, (a, b)) in diff.iter_mut().zip(after.iter().zip(before.iter())) {
            *d = a.saturating_sub(*b);
        }
        self.metrics.sanitizer_drops(&diff);
        let clean = match result {
            Ok(c) => c,
            Err(e) => {
                self.metrics.sanitizer_refused.fetch_add(1, Relaxed);
                return Err(End::agent_violation(Violation::Sanitizer(e)));
            }
        };
        let h = frame.header;
        if h.keyframe {
            self.width = h.width;
            self.height = h.height;
            self.input.resize(h.width, h.height);
        }
        self.seq += 1;
        // docs/protocol.md §3.2: capture times cross in the gateway's clock, and within
        // CAPTURE_WINDOW_US before the frame arrived (it is a number from the Internet zone
        // that reaches LGWAN: it can say nothing but "how old").
        let local = lock(&self.clock).to_local(h.capture_us, unix_us);
        let header = VideoHeader {
            sequence: self.seq,
            capture_us: local.clamp(unix_us.saturating_sub(CAPTURE_WINDOW_US), unix_us),
            keyframe: h.keyframe,
            width: h.width,
            height: h.height,
        };
        let out = OutFrame::new(header, Bytes::from(clean));
        self.stats.frames_in += 1;
        if !self.fps.admit(now) {
            self.metrics.frames_dropped_fps.fetch_add(1, Relaxed);
            if let Some((_, flow)) = self.viewer.as_mut() {
                flow.wait_for_keyframe();
            }
            self.request_keyframe(now, false);
            return Ok(());
        }
        self.deliver(now, out);
        Ok(())
    }

    /// Queue a frame for the viewer without waiting: a full queue drops until the next
    /// keyframe (docs/protocol.md, drop policy).
    fn deliver(&mut self, now: Instant, out: OutFrame) {
        let Some((sink, flow)) = self.viewer.as_mut() else {
            return;
        };
        let m = &self.metrics;
        let kf = out.keyframe;
        if flow.before(kf) == FrameAction::Drop {
            m.frames_dropped_slow_viewer.fetch_add(1, Relaxed);
            self.stats.frames_dropped += 1;
            return;
        }
        let bytes = out.data.len() as u64;
        let queued = sink.tx.try_send(ToViewer::Video(out)).is_ok();
        if queued {
            m.frames_relayed.fetch_add(1, Relaxed);
            m.bytes_relayed.fetch_add(bytes, Relaxed);
            self.stats.frames_out += 1;
            self.stats.bytes_out += bytes;
        } else {
            m.frames_dropped_slow_viewer.fetch_add(1, Relaxed);
            self.stats.frames_dropped += 1;
        }
        if flow.after(kf, queued) {
            self.request_keyframe(now, false);
        }
    }

    /// Ask the agent for a keyframe, paced (`force` skips the pacing).
    fn request_keyframe(&mut self, now: Instant, force: bool) {
        if !(self.pacer.allow(now) || force) {
            return;
        }
        self.metrics.keyframe_requests.fetch_add(1, Relaxed);
        self.to_agent
            .push_back(GatewayToAgentSession::KeyframeRequest);
    }

    fn attach(&mut self, now: Instant, sink: ViewerSink) -> Result<(), End> {
        if let Some((old, _)) = self.viewer.take() {
            if old.id != sink.id {
                let _ = old.tx.try_send(ToViewer::Bye(Reason::Replaced));
                old.replaced.notify_one();
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
        self.events.push_back(Event::Audit(json!({
            "event": "viewer_attached",
            "session": self.id,
            "user": self.user,
            "viewer": sink.addr.to_string(),
            "resumed": resumed,
        })));
        let flow = if resumed {
            ViewerFlow::waiting()
        } else {
            ViewerFlow::default()
        };
        self.viewer = Some((sink, flow));
        self.ever_attached = true;
        self.linger_since = None;
        self.events.push_back(Event::State(SessionState::Attached));
        if resumed {
            // A browser taken over from an agent is counted once, when it is placed
            // (`sessions_resumed_on_agent`), not again at its first viewer.
            if !std::mem::take(&mut self.resumed_on_agent) {
                self.metrics.sessions_resumed.fetch_add(1, Relaxed);
            }
            self.request_keyframe(now, true);
        }
        Ok(())
    }

    fn detach(&mut self, now: Instant, viewer_id: u64) -> Result<(), End> {
        if self.viewer.as_ref().is_none_or(|(v, _)| v.id != viewer_id) {
            return Ok(());
        }
        self.viewer = None;
        self.linger_since = Some(now);
        self.events
            .push_back(Event::State(SessionState::Lingering(now)));
        self.events.push_back(Event::Audit(
            json!({"event": "viewer_detached", "session": self.id, "user": self.user}),
        ));
        // Keys and buttons the viewer held are released, so the browser is not left with a
        // key down.
        let held = self.input.release_all();
        if !held.is_empty() {
            self.to_agent.push_back(GatewayToAgentSession::Input(held));
        }
        Ok(())
    }

    /// A resize costs one input event and is paced to `RESIZES_PER_S` (so a flood is
    /// throttled and cut off like any other, and cannot make the agent host refit windows
    /// and restart encoders hundreds of times a second); it is forwarded only when the size
    /// differs from the last one asked for.
    fn on_resize(&mut self, now: Instant, width: u16, height: u16) -> Result<(), End> {
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
        self.to_agent
            .push_back(GatewayToAgentSession::Resize { width, height });
        Ok(())
    }

    /// docs/protocol.md §4: validate, rate-limit, rebuild.
    fn on_input(&mut self, now: Instant, events: Vec<InputEvent>) -> Result<(), End> {
        self.last_input = now;
        let f = self
            .input
            .filter(now, events)
            .map_err(End::viewer_violation)?;
        self.metrics
            .input_dropped
            .fetch_add(u64::from(f.dropped), Relaxed);
        self.metrics
            .input_events
            .fetch_add(f.events.len() as u64, Relaxed);
        self.stats.input_events += f.events.len() as u64;
        self.stats.input_dropped += u64::from(f.dropped);
        if !f.events.is_empty() {
            // Rebuilt, never passed through: a new message from the validated events.
            self.to_agent
                .push_back(GatewayToAgentSession::Input(f.events));
        }
        Ok(())
    }

    /// Under `drop_policy = "drop"`, the record of what the sanitizer dropped from this
    /// session's agent (a `policy_violation` with counts by NAL type), if it dropped anything.
    pub fn dropped_record(&self) -> Option<Value> {
        let c = self.sanitizer.counters();
        (c.dropped_total() > 0).then(|| {
            json!({
                "event": "policy_violation",
                "side": "agent",
                "who": self.agent,
                "session": self.id,
                "code": "nal_dropped",
                "detail": "NAL units outside the allow-list were dropped (drop_policy = \"drop\")",
                "dropped_by_nal_type": drops_by_type(&c.dropped_by_type),
            })
        })
    }

    /// The session-end audit record.
    pub fn end_record(&self, now: Instant, end: &End) -> Value {
        let c = self.sanitizer.counters();
        let s = &self.stats;
        json!({
            "event": "session_end",
            "session": self.id,
            "user": self.user,
            "agent": self.agent,
            "viewer": self.last_viewer.map(|a| a.to_string()),
            "reason": end.to_viewer.name(),
            "duration_s": now.saturating_duration_since(self.started).as_secs(),
            "frames_in": s.frames_in,
            "frames": s.frames_out,
            "frames_dropped": s.frames_dropped,
            "bytes": s.bytes_out,
            "input_events": s.input_events,
            "input_dropped": s.input_dropped,
            "sanitizer_dropped_by_nal_type": drops_by_type(&c.dropped_by_type),
            "sanitizer_refused": c.frames_refused,
            "latency_reports": s.latency_reports,
            "latency_p50_ms": s.latency_last_us.map(|(p, _)| ms(p)),
            "latency_p95_ms": s.latency_last_us.map(|(_, p)| ms(p)),
            "latency_worst_p95_ms": (s.latency_reports > 0).then(|| ms(s.latency_worst_p95_us)),
        })
    }

    /// What the admin API shows of this session now.
    pub fn view(&self, now: Instant) -> SessionView {
        SessionView {
            viewer: self.viewer.as_ref().map(|(sink, _)| sink.addr),
            frames: self.stats.frames_out,
            bytes: self.stats.bytes_out,
            idle_s: now.saturating_duration_since(self.last_input).as_secs(),
            latency_p50_ms: self.stats.latency_last_us.map(|(p, _)| ms(p)),
            latency_p95_ms: self.stats.latency_last_us.map(|(_, p)| ms(p)),
        }
    }

    /// Every queued event (tests).
    #[cfg(test)]
    fn poll_event_all(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.poll_event()).collect()
    }

    /// Frames sent to viewers so far.
    pub fn frames_out(&self) -> u64 {
        self.stats.frames_out
    }
}

fn drops_by_type(by_type: &[u64; 32]) -> Value {
    let mut m = Map::new();
    for (ty, n) in by_type.iter().enumerate() {
        if *n > 0 {
            m.insert(ty.to_string(), Value::from(*n));
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    //! The session's rules with injected time: no sleeps, every instant chosen by the test.
    use super::*;
    use crate::config::TlsConfig;
    use tokio::sync::mpsc;
    use tsuitate_protocol::{Button, VideoHeader};

    fn config(idle_s: u64, absolute_s: u64, linger_s: u64) -> Config {
        let tls = TlsConfig {
            ca: "ca.pem".into(),
            cert: "gateway.pem".into(),
            key: "gateway-key.pem".into(),
            revoked: None,
        };
        let mut cfg = Config::with_files(tls, "users.toml".into(), "audit.jsonl".into());
        let never_if_0 = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        cfg.session.idle_timeout = never_if_0(idle_s);
        cfg.session.absolute_timeout = never_if_0(absolute_s);
        cfg.session.linger = Duration::from_secs(linger_s);
        cfg.session.login_timeout = Duration::from_secs(10);
        // The timeout tests below look at the ends; the warnings have their own test.
        cfg.session.timeout_warning = None;
        cfg
    }

    /// The timeout warnings queued for a viewer so far.
    fn warnings(rx: &mut mpsc::Receiver<ToViewer>) -> Vec<(TimeoutKind, u32)> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            if let ToViewer::Msg(GatewayToViewer::TimeoutWarning { kind, seconds }) = m {
                out.push((kind, seconds));
            }
        }
        out
    }

    #[test]
    fn viewers_are_warned_before_a_timeout_once_per_idle_period() {
        let t0 = Instant::now();
        let mut cfg = config(600, 0, 30);
        cfg.session.timeout_warning = Some(300 * S);
        let mut c = core(t0, &cfg);
        let (v, mut rx) = sink(1);
        c.handle_command(t0, SessionCommand::Attach(v)).unwrap();
        assert_eq!(
            c.poll_timeout(),
            Some(t0 + 300 * S),
            "the warning is due first"
        );
        assert!(c.handle_timeout(t0 + 300 * S).is_ok());
        assert_eq!(warnings(&mut rx), [(TimeoutKind::Idle, 300)]);
        assert_eq!(
            c.poll_timeout(),
            Some(t0 + 600 * S),
            "then the end, warned once"
        );
        assert!(c.handle_timeout(t0 + 450 * S).is_ok());
        assert_eq!(warnings(&mut rx), []);
        // Input starts a new idle period, which is warned about again.
        click(t0 + 500 * S, &mut c);
        assert_eq!(c.poll_timeout(), Some(t0 + 800 * S));
        assert!(c.handle_timeout(t0 + 801 * S).is_ok());
        assert_eq!(warnings(&mut rx), [(TimeoutKind::Idle, 299)]);
        assert!(c
            .poll_event_all()
            .iter()
            .any(|e| matches!(e, Event::Audit(r) if r["event"] == "timeout_warning")));

        // The absolute limit: warned at most half its length ahead (120 s → at 60 s).
        let mut cfg = config(0, 120, 30);
        cfg.session.timeout_warning = Some(300 * S);
        let mut c = core(t0, &cfg);
        let (v, mut rx) = sink(1);
        c.handle_command(t0, SessionCommand::Attach(v)).unwrap();
        assert_eq!(c.poll_timeout(), Some(t0 + 60 * S));
        assert!(c.handle_timeout(t0 + 60 * S).is_ok());
        assert_eq!(warnings(&mut rx), [(TimeoutKind::Absolute, 60)]);
        assert_eq!(c.poll_timeout(), Some(t0 + 120 * S));
    }

    fn core(t0: Instant, cfg: &Config) -> SessionCore {
        core_resumed(t0, cfg, false)
    }

    fn core_resumed(t0: Instant, cfg: &Config, resumed: bool) -> SessionCore {
        SessionCore::new(
            t0,
            SessionInit {
                id: 7,
                user: "yamada",
                agent: "agent-1",
                width: 640,
                height: 480,
                resumed,
                age: Duration::ZERO,
                clock: Arc::new(Mutex::new(ClockEstimator::default())),
            },
            cfg,
            &cfg.protocol_limits(),
            Arc::new(Metrics::default()),
        )
    }

    fn sink(id: u64) -> (ViewerSink, mpsc::Receiver<ToViewer>) {
        let (tx, rx) = mpsc::channel(8);
        let addr = "192.0.2.10:50000".parse().unwrap();
        let replaced = Arc::default();
        (
            ViewerSink {
                id,
                addr,
                tx,
                replaced,
            },
            rx,
        )
    }

    fn click(now: Instant, c: &mut SessionCore) {
        let events = vec![
            InputEvent::PointerMove { x: 10, y: 10 },
            InputEvent::Button {
                down: true,
                button: Button::Left,
            },
            InputEvent::Button {
                down: false,
                button: Button::Left,
            },
        ];
        c.handle_command(
            now,
            SessionCommand::Viewer {
                viewer_id: 1,
                cmd: ViewerCommand::Input(events),
            },
        )
        .unwrap();
    }

    fn reason(r: Result<(), End>) -> Option<(Option<Reason>, Reason)> {
        r.err().map(|e| (e.to_agent, e.to_viewer))
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn before_the_first_attach_the_login_allowance_runs_and_an_attach_stops_it() {
        let t0 = Instant::now();
        let cfg = config(0, 0, 5);
        let mut c = core(t0, &cfg);
        // linger 5 s, login 10 s: the longer one.
        assert_eq!(c.poll_timeout(), Some(t0 + 10 * S));
        assert!(c.handle_timeout(t0 + 9 * S).is_ok());
        let (v, mut rx) = sink(1);
        c.handle_command(t0 + 2 * S, SessionCommand::Attach(v))
            .unwrap();
        assert!(matches!(
            rx.try_recv(),
            Ok(ToViewer::Msg(GatewayToViewer::SessionReady {
                resumed: false,
                ..
            }))
        ));
        assert_eq!(
            c.poll_event().map(|e| matches!(e, Event::Audit(_))),
            Some(true)
        );
        assert_eq!(c.poll_event(), Some(Event::State(SessionState::Attached)));
        // idle and absolute are off: nothing ends an attached session.
        assert_eq!(c.poll_timeout(), None);
        assert!(c.handle_timeout(t0 + 100_000 * S).is_ok());
    }

    #[test]
    fn a_replaced_viewer_is_told_and_no_longer_heard() {
        let t0 = Instant::now();
        let cfg = config(0, 0, 60);
        let mut c = core(t0, &cfg);
        let (old, mut old_rx) = sink(1);
        let old_replaced = old.replaced.clone();
        c.handle_command(t0, SessionCommand::Attach(old)).unwrap();
        let (new, _new_rx) = sink(2);
        c.handle_command(t0, SessionCommand::Attach(new)).unwrap();
        assert!(
            std::iter::from_fn(|| old_rx.try_recv().ok())
                .any(|m| matches!(m, ToViewer::Bye(Reason::Replaced))),
            "the old viewer's queue got Bye(Replaced)"
        );
        // Its connection is told directly too (the permit is stored for a later wait).
        let told = futures_now(old_replaced.notified());
        assert!(told, "the old viewer's connection was notified");
        // (The resumed viewer's keyframe request.)
        while c.poll_agent().is_some() {}
        // Its input and its logout are ignored; the session goes on.
        let stale = |cmd| SessionCommand::Viewer { viewer_id: 1, cmd };
        c.handle_command(
            t0,
            stale(ViewerCommand::Input(vec![InputEvent::PointerMove {
                x: 1,
                y: 1,
            }])),
        )
        .unwrap();
        assert!(
            c.poll_agent().is_none(),
            "no input from the replaced viewer"
        );
        c.handle_command(
            t0,
            stale(ViewerCommand::End {
                reason: Reason::Logout,
            }),
        )
        .expect("a replaced viewer cannot end the session");
        assert_eq!(c.metrics.stale_viewer_commands.load(Relaxed), 2);
        // The attached viewer is heard.
        c.handle_command(
            t0,
            SessionCommand::Viewer {
                viewer_id: 2,
                cmd: ViewerCommand::Input(vec![InputEvent::PointerMove { x: 1, y: 1 }]),
            },
        )
        .unwrap();
        assert!(c.poll_agent().is_some());
    }

    /// Poll a future once: whether it is ready now.
    fn futures_now<F: std::future::Future>(f: F) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        f.as_mut().poll(&mut cx).is_ready()
    }

    #[test]
    fn a_detached_session_lingers_then_ends_normally() {
        let t0 = Instant::now();
        let cfg = config(0, 0, 60);
        let mut c = core(t0, &cfg);
        let (v, _rx) = sink(1);
        c.handle_command(t0, SessionCommand::Attach(v)).unwrap();
        // A key held when the viewer leaves is released at the agent.
        let key = InputEvent::Key {
            down: true,
            code: tsuitate_protocol::KeyCode::KeyA,
            keysym: 0x61,
            modifiers: tsuitate_protocol::Modifiers::default(),
        };
        c.handle_command(
            t0,
            SessionCommand::Viewer {
                viewer_id: 1,
                cmd: ViewerCommand::Input(vec![key]),
            },
        )
        .unwrap();
        assert!(matches!(
            c.poll_agent(),
            Some(GatewayToAgentSession::Input(_))
        ));
        let left = t0 + 30 * S;
        // Another viewer's detach is not ours.
        c.handle_command(left, SessionCommand::Detach { viewer_id: 2 })
            .unwrap();
        assert_eq!(c.poll_timeout(), None);
        c.handle_command(left, SessionCommand::Detach { viewer_id: 1 })
            .unwrap();
        match c.poll_agent() {
            Some(GatewayToAgentSession::Input(ev)) => {
                assert!(matches!(ev[..], [InputEvent::Key { down: false, .. }]))
            }
            other => panic!("held key not released: {other:?}"),
        }
        assert!(c
            .events
            .contains(&Event::State(SessionState::Lingering(left))));
        assert_eq!(c.poll_timeout(), Some(left + 60 * S));
        assert!(c.handle_timeout(left + 59 * S).is_ok());
        assert_eq!(
            reason(c.handle_timeout(left + 60 * S)),
            Some((Some(Reason::Normal), Reason::Normal))
        );
    }

    #[test]
    fn a_viewer_that_comes_back_resumes_from_a_forced_keyframe() {
        let t0 = Instant::now();
        let cfg = config(0, 0, 60);
        let mut c = core(t0, &cfg);
        let (v, _rx) = sink(1);
        c.handle_command(t0, SessionCommand::Attach(v)).unwrap();
        c.handle_command(t0, SessionCommand::Detach { viewer_id: 1 })
            .unwrap();
        let (v, mut rx) = sink(2);
        c.handle_command(t0 + S, SessionCommand::Attach(v)).unwrap();
        assert!(matches!(
            rx.try_recv(),
            Ok(ToViewer::Msg(GatewayToViewer::SessionReady {
                resumed: true,
                ..
            }))
        ));
        assert_eq!(c.poll_agent(), Some(GatewayToAgentSession::KeyframeRequest));
        assert_eq!(c.poll_timeout(), None, "the linger stopped");
    }

    #[test]
    fn a_browser_the_agent_held_is_resumed_by_the_first_viewer_from_a_forced_keyframe() {
        let t0 = Instant::now();
        let cfg = config(0, 0, 60);
        let mut c = core_resumed(t0, &cfg, true);
        let (v, mut rx) = sink(1);
        c.handle_command(t0, SessionCommand::Attach(v)).unwrap();
        assert!(matches!(
            rx.try_recv(),
            Ok(ToViewer::Msg(GatewayToViewer::SessionReady {
                resumed: true,
                ..
            }))
        ));
        assert_eq!(c.poll_agent(), Some(GatewayToAgentSession::KeyframeRequest));
        // A new browser's first viewer is told it is new, and nothing is asked of the agent.
        let mut fresh = core(t0, &cfg);
        let (v, mut rx) = sink(2);
        fresh.handle_command(t0, SessionCommand::Attach(v)).unwrap();
        assert!(matches!(
            rx.try_recv(),
            Ok(ToViewer::Msg(GatewayToViewer::SessionReady {
                resumed: false,
                ..
            }))
        ));
        assert_eq!(fresh.poll_agent(), None);
    }

    #[test]
    fn a_resumed_browser_keeps_its_absolute_timeout() {
        let t0 = Instant::now();
        let cfg = config(0, 3600, 60);
        let init = |age: Duration| SessionInit {
            id: 7,
            user: "yamada",
            agent: "agent-1",
            width: 640,
            height: 480,
            resumed: true,
            age,
            clock: Arc::new(Mutex::new(ClockEstimator::default())),
        };
        let new = |age| {
            SessionCore::new(
                t0,
                init(age),
                &cfg,
                &cfg.protocol_limits(),
                Arc::new(Metrics::default()),
            )
        };
        // 50 minutes old through other gateways: 10 minutes left here, not an hour.
        let c = new(50 * 60 * S);
        assert_eq!(
            c.poll_timeout(),
            Some(t0 + 60 * S),
            "the linger comes first"
        );
        let (v, _rx) = sink(1);
        let mut c = c;
        c.handle_command(t0, SessionCommand::Attach(v)).unwrap();
        assert_eq!(c.poll_timeout(), Some(t0 + 10 * 60 * S));
        assert_eq!(
            reason(c.handle_timeout(t0 + 10 * 60 * S)),
            Some((Some(Reason::AbsoluteTimeout), Reason::AbsoluteTimeout))
        );
        // An age beyond the limit ends it at once, and never underflows.
        let mut c = new(Duration::MAX);
        assert_eq!(
            reason(c.handle_timeout(t0)),
            Some((Some(Reason::AbsoluteTimeout), Reason::AbsoluteTimeout))
        );
    }

    #[test]
    fn idle_timeout_counts_from_the_last_input() {
        let t0 = Instant::now();
        let cfg = config(60, 0, 30);
        let mut c = core(t0, &cfg);
        let (v, _rx) = sink(1);
        c.handle_command(t0, SessionCommand::Attach(v)).unwrap();
        assert_eq!(c.poll_timeout(), Some(t0 + 60 * S));
        click(t0 + 50 * S, &mut c);
        assert_eq!(c.poll_timeout(), Some(t0 + 110 * S));
        assert!(c.handle_timeout(t0 + 109 * S).is_ok());
        assert_eq!(
            reason(c.handle_timeout(t0 + 110 * S)),
            Some((Some(Reason::IdleTimeout), Reason::IdleTimeout))
        );
    }

    #[test]
    fn absolute_timeout_ends_even_a_busy_session() {
        let t0 = Instant::now();
        let cfg = config(60, 120, 30);
        let mut c = core(t0, &cfg);
        let (v, _rx) = sink(1);
        c.handle_command(t0, SessionCommand::Attach(v)).unwrap();
        for n in 1..=3 {
            click(t0 + 30 * n * S, &mut c);
        }
        // Idle would be t0 + 150 s; the absolute limit comes first.
        assert_eq!(c.poll_timeout(), Some(t0 + 120 * S));
        assert!(c.handle_timeout(t0 + 119 * S).is_ok());
        assert_eq!(
            reason(c.handle_timeout(t0 + 120 * S)),
            Some((Some(Reason::AbsoluteTimeout), Reason::AbsoluteTimeout))
        );
        // Both expired: absolute wins.
        let mut idle_too = core(t0, &cfg);
        assert_eq!(
            reason(idle_too.handle_timeout(t0 + 500 * S)),
            Some((Some(Reason::AbsoluteTimeout), Reason::AbsoluteTimeout))
        );
    }

    #[test]
    fn agent_messages_out_of_place_end_the_session_as_the_agents_fault() {
        let t0 = Instant::now();
        let cfg = config(0, 0, 30);
        let mut c = core(t0, &cfg);
        let e = c
            .handle_agent(
                t0,
                0,
                AgentSessionToGateway::Started {
                    width: 1,
                    height: 1,
                    resumed: false,
                    age_s: 0,
                },
            )
            .unwrap_err();
        assert_eq!((e.to_agent, e.to_viewer), (None, Reason::AgentLost));
        assert!(matches!(e.violation, Some((Side::Agent, _))));
        // Garbage video: refused by the sanitizer, nothing queued for anyone.
        let frame = VideoFrame {
            header: VideoHeader {
                sequence: 1,
                capture_us: 0,
                keyframe: true,
                width: 640,
                height: 480,
            },
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65, 0xff]),
        };
        let e = c
            .handle_agent(t0, 0, AgentSessionToGateway::Video(frame))
            .unwrap_err();
        assert!(matches!(
            e.violation,
            Some((Side::Agent, Violation::Sanitizer(_)))
        ));
        assert_eq!(c.poll_agent(), None);
        assert_eq!(c.end_record(t0 + 3 * S, &e)["sanitizer_refused"], 1);
    }

    #[test]
    fn capture_times_cross_only_within_the_window_before_arrival() {
        let t0 = Instant::now();
        let cfg = config(0, 0, 30);
        let mut c = core(t0, &cfg);
        let (v, mut rx) = sink(1);
        c.handle_command(t0, SessionCommand::Attach(v)).unwrap();
        let arrival = 1_800_000_000_000_000u64;
        // The agent's clock agrees with ours.
        lock(&c.clock).sample(arrival - 1000, arrival - 500, arrival);
        let au = &tsuitate_testkit::frames::frames()[0];
        let frame = |capture_us| VideoFrame {
            header: VideoHeader {
                sequence: 1,
                capture_us,
                keyframe: au.keyframe,
                width: 320,
                height: 240,
            },
            data: Bytes::from(au.data.clone()),
        };
        let mut seen = Vec::new();
        for capture in [arrival + 3_600_000_000, 7, arrival - 40_000] {
            c.handle_agent(t0, arrival, AgentSessionToGateway::Video(frame(capture)))
                .unwrap();
            while let Ok(m) = rx.try_recv() {
                if let ToViewer::Video(f) = m {
                    let wire = [f.head.as_ref(), f.data.as_ref()].concat();
                    let limits = tsuitate_protocol::Limits::default();
                    if let Ok(Some((GatewayToViewer::Video(v), _))) =
                        <GatewayToViewer as tsuitate_protocol::Message>::decode(&wire, &limits)
                    {
                        seen.push(v.header.capture_us);
                    }
                }
            }
        }
        assert_eq!(
            seen,
            vec![arrival, arrival - CAPTURE_WINDOW_US, arrival - 40_000],
            "an hour ahead → arrival; 1970 → ten seconds before; honest → as it was"
        );
    }
}
