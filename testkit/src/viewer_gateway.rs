//! The fake gateway for the viewer's tests: it plays the gateway's viewer-side role over real
//! QUIC/TLS (the kit's [`Pki`], the transport's server configuration), checks a password, and
//! feeds openh264-encoded synthetic frames. It records every message the viewer sends.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameType, RateControlMode};
use openh264::formats::{RgbSliceU8, YUVBuffer};
use openh264::OpenH264API;
use tokio::sync::oneshot;
use tsuitate_protocol::{
    GatewayToViewer, InputEvent, Limits, LoginStatus, Reason, VideoFrame, VideoHeader,
    ViewerToGateway, PROTOCOL_VERSION,
};
use tsuitate_transport::MessageReader;

use crate::pki::Pki;

pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse";

/// How the test gateway behaves.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub width: u16,
    pub height: u16,
    /// Send frames continuously at this rate (besides the first keyframe).
    pub fps: Option<u32>,
    /// Render and send a new frame after every input batch.
    pub frame_on_input: bool,
    /// Close the first connection (no Bye) after this many frames, to test reconnecting.
    pub drop_first_connection_after: Option<u64>,
    /// Raw bytes written on the stream right after the first frame (a hostile gateway).
    pub raw_after_first_frame: Option<Vec<u8>>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            width: 640,
            height: 360,
            fps: None,
            frame_on_input: false,
            drop_first_connection_after: None,
            raw_after_first_frame: None,
        }
    }
}

/// Everything the viewer sent.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    pub connections: u32,
    pub logins: Vec<String>,
    pub inputs: Vec<InputEvent>,
    /// Messages other than Hello, Login, Input and Ping.
    pub control: Vec<ViewerToGateway>,
    pub pings: u32,
    pub frames_sent: u64,
}

pub struct TestGateway {
    pub addr: SocketAddr,
    pub ca_path: PathBuf,
    pub dir: tempfile::TempDir,
    pub recorded: Arc<Mutex<Recorded>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl TestGateway {
    pub fn start(opts: GatewayOptions) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::create(&dir.path().join("pki"), &[]);
        let server = pki.gateway_server_config(false);
        let ca_path = pki.ca();
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let (stop_tx, stop_rx) = oneshot::channel();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let rec = recorded.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(server, opts, rec, addr_tx, stop_rx));
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        TestGateway {
            addr,
            ca_path,
            dir,
            recorded,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn recorded(&self) -> Recorded {
        self.recorded.lock().unwrap().clone()
    }
}

async fn serve(
    server: quinn::ServerConfig,
    opts: GatewayOptions,
    rec: Arc<Mutex<Recorded>>,
    addr_tx: std::sync::mpsc::Sender<SocketAddr>,
    mut stop: oneshot::Receiver<()>,
) {
    let endpoint = quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
    addr_tx.send(endpoint.local_addr().unwrap()).unwrap();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let opts = opts.clone();
                let rec = rec.clone();
                tokio::spawn(async move {
                    if let Ok(conn) = incoming.await {
                        let n = {
                            let mut r = rec.lock().unwrap();
                            r.connections += 1;
                            r.connections
                        };
                        let _ = handle(conn, opts, rec, n).await;
                    }
                });
            }
        }
    }
    endpoint.close(0u32.into(), b"stop");
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn next(r: &mut MessageReader<ViewerToGateway>) -> Res<Option<ViewerToGateway>> {
    Ok(r.read().await?)
}

async fn send(s: &mut quinn::SendStream, m: &GatewayToViewer) -> Res<()> {
    tsuitate_transport::write(s, m).await?;
    Ok(())
}

/// The synthetic picture number `n`: smooth gradients and a moving block (RGB8).
pub fn render(n: u64, w: usize, h: usize) -> Vec<u8> {
    let mut rgb = vec![0u8; w * h * 3];
    let bx = (n as usize * 37) % w.saturating_sub(64).max(1);
    let by = (n as usize * 23) % h.saturating_sub(48).max(1);
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            let in_block = x >= bx && x < bx + 64 && y >= by && y < by + 48;
            let (r, g, b) = if in_block {
                (240, 200, 40)
            } else {
                ((x * 255 / w) as u8, (y * 255 / h) as u8, 128u8)
            };
            rgb[i] = r;
            rgb[i + 1] = g;
            rgb[i + 2] = b;
        }
    }
    rgb
}

/// PSNR in dB of two equal-size RGB8 images.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        return 99.0;
    }
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

pub fn new_encoder() -> Encoder {
    let cfg = EncoderConfig::new()
        .bitrate(BitRate::from_bps(20_000_000))
        .rate_control_mode(RateControlMode::Quality)
        .skip_frames(false);
    Encoder::with_api_config(OpenH264API::from_source(), cfg).unwrap()
}

/// Encode picture `n`; returns the access unit and whether it is a keyframe.
pub fn encode(enc: &mut Encoder, n: u64, w: usize, h: usize) -> (Vec<u8>, bool) {
    let rgb = render(n, w, h);
    let yuv = YUVBuffer::from_rgb8_source(RgbSliceU8::new(&rgb, (w, h)));
    let bs = enc.encode(&yuv).unwrap();
    (bs.to_vec(), bs.frame_type() == FrameType::IDR)
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

struct Feeder {
    enc: Encoder,
    n: u64,
    w: usize,
    h: usize,
}

impl Feeder {
    async fn send_next(&mut self, s: &mut quinn::SendStream, rec: &Mutex<Recorded>) -> Res<()> {
        let (data, keyframe) = encode(&mut self.enc, self.n, self.w, self.h);
        let frame = VideoFrame {
            header: VideoHeader {
                sequence: self.n,
                capture_us: unix_us(),
                keyframe,
                width: self.w as u16,
                height: self.h as u16,
            },
            data: Bytes::from(data),
        };
        self.n += 1;
        send(s, &GatewayToViewer::Video(frame)).await?;
        rec.lock().unwrap().frames_sent += 1;
        Ok(())
    }
}

async fn handle(
    conn: quinn::Connection,
    opts: GatewayOptions,
    rec: Arc<Mutex<Recorded>>,
    conn_no: u32,
) -> Res<()> {
    let (mut s, r) = conn.accept_bi().await?;
    let mut r = MessageReader::<ViewerToGateway>::new(r, Limits::default());
    match next(&mut r).await? {
        Some(ViewerToGateway::Hello { version }) if version == PROTOCOL_VERSION => {}
        _ => return Ok(()),
    }
    send(
        &mut s,
        &GatewayToViewer::Welcome {
            version: PROTOCOL_VERSION,
        },
    )
    .await?;
    let Some(ViewerToGateway::Login { user, password }) = next(&mut r).await? else {
        return Ok(());
    };
    rec.lock().unwrap().logins.push(user.clone());
    let status = match (user.as_str(), password == PASSWORD) {
        ("locked", _) => LoginStatus::LockedOut,
        ("full", _) => LoginStatus::NoCapacity,
        (USER, true) => LoginStatus::Ok,
        _ => LoginStatus::Denied,
    };
    let retry_after_s = if status == LoginStatus::LockedOut {
        30
    } else {
        0
    };
    send(
        &mut s,
        &GatewayToViewer::LoginResult {
            status,
            retry_after_s,
        },
    )
    .await?;
    if status != LoginStatus::Ok {
        s.finish()?;
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
        return Ok(());
    }
    send(
        &mut s,
        &GatewayToViewer::SessionReady {
            width: opts.width,
            height: opts.height,
            resumed: conn_no > 1,
        },
    )
    .await?;
    let mut feeder = Feeder {
        enc: new_encoder(),
        n: 0,
        w: opts.width.into(),
        h: opts.height.into(),
    };
    feeder.send_next(&mut s, &rec).await?;
    if let Some(raw) = &opts.raw_after_first_frame {
        s.write_all(raw).await?;
    }
    let period = Duration::from_millis(1000 / u64::from(opts.fps.unwrap_or(1).max(1)));
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            msg = next(&mut r) => {
                let Some(msg) = msg? else { return Ok(()) };
                match msg {
                    ViewerToGateway::Input(events) => {
                        rec.lock().unwrap().inputs.extend(events);
                        if opts.frame_on_input {
                            feeder.send_next(&mut s, &rec).await?;
                        }
                    }
                    ViewerToGateway::Ping { nonce, viewer_us } => {
                        rec.lock().unwrap().pings += 1;
                        send(&mut s, &GatewayToViewer::Pong { nonce, viewer_us, gateway_us: unix_us() }).await?;
                    }
                    ViewerToGateway::Logout => {
                        rec.lock().unwrap().control.push(ViewerToGateway::Logout);
                        send(&mut s, &GatewayToViewer::Bye { reason: Reason::Logout }).await?;
                        s.finish()?;
                        let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
                        return Ok(());
                    }
                    ViewerToGateway::KeyframeRequest => {
                        rec.lock().unwrap().control.push(msg);
                        feeder.enc.force_intra_frame();
                        feeder.send_next(&mut s, &rec).await?;
                    }
                    other => rec.lock().unwrap().control.push(other),
                }
            }
            _ = tick.tick(), if opts.fps.is_some() => {
                feeder.send_next(&mut s, &rec).await?;
                if conn_no == 1 && opts.drop_first_connection_after.is_some_and(|n| feeder.n >= n) {
                    conn.close(0u32.into(), b"simulated drop");
                    return Ok(());
                }
            }
        }
    }
}
