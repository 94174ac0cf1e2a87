//! The gateway clock as the viewer sees it, from Ping/Pong (docs/protocol.md §5.1).
//!
//! `VideoHeader::capture_us` is in the gateway's clock (µs since the UNIX epoch). On one host the
//! clocks agree; across hosts the viewer estimates `offset = gateway − viewer` with the protocol
//! crate's [`ClockEstimator`] (the same estimator the gateway uses for its agents), shared between
//! the session task and the decode thread.

use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tsuitate_protocol::ClockEstimator;

/// Microseconds since the UNIX epoch on this machine (0 if the clock is before 1970).
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The estimated offset between the gateway clock and ours.
#[derive(Debug, Default)]
pub struct ClockOffset(Mutex<ClockEstimator>);

impl ClockOffset {
    fn with<T>(&self, f: impl FnOnce(&mut ClockEstimator) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Take a Pong: `sent_us` is our clock when the Ping left (echoed back by the gateway),
    /// `gateway_us` the gateway clock when it answered, `now_us` our clock now. Returns the RTT
    /// in µs, or `None` for an impossible sample (an echo from the future), which is ignored.
    pub fn on_pong(&self, sent_us: u64, gateway_us: u64, now_us: u64) -> Option<u64> {
        self.with(|c| c.sample(sent_us, gateway_us, now_us))
    }

    /// Gateway clock minus viewer clock, in µs (0 before the first Pong).
    pub fn offset_us(&self) -> i64 {
        self.with(|c| c.offset()).unwrap_or(0)
    }

    /// The best recent round trip, if any.
    pub fn best_rtt_us(&self) -> Option<u64> {
        self.with(|c| c.rtt_us())
    }

    /// Latency from a capture time (gateway clock) to now, in µs; 0 if the capture time is
    /// ahead of our estimate of the gateway clock.
    pub fn latency_since(&self, capture_us: u64) -> u32 {
        let now_gw = self.with(|c| c.remote_now(unix_us()));
        let lat = now_gw - i128::from(capture_us);
        u32::try_from(lat.max(0)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_from_best_round_trip() {
        let c = ClockOffset::default();
        assert_eq!(c.offset_us(), 0);
        assert_eq!(c.best_rtt_us(), None);
        // gateway is 1 s ahead; RTT 1000 µs.
        assert_eq!(c.on_pong(10_000, 1_010_500, 11_000), Some(1000));
        assert_eq!(c.offset_us(), 1_000_000);
        // a slower sample does not replace it
        c.on_pong(20_000, 1_030_000, 30_000);
        assert_eq!(c.offset_us(), 1_000_000);
        assert_eq!(c.best_rtt_us(), Some(1000));
        // an echo from the future is ignored
        assert_eq!(c.on_pong(50_000, 0, 40_000), None);
    }

    #[test]
    fn latency_uses_the_gateway_clock() {
        let c = ClockOffset::default();
        // The gateway is 10 s behind us: a frame it stamped 10 s ago (its clock) is fresh.
        let now = unix_us();
        c.on_pong(now, now - 10_000_000, now);
        let lat = c.latency_since(now - 10_000_000);
        assert!(lat < 5_000_000, "latency {lat} µs");
    }
}
