//! The viewer listener: viewers (LGWAN zone) open one stream, say `Hello`, log in, and are
//! attached to a session (new or resumed). Afterwards every viewer message is decoded and
//! turned into a command for the session; nothing is passed through.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use quinn::SendStream;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};
use tracing::Instrument;
use tsuitate_protocol::{GatewayToViewer, LoginStatus, Reason, ViewerToGateway, PROTOCOL_VERSION};

use crate::broker::Placement;
use crate::error::{GatewayError, Side, Violation};
use crate::relay::input::ControlLimit;
use crate::session;
use crate::state::{now_us, SessionLink, StartClaim, State};
use crate::state::{SessionCommand, ToViewer, ViewerCommand, ViewerSink};
use crate::streams::write_msg;
use crate::viewer_writer::spawn_writer;
use tsuitate_transport::{close as close_with, last_words, spawn_reader, ReadEnd, ReadItem};

type Rx = mpsc::Receiver<ReadItem<ViewerToGateway>>;

fn violation(v: Violation) -> GatewayError {
    GatewayError::Violation(Side::Viewer, v)
}

fn read_end(e: ReadEnd) -> GatewayError {
    match e {
        ReadEnd::Wire(w) => violation(Violation::Wire(w)),
        ReadEnd::Finished => GatewayError::Closed(Side::Viewer),
        ReadEnd::Io(s) => GatewayError::Internal(format!("viewer stream: {s}")),
    }
}

/// Serve one viewer connection.
pub(crate) async fn handle_viewer(state: Arc<State>, conn: quinn::Connection) {
    let peer = conn.remote_address();
    let span = tracing::info_span!("viewer", %peer);
    // A viewer that presents a client certificate (a web viewer front) must not present a
    // revoked one.
    if conn.peer_identity().is_some() {
        match crate::certs::peer_revoked(state.cfg.tls.revoked.as_deref(), &conn) {
            Ok(false) => {}
            Ok(true) => {
                let cn = tsuitate_transport::tls::peer_common_name(&conn).unwrap_or_default();
                tracing::warn!(%peer, %cn, "front certificate revoked: refused");
                state.audit(
                    json!({"event": "certificate_revoked", "front": cn, "peer": peer.to_string()}),
                );
                close_with(&conn, Reason::AuthFailed);
                return;
            }
            Err(e) => {
                tracing::error!(%peer, error = %e, "revocation list unreadable: front refused");
                close_with(&conn, Reason::AuthFailed);
                return;
            }
        }
    }
    async move {
        match serve(&state, &conn, peer).await {
            Ok(()) => {}
            Err(GatewayError::Violation(side, v)) => {
                state.violation(side, peer, "", &v);
                close_with(&conn, v.reason());
            }
            Err(e) => tracing::info!(error = %e, "viewer connection ended"),
        }
    }
    .instrument(span)
    .await
}

async fn recv_before(
    rx: &mut Rx,
    deadline: Instant,
    what: &'static str,
) -> Result<ViewerToGateway, GatewayError> {
    match timeout_at(deadline, rx.recv()).await {
        Ok(Some(m)) => m.map_err(read_end),
        Ok(None) => Err(GatewayError::Closed(Side::Viewer)),
        Err(_) => Err(violation(Violation::Timeout(what))),
    }
}

async fn refuse(
    send: &mut SendStream,
    conn: &quinn::Connection,
    status: LoginStatus,
    retry: u32,
    reason: Reason,
) {
    let lr = GatewayToViewer::LoginResult {
        status,
        retry_after_s: retry,
    };
    last_words(send, conn, &[lr, GatewayToViewer::Bye { reason }], reason).await;
}

async fn serve(
    state: &Arc<State>,
    conn: &quinn::Connection,
    peer: SocketAddr,
) -> Result<(), GatewayError> {
    let deadline = Instant::now() + state.cfg.session.login_timeout;
    let (mut send, recv) = match timeout_at(deadline, conn.accept_bi()).await {
        Ok(r) => r.map_err(|e| GatewayError::Connection(Side::Viewer, e))?,
        Err(_) => return Err(violation(Violation::Timeout("viewer stream"))),
    };
    let mut rx = spawn_reader::<ViewerToGateway>(recv, state.limits.clone(), 16);
    let ViewerToGateway::Hello { version } = recv_before(&mut rx, deadline, "Hello").await? else {
        return Err(violation(Violation::Unexpected(
            "first message must be Hello",
        )));
    };
    if version != PROTOCOL_VERSION {
        let bye = GatewayToViewer::Bye {
            reason: Reason::VersionMismatch,
        };
        last_words(&mut send, conn, &[bye], Reason::VersionMismatch).await;
        return Ok(());
    }
    // A viewer that does not read (zero receive window) must not hold its connection past
    // the login deadline.
    let welcome = GatewayToViewer::Welcome {
        version: PROTOCOL_VERSION,
    };
    match timeout_at(deadline, write_msg(&mut send, &welcome, Side::Viewer)).await {
        Ok(r) => r?,
        Err(_) => return Err(violation(Violation::Timeout("the viewer to read Welcome"))),
    }
    let mut first = recv_before(&mut rx, deadline, "Login").await?;
    // A trusted front (the web viewer) tells whose login this is: from then on the browser's
    // address is the viewer's address for lockout, audit and the session (§5.1).
    let (client, via) = match first {
        ViewerToGateway::Forwarded { client } => {
            let Some(front) = trusted_front(state, conn) else {
                return Err(violation(Violation::Unexpected(
                    "Forwarded from a connection that is not a trusted front",
                )));
            };
            first = recv_before(&mut rx, deadline, "Login").await?;
            (client, Some(format!("{front} {peer}")))
        }
        _ => (peer, None),
    };
    let ViewerToGateway::Login { user, password } = first else {
        return Err(violation(Violation::Unexpected("Login expected")));
    };
    // During an emergency stop nobody logs in (the password is not even checked).
    if state.emergency_stopped() {
        state.metrics.login_emergency_stop.fetch_add(1, Relaxed);
        let mut record = json!({"event": "login_failure", "user": user, "viewer": client.to_string(), "cause": "emergency_stop"});
        if let (Some(via), Some(m)) = (&via, record.as_object_mut()) {
            m.insert("via".into(), via.clone().into());
        }
        state.audit(record);
        let bye = GatewayToViewer::Bye {
            reason: Reason::EmergencyStop,
        };
        last_words(&mut send, conn, &[bye], Reason::EmergencyStop).await;
        return Ok(());
    }
    if !login(
        state,
        conn,
        &mut send,
        (client, via.as_deref()),
        &user,
        password,
        deadline,
    )
    .await
    {
        return Ok(());
    }
    let span = tracing::info_span!("login", user = %user, viewer = %client);
    attach(state, conn, send, rx, client, &user, deadline)
        .instrument(span)
        .await
}

/// The configured front name this connection proved with its client certificate, if any.
fn trusted_front(state: &State, conn: &quinn::Connection) -> Option<String> {
    let cn = tsuitate_transport::tls::peer_common_name(conn)?;
    let name = cn.strip_prefix("front:")?;
    state
        .cfg
        .trusted_fronts
        .iter()
        .any(|f| f == name)
        .then(|| name.to_owned())
}

/// Check the lockout and the password. Sends the refusal itself; returns whether to go on.
/// `peer` is the viewer's address (a browser's, when a trusted front forwarded it) and the
/// front that forwarded it, if any.
async fn login(
    state: &Arc<State>,
    conn: &quinn::Connection,
    send: &mut SendStream,
    (peer, via): (SocketAddr, Option<&str>),
    user: &str,
    password: String,
    deadline: Instant,
) -> bool {
    let ip = peer.ip();
    let audit = |mut record: serde_json::Value| {
        if let (Some(via), Some(m)) = (via, record.as_object_mut()) {
            m.insert("via".into(), via.into());
        }
        state.audit(record);
    };
    // Held until the outcome is recorded in the lockout (see lockout::CONCURRENT_CHECKS), and
    // no longer: the refusal is written after the slot is free, so a client that reads slowly
    // cannot keep a slot (and real logins) waiting.
    let refusal = {
        let Ok(Ok(_check)) = timeout_at(deadline, state.login_checks.acquire()).await else {
            tracing::warn!("login checks busy until the login deadline: refused");
            refuse(send, conn, LoginStatus::NoCapacity, 10, Reason::NoCapacity).await;
            return false;
        };
        if let Some(retry) = state.lockout_locked(user, ip).await {
            state.metrics.login_locked_out.fetch_add(1, Relaxed);
            audit(
                json!({"event": "login_failure", "user": user, "viewer": peer.to_string(), "cause": "locked_out"}),
            );
            let retry = u32::try_from(retry.as_secs().max(1)).unwrap_or(u32::MAX);
            Some((LoginStatus::LockedOut, retry, Reason::LockedOut))
        } else {
            let (st, u) = (state.clone(), user.to_owned());
            let ok = tokio::task::spawn_blocking(move || st.users.check(&u, &password))
                .await
                .unwrap_or(false);
            if ok {
                state.lockout_succeed(user).await;
                None
            } else {
                state.lockout_fail(user, ip).await;
                state.metrics.login_denied.fetch_add(1, Relaxed);
                audit(
                    json!({"event": "login_failure", "user": user, "viewer": peer.to_string(), "cause": "denied"}),
                );
                tracing::info!(user, "login denied");
                Some((LoginStatus::Denied, 0, Reason::AuthFailed))
            }
        }
    };
    if let Some((status, retry, reason)) = refusal {
        refuse(send, conn, status, retry, reason).await;
        return false;
    }
    state.metrics.login_success.fetch_add(1, Relaxed);
    audit(json!({"event": "login_success", "user": user, "viewer": peer.to_string()}));
    true
}

/// How often a login waiting for another gateway's start claim looks at the store again.
const CLAIM_RETRY: Duration = Duration::from_millis(100);

/// Find or start the user's session; on failure the viewer is told why.
async fn place(
    state: &Arc<State>,
    conn: &quinn::Connection,
    send: &mut SendStream,
    peer: SocketAddr,
    user: &str,
    deadline: Instant,
) -> Option<SessionLink> {
    let cfg = &state.cfg.session;
    // A session of the same user may still be starting on another connection: wait for it
    // (woken by the registry, no polling) up to the start timeout.
    let wait_until = tokio::time::Instant::now() + cfg.start_timeout;
    // Whether the viewer was told its login worked (a browser start that found the agent full
    // is placed again, and a refusal after it is a `Bye`).
    let mut told_ok = false;
    // This login's claim to start the user's new browser (D30), kept across placing again and
    // given back when the placement is over, whichever way.
    let mut claim = StartClaimGuard {
        state,
        user,
        held: None,
    };
    loop {
        let placement = state
            .hub()
            .broker
            .place(user, cfg.one_session_per_user, state.next_id());
        match placement {
            Placement::NoCapacity | Placement::OverBudget => {
                state.metrics.login_no_capacity.fetch_add(1, Relaxed);
                let cause = if placement == Placement::OverBudget {
                    "memory_budget"
                } else {
                    "no_free_agent"
                };
                state.audit(
                    json!({"event": "no_capacity", "user": user, "viewer": peer.to_string(), "cause": cause}),
                );
                no_capacity(send, conn, told_ok).await;
                return None;
            }
            Placement::Resume(id) => {
                let link = state.hub().sessions.get(&id).cloned();
                if let Some(link) = link {
                    if !told_ok {
                        ok_result(send, deadline).await?;
                    }
                    return Some(link);
                }
                // Still starting on another connection of the same user: wait until it is
                // registered or gone.
                let settled = state
                    .wait_hub(wait_until, |hub| {
                        hub.sessions.contains_key(&id) || hub.broker.session(id).is_none()
                    })
                    .await;
                if !settled {
                    break;
                }
            }
            Placement::New {
                session_id,
                agent,
                resume,
            } => {
                // A new browser, one per user: with a shared store, only one gateway starts
                // it; another that checked the same user's password at the same instant waits
                // until the agent holds it, then takes it over (D30).
                if resume.is_none() && cfg.one_session_per_user && claim.held.is_none() {
                    match state.claim_start(user).await {
                        StartClaim::Ours { owner, token } => claim.held = Some((owner, token)),
                        StartClaim::Busy => {
                            state.hub().broker.release_with(session_id, true);
                            // The viewer hears that its login worked while it waits (its
                            // wait for the session is longer than for the login's answer).
                            if !told_ok {
                                ok_result(send, deadline).await?;
                                told_ok = true;
                            }
                            let soon = (tokio::time::Instant::now() + CLAIM_RETRY).min(wait_until);
                            state.wait_hub(soon, |hub| hub.broker.holds_for(user)).await;
                            if tokio::time::Instant::now() >= wait_until {
                                break;
                            }
                            continue;
                        }
                        StartClaim::Unavailable => {}
                    }
                }
                if !told_ok && ok_result(send, deadline).await.is_none() {
                    // The viewer is gone: give the reserved slot back, or the user's next
                    // login would wait for a session that never starts.
                    state
                        .hub()
                        .broker
                        .release_with(session_id, resume.is_none());
                    return None;
                }
                let new = NewSession {
                    id: session_id,
                    agent: &agent,
                    resume,
                };
                match start(state, conn, send, peer, user, new).await {
                    Start::Running(link) => return Some(link),
                    Start::Ended => return None,
                    // Another gateway took the agent's last slot first: place again.
                    Start::AgentFull => {
                        told_ok = true;
                        if tokio::time::Instant::now() >= wait_until {
                            break;
                        }
                    }
                }
            }
        }
    }
    no_capacity(send, conn, told_ok).await;
    None
}

/// A login's start claim (D30), given back when it is dropped.
struct StartClaimGuard<'a> {
    state: &'a Arc<State>,
    user: &'a str,
    /// (owner, token) while this login holds the claim.
    held: Option<(String, String)>,
}

impl Drop for StartClaimGuard<'_> {
    fn drop(&mut self) {
        if let Some((owner, token)) = self.held.take() {
            self.state.release_start_claim(self.user, owner, token);
        }
    }
}

/// Tell the viewer no browser is free: a login refusal, or a `Bye` after its login worked.
async fn no_capacity(send: &mut SendStream, conn: &quinn::Connection, told_ok: bool) {
    if told_ok {
        let bye = GatewayToViewer::Bye {
            reason: Reason::NoCapacity,
        };
        last_words(send, conn, &[bye], Reason::NoCapacity).await;
    } else {
        refuse(send, conn, LoginStatus::NoCapacity, 10, Reason::NoCapacity).await;
    }
}

/// How a browser start went.
enum Start {
    /// The session runs.
    Running(SessionLink),
    /// It failed and the viewer was told why.
    Ended,
    /// The agent had no free slot (nothing told to the viewer yet).
    AgentFull,
}

/// Tell the viewer its login worked; `None` if it cannot be told by `deadline` (the login
/// deadline, or now if that passed: the write only has to not be blocked).
async fn ok_result(send: &mut SendStream, deadline: Instant) -> Option<()> {
    let lr = GatewayToViewer::LoginResult {
        status: LoginStatus::Ok,
        retry_after_s: 0,
    };
    timeout_at(deadline, write_msg(send, &lr, Side::Viewer))
        .await
        .ok()?
        .ok()
}

/// Where a placed session goes.
struct NewSession<'a> {
    id: u64,
    agent: &'a str,
    /// The agent's held session of the user to take over.
    resume: Option<u64>,
}

async fn start(
    state: &Arc<State>,
    conn: &quinn::Connection,
    send: &mut SendStream,
    peer: SocketAddr,
    user: &str,
    new: NewSession<'_>,
) -> Start {
    let cfg = &state.cfg.session;
    let NewSession { id, agent, resume } = new;
    let req = session::OpenRequest {
        size: (cfg.default_width, cfg.default_height),
        watermark: state.cfg.watermark.spec(user, peer.ip()),
        owner: state.hub().broker.owner(user),
        resume,
    };
    match session::open(state, id, agent, req).await {
        Ok(opened) => {
            let resumed = opened.resumed();
            if let (Some(n), false) = (resume, resumed) {
                // The agent no longer had that browser (it had just ended): a new one started.
                state.hub().broker.release_held(agent, n);
            }
            if resumed {
                state
                    .metrics
                    .sessions_resumed_on_agent
                    .fetch_add(1, Relaxed);
            } else {
                state.metrics.sessions_started.fetch_add(1, Relaxed);
            }
            state.audit(json!({"event": "session_start", "session": id, "user": user, "agent": agent, "viewer": peer.to_string(), "resumed_on_agent": resumed, "browser_age_s": opened.age().as_secs()}));
            Start::Running(session::spawn(state, opened, id, user, agent))
        }
        Err(GatewayError::AgentFull) if resume.is_none() => {
            let mut hub = state.hub();
            hub.broker.release_with(id, false);
            // Until its next `Capacity` says otherwise.
            hub.broker.set_reported_free(agent, 0);
            tracing::info!(
                agent,
                "agent full (another gateway placed first): placing again"
            );
            Start::AgentFull
        }
        Err(e) => {
            state.hub().broker.release_with(id, resume.is_none());
            tracing::warn!(agent, error = %e, "session start failed");
            let violation = matches!(e, GatewayError::Violation(..));
            if let GatewayError::Violation(side, v) = &e {
                state.violation(*side, peer, agent, v);
                if let Some(a) = state.hub().agents.get(agent) {
                    close_with(&a.conn, v.reason());
                }
            }
            // A browser the agent said it held could not be taken (it had just ended, and the
            // agent had no slot for a new one): forget it, and tell the viewer no browser is
            // free — a reconnecting viewer tries again and is placed afresh.
            let reason = match resume {
                Some(n) if !violation => {
                    state.hub().broker.release_held(agent, n);
                    state.audit(json!({"event": "resume_failed", "user": user, "agent": agent, "viewer": peer.to_string()}));
                    Reason::NoCapacity
                }
                _ => Reason::AgentLost,
            };
            let bye = GatewayToViewer::Bye { reason };
            last_words(send, conn, &[bye], reason).await;
            Start::Ended
        }
    }
}

async fn attach(
    state: &Arc<State>,
    conn: &quinn::Connection,
    mut send: SendStream,
    mut rx: Rx,
    peer: SocketAddr,
    user: &str,
    deadline: Instant,
) -> Result<(), GatewayError> {
    let Some(session) = place(state, conn, &mut send, peer, user, deadline).await else {
        return Ok(());
    };
    let viewer_id = state.next_id();
    let depth = state.cfg.session.viewer_queue_frames + 4;
    let (tx, writer_rx) = mpsc::channel(depth);
    let mut writer = spawn_writer(send, writer_rx);
    let replaced = Arc::new(tokio::sync::Notify::new());
    let sink = ViewerSink {
        id: viewer_id,
        addr: peer,
        tx: tx.clone(),
        replaced: replaced.clone(),
    };
    if session.tx.send(SessionCommand::Attach(sink)).await.is_err() {
        // The session ended between its placement and this attach (e.g. taken over by the
        // same user's login through another gateway): the viewer is told why.
        let reason = session
            .info
            .ended
            .get()
            .copied()
            .unwrap_or(Reason::AgentLost);
        let _ = tx.send(ToViewer::Bye(reason)).await;
    }
    let session = session.tx;
    let link = ViewerLink {
        session: &session,
        viewer_id,
        tx: &tx,
        replaced: &replaced,
    };
    let result = relay_viewer(state, link, &mut rx, &mut writer).await;
    let reason = match &result {
        Err(GatewayError::Violation(side, v)) => {
            // Counted and audited here, before the connection closes.
            state.violation(*side, peer, user, v);
            let end = SessionCommand::Viewer {
                viewer_id,
                cmd: ViewerCommand::End { reason: v.reason() },
            };
            let _ = session.send(end).await;
            Some(v.reason())
        }
        Ok(Some(reason)) => Some(*reason),
        _ => {
            let _ = session.send(SessionCommand::Detach { viewer_id }).await;
            None
        }
    };
    drop(tx);
    // Let the writer flush the last messages (Bye) before the connection goes.
    // (A JoinHandle must not be polled again once it completed inside relay_viewer.)
    if !writer.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut writer).await;
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), conn.closed()).await;
    close_with(conn, reason.unwrap_or(Reason::Normal));
    match result {
        Err(GatewayError::Violation(..)) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// One attached viewer, as its relay loop sees it.
#[derive(Clone, Copy)]
struct ViewerLink<'a> {
    session: &'a mpsc::Sender<SessionCommand>,
    viewer_id: u64,
    tx: &'a mpsc::Sender<ToViewer>,
    replaced: &'a tokio::sync::Notify,
}

/// Turn viewer messages into session commands until the viewer leaves or the writer ends.
/// `Ok(Some(Replaced))` when another viewer took the session over: the caller closes this
/// connection with that reason whether or not the `Bye` could be queued.
async fn relay_viewer(
    state: &Arc<State>,
    link: ViewerLink<'_>,
    rx: &mut Rx,
    writer: &mut tokio::task::JoinHandle<()>,
) -> Result<Option<Reason>, GatewayError> {
    let ViewerLink {
        session,
        viewer_id,
        tx,
        replaced,
    } = link;
    let mut control = ControlLimit::new(std::time::Instant::now(), &state.cfg.input);
    loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = &mut *writer => return Ok(None),
            // The session ended (its Bye may be stuck behind a full queue): stop here.
            _ = session.closed() => return Ok(None),
            _ = replaced.notified() => return Ok(Some(Reason::Replaced)),
        };
        let Some(msg) = msg else { return Ok(None) };
        let msg = msg.map_err(read_end)?;
        // Input and Resize are limited by the session; these are limited here.
        if matches!(
            msg,
            ViewerToGateway::Ping { .. }
                | ViewerToGateway::LatencyReport { .. }
                | ViewerToGateway::KeyframeRequest
        ) && !control
            .admit(std::time::Instant::now())
            .map_err(violation)?
        {
            continue;
        }
        let cmd = match msg {
            ViewerToGateway::Input(events) => ViewerCommand::Input(events),
            ViewerToGateway::Resize { width, height } => ViewerCommand::Resize { width, height },
            ViewerToGateway::KeyframeRequest => ViewerCommand::KeyframeRequest,
            ViewerToGateway::Logout => ViewerCommand::End {
                reason: Reason::Logout,
            },
            ViewerToGateway::Ping { nonce, viewer_us } => {
                let pong = GatewayToViewer::Pong {
                    nonce,
                    viewer_us,
                    gateway_us: now_us(),
                };
                let _ = tx.try_send(ToViewer::Msg(pong));
                continue;
            }
            ViewerToGateway::LatencyReport {
                frames,
                p50_us,
                p95_us,
            } => {
                if frames == 0 {
                    continue;
                }
                state.metrics.latency_p50.observe(u64::from(p50_us));
                state.metrics.latency_p95.observe(u64::from(p95_us));
                ViewerCommand::Latency { p50_us, p95_us }
            }
            ViewerToGateway::Hello { .. }
            | ViewerToGateway::Login { .. }
            | ViewerToGateway::Forwarded { .. } => {
                return Err(violation(Violation::Unexpected("Hello/Login after login")));
            }
        };
        if session
            .send(SessionCommand::Viewer { viewer_id, cmd })
            .await
            .is_err()
        {
            return Ok(None);
        }
    }
}
