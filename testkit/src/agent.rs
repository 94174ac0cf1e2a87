//! The fake agent: real QUIC with a client certificate (through `tsuitate-transport`), the real
//! protocol, frames from [`crate::frames`]. It can be told to turn hostile after some frames.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quinn::{RecvStream, SendStream};
use tsuitate_protocol::{
    AgentSessionToGateway, AgentToGateway, GatewayToAgent, GatewayToAgentSession, Message, Reason,
    VideoFrame, VideoHeader, Watermark, AGENT_PROTOCOL_VERSION,
};
use tsuitate_transport::Tuning;

use crate::Reader;

use crate::frames::{self, HEIGHT, MARKER, WIDTH};

/// What the agent does after `hostile_after` normal frames of each session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Keep sending good frames.
    Normal,
    /// A P-frame with an SEI (user data) NAL unit carrying the marker.
    Sei,
    /// A frame with a NAL unit of this type carrying the marker.
    NalType(u8),
    /// A video message declaring a payload larger than the limit.
    Oversize,
    /// A message kind the agent may not send (viewer Input kind 0x12) with the marker.
    WrongKind,
    /// Random-looking bytes with the marker.
    Garbage,
    /// End the session with `Ended{BrowserExited}`.
    EndSession,
}

/// What the agent observed.
#[derive(Debug, Default)]
pub struct AgentStats {
    pub sessions_opened: AtomicU64,
    pub frames_sent: AtomicU64,
    pub input_events: AtomicU64,
    pub keyframe_requests: AtomicU64,
    pub resizes: AtomicU64,
    pub pings: AtomicU64,
    pub closes: Mutex<Vec<Reason>>,
    pub byes: Mutex<Vec<Reason>>,
    pub open_sizes: Mutex<Vec<(u16, u16)>>,
    /// The watermark each `Open` asked for.
    pub watermarks: Mutex<Vec<Option<Watermark>>>,
}

/// Options.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub id: String,
    /// The id sent in `Hello` (normally the same as `id`).
    pub hello_id: String,
    pub capacity: u16,
    /// What `Hello` reports as the browser version and policy digest.
    pub browser: String,
    pub policy: String,
    pub fps: u32,
    pub behaviour: Behaviour,
    pub hostile_after: u64,
    /// Keep sending hostile frames instead of stopping after the first.
    pub hostile_repeat: bool,
    /// Let the gateway open session streams (false: a stream limit of 0, so it never can).
    pub accept_streams: bool,
    /// Hand each session's send stream, after `Started` (at the size `Open` asked for), to
    /// the caller instead of sending synthetic frames (the relay benchmark writes its own).
    pub handoff: Option<tokio::sync::mpsc::Sender<SendStream>>,
}

impl AgentOptions {
    pub fn new(id: &str) -> Self {
        AgentOptions {
            id: id.into(),
            hello_id: id.into(),
            capacity: 4,
            browser: "Chromium 131.0.6778.85".into(),
            policy: "5e".repeat(32),
            fps: 30,
            behaviour: Behaviour::Normal,
            hostile_after: 5,
            hostile_repeat: false,
            accept_streams: true,
            handoff: None,
        }
    }
}

/// The reason code a connection was closed with by its peer, if it was an application close.
pub fn close_reason(conn: &quinn::Connection) -> Option<Reason> {
    tsuitate_transport::close_reason(&conn.close_reason()?)
}

/// A running synthetic agent.
pub struct SyntheticAgent {
    pub stats: Arc<AgentStats>,
    pub conn: quinn::Connection,
    pub endpoint: quinn::Endpoint,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Connect with the certificate of `identity` (or none) and say Hello. Errors are returned
/// as strings (a refused certificate shows up here).
pub async fn connect(
    gw: SocketAddr,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    opts: AgentOptions,
) -> Result<SyntheticAgent, String> {
    let tuning = Tuning::default();
    let mut cfg = tsuitate_transport::client_config_from_files(ca, identity, &tuning)
        .map_err(|e| e.to_string())?;
    if !opts.accept_streams {
        let mut t = tuning.transport();
        t.max_concurrent_bidi_streams(0u32.into());
        cfg.transport_config(Arc::new(t));
    }
    let endpoint = tsuitate_transport::client_endpoint(gw, cfg).map_err(|e| e.to_string())?;
    let conn = endpoint
        .connect(gw, "localhost")
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let hello = AgentToGateway::Hello {
        version: AGENT_PROTOCOL_VERSION,
        agent_id: opts.hello_id.clone(),
        capacity: opts.capacity,
        browser: opts.browser.clone(),
        policy: opts.policy.clone(),
    };
    tsuitate_transport::write(&mut send, &hello)
        .await
        .map_err(|e| e.to_string())?;
    let mut control = Reader::<GatewayToAgent>::new(recv);
    match control.next().await {
        Some(GatewayToAgent::Welcome { .. }) => {}
        other => return Err(format!("no Welcome: {other:?}")),
    }
    let stats = Arc::new(AgentStats::default());
    tokio::spawn(control_loop(send, control, stats.clone()));
    tokio::spawn(accept_sessions(conn.clone(), opts, stats.clone()));
    Ok(SyntheticAgent {
        stats,
        conn,
        endpoint,
    })
}

async fn control_loop(
    mut send: SendStream,
    mut rx: Reader<GatewayToAgent>,
    stats: Arc<AgentStats>,
) {
    while let Some(m) = rx.next().await {
        match m {
            GatewayToAgent::Ping { nonce, gateway_us } => {
                stats.pings.fetch_add(1, Relaxed);
                let pong = AgentToGateway::Pong {
                    nonce,
                    gateway_us,
                    agent_us: now_us(),
                };
                if tsuitate_transport::write(&mut send, &pong).await.is_err() {
                    return;
                }
            }
            GatewayToAgent::Bye { reason } => stats.byes.lock().unwrap().push(reason),
            GatewayToAgent::Welcome { .. } => {}
        }
    }
}

async fn accept_sessions(conn: quinn::Connection, opts: AgentOptions, stats: Arc<AgentStats>) {
    while let Ok((send, recv)) = conn.accept_bi().await {
        tokio::spawn(session(send, recv, opts.clone(), stats.clone()));
    }
}

async fn session(
    mut send: SendStream,
    recv: RecvStream,
    opts: AgentOptions,
    stats: Arc<AgentStats>,
) {
    let mut rx = Reader::<GatewayToAgentSession>::new(recv);
    let Some(GatewayToAgentSession::Open {
        width,
        height,
        watermark,
        ..
    }) = rx.next().await
    else {
        return;
    };
    stats.sessions_opened.fetch_add(1, Relaxed);
    stats.watermarks.lock().unwrap().push(watermark);
    stats.open_sizes.lock().unwrap().push((width, height));
    let size = match opts.handoff {
        Some(_) => (width, height),
        None => (WIDTH as u16, HEIGHT as u16),
    };
    let started = AgentSessionToGateway::Started {
        width: size.0,
        height: size.1,
        resumed: false,
        age_s: 0,
    };
    if tsuitate_transport::write(&mut send, &started)
        .await
        .is_err()
    {
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let want_key = Arc::new(AtomicBool::new(false));
    let sender = match &opts.handoff {
        Some(handoff) => {
            if handoff.send(send).await.is_err() {
                return;
            }
            None
        }
        None => Some(tokio::spawn(send_frames(
            send,
            opts.clone(),
            stats.clone(),
            stop.clone(),
            want_key.clone(),
        ))),
    };
    while let Some(m) = rx.next().await {
        match m {
            GatewayToAgentSession::Input(ev) => {
                stats.input_events.fetch_add(ev.len() as u64, Relaxed);
            }
            GatewayToAgentSession::KeyframeRequest => {
                stats.keyframe_requests.fetch_add(1, Relaxed);
                want_key.store(true, Relaxed);
            }
            GatewayToAgentSession::Resize { .. } => {
                stats.resizes.fetch_add(1, Relaxed);
            }
            GatewayToAgentSession::Close { reason } => {
                stats.closes.lock().unwrap().push(reason);
                break;
            }
            GatewayToAgentSession::Open { .. } => break,
        }
    }
    stop.store(true, Relaxed);
    if let Some(sender) = sender {
        let _ = sender.await;
    }
}

fn hostile_bytes(b: Behaviour, seq: u64, au: &frames::Au) -> Option<Vec<u8>> {
    let video = |data: Vec<u8>, keyframe: bool| {
        AgentSessionToGateway::Video(VideoFrame {
            header: VideoHeader {
                sequence: seq,
                capture_us: now_us(),
                keyframe,
                width: WIDTH as u16,
                height: HEIGHT as u16,
            },
            data: data.into(),
        })
        .to_bytes()
    };
    Some(match b {
        Behaviour::Normal => return None,
        Behaviour::Sei => video(frames::with_sei(&au.data), au.keyframe),
        Behaviour::NalType(t) => video(frames::with_nal_type(&au.data, t), au.keyframe),
        Behaviour::Oversize => {
            let mut v = vec![0x51];
            v.extend_from_slice(&(64u32 * 1024 * 1024).to_be_bytes());
            v.extend_from_slice(MARKER);
            v
        }
        Behaviour::WrongKind => {
            let mut v = vec![0x12];
            v.extend_from_slice(&(MARKER.len() as u32).to_be_bytes());
            v.extend_from_slice(MARKER);
            v
        }
        Behaviour::Garbage => {
            let mut v: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8 | 0x80).collect();
            v.extend_from_slice(MARKER);
            v
        }
        Behaviour::EndSession => AgentSessionToGateway::Ended {
            reason: Reason::BrowserExited,
        }
        .to_bytes(),
    })
}

async fn send_frames(
    mut send: SendStream,
    opts: AgentOptions,
    stats: Arc<AgentStats>,
    stop: Arc<AtomicBool>,
    want_key: Arc<AtomicBool>,
) {
    let all = frames::frames();
    let mut tick = tokio::time::interval(Duration::from_micros(
        1_000_000 / u64::from(opts.fps.max(1)),
    ));
    let (mut i, mut seq) = (0usize, 0u64);
    while !stop.load(Relaxed) {
        // fps 0: as fast as the stream takes them (throughput measurements).
        if opts.fps > 0 {
            tick.tick().await;
        } else {
            tokio::task::yield_now().await;
        }
        if want_key.swap(false, Relaxed) {
            i = i.div_ceil(frames::GOP) * frames::GOP;
        }
        let au = &all[i % all.len()];
        i += 1;
        seq += 1;
        let bytes = match (seq > opts.hostile_after).then(|| hostile_bytes(opts.behaviour, seq, au))
        {
            Some(Some(b)) => b,
            _ => AgentSessionToGateway::Video(VideoFrame {
                header: VideoHeader {
                    sequence: seq,
                    capture_us: now_us(),
                    keyframe: au.keyframe,
                    width: WIDTH as u16,
                    height: HEIGHT as u16,
                },
                data: au.data.clone().into(),
            })
            .to_bytes(),
        };
        if send.write_all(&bytes).await.is_err() {
            return;
        }
        stats.frames_sent.fetch_add(1, Relaxed);
        if seq > opts.hostile_after && opts.behaviour != Behaviour::Normal && !opts.hostile_repeat {
            // One hostile message is enough; wait to be cut off.
            let _ = send.stopped().await;
            return;
        }
    }
}
