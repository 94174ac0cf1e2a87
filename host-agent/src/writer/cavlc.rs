//! CAVLC residual blocks (ITU-T H.264 §7.3.5.3.2, §9.2), written: the inverse of what the
//! gateway's slice-data walk reads, with the same tables (`tsuitate_protocol::h264::cavlc_tables`).

use tsuitate_protocol::h264::cavlc_tables::{
    COEFF_TOKEN_CHROMA_DC, COEFF_TOKEN_NC0, COEFF_TOKEN_NC2, COEFF_TOKEN_NC4, RUN_BEFORE,
    TOTAL_ZEROS_4X4, TOTAL_ZEROS_CHROMA_DC,
};
use tsuitate_protocol::h264::BitWriter;

/// The largest coefficient level every position of the level code can carry (§9.2.2.1 with
/// `level_prefix` ≤ 15, the Baseline limit): quantisers clamp to it.
pub const MAX_LEVEL: i32 = 2047;

/// A coeff_token table indexed by [TotalCoeff][TrailingOnes]: (code, length), length 0 for
/// pairs the table has no codeword for.
type TokenIndex = [[(u16, u8); 4]; 17];

/// Index a coeff_token table of (code, length, TotalCoeff, TrailingOnes) entries.
const fn index(table: &[(u16, u8, u8, u8)]) -> TokenIndex {
    let mut out = [[(0u16, 0u8); 4]; 17];
    let mut i = 0;
    while i < table.len() {
        let (code, len, total, ones) = table[i];
        out[total as usize][ones as usize] = (code, len);
        i += 1;
    }
    out
}

const NC0: TokenIndex = index(&COEFF_TOKEN_NC0);
const NC2: TokenIndex = index(&COEFF_TOKEN_NC2);
const NC4: TokenIndex = index(&COEFF_TOKEN_NC4);
const CHROMA_DC: TokenIndex = index(&COEFF_TOKEN_CHROMA_DC);

/// Which coeff_token table `nc` selects: `-1` chroma DC, otherwise nC of §9.2.1.
fn coeff_token(w: &mut BitWriter, nc: i32, total: u8, ones: u8) {
    let table = match nc {
        -1 => &CHROMA_DC,
        0..=1 => &NC0,
        2..=3 => &NC2,
        4..=7 => &NC4,
        _ => {
            let code = if total == 0 {
                0b000011
            } else {
                (u32::from(total - 1) << 2) | u32::from(ones)
            };
            w.bits(code, 6);
            return;
        }
    };
    let (code, len) = table[usize::from(total).min(16)][usize::from(ones).min(3)];
    debug_assert!(len > 0, "coeff_token missing from its table");
    w.bits(u32::from(code), u32::from(len));
}

/// A total_zeros or run_before table indexed by value: (code, length), length 0 for values
/// the table has no codeword for.
type ValueIndex = [(u16, u8); 16];

/// Index each (code, length, value) table of a list.
const fn by_value<const N: usize>(tables: [&[(u16, u8, u8)]; N]) -> [ValueIndex; N] {
    let mut out = [[(0u16, 0u8); 16]; N];
    let mut t = 0;
    while t < N {
        let mut i = 0;
        while i < tables[t].len() {
            let (code, len, value) = tables[t][i];
            out[t][value as usize] = (code, len);
            i += 1;
        }
        t += 1;
    }
    out
}

const TOTAL_ZEROS: [ValueIndex; 15] = by_value(TOTAL_ZEROS_4X4);
const TOTAL_ZEROS_DC: [ValueIndex; 3] = by_value(TOTAL_ZEROS_CHROMA_DC);
const RUNS: [ValueIndex; 7] = by_value(RUN_BEFORE);

/// Write the codeword of `value` from an indexed table. Every value our blocks produce is in
/// its table; a missing one would be a bug in this module, caught by the tests that decode
/// what it writes.
fn put(w: &mut BitWriter, table: &ValueIndex, value: usize) {
    let (code, len) = table[value.min(15)];
    debug_assert!(len > 0, "value missing from a CAVLC table");
    w.bits(u32::from(code), u32::from(len));
}

/// Write `residual_block_cavlc` for `coeffs` (scan order; its length is maxNumCoeff: 4 for
/// chroma DC, 15 for AC blocks, 16 for whole 4x4 blocks) with table selector `nc`. Levels must
/// be within ±[`MAX_LEVEL`]. Returns TotalCoeff (what neighbours' nC counts).
pub fn residual_block(w: &mut BitWriter, coeffs: &[i32], nc: i32) -> u8 {
    // Non-zero levels from the highest frequency down, with their positions: found from a
    // mask of the non-zero positions (no branch per coefficient, which text's levels make
    // unpredictable).
    let coeffs = &coeffs[..coeffs.len().min(16)];
    let mut mask = 0u32;
    for (i, c) in coeffs.iter().enumerate() {
        mask |= u32::from(*c != 0) << i;
    }
    let total = mask.count_ones() as usize;
    let mut levels = [0i32; 16];
    let mut at = [0usize; 16];
    for (level, pos) in levels.iter_mut().zip(at.iter_mut()).take(total) {
        let i = (31 - mask.leading_zeros()) as usize;
        mask &= !(1 << i);
        *level = coeffs[i].clamp(-MAX_LEVEL, MAX_LEVEL);
        *pos = i;
    }
    let ones = levels[..total]
        .iter()
        .take(3)
        .take_while(|l| l.abs() == 1)
        .count();
    coeff_token(w, nc, total as u8, ones as u8);
    if total == 0 {
        return 0;
    }
    // trailing_ones_sign_flag of each, in one write.
    let signs = levels[..ones]
        .iter()
        .fold(0, |acc, l| (acc << 1) | u32::from(*l < 0));
    w.bits(signs, ones as u32);
    let mut suffix_len: u32 = if total > 10 && ones < 3 { 1 } else { 0 };
    for (i, &level) in levels[..total].iter().enumerate().skip(ones) {
        let mut code = if level > 0 {
            2 * level - 2
        } else {
            -2 * level - 1
        } as u32;
        if i == ones && ones < 3 {
            code -= 2;
        }
        level_code(w, code, suffix_len);
        if suffix_len == 0 {
            suffix_len = 1;
        }
        if level.unsigned_abs() > (3 << (suffix_len - 1)) && suffix_len < 6 {
            suffix_len += 1;
        }
    }
    let max = coeffs.len();
    if total < max {
        let total_zeros = (at[0] + 1 - total) as u8;
        let table = if max == 4 {
            &TOTAL_ZEROS_DC[total - 1]
        } else {
            &TOTAL_ZEROS[total - 1]
        };
        put(w, table, usize::from(total_zeros));
        let mut zeros_left = usize::from(total_zeros);
        for k in 0..total - 1 {
            if zeros_left == 0 {
                break;
            }
            let run = at[k] - at[k + 1] - 1;
            put(w, &RUNS[zeros_left.min(7) - 1], run);
            zeros_left -= run;
        }
    }
    total as u8
}

/// `level_prefix` and `level_suffix` for one level code (§9.2.2.1), escapes included.
fn level_code(w: &mut BitWriter, code: u32, suffix_len: u32) {
    let (prefix, suffix, suffix_bits) = if suffix_len == 0 {
        if code < 14 {
            (code, 0, 0)
        } else if code < 30 {
            (14, code - 14, 4)
        } else {
            (15, code - 30, 12)
        }
    } else if code < (15 << suffix_len) {
        (
            code >> suffix_len,
            code & ((1 << suffix_len) - 1),
            suffix_len,
        )
    } else {
        (15, code - (15 << suffix_len), 12)
    };
    // `prefix` zeros, a one and the suffix: at most 15 + 1 + 12 bits, one write.
    w.bits((1 << suffix_bits) | suffix, prefix + 1 + suffix_bits);
}
