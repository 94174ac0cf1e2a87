//! The agent's per-frame cost: BGRA→I420 conversion and openh264 encode (agent defaults:
//! 30 fps, 5000 kbit/s, screen-content, Baseline, one thread) at 1280×720 and 1920×1080 for a
//! static page with a blinking caret, scrolling text and full motion.
//!
//! `cargo bench -p tsuitate-benches --bench codec`
//!
//! criterion reports time per frame; bytes per frame are printed once per case (`bytes/frame`)
//! from a separate 60-frame pass.
//!
//! `encode_changes` (issue 14): the cost of one change — a caret blink, one typed glyph, a
//! 3-line scroll (54 px), a full repaint (another page) — on a synthetic page at 720p and
//! 1080p, for the agent's default encoder (`damage`: our writer, openh264 for large changes)
//! and `openh264` alone, side by side in one run. Each timed call encodes the picture after
//! the change (the two pictures alternate, so every call is that change); only calls that
//! produce a frame are timed. Bytes per frame and
//! the luma PSNR of the decoded picture against the capture are printed per case
//! (`change/frame`).
//!
//! `cargo bench -p tsuitate-benches --bench codec -- encode_changes`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tsuitate_agent::writer::sample::Page;
use tsuitate_agent::writer::DamageEncoder;
use tsuitate_agent::{
    bgra_to_i420, EncoderSettings, FrameSource, OpenH264Encoder, VideoEncoder, I420,
};
use tsuitate_benches::content::{all_cases, encode_case, next_picture};
use tsuitate_testkit::viewer_gateway::psnr;

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

/// The changes of `encode_changes`: a name and the page after the change.
fn changes(width: usize, height: usize) -> Vec<(&'static str, Page, Page)> {
    let base = Page::new(width, height, 3);
    let typed = Page {
        typed: 6,
        caret: true,
        ..base.clone()
    };
    vec![
        (
            "caret",
            base.clone(),
            Page {
                caret: true,
                ..base.clone()
            },
        ),
        (
            "glyph",
            typed.clone(),
            Page {
                typed: 7,
                ..typed.clone()
            },
        ),
        (
            "scroll_3_lines",
            base.clone(),
            Page {
                scroll_y: 54,
                ..base.clone()
            },
        ),
        ("repaint", base.clone(), Page::new(width, height, 4)),
    ]
}

fn encoder_for(name: &str, settings: EncoderSettings) -> Option<Box<dyn VideoEncoder>> {
    match name {
        "damage" => DamageEncoder::new(settings)
            .ok()
            .map(|e| Box::new(e) as Box<dyn VideoEncoder>),
        _ => OpenH264Encoder::new(settings)
            .ok()
            .map(|e| Box::new(e) as Box<dyn VideoEncoder>),
    }
}

/// Bytes per frame and PSNR of the decoded picture over `frames` frames of a change (the
/// two pictures alternating), after the stream's first two frames (the IDR and the first
/// change). Calls the rate control skipped are not counted; at most 200 calls are made.
fn change_pass(enc: &mut dyn VideoEncoder, pics: &[I420; 2], frames: usize) -> (usize, usize, f64) {
    use openh264::formats::YUVSource;
    let Ok(mut dec) = openh264::decoder::Decoder::new() else {
        return (0, 0, 0.0);
    };
    let (mut bytes, mut counted, mut psnr_sum, mut produced) = (0usize, 0usize, 0.0f64, 0usize);
    for i in 0..200 {
        if counted >= frames {
            break;
        }
        let pic = &pics[i % 2];
        let Ok(Some(au)) = enc.encode(pic, false) else {
            continue;
        };
        produced += 1;
        let Ok(Some(d)) = dec.decode(&au.data) else {
            continue;
        };
        if produced <= 2 {
            continue;
        }
        let (w, h) = d.dimensions();
        let stride = d.strides().0;
        let y: Vec<u8> = (0..h)
            .flat_map(|r| d.y()[r * stride..][..w].to_vec())
            .collect();
        psnr_sum += psnr(&y, &pic.y);
        bytes += au.data.len();
        counted += 1;
    }
    (bytes, counted, psnr_sum / counted.max(1) as f64)
}

fn encode_changes(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_changes");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (w, h) in [(1280usize, 720usize), (1920, 1080)] {
        for (change, before, after) in changes(w, h) {
            let (Ok(a), Ok(b)) = (before.render(), after.render()) else {
                eprintln!("rendering {change} failed");
                continue;
            };
            let pics = [a, b];
            let settings = EncoderSettings {
                width: w as u16,
                height: h as u16,
                fps: 30,
                bitrate_kbps: 5000,
                screen_content: true,
            };
            for name in ["openh264", "damage"] {
                let id = format!("{h}p_{change}/{name}");
                if let Some(mut enc) = encoder_for(name, settings) {
                    let (bytes, frames, psnr) = change_pass(enc.as_mut(), &pics, 20);
                    eprintln!(
                        "change/frame {id}: {} B mean over {frames} frames, luma PSNR {psnr:.1} dB",
                        bytes / frames.max(1)
                    );
                }
                let Some(mut enc) = encoder_for(name, settings) else {
                    eprintln!("encoder {name} failed to start");
                    continue;
                };
                // Start the stream (IDR) on the first picture.
                let _ = enc.encode(&pics[0], false);
                group.bench_function(BenchmarkId::from_parameter(&id), |bench| {
                    // Only calls that produced a frame are timed: openh264's rate control skips
                    // pictures after a large frame, and a skipped call costs little but sends
                    // nothing (the picture is encoded again later).
                    let mut i = 1usize;
                    bench.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        let mut produced = 0u64;
                        let mut calls = 0u64;
                        while produced < iters && calls < iters.saturating_mul(100) {
                            let t0 = Instant::now();
                            let out = enc.encode(&pics[i % 2], false);
                            let took = t0.elapsed();
                            i += 1;
                            calls += 1;
                            if let Ok(Some(au)) = out {
                                total += took;
                                produced += 1;
                                std::hint::black_box(au.data.len());
                            }
                        }
                        // Scale to the iterations asked for if the rate control held back.
                        total.mul_f64(iters as f64 / produced.max(1) as f64)
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, conversion, encode, encode_changes);
criterion_main!(benches);
