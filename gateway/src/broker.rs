//! The session broker (sans-IO): agents and their capacity, sessions and their state,
//! placement and the one-session-per-user rule. Time is passed in.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tsuitate_protocol::SessionOwner;

use crate::audit::AuditKey;
use crate::metrics::Gauges;

/// Most sessions an agent may say it holds (`Held`); more is a protocol violation.
pub const MAX_HELD_PER_AGENT: usize = 4096;

/// The label every owner is computed over.
const OWNER_LABEL: &[u8] = b"tsuitate session owner\0";

/// Who a session belongs to, as agents know it: the first 16 bytes of HMAC-SHA256 under the
/// gateways' `owner_key` (or, without one, of SHA-256) over a fixed label and the user name
/// (docs/protocol.md §5.2). Every gateway computes the same owner for a user, so any of them
/// can resume the user's session; the agent never sees the name, and with the key it cannot
/// compute the owner of a user it has not served.
pub fn session_owner(key: Option<&AuditKey>, user: &str) -> SessionOwner {
    let digest: [u8; 32] = match key {
        Some(k) => k.mac_bytes(&[OWNER_LABEL, user.as_bytes()]),
        None => Sha256::new()
            .chain_update(OWNER_LABEL)
            .chain_update(user.as_bytes())
            .finalize()
            .into(),
    };
    let mut owner = [0u8; 16];
    owner.copy_from_slice(&digest[..16]);
    owner
}

/// A session an agent holds (its own number), as its `Held` messages describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    owner: SessionOwner,
    lingering: bool,
}

/// A session's state as the broker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// The agent is starting the browser.
    Starting,
    /// A viewer is attached.
    Attached,
    /// The viewer left at this time; the session waits for it.
    Lingering(Instant),
}

/// One session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    /// Who owns it.
    pub user: String,
    /// Where the browser runs.
    pub agent: String,
    /// State.
    pub state: SessionState,
}

#[derive(Debug, Clone)]
struct AgentSlot {
    capacity: u16,
    reported_free: u16,
    sessions: u16,
}

impl AgentSlot {
    fn free(&self) -> u16 {
        self.capacity
            .saturating_sub(self.sessions)
            .min(self.reported_free)
    }
}

/// Where a logging-in user goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Resume this existing session.
    Resume(u64),
    /// Start a session on this agent (a slot is reserved under `session_id`); with `resume`,
    /// take over the agent's held session of that number (the user's browser lives on).
    New {
        session_id: u64,
        agent: String,
        resume: Option<u64>,
    },
    /// No agent has a free slot.
    NoCapacity,
    /// The gateway's memory budget allows no more sessions (`limits.memory_budget_mb`).
    OverBudget,
}

/// Agents, sessions and placement.
#[derive(Debug, Default)]
pub struct SessionBroker {
    agents: BTreeMap<String, AgentSlot>,
    sessions: HashMap<u64, SessionEntry>,
    /// Agents an administrator stopped (emergency stop of one agent): no new sessions there
    /// until resumed; kept across the agent's reconnections.
    stopped: BTreeSet<String>,
    /// Agents an administrator drains: no new sessions there, the running ones go on.
    draining: BTreeSet<String>,
    /// Most sessions at once (the memory budget); `None`: no limit.
    max_sessions: Option<usize>,
    /// The sessions each connected agent holds, by the agent's number (its `Held` messages):
    /// where a user's browser lives on when the gateway that carried it is gone.
    held: BTreeMap<String, HashMap<u64, Held>>,
    /// The gateways' shared key of session owners (`[session] owner_key_file`).
    owner_key: Option<AuditKey>,
}

impl SessionBroker {
    /// A broker that holds at most `max` sessions at once.
    pub fn with_max_sessions(max: usize) -> SessionBroker {
        SessionBroker {
            max_sessions: Some(max),
            ..SessionBroker::default()
        }
    }

    /// Key session owners with the gateways' shared `key`.
    pub fn with_owner_key(mut self, key: Option<AuditKey>) -> SessionBroker {
        self.owner_key = key;
        self
    }

    /// The owner agents know `user`'s sessions by.
    pub fn owner(&self, user: &str) -> SessionOwner {
        session_owner(self.owner_key.as_ref(), user)
    }

    /// Register an agent (replacing one with the same id). Returns the sessions of the
    /// replaced agent, which are lost.
    pub fn add_agent(&mut self, id: &str, capacity: u16) -> Vec<u64> {
        let lost = self.remove_agent(id);
        self.agents.insert(
            id.to_owned(),
            AgentSlot {
                capacity,
                reported_free: capacity,
                sessions: 0,
            },
        );
        lost
    }

    /// Forget an agent. Returns the ids of its sessions (they are removed too).
    pub fn remove_agent(&mut self, id: &str) -> Vec<u64> {
        self.held.remove(id);
        if self.agents.remove(id).is_none() {
            return Vec::new();
        }
        let lost: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.agent == id)
            .map(|(k, _)| *k)
            .collect();
        for k in &lost {
            self.sessions.remove(k);
        }
        lost
    }

    /// The agent reported its free slots (it may serve other gateways too).
    pub fn set_reported_free(&mut self, id: &str, free: u16) {
        if let Some(a) = self.agents.get_mut(id) {
            a.reported_free = free;
        }
    }

    /// Agent `id` holds session `session` of `owner` (lingering or attached). `false`: the
    /// agent claims more sessions than [`MAX_HELD_PER_AGENT`] (a protocol violation).
    pub fn set_held(
        &mut self,
        id: &str,
        session: u64,
        owner: SessionOwner,
        lingering: bool,
    ) -> bool {
        if !self.agents.contains_key(id) {
            return true;
        }
        let held = self.held.entry(id.to_owned()).or_default();
        if held.len() >= MAX_HELD_PER_AGENT && !held.contains_key(&session) {
            return false;
        }
        held.insert(session, Held { owner, lingering });
        true
    }

    /// Agent `id`'s session `session` ended.
    pub fn release_held(&mut self, id: &str, session: u64) {
        if let Some(held) = self.held.get_mut(id) {
            held.remove(&session);
        }
    }

    /// A session of `user` some agent holds that this login may take over: a lingering one
    /// first, an attached one (through another gateway) only with `one_per_user`. Not on
    /// stopped agents.
    fn held_for(&self, user: &str, one_per_user: bool) -> Option<(String, u64)> {
        let owner = self.owner(user);
        let mut found: Vec<(bool, &String, u64)> = self
            .held
            .iter()
            .filter(|(agent, _)| !self.stopped.contains(*agent) && self.agents.contains_key(*agent))
            .flat_map(|(agent, held)| {
                held.iter()
                    .filter(|(_, h)| h.owner == owner && (h.lingering || one_per_user))
                    .map(move |(n, h)| (!h.lingering, agent, *n))
            })
            .collect();
        found.sort();
        found.first().map(|(_, agent, n)| ((*agent).clone(), *n))
    }

    /// Whether some agent holds a session of `user` (attached or lingering).
    pub fn holds_for(&self, user: &str) -> bool {
        self.held_for(user, true).is_some()
    }

    /// Decide where `user` goes. With `one_per_user`, any session of the user is resumed
    /// (taken over if attached elsewhere); otherwise only a lingering one is — first among
    /// this gateway's sessions, then among those the agents hold (a browser whose gateway is
    /// gone). New sessions go to the agent with the most free slots (ties: lowest id).
    /// `new_id` is the id a new session gets.
    pub fn place(&mut self, user: &str, one_per_user: bool, new_id: u64) -> Placement {
        let mut own: Vec<(&u64, &SessionEntry)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.user == user)
            .collect();
        own.sort_by_key(|(id, _)| **id);
        let resumable = own.iter().find(|(_, s)| match s.state {
            SessionState::Lingering(_) => true,
            SessionState::Attached | SessionState::Starting => one_per_user,
        });
        if let Some((id, _)) = resumable {
            return Placement::Resume(**id);
        }
        if self.max_sessions.is_some_and(|m| self.sessions.len() >= m) {
            return Placement::OverBudget;
        }
        if let Some((agent, held)) = self.held_for(user, one_per_user) {
            // The browser already has its slot on the agent.
            return self.reserve(user, agent, new_id, Some(held));
        }
        let best = self
            .agents
            .iter()
            .filter(|(id, a)| {
                a.free() > 0 && !self.stopped.contains(*id) && !self.draining.contains(*id)
            })
            .max_by(|(ia, a), (ib, b)| a.free().cmp(&b.free()).then(ib.cmp(ia)));
        let Some((agent, _)) = best else {
            return Placement::NoCapacity;
        };
        let agent = agent.clone();
        self.reserve(user, agent, new_id, None)
    }

    /// Count a starting session of `user` on `agent` under `id`; a new browser (no `resume`)
    /// takes one of the agent's free slots until its next `Capacity` says.
    fn reserve(&mut self, user: &str, agent: String, id: u64, resume: Option<u64>) -> Placement {
        if let Some(a) = self.agents.get_mut(&agent) {
            a.sessions = a.sessions.saturating_add(1);
            if resume.is_none() {
                a.reported_free = a.reported_free.saturating_sub(1);
            }
        }
        self.sessions.insert(
            id,
            SessionEntry {
                user: user.to_owned(),
                agent: agent.clone(),
                state: SessionState::Starting,
            },
        );
        Placement::New {
            session_id: id,
            agent,
            resume,
        }
    }

    /// Stop (`true`) or resume placing new sessions on agent `id` (known or not).
    pub fn set_stopped(&mut self, id: &str, stopped: bool) {
        if stopped {
            self.stopped.insert(id.to_owned());
        } else {
            self.stopped.remove(id);
        }
    }

    /// The agents an administrator stopped.
    pub fn stopped_agents(&self) -> impl Iterator<Item = &str> {
        self.stopped.iter().map(String::as_str)
    }

    /// Drain (`true`: no new sessions, the running ones go on) or undrain agent `id`.
    pub fn set_draining(&mut self, id: &str, draining: bool) {
        if draining {
            self.draining.insert(id.to_owned());
        } else {
            self.draining.remove(id);
        }
    }

    /// The agents being drained.
    pub fn draining_agents(&self) -> impl Iterator<Item = &str> {
        self.draining.iter().map(String::as_str)
    }

    /// Every session as (id, entry).
    pub fn sessions(&self) -> impl Iterator<Item = (u64, &SessionEntry)> {
        self.sessions.iter().map(|(k, v)| (*k, v))
    }

    /// Connected agents as (id, capacity, sessions placed there).
    pub fn agents(&self) -> impl Iterator<Item = (&str, u16, u16)> {
        self.agents
            .iter()
            .map(|(k, a)| (k.as_str(), a.capacity, a.sessions))
    }

    /// Set a session's state.
    pub fn set_state(&mut self, id: u64, state: SessionState) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.state = state;
        }
    }

    /// A session.
    pub fn session(&self, id: u64) -> Option<&SessionEntry> {
        self.sessions.get(&id)
    }

    /// End a session and free its slot.
    pub fn release(&mut self, id: u64) -> Option<SessionEntry> {
        self.release_with(id, true)
    }

    /// End a session; `slot_freed`: the agent was told to close the browser (else it may live
    /// on there, lingering or through another gateway, and the agent's next `Capacity` says
    /// when its slot is free).
    pub fn release_with(&mut self, id: u64, slot_freed: bool) -> Option<SessionEntry> {
        let s = self.sessions.remove(&id)?;
        if let Some(a) = self.agents.get_mut(&s.agent) {
            a.sessions = a.sessions.saturating_sub(1);
            if slot_freed {
                a.reported_free = a.reported_free.saturating_add(1).min(a.capacity);
            }
        }
        Some(s)
    }

    /// Sessions placed on agent `id`.
    pub fn sessions_on(&self, id: &str) -> usize {
        self.sessions.values().filter(|s| s.agent == id).count()
    }

    /// Number of sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Gauges for metrics.
    pub fn gauges(&self) -> Gauges {
        let mut g = Gauges {
            agents: self.agents.len() as u64,
            agents_stopped: self.stopped.len() as u64,
            ..Gauges::default()
        };
        for a in self.agents.values() {
            g.capacity += u64::from(a.capacity);
            g.capacity_free += u64::from(a.free());
        }
        for s in self.sessions.values() {
            match s.state {
                SessionState::Lingering(_) => g.sessions_lingering += 1,
                _ => g.sessions_active += 1,
            }
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_on_the_agent_with_most_free_slots() {
        let mut b = SessionBroker::default();
        assert_eq!(b.place("u", true, 1), Placement::NoCapacity);
        b.add_agent("a", 1);
        b.add_agent("b", 2);
        let p = b.place("u1", true, 1);
        assert_eq!(
            p,
            Placement::New {
                session_id: 1,
                agent: "b".into(),
                resume: None,
            }
        );
        // a and b both have 1 free: lowest id wins.
        assert!(matches!(b.place("u2", true, 2), Placement::New { agent, .. } if agent == "a"));
        assert!(matches!(b.place("u3", true, 3), Placement::New { agent, .. } if agent == "b"));
        assert_eq!(b.place("u4", true, 4), Placement::NoCapacity);
        b.release(2);
        assert!(matches!(b.place("u4", true, 5), Placement::New { agent, .. } if agent == "a"));
        assert_eq!(b.gauges().capacity_free, 0);
        assert_eq!(b.gauges().sessions_active, 3);
    }

    #[test]
    fn a_stopped_agent_gets_no_new_session_until_resumed_even_after_reconnecting() {
        let mut b = SessionBroker::default();
        b.add_agent("a", 4);
        b.add_agent("b", 1);
        b.set_stopped("a", true);
        assert!(matches!(b.place("u1", true, 1), Placement::New { agent, .. } if agent == "b"));
        assert_eq!(
            b.place("u2", true, 2),
            Placement::NoCapacity,
            "a is stopped"
        );
        b.add_agent("a", 4); // reconnects
        assert_eq!(b.place("u2", true, 3), Placement::NoCapacity);
        assert_eq!(b.stopped_agents().collect::<Vec<_>>(), ["a"]);
        b.set_stopped("a", false);
        assert!(matches!(b.place("u2", true, 4), Placement::New { agent, .. } if agent == "a"));
        // Draining keeps the running session and takes no new one.
        b.set_draining("a", true);
        assert_eq!(b.place("u3", true, 5), Placement::NoCapacity);
        assert_eq!(
            b.place("u2", true, 6),
            Placement::Resume(4),
            "u2's session goes on"
        );
        b.set_draining("a", false);
        assert!(matches!(b.place("u3", true, 7), Placement::New { agent, .. } if agent == "a"));
    }

    #[test]
    fn one_session_per_user_resumes() {
        let mut b = SessionBroker::default();
        b.add_agent("a", 4);
        assert!(matches!(b.place("u", true, 1), Placement::New { .. }));
        b.set_state(1, SessionState::Attached);
        assert_eq!(b.place("u", true, 2), Placement::Resume(1));
        // Without the rule an attached session is not taken over, a lingering one is.
        assert!(matches!(b.place("u", false, 3), Placement::New { .. }));
        b.set_state(1, SessionState::Lingering(Instant::now()));
        assert_eq!(b.place("u", false, 4), Placement::Resume(1));
        assert_eq!(b.gauges().sessions_lingering, 1);
    }

    #[test]
    fn reported_free_bounds_placement_and_agent_loss_drops_sessions() {
        let mut b = SessionBroker::default();
        b.add_agent("a", 4);
        b.set_reported_free("a", 0);
        assert_eq!(b.place("u", true, 1), Placement::NoCapacity);
        b.set_reported_free("a", 2);
        assert!(matches!(b.place("u", true, 1), Placement::New { .. }));
        assert_eq!(b.remove_agent("a"), vec![1]);
        assert_eq!(b.session_count(), 0);
    }

    #[test]
    fn a_session_an_agent_holds_is_taken_over_by_its_owner_only() {
        let mut b = SessionBroker::default();
        b.add_agent("a", 4);
        b.add_agent("b", 4);
        b.set_reported_free("b", 0);
        // Agent b's browser of "u" lives on after its gateway was lost.
        assert!(b.set_held("b", 9, session_owner(None, "u"), true));
        assert_eq!(
            b.place("u", false, 1),
            Placement::New {
                session_id: 1,
                agent: "b".into(),
                resume: Some(9)
            },
            "resumed on b although b reports no free slot"
        );
        // Someone else gets a new browser on a.
        assert!(matches!(
            b.place("v", true, 2),
            Placement::New { agent, resume: None, .. } if agent == "a"
        ));
        // An attached session (through another gateway) is taken over only with the rule.
        assert!(b.set_held("a", 3, session_owner(None, "w"), false));
        assert!(matches!(
            b.place("w", false, 3),
            Placement::New { resume: None, .. }
        ));
        assert!(matches!(
            b.place("w2", true, 4),
            Placement::New { resume: None, .. }
        ));
        b.release(3);
        assert_eq!(
            b.place("w", true, 5),
            Placement::New {
                session_id: 5,
                agent: "a".into(),
                resume: Some(3)
            }
        );
        // Ended on the agent, stopped agent, lost agent: nothing to take over.
        b.release_held("a", 3);
        b.release(5);
        assert!(matches!(
            b.place("w", true, 6),
            Placement::New { resume: None, .. }
        ));
        assert!(b.set_held("a", 4, session_owner(None, "x"), true));
        b.set_stopped("a", true);
        assert!(matches!(
            b.place("x", true, 7),
            Placement::NoCapacity | Placement::New { resume: None, .. }
        ));
        b.set_stopped("a", false);
        b.remove_agent("a");
        b.add_agent("a", 4);
        assert!(matches!(
            b.place("x", true, 8),
            Placement::New { resume: None, .. }
        ));
        // A bounded number of held sessions per agent.
        for n in 0..MAX_HELD_PER_AGENT as u64 {
            assert!(b.set_held("a", n, [0; 16], true));
        }
        assert!(!b.set_held("a", u64::MAX, [0; 16], true));
        assert!(
            b.set_held("a", 0, [1; 16], false),
            "an update is no new entry"
        );
        // Distinct users, distinct owners; the same user, the same owner on every gateway.
        assert_ne!(session_owner(None, "u"), session_owner(None, "v"));
        assert_eq!(session_owner(None, "山田"), session_owner(None, "山田"));
        // With the gateways' key: another owner than without, the same for the same key.
        let key = |b: u8| AuditKey::new(vec![b; 32]);
        let keyed = session_owner(key(1).as_ref(), "山田");
        assert_ne!(keyed, session_owner(None, "山田"));
        assert_ne!(keyed, session_owner(key(2).as_ref(), "山田"));
        assert_eq!(keyed, session_owner(key(1).as_ref(), "山田"));
        let b = SessionBroker::default().with_owner_key(key(1));
        assert_eq!(b.owner("山田"), keyed);
    }
}
