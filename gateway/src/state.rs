//! State shared by the listeners and session tasks: the agent and session registries, and
//! the types the listeners and sessions exchange. Imports run one way: the listeners and the
//! session module use this module; it uses neither.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tsuitate_protocol::{GatewayToViewer, InputEvent, Limits, Reason};

use crate::audit::AuditLog;
use crate::broker::SessionBroker;
use crate::config::Config;
use crate::lockout::Lockout;
use crate::metrics::Metrics;
use crate::relay::video::OutFrame;
use crate::users::UsersFile;
use tsuitate_protocol::ClockEstimator;

/// Microseconds since the UNIX epoch on the gateway clock.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Resolves once shutdown has begun.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A connected agent.
#[derive(Debug, Clone)]
pub(crate) struct AgentLink {
    pub conn: quinn::Connection,
    pub clock: Arc<Mutex<ClockEstimator>>,
    pub generation: u64,
    /// When the agent's client certificate expires (UNIX seconds).
    pub cert_not_after: Option<i64>,
    /// When it connected.
    pub since: SystemTime,
    /// Its browser and policy, as it reported them in `Hello`.
    pub browser: BrowserReport,
}

/// What an agent reports about its browser (docs/protocol.md §5.2), for `admin agents` and the
/// self-check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BrowserReport {
    /// `chromium --version` (empty when the agent could not tell).
    pub version: String,
    /// SHA-256 (hex) of the managed policy the agent installed and verified (empty: none).
    pub policy: String,
}

/// What a viewer connection tells its session.
#[derive(Debug)]
pub(crate) enum SessionCommand {
    /// A viewer logged in for this session (first time or reconnect).
    Attach(ViewerSink),
    /// The viewer's connection ended.
    Detach { viewer_id: u64 },
    /// Something viewer `viewer_id` asked for. Only the attached viewer is heard: a viewer
    /// that was replaced (the same user logged in again) no longer reaches the browser.
    Viewer { viewer_id: u64, cmd: ViewerCommand },
    /// End now (an admin's decision).
    End { reason: Reason },
}

/// What a viewer asks of its session.
#[derive(Debug)]
pub(crate) enum ViewerCommand {
    /// Decoded viewer input.
    Input(Vec<InputEvent>),
    /// The viewer's window changed size.
    Resize { width: u16, height: u16 },
    /// The viewer needs a keyframe.
    KeyframeRequest,
    /// The viewer's capture→decoded latency over its last window (`LatencyReport`).
    Latency { p50_us: u32, p95_us: u32 },
    /// End now (logout, or a viewer violation already counted by the caller).
    End { reason: Reason },
}

/// What goes to a viewer's writer task.
#[derive(Debug)]
pub(crate) enum ToViewer {
    /// A control message.
    Msg(GatewayToViewer),
    /// A sanitized frame.
    Video(OutFrame),
    /// The last message.
    Bye(Reason),
}

/// The sending side of an attached viewer.
#[derive(Debug, Clone)]
pub(crate) struct ViewerSink {
    pub id: u64,
    pub addr: SocketAddr,
    pub tx: mpsc::Sender<ToViewer>,
    /// Told when another viewer takes the session over: the connection closes at once,
    /// whether or not its queue has room for the `Bye`.
    pub replaced: Arc<tokio::sync::Notify>,
}

/// A running session, in the registry ([`Hub::sessions`]).
#[derive(Debug, Clone)]
pub(crate) struct SessionLink {
    pub tx: mpsc::Sender<SessionCommand>,
    pub info: Arc<SessionInfo>,
}

/// What the admin API shows of a running session.
#[derive(Debug)]
pub(crate) struct SessionInfo {
    pub user: String,
    pub agent: String,
    pub started: SystemTime,
    /// Refreshed by the session's driver after each step.
    pub view: Mutex<SessionView>,
    /// Set as the session ends: what a viewer whose attach comes too late is told
    /// (`Replaced` when a later login took the browser over, otherwise `AgentLost`).
    pub ended: std::sync::OnceLock<tsuitate_protocol::Reason>,
}

/// The changing part of [`SessionInfo`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct SessionView {
    /// The attached viewer's address (the browser's, through a trusted front); `None` while
    /// the session lingers.
    pub viewer: Option<SocketAddr>,
    /// Frames and access-unit bytes relayed to viewers.
    pub frames: u64,
    pub bytes: u64,
    /// Seconds since the last viewer input (or the start).
    pub idle_s: u64,
    /// The viewer's last reported capture→decoded latency (ms), if it reported one.
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
}

/// An emergency stop in force (docs/operations.md §Emergency stop).
#[derive(Debug, Clone)]
pub(crate) struct EmergencyStop {
    /// The admin who stopped.
    pub by: String,
    pub since: SystemTime,
}

/// Everything behind the hub lock.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    pub broker: SessionBroker,
    pub agents: HashMap<String, AgentLink>,
    pub sessions: HashMap<u64, SessionLink>,
}

/// The user store, reloaded when the file changes (admins edit it while the gateway runs).
#[derive(Debug)]
pub(crate) struct UserStore {
    path: PathBuf,
    cache: Mutex<Option<(Option<SystemTime>, Arc<UsersFile>)>>,
}

impl UserStore {
    pub fn new(path: PathBuf) -> Self {
        UserStore {
            path,
            cache: Mutex::new(None),
        }
    }

    /// The current users (blocking: call on a blocking thread).
    pub fn current(&self) -> Result<Arc<UsersFile>, crate::users::UsersError> {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut cache = lock(&self.cache);
        if let Some((t, users)) = cache.as_ref() {
            if *t == mtime {
                return Ok(users.clone());
            }
        }
        let users = Arc::new(UsersFile::load(&self.path)?);
        *cache = Some((mtime, users.clone()));
        Ok(users)
    }

    /// Check a login (blocking: argon2).
    pub fn check(&self, user: &str, password: &str) -> bool {
        match self.current() {
            Ok(u) => u.check(user, password),
            Err(e) => {
                tracing::error!(error = %e, "users file unreadable: login refused");
                false
            }
        }
    }
}

/// Lock a mutex, recovering from poisoning (a panicked holder cannot leave our plain maps in
/// a state worse than a lost update).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The locked hub; dropping it after a change wakes every [`State::wait_hub`].
pub(crate) struct HubGuard<'a> {
    guard: MutexGuard<'a, Hub>,
    changed: &'a tokio::sync::Notify,
    dirty: bool,
}

impl std::ops::Deref for HubGuard<'_> {
    type Target = Hub;
    fn deref(&self) -> &Hub {
        &self.guard
    }
}

impl std::ops::DerefMut for HubGuard<'_> {
    fn deref_mut(&mut self) -> &mut Hub {
        self.dirty = true;
        &mut self.guard
    }
}

impl Drop for HubGuard<'_> {
    fn drop(&mut self) {
        if self.dirty {
            self.changed.notify_waiters();
        }
    }
}

/// The outcome of [`State::claim_start`].
pub(crate) enum StartClaim {
    /// This gateway starts the browser; the claim is given back with
    /// [`State::release_start_claim`].
    Ours { owner: String, token: String },
    /// Another gateway is starting a browser for the same user right now.
    Busy,
    /// No shared store (or it does not answer): this gateway's own rule applies.
    Unavailable,
}

fn hex_owner(owner: &tsuitate_protocol::SessionOwner) -> String {
    owner.iter().map(|b| format!("{b:02x}")).collect()
}

/// Held by a task that shutdown waits for (mini-redis's `shutdown_complete` sender).
#[derive(Debug)]
pub(crate) struct DrainToken(#[allow(dead_code)] mpsc::Sender<()>);

/// Shared gateway state.
#[derive(Debug)]
pub(crate) struct State {
    pub cfg: Arc<Config>,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    pub audit: AuditLog,
    hub: Mutex<Hub>,
    /// Woken whenever the hub is changed (see [`HubGuard`]).
    hub_changed: tokio::sync::Notify,
    /// Session and agent-connection tasks hold a [`DrainToken`]; shutdown waits until every
    /// token is dropped.
    drain: Mutex<Option<mpsc::Sender<()>>>,
    pub lockout: Mutex<Lockout>,
    /// The lockout shared with other gateways (`[lockout] shared_store`), if configured.
    shared_lockout: Option<crate::shared_lockout::SharedLockout>,
    /// Whether the shared store failed last time (its outage is audited once, and its return).
    shared_lockout_down: std::sync::atomic::AtomicBool,
    pub users: UserStore,
    /// Slots for password checks (see [`crate::lockout::CONCURRENT_CHECKS`]).
    pub login_checks: tokio::sync::Semaphore,
    pub shutdown: watch::Receiver<bool>,
    /// Set by an emergency stop of every session: logins are refused until an admin resumes.
    pub emergency: Mutex<Option<EmergencyStop>>,
    /// Admin API credentials.
    pub admin_tokens: crate::admin::AdminTokens,
    /// Violations before login, per address, summed per [`PRELOGIN_WINDOW`].
    prelogin: Mutex<HashMap<std::net::IpAddr, PreLogin>>,
    next_id: AtomicU64,
}

/// How long pre-login violations of one address are summed into one audit record.
pub const PRELOGIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Addresses tracked at once; beyond, the rest are summed under `0.0.0.0`.
const PRELOGIN_ADDRESSES: usize = 10_000;

/// Pre-login violations of one address in the current window.
#[derive(Debug)]
struct PreLogin {
    since: std::time::Instant,
    /// Beyond the first (which was audited on its own).
    more: u64,
    codes: std::collections::BTreeMap<&'static str, u64>,
}

impl State {
    /// The state, and the receiver that reports (by closing) that every [`DrainToken`] is gone.
    pub fn new(
        cfg: Arc<Config>,
        metrics: Arc<Metrics>,
        audit: AuditLog,
        shutdown: watch::Receiver<bool>,
    ) -> (Self, mpsc::Receiver<()>) {
        let (drain, drained) = mpsc::channel(1);
        let cfg_admin_tokens = cfg.admin_tokens_file.clone();
        let max_sessions = usize::try_from(cfg.max_sessions_by_memory()).unwrap_or(usize::MAX);
        let start = u64::from_be_bytes(crate::users::random_bytes::<8>()) >> 8;
        // Checked by `Config::validate`; a file that went away since is no key.
        let owner_key = cfg.owner_key().ok().flatten();
        let state = State {
            limits: cfg.protocol_limits(),
            lockout: Mutex::new(Lockout::new(&cfg.lockout)),
            shared_lockout: cfg
                .lockout
                .shared_store
                .clone()
                .map(|addr| crate::shared_lockout::SharedLockout::new(addr, cfg.lockout.clone())),
            shared_lockout_down: std::sync::atomic::AtomicBool::new(false),
            users: UserStore::new(cfg.users_file.clone()),
            login_checks: tokio::sync::Semaphore::new(crate::lockout::CONCURRENT_CHECKS),
            cfg,
            metrics,
            audit,
            hub: Mutex::new(Hub {
                broker: SessionBroker::with_max_sessions(max_sessions).with_owner_key(owner_key),
                ..Hub::default()
            }),
            hub_changed: tokio::sync::Notify::new(),
            drain: Mutex::new(Some(drain)),
            shutdown,
            emergency: Mutex::new(None),
            admin_tokens: crate::admin::AdminTokens::new(cfg_admin_tokens),
            prelogin: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(start.max(1)),
        };
        (state, drained)
    }

    /// A fresh id (sessions, viewers, agent generations, ping nonces).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The hub, locked. Changing it wakes [`State::wait_hub`].
    pub fn hub(&self) -> HubGuard<'_> {
        HubGuard {
            guard: lock(&self.hub),
            changed: &self.hub_changed,
            dirty: false,
        }
    }

    /// Wait until `done` holds for the hub, woken by each change (no polling), at most until
    /// `deadline`. Returns whether it holds.
    pub async fn wait_hub(
        &self,
        deadline: tokio::time::Instant,
        done: impl Fn(&Hub) -> bool,
    ) -> bool {
        loop {
            let changed = self.hub_changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a change between the check and the wait wakes us.
            changed.as_mut().enable();
            if done(&lock(&self.hub)) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return done(&lock(&self.hub));
            }
        }
    }

    /// A token that keeps shutdown waiting while it lives; `None` once shutdown has begun
    /// draining.
    pub fn drain_token(&self) -> Option<DrainToken> {
        lock(&self.drain).clone().map(DrainToken)
    }

    /// Stop handing out drain tokens (the receiver from [`State::new`] then closes when the
    /// last one is dropped).
    pub fn close_drain(&self) {
        lock(&self.drain).take();
    }

    /// Whether an emergency stop of every session is in force.
    pub fn emergency_stopped(&self) -> bool {
        lock(&self.emergency).is_some()
    }

    /// Whether new sessions on `agent` must end at once (a stop of all, or of that agent).
    pub fn stopped_for(&self, agent: &str) -> bool {
        self.emergency_stopped() || self.hub().broker.stopped_agents().any(|a| a == agent)
    }

    /// Gauges for /metrics: the broker's and the emergency stop.
    pub fn gauges(&self) -> crate::metrics::Gauges {
        let mut g = self.hub().broker.gauges();
        g.emergency_stop = u64::from(self.emergency_stopped());
        g.audit_dropped = self.audit.dropped();
        g
    }

    /// Whether shutdown has begun.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The lockout's retry-after for a login attempt, if locked: this gateway's own count, and
    /// the shared store's when there is one.
    pub async fn lockout_locked(
        &self,
        user: &str,
        ip: std::net::IpAddr,
    ) -> Option<std::time::Duration> {
        let local = lock(&self.lockout).locked(std::time::Instant::now(), user, ip);
        let shared = match &self.shared_lockout {
            Some(s) => self.shared_result(s.locked(user, ip).await).flatten(),
            None => None,
        };
        local.max(shared)
    }

    /// Record a failed login (here, and in the shared store).
    pub async fn lockout_fail(&self, user: &str, ip: std::net::IpAddr) {
        lock(&self.lockout).fail(std::time::Instant::now(), user, ip);
        if let Some(s) = &self.shared_lockout {
            self.shared_result(s.fail(user, ip).await);
        }
    }

    /// Record a successful login.
    pub async fn lockout_succeed(&self, user: &str) {
        lock(&self.lockout).succeed(user);
        if let Some(s) = &self.shared_lockout {
            self.shared_result(s.succeed(user).await);
        }
    }

    /// Claim, in the shared store, the start of a new browser for `user` (see
    /// [`SharedLockout::claim_start`](crate::shared_lockout::SharedLockout::claim_start)).
    pub async fn claim_start(&self, user: &str) -> StartClaim {
        let Some(s) = &self.shared_lockout else {
            return StartClaim::Unavailable;
        };
        let owner = hex_owner(&self.hub().broker.owner(user));
        let token = format!("{:x}-{:x}", std::process::id(), self.next_id());
        // As long as a start may take, and a little more: a gateway that dies while starting
        // holds nobody up for longer.
        let ttl = self.cfg.session.start_timeout + std::time::Duration::from_secs(2);
        match self.shared_result(s.claim_start(&owner, &token, ttl).await) {
            Some(true) => StartClaim::Ours { owner, token },
            Some(false) => StartClaim::Busy,
            None => StartClaim::Unavailable,
        }
    }

    /// Give up a start claim once every gateway can see the browser it started (the agent
    /// tells them all `Held` at once; a little time is left for the others to hear it), or
    /// after two seconds when nothing was started.
    pub fn release_start_claim(self: &Arc<Self>, user: &str, owner: String, token: String) {
        let (state, user) = (Arc::clone(self), user.to_owned());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
            if state
                .wait_hub(deadline, |hub| hub.broker.holds_for(&user))
                .await
            {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            if let Some(s) = &state.shared_lockout {
                state.shared_result(s.release_start(&owner, &token).await);
            }
        });
    }

    /// A shared-store result: an outage (and the return) is logged and audited once.
    fn shared_result<T>(&self, r: Result<T, crate::shared_lockout::StoreError>) -> Option<T> {
        use std::sync::atomic::Ordering::Relaxed;
        match r {
            Ok(v) => {
                if self.shared_lockout_down.swap(false, Relaxed) {
                    tracing::info!(
                        "shared lockout store answers again / 共有ロックアウトストアが復旧しました"
                    );
                    self.audit(json!({"event": "lockout_store_recovered"}));
                }
                Some(v)
            }
            Err(e) => {
                if !self.shared_lockout_down.swap(true, Relaxed) {
                    tracing::warn!(error = %e, "shared lockout store unavailable: this gateway's own lockout applies / 共有ロックアウトストアに接続できません（このゲートウェイ単独のロックアウトで継続）");
                    self.audit(
                        json!({"event": "lockout_store_unavailable", "error": e.to_string()}),
                    );
                }
                None
            }
        }
    }

    /// Write an audit event.
    pub fn audit(&self, event: Value) {
        self.audit.record(event);
    }

    /// Audit the sums of pre-login violations whose window has passed (all with `force`).
    pub fn flush_prelogin(&self, force: bool) {
        let now = std::time::Instant::now();
        let due: Vec<(std::net::IpAddr, PreLogin)> = {
            let mut map = lock(&self.prelogin);
            let keys: Vec<std::net::IpAddr> = map
                .iter()
                .filter(|(_, e)| force || now.duration_since(e.since) >= PRELOGIN_WINDOW)
                .map(|(k, _)| *k)
                .collect();
            keys.into_iter()
                .filter_map(|k| map.remove(&k).map(|e| (k, e)))
                .collect()
        };
        for (addr, e) in due.into_iter().filter(|(_, e)| e.more > 0) {
            self.audit(serde_json::json!({
                "event": "policy_violation_summary",
                "side": "viewer",
                "peer": addr.to_string(),
                "count": e.more,
                "codes": e.codes,
                "window_s": now.duration_since(e.since).as_secs(),
            }));
        }
    }

    /// Count and audit a violation.
    pub fn violation(
        &self,
        side: crate::error::Side,
        peer: SocketAddr,
        who: &str,
        v: &crate::error::Violation,
    ) {
        self.metrics.violation(side.name(), v.code());
        // Before login (no user yet), one address's violations are summed: the first is audited
        // on its own, the rest once per window, so a flood cannot bury other records.
        if side == crate::error::Side::Viewer && who.is_empty() {
            let mut map = lock(&self.prelogin);
            let mut key = crate::lockout::address_key(peer.ip());
            if !map.contains_key(&key) && map.len() >= PRELOGIN_ADDRESSES {
                key = std::net::IpAddr::from([0, 0, 0, 0]);
            }
            if let Some(e) = map.get_mut(&key) {
                e.more += 1;
                *e.codes.entry(v.code()).or_default() += 1;
                tracing::debug!(%peer, code = v.code(), "pre-login violation (summed)");
                return;
            }
            map.insert(
                key,
                PreLogin {
                    since: std::time::Instant::now(),
                    more: 0,
                    codes: Default::default(),
                },
            );
        }
        tracing::warn!(side = side.name(), %peer, who, code = v.code(), error = %v, "peer cut off");
        self.audit(serde_json::json!({
            "event": "policy_violation",
            "side": side.name(),
            "peer": peer.to_string(),
            "who": who,
            "code": v.code(),
            "detail": v.to_string(),
            "reason": v.reason().name(),
        }));
    }
}
