//! The sessions this agent holds, by its own session number (docs/agent.md "Sessions live on
//! the agent"): what `Held`/`Released` tell every gateway, and where `Open{resume}` hands a new
//! gateway stream to a running browser.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::{broadcast, mpsc, oneshot};
use tsuitate_protocol::{AgentToGateway, SessionOwner, Watermark};

use crate::session::Stream;

/// A gateway stream offered to a running session; the session answers `Ok` when it took the
/// stream, or gives it back (it is ending) so that a new browser starts on it.
pub struct Handover {
    /// The new stream.
    pub stream: Stream,
    /// The watermark the new gateway asks for (its text names the new viewer).
    pub watermark: Option<Watermark>,
    /// The answer.
    pub reply: oneshot::Sender<Result<(), Stream>>,
}

struct Entry {
    owner: SessionOwner,
    lingering: bool,
    handover: mpsc::Sender<Handover>,
}

/// Held sessions, and the changes every gateway connection is told.
pub struct Registry {
    entries: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
    changes: broadcast::Sender<AgentToGateway>,
}

impl Registry {
    /// A registry for an agent of `max_sessions`: its change queue holds several changes per
    /// session, so a gateway connection falls behind only when it stops reading.
    pub fn new(max_sessions: u16) -> Registry {
        Registry {
            entries: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            changes: broadcast::channel(4 * usize::from(max_sessions) + 64).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hold a new, attached session of `owner`; returns its number.
    pub fn register(&self, owner: SessionOwner, handover: mpsc::Sender<Handover>) -> u64 {
        let session = self.next.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.lock();
        entries.insert(
            session,
            Entry {
                owner,
                lingering: false,
                handover,
            },
        );
        let _ = self.changes.send(AgentToGateway::Held {
            session,
            owner,
            lingering: false,
        });
        session
    }

    /// The session lost (`true`) or found (`false`) its gateway stream.
    pub fn set_lingering(&self, session: u64, lingering: bool) {
        let mut entries = self.lock();
        if let Some(e) = entries.get_mut(&session) {
            if e.lingering != lingering {
                e.lingering = lingering;
                let _ = self.changes.send(AgentToGateway::Held {
                    session,
                    owner: e.owner,
                    lingering,
                });
            }
        }
    }

    /// The session ended.
    pub fn remove(&self, session: u64) {
        if self.lock().remove(&session).is_some() {
            let _ = self.changes.send(AgentToGateway::Released { session });
        }
    }

    /// Where to hand a stream for session `session`, if it is held and is `owner`'s.
    pub fn claim(&self, session: u64, owner: &SessionOwner) -> Option<mpsc::Sender<Handover>> {
        self.lock()
            .get(&session)
            .filter(|e| e.owner == *owner)
            .map(|e| e.handover.clone())
    }

    /// Changes from now on (subscribe before taking the [`Self::snapshot`], so nothing falls
    /// between; a change seen twice is harmless).
    pub fn subscribe(&self) -> broadcast::Receiver<AgentToGateway> {
        self.changes.subscribe()
    }

    /// A `Held` message for every session held now.
    pub fn snapshot(&self) -> Vec<AgentToGateway> {
        let mut all: Vec<AgentToGateway> = self
            .lock()
            .iter()
            .map(|(session, e)| AgentToGateway::Held {
                session: *session,
                owner: e.owner,
                lingering: e.lingering,
            })
            .collect();
        all.sort_by_key(|m| match m {
            AgentToGateway::Held { session, .. } => *session,
            _ => 0,
        });
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_published_and_claims_need_the_owner() {
        let r = Registry::new(4);
        let mut changes = r.subscribe();
        let (tx, _rx) = mpsc::channel(1);
        let a = r.register([1; 16], tx.clone());
        let b = r.register([2; 16], tx);
        assert_ne!(a, b);
        r.set_lingering(a, true);
        r.set_lingering(a, true); // no change, no message
        r.remove(b);
        r.remove(b); // already gone
        let seen: Vec<AgentToGateway> = std::iter::from_fn(|| changes.try_recv().ok()).collect();
        assert_eq!(
            seen,
            vec![
                AgentToGateway::Held {
                    session: a,
                    owner: [1; 16],
                    lingering: false
                },
                AgentToGateway::Held {
                    session: b,
                    owner: [2; 16],
                    lingering: false
                },
                AgentToGateway::Held {
                    session: a,
                    owner: [1; 16],
                    lingering: true
                },
                AgentToGateway::Released { session: b },
            ]
        );
        assert_eq!(
            r.snapshot(),
            vec![AgentToGateway::Held {
                session: a,
                owner: [1; 16],
                lingering: true
            }]
        );
        assert!(r.claim(a, &[1; 16]).is_some());
        assert!(r.claim(a, &[2; 16]).is_none(), "another owner's session");
        assert!(r.claim(b, &[2; 16]).is_none(), "an ended session");
    }
}
