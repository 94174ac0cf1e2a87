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

/// Hash of `n` samples starting at `at` with step `step` (a row: step 1; a column: step
/// width); `None` for a uniform run, which matches everywhere and proves nothing.
fn line_hash(plane: &[u8], at: usize, n: usize, step: usize) -> Option<u64> {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let first = plane[at];
    let mut h: u64 = n as u64;
    let mut uniform = true;
    if step == 1 {
        // A row: eight samples at a time.
        let splat = u64::from_ne_bytes([first; 8]);
        let mut chunks = plane[at..at + n].chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            let v = u64::from_ne_bytes(b);
            uniform &= v == splat;
            h = (h ^ v).wrapping_mul(K).rotate_left(29);
        }
        for &s in chunks.remainder() {
            uniform &= s == first;
            h = (h ^ u64::from(s)).wrapping_mul(K).rotate_left(29);
        }
    } else {
        for k in 0..n {
            let s = plane[at + k * step];
            uniform &= s == first;
            h = (h ^ u64::from(s)).wrapping_mul(K).rotate_left(29);
        }
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
    // Vertical: rows of each band of columns.
    let (x0, x1) = (c0 * 16, c1 * 16);
    let mut bx = x0;
    while bx < x1 {
        let n = BAND.min(x1 - bx);
        let hash = |plane: &[u8], y| line_hash(plane, y * width + bx, n, 1);
        vote(
            &mut votes,
            height,
            (r0 * 16, r1 * 16),
            hash,
            (prev, cur),
            |d| (0, d),
        );
        bx += n;
    }
    // Horizontal (rarer, and column access is slower): only when no vertical shift showed.
    if !votes.values().any(|v| *v >= MIN_VOTES) {
        let (y0, y1) = (r0 * 16, r1 * 16);
        let mut by = y0;
        while by < y1 {
            let n = BAND.min(y1 - by);
            let hash = |plane: &[u8], x| line_hash(plane, by * width + x, n, width);
            vote(
                &mut votes,
                width,
                (c0 * 16, c1 * 16),
                hash,
                (prev, cur),
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

/// Count, for every changed line in `lines` of `cur`, the shifts to lines of `prev`
/// (anywhere in 0..len) with the same hash.
fn vote(
    votes: &mut HashMap<(i32, i32), u32>,
    len: usize,
    (from, to): (usize, usize),
    hash: impl Fn(&[u8], usize) -> Option<u64>,
    (prev, cur): (&[u8], &[u8]),
    shift: impl Fn(i32) -> (i32, i32),
) {
    // Each line of `prev` hashed once; (hash, line) sorted, so the lines with a hash are a run
    // in line order.
    let prev_hashes: Vec<Option<u64>> = (0..len).map(|i| hash(prev, i)).collect();
    let mut at: Vec<(u64, usize)> = prev_hashes
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.map(|h| (h, i)))
        .collect();
    at.sort_unstable();
    for i in from..to {
        let Some(h) = hash(cur, i) else { continue };
        if prev_hashes.get(i).copied().flatten() == Some(h) {
            continue;
        }
        let first = at.partition_point(|(x, _)| *x < h);
        // A line repeated many times (a table's rule) would vote for every shift: its first
        // four places only.
        for &(_, j) in at[first..].iter().take_while(|(x, _)| *x == h).take(4) {
            *votes.entry(shift(j as i32 - i as i32)).or_default() += 1;
        }
    }
}
