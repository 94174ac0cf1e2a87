//! One UDP port for every browser's WebRTC (ICE, DTLS, SRTP, SCTP): a demultiplexer in front of
//! webrtc-rs, which binds a socket per peer connection and has no mux of its own (0.21.1).
//!
//! Each peer connection gets its own [`MuxRuntime`], the async runtime with one change: the
//! UDP socket the connection binds is replaced by a [`MuxSocket`] that receives the datagrams
//! the mux routed to it and sends through the shared port. Routing: a STUN Binding request names
//! its receiver in `USERNAME` (`our-ufrag:their-ufrag`, RFC 8445 §7.2.2), and every peer has its
//! own random ufrag, so the request goes to that peer. A source address becomes that peer's only
//! when the peer's ICE agent itself sends a Binding request or success response to it — it
//! knows an address only from a request whose integrity it checked with the password only its
//! browser was given — so nobody can move another browser's address to their own peer without
//! that password. Any other datagram goes to the peer its source address belongs to, or is dropped.
//! DTLS then checks the certificate fingerprint from the signalled offer. The answer's candidate
//! names the shared port ([`MuxRuntime::advertise`]); the per-peer socket the connection bound
//! is closed at once. Sending never waits: a datagram the kernel has no room for is dropped
//! (UDP), so no peer's driver can stall another's. (docs/decisions.md D15.)

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    Transmit,
};

/// Datagrams waiting for one peer's driver; more are dropped (UDP semantics).
const PEER_QUEUE: usize = 512;
/// Source addresses one peer keeps (its ICE candidates, NAT rebindings); the oldest goes first.
const ADDRS_PER_PEER: usize = 16;
/// Largest datagram read: WebRTC keeps packets under its 1200-byte MTU.
const MAX_DATAGRAM: usize = 2048;

/// What the mux counted (for logs and tests).
#[derive(Debug, Default)]
pub struct MuxCounters {
    /// Datagrams passed to a peer.
    pub routed: AtomicU64,
    /// Datagrams from an unknown address that were not a Binding request for a known peer.
    pub unrouted: AtomicU64,
    /// Datagrams dropped because a peer's queue was full.
    pub overflow: AtomicU64,
    /// Datagrams not sent because the socket's send buffer was full.
    pub send_dropped: AtomicU64,
}

struct Route {
    ufrag: String,
    tx: mpsc::Sender<(Bytes, SocketAddr)>,
    /// Its addresses, oldest first.
    addrs: VecDeque<SocketAddr>,
}

#[derive(Default)]
struct Routes {
    next_id: u64,
    peers: HashMap<u64, Route>,
    ufrags: HashMap<String, u64>,
    addrs: HashMap<SocketAddr, u64>,
}

/// The shared UDP port.
pub struct UdpMux {
    socket: tokio::net::UdpSocket,
    local: SocketAddr,
    routes: Mutex<Routes>,
    /// What was routed and dropped.
    pub counters: MuxCounters,
}

impl fmt::Debug for UdpMux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpMux")
            .field("local", &self.local)
            .finish()
    }
}

impl UdpMux {
    /// Bind `addr` (port 0: any free port) and start routing on the current tokio runtime.
    /// The routing task ends when the last handle is dropped.
    pub async fn bind(addr: SocketAddr) -> io::Result<Arc<UdpMux>> {
        let socket = tokio::net::UdpSocket::bind(addr).await?;
        let local = socket.local_addr()?;
        let mux = Arc::new(UdpMux {
            socket,
            local,
            routes: Mutex::new(Routes::default()),
            counters: MuxCounters::default(),
        });
        tokio::spawn(route_loop(Arc::downgrade(&mux)));
        Ok(mux)
    }

    /// The shared port's address (what browsers are told).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Peers registered now (one per live peer connection).
    pub fn peers(&self) -> usize {
        self.routes().peers.len()
    }

    fn routes(&self) -> MutexGuard<'_, Routes> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters more than losing the mux, so a poisoned lock is used as it is.
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, ufrag: &str) -> (u64, mpsc::Receiver<(Bytes, SocketAddr)>) {
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let mut r = self.routes();
        r.next_id += 1;
        let id = r.next_id;
        r.peers.insert(
            id,
            Route {
                ufrag: ufrag.to_owned(),
                tx,
                addrs: VecDeque::new(),
            },
        );
        r.ufrags.insert(ufrag.to_owned(), id);
        (id, rx)
    }

    fn unregister(&self, id: u64) {
        let mut r = self.routes();
        if let Some(route) = r.peers.remove(&id) {
            if r.ufrags.get(&route.ufrag) == Some(&id) {
                r.ufrags.remove(&route.ufrag);
            }
        }
        r.addrs.retain(|_, owner| *owner != id);
    }

    /// Where a datagram from `from` goes, if anywhere: a Binding request to the peer it names,
    /// anything else to the peer `from` belongs to.
    fn route(&self, data: &[u8], from: SocketAddr) -> Option<mpsc::Sender<(Bytes, SocketAddr)>> {
        let r = self.routes();
        let id = match binding_request_ufrag(data) {
            Some(ufrag) => r.ufrags.get(ufrag)?,
            None => r.addrs.get(&from)?,
        };
        r.peers.get(id).map(|p| p.tx.clone())
    }

    /// Peer `id` checks connectivity with `to` (it learnt `to` from a request that carried its
    /// browser's password): `to` is that peer's from now on.
    fn learn(&self, id: u64, to: SocketAddr) {
        let mut r = self.routes();
        if r.addrs.get(&to) == Some(&id) || !r.peers.contains_key(&id) {
            return;
        }
        if let Some(old) = r.addrs.insert(to, id) {
            if let Some(p) = r.peers.get_mut(&old) {
                p.addrs.retain(|a| *a != to);
            }
        }
        let evicted = r.peers.get_mut(&id).and_then(|p| {
            p.addrs.push_back(to);
            (p.addrs.len() > ADDRS_PER_PEER)
                .then(|| p.addrs.pop_front())
                .flatten()
        });
        if let Some(e) = evicted {
            r.addrs.remove(&e);
        }
    }
}

async fn route_loop(mux: std::sync::Weak<UdpMux>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Some(m) = mux.upgrade() else { return };
        // Wake now and then so that the task notices the last handle going away.
        let got = tokio::time::timeout(Duration::from_secs(1), m.socket.recv_from(&mut buf)).await;
        let (n, from) = match got {
            Err(_) => continue,
            // ICMP errors (a browser gone) surface here; they concern one peer, not the port.
            Ok(Err(_)) => continue,
            Ok(Ok(v)) => v,
        };
        let Some(data) = buf.get(..n) else { continue };
        match m.route(data, from) {
            Some(tx) => match tx.try_send((Bytes::copy_from_slice(data), from)) {
                Ok(()) => m.counters.routed.fetch_add(1, Ordering::Relaxed),
                Err(_) => m.counters.overflow.fetch_add(1, Ordering::Relaxed),
            },
            None => m.counters.unrouted.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Whether `data` is a STUN Binding request or success response (what an ICE agent sends only
/// to addresses it has authenticated, or was given in the signalled offer).
fn is_binding_check(data: &[u8]) -> bool {
    data.len() >= 20
        && (data[..2] == [0x00, 0x01] || data[..2] == [0x01, 0x01])
        && data[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

/// The local ufrag a STUN Binding request is addressed to (`USERNAME` = `ours:theirs`), or
/// `None` for anything else. Reads at most the message's own length; never panics.
pub fn binding_request_ufrag(data: &[u8]) -> Option<&str> {
    const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    const USERNAME: u16 = 0x0006;
    let header = data.get(..20)?;
    if header[..2] != [0x00, 0x01] || header[4..8] != MAGIC {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut attrs = data.get(20..20usize.checked_add(len)?)?;
    while let Some(head) = attrs.get(..4) {
        let typ = u16::from_be_bytes([head[0], head[1]]);
        let alen = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let value = attrs.get(4..4 + alen)?;
        if typ == USERNAME {
            let name = std::str::from_utf8(value).ok()?;
            let (ours, _) = name.split_once(':')?;
            return (!ours.is_empty()).then_some(ours);
        }
        // Attributes are padded to 4 bytes.
        let next = (4 + alen).checked_next_multiple_of(4)?;
        attrs = attrs.get(next..)?;
    }
    None
}

/// A random ICE ufrag (16 characters) and password (32), from the ICE character set; an error
/// when the system has no randomness to give (never a predictable password).
pub fn ice_credentials() -> io::Result<(String, String)> {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut raw = [0u8; 48];
    getrandom::fill(&mut raw).map_err(|e| io::Error::other(e.to_string()))?;
    // 64 characters: every byte maps to one without bias.
    let s: String = raw
        .iter()
        .map(|b| char::from(CHARS[usize::from(*b) % CHARS.len()]))
        .collect();
    Ok((s[..16].to_owned(), s[16..].to_owned()))
}

/// The async runtime of one peer connection: tokio's, except that its UDP socket is a
/// [`MuxSocket`] on the shared port.
#[derive(Debug)]
pub struct MuxRuntime {
    inner: Arc<dyn Runtime>,
    mux: Arc<UdpMux>,
    ufrag: String,
    bound: Mutex<Option<SocketAddr>>,
}

impl MuxRuntime {
    /// The runtime for the peer whose ICE ufrag is `ufrag`.
    pub fn new(inner: Arc<dyn Runtime>, mux: Arc<UdpMux>, ufrag: String) -> MuxRuntime {
        MuxRuntime {
            inner,
            mux,
            ufrag,
            bound: Mutex::new(None),
        }
    }

    /// `sdp` with the candidates of the socket the connection bound moved to the shared port.
    pub fn advertise(&self, sdp: &str) -> String {
        let bound = *self.bound.lock().unwrap_or_else(|p| p.into_inner());
        match bound {
            Some(b) => rewrite_candidates(sdp, b, self.mux.local_addr()),
            None => sdp.to_owned(),
        }
    }
}

/// `sdp` with every candidate at `from` (`ip port` in an `a=candidate` line) moved to `to`.
pub fn rewrite_candidates(sdp: &str, from: SocketAddr, to: SocketAddr) -> String {
    let old = format!(" {} {} typ ", from.ip(), from.port());
    let new = format!(" {} {} typ ", to.ip(), to.port());
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("a=candidate:") {
            out.push_str(&line.replacen(&old, &new, 1));
        } else {
            out.push_str(line);
        }
    }
    out
}

impl Runtime for MuxRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        // The connection keys its socket by this address; the socket itself is closed here,
        // so the only port open to browsers is the shared one.
        let label = socket.local_addr()?;
        drop(socket);
        *self.bound.lock().unwrap_or_else(|p| p.into_inner()) = Some(label);
        let (id, rx) = self.mux.register(&self.ufrag);
        Ok(Arc::new(MuxSocket {
            id,
            label,
            mux: self.mux.clone(),
            rx: Mutex::new(rx),
        }))
    }

    fn wrap_tcp_listener(&self, listener: TcpListener) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio+udp-mux"
    }
}

/// One peer connection's view of the shared port.
pub struct MuxSocket {
    id: u64,
    label: SocketAddr,
    mux: Arc<UdpMux>,
    rx: Mutex<mpsc::Receiver<(Bytes, SocketAddr)>>,
}

impl fmt::Debug for MuxSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxSocket")
            .field("id", &self.id)
            .field("shared", &self.mux.local)
            .finish()
    }
}

impl Drop for MuxSocket {
    fn drop(&mut self) {
        self.mux.unregister(self.id);
    }
}

impl AsyncUdpSocket for MuxSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.label)
    }

    fn poll_send(&self, _cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        if is_binding_check(transmit.contents) {
            self.mux.learn(self.id, transmit.destination);
        }
        // Never wait on the shared socket (only the last waiter would be woken): a datagram
        // the kernel has no room for now is dropped, as the network might drop it.
        match self
            .mux
            .socket
            .try_send_to(transmit.contents, transmit.destination)
        {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.mux
                    .counters
                    .send_dropped
                    .fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Ok(transmit.contents.len()))
            }
            other => Poll::Ready(other),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        match rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(Err(io::Error::other("the shared UDP port closed"))),
            Poll::Ready(Some((data, from))) => {
                let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
                    return Poll::Ready(Ok(0));
                };
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                let mut filled = RecvMeta::default();
                filled.addr = from;
                filled.len = n;
                filled.stride = n.max(1);
                filled.dst_ip = Some(self.mux.local.ip());
                *m = filled;
                Poll::Ready(Ok(1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A PRIORITY attribute first, then USERNAME (padded).
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        attrs.extend_from_slice(&0x0006u16.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn binding_requests_name_their_peer() {
        assert_eq!(
            binding_request_ufrag(&binding_request("abcd1234:xyz")),
            Some("abcd1234")
        );
        assert_eq!(
            binding_request_ufrag(&binding_request("abc:x")),
            Some("abc")
        );
        // Not a request (a success response), no colon, empty, cut short, garbage.
        let mut resp = binding_request("abcd:x");
        resp[1] = 0x01;
        resp[0] = 0x01;
        assert_eq!(binding_request_ufrag(&resp), None);
        assert_eq!(binding_request_ufrag(&binding_request("abcd")), None);
        assert_eq!(binding_request_ufrag(&binding_request(":x")), None);
        let whole = binding_request("abcd1234:xyz");
        for cut in 0..whole.len() {
            assert_eq!(binding_request_ufrag(&whole[..cut]), None, "cut at {cut}");
        }
        // An attribute length that runs past the message.
        let mut long = binding_request("abcd:x");
        long[22] = 0xff;
        assert_eq!(binding_request_ufrag(&long), None);
        assert_eq!(binding_request_ufrag(&[0x16, 0xfe, 0xfd, 0, 0]), None);
    }

    #[test]
    fn credentials_are_ice_characters_and_differ() {
        let (u, p) = ice_credentials().unwrap();
        assert_eq!((u.len(), p.len()), (16, 32));
        assert!(u
            .chars()
            .chain(p.chars())
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/'));
        assert_ne!(ice_credentials().unwrap().0, u);
    }

    #[test]
    fn only_the_bound_candidate_moves() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 10.0.0.5 40123 typ host\r\n\
                   a=candidate:2 1 udp 2130706431 10.0.0.6 40123 typ host\r\nm=video 9 UDP\r\n";
        let out = rewrite_candidates(
            sdp,
            "10.0.0.5:40123".parse().unwrap(),
            "10.0.0.5:50000".parse().unwrap(),
        );
        assert!(out.contains("10.0.0.5 50000 typ host\r\n"));
        assert!(out.contains("10.0.0.6 40123 typ host\r\n"));
        assert!(out.ends_with("m=video 9 UDP\r\n"));
    }

    async fn recv(s: &Arc<dyn AsyncUdpSocket>) -> (Vec<u8>, SocketAddr) {
        let mut buf = [0u8; 2048];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), s.recv_from(&mut buf))
            .await
            .expect("a datagram")
            .unwrap();
        (buf[..n].to_vec(), from)
    }

    /// A Binding success response (its body does not matter to the mux).
    fn success() -> Vec<u8> {
        let mut m = vec![0x01, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[9; 12]);
        m
    }

    #[tokio::test]
    async fn datagrams_reach_the_peer_their_binding_request_named() {
        let mux = UdpMux::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let rt = |u: &str| {
            MuxRuntime::new(
                webrtc::runtime::default_runtime().unwrap(),
                mux.clone(),
                u.into(),
            )
        };
        let (a, b) = (rt("peerA"), rt("peerB"));
        let sa = a
            .wrap_udp_socket(std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .unwrap();
        let sb = b
            .wrap_udp_socket(std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .unwrap();
        assert_eq!(mux.peers(), 2);
        let browser1 = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let browser2 = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (b1, b2) = (
            browser1.local_addr().unwrap(),
            browser2.local_addr().unwrap(),
        );
        let port = mux.local_addr();
        let unrouted = || mux.counters.unrouted.load(Ordering::Relaxed);
        // Unknown sender, not STUN: dropped.
        browser1.send_to(b"hello", port).await.unwrap();
        // A Binding request reaches the peer it names...
        browser1
            .send_to(&binding_request("peerB:b1"), port)
            .await
            .unwrap();
        let (d, from) = recv(&sb).await;
        assert_eq!((binding_request_ufrag(&d), from), (Some("peerB"), b1));
        // ... but does not make its source that peer's: only the peer's own check or answer
        // (sent after its ICE agent checked the request's password) does.
        browser1.send_to(b"early", port).await.unwrap();
        for _ in 0..100 {
            if unrouted() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(unrouted(), 2, "hello and early were dropped");
        sb.send_to(&success(), b1).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = browser1.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, from), (20, port), "replies leave from the shared port");
        browser1.send_to(b"dtls-1", port).await.unwrap();
        assert_eq!(recv(&sb).await.0, b"dtls-1");
        // Another browser, another peer.
        browser2
            .send_to(&binding_request("peerA:b2"), port)
            .await
            .unwrap();
        assert_eq!(binding_request_ufrag(&recv(&sa).await.0), Some("peerA"));
        sa.send_to(&success(), b2).await.unwrap();
        browser2.send_to(b"dtls-2", port).await.unwrap();
        assert_eq!(recv(&sa).await.0, b"dtls-2");
        // A closed peer's addresses route nowhere.
        drop(sb);
        assert_eq!(mux.peers(), 1);
        browser1.send_to(b"late", port).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(unrouted(), 3);
    }

    #[tokio::test]
    async fn a_peer_keeps_its_newest_addresses() {
        let mux = UdpMux::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let (id, _rx) = mux.register("p");
        let addr = |i: u16| SocketAddr::from(([127, 0, 0, 1], 1000 + i));
        for i in 0..(ADDRS_PER_PEER as u16 + 3) {
            mux.learn(id, addr(i));
        }
        let r = mux.routes();
        assert_eq!(r.addrs.len(), ADDRS_PER_PEER);
        assert!(!r.addrs.contains_key(&addr(0)) && r.addrs.contains_key(&addr(18)));
    }
}
