//! Gateway capacity on loopback (docs/benchmarks.md §5): how many sessions one gateway core
//! relays, at what added latency and memory per session.
//!
//! ゲートウェイ 1 コアあたりのセッション数・遅延・メモリを、ループバック上の合成エージェントと
//! ビューアで測ります。
//!
//! The real gateway (release build, through the test kit's `Stack`) is pinned to CPU 0; this
//! process — one synthetic agent (the test kit's, real QUIC and mTLS) writing real openh264
//! access units of a scrolling page at 30 fps per session, and one test-kit viewer per session
//! reading every frame — is pinned to the other CPUs. Sessions are added in steps; at each
//! step, after a settling time, the window measures the gateway's CPU (from /proc), its
//! resident memory, frames relayed and dropped (its metrics), and each frame's latency from
//! the agent's write to the viewer's parse (both clocks are this host's). A last soak holds
//! the largest step and samples the gateway's memory every 10 s.
//!
//! Environment: `TSUITATE_LOAD_STEPS` (default `1,10,20,40`), `TSUITATE_LOAD_SECONDS` (window
//! per step, default 15), `TSUITATE_LOAD_SIZE` (default `1920x1080`), `TSUITATE_LOAD_SOAK_S`
//! (default 60; 0 = none). Run with `cargo run --release -p tsuitate-benches --bin
//! bench-gateway-load`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;
use tsuitate_benches::encoded_scroll;
use tsuitate_protocol::{AgentSessionToGateway, GatewayToViewer, VideoFrame, VideoHeader};
use tsuitate_testkit::agent::{self, AgentOptions};
use tsuitate_testkit::procs::cpu_seconds;
use tsuitate_testkit::stack::{metric, PASSWORD, USER};
use tsuitate_testkit::viewer::TestViewer;
use tsuitate_testkit::Stack;

const FPS: u64 = 30;

fn say(msg: &str) {
    eprintln!("\x1b[1m[bench-gateway-load]\x1b[0m {msg}");
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Pin every thread of `pid` to `cpus` (taskset from util-linux).
fn pin(pid: u32, cpus: &str) {
    let ok = Command::new("taskset")
        .args(["-a", "-cp", cpus, &pid.to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        say(&format!("could not pin pid {pid} to CPUs {cpus} (taskset)"));
    }
}

/// Latencies (µs) of frames parsed while the window is open.
#[derive(Default)]
struct Window {
    open: AtomicBool,
    latencies: Mutex<Vec<u32>>,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[i.clamp(1, sorted.len()) - 1]) / 1000.0
}

/// Write the clip's access units to one session stream at 30 fps, from its IDR again after its
/// last frame, until `stop`.
async fn write_session(
    mut send: quinn::SendStream,
    aus: Arc<Vec<Bytes>>,
    (width, height): (u16, u16),
    stop: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / FPS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sequence = 0u64;
    while !stop.load(Relaxed) {
        tick.tick().await;
        let i = (sequence % aus.len() as u64) as usize;
        let frame = AgentSessionToGateway::Video(VideoFrame {
            header: VideoHeader {
                sequence,
                capture_us: now_us(),
                keyframe: i == 0,
                width,
                height,
            },
            data: aus[i].clone(),
        });
        if tsuitate_transport::write(&mut send, &frame).await.is_err() {
            return;
        }
        sequence += 1;
    }
}

/// Read one viewer's frames, recording their latency while the window is open.
async fn read_viewer(mut v: TestViewer, window: Arc<Window>, stop: Arc<AtomicBool>) {
    while !stop.load(Relaxed) {
        match v.next(Duration::from_secs(5)).await {
            Some(GatewayToViewer::Video(f)) => {
                if window.open.load(Relaxed) {
                    let lat = now_us().saturating_sub(f.header.capture_us);
                    window
                        .latencies
                        .lock()
                        .unwrap()
                        .push(u32::try_from(lat).unwrap_or(u32::MAX));
                }
            }
            Some(_) => {}
            None => return,
        }
    }
}

fn main() -> ExitCode {
    let steps: Vec<usize> = env_or("TSUITATE_LOAD_STEPS", "1,10,20,40")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|n| *n > 0)
        .collect();
    let seconds: u64 = env_or("TSUITATE_LOAD_SECONDS", "15").parse().unwrap_or(15);
    let soak: u64 = env_or("TSUITATE_LOAD_SOAK_S", "60").parse().unwrap_or(60);
    let size = env_or("TSUITATE_LOAD_SIZE", "1920x1080");
    let (w, h) = size
        .split_once('x')
        .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
        .unwrap_or((1920, 1080));
    let Some(&max) = steps.iter().max() else {
        say("TSUITATE_LOAD_STEPS names no step");
        return ExitCode::FAILURE;
    };
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    if cpus < 2 {
        say("needs at least 2 CPUs (the gateway on one, the load on the others)");
        return ExitCode::FAILURE;
    }
    // This process (and every thread it starts later) off CPU 0.
    pin(std::process::id(), &format!("1-{}", cpus - 1));

    say(&format!(
        "encoding the clip ({w}x{h}, 30 frames of a scrolling page)"
    ));
    let aus: Arc<Vec<Bytes>> = Arc::new(
        encoded_scroll(w.into(), h.into(), 30)
            .into_iter()
            .map(Bytes::from)
            .collect(),
    );
    let clip_bytes: usize = aus.iter().map(Bytes::len).sum();
    let mbps = clip_bytes as f64 * 8.0 * FPS as f64 / aus.len() as f64 / 1e6;
    say(&format!(
        "{} access units, {:.2} Mbit/s per session at 30 fps",
        aus.len(),
        mbps
    ));

    let extra = format!(
        "[session]\none_session_per_user = false\ndefault_width = {w}\ndefault_height = {h}\n\
         viewer_queue_frames = 32\n[agent]\nmax_sessions_per_agent = {}\n\
         [limits]\nmemory_budget_mb = 65536\n[quic]\nmax_connections_per_ip = {}\n",
        max.max(16),
        max + 16
    );
    let mut stack = Stack::start(None, &extra);
    stack.keep_files();
    let gw = stack.gateway_pid();
    pin(gw, "0");
    let (cert, key) = stack.issue_agent("load-agent");
    let ca = stack.path("pki/ca.pem");
    let agent_addr = stack.agent_addr.parse().expect("agent address");
    let viewer_addr = stack.viewer_addr.parse().expect("viewer address");
    let metrics = || stack.metrics();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus - 1)
        .enable_all()
        .build()
        .expect("runtime");
    let window = Arc::new(Window::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (handoff, mut streams) = mpsc::channel::<quinn::SendStream>(max);
    let mut opts = AgentOptions::new("load-agent");
    opts.capacity = u16::try_from(max).unwrap_or(u16::MAX);
    opts.handoff = Some(handoff);
    let _agent = rt
        .block_on(agent::connect(
            agent_addr,
            &ca,
            Some((cert.as_path(), key.as_path())),
            opts,
        ))
        .expect("synthetic agent");
    // Let the gateway register the agent.
    std::thread::sleep(Duration::from_secs(1));
    // Memory added per session since the previous step (the first step includes the
    // runtime's one-time growth: buffers, allocator arenas).
    let (mut last_kib, mut last_n) = (rss_kib(gw).unwrap_or(0), 0usize);

    let mut rows = Vec::new();
    let mut running = 0usize;
    for &n in &steps {
        while running < n {
            let window = window.clone();
            let stop2 = stop.clone();
            let ca = ca.clone();
            let send = rt.block_on(async {
                let mut v = TestViewer::connect(viewer_addr, &ca, None)
                    .await
                    .without_record();
                v.login_ready_as(USER, PASSWORD).await;
                tokio::spawn(read_viewer(v, window, stop2));
                streams.recv().await.expect("the session's stream")
            });
            rt.spawn(write_session(send, aus.clone(), (w, h), stop.clone()));
            running += 1;
        }
        std::thread::sleep(Duration::from_secs(3));
        let m0 = metrics();
        let cpu0 = cpu_seconds(gw).unwrap_or(0.0);
        let t0 = Instant::now();
        window.latencies.lock().unwrap().clear();
        window.open.store(true, Relaxed);
        std::thread::sleep(Duration::from_secs(seconds));
        window.open.store(false, Relaxed);
        let wall = t0.elapsed().as_secs_f64();
        let cpu = (cpu_seconds(gw).unwrap_or(0.0) - cpu0) / wall;
        let m1 = metrics();
        let delta =
            |name: &str| metric(&m1, name).unwrap_or(0.0) - metric(&m0, name).unwrap_or(0.0);
        let relayed = delta("tsuitate_frames_relayed_total") / wall;
        let dropped = delta("tsuitate_frames_dropped_slow_viewer_total")
            + delta("tsuitate_frames_dropped_fps_total");
        let mut lat = std::mem::take(&mut *window.latencies.lock().unwrap());
        lat.sort_unstable();
        let rss = rss_kib(gw).unwrap_or(0);
        let row = format!(
            "| {n} | {:.1} | {:.0} | {:.3} | {:.4} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} |",
            mbps * n as f64,
            relayed,
            cpu,
            cpu / n as f64,
            if cpu > 0.0 { n as f64 / cpu } else { 0.0 },
            percentile(&lat, 50.0),
            percentile(&lat, 95.0),
            dropped,
            rss as f64 / 1024.0,
            rss.saturating_sub(last_kib) as f64 / (n - last_n).max(1) as f64,
        );
        (last_kib, last_n) = (rss, n);
        say(&row);
        rows.push(row);
    }

    let mut soak_rows = Vec::new();
    if soak > 0 {
        say(&format!("soak: {running} sessions for {soak} s"));
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(soak) {
            std::thread::sleep(Duration::from_secs(10));
            let r = format!(
                "{:>4} s: {:.1} MiB",
                t0.elapsed().as_secs(),
                rss_kib(gw).unwrap_or(0) as f64 / 1024.0
            );
            say(&r);
            soak_rows.push(r);
        }
    }
    stop.store(true, Relaxed);
    rt.shutdown_timeout(Duration::from_secs(2));

    println!("\n## Gateway load ({w}x{h} scrolling page, {mbps:.2} Mbit/s per session, gateway on CPU 0)\n");
    println!(
        "| sessions | Mbit/s in | frames/s relayed | gateway CPU (cores) | CPU per session | sessions per core | latency p50 ms | p95 ms | frames dropped | gateway RSS MiB | KiB per added session |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        println!("{r}");
    }
    if !soak_rows.is_empty() {
        println!(
            "\nGateway memory while {running} sessions run: {}",
            soak_rows.join(", ")
        );
    }
    println!("\nWorking directory (logs): {}", stack.dir.path().display());
    ExitCode::SUCCESS
}
