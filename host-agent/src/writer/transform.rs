//! 4x4 integer transforms and quantisation. The forward side (transform, quantiser, dead
//! zone) is the encoder's choice; the inverse side is the decoder's, transcribed from ITU-T
//! H.264 §8.5.9–§8.5.12 (flat scaling matrices, 8-bit samples) so that the writer's
//! reconstruction equals every decoder's picture bit for bit. Blocks are row-major: index
//! `row * 4 + column`.

use super::cavlc::MAX_LEVEL;

/// Frame zig-zag scan (§8.5.6, Table 8-13): scan position → row-major index.
pub const ZIGZAG: [usize; 16] = [0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15];

/// Position class of a coefficient: 0 for (even, even), 1 for (odd, odd), 2 otherwise.
fn class(i: usize) -> usize {
    match ((i / 4) % 2, (i % 4) % 2) {
        (0, 0) => 0,
        (1, 1) => 1,
        _ => 2,
    }
}

/// Quantiser multipliers (2^15 / step, per qP % 6 and position class).
const MF: [[i64; 3]; 6] = [
    [13107, 5243, 8066],
    [11916, 4660, 7490],
    [10082, 4194, 6554],
    [9362, 3647, 5825],
    [8192, 3355, 5243],
    [7282, 2893, 4559],
];

/// `normAdjust4x4` (§8.5.9): v per qP % 6 and position class.
const V: [[i32; 3]; 6] = [
    [10, 16, 13],
    [11, 18, 14],
    [13, 20, 16],
    [14, 23, 18],
    [16, 25, 20],
    [18, 29, 23],
];

/// `LevelScale4x4(m, i, j)` with the flat weight 16.
fn level_scale(qp: i32, i: usize) -> i32 {
    16 * V[(qp % 6) as usize][class(i)]
}

/// Chroma qP from luma QP and `chroma_qp_index_offset` (§8.5.8, Table 8-15).
pub fn chroma_qp(qp: i32, offset: i32) -> i32 {
    const HIGH: [i32; 22] = [
        29, 30, 31, 32, 32, 33, 34, 34, 35, 35, 36, 36, 37, 37, 37, 38, 38, 38, 39, 39, 39, 39,
    ];
    let qpi = (qp + offset).clamp(0, 51);
    if qpi < 30 {
        qpi
    } else {
        HIGH[(qpi - 30) as usize]
    }
}

/// Forward core transform Cf · X · Cfᵀ.
pub fn forward(x: &[i32; 16]) -> [i32; 16] {
    let mut t = [0i32; 16];
    for r in 0..4 {
        let (a, b, c, d) = (x[r * 4], x[r * 4 + 1], x[r * 4 + 2], x[r * 4 + 3]);
        let (s03, d03, s12, d12) = (a + d, a - d, b + c, b - c);
        t[r * 4] = s03 + s12;
        t[r * 4 + 1] = 2 * d03 + d12;
        t[r * 4 + 2] = s03 - s12;
        t[r * 4 + 3] = d03 - 2 * d12;
    }
    let mut y = [0i32; 16];
    for c in 0..4 {
        let (a, b, cc, d) = (t[c], t[4 + c], t[8 + c], t[12 + c]);
        let (s03, d03, s12, d12) = (a + d, a - d, b + cc, b - cc);
        y[c] = s03 + s12;
        y[4 + c] = 2 * d03 + d12;
        y[8 + c] = s03 - s12;
        y[12 + c] = d03 - 2 * d12;
    }
    y
}

fn quantise(v: i32, mf: i64, round: i64, shift: u32) -> i32 {
    let q = ((i64::from(v.abs()) * mf + round) >> shift) as i32;
    q.min(MAX_LEVEL) * v.signum()
}

/// Quantise transform coefficients (intra rounding, 1/3 of a step).
pub fn quant(w: &[i32; 16], qp: i32) -> [i32; 16] {
    let bits = 15 + (qp / 6) as u32;
    let round = (1i64 << bits) / 3;
    let m = &MF[(qp % 6) as usize];
    std::array::from_fn(|i| quantise(w[i], m[class(i)], round, bits))
}

/// Quantise the residual of an inter prediction (1/6 of a step: a wider dead zone, as
/// prediction errors are mostly noise).
pub fn quant_inter(w: &[i32; 16], qp: i32) -> [i32; 16] {
    let bits = 15 + (qp / 6) as u32;
    let round = (1i64 << bits) / 6;
    let m = &MF[(qp % 6) as usize];
    std::array::from_fn(|i| quantise(w[i], m[class(i)], round, bits))
}

/// Dequantise (§8.5.12.1) all positions but the DC of an Intra 16x16 or chroma block.
pub fn dequant(c: &[i32; 16], qp: i32) -> [i32; 16] {
    std::array::from_fn(|i| {
        let ls = level_scale(qp, i);
        if qp >= 24 {
            (c[i] * ls) << (qp / 6 - 4)
        } else {
            (c[i] * ls + (1 << (3 - qp / 6))) >> (4 - qp / 6)
        }
    })
}

/// Inverse core transform and rounding (§8.5.12.2): the residual.
pub fn inverse(d: &[i32; 16]) -> [i32; 16] {
    let mut f = [0i32; 16];
    for r in 0..4 {
        let (d0, d1, d2, d3) = (d[r * 4], d[r * 4 + 1], d[r * 4 + 2], d[r * 4 + 3]);
        let (e0, e1, e2, e3) = (d0 + d2, d0 - d2, (d1 >> 1) - d3, d1 + (d3 >> 1));
        f[r * 4] = e0 + e3;
        f[r * 4 + 1] = e1 + e2;
        f[r * 4 + 2] = e1 - e2;
        f[r * 4 + 3] = e0 - e3;
    }
    let mut out = [0i32; 16];
    for c in 0..4 {
        let (f0, f1, f2, f3) = (f[c], f[4 + c], f[8 + c], f[12 + c]);
        let (g0, g1, g2, g3) = (f0 + f2, f0 - f2, (f1 >> 1) - f3, f1 + (f3 >> 1));
        out[c] = (g0 + g3 + 32) >> 6;
        out[4 + c] = (g1 + g2 + 32) >> 6;
        out[8 + c] = (g1 - g2 + 32) >> 6;
        out[12 + c] = (g0 - g3 + 32) >> 6;
    }
    out
}

/// 4x4 Hadamard H · X · H (H symmetric, entries ±1).
fn hadamard4(x: &[i32; 16]) -> [i32; 16] {
    let mut t = [0i32; 16];
    for r in 0..4 {
        let (a, b, c, d) = (x[r * 4], x[r * 4 + 1], x[r * 4 + 2], x[r * 4 + 3]);
        t[r * 4] = a + b + c + d;
        t[r * 4 + 1] = a + b - c - d;
        t[r * 4 + 2] = a - b - c + d;
        t[r * 4 + 3] = a - b + c - d;
    }
    let mut y = [0i32; 16];
    for c in 0..4 {
        let (a, b, cc, d) = (t[c], t[4 + c], t[8 + c], t[12 + c]);
        y[c] = a + b + cc + d;
        y[4 + c] = a + b - cc - d;
        y[8 + c] = a - b - cc + d;
        y[12 + c] = a - b + cc - d;
    }
    y
}

/// Sum of absolute transformed differences of a 4x4 block (row-major), halved: an estimate
/// of what coding the difference costs, used to rank codings before writing any.
pub fn satd4x4(diff: &[i32; 16]) -> i64 {
    hadamard4(diff)
        .iter()
        .map(|c| i64::from(c.unsigned_abs()))
        .sum::<i64>()
        / 2
}

/// Intra 16x16 luma DC: the 16 blocks' DC coefficients (row-major by block position) →
/// quantised levels (row-major; scanned with [`ZIGZAG`]).
pub fn luma_dc_quant(dc: &[i32; 16], qp: i32) -> [i32; 16] {
    let y = hadamard4(dc);
    let bits = 16 + (qp / 6) as u32;
    let round = (1i64 << (bits - 1)) * 2 / 3;
    let mf = MF[(qp % 6) as usize][0];
    std::array::from_fn(|i| quantise(y[i] / 2, mf, round, bits))
}

/// Intra 16x16 luma DC levels → each block's DC coefficient `dcY` (§8.5.10).
pub fn luma_dc_dequant(c: &[i32; 16], qp: i32) -> [i32; 16] {
    let f = hadamard4(c);
    let ls = level_scale(qp, 0);
    std::array::from_fn(|i| {
        if qp >= 36 {
            (f[i] * ls) << (qp / 6 - 6)
        } else {
            (f[i] * ls + (1 << (5 - qp / 6))) >> (6 - qp / 6)
        }
    })
}

fn hadamard2(x: &[i32; 4]) -> [i32; 4] {
    let (a, b, c, d) = (x[0], x[1], x[2], x[3]);
    [a + b + c + d, a - b + c - d, a + b - c - d, a - b - c + d]
}

/// Chroma DC (4:2:0): the four blocks' DC coefficients (row-major) → levels (row-major, the
/// order `ChromaDCLevel` is sent in).
pub fn chroma_dc_quant(dc: &[i32; 4], qp: i32) -> [i32; 4] {
    let y = hadamard2(dc);
    let bits = 16 + (qp / 6) as u32;
    let round = (1i64 << (bits - 1)) * 2 / 3;
    let mf = MF[(qp % 6) as usize][0];
    std::array::from_fn(|i| quantise(y[i], mf, round, bits))
}

/// Chroma DC levels → each block's DC coefficient `dcC` (§8.5.11.2, 4:2:0).
pub fn chroma_dc_dequant(c: &[i32; 4], qp: i32) -> [i32; 4] {
    let f = hadamard2(c);
    let ls = level_scale(qp, 0);
    std::array::from_fn(|i| ((f[i] * ls) << (qp / 6)) >> 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_survives_the_round_trip_within_the_step() {
        let x: [i32; 16] = std::array::from_fn(|i| (i as i32 * 37 % 200) - 100);
        for qp in [0, 12, 24, 30, 40] {
            let d = dequant(&quant(&forward(&x), qp), qp);
            let r = inverse(&d);
            let step = [0.625, 2.5, 10.0, 20.0, 64.0][[0, 12, 24, 30, 40]
                .iter()
                .position(|q| *q == qp)
                .unwrap_or(0)];
            for (a, b) in x.iter().zip(r) {
                assert!(
                    f64::from((a - b).abs()) <= step * 2.0 + 1.0,
                    "qp {qp}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn flat_blocks_code_as_dc_only() {
        let x = [40i32; 16];
        let q = quant(&forward(&x), 24);
        assert!(q[0] != 0 && q[1..].iter().all(|c| *c == 0));
    }

    #[test]
    fn chroma_qp_follows_table_8_15() {
        assert_eq!(chroma_qp(29, 0), 29);
        assert_eq!(chroma_qp(30, 0), 29);
        assert_eq!(chroma_qp(51, 0), 39);
        assert_eq!(chroma_qp(40, -2), 35);
    }
}
