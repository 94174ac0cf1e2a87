//! The agent's per-frame cost: BGRA→I420 conversion and openh264 encode (agent defaults:
//! 30 fps, 5000 kbit/s, screen-content, Baseline, one thread) at 1280×720 and 1920×1080 for a
//! static page with a blinking caret, scrolling text and full motion.
//!
//! `cargo bench -p tsuitate-benches --bench codec`
//!
//! criterion reports time per frame; bytes per frame are printed once per case (`bytes/frame`)
//! from a separate 60-frame pass.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tsuitate_agent::{bgra_to_i420, FrameSource, VideoEncoder, I420};
use tsuitate_benches::content::{all_cases, encode_case, next_picture};

/// Frames in the bytes/frame pass (two seconds at 30 fps).
const BYTES_PASS_FRAMES: usize = 60;

fn conversion(c: &mut Criterion) {
    let mut group = c.benchmark_group("convert_bgra_to_i420");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for case in all_cases() {
        let mut src = case.source();
        let frames: Vec<_> = (0..4).filter_map(|_| src.capture().ok()).collect();
        let mut out = I420::new(case.width, case.height);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::from_parameter(case), |b| {
            let mut i = 0;
            b.iter(|| {
                let f = &frames[i % frames.len()];
                i += 1;
                let r = bgra_to_i420(&f.bgra, f.stride, &mut out);
                std::hint::black_box((r.is_ok(), out.y[0]))
            })
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_openh264");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for case in all_cases() {
        match encode_case(case, BYTES_PASS_FRAMES) {
            Ok((_, s)) => eprintln!(
                "bytes/frame encode {case}: {} B mean over {} of {} frames (rate control skipped {}); IDR {} B; P mean {} B; \
                 encode call {:.2} ms when a frame came out, {:.2} ms when skipped",
                s.bytes / s.frames_out.max(1),
                s.frames_out,
                s.frames_in,
                s.frames_in - s.frames_out,
                s.first_bytes,
                s.p_frame_bytes(),
                s.produced_ms(),
                s.skipped_ms(),
            ),
            Err(e) => eprintln!("bytes/frame encode {case}: failed: {e}"),
        }
        let Ok(mut enc) = case.encoder() else {
            eprintln!("encoder for {case} failed to start");
            continue;
        };
        let mut src = case.source();
        let mut pic = I420::new(case.width, case.height);
        group.bench_function(BenchmarkId::from_parameter(case), |b| {
            // Drawing and converting the next picture is not timed: only the encoder is.
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if next_picture(&mut src, &mut pic).is_err() {
                        continue;
                    }
                    let t0 = Instant::now();
                    let out = enc.encode(&pic, false);
                    total += t0.elapsed();
                    std::hint::black_box(out.ok());
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, conversion, encode);
criterion_main!(benches);
