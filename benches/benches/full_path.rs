//! The whole video path in one process, per frame: captured picture → agent conversion and
//! encode → agent framing → gateway parse + NalSanitizer + re-framing → viewer parse →
//! openh264 decode → RGB. No network (see the `relay` bench for that).
//!
//! `cargo bench -p tsuitate-benches --bench full_path`
//!
//! criterion's time is per captured picture, including pictures the encoder's rate control
//! skipped (they cost conversion and a cheap encoder call). A summary line per case splits the
//! time by stage for pictures that crossed, and gives bytes per frame.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tsuitate_benches::content::{all_cases, Case};
use tsuitate_benches::full_path::{FullPath, StageTimes, Step};

#[derive(Default)]
struct Tally {
    decoded: u64,
    skipped: u64,
    bytes: u64,
    crossed: StageTimes,
    skipped_time: Duration,
}

impl Tally {
    fn print(&self, case: Case) {
        let n = self.decoded.max(1) as u32;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let c = &self.crossed;
        eprintln!(
            "full_path {case}: {} frames crossed, {} skipped by rate control; per crossed frame {:.2} ms \
             (convert {:.2}, encode {:.2}, gateway {:.3}, viewer decode+rgb {:.2}), {} B; per skipped picture {:.2} ms",
            self.decoded,
            self.skipped,
            ms(c.total() / n),
            ms(c.convert / n),
            ms(c.encode / n),
            ms(c.gateway / n),
            ms(c.viewer / n),
            self.bytes / u64::from(n),
            ms(self.skipped_time / self.skipped.max(1) as u32),
        );
    }
}

/// One timed step (the synthetic drawing is not timed). A failure ends the run.
fn one(path: &mut FullPath, tally: &mut Tally) -> Duration {
    let frame = match path.capture() {
        Ok(f) => f,
        Err(e) => panic!("synthetic capture failed: {e}"),
    };
    match path.step(&frame) {
        Ok((Step::Decoded { bytes }, t)) => {
            tally.decoded += 1;
            tally.bytes += bytes as u64;
            tally.crossed.add(&t);
            t.total()
        }
        Ok((Step::Skipped, t)) => {
            tally.skipped += 1;
            tally.skipped_time += t.total();
            t.total()
        }
        Err(e) => panic!("full path failed: {e}"),
    }
}

fn full_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("full_path");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for case in all_cases() {
        let mut path = match FullPath::new(case) {
            Ok(p) => p,
            Err(e) => panic!("full path {case}: {e}"),
        };
        let mut tally = Tally::default();
        group.bench_function(BenchmarkId::from_parameter(case), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| one(&mut path, &mut tally)).sum())
        });
        tally.print(case);
    }
    group.finish();
}

criterion_group!(benches, full_path);
criterion_main!(benches);
