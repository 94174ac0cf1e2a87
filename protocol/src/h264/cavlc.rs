//! Slice data verification for CAVLC (ITU-T H.264 §7.3.4, §7.3.5, §9.2): every macroblock of
//! every slice is walked — skip runs, macroblock types, prediction modes, motion vector
//! differences, coded block patterns, QP deltas and every residual block with its
//! neighbour-dependent coefficient-token table — and the slice must end exactly at its
//! `rbsp_trailing_bits`, with nothing after. The decoder then only ever sees data whose syntax
//! the gateway has walked, and no bytes can hide after a slice. Intra prediction modes are
//! derived as a decoder derives them (§8.3.1.1) and must only use neighbouring samples that
//! exist (§8.3.1.2, §8.3.3, §8.3.4: not outside the picture, not in another slice, not from an
//! inter macroblock under `constrained_intra_pred_flag`).
//!
//! Supported (what our agents' encoder writes, and what Constrained Baseline allows): CAVLC,
//! 4:2:0, frames, I and P slices, no 8x8 transform. Anything else is refused before this runs.

use super::bits::BitReader;
use super::cavlc_tables::{
    coeff_token_nc8, CBP_INTER, CBP_INTRA, COEFF_TOKEN_CHROMA_DC, COEFF_TOKEN_NC0, COEFF_TOKEN_NC2,
    COEFF_TOKEN_NC4, RUN_BEFORE, TOTAL_ZEROS_4X4, TOTAL_ZEROS_CHROMA_DC,
};
use super::slice::SliceError;

/// What the walk needs to know about the slice.
#[derive(Debug, Clone, Copy)]
pub(super) struct SliceShape {
    /// Macroblocks per row.
    pub width_mbs: u32,
    /// Macroblocks in the picture.
    pub total_mbs: u32,
    /// The slice's first macroblock.
    pub first_mb: u32,
    /// I slice (no skip runs, no inter macroblocks).
    pub intra: bool,
    /// `num_ref_idx_l0_active_minus1` + 1 (P slices).
    pub ref_idx_active: u32,
    /// The PPS's `constrained_intra_pred_flag`: inter macroblocks are no intra neighbours.
    pub constrained_intra_pred: bool,
}

/// What a later macroblock needs of one: non-zero coefficient counts of its 4x4 blocks,
/// raster order within the macroblock (luma 4x4 grid, chroma 2x2 grid per component), and
/// for intra prediction whether it is intra-coded and its Intra 4x4 modes.
#[derive(Debug, Clone, Copy)]
struct MbCounts {
    luma: [u8; 16],
    chroma: [[u8; 4]; 2],
    /// Intra 4x4 prediction modes, raster order; 2 (DC) for any other kind of macroblock.
    modes: [u8; 16],
    /// Intra-coded (I_PCM included).
    intra: bool,
}

impl Default for MbCounts {
    fn default() -> Self {
        MbCounts {
            luma: [0; 16],
            chroma: [[0; 4]; 2],
            modes: [DC; 16],
            intra: false,
        }
    }
}

/// Intra prediction mode 2: DC, which needs no neighbouring samples.
const DC: u8 = 2;

/// Which neighbouring samples a prediction uses: (left, top, top-left).
#[derive(Debug, Clone, Copy)]
struct Samples {
    left: bool,
    top: bool,
    top_left: bool,
}

impl Samples {
    /// Whether Intra 4x4 `mode` (0..=8) only reads samples that exist (§8.3.1.2).
    fn intra4x4_ok(self, mode: u8) -> bool {
        match mode {
            0 | 3 | 7 => self.top,
            1 | 8 => self.left,
            4..=6 => self.left && self.top && self.top_left,
            _ => true,
        }
    }

    /// Whether Intra 16x16 `mode` (0..=3) only reads samples that exist (§8.3.3).
    fn intra16x16_ok(self, mode: u32) -> bool {
        match mode {
            0 => self.top,
            1 => self.left,
            3 => self.left && self.top && self.top_left,
            _ => true,
        }
    }

    /// Whether `intra_chroma_pred_mode` (0..=3) only reads samples that exist (§8.3.4): the
    /// Intra 16x16 predictions numbered differently (DC, horizontal, vertical, plane).
    fn chroma_ok(self, mode: u32) -> bool {
        let as_16x16 = [2, 1, 0, 3];
        as_16x16
            .get(mode as usize)
            .is_none_or(|m| self.intra16x16_ok(*m))
    }
}

/// The walk's state: the reader and what the macroblocks a neighbour can be left behind.
struct Walk<'r, 'a> {
    r: &'r mut BitReader<'a>,
    shape: SliceShape,
    t: &'static Tables,
    /// For each column, the last macroblock read in it (the row above the current one, left
    /// of the current column: the current row).
    top_row: Vec<MbCounts>,
    /// The macroblock read last (the left neighbour, in the same row).
    left: MbCounts,
    /// The top-left neighbour (replaced in `top_row` by the left one).
    top_left: MbCounts,
    /// The macroblock being read, and its column.
    curr: u32,
    x: u32,
}

fn bad(field: &'static str) -> SliceError {
    SliceError::OutOfRange(field)
}

/// Walk the slice data from the reader's position to its end (a [`BitReader::padded`] reader
/// makes every read one 8-byte load). Returns the address after the slice's last macroblock.
pub(super) fn verify_slice_data(
    r: &mut BitReader<'_>,
    shape: SliceShape,
) -> Result<u32, SliceError> {
    let mut w = Walk {
        r,
        shape,
        t: tables(),
        top_row: vec![MbCounts::default(); shape.width_mbs as usize],
        left: MbCounts::default(),
        top_left: MbCounts::default(),
        curr: shape.first_mb,
        x: shape.first_mb % shape.width_mbs,
    };
    loop {
        let mut more = true;
        if !shape.intra {
            let run = w.r.ue()?;
            if u64::from(w.curr) + u64::from(run) > u64::from(shape.total_mbs) {
                return Err(bad("mb_skip_run"));
            }
            for _ in 0..run {
                w.push(MbCounts::default());
            }
            if run > 0 {
                more = w.r.more_rbsp_data();
            }
        }
        if more {
            if w.curr >= shape.total_mbs {
                // Data after the picture's last macroblock.
                return Err(SliceError::TrailingData);
            }
            let counts = w.macroblock()?;
            w.push(counts);
            more = w.r.more_rbsp_data();
        }
        if !more {
            break;
        }
    }
    if w.r.at_trailing_bits() {
        Ok(w.curr)
    } else {
        Err(SliceError::TrailingData)
    }
}

/// How a macroblock predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MbKind {
    /// Intra 4x4.
    I4x4,
    /// Intra 16x16 with its prediction mode and its chroma and luma coded block patterns.
    I16x16 { mode: u32, cbp: u8 },
    /// Raw samples.
    Pcm,
    /// Inter with 1 or 2 partitions.
    P { parts: u32 },
    /// Inter 8x8 (sub-macroblocks); `ref0`: P_8x8ref0 (no reference indices sent).
    P8x8 { ref0: bool },
}

impl Walk<'_, '_> {
    /// Keep what the macroblock just read leaves its neighbours, and move to the next one.
    fn push(&mut self, c: MbCounts) {
        let x = self.x as usize;
        self.top_left = std::mem::replace(&mut self.top_row[x], c);
        self.left = c;
        self.curr += 1;
        self.x += 1;
        if self.x == self.shape.width_mbs {
            self.x = 0;
        }
    }

    /// The left neighbour, if available (in the picture, in this slice).
    fn left(&self) -> Option<&MbCounts> {
        (self.x > 0 && self.curr > self.shape.first_mb).then_some(&self.left)
    }

    /// The neighbour above, if available.
    fn top(&self) -> Option<&MbCounts> {
        (self.curr >= self.shape.first_mb + self.shape.width_mbs)
            .then(|| &self.top_row[self.x as usize])
    }

    /// The neighbour above and to the left, if available.
    fn top_left(&self) -> Option<&MbCounts> {
        (self.x > 0 && self.curr > self.shape.first_mb + self.shape.width_mbs)
            .then_some(&self.top_left)
    }

    /// A neighbour whose samples intra prediction may use.
    fn intra<'m>(&self, n: Option<&'m MbCounts>) -> Option<&'m MbCounts> {
        n.filter(|m| m.intra || !self.shape.constrained_intra_pred)
    }

    /// The neighbouring macroblocks' samples available to intra prediction of this one.
    fn mb_samples(&self) -> Samples {
        Samples {
            left: self.intra(self.left()).is_some(),
            top: self.intra(self.top()).is_some(),
            top_left: self.intra(self.top_left()).is_some(),
        }
    }

    /// The 16 Intra 4x4 modes, derived as a decoder does (§8.3.1.1) and checked against the
    /// samples each may use.
    fn intra4x4_modes(&mut self) -> Result<[u8; 16], SliceError> {
        let mb = self.mb_samples();
        let left = self.intra(self.left()).map(|m| m.modes);
        let top = self.intra(self.top()).map(|m| m.modes);
        let mut modes = [DC; 16];
        for blk in 0..16usize {
            let (x, y) = ((blk / 4 % 2) * 2 + blk % 2, (blk / 8) * 2 + blk % 4 / 2);
            let a = if x > 0 {
                Some(modes[y * 4 + x - 1])
            } else {
                left.map(|m| m[y * 4 + 3])
            };
            let b = if y > 0 {
                Some(modes[(y - 1) * 4 + x])
            } else {
                top.map(|m| m[12 + x])
            };
            let predicted = match (a, b) {
                (Some(a), Some(b)) => a.min(b),
                _ => DC,
            };
            let mode = if self.r.flag()? {
                predicted
            } else {
                let rem = self.r.bits(3)? as u8;
                if rem < predicted {
                    rem
                } else {
                    rem + 1
                }
            };
            let samples = Samples {
                left: x > 0 || mb.left,
                top: y > 0 || mb.top,
                top_left: match (x > 0, y > 0) {
                    (true, true) => true,
                    (false, true) => mb.left,
                    (true, false) => mb.top,
                    (false, false) => mb.top_left,
                },
            };
            if !samples.intra4x4_ok(mode) {
                return Err(bad("intra4x4 prediction mode"));
            }
            modes[y * 4 + x] = mode;
        }
        Ok(modes)
    }

    /// nC of a 4x4 block at (`x`, `y`) in a grid `size` blocks wide, reading `get` of the
    /// current macroblock's counts so far or a neighbour's (§9.2.1).
    fn nc(
        &self,
        own: &MbCounts,
        x: usize,
        y: usize,
        size: usize,
        get: fn(&MbCounts, usize) -> u8,
    ) -> i32 {
        let a = if x > 0 {
            Some(get(own, y * size + x - 1))
        } else {
            self.left().map(|m| get(m, y * size + size - 1))
        };
        let b = if y > 0 {
            Some(get(own, (y - 1) * size + x))
        } else {
            self.top().map(|m| get(m, (size - 1) * size + x))
        };
        match (a, b) {
            (Some(a), Some(b)) => (i32::from(a) + i32::from(b) + 1) >> 1,
            (Some(n), None) | (None, Some(n)) => i32::from(n),
            (None, None) => 0,
        }
    }

    fn macroblock(&mut self) -> Result<MbCounts, SliceError> {
        let mb_type = self.r.ue()?;
        let kind = if self.shape.intra {
            intra_kind(mb_type)?
        } else {
            match mb_type {
                0 => MbKind::P { parts: 1 },
                1 | 2 => MbKind::P { parts: 2 },
                3 => MbKind::P8x8 { ref0: false },
                4 => MbKind::P8x8 { ref0: true },
                t => intra_kind(t - 5)?,
            }
        };
        if kind == MbKind::Pcm {
            while self.r.position() % 8 != 0 {
                if self.r.flag()? {
                    return Err(bad("pcm_alignment_zero_bit"));
                }
            }
            for _ in 0..384 {
                self.r.bits(8)?;
            }
            return Ok(MbCounts {
                luma: [16; 16],
                chroma: [[16; 4]; 2],
                modes: [DC; 16],
                intra: true,
            });
        }
        let mut counts = MbCounts::default();
        match kind {
            MbKind::I4x4 => {
                counts.modes = self.intra4x4_modes()?;
                counts.intra = true;
                self.chroma_pred_mode()?;
            }
            MbKind::I16x16 { mode, .. } => {
                if !self.mb_samples().intra16x16_ok(mode) {
                    return Err(bad("intra16x16 prediction mode"));
                }
                counts.intra = true;
                self.chroma_pred_mode()?;
            }
            MbKind::P { parts } => {
                for _ in 0..parts {
                    self.ref_idx()?;
                }
                for _ in 0..parts {
                    self.mvd()?;
                }
            }
            MbKind::P8x8 { ref0 } => {
                let mut subs = [0u32; 4];
                for s in subs.iter_mut() {
                    *s = self.r.ue()?;
                    if *s > 3 {
                        return Err(bad("sub_mb_type"));
                    }
                }
                if !ref0 {
                    for _ in 0..4 {
                        self.ref_idx()?;
                    }
                }
                for s in subs {
                    let parts = [1, 2, 2, 4][s as usize];
                    for _ in 0..parts {
                        self.mvd()?;
                    }
                }
            }
            MbKind::Pcm => {}
        }
        let cbp = match kind {
            MbKind::I16x16 { cbp, .. } => cbp,
            _ => {
                let code = self.r.ue()? as usize;
                let table = if kind == MbKind::I4x4 {
                    &CBP_INTRA
                } else {
                    &CBP_INTER
                };
                *table.get(code).ok_or(bad("coded_block_pattern"))?
            }
        };
        let i16 = matches!(kind, MbKind::I16x16 { .. });
        if cbp != 0 || i16 {
            let delta = self.r.se()?;
            if !(-26..=25).contains(&delta) {
                return Err(bad("mb_qp_delta"));
            }
            self.residual(&mut counts, cbp, i16)?;
        }
        Ok(counts)
    }

    fn chroma_pred_mode(&mut self) -> Result<(), SliceError> {
        let mode = self.r.ue()?;
        if mode > 3 || !self.mb_samples().chroma_ok(mode) {
            return Err(bad("intra_chroma_pred_mode"));
        }
        Ok(())
    }

    /// `ref_idx_l0`, te(v) with range `num_ref_idx_active - 1` (absent for one reference).
    fn ref_idx(&mut self) -> Result<(), SliceError> {
        let range = self.shape.ref_idx_active - 1;
        match range {
            0 => {}
            1 => {
                self.r.bit()?;
            }
            _ => {
                if self.r.ue()? > range {
                    return Err(bad("ref_idx_l0"));
                }
            }
        }
        Ok(())
    }

    fn mvd(&mut self) -> Result<(), SliceError> {
        for _ in 0..2 {
            let v = self.r.se()?;
            if !(-32_768..=32_767).contains(&v) {
                return Err(bad("mvd_l0"));
            }
        }
        Ok(())
    }

    /// `residual()` for CAVLC, 4:2:0, 4x4 transforms (§7.3.5.3).
    fn residual(&mut self, counts: &mut MbCounts, cbp: u8, i16: bool) -> Result<(), SliceError> {
        let luma_of = |m: &MbCounts, i: usize| m.luma[i];
        if i16 {
            let nc = self.nc(counts, 0, 0, 4, luma_of);
            self.block(nc, 16)?;
        }
        for b8 in 0..4usize {
            for sub in 0..4usize {
                let (x, y) = ((b8 % 2) * 2 + sub % 2, (b8 / 2) * 2 + sub / 2);
                if cbp & (1 << b8) == 0 {
                    continue;
                }
                let nc = self.nc(counts, x, y, 4, luma_of);
                let max = if i16 { 15 } else { 16 };
                counts.luma[y * 4 + x] = self.block(nc, max)?;
            }
        }
        let chroma = cbp >> 4;
        if chroma > 2 {
            return Err(bad("coded_block_pattern"));
        }
        if chroma != 0 {
            for _ in 0..2 {
                self.block(-1, 4)?;
            }
        }
        if chroma == 2 {
            for c in 0..2usize {
                for i in 0..4usize {
                    let (x, y) = (i % 2, i / 2);
                    let get: fn(&MbCounts, usize) -> u8 = if c == 0 {
                        |m, i| m.chroma[0][i]
                    } else {
                        |m, i| m.chroma[1][i]
                    };
                    let nc = self.nc(counts, x, y, 2, get);
                    counts.chroma[c][i] = self.block(nc, 15)?;
                }
            }
        }
        Ok(())
    }

    /// `residual_block_cavlc()` (§7.3.5.3.2, §9.2): returns TotalCoeff.
    fn block(&mut self, nc: i32, max_coeff: u8) -> Result<u8, SliceError> {
        let (total, ones) = self.coeff_token(nc)?;
        if total > max_coeff {
            return Err(bad("coeff_token"));
        }
        if total == 0 {
            return Ok(0);
        }
        let mut suffix_len: u32 = if total > 10 && ones < 3 { 1 } else { 0 };
        self.r.skip(usize::from(ones))?; // trailing_ones_sign_flag
        for i in ones..total {
            // level_prefix: leading zeros, then a one (at most 15 zeros in these profiles).
            let prefix = self.r.peek32().leading_zeros();
            if prefix > 15 {
                return Err(bad("level_prefix"));
            }
            self.r.skip(prefix as usize + 1)?;
            let suffix_size = if prefix == 14 && suffix_len == 0 {
                4
            } else if prefix == 15 {
                12
            } else {
                suffix_len
            };
            let suffix = if suffix_size > 0 {
                self.r.bits(suffix_size)?
            } else {
                0
            };
            let mut code = (prefix.min(15) << suffix_len) + suffix;
            if prefix == 15 && suffix_len == 0 {
                code += 15;
            }
            if i == ones && ones < 3 {
                code += 2;
            }
            let level = if code % 2 == 0 {
                (i64::from(code) + 2) >> 1
            } else {
                (-i64::from(code) - 1) >> 1
            };
            if suffix_len == 0 {
                suffix_len = 1;
            }
            if level.abs() > (3 << (suffix_len - 1)) && suffix_len < 6 {
                suffix_len += 1;
            }
        }
        let t = self.t;
        let mut zeros_left = if total < max_coeff {
            let vlc = if max_coeff == 4 {
                &t.total_zeros_chroma_dc[usize::from(total) - 1]
            } else {
                &t.total_zeros[usize::from(total) - 1]
            };
            let tz = vlc.read(self.r).ok_or(bad("total_zeros"))? as u8;
            if tz > max_coeff - total {
                return Err(bad("total_zeros"));
            }
            tz
        } else {
            0
        };
        for _ in 0..total - 1 {
            if zeros_left == 0 {
                break;
            }
            let vlc = &t.run_before[usize::from(zeros_left.min(7)) - 1];
            let run = vlc.read(self.r).ok_or(bad("run_before"))? as u8;
            if run > zeros_left {
                return Err(bad("run_before"));
            }
            zeros_left -= run;
        }
        Ok(total)
    }

    /// coeff_token for `nc` (§9.2.1): (TotalCoeff, TrailingOnes).
    fn coeff_token(&mut self, nc: i32) -> Result<(u8, u8), SliceError> {
        let t = self.t;
        let vlc = match nc {
            -1 => &t.coeff_chroma_dc,
            0 | 1 => &t.coeff[0],
            2 | 3 => &t.coeff[1],
            4..=7 => &t.coeff[2],
            _ => {
                let code = self.r.bits(6)? as u16;
                return coeff_token_nc8(code).ok_or(bad("coeff_token"));
            }
        };
        let v = vlc.read(self.r).ok_or(bad("coeff_token"))?;
        Ok(((v >> 8) as u8, (v & 0xff) as u8))
    }
}

/// A VLC table for reading in one step: every H.264 CAVLC code is a run of zeros, a one and a
/// rest of at most [`REST_BITS`] bits, so the next 32 bits' leading zeros and the bits after
/// the one index a table of (code length, value).
#[derive(Debug)]
struct Vlc {
    /// `[zeros * 2^REST_BITS + rest]` → (code length, value); length 0: no such code.
    lookup: Vec<(u8, u16)>,
    /// A code of only zeros (its length and value), if the table has one.
    all_zeros: Option<(u8, u16)>,
}

/// Longest rest after the first one bit in any CAVLC table.
const REST_BITS: u32 = 6;
/// Most leading zeros in any CAVLC code.
const MAX_ZEROS: u32 = 16;

impl Vlc {
    fn new(entries: impl Iterator<Item = (u16, u8, u16)>) -> Vlc {
        let width = 1usize << REST_BITS;
        let mut v = Vlc {
            lookup: vec![(0, 0); (MAX_ZEROS as usize + 1) * width],
            all_zeros: None,
        };
        for (code, len, value) in entries {
            if code == 0 {
                v.all_zeros = Some((len, value));
                continue;
            }
            let significant = 16 - code.leading_zeros();
            let zeros = u32::from(len) - significant;
            let rest_len = significant - 1;
            assert!(
                rest_len <= REST_BITS && zeros <= MAX_ZEROS,
                "CAVLC table shape"
            );
            let rest = usize::from(code) & ((1 << rest_len) - 1);
            let base = zeros as usize * width;
            let span = 1usize << (REST_BITS - rest_len);
            for k in 0..span {
                v.lookup[base + (rest << (REST_BITS - rest_len)) + k] = (len, value);
            }
        }
        v
    }

    #[inline]
    fn read(&self, r: &mut BitReader<'_>) -> Option<u16> {
        let peek = r.peek32();
        let zeros = peek.leading_zeros();
        if let Some((len, value)) = self.all_zeros {
            if zeros >= u32::from(len) {
                r.skip(usize::from(len)).ok()?;
                return Some(value);
            }
        }
        if zeros > MAX_ZEROS {
            return None;
        }
        let rest = ((peek << (zeros + 1)) >> (32 - REST_BITS)) as usize;
        let (len, value) = self.lookup[zeros as usize * (1 << REST_BITS) + rest];
        if len == 0 {
            return None;
        }
        r.skip(usize::from(len)).ok()?;
        Some(value)
    }
}

/// The CAVLC tables, arranged for reading once per process.
struct Tables {
    coeff: [Vlc; 3],
    coeff_chroma_dc: Vlc,
    total_zeros: Vec<Vlc>,
    total_zeros_chroma_dc: Vec<Vlc>,
    run_before: Vec<Vlc>,
}

fn tables() -> &'static Tables {
    static TABLES: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let token = |t: &[(u16, u8, u8, u8)]| {
            Vlc::new(
                t.iter()
                    .map(|&(c, l, total, ones)| (c, l, (u16::from(total) << 8) | u16::from(ones))),
            )
        };
        let three = |t: &[(u16, u8, u8)]| Vlc::new(t.iter().map(|&(c, l, v)| (c, l, u16::from(v))));
        Tables {
            coeff: [
                token(&COEFF_TOKEN_NC0),
                token(&COEFF_TOKEN_NC2),
                token(&COEFF_TOKEN_NC4),
            ],
            coeff_chroma_dc: token(&COEFF_TOKEN_CHROMA_DC),
            total_zeros: TOTAL_ZEROS_4X4.iter().map(|t| three(t)).collect(),
            total_zeros_chroma_dc: TOTAL_ZEROS_CHROMA_DC.iter().map(|t| three(t)).collect(),
            run_before: RUN_BEFORE.iter().map(|t| three(t)).collect(),
        }
    })
}

/// An intra macroblock type (I slice numbering, §7.4.5 Table 7-11).
fn intra_kind(t: u32) -> Result<MbKind, SliceError> {
    match t {
        0 => Ok(MbKind::I4x4),
        1..=24 => {
            let chroma = ((t - 1) / 4) % 3;
            let luma = if t >= 13 { 15 } else { 0 };
            Ok(MbKind::I16x16 {
                mode: (t - 1) % 4,
                cbp: (chroma << 4) as u8 | luma,
            })
        }
        25 => Ok(MbKind::Pcm),
        _ => Err(bad("mb_type")),
    }
}
