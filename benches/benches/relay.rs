//! Relay over real loopback QUIC: an in-process gateway (sanitize + re-frame) against a bare
//! quinn forward of the same bytes, in the same run. Payloads are the agent encoder's own
//! access units (720p scroll: small P-frames; 1080p full motion: large frames).
//!
//! `cargo bench -p tsuitate-benches --bench relay`
//!
//! criterion reports `relay_latency/{gateway,forward}/<case>` (one frame in flight, agent write
//! → viewer parsed) and `relay_throughput/...` (a burst of 120 frames). After criterion, an
//! interleaved run (gateway and forward alternating, each going first in every other round, so
//! machine noise hits both alike) prints
//! the summary: throughput ratio gateway/forward (goal ≥ 0.9) and the latency the gateway adds.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::runtime::Runtime;
use tsuitate_agent::SyntheticContent;
use tsuitate_benches::content::{encode_case, Case};
use tsuitate_benches::relay::{Link, RelayEnv, BURST_FRAMES};
use tsuitate_benches::summary::Samples;

const CASES: [Case; 2] = [
    Case {
        width: 1280,
        height: 720,
        content: SyntheticContent::Scroll,
    },
    Case {
        width: 1920,
        height: 1080,
        content: SyntheticContent::FullMotion,
    },
];

/// Interleaved rounds for the summary.
const LATENCY_ROUNDS: usize = 10;
const LATENCY_FRAMES_PER_ROUND: usize = 30;
const BURST_ROUNDS: usize = 12;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Run `iters` lock-step frames; the sum of their latencies. A failed frame (lost, malformed,
/// session ended) ends the benchmark run: a number without every frame would be wrong.
fn lockstep_iters(rt: &Runtime, link: &mut Link, iters: u64) -> Duration {
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            match link.lockstep().await {
                Ok(d) => total += d,
                Err(e) => panic!("relay lock-step frame failed: {e}"),
            }
        }
        total
    })
}

/// Run `iters` bursts; the sum of their durations.
fn burst_iters(rt: &Runtime, link: &mut Link, iters: u64) -> Duration {
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            match link.burst().await {
                Ok((d, _)) => total += d,
                Err(e) => panic!("relay burst failed: {e}"),
            }
        }
        total
    })
}

fn criterion_runs(c: &mut Criterion, rt: &Runtime, env: &mut RelayEnv, case: Case) {
    let mut group = c.benchmark_group("relay_latency");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    group.bench_function(BenchmarkId::new("gateway", case), |b| {
        b.iter_custom(|n| lockstep_iters(rt, &mut env.gateway, n))
    });
    group.bench_function(BenchmarkId::new("forward", case), |b| {
        b.iter_custom(|n| lockstep_iters(rt, &mut env.forward, n))
    });
    group.finish();

    let mut group = c.benchmark_group("relay_throughput");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Bytes(env.gateway.bytes_of_next(BURST_FRAMES)));
    group.bench_function(BenchmarkId::new("gateway", case), |b| {
        b.iter_custom(|n| burst_iters(rt, &mut env.gateway, n))
    });
    group.bench_function(BenchmarkId::new("forward", case), |b| {
        b.iter_custom(|n| burst_iters(rt, &mut env.forward, n))
    });
    group.finish();
}

/// Gateway and forward alternate, so that noise from other work on the machine hits both.
fn interleaved_summary(rt: &Runtime, env: &mut RelayEnv, case: Case, frame_bytes: f64) {
    let (mut lat_gw, mut lat_fw) = (Samples::default(), Samples::default());
    let (mut tp_gw, mut tp_fw) = (Samples::default(), Samples::default());
    // Gateway/forward throughput of adjacent bursts: a paired ratio, robust to slow drifts in
    // the machine's load.
    let mut paired = Samples::default();
    // Per round: median gateway latency minus median forward latency.
    let mut added = Samples::default();
    let result = rt.block_on(async {
        for round in 0..LATENCY_ROUNDS {
            let (mut g, mut f) = (Samples::default(), Samples::default());
            // Alternate which path goes first.
            for gateway_turn in [round % 2 == 0, round % 2 != 0] {
                for _ in 0..LATENCY_FRAMES_PER_ROUND {
                    if gateway_turn {
                        g.push_ms(env.gateway.lockstep().await?);
                    } else {
                        f.push_ms(env.forward.lockstep().await?);
                    }
                }
            }
            added.push(g.median() - f.median());
            lat_gw.extend(&g);
            lat_fw.extend(&f);
        }
        for round in 0..BURST_ROUNDS {
            let mb = |(d, bytes): (Duration, u64)| bytes as f64 / d.as_secs_f64() / 1e6;
            let (g, f) = if round % 2 == 0 {
                let g = mb(env.gateway.burst().await?);
                (g, mb(env.forward.burst().await?))
            } else {
                let f = mb(env.forward.burst().await?);
                (mb(env.gateway.burst().await?), f)
            };
            tp_gw.push(g);
            tp_fw.push(f);
            paired.push(g / f);
        }
        Ok::<(), tsuitate_benches::BenchError>(())
    });
    if let Err(e) = result {
        eprintln!("relay summary {case}: failed: {e}");
        return;
    }
    let fps = |mbs: f64| mbs * 1e6 / frame_bytes;
    eprintln!(
        "relay summary {case} ({frame_bytes:.0} B/frame mean): latency p50 gateway {:.3} ms, forward {:.3} ms, \
         added {:.3} ms (median of {} paired rounds); p95 {:.3} / {:.3} ms; \
         throughput gateway {:.1} MB/s ({:.0} frames/s), forward {:.1} MB/s ({:.0} frames/s), \
         ratio of medians {:.2}, median of paired ratios {:.2} (min {:.2}, max {:.2}); gateway drops {}",
        lat_gw.median(),
        lat_fw.median(),
        added.median(),
        added.len(),
        lat_gw.percentile(95.0),
        lat_fw.percentile(95.0),
        tp_gw.median(),
        fps(tp_gw.median()),
        tp_fw.median(),
        fps(tp_fw.median()),
        tp_gw.median() / tp_fw.median().max(f64::MIN_POSITIVE),
        paired.median(),
        paired.percentile(0.0),
        paired.percentile(100.0),
        env.gateway_drops(),
    );
}

fn relay(c: &mut Criterion) {
    let rt = runtime();
    for case in CASES {
        let aus = match encode_case(case, 60) {
            Ok((aus, _)) => aus,
            Err(e) => {
                eprintln!("relay {case}: encoding failed: {e}");
                continue;
            }
        };
        let frame_bytes = aus.iter().map(|a| a.data.len()).sum::<usize>() as f64 / aus.len() as f64;
        let mut env = match rt.block_on(RelayEnv::start(&aus, case.width, case.height)) {
            Ok(env) => env,
            Err(e) => {
                eprintln!("relay {case}: setup failed: {e}");
                continue;
            }
        };
        criterion_runs(c, &rt, &mut env, case);
        interleaved_summary(&rt, &mut env, case, frame_bytes);
        rt.block_on(env.stop());
    }
}

criterion_group!(benches, relay);
criterion_main!(benches);
