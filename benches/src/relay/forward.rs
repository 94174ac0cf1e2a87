//! The baseline: a bare quinn forward of the same bytes. One server with the gateway's own two
//! endpoint configurations (same TLS, same transport limits); it takes one viewer connection
//! and one agent connection and copies every chunk the agent sends to the viewer, untouched.
//! No parsing, no sanitizing, no re-framing: the cost of QUIC alone.

use std::net::SocketAddr;

use quinn::{Endpoint, SendStream};
use tokio::task::JoinHandle;
use tsuitate_gateway::config::Config;

use crate::BenchError;

/// A running forward.
pub struct BareForward {
    /// Where the agent connects (client certificate required, as at the gateway).
    pub agent_addr: SocketAddr,
    /// Where the viewer connects.
    pub viewer_addr: SocketAddr,
    endpoints: [Endpoint; 2],
    task: JoinHandle<Result<u64, BenchError>>,
}

fn err(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::new(format!("forward {what}: {e}"))
}

impl BareForward {
    /// Bind both endpoints on 127.0.0.1 with the TLS and QUIC settings of `cfg` and start
    /// waiting for the viewer (first) and the agent.
    pub fn start(cfg: &Config) -> Result<BareForward, BenchError> {
        let agent_cfg =
            tsuitate_gateway::tls::agent_server_config(cfg).map_err(|e| err("tls", e))?;
        let viewer_cfg =
            tsuitate_gateway::tls::viewer_server_config(cfg).map_err(|e| err("tls", e))?;
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let agent_ep = Endpoint::server(agent_cfg, any).map_err(|e| err("bind", e))?;
        let viewer_ep = Endpoint::server(viewer_cfg, any).map_err(|e| err("bind", e))?;
        let agent_addr = agent_ep.local_addr().map_err(|e| err("addr", e))?;
        let viewer_addr = viewer_ep.local_addr().map_err(|e| err("addr", e))?;
        let task = tokio::spawn(run(agent_ep.clone(), viewer_ep.clone()));
        Ok(BareForward {
            agent_addr,
            viewer_addr,
            endpoints: [agent_ep, viewer_ep],
            task,
        })
    }

    /// Close both endpoints; returns the bytes forwarded.
    pub async fn stop(self) -> Result<u64, BenchError> {
        for ep in &self.endpoints {
            ep.close(0u32.into(), b"done");
        }
        self.task.abort();
        match self.task.await {
            Ok(r) => r,
            Err(_) => Ok(0),
        }
    }
}

async fn accept(ep: &Endpoint) -> Result<quinn::Connection, BenchError> {
    let incoming = ep.accept().await.ok_or_else(|| err("accept", "closed"))?;
    incoming.await.map_err(|e| err("handshake", e))
}

async fn run(agent_ep: Endpoint, viewer_ep: Endpoint) -> Result<u64, BenchError> {
    let viewer = accept(&viewer_ep).await?;
    let (to_viewer, mut hello) = viewer.accept_bi().await.map_err(|e| err("viewer", e))?;
    let mut one = [0u8; 1];
    hello
        .read_exact(&mut one)
        .await
        .map_err(|e| err("viewer hello", e))?;
    let agent = accept(&agent_ep).await?;
    let (_, from_agent) = agent.accept_bi().await.map_err(|e| err("agent", e))?;
    copy(from_agent, to_viewer).await
}

async fn copy(mut from: quinn::RecvStream, mut to: SendStream) -> Result<u64, BenchError> {
    let mut total = 0u64;
    while let Some(chunk) = from
        .read_chunk(usize::MAX, true)
        .await
        .map_err(|e| err("read", e))?
    {
        total += chunk.bytes.len() as u64;
        to.write_chunk(chunk.bytes)
            .await
            .map_err(|e| err("write", e))?;
    }
    Ok(total)
}
