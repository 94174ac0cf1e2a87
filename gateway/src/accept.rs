//! The accept loop shared by both QUIC listeners: address validation (Retry), the per-IP
//! connection cap and the handshake timeout.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Side;
use crate::state::{lock, State};

/// Live connections per IP address on one endpoint.
#[derive(Debug, Default)]
pub(crate) struct IpLimiter {
    max: u32,
    live: Mutex<HashMap<IpAddr, u32>>,
}

/// Holds one slot of an [`IpLimiter`] until dropped.
#[derive(Debug)]
pub(crate) struct IpSlot {
    limiter: Arc<IpLimiter>,
    ip: IpAddr,
}

impl IpLimiter {
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(IpLimiter {
            max,
            live: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `ip` (an IPv6 address counts by its /64), or `None` when it already has
    /// `max` connections.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let ip = crate::lockout::address_key(ip);
        let mut live = lock(&self.live);
        let n = live.entry(ip).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            limiter: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut live = lock(&self.limiter.live);
        if let Some(n) = live.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                live.remove(&self.ip);
            }
        }
    }
}

/// Seconds a QUIC/TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accept connections on `endpoint` until shutdown, running `handler` for each.
pub(crate) async fn accept_loop<F, Fut>(
    endpoint: quinn::Endpoint,
    state: Arc<State>,
    side: Side,
    handler: F,
) where
    F: Fn(Arc<State>, quinn::Connection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limiter = IpLimiter::new(state.cfg.quic.max_connections_per_ip);
    let handler = Arc::new(handler);
    let mut shutdown = state.shutdown.clone();
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => i,
            _ = crate::state::stopped(&mut shutdown) => None,
        };
        let Some(incoming) = incoming else { break };
        if state.cfg.quic.retry && !incoming.remote_address_validated() && incoming.may_retry() {
            // Address validation: an unvalidated client must echo a Retry token first.
            let _ = incoming.retry();
            continue;
        }
        let ip = incoming.remote_address().ip();
        let Some(slot) = limiter.acquire(ip) else {
            state
                .metrics
                .connections_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(side = side.name(), %ip, "per-IP connection cap reached: refused");
            incoming.refuse();
            continue;
        };
        let (state, handler) = (state.clone(), handler.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let connecting = match incoming.accept() {
                Ok(c) => c,
                Err(e) => {
                    tracing::info!(side = side.name(), %ip, error = %e, "connection failed");
                    return;
                }
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
                Ok(Ok(conn)) => handler(state, conn).await,
                Ok(Err(e)) => {
                    tracing::info!(side = side.name(), %ip, error = %e, "handshake failed");
                    state.metrics.violation(side.name(), "handshake_failed");
                }
                Err(_) => tracing::info!(side = side.name(), %ip, "handshake timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_cap() {
        let l = IpLimiter::new(2);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = l.acquire(ip).unwrap();
        let _b = l.acquire(ip).unwrap();
        assert!(l.acquire(ip).is_none());
        assert!(l.acquire("10.0.0.1".parse().unwrap()).is_some());
        drop(a);
        assert!(l.acquire(ip).is_some());
    }
}
