//! A minimal host agent for the relay benchmark: real QUIC with the agent certificate, the
//! real protocol (Hello, Pong, Started), and a session stream the benchmark writes
//! pre-encoded video messages into.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use quinn::SendStream;
use tokio::sync::mpsc;
use tsuitate_protocol::{
    AgentSessionToGateway, AgentToGateway, GatewayToAgent, GatewayToAgentSession, Message,
    PROTOCOL_VERSION,
};

use super::reader::MessageStream;
use super::wall_us;
use crate::BenchError;

/// A connected bench agent.
pub struct BenchAgent {
    /// Its endpoint (kept open while the agent lives).
    pub endpoint: quinn::Endpoint,
    /// Its connection to the gateway.
    pub conn: quinn::Connection,
    /// Keyframe requests the gateway sent (the benchmark ignores them).
    pub keyframe_requests: Arc<AtomicU64>,
    sessions: mpsc::Receiver<SendStream>,
}

fn err(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::new(format!("agent {what}: {e}"))
}

/// A quinn client endpoint on 127.0.0.1 with `cfg` as its default.
pub fn client_endpoint(cfg: quinn::ClientConfig) -> Result<quinn::Endpoint, BenchError> {
    let mut ep = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))
        .map_err(|e| err("endpoint", e))?;
    ep.set_default_client_config(cfg);
    Ok(ep)
}

impl BenchAgent {
    /// Connect to the gateway's agent listener and register with `capacity` 1.
    pub async fn connect(
        gw: SocketAddr,
        ca: &Path,
        identity: (&Path, &Path),
        agent_id: &str,
    ) -> Result<BenchAgent, BenchError> {
        let cfg = tsuitate_transport::client_config_from_files(
            ca,
            Some(identity),
            &tsuitate_transport::Tuning::default(),
        )
        .map_err(|e| err("tls", e))?;
        let endpoint = client_endpoint(cfg)?;
        let conn = endpoint
            .connect(gw, "localhost")
            .map_err(|e| err("connect", e))?
            .await
            .map_err(|e| err("handshake", e))?;
        let (mut send, recv) = conn.open_bi().await.map_err(|e| err("open", e))?;
        let hello = AgentToGateway::Hello {
            version: PROTOCOL_VERSION,
            agent_id: agent_id.into(),
            capacity: 1,
        };
        send.write_all(&hello.to_bytes())
            .await
            .map_err(|e| err("hello", e))?;
        let mut control = MessageStream::<GatewayToAgent>::new(recv);
        match control.next(Duration::from_secs(10)).await {
            Ok(GatewayToAgent::Welcome { .. }) => {}
            other => return Err(err("welcome", format!("{other:?}"))),
        }
        tokio::spawn(control_loop(send, control));
        let keyframe_requests = Arc::new(AtomicU64::new(0));
        let (tx, sessions) = mpsc::channel(1);
        tokio::spawn(accept_sessions(conn.clone(), tx, keyframe_requests.clone()));
        Ok(BenchAgent {
            endpoint,
            conn,
            keyframe_requests,
            sessions,
        })
    }

    /// The next session the gateway opened on this agent, started and ready for video.
    pub async fn next_session(&mut self, limit: Duration) -> Result<SendStream, BenchError> {
        match tokio::time::timeout(limit, self.sessions.recv()).await {
            Ok(Some(s)) => Ok(s),
            _ => Err(BenchError::new("agent: no session was opened")),
        }
    }
}

async fn control_loop(mut send: SendStream, mut rx: MessageStream<GatewayToAgent>) {
    while let Ok(m) = rx.next(Duration::from_secs(3600)).await {
        if let GatewayToAgent::Ping { nonce, gateway_us } = m {
            let pong = AgentToGateway::Pong {
                nonce,
                gateway_us,
                agent_us: wall_us(),
            };
            if send.write_all(&pong.to_bytes()).await.is_err() {
                return;
            }
        }
    }
}

async fn accept_sessions(
    conn: quinn::Connection,
    tx: mpsc::Sender<SendStream>,
    keyframe_requests: Arc<AtomicU64>,
) {
    while let Ok((mut send, recv)) = conn.accept_bi().await {
        let mut rx = MessageStream::<GatewayToAgentSession>::new(recv);
        let Ok(GatewayToAgentSession::Open { width, height, .. }) =
            rx.next(Duration::from_secs(10)).await
        else {
            continue;
        };
        let started = AgentSessionToGateway::Started { width, height };
        if send.write_all(&started.to_bytes()).await.is_err() {
            continue;
        }
        tokio::spawn(drain_session(rx, keyframe_requests.clone()));
        if tx.send(send).await.is_err() {
            return;
        }
    }
}

/// Read (and count) what the gateway sends on a session stream until it ends.
async fn drain_session(mut rx: MessageStream<GatewayToAgentSession>, kf: Arc<AtomicU64>) {
    while let Ok(m) = rx.next(Duration::from_secs(3600)).await {
        match m {
            GatewayToAgentSession::KeyframeRequest => {
                kf.fetch_add(1, Relaxed);
            }
            GatewayToAgentSession::Close { .. } => return,
            _ => {}
        }
    }
}

/// Drop guard helper: a stream the benchmark no longer writes to.
pub fn finish(mut send: SendStream) {
    let _ = send.finish();
}
