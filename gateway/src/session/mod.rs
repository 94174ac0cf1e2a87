//! One session: a browser on an agent, at most one viewer attached. The rules live in the
//! sans-IO [`core::SessionCore`]; this module opens the agent's session stream and drives the
//! core with a thin `select!` loop: it feeds it messages, commands and the time, writes what
//! it asks for to the agent, records its events, and carries out the end.

pub(crate) mod core;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::SendStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::Instrument;
use tsuitate_protocol::{
    AgentSessionToGateway, ClockEstimator, GatewayToAgentSession, Reason, SessionOwner, Watermark,
};
use tsuitate_transport::{close as close_with, spawn_reader, ReadEnd, ReadItem};

use self::core::{End, Event, SessionCore, SessionInit};
use crate::error::{GatewayError, Side, Violation};
use crate::state::{
    lock, now_us, DrainToken, SessionCommand, SessionInfo, SessionLink, SessionView, State,
    ToViewer,
};
use crate::streams::{write_msg, write_msg_timeout};

/// How long one write to the agent may take before the agent counts as lost.
const AGENT_WRITE_LIMIT: Duration = Duration::from_secs(5);

/// A session stream on which the agent answered `Started`.
pub(crate) struct Opened {
    send: SendStream,
    rx: mpsc::Receiver<ReadItem<AgentSessionToGateway>>,
    width: u16,
    height: u16,
    /// The agent handed over a browser it held (`Started{resumed}`), this old.
    resumed: bool,
    age: Duration,
    conn: quinn::Connection,
    clock: Arc<Mutex<ClockEstimator>>,
}

impl Opened {
    /// Whether the agent handed over a browser it held.
    pub(crate) fn resumed(&self) -> bool {
        self.resumed
    }

    /// How long the browser has run (0 for a new one).
    pub(crate) fn age(&self) -> Duration {
        self.age
    }
}

/// What the agent is asked for: a new browser at this size, or the user's held one.
pub(crate) struct OpenRequest {
    pub size: (u16, u16),
    pub watermark: Option<Watermark>,
    pub owner: SessionOwner,
    pub resume: Option<u64>,
}

/// Open a session stream on `agent` and wait for `Started`, all within
/// `session.start_timeout_s`: an agent that never grants a stream, never reads `Open` or
/// never answers must not hold the viewer's login (and its broker slot) forever.
pub(crate) async fn open(
    state: &Arc<State>,
    session_id: u64,
    agent: &str,
    req: OpenRequest,
) -> Result<Opened, GatewayError> {
    let limit = state.cfg.session.start_timeout;
    let asked_resume = req.resume.is_some();
    let open = GatewayToAgentSession::Open {
        session_id,
        width: req.size.0,
        height: req.size.1,
        watermark: req.watermark,
        owner: req.owner,
        resume: req.resume,
    };
    match timeout(limit, open_stream(state, agent, open)).await {
        // Only a resume can hand over a browser the agent held.
        Ok(Ok(o)) if o.resumed && !asked_resume => Err(GatewayError::Violation(
            Side::Agent,
            Violation::Unexpected("Started{resumed} without a resume"),
        )),
        Ok(r) => r,
        Err(_) => Err(GatewayError::Internal(
            "agent did not start the browser in time".into(),
        )),
    }
}

async fn open_stream(
    state: &Arc<State>,
    agent: &str,
    open: GatewayToAgentSession,
) -> Result<Opened, GatewayError> {
    let link = state.hub().agents.get(agent).cloned();
    let link = link.ok_or_else(|| GatewayError::Internal("agent disconnected".into()))?;
    let (mut send, recv) = link
        .conn
        .open_bi()
        .await
        .map_err(|e| GatewayError::Connection(Side::Agent, e))?;
    write_msg(&mut send, &open, Side::Agent).await?;
    let mut rx = spawn_reader::<AgentSessionToGateway>(recv, state.limits.clone(), 4);
    let Some(first) = rx.recv().await else {
        return Err(GatewayError::Closed(Side::Agent));
    };
    match first {
        Ok(AgentSessionToGateway::Started {
            width,
            height,
            resumed,
            age_s,
        }) => Ok(Opened {
            send,
            rx,
            width,
            height,
            resumed,
            age: Duration::from_secs(age_s.into()),
            conn: link.conn,
            clock: link.clock,
        }),
        Ok(AgentSessionToGateway::Ended {
            reason: Reason::NoCapacity,
        }) => Err(GatewayError::AgentFull),
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

/// Spawn the task of a session whose browser started. Returns its link (command sender and
/// shared information), as registered.
pub(crate) fn spawn(
    state: &Arc<State>,
    opened: Opened,
    id: u64,
    user: &str,
    agent: &str,
) -> SessionLink {
    let (tx, rx) = mpsc::channel(16);
    let info = Arc::new(SessionInfo {
        user: user.to_owned(),
        agent: agent.to_owned(),
        started: std::time::SystemTime::now(),
        view: Mutex::new(SessionView::default()),
        ended: std::sync::OnceLock::new(),
    });
    // Registered before the task runs, so a session that ends at once also unregisters.
    let link = SessionLink {
        tx: tx.clone(),
        info: info.clone(),
    };
    state.hub().sessions.insert(id, link.clone());
    // An emergency stop that came while this session was starting ends it at once.
    if state.stopped_for(agent) {
        let _ = tx.try_send(SessionCommand::End {
            reason: Reason::EmergencyStop,
        });
    }
    let core = SessionCore::new(
        Instant::now().into_std(),
        SessionInit {
            id,
            user,
            agent,
            width: opened.width,
            height: opened.height,
            resumed: opened.resumed,
            age: opened.age,
            clock: opened.clock,
        },
        &state.cfg,
        &state.limits,
        state.metrics.clone(),
    );
    let driver = Driver {
        core,
        info,
        state: state.clone(),
        send: opened.send,
        conn: opened.conn,
        _drain: state.drain_token(),
    };
    let span = tracing::info_span!("session", session = id, user = %user, agent = %agent);
    tokio::spawn(driver.run(opened.rx, rx).instrument(span));
    link
}

/// The I/O around one [`SessionCore`].
struct Driver {
    core: SessionCore,
    /// What the admin API lists (refreshed after each step).
    info: Arc<SessionInfo>,
    state: Arc<State>,
    send: SendStream,
    conn: quinn::Connection,
    /// Shutdown waits until this session has told its peers (dropped with the driver).
    _drain: Option<DrainToken>,
}

/// The time for the core (tokio's clock, so paused-time tests drive it).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Driver {
    async fn run(
        mut self,
        mut agent_rx: mpsc::Receiver<ReadItem<AgentSessionToGateway>>,
        mut cmd_rx: mpsc::Receiver<SessionCommand>,
    ) {
        let mut shutdown = self.state.shutdown.clone();
        let end = loop {
            let deadline = self.core.poll_timeout().map(Instant::from_std);
            let step = tokio::select! {
                m = agent_rx.recv() => match m {
                    Some(Ok(msg)) => self.core.handle_agent(now(), now_us(), msg),
                    Some(Err(ReadEnd::Wire(w))) => Err(End::agent_violation(Violation::Wire(w))),
                    Some(Err(_)) | None => Err(End::agent_lost()),
                },
                c = cmd_rx.recv() => match c {
                    Some(c) => self.core.handle_command(now(), c),
                    None => Err(End::both(Reason::Internal)),
                },
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.core.handle_timeout(now())
                }
                _ = crate::state::stopped(&mut shutdown) => Err(End::gateway_shutdown()),
            };
            self.record_events();
            *lock(&self.info.view) = self.core.view(now());
            let flushed = self.flush_agent().await;
            if let Err(end) = step.and(flushed) {
                break end;
            }
        };
        self.finish(end, cmd_rx).await;
    }

    fn record_events(&mut self) {
        while let Some(event) = self.core.poll_event() {
            match event {
                Event::Audit(record) => self.state.audit(record),
                Event::State(s) => self.state.hub().broker.set_state(self.core.id, s),
            }
        }
    }

    /// Write what the core queued for the agent; a write that does not complete in time
    /// means the agent is lost.
    async fn flush_agent(&mut self) -> Result<(), End> {
        while let Some(msg) = self.core.poll_agent() {
            write_msg_timeout(&mut self.send, &msg, Side::Agent, AGENT_WRITE_LIMIT)
                .await
                .map_err(|_| End::agent_lost())?;
        }
        Ok(())
    }

    /// Tell the agent and the viewer, unregister, count and audit.
    async fn finish(mut self, end: End, mut cmd_rx: mpsc::Receiver<SessionCommand>) {
        let limit = Duration::from_secs(1);
        let core = &mut self.core;
        if let Some((side, v)) = &end.violation {
            let (peer, who) = match side {
                Side::Agent => (self.conn.remote_address(), core.agent.clone()),
                _ => (
                    core.last_viewer().unwrap_or(self.conn.remote_address()),
                    core.user.clone(),
                ),
            };
            self.state.violation(*side, peer, &who, v);
            if *side == Side::Agent {
                // A hostile agent is cut off entirely; its other sessions end as AgentLost.
                close_with(&self.conn, v.reason());
            }
        }
        if let Some(reason) = end.to_agent {
            let close = GatewayToAgentSession::Close { reason };
            let _ = write_msg_timeout(&mut self.send, &close, Side::Agent, limit).await;
            let _ = self.send.finish();
        }
        if let Some(viewer) = core.take_viewer() {
            let _ = timeout(limit, viewer.tx.send(ToViewer::Bye(end.to_viewer))).await;
        }
        // A viewer whose login found this session just before it ended is told so too: taken
        // over by a later login of the same user, or (any other end) the browser is gone. From
        // now on an attach fails, and the viewer is told the same (`SessionInfo::ended`, set
        // before the channel closes).
        let late = match end.to_viewer {
            Reason::Replaced => Reason::Replaced,
            _ => Reason::AgentLost,
        };
        let _ = self.info.ended.set(late);
        cmd_rx.close();
        while let Ok(cmd) = cmd_rx.try_recv() {
            if let SessionCommand::Attach(sink) = cmd {
                let _ = sink.tx.try_send(ToViewer::Bye(late));
            }
        }
        {
            let mut hub = self.state.hub();
            hub.sessions.remove(&core.id);
            // Closed by us: the agent frees the slot. Otherwise the browser may live on
            // (lingering, or through another gateway): the agent's Capacity tells.
            hub.broker.release_with(core.id, end.to_agent.is_some());
        }
        self.state.metrics.session_ended(end.to_viewer.name());
        if let Some(dropped) = core.dropped_record() {
            self.state.audit(dropped);
        }
        self.state.audit(core.end_record(now(), &end));
        tracing::info!(
            reason = end.to_viewer.name(),
            frames = core.frames_out(),
            "session ended"
        );
    }
}
