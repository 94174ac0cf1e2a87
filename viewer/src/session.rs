//! The running session: video toward the decoder, commands (input, resize, logout) toward the
//! gateway, pings for the clock offset and periodic latency reports; and the reconnect loop
//! that resumes a session after a network drop within the gateway's linger window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tsuitate_protocol::{GatewayToViewer, Reason, ViewerToGateway};

use crate::client::{
    connect_from, quic_client_config, read_message, write_message, ClientConfig, ClientError,
    Connected,
};
use crate::clock::{unix_us, ClockOffset};
use crate::decode::{DecoderInput, Submit};
use crate::report::Stats;

/// Capacity of the command queue from the UI/script to the connection (input applies
/// backpressure: a full queue makes the sender wait).
pub const COMMAND_QUEUE: usize = 64;
/// How often the viewer pings and reports latency.
pub const TICK: Duration = Duration::from_secs(2);

/// What the session tells the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Connecting (first time or again).
    Connecting { attempt: u32 },
    /// A session is attached at this size.
    Ready {
        width: u16,
        height: u16,
        resumed: bool,
    },
    /// The network dropped; reconnecting.
    Reconnecting,
    /// The gateway warns that a timeout will end the session in `seconds`.
    TimeoutWarning {
        kind: tsuitate_protocol::TimeoutKind,
        seconds: u32,
    },
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The gateway said `Bye`.
    Bye(Reason),
    /// We logged out and the gateway closed.
    LoggedOut,
    /// The viewer closed (the command sender was dropped).
    Closed,
    /// An error.
    Error(ClientError),
}

impl SessionEnd {
    /// Stable name for reports.
    pub fn name(&self) -> String {
        match self {
            SessionEnd::Bye(r) => r.name().to_owned(),
            SessionEnd::LoggedOut => "Logout".into(),
            SessionEnd::Closed => "closed".into(),
            SessionEnd::Error(e) => crate::outcome::error_name(e).into(),
        }
    }
}

/// Owns everything that outlives one connection.
pub struct SessionDriver {
    /// Commands from the UI or script.
    pub commands: mpsc::Receiver<ViewerToGateway>,
    /// The decoder's input.
    pub decoder: DecoderInput,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Gateway clock estimate.
    pub clock: Arc<ClockOffset>,
    /// Notifications to the UI.
    pub events: Box<dyn FnMut(SessionEvent) + Send>,
}

impl SessionDriver {
    /// Drive one connected session until it ends.
    pub async fn run(&mut self, conn: Connected) -> SessionEnd {
        let Connected {
            connection,
            send,
            mut reader,
            endpoint: _endpoint,
            ..
        } = conn;
        let (writer_tx, writer_rx) = mpsc::channel::<ViewerToGateway>(COMMAND_QUEUE);
        let mut writer = tokio::spawn(write_loop(send, writer_rx));
        let mut tick = tokio::time::interval(TICK);
        let mut nonce = 0u64;
        let mut logging_out = false;
        let mut writer_done = false;
        self.decoder.resync();
        let end = loop {
            tokio::select! {
                msg = read_message(&mut reader) => match msg {
                    Ok(Some(msg)) => {
                        if let Some(end) = self.on_message(msg, &writer_tx, nonce) {
                            break end;
                        }
                    }
                    Ok(None) if logging_out => break SessionEnd::LoggedOut,
                    Ok(None) => break SessionEnd::Error(ClientError::ConnectionLost(
                        "the gateway closed the stream".into(),
                    )),
                    Err(ClientError::ConnectionLost(_)) if logging_out => break SessionEnd::LoggedOut,
                    Err(e) => break SessionEnd::Error(e),
                },
                cmd = self.commands.recv(), if !logging_out && writer_tx.capacity() > 0 => match cmd {
                    Some(cmd) => {
                        // After Logout nothing more is sent; we wait for the gateway's Bye.
                        logging_out = cmd == ViewerToGateway::Logout;
                        if logging_out && writer_tx.capacity() >= 2 {
                            // The last window's latency goes out before we leave.
                            self.send_latency_report(&writer_tx);
                        }
                        let _ = writer_tx.try_send(cmd);
                    }
                    None => break SessionEnd::Closed,
                },
                _ = tick.tick(), if !logging_out => {
                    nonce += 1;
                    let _ = writer_tx.try_send(ViewerToGateway::Ping { nonce, viewer_us: unix_us() });
                    self.send_latency_report(&writer_tx);
                }
                res = &mut writer, if !writer_done => {
                    writer_done = true;
                    match res {
                        Ok(Ok(())) if logging_out => {}
                        Ok(Err(e)) => break SessionEnd::Error(e),
                        _ => break SessionEnd::Error(ClientError::ConnectionLost("writer stopped".into())),
                    }
                }
            }
        };
        writer.abort();
        if let SessionEnd::Error(ClientError::Protocol(ref m)) = end {
            tracing::warn!(error = %m, "closing: bad message from the gateway");
        }
        tsuitate_transport::close(&connection, Reason::Normal);
        end
    }

    fn send_latency_report(&self, writer: &mpsc::Sender<ViewerToGateway>) {
        let w = self.stats.take_window();
        if w.frames > 0 {
            let _ = writer.try_send(ViewerToGateway::LatencyReport {
                frames: w.frames,
                p50_us: w.p50_us,
                p95_us: w.p95_us,
            });
        }
    }

    fn on_message(
        &mut self,
        msg: GatewayToViewer,
        writer: &mpsc::Sender<ViewerToGateway>,
        last_nonce: u64,
    ) -> Option<SessionEnd> {
        match msg {
            GatewayToViewer::Video(frame) => {
                self.stats
                    .frame_received(frame.header.sequence, frame.data.len());
                match self.decoder.submit(frame) {
                    Submit::Queued => {}
                    Submit::Skipped => self.stats.frames_dropped(1),
                    Submit::DroppedNeedKeyframe => {
                        self.stats.frames_dropped(1);
                        let _ = writer.try_send(ViewerToGateway::KeyframeRequest);
                    }
                    Submit::Closed => {
                        return Some(SessionEnd::Error(ClientError::Protocol(
                            "decoder stopped".into(),
                        )))
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
            GatewayToViewer::SessionReady {
                width,
                height,
                resumed,
            } => (self.events)(SessionEvent::Ready {
                width,
                height,
                resumed,
            }),
            GatewayToViewer::Bye { reason } => return Some(SessionEnd::Bye(reason)),
            GatewayToViewer::TimeoutWarning { kind, seconds } => {
                self.stats.timeout_warning(kind, seconds);
                (self.events)(SessionEvent::TimeoutWarning { kind, seconds });
            }
            GatewayToViewer::Welcome { .. } | GatewayToViewer::LoginResult { .. } => {
                return Some(SessionEnd::Error(ClientError::Protocol(
                    "handshake message during the session".into(),
                )))
            }
        }
        None
    }
}

/// Write queued messages to the gateway until the queue closes or a `Logout` went out (then
/// finish the stream). Shared by the native and the web viewer.
pub async fn write_loop(
    send: quinn::SendStream,
    mut rx: mpsc::Receiver<ViewerToGateway>,
) -> Result<(), ClientError> {
    write_queued(send, &mut rx).await
}

/// [`write_loop`] from a queue that may outlive this stream (the web viewer moves it to the
/// next gateway connection).
pub async fn write_queued(
    mut send: quinn::SendStream,
    rx: &mut mpsc::Receiver<ViewerToGateway>,
) -> Result<(), ClientError> {
    while let Some(msg) = rx.recv().await {
        write_message(&mut send, &msg).await?;
        if msg == ViewerToGateway::Logout {
            let _ = send.finish();
            return Ok(());
        }
    }
    Ok(())
}

/// Connect (retrying network failures until `deadline`), then drive the session; after a
/// network drop, or a gateway that shuts down (`Bye{Shutdown}`), reconnect within `linger`
/// and resume — through the next gateway of the list first, so a lost gateway costs no wait.
/// Login refusals end it at once.
pub async fn run_with_reconnect(
    cfg: &ClientConfig,
    driver: &mut SessionDriver,
    linger: Duration,
) -> SessionEnd {
    let quic = match quic_client_config(&cfg.ca_file) {
        Ok(q) => q,
        Err(e) => return SessionEnd::Error(e),
    };
    let mut attempt = 0u32;
    let mut deadline: Option<Instant> = None;
    let mut start = 0usize;
    loop {
        attempt += 1;
        (driver.events)(SessionEvent::Connecting { attempt });
        let conn = match connect_from(cfg, quic.clone(), start).await {
            Ok(c) => c,
            Err(e) if e.retry_on_reconnect() && deadline.is_some_and(|d| Instant::now() < d) => {
                start += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return SessionEnd::Error(e),
        };
        start = conn.via + 1;
        (driver.events)(SessionEvent::Ready {
            width: conn.width,
            height: conn.height,
            resumed: conn.resumed,
        });
        match driver.run(conn).await {
            SessionEnd::Error(e) if e.is_network() => {
                tracing::info!(error = %e, "network drop; reconnecting");
                driver.stats.connection_lost();
                (driver.events)(SessionEvent::Reconnecting);
                deadline = Some(Instant::now() + linger);
            }
            SessionEnd::Bye(Reason::Shutdown) if !linger.is_zero() => {
                tracing::info!("the gateway shuts down; reconnecting");
                driver.stats.connection_lost();
                (driver.events)(SessionEvent::Reconnecting);
                deadline = Some(Instant::now() + linger);
            }
            end => return end,
        }
    }
}
