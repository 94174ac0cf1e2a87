//! Prometheus text metrics (docs/gateway.md §Metrics). Counters are atomics; labelled counters
//! with open label sets (violation codes, end reasons) sit behind a small mutex.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Latency histogram bucket bounds in microseconds.
const LATENCY_BUCKETS_US: [u64; 10] = [
    5_000, 10_000, 20_000, 33_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000,
];

/// A cumulative histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 10],
    count: AtomicU64,
    sum: AtomicU64,
}

impl Histogram {
    /// Record one value.
    pub fn observe(&self, v: u64) {
        for (b, bound) in self.buckets.iter().zip(LATENCY_BUCKETS_US) {
            if v <= bound {
                b.fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, bound) in self.buckets.iter().zip(LATENCY_BUCKETS_US) {
            let le = bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {}", b.load(Relaxed));
        }
        let count = self.count.load(Relaxed);
        let sum = self.sum.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// All gateway metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Sessions started.
    pub sessions_started: AtomicU64,
    /// Sessions resumed by a reconnecting viewer.
    pub sessions_resumed: AtomicU64,
    /// Sessions whose browser an agent held (lingering after its gateway was lost, or
    /// carried by another gateway) taken over through this gateway.
    pub sessions_resumed_on_agent: AtomicU64,
    /// Frames relayed to viewers.
    pub frames_relayed: AtomicU64,
    /// Access-unit bytes relayed to viewers.
    pub bytes_relayed: AtomicU64,
    /// Frames dropped for a slow viewer.
    pub frames_dropped_slow_viewer: AtomicU64,
    /// Frames dropped because an agent exceeded `limits.max_fps`.
    pub frames_dropped_fps: AtomicU64,
    /// Commands from a viewer that was no longer the session's (replaced), ignored.
    pub stale_viewer_commands: AtomicU64,
    /// Keyframe requests sent to agents.
    pub keyframe_requests: AtomicU64,
    /// NAL units dropped by the sanitizer, by type.
    pub sanitizer_dropped: [AtomicU64; 32],
    /// Access units refused by the sanitizer.
    pub sanitizer_refused: AtomicU64,
    /// Successful logins.
    pub login_success: AtomicU64,
    /// Failed logins (wrong password, unknown or disabled user).
    pub login_denied: AtomicU64,
    /// Logins refused because of a lockout.
    pub login_locked_out: AtomicU64,
    /// Logins refused because no agent had capacity.
    pub login_no_capacity: AtomicU64,
    /// Input events forwarded to agents.
    pub input_events: AtomicU64,
    /// Input events dropped by rate limits.
    pub input_dropped: AtomicU64,
    /// Connections refused by the per-IP cap.
    pub connections_refused: AtomicU64,
    /// Logins refused during an emergency stop.
    pub login_emergency_stop: AtomicU64,
    /// Admin API calls carried out.
    pub admin_calls: AtomicU64,
    /// Admin API calls refused (no or wrong token, API disabled).
    pub admin_denied: AtomicU64,
    /// Viewer-reported capture→decode latency, p50 per report.
    pub latency_p50: Histogram,
    /// Viewer-reported capture→decode latency, p95 per report.
    pub latency_p95: Histogram,
    violations: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    ended: Mutex<BTreeMap<&'static str, u64>>,
    /// When the CA and gateway certificates expire (UNIX seconds), read at start.
    pub cert_expiry: Mutex<Vec<(&'static str, i64)>>,
}

/// Gauges read from the broker when rendering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Sessions with a viewer attached.
    pub sessions_active: u64,
    /// Sessions waiting for their viewer to come back.
    pub sessions_lingering: u64,
    /// Connected agents.
    pub agents: u64,
    /// Total session capacity of connected agents.
    pub capacity: u64,
    /// Free session slots.
    pub capacity_free: u64,
    /// 1 while an emergency stop is in force (all sessions), else 0.
    pub emergency_stop: u64,
    /// Agents stopped one by one by an administrator.
    pub agents_stopped: u64,
    /// Audit records lost (the writer could not keep up or the disk failed).
    pub audit_dropped: u64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

impl Metrics {
    /// Count a policy violation by side and code.
    pub fn violation(&self, side: &'static str, code: &'static str) {
        if let Ok(mut m) = self.violations.lock() {
            *m.entry((side, code)).or_default() += 1;
        }
    }

    /// Violations counted for `side`/`code` (for tests).
    pub fn violations(&self, side: &str, code: &str) -> u64 {
        self.violations
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|((s, c), _)| *s == side && *c == code)
                    .map(|(_, v)| *v)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Count an ended session by reason name.
    pub fn session_ended(&self, reason: &'static str) {
        if let Ok(mut m) = self.ended.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Add sanitizer drops by NAL type.
    pub fn sanitizer_drops(&self, by_type: &[u64; 32]) {
        for (c, n) in self.sanitizer_dropped.iter().zip(by_type) {
            if *n > 0 {
                add(c, *n);
            }
        }
    }

    /// Render everything in the Prometheus text format.
    pub fn render(&self, g: Gauges) -> String {
        let mut o = String::with_capacity(8192);
        let gauge = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            &mut o,
            "tsuitate_sessions_active",
            "Sessions with a viewer attached.",
            g.sessions_active,
        );
        gauge(
            &mut o,
            "tsuitate_sessions_lingering",
            "Sessions waiting for their viewer to reconnect.",
            g.sessions_lingering,
        );
        gauge(
            &mut o,
            "tsuitate_agents_connected",
            "Connected host agents.",
            g.agents,
        );
        gauge(
            &mut o,
            "tsuitate_agent_capacity",
            "Total browser sessions the connected agents offer.",
            g.capacity,
        );
        gauge(
            &mut o,
            "tsuitate_agent_capacity_free",
            "Free browser sessions.",
            g.capacity_free,
        );
        gauge(
            &mut o,
            "tsuitate_emergency_stop",
            "1 while an emergency stop refuses every login (until an admin resumes).",
            g.emergency_stop,
        );
        gauge(
            &mut o,
            "tsuitate_agents_stopped",
            "Agents an administrator stopped (no new sessions there).",
            g.agents_stopped,
        );
        let counters: [(&str, &str, &AtomicU64); 20] = [
            (
                "tsuitate_sessions_started_total",
                "Sessions started.",
                &self.sessions_started,
            ),
            (
                "tsuitate_sessions_resumed_total",
                "Sessions resumed by a reconnecting viewer.",
                &self.sessions_resumed,
            ),
            (
                "tsuitate_sessions_resumed_on_agent_total",
                "Sessions whose browser an agent held, taken over through this gateway.",
                &self.sessions_resumed_on_agent,
            ),
            (
                "tsuitate_frames_relayed_total",
                "Sanitized frames relayed to viewers.",
                &self.frames_relayed,
            ),
            (
                "tsuitate_bytes_relayed_total",
                "Access-unit bytes relayed to viewers.",
                &self.bytes_relayed,
            ),
            (
                "tsuitate_frames_dropped_slow_viewer_total",
                "Frames dropped for slow viewers.",
                &self.frames_dropped_slow_viewer,
            ),
            (
                "tsuitate_frames_dropped_fps_total",
                "Frames dropped over limits.max_fps.",
                &self.frames_dropped_fps,
            ),
            (
                "tsuitate_stale_viewer_commands_total",
                "Input and other commands from a replaced viewer, ignored.",
                &self.stale_viewer_commands,
            ),
            (
                "tsuitate_keyframe_requests_total",
                "Keyframe requests sent to agents.",
                &self.keyframe_requests,
            ),
            (
                "tsuitate_sanitizer_refused_total",
                "Access units refused by the sanitizer.",
                &self.sanitizer_refused,
            ),
            (
                "tsuitate_login_success_total",
                "Successful logins.",
                &self.login_success,
            ),
            (
                "tsuitate_login_failures_total",
                "Failed logins (wrong credentials).",
                &self.login_denied,
            ),
            (
                "tsuitate_login_locked_out_total",
                "Logins refused by lockout.",
                &self.login_locked_out,
            ),
            (
                "tsuitate_login_no_capacity_total",
                "Logins refused for lack of capacity.",
                &self.login_no_capacity,
            ),
            (
                "tsuitate_input_events_total",
                "Input events forwarded to agents.",
                &self.input_events,
            ),
            (
                "tsuitate_input_events_dropped_total",
                "Input events dropped by rate limits.",
                &self.input_dropped,
            ),
            (
                "tsuitate_connections_refused_total",
                "Connections refused by the per-IP cap.",
                &self.connections_refused,
            ),
            (
                "tsuitate_login_emergency_stop_total",
                "Logins refused during an emergency stop.",
                &self.login_emergency_stop,
            ),
            (
                "tsuitate_admin_calls_total",
                "Admin API calls carried out.",
                &self.admin_calls,
            ),
            (
                "tsuitate_admin_denied_total",
                "Admin API calls refused (no or wrong token).",
                &self.admin_denied,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                o,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Relaxed)
            );
        }
        let name = "tsuitate_sanitizer_nal_dropped_total";
        let _ = writeln!(
            o,
            "# HELP {name} NAL units dropped by the sanitizer, by NAL type.\n# TYPE {name} counter"
        );
        for (ty, c) in self.sanitizer_dropped.iter().enumerate() {
            let v = c.load(Relaxed);
            if v > 0 {
                let _ = writeln!(o, "{name}{{nal_type=\"{ty}\"}} {v}");
            }
        }
        let name = "tsuitate_violations_total";
        let _ = writeln!(
            o,
            "# HELP {name} Peers cut off for protocol or policy violations.\n# TYPE {name} counter"
        );
        if let Ok(m) = self.violations.lock() {
            for ((side, code), v) in m.iter() {
                let _ = writeln!(o, "{name}{{side=\"{side}\",code=\"{code}\"}} {v}");
            }
        }
        let name = "tsuitate_audit_dropped_total";
        let _ = writeln!(
            o,
            "# HELP {name} Audit records that could not be written.\n# TYPE {name} counter\n{name} {}",
            g.audit_dropped
        );
        let name = "tsuitate_certificate_expiry_timestamp_seconds";
        let _ = writeln!(
            o,
            "# HELP {name} When the CA and gateway certificates expire (UNIX time).\n# TYPE {name} gauge"
        );
        if let Ok(c) = self.cert_expiry.lock() {
            for (cert, t) in c.iter() {
                let _ = writeln!(o, "{name}{{cert=\"{cert}\"}} {t}");
            }
        }
        let name = "tsuitate_sessions_ended_total";
        let _ = writeln!(
            o,
            "# HELP {name} Sessions ended, by reason.\n# TYPE {name} counter"
        );
        if let Ok(m) = self.ended.lock() {
            for (reason, v) in m.iter() {
                let _ = writeln!(o, "{name}{{reason=\"{reason}\"}} {v}");
            }
        }
        self.latency_p50.render(
            &mut o,
            "tsuitate_viewer_latency_p50_seconds",
            "Viewer-reported capture-to-decode latency (p50 of each report).",
        );
        self.latency_p95.render(
            &mut o,
            "tsuitate_viewer_latency_p95_seconds",
            "Viewer-reported capture-to-decode latency (p95 of each report).",
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_labels_and_histograms() {
        let m = Metrics::default();
        m.frames_relayed.fetch_add(3, Relaxed);
        let mut drops = [0u64; 32];
        drops[6] = 2;
        m.sanitizer_drops(&drops);
        m.violation("agent", "oversize");
        m.latency_p50.observe(15_000);
        let text = m.render(Gauges {
            agents: 1,
            ..Gauges::default()
        });
        assert!(text.contains("tsuitate_frames_relayed_total 3"));
        assert!(text.contains("tsuitate_sanitizer_nal_dropped_total{nal_type=\"6\"} 2"));
        assert!(text.contains("tsuitate_violations_total{side=\"agent\",code=\"oversize\"} 1"));
        assert!(text.contains("tsuitate_viewer_latency_p50_seconds_bucket{le=\"0.02\"} 1"));
        assert!(text.contains("tsuitate_viewer_latency_p50_seconds_bucket{le=\"0.01\"} 0"));
        assert!(text.contains("tsuitate_agents_connected 1"));
        assert_eq!(m.violations("agent", "oversize"), 1);
    }
}
