//! Codec and sanitizer throughput: `cargo bench -p tsuitate-benches --bench protocol`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tsuitate_benches::encoded_scroll;
use tsuitate_protocol::*;

/// The sanitizer over a scrolling page (docs/benchmarks.md): parameter sets rebuilt, slice
/// headers parsed and every macroblock of the slice data walked.
fn sanitizer(c: &mut Criterion) {
    let mut group = c.benchmark_group("sanitizer");
    for (w, h, name) in [
        (1280u16, 720u16, "720p_scroll_30_frames"),
        (1920, 1080, "1080p_scroll_30_frames"),
    ] {
        let aus = encoded_scroll(w.into(), h.into(), 30);
        let total: usize = aus.iter().map(Vec::len).sum();
        group.throughput(Throughput::Bytes(total as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut san = NalSanitizer::new(Limits::default());
                for (n, au) in aus.iter().enumerate() {
                    let header = VideoHeader {
                        sequence: n as u64,
                        capture_us: 0,
                        keyframe: n == 0,
                        width: w,
                        height: h,
                    };
                    let out = san.sanitize(&header, au).expect("valid stream");
                    std::hint::black_box(out);
                }
            })
        });
    }
    group.finish();
}

fn framing(c: &mut Criterion) {
    let aus = encoded_scroll(1280, 720, 2);
    let frame = AgentSessionToGateway::Video(VideoFrame {
        header: VideoHeader {
            sequence: 1,
            capture_us: 2,
            keyframe: true,
            width: 1280,
            height: 720,
        },
        data: Bytes::from(aus[0].clone()),
    });
    let wire = frame.to_bytes();
    let limits = Limits::default();
    let mut group = c.benchmark_group("framing");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("video_encode", |b| {
        b.iter(|| std::hint::black_box(frame.to_bytes()))
    });
    group.bench_function("video_decode", |b| {
        b.iter(|| std::hint::black_box(AgentSessionToGateway::decode(&wire, &limits)))
    });
    let input = ViewerToGateway::Input(vec![InputEvent::PointerMove { x: 100, y: 200 }; 64]);
    let input_wire = input.to_bytes();
    group.throughput(Throughput::Elements(64));
    group.bench_function("input_batch_64_decode", |b| {
        b.iter(|| std::hint::black_box(ViewerToGateway::decode(&input_wire, &limits)))
    });
    group.finish();
}

criterion_group!(benches, sanitizer, framing);
criterion_main!(benches);
