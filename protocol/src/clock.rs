//! Clock offset from Ping/Pong round trips (docs/protocol.md §3.2), sans-IO: the caller passes
//! every time in.
//!
//! One side stamps a ping with its clock (`sent_us`), the other answers with its own clock
//! (`remote_us`), and the pong arrives at `now_us`. The round trip is `now_us - sent_us`; the
//! remote clock is assumed to have been read half-way: `offset = remote_us - (sent_us + rtt/2)`.
//! Of the last [`ClockEstimator::SAMPLES`] samples the one with the smallest round trip wins
//! (least queueing noise); older samples are forgotten so that a drifting clock is followed.
//! The gateway uses it for each agent, the viewer for its gateway.

/// Clock offset estimator for one peer.
#[derive(Debug, Clone, Default)]
pub struct ClockEstimator {
    /// `(rtt_us, offset_us)`, oldest first, at most `SAMPLES`.
    samples: [(u64, i64); Self::SAMPLES],
    len: usize,
    next: usize,
}

impl ClockEstimator {
    /// How many recent samples are kept.
    pub const SAMPLES: usize = 8;
    /// Round trips longer than this (10 s) are not samples but stale echoes.
    pub const MAX_RTT_US: u64 = 10_000_000;

    /// Take a pong. Returns the round trip in µs, or `None` for an impossible sample (an echo
    /// from the future, or an offset that does not fit), which is ignored. A round trip over
    /// [`Self::MAX_RTT_US`] is returned but not used.
    pub fn sample(&mut self, sent_us: u64, remote_us: u64, now_us: u64) -> Option<u64> {
        let rtt = now_us.checked_sub(sent_us)?;
        let mid = i128::from(sent_us) + i128::from(rtt / 2);
        let offset = i64::try_from(i128::from(remote_us) - mid).ok()?;
        if rtt <= Self::MAX_RTT_US {
            self.samples[self.next] = (rtt, offset);
            self.next = (self.next + 1) % Self::SAMPLES;
            self.len = (self.len + 1).min(Self::SAMPLES);
        }
        Some(rtt)
    }

    fn kept(&self) -> &[(u64, i64)] {
        &self.samples[..self.len]
    }

    /// Remote clock minus local clock in µs, from the best recent sample, if any.
    pub fn offset(&self) -> Option<i64> {
        self.kept().iter().min_by_key(|(rtt, _)| *rtt).map(|s| s.1)
    }

    /// The smallest recent round trip in µs.
    pub fn rtt_us(&self) -> Option<u64> {
        self.kept().iter().map(|s| s.0).min()
    }

    /// A remote time in the local clock. Without a sample yet, or for a value that lands in
    /// the local future, `now_us` is used.
    pub fn to_local(&self, remote_us: u64, now_us: u64) -> u64 {
        let Some(off) = self.offset() else {
            return now_us;
        };
        match u64::try_from(i128::from(remote_us) - i128::from(off)) {
            Ok(t) if t <= now_us => t,
            _ => now_us,
        }
    }

    /// The remote clock now, estimated from the local `now_us` (the local clock itself
    /// without a sample).
    pub fn remote_now(&self, now_us: u64) -> i128 {
        i128::from(now_us) + i128::from(self.offset().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_from_symmetric_round_trip() {
        let mut c = ClockEstimator::default();
        // Remote clock is 5 s ahead; 2 ms round trip.
        assert_eq!(c.sample(1_000_000, 6_001_000, 1_002_000), Some(2_000));
        assert_eq!(c.offset(), Some(5_000_000));
        assert_eq!(c.to_local(6_010_000, 1_020_000), 1_010_000);
        assert_eq!(c.remote_now(1_000_000), 6_000_000);
    }

    #[test]
    fn smallest_recent_rtt_wins_and_future_is_clamped() {
        let mut c = ClockEstimator::default();
        c.sample(0, 100_000, 50_000); // rtt 50 ms, offset 75 ms
        c.sample(1_000_000, 1_001_000, 1_002_000); // rtt 2 ms, offset 0
        assert_eq!(c.offset(), Some(0));
        assert_eq!(c.rtt_us(), Some(2_000));
        assert_eq!(c.to_local(9_000_000, 2_000_000), 2_000_000);
        let empty = ClockEstimator::default();
        assert_eq!(empty.to_local(5, 77), 77);
        assert_eq!(empty.offset(), None);
        // A pong before its ping is impossible: ignored.
        assert_eq!(c.sample(10, 0, 5), None);
        assert_eq!(c.kept().len(), 2);
        // A stale echo is reported but not used.
        assert_eq!(c.sample(0, 0, 20_000_000), Some(20_000_000));
        assert_eq!(c.kept().len(), 2);
    }

    #[test]
    fn the_best_sample_is_forgotten_after_eight_newer_ones() {
        let mut c = ClockEstimator::default();
        c.sample(0, 1_000, 1_000); // rtt 1 ms, offset 500 µs
        for i in 1..=7u64 {
            c.sample(i * 1_000_000, i * 1_000_000 + 9_000, i * 1_000_000 + 10_000);
            // rtt 10 ms, offset 4 ms
        }
        assert_eq!(c.offset(), Some(500));
        c.sample(9_000_000, 9_009_000, 9_010_000);
        // The clock drifted: the old best sample is gone.
        assert_eq!(c.offset(), Some(4_000));
        assert_eq!(c.rtt_us(), Some(10_000));
    }
}
