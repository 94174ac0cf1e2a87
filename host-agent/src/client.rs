//! QUIC client: one connection per configured gateway, each reconnecting with backoff. On each
//! connection the agent opens the control stream (Hello → Welcome, Ping → Pong, Capacity,
//! Stats) and accepts the session streams the gateway opens (docs/protocol.md §5.2).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::{Connection, Endpoint, RecvStream, SendStream};
use tokio::sync::watch;
use tracing::Instrument;
use tsuitate_protocol::{AgentToGateway, GatewayToAgent, Limits, Reason, AGENT_PROTOCOL_VERSION};
use tsuitate_transport::{MessageReader, ReadError};

use crate::config::{AgentConfig, GatewayAddr};
use crate::frame::now_us;
use crate::held::{Handover, Registry};
use crate::session::{self, AgentStats, SessionContext};

/// Why the client could not run or a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The session work directory could not be prepared.
    #[error(transparent)]
    WorkDir(#[from] crate::browser::BrowserError),
    /// The managed browser policy could not be installed.
    #[error(transparent)]
    Policy(#[from] crate::browser::policy::PolicyError),
    /// The session cgroups could not be prepared.
    #[error(transparent)]
    Cgroup(#[from] crate::browser::cgroup::CgroupError),
    /// TLS material could not be loaded.
    #[error(transparent)]
    Tls(#[from] tsuitate_transport::TlsError),
    /// The UDP socket could not be opened.
    #[error("endpoint: {0}")]
    Endpoint(std::io::Error),
    /// Connecting failed.
    #[error("connect {0}: {1}")]
    Connect(SocketAddr, String),
    /// The control stream failed.
    #[error("control stream: {0}")]
    Control(String),
    /// The gateway broke the protocol.
    #[error("protocol violation by gateway: {0}")]
    Protocol(String),
    /// The gateway said goodbye.
    #[error("gateway closed the connection: {0}")]
    Bye(&'static str),
}

/// Session slots shared by all gateway connections.
#[derive(Debug)]
pub struct Slots {
    max: u16,
    used: AtomicU16,
    changed: watch::Sender<u16>,
}

impl Slots {
    /// `max` free slots.
    pub fn new(max: u16) -> Arc<Slots> {
        let (changed, _) = watch::channel(max);
        Arc::new(Slots {
            max,
            used: AtomicU16::new(0),
            changed,
        })
    }
    /// Free slots now.
    pub fn free(&self) -> u16 {
        self.max.saturating_sub(self.used.load(Ordering::SeqCst))
    }
    /// Take a slot, released when the guard drops.
    pub fn take(self: &Arc<Self>) -> Option<SlotGuard> {
        let taken = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                (u < self.max).then_some(u + 1)
            })
            .is_ok();
        if !taken {
            return None;
        }
        self.publish();
        Some(SlotGuard(Arc::clone(self)))
    }
    /// Publish the free count, read under the watch's lock: two sessions ending at once on two
    /// threads cannot leave an older count as the last one published.
    fn publish(&self) {
        self.changed.send_modify(|v| *v = self.free());
    }
    /// Watch free-slot changes.
    pub fn subscribe(&self) -> watch::Receiver<u16> {
        self.changed.subscribe()
    }
}

/// A taken session slot.
#[derive(Debug)]
pub struct SlotGuard(Arc<Slots>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::SeqCst);
        self.0.publish();
    }
}

/// Shared by every connection.
struct Shared {
    /// What every session needs (configuration, counters, the held sessions).
    ctx: SessionContext,
    slots: Arc<Slots>,
    /// What `Hello` tells each gateway about the browser.
    report: BrowserReport,
}

/// The browser's version and the managed policy's SHA-256, as `Hello` reports them.
#[derive(Debug, Clone)]
struct BrowserReport {
    version: String,
    policy: String,
}

/// Connect to every configured gateway and serve until `shutdown` becomes true.
pub async fn run(config: AgentConfig, shutdown: watch::Receiver<bool>) -> Result<(), ClientError> {
    let client_config = tsuitate_transport::client_config_from_files(
        &config.ca,
        Some((&config.cert, &config.key)),
        &tsuitate_transport::Tuning::default(),
    )?;
    if let Some(dir) = &config.browser.work_dir {
        crate::browser::prepare_work_dir(dir)?;
    }
    // Sessions never start without the managed browser policy (docs/agent.md).
    let (policy, written) =
        crate::browser::policy::install(&config.policy, crate::browser::running_as_root())?;
    tracing::info!(file = %policy.display(), written, "browser policy in place");
    let report = BrowserReport {
        version: crate::browser::chromium_version(&config.browser.chromium).await,
        policy: crate::browser::policy::file_sha256(&policy)?,
    };
    tracing::info!(browser = %report.version, policy_sha256 = %report.policy, "browser reported to gateways");
    match &config.browser.cgroups {
        Some(c) => {
            let stale = c.prepare()?;
            let l = c.limits();
            tracing::info!(
                layout = ?c.layout(),
                memory_mb = l.memory_mb,
                pids = l.pids,
                cpu_percent = l.cpu_percent,
                stale,
                "session cgroups ready"
            );
        }
        None => tracing::warn!(
            "not running as root: sessions run without a cgroup and its limits / root ではないため、セッションの cgroup 制限はありません"
        ),
    }
    let mut v4 = Endpoint::client(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        .map_err(ClientError::Endpoint)?;
    v4.set_default_client_config(client_config.clone());
    // IPv6 gateways (an address, or what a name resolves to) where the host has IPv6.
    let v6 = Endpoint::client(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))
        .ok()
        .map(|mut e| {
            e.set_default_client_config(client_config);
            e
        });
    let endpoint = Endpoints { v4, v6 };
    let max_sessions = config.max_sessions;
    let shared = Arc::new(Shared {
        slots: Slots::new(max_sessions),
        ctx: SessionContext {
            config: Arc::new(config),
            stats: Arc::new(AgentStats::default()),
            registry: Arc::new(Registry::new(max_sessions)),
            shutdown: shutdown.clone(),
        },
        report,
    });
    let mut tasks = Vec::new();
    for gw in shared.ctx.config.gateways.clone() {
        let (endpoint, shared, shutdown) =
            (endpoint.clone(), Arc::clone(&shared), shutdown.clone());
        let span = tracing::info_span!("gateway", addr = %gw.addr);
        let task = match gw.addr {
            GatewayAddr::Ip(addr) => tokio::spawn(
                gateway_loop(endpoint, addr, gw.server_name, shared, shutdown, None)
                    .instrument(span),
            ),
            GatewayAddr::Name { host, port } => tokio::spawn(
                name_loop(endpoint, host, port, gw.server_name, shared, shutdown).instrument(span),
            ),
        };
        tasks.push(task);
    }
    for t in tasks {
        let _ = t.await;
    }
    // Drain: closing the endpoints fails every session stream; wait (bounded) until every
    // session has killed its browser and wiped its directory.
    for e in endpoint.all() {
        e.close(
            tsuitate_transport::close_code(Reason::Shutdown),
            Reason::Shutdown.name().as_bytes(),
        );
    }
    // Woken by each released slot (no polling), at most 15 s.
    let max = shared.ctx.config.max_sessions;
    let mut free = shared.slots.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(15), free.wait_for(|f| *f >= max)).await;
    for e in endpoint.all() {
        e.wait_idle().await;
    }
    Ok(())
}

/// The agent's QUIC endpoints: IPv4, and IPv6 where the host has it.
#[derive(Clone)]
struct Endpoints {
    v4: Endpoint,
    v6: Option<Endpoint>,
}

impl Endpoints {
    fn for_addr(&self, addr: SocketAddr) -> Option<&Endpoint> {
        if addr.is_ipv6() {
            self.v6.as_ref()
        } else {
            Some(&self.v4)
        }
    }

    fn all(&self) -> impl Iterator<Item = &Endpoint> {
        std::iter::once(&self.v4).chain(self.v6.as_ref())
    }
}

/// Keep every gateway a DNS name names connected: resolve it now and every
/// `resolve_interval`, start a connection for each new address, and let the connections of
/// addresses no longer named end without reconnecting (their sessions are not cut).
async fn name_loop(
    endpoint: Endpoints,
    host: String,
    port: u16,
    server_name: String,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut running: HashMap<SocketAddr, (watch::Sender<bool>, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    let mut known: Vec<SocketAddr> = Vec::new();
    // A failed lookup is tried again sooner than the next regular one (1 s … 30 s).
    let mut retry = Duration::from_secs(1);
    while !*shutdown.borrow() {
        let lookup = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::lookup_host((host.as_str(), port)),
        );
        let looked_up = tokio::select! {
            r = lookup => r,
            _ = shutdown.changed() => break,
        };
        let mut wait = shared.ctx.config.resolve_interval;
        match looked_up
            .map_err(|_| "timed out".to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            Ok(found) => {
                retry = Duration::from_secs(1);
                let found = one_family(found.collect());
                if found != known {
                    tracing::info!(addrs = ?found, "gateway name resolved / ゲートウェイ名を解決しました");
                    known = found.clone();
                }
                running.retain(|_, (_, task)| !task.is_finished());
                let current: Vec<SocketAddr> = running.keys().copied().collect();
                let (start, retire) = reconcile(&current, &found);
                for (addr, (retired, _)) in &running {
                    if found.contains(addr) {
                        // Named again: reconnect as usual.
                        retired.send_if_modified(|r| std::mem::replace(r, false));
                    }
                }
                for addr in start {
                    let (tx, rx) = watch::channel(false);
                    let span = tracing::info_span!("gateway", %addr);
                    let task = tokio::spawn(
                        gateway_loop(
                            endpoint.clone(),
                            addr,
                            server_name.clone(),
                            Arc::clone(&shared),
                            shutdown.clone(),
                            Some(rx),
                        )
                        .instrument(span),
                    );
                    running.insert(addr, (tx, task));
                }
                for addr in retire {
                    if let Some((retired, _)) = running.get(&addr) {
                        if retired.send_if_modified(|r| !std::mem::replace(r, true)) {
                            tracing::info!(%addr, "no longer named: not reconnected / 名前から外れたため再接続しません");
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    retry_s = retry.as_secs(),
                    "gateway name could not be resolved; trying again / ゲートウェイ名を解決できません（再試行します）"
                );
                wait = wait.min(retry);
                retry = (retry * 2).min(Duration::from_secs(30));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
    for (_, (_, task)) in running {
        let _ = task.await;
    }
}

/// The addresses of one family: IPv4 where the name has any, else IPv6 — sorted, without
/// duplicates. A dual-stack gateway has an address of each family, and two connections from
/// one agent to one gateway would replace each other.
fn one_family(mut found: Vec<SocketAddr>) -> Vec<SocketAddr> {
    if found.iter().any(SocketAddr::is_ipv4) {
        found.retain(SocketAddr::is_ipv4);
    }
    found.sort();
    found.dedup();
    found
}

/// What a new resolution of a gateway name changes: the addresses to connect to that have no
/// connection task yet, and the ones with a task that the name no longer gives.
fn reconcile(running: &[SocketAddr], found: &[SocketAddr]) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let start = found
        .iter()
        .filter(|a| !running.contains(a))
        .copied()
        .collect();
    let retire = running
        .iter()
        .filter(|a| !found.contains(a))
        .copied()
        .collect();
    (start, retire)
}

/// Keep one gateway connected: reconnect with exponential backoff (1 s … 30 s), reset after a
/// connection that lasted a minute. With `retired` (an address of a name), stop reconnecting
/// once it says so.
async fn gateway_loop(
    endpoint: Endpoints,
    addr: SocketAddr,
    server_name: String,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    mut retired: Option<watch::Receiver<bool>>,
) {
    let is_retired = |r: &Option<watch::Receiver<bool>>| r.as_ref().is_some_and(|r| *r.borrow());
    let mut backoff = Duration::from_secs(1);
    while !*shutdown.borrow() && !is_retired(&retired) {
        let started = Instant::now();
        let result = tokio::select! {
            r = connect_and_serve(&endpoint, addr, &server_name, &shared) => r,
            _ = shutdown.changed() => return,
        };
        match result {
            Ok(()) => tracing::info!("gateway connection closed"),
            Err(e) => tracing::warn!(error = %e, "gateway connection failed"),
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        let retire_changed = async {
            match retired.as_mut() {
                Some(r) => {
                    let _ = r.changed().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = retire_changed => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn connect_and_serve(
    endpoints: &Endpoints,
    addr: SocketAddr,
    server_name: &str,
    shared: &Arc<Shared>,
) -> Result<(), ClientError> {
    let endpoint = endpoints
        .for_addr(addr)
        .ok_or_else(|| ClientError::Connect(addr, "IPv6 is not available on this host".into()))?;
    let connecting = endpoint
        .connect(addr, server_name)
        .map_err(|e| ClientError::Connect(addr, e.to_string()))?;
    let conn = tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .map_err(|_| ClientError::Connect(addr, "timeout".into()))?
        .map_err(|e| ClientError::Connect(addr, e.to_string()))?;
    tracing::info!("connected");
    let (mut send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| ClientError::Control(e.to_string()))?;
    let hello = AgentToGateway::Hello {
        version: AGENT_PROTOCOL_VERSION,
        agent_id: shared.ctx.config.agent_id.clone(),
        capacity: shared.slots.free(),
        browser: shared.report.version.clone(),
        policy: shared.report.policy.clone(),
    };
    write(&mut send, &hello).await?;
    let mut control = ControlReader::new(recv);
    match tokio::time::timeout(Duration::from_secs(10), control.next()).await {
        Ok(Ok(GatewayToAgent::Welcome { version })) if version == AGENT_PROTOCOL_VERSION => {}
        Ok(Ok(GatewayToAgent::Welcome { version })) => {
            return Err(ClientError::Protocol(format!(
                "version {version} (want {AGENT_PROTOCOL_VERSION})"
            )))
        }
        Ok(Ok(GatewayToAgent::Bye { reason })) => return Err(ClientError::Bye(reason.name())),
        Ok(Ok(_)) => {
            return Err(ClientError::Protocol(
                "first message must be Welcome".into(),
            ))
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(ClientError::Control("no Welcome within 10 s".into())),
    }
    let result = control_loop(&conn, &mut send, &mut control, shared).await;
    tsuitate_transport::close(&conn, Reason::Normal);
    result
}

async fn write(send: &mut SendStream, msg: &AgentToGateway) -> Result<(), ClientError> {
    tsuitate_transport::write(send, msg)
        .await
        .map_err(|e| ClientError::Control(e.to_string()))
}

struct ControlReader(MessageReader<GatewayToAgent>);

impl ControlReader {
    fn new(recv: RecvStream) -> Self {
        ControlReader(MessageReader::new(recv, Limits::default()))
    }
    /// The next message (cancel-safe: bytes already read stay in the buffer).
    async fn next(&mut self) -> Result<GatewayToAgent, ClientError> {
        match self.0.read().await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(ClientError::Control("finished by gateway".into())),
            Err(ReadError::Wire(e)) => Err(ClientError::Protocol(e.to_string())),
            Err(ReadError::Io(e)) => Err(ClientError::Control(e)),
        }
    }
}

async fn control_loop(
    conn: &Connection,
    send: &mut SendStream,
    control: &mut ControlReader,
    shared: &Arc<Shared>,
) -> Result<(), ClientError> {
    let mut free = shared.slots.subscribe();
    let mut stats_tick = tokio::time::interval(Duration::from_secs(10));
    // Every session held, then each change (subscribed first: nothing falls between).
    let mut held = shared.ctx.registry.subscribe();
    let mut announced = HashSet::new();
    resync(send, &shared.ctx.registry, &mut announced).await?;
    loop {
        tokio::select! {
            msg = control.next() => match msg? {
                GatewayToAgent::Ping { nonce, gateway_us } => {
                    write(send, &AgentToGateway::Pong { nonce, gateway_us, agent_us: now_us() }).await?;
                }
                GatewayToAgent::Bye { reason } => return Err(ClientError::Bye(reason.name())),
                GatewayToAgent::Welcome { .. } => return Err(ClientError::Protocol("second Welcome".into())),
            },
            stream = conn.accept_bi() => {
                let (s, r) = stream.map_err(|e| ClientError::Control(e.to_string()))?;
                accept_session(s, r, shared);
            }
            change = held.recv() => match change {
                Ok(m) => {
                    match &m {
                        AgentToGateway::Held { session, .. } => announced.insert(*session),
                        AgentToGateway::Released { session } => announced.remove(session),
                        _ => false,
                    };
                    write(send, &m).await?;
                }
                // Changes were missed: tell this gateway the whole state again (the sessions'
                // streams on this connection go on).
                Err(_) => resync(send, &shared.ctx.registry, &mut announced).await?,
            },
            changed = free.changed() => {
                if changed.is_ok() {
                    let f = *free.borrow_and_update();
                    write(send, &AgentToGateway::Capacity { free: f }).await?;
                }
            }
            _ = stats_tick.tick() => {
                let s = &shared.ctx.stats;
                write(send, &AgentToGateway::Stats {
                    sessions: shared.ctx.config.max_sessions.saturating_sub(shared.slots.free()),
                    frames_encoded: s.frames_encoded.load(Ordering::Relaxed),
                    frames_skipped: s.frames_skipped.load(Ordering::Relaxed),
                }).await?;
            }
        }
    }
}

/// Tell a gateway every session held now, and `Released` for those it was told of that are
/// gone.
async fn resync(
    send: &mut SendStream,
    registry: &Registry,
    announced: &mut HashSet<u64>,
) -> Result<(), ClientError> {
    let now = registry.snapshot();
    let held: HashSet<u64> = now
        .iter()
        .filter_map(|m| match m {
            AgentToGateway::Held { session, .. } => Some(*session),
            _ => None,
        })
        .collect();
    for gone in announced.difference(&held) {
        write(send, &AgentToGateway::Released { session: *gone }).await?;
    }
    for m in &now {
        write(send, m).await?;
    }
    *announced = held;
    Ok(())
}

/// Read the stream's `Open`; hand the stream to the held session it resumes, or start a new
/// browser in a free slot, or answer `Ended{NoCapacity}` when every slot is taken.
fn accept_session(send: SendStream, recv: RecvStream, shared: &Arc<Shared>) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let Some((open, mut stream)) = session::read_open(send, recv).await else {
            return;
        };
        if let Some(held) = open.resume {
            match resume(&shared, held, &open, stream).await {
                None => return,
                Some(back) => stream = back,
            }
        }
        let Some(slot) = shared.slots.take() else {
            tracing::warn!("session refused: no capacity");
            stream.refuse(Reason::NoCapacity).await;
            return;
        };
        session::serve_new(open, stream, &shared.ctx).await;
        drop(slot);
    });
}

/// Offer `stream` to held session `held` if it is the owner's. `None`: the session took it;
/// the stream back: there is no such session (any more), start a new browser on it.
async fn resume(
    shared: &Shared,
    held: u64,
    open: &session::OpenRequest,
    stream: session::Stream,
) -> Option<session::Stream> {
    let Some(handover) = shared.ctx.registry.claim(held, &open.owner) else {
        tracing::info!(held, "nothing to resume: a new browser starts");
        return Some(stream);
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let watermark = open.watermark.clone();
    if let Err(e) = handover
        .send(Handover {
            stream,
            watermark,
            reply,
        })
        .await
    {
        return Some(e.0.stream);
    }
    match answer.await {
        Ok(Ok(())) => {
            tracing::info!(held, session = open.session_id, "session resumed");
            None
        }
        Ok(Err(stream)) => Some(stream),
        // The session dropped the offer (it cannot: it answers every one); nothing to serve.
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_resolution_starts_new_addresses_and_retires_vanished_ones() {
        let a = |s: &str| s.parse::<SocketAddr>().expect("address");
        let running = [a("10.0.0.1:4701"), a("10.0.0.2:4701")];
        let found = [a("10.0.0.2:4701"), a("10.0.0.3:4701"), a("[fd00::4]:4701")];
        let (start, retire) = reconcile(&running, &found);
        assert_eq!(start, vec![a("10.0.0.3:4701"), a("[fd00::4]:4701")]);
        assert_eq!(retire, vec![a("10.0.0.1:4701")]);
        assert_eq!(reconcile(&found, &found), (vec![], vec![]));
        // A name that resolves to nothing for a moment retires everything, starts nothing.
        assert_eq!(reconcile(&running, &[]), (vec![], running.to_vec()));
        // One gateway with an address of each family is connected once.
        assert_eq!(
            one_family(vec![
                a("[::1]:4701"),
                a("127.0.0.1:4701"),
                a("127.0.0.1:4701")
            ]),
            vec![a("127.0.0.1:4701")]
        );
        assert_eq!(
            one_family(vec![a("[fd00::2]:1"), a("[fd00::1]:1")]),
            vec![a("[fd00::1]:1"), a("[fd00::2]:1")]
        );
    }
}
