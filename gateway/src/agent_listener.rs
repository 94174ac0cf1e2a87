//! The agent listener: host agents (Internet zone) connect with a client certificate from our
//! CA, open a control stream, say `Hello`, and are pinged for clock offset.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::SendStream;
use serde_json::json;
use tokio::time::{interval, timeout, MissedTickBehavior};
use tracing::Instrument;
use tsuitate_protocol::{AgentToGateway, GatewayToAgent, Reason, AGENT_PROTOCOL_VERSION};

use crate::error::{GatewayError, Side, Violation};
use crate::state::{lock, now_us, AgentLink, BrowserReport, State};
use crate::streams::write_msg;
use tsuitate_protocol::ClockEstimator;
use tsuitate_transport::tls::peer_common_name;
use tsuitate_transport::{close as close_with, last_words, spawn_reader, ReadEnd};

/// Largest capacity an agent may announce.
const MAX_CAPACITY: u16 = 4096;

/// Serve one agent connection.
pub(crate) async fn handle_agent(state: Arc<State>, conn: quinn::Connection) {
    let peer = conn.remote_address();
    let Some(cn) = peer_common_name(&conn) else {
        tracing::warn!(%peer, "agent without a certificate common name");
        close_with(&conn, Reason::ProtocolViolation);
        return;
    };
    // A revoked certificate (or a list that cannot be read: fail closed) is refused before
    // anything else.
    match crate::certs::peer_revoked(state.cfg.tls.revoked.as_deref(), &conn) {
        Ok(false) => {}
        Ok(true) => {
            tracing::warn!(%peer, agent = %cn, "agent certificate revoked: refused");
            state.audit(
                json!({"event": "certificate_revoked", "agent": cn, "peer": peer.to_string()}),
            );
            close_with(&conn, Reason::AuthFailed);
            return;
        }
        Err(e) => {
            tracing::error!(%peer, agent = %cn, error = %e, "revocation list unreadable: agent refused");
            close_with(&conn, Reason::AuthFailed);
            return;
        }
    }
    let span = tracing::info_span!("agent", agent = %cn, %peer);
    // Shutdown waits for this connection to say Bye (the token is dropped at the end).
    let _drain = state.drain_token();
    async move {
        match serve(&state, &conn, &cn, peer).await {
            Ok(()) => {}
            Err(GatewayError::Violation(side, v)) => {
                state.violation(side, peer, &cn, &v);
                close_with(&conn, v.reason());
            }
            Err(e) => tracing::info!(error = %e, "agent connection ended"),
        }
    }
    .instrument(span)
    .await
}

fn violation(v: Violation) -> GatewayError {
    GatewayError::Violation(Side::Agent, v)
}

async fn serve(
    state: &Arc<State>,
    conn: &quinn::Connection,
    cn: &str,
    peer: SocketAddr,
) -> Result<(), GatewayError> {
    let hello_timeout = state.cfg.agent.hello_timeout;
    let (mut send, recv) = match timeout(hello_timeout, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(GatewayError::Connection(Side::Agent, e)),
        Err(_) => return Err(violation(Violation::Timeout("control stream"))),
    };
    let mut rx = spawn_reader::<AgentToGateway>(recv, state.limits.clone(), 8);
    let first = match timeout(hello_timeout, rx.recv()).await {
        Ok(Some(m)) => m,
        Ok(None) => return Err(GatewayError::Closed(Side::Agent)),
        Err(_) => return Err(violation(Violation::Timeout("Hello"))),
    };
    let (version, agent_id, capacity, browser) = match first {
        Ok(AgentToGateway::Hello {
            version,
            agent_id,
            capacity,
            browser,
            policy,
        }) => (
            version,
            agent_id,
            capacity,
            BrowserReport {
                version: browser,
                policy,
            },
        ),
        Ok(_) => {
            return Err(violation(Violation::Unexpected(
                "first message must be Hello",
            )))
        }
        Err(e) => return Err(read_end(e)),
    };
    if version != AGENT_PROTOCOL_VERSION {
        let bye = GatewayToAgent::Bye {
            reason: Reason::VersionMismatch,
        };
        last_words(&mut send, conn, &[bye], Reason::VersionMismatch).await;
        return Ok(());
    }
    // The id the agent claims must be the one its certificate was issued for.
    if agent_id != cn {
        return Err(violation(Violation::IdentityMismatch));
    }
    if capacity > MAX_CAPACITY {
        return Err(violation(Violation::Unexpected("capacity too large")));
    }
    // Whatever it announces, an agent gets at most the configured number of sessions.
    let cap = state.cfg.agent.max_sessions_per_agent;
    let capacity = if capacity > cap {
        tracing::warn!(announced = capacity, cap, "agent capacity capped");
        state.audit(json!({"event": "agent_capacity_capped", "agent": agent_id, "announced": capacity, "cap": cap}));
        cap
    } else {
        capacity
    };
    write_msg(
        &mut send,
        &GatewayToAgent::Welcome {
            version: AGENT_PROTOCOL_VERSION,
        },
        Side::Agent,
    )
    .await?;
    let clock = Arc::new(Mutex::new(ClockEstimator::default()));
    let generation = state.next_id();
    state.audit(json!({
        "event": "agent_connected",
        "agent": agent_id,
        "peer": peer.to_string(),
        "capacity": capacity,
        "browser": browser.version,
        "policy_sha256": browser.policy,
    }));
    tracing::info!(capacity, browser = %browser.version, "agent connected");
    register(
        state, &agent_id, capacity, conn, &clock, generation, browser,
    );
    let link = Link {
        agent_id: &agent_id,
        generation,
        clock: &clock,
    };
    let result = control_loop(state, conn, &mut send, &mut rx, link).await;
    unregister(state, &agent_id, generation);
    state
        .audit(json!({"event": "agent_disconnected", "agent": agent_id, "peer": peer.to_string()}));
    result
}

fn register(
    state: &State,
    id: &str,
    capacity: u16,
    conn: &quinn::Connection,
    clock: &Arc<Mutex<ClockEstimator>>,
    generation: u64,
    browser: BrowserReport,
) {
    let mut hub = state.hub();
    hub.broker.add_agent(id, capacity);
    let old = hub.agents.insert(
        id.to_owned(),
        AgentLink {
            conn: conn.clone(),
            clock: clock.clone(),
            generation,
            cert_not_after: tsuitate_transport::tls::peer_not_after(conn),
            since: std::time::SystemTime::now(),
            browser,
        },
    );
    if let Some(old) = old {
        tracing::warn!("agent reconnected: the previous connection is replaced");
        close_with(&old.conn, Reason::Replaced);
    }
}

fn unregister(state: &State, id: &str, generation: u64) {
    let mut hub = state.hub();
    if hub
        .agents
        .get(id)
        .is_some_and(|a| a.generation == generation)
    {
        hub.agents.remove(id);
        hub.broker.remove_agent(id);
    }
}

fn read_end(e: ReadEnd) -> GatewayError {
    match e {
        ReadEnd::Wire(w) => violation(Violation::Wire(w)),
        ReadEnd::Finished => GatewayError::Closed(Side::Agent),
        ReadEnd::Io(s) => GatewayError::Internal(format!("agent stream: {s}")),
    }
}

/// Which agent connection a control loop serves.
struct Link<'a> {
    agent_id: &'a str,
    /// Its connection's number: a connection replaced by a newer one of the same agent may
    /// still deliver buffered messages, which must not change the newer one's state.
    generation: u64,
    clock: &'a Arc<Mutex<ClockEstimator>>,
}

async fn control_loop(
    state: &Arc<State>,
    conn: &quinn::Connection,
    send: &mut SendStream,
    rx: &mut tokio::sync::mpsc::Receiver<tsuitate_transport::ReadItem<AgentToGateway>>,
    link: Link<'_>,
) -> Result<(), GatewayError> {
    let Link {
        agent_id,
        generation,
        clock,
    } = link;
    let current = |hub: &crate::state::Hub| {
        hub.agents
            .get(agent_id)
            .is_some_and(|a| a.generation == generation)
    };
    let mut ping = interval(state.cfg.agent.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { return Err(GatewayError::Closed(Side::Agent)) };
                match msg.map_err(read_end)? {
                    AgentToGateway::Pong { gateway_us, agent_us, .. } => {
                        lock(clock).sample(gateway_us, agent_us, now_us());
                    }
                    AgentToGateway::Capacity { free } => {
                        let mut hub = state.hub();
                        if current(&hub) {
                            hub.broker.set_reported_free(agent_id, free);
                        }
                    }
                    AgentToGateway::Stats { .. } => {}
                    AgentToGateway::Held { session, owner, lingering } => {
                        let mut hub = state.hub();
                        if current(&hub) && !hub.broker.set_held(agent_id, session, owner, lingering) {
                            return Err(violation(Violation::Unexpected("more held sessions than allowed")));
                        }
                    }
                    AgentToGateway::Released { session } => {
                        let mut hub = state.hub();
                        if current(&hub) {
                            hub.broker.release_held(agent_id, session);
                        }
                    }
                    AgentToGateway::Hello { .. } => {
                        return Err(violation(Violation::Unexpected("second Hello")));
                    }
                }
            }
            _ = ping.tick() => {
                let msg = GatewayToAgent::Ping { nonce: state.next_id(), gateway_us: now_us() };
                write_msg(send, &msg, Side::Agent).await?;
            }
            _ = crate::state::stopped(&mut shutdown) => {
                // Sessions end their streams first (without Close: the browsers linger on the
                // agent): wait (briefly, woken by the registry) until none of this agent's is
                // left.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
                state
                    .wait_hub(deadline, |hub| hub.broker.sessions_on(agent_id) == 0)
                    .await;
                let _ = write_msg(send, &GatewayToAgent::Bye { reason: Reason::Shutdown }, Side::Agent).await;
                let _ = send.finish();
                let _ = timeout(Duration::from_secs(1), conn.closed()).await;
                close_with(conn, Reason::Shutdown);
                return Ok(());
            }
            e = conn.closed() => return Err(GatewayError::Connection(Side::Agent, e)),
        }
    }
}
