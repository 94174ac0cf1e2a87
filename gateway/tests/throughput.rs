//! A relay throughput measurement (not a test of speed: it only prints numbers). Run with
//! `cargo test -p tsuitate-gateway --release --test throughput -- --ignored --nocapture`.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tsuitate_testkit::agent::{self, AgentOptions};
use tsuitate_testkit::fixture::Fixture;
use tsuitate_testkit::viewer::TestViewer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn relay_throughput() {
    let mut fx = Fixture::new(&["a"], &["u1"]);
    fx.config.limits.max_fps = 1000;
    fx.config.session.viewer_queue_frames = 64;
    let gw = fx.start().await;
    let (c, k) = fx.agent_identity("a");
    let mut opts = AgentOptions::new("a");
    opts.fps = 0;
    let ag = agent::connect(gw.agent_addr, &fx.ca(), Some((&c, &k)), opts)
        .await
        .unwrap();
    let mut v = TestViewer::connect(gw.viewer_addr, &fx.ca(), None).await;
    v.login_ready("u1").await;
    v.frames(100, Duration::from_secs(30)).await;
    let n = 3000;
    let sent0 = ag
        .stats
        .frames_sent
        .load(std::sync::atomic::Ordering::Relaxed);
    let t0 = Instant::now();
    let frames = v.frames(n, Duration::from_secs(120)).await;
    let dt = t0.elapsed().as_secs_f64();
    let sent = ag
        .stats
        .frames_sent
        .load(std::sync::atomic::Ordering::Relaxed)
        - sent0;
    println!(
        "agent -> gateway (sanitized): {:.0} access units/s",
        sent as f64 / dt
    );
    let bytes: usize = frames.iter().map(|f| f.data.len()).sum();
    let m = gw.metrics();
    println!(
        "relayed {} frames ({} KiB avg) in {dt:.2} s: {:.0} frames/s, {:.1} MB/s; dropped (slow viewer) {}, (fps) {}",
        frames.len(),
        bytes / frames.len().max(1) / 1024,
        frames.len() as f64 / dt,
        bytes as f64 / dt / 1e6,
        m.frames_dropped_slow_viewer.load(std::sync::atomic::Ordering::Relaxed),
        m.frames_dropped_fps.load(std::sync::atomic::Ordering::Relaxed),
    );
    gw.shutdown().await;
}
