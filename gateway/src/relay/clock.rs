//! Agent clock offset from ping/pong (sans-IO; docs/protocol.md §3.2).
//!
//! The gateway sends `Ping{gateway_us}`; the agent answers `Pong{gateway_us, agent_us}`; at
//! receive time `t4` the round trip is `t4 - gateway_us` and the agent clock is assumed to
//! have read `agent_us` half-way: `offset = agent_us - (gateway_us + rtt/2)`. Of the recent
//! samples, the one with the smallest round trip wins (least queueing noise).

use std::collections::VecDeque;

const SAMPLES: usize = 8;

/// Clock offset estimator for one agent.
#[derive(Debug, Clone, Default)]
pub struct ClockSync {
    samples: VecDeque<(u64, i64)>,
}

impl ClockSync {
    /// Add a pong received at gateway time `now_us`. Implausible samples are ignored.
    pub fn pong(&mut self, gateway_us: u64, agent_us: u64, now_us: u64) {
        let Some(rtt) = now_us.checked_sub(gateway_us) else {
            return;
        };
        if rtt > 10_000_000 {
            return;
        }
        let mid = i128::from(gateway_us) + i128::from(rtt / 2);
        let offset = i128::from(agent_us) - mid;
        let Ok(offset) = i64::try_from(offset) else {
            return;
        };
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((rtt, offset));
    }

    /// The best offset estimate (agent minus gateway, µs), if any sample arrived.
    pub fn offset(&self) -> Option<i64> {
        self.samples.iter().min_by_key(|(rtt, _)| *rtt).map(|s| s.1)
    }

    /// The smallest recent round trip in µs.
    pub fn rtt_us(&self) -> Option<u64> {
        self.samples.iter().map(|s| s.0).min()
    }

    /// Convert an agent capture time to the gateway clock. Without a sample yet, or for a
    /// value that lands in the future, the receive time `now_us` is used.
    pub fn to_gateway(&self, agent_us: u64, now_us: u64) -> u64 {
        let Some(off) = self.offset() else {
            return now_us;
        };
        let t = i128::from(agent_us) - i128::from(off);
        match u64::try_from(t) {
            Ok(t) if t <= now_us => t,
            _ => now_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_from_symmetric_round_trip() {
        let mut c = ClockSync::default();
        // Agent clock is 5 s ahead; 2 ms RTT.
        c.pong(1_000_000, 6_001_000, 1_002_000);
        assert_eq!(c.offset(), Some(5_000_000));
        assert_eq!(c.to_gateway(6_010_000, 1_020_000), 1_010_000);
    }

    #[test]
    fn smallest_rtt_wins_and_future_is_clamped() {
        let mut c = ClockSync::default();
        c.pong(0, 100_000, 50_000); // rtt 50 ms, offset 75 ms
        c.pong(1_000_000, 1_001_000, 1_002_000); // rtt 2 ms, offset 0
        assert_eq!(c.offset(), Some(0));
        assert_eq!(c.rtt_us(), Some(2_000));
        assert_eq!(c.to_gateway(9_000_000, 2_000_000), 2_000_000);
        let empty = ClockSync::default();
        assert_eq!(empty.to_gateway(5, 77), 77);
        c.pong(10, 0, 5); // pong before ping: ignored
        assert_eq!(c.samples.len(), 2);
    }
}
