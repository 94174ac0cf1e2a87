//! The gateway clock as the viewer sees it, from Ping/Pong (docs/protocol.md §5.1).
//!
//! `VideoHeader::capture_us` is in the gateway's clock (µs since the UNIX epoch). On one host the
//! clocks agree; across hosts the viewer estimates `offset = gateway − viewer` from the Pong with
//! the smallest round trip, assuming the gateway read its clock half-way through it.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the UNIX epoch on this machine (0 if the clock is before 1970).
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The estimated offset between the gateway clock and ours.
#[derive(Debug)]
pub struct ClockOffset {
    offset_us: AtomicI64,
    best_rtt_us: AtomicU64,
}

impl Default for ClockOffset {
    fn default() -> Self {
        ClockOffset {
            offset_us: AtomicI64::new(0),
            best_rtt_us: AtomicU64::new(u64::MAX),
        }
    }
}

impl ClockOffset {
    /// Take a Pong: `sent_us` is our clock when the Ping left (echoed back by the gateway),
    /// `gateway_us` the gateway clock when it answered, `now_us` our clock now. Returns the RTT
    /// in µs, or `None` for an impossible sample (an echo from the future), which is ignored.
    pub fn on_pong(&self, sent_us: u64, gateway_us: u64, now_us: u64) -> Option<u64> {
        let rtt = now_us.checked_sub(sent_us)?;
        if rtt <= self.best_rtt_us.load(Ordering::Relaxed) {
            self.best_rtt_us.store(rtt, Ordering::Relaxed);
            let mid = i128::from(sent_us) + i128::from(rtt / 2);
            let off = i128::from(gateway_us) - mid;
            let off = i64::try_from(off).unwrap_or(0);
            self.offset_us.store(off, Ordering::Relaxed);
        }
        Some(rtt)
    }

    /// Gateway clock minus viewer clock, in µs.
    pub fn offset_us(&self) -> i64 {
        self.offset_us.load(Ordering::Relaxed)
    }

    /// The best round trip seen, if any.
    pub fn best_rtt_us(&self) -> Option<u64> {
        match self.best_rtt_us.load(Ordering::Relaxed) {
            u64::MAX => None,
            v => Some(v),
        }
    }

    /// Latency from a capture time (gateway clock) to now, in µs; 0 if the capture time is
    /// ahead of our estimate of the gateway clock.
    pub fn latency_since(&self, capture_us: u64) -> u32 {
        let now_gw = i128::from(unix_us()) + i128::from(self.offset_us());
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
}
