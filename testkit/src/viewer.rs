//! The fake viewer: real QUIC (through `tsuitate-transport`), the real protocol, and (unless
//! told not to) a record of every byte it received: it reads raw chunks into the protocol's
//! `MessageBuffer` so that a test can prove which bytes crossed. The relay benchmark uses it
//! too, without the record, on both of its paths.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use quinn::{RecvStream, SendStream, VarInt};
use tsuitate_protocol::{
    GatewayToViewer, Limits, LoginStatus, Message, MessageBuffer, ViewerToGateway, PROTOCOL_VERSION,
};
use tsuitate_transport::Tuning;

/// A connected viewer that reads messages of type `M` (what a gateway sends a viewer, unless
/// a test or benchmark connects it to something else).
pub struct TestViewer<M = GatewayToViewer> {
    pub conn: quinn::Connection,
    pub endpoint: quinn::Endpoint,
    send: SendStream,
    recv: RecvStream,
    buf: MessageBuffer<M>,
    /// Every byte received on the viewer stream (when recording).
    pub raw: Vec<u8>,
    record: bool,
}

impl TestViewer<GatewayToViewer> {
    /// Connect; `window` bounds the stream receive window (small = a slow viewer fills it).
    pub async fn connect(gw: SocketAddr, ca: &Path, window: Option<u32>) -> TestViewer {
        let mut tuning = Tuning::default();
        if let Some(w) = window {
            tuning.stream_receive_window = w;
            tuning.receive_window = w * 2;
        }
        TestViewer::connect_with(gw, ca, &tuning).await
    }
}

impl<M: Message> TestViewer<M> {
    /// Connect with `tuning` and open the viewer stream, recording every byte.
    pub async fn connect_with(gw: SocketAddr, ca: &Path, tuning: &Tuning) -> TestViewer<M> {
        TestViewer::connect_as(gw, ca, tuning, None).await
    }

    /// Connect presenting a client certificate (a trusted front's, or any other).
    pub async fn connect_as(
        gw: SocketAddr,
        ca: &Path,
        tuning: &Tuning,
        identity: Option<(&Path, &Path)>,
    ) -> TestViewer<M> {
        let cfg = tsuitate_transport::client_config_from_files(ca, identity, tuning).unwrap();
        let endpoint = tsuitate_transport::client_endpoint(gw, cfg).unwrap();
        let conn = endpoint.connect(gw, "localhost").unwrap().await.unwrap();
        let (send, recv) = conn.open_bi().await.unwrap();
        TestViewer {
            conn,
            endpoint,
            send,
            recv,
            buf: MessageBuffer::new(Limits::default()),
            raw: Vec::new(),
            record: true,
        }
    }

    /// Stop recording received bytes (long runs, benchmarks).
    pub fn without_record(mut self) -> Self {
        self.record = false;
        self.raw = Vec::new();
        self
    }

    pub async fn send(&mut self, m: &ViewerToGateway) -> bool {
        tsuitate_transport::write(&mut self.send, m).await.is_ok()
    }

    /// Tell the gateway we will read nothing more (STOP_SENDING on the viewer stream).
    pub fn stop_reading(&mut self) {
        let _ = self.recv.stop(VarInt::from_u32(0));
    }

    pub async fn send_raw(&mut self, b: &[u8]) -> bool {
        self.send.write_all(b).await.is_ok()
    }

    /// The next message within `limit`; `None` on timeout, end of stream or error.
    pub async fn next(&mut self, limit: Duration) -> Option<M> {
        tokio::time::timeout(limit, self.next_inner())
            .await
            .ok()
            .flatten()
    }

    async fn next_inner(&mut self) -> Option<M> {
        loop {
            if let Ok(Some(m)) = self.buf.next_message() {
                return Some(m);
            }
            match self.recv.read_chunk(256 * 1024, true).await {
                Ok(Some(c)) => {
                    if self.record {
                        self.raw.extend_from_slice(&c.bytes);
                    }
                    self.buf.push(&c.bytes);
                }
                _ => return None,
            }
        }
    }

    /// Close the connection.
    pub fn close(&self) {
        tsuitate_transport::close(&self.conn, tsuitate_protocol::Reason::Normal);
    }
}

impl TestViewer<GatewayToViewer> {
    /// Hello + Login; returns the login status.
    pub async fn login(&mut self, user: &str, password: &str) -> (LoginStatus, u32) {
        self.login_for(user, password, None).await
    }

    /// Hello, `Forwarded { client }` when given (as a trusted front does), Login; returns the
    /// login status.
    pub async fn login_for(
        &mut self,
        user: &str,
        password: &str,
        client: Option<SocketAddr>,
    ) -> (LoginStatus, u32) {
        assert!(
            self.send(&ViewerToGateway::Hello {
                version: PROTOCOL_VERSION
            })
            .await
        );
        let welcome = self.next(Duration::from_secs(10)).await;
        assert!(
            matches!(welcome, Some(GatewayToViewer::Welcome { .. })),
            "{welcome:?}"
        );
        if let Some(client) = client {
            assert!(self.send(&ViewerToGateway::Forwarded { client }).await);
        }
        let login = ViewerToGateway::Login {
            user: user.into(),
            password: password.into(),
        };
        assert!(self.send(&login).await);
        match self.next(Duration::from_secs(20)).await {
            Some(GatewayToViewer::LoginResult {
                status,
                retry_after_s,
            }) => (status, retry_after_s),
            other => panic!("expected LoginResult, got {other:?}"),
        }
    }

    /// Log in with the fixture's password and wait for `SessionReady`; returns `resumed`.
    pub async fn login_ready(&mut self, user: &str) -> bool {
        self.login_ready_as(user, crate::fixture::PASSWORD).await
    }

    /// Log in and wait for `SessionReady`; returns `resumed`.
    pub async fn login_ready_as(&mut self, user: &str, password: &str) -> bool {
        let (status, _) = self.login(user, password).await;
        assert_eq!(status, LoginStatus::Ok);
        match self.next(Duration::from_secs(20)).await {
            Some(GatewayToViewer::SessionReady { resumed, .. }) => resumed,
            other => panic!("expected SessionReady, got {other:?}"),
        }
    }

    /// Read until a `Bye` (returned) or the stream ends (`None`), collecting video on the way.
    pub async fn until_bye(
        &mut self,
        limit: Duration,
    ) -> (Option<tsuitate_protocol::Reason>, usize) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut frames = 0;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(GatewayToViewer::Bye { reason }) => return (Some(reason), frames),
                Some(GatewayToViewer::Video(_)) => frames += 1,
                Some(_) => {}
                None => return (None, frames),
            }
        }
    }

    /// Collect `n` video frames (other messages are skipped).
    pub async fn frames(
        &mut self,
        n: usize,
        limit: Duration,
    ) -> Vec<tsuitate_protocol::VideoFrame> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(GatewayToViewer::Video(f)) => out.push(f),
                Some(GatewayToViewer::Bye { reason }) => {
                    panic!("Bye {reason:?} after {} frames", out.len())
                }
                Some(_) => {}
                None => break,
            }
        }
        out
    }
}
