//! tsuitate's test kit, written once for every crate's tests, the end-to-end tests and the
//! benches (the role linkerd's `app/test` plays):
//!
//! - [`pki`]: a CA, a gateway certificate and agent certificates, made by the gateway's own
//!   `ca init` / `ca issue-agent` code, in a temporary directory.
//! - [`fixture`]: an in-process gateway with users, audit log and config on port 0.
//! - [`agent`]: the fake agent (real QUIC with a client certificate, the real protocol,
//!   synthetic H.264; it can turn hostile).
//! - [`viewer`]: the fake viewer (real QUIC, the real protocol, every byte recorded).
//! - [`viewer_gateway`] and [`agent_gateway`]: fake gateways for testing the viewer and the
//!   agent on their own.
//! - [`frames`]: synthetic H.264 (openh264) and hostile variants.
//! - [`stack`], [`procs`], [`page`]: the real binaries as processes on loopback, a local test
//!   page, and process supervision.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod agent;
pub mod agent_gateway;
pub mod cdp;
pub mod fixture;
pub mod frames;
pub mod page;
pub mod picture;
pub mod pki;
pub mod procs;
pub mod redis;
pub mod stack;
pub mod viewer;
pub mod viewer_gateway;
pub mod web;

pub use page::TestPage;
pub use procs::{bin, descendants, Child};
pub use stack::{RunningViewer, Stack, ViewerRun};

use std::future::Future;
use std::time::Duration;

use quinn::{RecvStream, SendStream};
use tsuitate_protocol::{Limits, Message};
use tsuitate_transport::MessageReader;

/// Typed messages from a stream, for test peers.
pub struct Reader<M> {
    reader: MessageReader<M>,
    limit: Option<Duration>,
}

impl<M: Message> Reader<M> {
    /// Read `recv` with the default limits; [`Reader::next`] waits as long as it takes.
    pub fn new(recv: RecvStream) -> Self {
        Reader {
            reader: MessageReader::new(recv, Limits::default()),
            limit: None,
        }
    }

    /// The same, but each [`Reader::next`] gives up after `limit` (a liveness bound for a
    /// test, not a timing assertion).
    pub fn with_limit(recv: RecvStream, limit: Duration) -> Self {
        Reader {
            limit: Some(limit),
            ..Reader::new(recv)
        }
    }

    /// The next message; `None` at the end of the stream, on any error, or after the limit.
    pub async fn next(&mut self) -> Option<M> {
        let read = self.reader.read();
        let r = match self.limit {
            Some(limit) => tokio::time::timeout(limit, read).await.ok()?,
            None => read.await,
        };
        r.ok().flatten()
    }
}

/// Write one message; panics if the stream fails (test peers only).
pub async fn send<M: Message>(s: &mut SendStream, m: &M) {
    tsuitate_transport::write(s, m).await.expect("write");
}

/// Poll `f` every 20 ms until it returns true or `limit` passes (a liveness bound, not a
/// timing assertion).
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
