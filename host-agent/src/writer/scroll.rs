//! Scroll detection: which vertical and horizontal shifts turn the last capture into this
//! one, found by matching hashes of pixel rows (and columns) within the changed area. A
//! browser scroll moves most of the page by one vector; fixed bars, the scrollbar and the
//! newly exposed strip do not match and are left to the per-macroblock check.

use std::collections::HashMap;

/// Rows (or columns) are compared in bands this many pixels wide, so that a scrollbar or a
/// fixed side bar in one band does not stop the others from matching.
const BAND: usize = 128;

/// A shift needs at least this many matching rows (or columns) to be tried.
const MIN_VOTES: u32 = 8;

/// Candidates tried per macroblock, most voted first.
pub const MAX_CANDIDATES: usize = 3;

/// A random start for every line hash of this process. The lines are the page's pixels, and
/// the hashes key a hash map with no hashing of its own ([`Prehashed`]): with a start a page
/// cannot know, it cannot draw rows whose hashes all fall in one bucket of that map.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    })
}

/// Mix one word into a hash lane.
#[inline(always)]
fn mix(h: u64, v: u64) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    (h ^ v).wrapping_mul(K).rotate_left(29)
}

/// Hash of `n` samples starting at `at` with step `step` (a row: step 1; a column: step
/// width); `None` for a uniform run, which matches everywhere and proves nothing.
fn line_hash(plane: &[u8], at: usize, n: usize, step: usize) -> Option<u64> {
    let first = plane[at];
    let mut uniform = true;
    if step == 1 {
        // A row: eight samples a word, four words at a time in four lanes that do not wait
        // for each other (with one lane every word waited for the previous multiply).
        let row = &plane[at..at + n];
        let splat = u64::from_ne_bytes([first; 8]);
        let mut lanes = [seed() ^ n as u64, 1, 2, 3];
        let mut blocks = row.chunks_exact(32);
        for block in &mut blocks {
            for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
                let v = u64::from_ne_bytes(word.try_into().unwrap_or([0; 8]));
                uniform &= v == splat;
                *lane = mix(*lane, v);
            }
        }
        let mut h = lanes.iter().fold(0, |h, lane| mix(h, *lane));
        for &s in blocks.remainder() {
            uniform &= s == first;
            h = mix(h, u64::from(s));
        }
        return (!uniform).then_some(h);
    }
    let mut h: u64 = seed() ^ n as u64;
    for k in 0..n {
        let s = plane[at + k * step];
        uniform &= s == first;
        h = mix(h, u64::from(s));
    }
    (!uniform).then_some(h)
}

/// The changed area in macroblocks: (first column, end column, first row, end row).
pub type Area = (usize, usize, usize, usize);

/// Shifts (dx, dy) in whole pixels such that the current picture at (x, y) shows what the
/// previous one had at (x + dx, y + dy), most likely first; at most [`MAX_CANDIDATES`].
pub fn candidates(
    prev: &[u8],
    cur: &[u8],
    width: usize,
    height: usize,
    area: Area,
) -> Vec<(i32, i32)> {
    let (c0, c1, r0, r1) = area;
    let mut votes: HashMap<(i32, i32), u32> = HashMap::new();
    // Vertical: rows of each band of columns. The rows of every band are hashed in one pass
    // down the picture (memory in order; band after band was slower).
    let (x0, x1) = (c0 * 16, c1 * 16);
    let bands: Vec<(usize, usize)> = (x0..x1)
        .step_by(BAND)
        .map(|bx| (bx, BAND.min(x1 - bx)))
        .collect();
    let hash_rows = |plane: &[u8], rows: std::ops::Range<usize>| {
        let mut out = vec![Vec::with_capacity(rows.len()); bands.len()];
        for y in rows {
            for (hashes, &(bx, n)) in out.iter_mut().zip(&bands) {
                hashes.push(line_hash(plane, y * width + bx, n, 1));
            }
        }
        out
    };
    let (from, to) = (r0 * 16, r1 * 16);
    let prev_rows = hash_rows(prev, 0..height);
    let cur_rows = hash_rows(cur, from..to);
    for (prev_hashes, cur_hashes) in prev_rows.iter().zip(&cur_rows) {
        vote(
            &mut votes,
            prev_hashes,
            (from, to),
            |i| cur_hashes[i - from],
            |d| (0, d),
        );
    }
    // Horizontal (rarer, and column access is slower): only when no vertical shift showed.
    if !votes.values().any(|v| *v >= MIN_VOTES) {
        let (y0, y1) = (r0 * 16, r1 * 16);
        let mut by = y0;
        while by < y1 {
            let n = BAND.min(y1 - by);
            let hash = |plane: &[u8], x| line_hash(plane, by * width + x, n, width);
            let prev_hashes: Vec<Option<u64>> = (0..width).map(|x| hash(prev, x)).collect();
            vote(
                &mut votes,
                &prev_hashes,
                (c0 * 16, c1 * 16),
                |x| hash(cur, x),
                |d| (d, 0),
            );
            by += n;
        }
    }
    let mut ranked: Vec<((i32, i32), u32)> = votes
        .into_iter()
        .filter(|(d, v)| *v >= MIN_VOTES && *d != (0, 0))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
        .into_iter()
        .take(MAX_CANDIDATES)
        .map(|(d, _)| d)
        .collect()
}

/// A hasher for keys that are hashes already: the key itself.
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type ByHash<V> = HashMap<u64, V, std::hash::BuildHasherDefault<Prehashed>>;

/// A line repeated many times (a table's rule) would vote for every shift: its first this
/// many places only.
const PLACES: usize = 4;

/// Count, for every changed line `i` in `lines` (its hash `cur(i)`), the shifts to lines of
/// the previous picture (hashes `prev`) with the same hash.
fn vote(
    votes: &mut HashMap<(i32, i32), u32>,
    prev: &[Option<u64>],
    (from, to): (usize, usize),
    cur: impl Fn(usize) -> Option<u64>,
    shift: impl Fn(i32) -> (i32, i32),
) {
    // For each hash its first places in line order.
    let mut at: ByHash<(usize, [u32; PLACES])> = ByHash::default();
    at.reserve(prev.len());
    for (i, h) in prev.iter().enumerate() {
        if let Some(h) = h {
            let (n, places) = at.entry(*h).or_default();
            if *n < PLACES {
                places[*n] = i as u32;
                *n += 1;
            }
        }
    }
    for i in from..to {
        let Some(h) = cur(i) else { continue };
        if prev.get(i).copied().flatten() == Some(h) {
            continue;
        }
        if let Some((n, places)) = at.get(&h) {
            for &j in &places[..*n] {
                *votes.entry(shift(j as i32 - i as i32)).or_default() += 1;
            }
        }
    }
}
