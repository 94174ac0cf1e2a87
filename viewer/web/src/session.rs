//! One browser's session: the gateway connection (an ordinary logged-in viewer) on one side,
//! the page's WebRTC peer on the other. Video goes to the peer unchanged; the page's checked
//! events go to the gateway; PLI/FIR become keyframe requests. When the page goes away (tab
//! closed, reload, network), the session waits `page_linger` for it to come back, then logs
//! out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tsuitate_protocol::page::{self, PageMessage};
use tsuitate_protocol::{GatewayToViewer, Limits, Reason, ViewerToGateway};
use tsuitate_viewer::client::{self, read_message, ClientConfig, ClientError, Connected};
use tsuitate_viewer::clock::{unix_us, ClockOffset};
use tsuitate_viewer::i18n::{self, Lang, Status};
use tsuitate_viewer::session::write_queued;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::RTCSessionDescription;

use crate::rtc::{Peer, PeerEvent, RtcError, RtcSettings};

/// Gateway pings (clock offset for the page's latency) and latency reports.
const TICK: Duration = Duration::from_secs(2);
/// The fewest milliseconds between two keyframe requests sent to the gateway (Chromium repeats
/// its PLIs until a keyframe arrives).
const KEYFRAME_GAP: Duration = Duration::from_millis(300);
/// Queue of messages toward the gateway.
const WRITE_QUEUE: usize = 64;

/// What the HTTP side asks of a session.
pub enum Command {
    /// The page's SDP offer; the answer (or a reason) comes back.
    Offer(
        Box<RTCSessionDescription>,
        oneshot::Sender<Result<RTCSessionDescription, RtcError>>,
    ),
    /// The user logged out (the logout button).
    Logout,
}

/// How a session ended, as the login page shows it (from the viewers' one message catalogue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Stable name (`Logout`, `IdleTimeout`, `page_error`, ...).
    pub name: String,
    /// 日本語.
    pub ja: String,
    /// English.
    pub en: String,
}

impl Ended {
    fn reason(r: Reason) -> Ended {
        Ended {
            name: r.name().into(),
            ja: i18n::reason_message(Lang::Ja, r).into(),
            en: i18n::reason_message(Lang::En, r).into(),
        }
    }

    fn error(e: &ClientError) -> Ended {
        Ended {
            name: tsuitate_viewer::outcome::error_name(e).into(),
            ja: i18n::error_message(Lang::Ja, e),
            en: i18n::error_message(Lang::En, e),
        }
    }

    fn page_error() -> Ended {
        Ended {
            name: "page_error".into(),
            ja: "ページから不正なメッセージを受信したため、セッションを終了しました。".into(),
            en: "The session was ended: the page sent a malformed message.".into(),
        }
    }

    fn elsewhere() -> Ended {
        Ended {
            name: "opened_elsewhere".into(),
            ja: "このセッションは別のタブまたはウィンドウで開かれました。".into(),
            en: "This session was opened in another tab or window.".into(),
        }
    }

    fn page_gone() -> Ended {
        Ended {
            name: "page_gone".into(),
            ja: "ビューアのページが閉じられたため、ログアウトしました。".into(),
            en: "The viewer page was closed, so you were logged out.".into(),
        }
    }
}

/// Counters for the web viewer (logged at shutdown; the gateway's metrics carry the rest).
#[derive(Debug, Default)]
pub struct Counters {
    /// Page messages refused (each ended its session).
    pub page_errors: AtomicU64,
    /// Frames sent to browsers.
    pub frames_sent: AtomicU64,
    /// Keyframe requests forwarded to the gateway.
    pub keyframe_requests: AtomicU64,
    /// Gateway connections lost and logged in again for.
    pub reconnects: AtomicU64,
}

/// The HTTP side's handle on a running session.
pub struct SessionHandle {
    /// The user (for logs and the page).
    pub user: String,
    /// Token the page sends with every POST.
    pub csrf: String,
    /// Commands to the session task.
    pub commands: mpsc::Sender<Command>,
    ended: watch::Sender<Option<Ended>>,
}

impl SessionHandle {
    /// A handle; the session task is started with [`spawn`].
    pub fn new(user: String, csrf: String, commands: mpsc::Sender<Command>) -> SessionHandle {
        SessionHandle {
            user,
            csrf,
            commands,
            ended: watch::Sender::new(None),
        }
    }

    /// How the session ended, if it has.
    pub fn ended(&self) -> Option<Ended> {
        self.ended.borrow().clone()
    }

    /// Wait for the session to end.
    pub async fn wait_ended(&self) {
        let mut rx = self.ended.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }

    fn set_ended(&self, e: Ended) {
        self.ended.send_replace(Some(e));
    }
}

/// What a session needs besides its connection.
pub struct SessionContext {
    /// WebRTC address and ports.
    pub rtc: Arc<RtcSettings>,
    /// How long to wait for the page to come (back).
    pub page_linger: Duration,
    /// Wire limits (text length, sizes).
    pub limits: Limits,
    /// Counters.
    pub counters: Arc<Counters>,
    /// The QUIC configuration for gateway connections (a reconnect uses it too).
    pub quic: quinn::ClientConfig,
    /// How long to keep logging in again after the gateway was lost (0: the session ends).
    pub reconnect_window: Duration,
}

/// How one gateway connection of a session ended.
enum Step {
    /// The session is over.
    End(Ended),
    /// The gateway was lost (network, or it shuts down): reconnect.
    Lost(ClientError),
}

/// Write queued messages to one gateway connection until the queue closes or a `Logout` went
/// out (then finish the stream). The queue outlives the connection: the next connection's
/// writer takes it over once this task is gone.
async fn write_shared(
    send: quinn::SendStream,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<ViewerToGateway>>>,
) -> Result<(), ClientError> {
    let mut rx = rx.lock().await;
    write_queued(send, &mut rx).await
}

/// Start the session task for a logged-in connection. `login` (the password included) stays
/// in this task's memory only, to log in again when the gateway is lost.
pub fn spawn(
    conn: Connected,
    login: ClientConfig,
    commands: mpsc::Receiver<Command>,
    handle: Arc<SessionHandle>,
    ctx: Arc<SessionContext>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let user = handle.user.clone();
        let ended = Session::new(&conn, ctx).run(conn, login, commands).await;
        tracing::info!(user = %user, end = %ended.name, "web session ended");
        handle.set_ended(ended);
    })
}

struct Session {
    ctx: Arc<SessionContext>,
    width: u16,
    height: u16,
    peer: Option<Peer>,
    peer_events: Option<mpsc::UnboundedReceiver<PeerEvent>>,
    /// Which peer a page message came from (a reload replaces the peer).
    generation: u64,
    dc: Option<Arc<dyn DataChannel>>,
    media_flowing: bool,
    last_keyframe_request: Option<Instant>,
    clock: ClockOffset,
    page_deadline: Option<Instant>,
    /// We asked the gateway to end the session (and so wait for its Bye before closing).
    logout_sent: bool,
}

type PageIn = (u64, bytes::BytesMut);

/// The least time a session waits for its page's first connection after the login, however
/// short `page_linger` is: a slow PC loading the viewer page must not lose the session it just
/// logged in to.
const FIRST_PAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

impl Session {
    fn new(conn: &Connected, ctx: Arc<SessionContext>) -> Session {
        let page_deadline = Some(Instant::now() + ctx.page_linger.max(FIRST_PAGE_WAIT));
        Session {
            ctx,
            width: conn.width,
            height: conn.height,
            peer: None,
            peer_events: None,
            generation: 0,
            dc: None,
            media_flowing: false,
            last_keyframe_request: None,
            clock: ClockOffset::default(),
            page_deadline,
            logout_sent: false,
        }
    }

    async fn logout(&mut self, to_gw: &mpsc::Sender<ViewerToGateway>) {
        self.logout_sent = true;
        let _ = to_gw.send(ViewerToGateway::Logout).await;
    }

    async fn run(
        mut self,
        conn: Connected,
        login: ClientConfig,
        mut commands: mpsc::Receiver<Command>,
    ) -> Ended {
        // One queue toward the gateway for the whole session: input typed while a lost gateway
        // is replaced waits in it (bounded) and goes to the next connection.
        let (to_gw, writer_rx) = mpsc::channel::<ViewerToGateway>(WRITE_QUEUE);
        let writer_rx = Arc::new(tokio::sync::Mutex::new(writer_rx));
        let (page_tx, mut page_rx) = mpsc::channel::<PageIn>(64);
        let mut tick = tokio::time::interval(TICK);
        let mut nonce = 0u64;
        let mut conn = conn;
        loop {
            let Connected {
                connection,
                send,
                mut reader,
                endpoint: _endpoint,
                via,
                ..
            } = conn;
            let writer = tokio::spawn(write_shared(send, writer_rx.clone()));
            let step = loop {
                let peer_event = async {
                    match self.peer_events.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let page_deadline = async {
                    match self.page_deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    msg = read_message(&mut reader) => match msg {
                        Ok(Some(GatewayToViewer::Bye { reason: Reason::Shutdown })) if !self.logout_sent => {
                            break Step::Lost(ClientError::Ended(Reason::Shutdown));
                        }
                        Ok(Some(msg)) => {
                            if let Some(end) = self.on_gateway(msg, nonce).await {
                                break Step::End(end);
                            }
                        }
                        Ok(None) if !self.logout_sent => break Step::Lost(ClientError::ConnectionLost(
                            "the gateway closed the stream".into(),
                        )),
                        Ok(None) => break Step::End(Ended::reason(Reason::Logout)),
                        Err(e) if e.is_network() && !self.logout_sent => break Step::Lost(e),
                        Err(e) => break Step::End(Ended::error(&e)),
                    },
                    cmd = commands.recv() => match cmd {
                        Some(Command::Offer(offer, reply)) => {
                            let answer = self.on_offer(*offer).await;
                            let _ = reply.send(answer);
                        }
                        Some(Command::Logout) | None => {
                            self.logout(&to_gw).await;
                            break Step::End(Ended::reason(Reason::Logout));
                        }
                    },
                    ev = peer_event => match ev {
                        Some(ev) => self.on_peer(ev, &to_gw, &page_tx),
                        None => self.peer_gone(),
                    },
                    page = page_rx.recv() => {
                        let Some((generation, bytes)) = page else { continue };
                        if generation != self.generation {
                            continue;
                        }
                        match page::decode(&bytes, (self.width, self.height), &self.ctx.limits) {
                            Ok(m) => {
                                if let Some(end) = self.on_page(m, &to_gw).await {
                                    break Step::End(end);
                                }
                            }
                            Err(e) => {
                                self.ctx.counters.page_errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(error = %e, "page message refused; ending its session");
                                self.logout(&to_gw).await;
                                break Step::End(Ended::page_error());
                            }
                        }
                    }
                    _ = tick.tick() => {
                        nonce += 1;
                        let _ = to_gw.try_send(ViewerToGateway::Ping { nonce, viewer_us: unix_us() });
                    }
                    _ = page_deadline => {
                        tracing::info!("the page did not come back; logging out");
                        self.logout(&to_gw).await;
                        break Step::End(Ended::page_gone());
                    }
                }
            };
            match step {
                Step::Lost(e) => {
                    writer.abort();
                    tsuitate_transport::close(&connection, Reason::Normal);
                    match self.reconnect(&login, via + 1, &e, &mut commands).await {
                        Ok(next) => {
                            conn = next;
                            continue;
                        }
                        Err(ended) => {
                            self.tell_page(&ended).await;
                            self.close_peer().await;
                            return ended;
                        }
                    }
                }
                Step::End(ended) => {
                    self.tell_page(&ended).await;
                    // Let the Logout reach the gateway before the connection closes: the
                    // writer finishes the stream after it, and the gateway answers with Bye
                    // (closing the QUIC connection before that could discard the Logout still
                    // in flight, leaving the session to linger).
                    drop(to_gw);
                    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
                    if self.logout_sent {
                        let bye = async {
                            while let Ok(Some(msg)) = read_message(&mut reader).await {
                                if matches!(msg, GatewayToViewer::Bye { .. }) {
                                    break;
                                }
                            }
                        };
                        let _ = tokio::time::timeout(Duration::from_secs(3), bye).await;
                    }
                    self.close_peer().await;
                    tsuitate_transport::close(&connection, Reason::Normal);
                    return ended;
                }
            }
        }
    }

    async fn close_peer(&mut self) {
        if let Some(peer) = self.peer.take() {
            peer.close().await;
        }
    }

    /// The gateway was lost (or shuts down): log in again — through the next gateway first —
    /// within `reconnect_window`, the page keeping its WebRTC connection and told meanwhile.
    /// The gateway that takes the login resumes the same browser from a keyframe.
    async fn reconnect(
        &mut self,
        login: &ClientConfig,
        start: usize,
        lost: &ClientError,
        commands: &mut mpsc::Receiver<Command>,
    ) -> Result<Connected, Ended> {
        let window = self.ctx.reconnect_window;
        if window.is_zero() {
            return Err(Ended::error(lost));
        }
        tracing::info!(error = %lost, "gateway lost; reconnecting");
        self.ctx.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        let status = json!({
            "t": "status",
            "name": "reconnecting",
            "ja": i18n::status_message(Lang::Ja, Status::Reconnecting),
            "en": i18n::status_message(Lang::En, Status::Reconnecting),
            "end": false,
        });
        self.send_page(&status.to_string()).await;
        let deadline = Instant::now() + window;
        let mut start = start;
        loop {
            let quic = self.ctx.quic.clone();
            let attempt =
                tokio::time::timeout_at(deadline, client::connect_from(login, quic, start));
            tokio::pin!(attempt);
            // The page may offer again (its own reconnect) meanwhile: answered without
            // cancelling the login in progress.
            let result = loop {
                tokio::select! {
                    r = &mut attempt => break r,
                    cmd = commands.recv() => match cmd {
                        Some(Command::Offer(offer, reply)) => {
                            let answer = self.on_offer(*offer).await;
                            let _ = reply.send(answer);
                        }
                        Some(Command::Logout) | None => return Err(Ended::reason(Reason::Logout)),
                    },
                }
            };
            match result {
                Ok(Ok(conn)) => {
                    tracing::info!(resumed = conn.resumed, "gateway connection back");
                    self.width = conn.width;
                    self.height = conn.height;
                    let back = json!({"t": "status", "name": "reconnected", "clear": true});
                    self.send_page(&back.to_string()).await;
                    return Ok(conn);
                }
                Ok(Err(e)) if e.retry_on_reconnect() && Instant::now() < deadline => {
                    start += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Ok(Err(e)) => return Err(Ended::error(&e)),
                Err(_) => return Err(Ended::error(lost)),
            }
        }
    }

    async fn on_gateway(&mut self, msg: GatewayToViewer, last_nonce: u64) -> Option<Ended> {
        match msg {
            GatewayToViewer::Video(frame) => {
                self.width = frame.header.width;
                self.height = frame.header.height;
                if let (Some(peer), true) = (self.peer.as_mut(), self.media_flowing) {
                    if let Err(e) = peer.send_frame(frame.header.capture_us, &frame.data).await {
                        tracing::debug!(error = %e, "frame not sent to the page");
                    } else {
                        self.ctx
                            .counters
                            .frames_sent
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            GatewayToViewer::Pong {
                nonce,
                viewer_us,
                gateway_us,
            } => {
                if nonce <= last_nonce {
                    self.clock.on_pong(viewer_us, gateway_us, unix_us());
                }
            }
            GatewayToViewer::SessionReady { width, height, .. } => {
                self.width = width;
                self.height = height;
            }
            GatewayToViewer::Bye { reason } => return Some(Ended::reason(reason)),
            GatewayToViewer::TimeoutWarning { kind, seconds } => {
                // Shown on the page until the user acts (an idle warning) or the session ends.
                let msg = json!({
                    "t": "status",
                    "name": "timeout_warning",
                    "kind": kind.name(),
                    "ja": i18n::timeout_warning_message(Lang::Ja, kind, seconds),
                    "en": i18n::timeout_warning_message(Lang::En, kind, seconds),
                    "end": false,
                });
                self.send_page(&msg.to_string()).await;
            }
            GatewayToViewer::Welcome { .. } | GatewayToViewer::LoginResult { .. } => {
                return Some(Ended::error(&ClientError::Protocol(
                    "handshake message during the session".into(),
                )))
            }
        }
        None
    }

    async fn on_offer(
        &mut self,
        offer: RTCSessionDescription,
    ) -> Result<RTCSessionDescription, RtcError> {
        if let Some(old) = self.peer.take() {
            // Another tab (or a reload) of this session took over: the old page stops
            // instead of taking it back.
            self.tell_page(&Ended::elsewhere()).await;
            old.close().await;
        }
        self.peer_events = None;
        self.dc = None;
        self.media_flowing = false;
        self.generation += 1;
        match Peer::answer(&self.ctx.rtc, offer).await {
            Ok((peer, events, answer)) => {
                self.peer = Some(peer);
                self.peer_events = Some(events);
                Ok(answer)
            }
            Err(e) => {
                tracing::warn!(error = %e, "WebRTC offer refused");
                Err(e)
            }
        }
    }

    fn on_peer(
        &mut self,
        ev: PeerEvent,
        to_gw: &mpsc::Sender<ViewerToGateway>,
        page_tx: &mpsc::Sender<PageIn>,
    ) {
        match ev {
            PeerEvent::Connected => {
                self.media_flowing = true;
                self.page_deadline = None;
                self.request_keyframe(to_gw, true);
            }
            PeerEvent::KeyframeRequest => self.request_keyframe(to_gw, false),
            PeerEvent::DataChannel(dc) => {
                let generation = self.generation;
                let tx = page_tx.clone();
                let reader = dc.clone();
                tokio::spawn(async move {
                    while let Some(ev) = reader.poll().await {
                        let delivered = match ev {
                            DataChannelEvent::OnMessage(m) => {
                                tx.send((generation, m.data)).await.is_ok()
                            }
                            DataChannelEvent::OnClose => false,
                            _ => true,
                        };
                        if !delivered {
                            break;
                        }
                    }
                });
                self.dc = Some(dc);
            }
            PeerEvent::Quiet => self.start_page_linger(),
            PeerEvent::Gone => self.peer_gone(),
        }
    }

    /// The page has `page_linger` to come back (its connection, or a new one), else the
    /// session logs out.
    fn start_page_linger(&mut self) {
        if self.page_deadline.is_none() {
            tracing::info!("the page went quiet; waiting for it to come back");
            self.page_deadline = Some(Instant::now() + self.ctx.page_linger);
        }
    }

    fn peer_gone(&mut self) {
        self.peer_events = None;
        self.media_flowing = false;
        self.dc = None;
        if let Some(peer) = self.peer.take() {
            // Stops its driver task and socket now, not at the next offer.
            tokio::spawn(async move { peer.close().await });
        }
        self.start_page_linger();
    }

    fn request_keyframe(&mut self, to_gw: &mpsc::Sender<ViewerToGateway>, force: bool) {
        let now = Instant::now();
        if !force
            && self
                .last_keyframe_request
                .is_some_and(|t| now.duration_since(t) < KEYFRAME_GAP)
        {
            return;
        }
        self.last_keyframe_request = Some(now);
        self.ctx
            .counters
            .keyframe_requests
            .fetch_add(1, Ordering::Relaxed);
        let _ = to_gw.try_send(ViewerToGateway::KeyframeRequest);
    }

    async fn on_page(
        &mut self,
        msg: PageMessage,
        to_gw: &mpsc::Sender<ViewerToGateway>,
    ) -> Option<Ended> {
        let out = match msg {
            PageMessage::Input(ev) => ViewerToGateway::Input(vec![ev]),
            PageMessage::Resize { width, height } => ViewerToGateway::Resize { width, height },
            PageMessage::Latency {
                frames,
                p50_us,
                p95_us,
            } => ViewerToGateway::LatencyReport {
                frames,
                p50_us,
                p95_us,
            },
            PageMessage::Ping { id, page_ms } => {
                // The gateway clock, as this service estimates it: capture times are in it.
                let gw_us = i128::from(unix_us()) + i128::from(self.clock.offset_us());
                let pong =
                    json!({"t": "pong", "id": id, "page_ms": page_ms, "gw_us": gw_us as f64});
                self.send_page(&pong.to_string()).await;
                return None;
            }
            PageMessage::Logout => {
                self.logout(to_gw).await;
                return Some(Ended::reason(Reason::Logout));
            }
        };
        if to_gw.send(out).await.is_err() {
            return Some(Ended::error(&ClientError::ConnectionLost(
                "writer stopped".into(),
            )));
        }
        None
    }

    async fn send_page(&self, text: &str) {
        if let Some(dc) = &self.dc {
            let _ = dc.send_text(text).await;
        }
    }

    /// Tell the page its session is over for it, and why.
    async fn tell_page(&self, e: &Ended) {
        let msg = json!({"t": "status", "name": e.name, "ja": e.ja, "en": e.en, "end": true});
        self.send_page(&msg.to_string()).await;
    }
}
