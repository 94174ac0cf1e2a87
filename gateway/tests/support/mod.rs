//! Reusable test peers for the gateway: a PKI + config fixture, a synthetic host agent that
//! sends openh264-encoded frames (and can turn hostile), and a test viewer speaking the
//! protocol over real QUIC. Each integration test file includes this with `mod support;`.
#![allow(dead_code, clippy::unwrap_used)]

pub mod agent;
pub mod fixture;
pub mod frames;
pub mod viewer;

use std::future::Future;
use std::time::Duration;

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
