//! The receiving end of the relay benchmark: a viewer that logs in to the gateway, or one that
//! takes the bare forward's bytes. Both parse every message (a real viewer must), so the two
//! paths differ only in what sits in the middle.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use quinn::SendStream;
use tsuitate_protocol::{
    AgentSessionToGateway, GatewayToViewer, LoginStatus, Message, VideoFrame, ViewerToGateway,
    PROTOCOL_VERSION,
};

use super::agent::client_endpoint;
use super::reader::MessageStream;
use crate::BenchError;

enum Stream {
    Gateway(MessageStream<GatewayToViewer>),
    Forward(MessageStream<AgentSessionToGateway>),
}

/// A connected viewer.
pub struct BenchViewer {
    /// Its endpoint.
    pub endpoint: quinn::Endpoint,
    /// Its connection.
    pub conn: quinn::Connection,
    _send: SendStream,
    stream: Stream,
}

fn err(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::new(format!("viewer {what}: {e}"))
}

async fn connect(
    addr: SocketAddr,
    ca: &Path,
) -> Result<(quinn::Endpoint, quinn::Connection), BenchError> {
    let cfg = tsuitate_transport::client_config_from_files(
        ca,
        None,
        &tsuitate_transport::Tuning::default(),
    )
    .map_err(|e| err("tls", e))?;
    let endpoint = client_endpoint(cfg)?;
    let conn = endpoint
        .connect(addr, "localhost")
        .map_err(|e| err("connect", e))?
        .await
        .map_err(|e| err("handshake", e))?;
    Ok((endpoint, conn))
}

impl BenchViewer {
    /// Log in to the gateway at `addr` and wait for the session to be ready.
    pub async fn gateway(
        addr: SocketAddr,
        ca: &Path,
        user: &str,
        password: &str,
    ) -> Result<BenchViewer, BenchError> {
        let (endpoint, conn) = connect(addr, ca).await?;
        let (mut send, recv) = conn.open_bi().await.map_err(|e| err("open", e))?;
        let mut rx = MessageStream::<GatewayToViewer>::new(recv);
        let limit = Duration::from_secs(20);
        let hello = ViewerToGateway::Hello {
            version: PROTOCOL_VERSION,
        };
        send.write_all(&hello.to_bytes())
            .await
            .map_err(|e| err("hello", e))?;
        match rx.next(limit).await? {
            GatewayToViewer::Welcome { .. } => {}
            other => return Err(err("welcome", format!("{other:?}"))),
        }
        let login = ViewerToGateway::Login {
            user: user.into(),
            password: password.into(),
        };
        send.write_all(&login.to_bytes())
            .await
            .map_err(|e| err("login", e))?;
        match rx.next(limit).await? {
            GatewayToViewer::LoginResult {
                status: LoginStatus::Ok,
                ..
            } => {}
            other => return Err(err("login", format!("{other:?}"))),
        }
        match rx.next(limit).await? {
            GatewayToViewer::SessionReady { .. } => {}
            other => return Err(err("session", format!("{other:?}"))),
        }
        Ok(BenchViewer {
            endpoint,
            conn,
            _send: send,
            stream: Stream::Gateway(rx),
        })
    }

    /// Connect to the bare forward's viewer side.
    pub async fn forward(addr: SocketAddr, ca: &Path) -> Result<BenchViewer, BenchError> {
        let (endpoint, conn) = connect(addr, ca).await?;
        let (mut send, recv) = conn.open_bi().await.map_err(|e| err("open", e))?;
        // A stream exists for the peer only once something is written on it.
        send.write_all(&[1]).await.map_err(|e| err("hello", e))?;
        Ok(BenchViewer {
            endpoint,
            conn,
            _send: send,
            stream: Stream::Forward(MessageStream::new(recv)),
        })
    }

    /// The next video frame (other messages are skipped).
    pub async fn next_video(&mut self, limit: Duration) -> Result<VideoFrame, BenchError> {
        loop {
            match &mut self.stream {
                Stream::Gateway(rx) => match rx.next(limit).await? {
                    GatewayToViewer::Video(f) => return Ok(f),
                    GatewayToViewer::Bye { reason } => {
                        return Err(err("bye", reason.message_en()));
                    }
                    _ => {}
                },
                Stream::Forward(rx) => {
                    if let AgentSessionToGateway::Video(f) = rx.next(limit).await? {
                        return Ok(f);
                    }
                }
            }
        }
    }

    /// Close the connection.
    pub fn close(&self) {
        self.conn.close(0u32.into(), b"done");
    }
}
