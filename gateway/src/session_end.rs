//! How a session ends: who is told what, what is audited and counted.

use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::time::timeout;
use tsuitate_protocol::{GatewayToAgentSession, Reason};

use crate::error::{Side, Violation};
use crate::session::{Session, ToViewer};
use crate::streams::write_msg_timeout;
use tsuitate_transport::close as close_with;

/// Per-session counters for the audit record.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionStats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub frames_dropped: u64,
    pub bytes_out: u64,
    pub input_events: u64,
    pub input_dropped: u64,
}

/// The end of a session.
#[derive(Debug)]
pub(crate) struct End {
    /// `Close` reason for the agent's session stream; `None` when the agent ended it.
    pub to_agent: Option<Reason>,
    /// `Bye` reason for the viewer.
    pub to_viewer: Reason,
    /// A violation that caused the end, and who committed it.
    pub violation: Option<(Side, Violation)>,
}

impl End {
    pub fn both(reason: Reason) -> End {
        End {
            to_agent: Some(reason),
            to_viewer: reason,
            violation: None,
        }
    }
    pub fn agent_ended(reason: Reason) -> End {
        End {
            to_agent: None,
            to_viewer: reason,
            violation: None,
        }
    }
    pub fn agent_lost() -> End {
        End {
            to_agent: None,
            to_viewer: Reason::AgentLost,
            violation: None,
        }
    }
    /// The agent broke the protocol: its connection is closed; the viewer did nothing wrong.
    pub fn agent_violation(v: Violation) -> End {
        End {
            to_agent: None,
            to_viewer: Reason::AgentLost,
            violation: Some((Side::Agent, v)),
        }
    }
    /// The viewer broke the protocol or a rate limit.
    pub fn viewer_violation(v: Violation) -> End {
        let r = v.reason();
        End {
            to_agent: Some(r),
            to_viewer: r,
            violation: Some((Side::Viewer, v)),
        }
    }
}

fn drops_by_type(by_type: &[u64; 32]) -> Value {
    let mut m = Map::new();
    for (ty, n) in by_type.iter().enumerate() {
        if *n > 0 {
            m.insert(ty.to_string(), Value::from(*n));
        }
    }
    Value::Object(m)
}

impl Session {
    pub(crate) async fn finish(mut self, end: End) {
        let limit = Duration::from_secs(1);
        if let Some((side, v)) = &end.violation {
            let (peer, who) = match side {
                Side::Agent => (self.conn.remote_address(), self.agent.clone()),
                _ => (
                    self.last_viewer.unwrap_or(self.conn.remote_address()),
                    self.user.clone(),
                ),
            };
            self.state.violation(*side, peer, &who, v);
            if *side == Side::Agent {
                // A hostile agent is cut off entirely; its other sessions end as AgentLost.
                close_with(&self.conn, v.reason());
            }
        }
        if let Some(reason) = end.to_agent {
            let close = GatewayToAgentSession::Close { reason };
            let _ = write_msg_timeout(&mut self.send, &close, Side::Agent, limit).await;
            let _ = self.send.finish();
        }
        if let Some((viewer, _)) = self.viewer.take() {
            let _ = timeout(limit, viewer.tx.send(ToViewer::Bye(end.to_viewer))).await;
        }
        {
            let mut hub = self.state.hub();
            hub.sessions.remove(&self.id);
            hub.broker.release(self.id);
        }
        self.state.metrics.session_ended(end.to_viewer.name());
        let c = self.sanitizer.counters();
        let s = &self.stats;
        self.state.audit(json!({
            "event": "session_end",
            "session": self.id,
            "user": self.user,
            "agent": self.agent,
            "viewer": self.last_viewer.map(|a| a.to_string()),
            "reason": end.to_viewer.name(),
            "duration_s": self.started_elapsed().as_secs(),
            "frames_in": s.frames_in,
            "frames": s.frames_out,
            "frames_dropped": s.frames_dropped,
            "bytes": s.bytes_out,
            "input_events": s.input_events,
            "input_dropped": s.input_dropped,
            "sanitizer_dropped_by_nal_type": drops_by_type(&c.dropped_by_type),
            "sanitizer_refused": c.frames_refused,
        }));
        tracing::info!(
            reason = end.to_viewer.name(),
            frames = s.frames_out,
            "session ended"
        );
    }
}
