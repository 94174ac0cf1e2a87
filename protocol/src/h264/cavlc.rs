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

use super::bits::{BitReader, PADDING};
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

/// What a later macroblock needs of one, four bits per 4x4 block in raster order within the
/// macroblock (nibble `i`: block `i`): the non-zero coefficient counts of its luma blocks and
/// of its chroma blocks (Cb 0..4, Cr 4..8) — at most 15: nC picks the same table for 16
/// (both are ≥ 8, and so is every average with either) — and for intra prediction its Intra
/// 4x4 modes and whether it is intra-coded. Whole words rather than byte arrays: a macroblock
/// is three words and a flag to keep, not 41 bytes to copy twice.
#[derive(Debug, Clone, Copy)]
struct MbCounts {
    luma: u64,
    chroma: u64,
    /// Intra 4x4 prediction modes; 2 (DC) for any other kind of macroblock.
    modes: u64,
    /// Intra-coded (I_PCM included).
    intra: bool,
}

impl Default for MbCounts {
    fn default() -> Self {
        MbCounts {
            luma: 0,
            chroma: 0,
            modes: ALL_DC,
            intra: false,
        }
    }
}

/// Sixteen Intra 4x4 modes DC.
const ALL_DC: u64 = 0x2222_2222_2222_2222;

/// Nibble `i` of `v`.
#[inline(always)]
fn nibble(v: u64, i: usize) -> u8 {
    ((v >> (4 * i)) & 15) as u8
}

/// `n` (at most 15) as nibble `i`, for an OR into a word whose nibble `i` is zero.
#[inline(always)]
fn as_nibble(n: u8, i: usize) -> u64 {
    u64::from(n.min(15)) << (4 * i)
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

/// The slice data's bits, read MSB-first: the walk's own reader. The next bits wait in a
/// register (`cache`), so that reading a code is a shift of it rather than a load from the
/// position (docs/benchmarks.md); it is topped up with one 8-byte load before each code. The
/// data after the RBSP is zero padding ([`BitReader::padded`]); every move is checked against
/// the bits that remain.
#[derive(Clone, Copy)]
struct Bits<'a> {
    data: &'a [u8],
    /// The next bits, MSB first; the top `avail` of them are loaded (the rest zero or also
    /// loaded).
    cache: u64,
    avail: u32,
    /// The next byte to load.
    next: usize,
    /// Bits left before the end of the RBSP.
    remaining: usize,
    /// `remaining` at the RBSP stop bit (`usize::MAX` when there is none).
    at_stop: usize,
}

impl<'a> Bits<'a> {
    /// A reader of `data` (padded) from bit `pos` of an RBSP of `end` bits with its stop bit
    /// at `stop`.
    fn new(data: &'a [u8], pos: usize, end: usize, stop: Option<usize>) -> Self {
        let mut b = Bits {
            data,
            cache: 0,
            avail: 0,
            next: 0,
            remaining: 0,
            at_stop: stop.map_or(usize::MAX, |s| end - s),
        };
        b.seek(pos.min(end), end);
        b
    }

    /// Start again at bit `pos` of an RBSP of `end` bits.
    fn seek(&mut self, pos: usize, end: usize) {
        self.cache = 0;
        self.avail = 0;
        self.next = pos / 8;
        self.remaining = end - pos;
        self.refill();
        let skip = (pos % 8) as u32;
        self.cache <<= skip;
        self.avail -= skip;
    }

    /// The bit position (in the RBSP), given its length `end`.
    fn position(&self, end: usize) -> usize {
        end - self.remaining
    }

    /// Load whole bytes until at least 56 bits are available.
    #[inline(always)]
    fn refill(&mut self) {
        let chunk = self
            .data
            .get(self.next..)
            .and_then(<[u8]>::first_chunk::<8>)
            .map_or(0, |b| u64::from_be_bytes(*b));
        // The bits below the whole bytes counted are the next byte's first ones: loading it
        // again puts the same bits there.
        self.cache |= chunk >> self.avail;
        let bytes = (63 - self.avail) / 8;
        self.next += bytes as usize;
        self.avail += bytes * 8;
    }

    /// The next 32 bits without moving (zeros past the data).
    #[inline(always)]
    fn peek32(&mut self) -> u32 {
        self.refill();
        (self.cache >> 32) as u32
    }

    /// Move `n` ≤ 32 bits on after a [`Bits::peek32`]; an error when fewer remain.
    #[inline(always)]
    fn consume(&mut self, n: u32) -> Result<(), SliceError> {
        self.cache <<= n;
        self.avail -= n;
        self.remaining = self
            .remaining
            .checked_sub(n as usize)
            .ok_or(SliceError::Malformed)?;
        Ok(())
    }

    /// Move `n` ≤ 32 bits on.
    #[inline(always)]
    fn skip(&mut self, n: u32) -> Result<(), SliceError> {
        self.refill();
        self.consume(n)
    }

    /// The next `n` ≤ 32 bits.
    #[inline(always)]
    fn bits(&mut self, n: u32) -> Result<u32, SliceError> {
        let v = ((u64::from(self.peek32()) << n) >> 32) as u32;
        self.consume(n)?;
        Ok(v)
    }

    #[inline(always)]
    fn flag(&mut self) -> Result<bool, SliceError> {
        Ok(self.bits(1)? == 1)
    }

    /// Unsigned exp-Golomb, at most 32 bits of value.
    #[inline(always)]
    fn ue(&mut self) -> Result<u32, SliceError> {
        let peek = self.peek32();
        let zeros = peek.leading_zeros();
        if zeros > 15 {
            return self.long_ue(zeros);
        }
        let len = 2 * zeros + 1;
        self.consume(len)?;
        Ok((peek >> (32 - len)) - 1)
    }

    /// An exp-Golomb code longer than 32 bits (a motion vector difference of ±2^15 and
    /// more); more than 31 leading zeros is malformed.
    #[cold]
    fn long_ue(&mut self, zeros: u32) -> Result<u32, SliceError> {
        if zeros > 31 {
            return Err(SliceError::Malformed);
        }
        self.skip(zeros + 1)?;
        let high = self.bits(zeros - 16)?;
        let low = self.bits(16)?;
        let rest = (u64::from(high) << 16) | u64::from(low);
        ((1u64 << zeros) - 1 + rest)
            .try_into()
            .map_err(|_| SliceError::Malformed)
    }

    /// Signed exp-Golomb.
    #[inline(always)]
    fn se(&mut self) -> Result<i64, SliceError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }

    /// `more_rbsp_data()` (§7.2): syntax data follows before the trailing bits.
    #[inline(always)]
    fn more_rbsp_data(&self) -> bool {
        self.remaining > self.at_stop
    }

    /// One code of a CAVLC table ([`Lookup`]); `field` names it in the error.
    #[inline(always)]
    fn vlc(&mut self, table: &Lookup, field: &'static str) -> Result<u16, SliceError> {
        let entry = table.entry(self.peek32());
        if entry == 0 {
            return Err(bad(field));
        }
        self.consume(u32::from(entry >> LEN_SHIFT))?;
        Ok(entry & VALUE_MASK)
    }
}

/// The walk's state: the bits and what the macroblocks a neighbour can be left behind.
struct Walk<'a> {
    b: Bits<'a>,
    /// The RBSP's length in bits.
    end: usize,
    shape: SliceShape,
    /// For each column, the last macroblock read in it (the row above the current one, left
    /// of the current column: the current row).
    top_row: Vec<MbCounts>,
    /// The macroblock read last (the left neighbour, in the same row).
    left: MbCounts,
    /// Whether the top-left neighbour is intra-coded (all intra prediction needs of it).
    top_left_intra: bool,
    /// The macroblock being read, and its column.
    curr: u32,
    x: u32,
}

fn bad(field: &'static str) -> SliceError {
    SliceError::OutOfRange(field)
}

/// Walk the slice data from the reader's position to its end. The reader must be a
/// [`BitReader::padded`] one: the walk reads whatever lies within [`PADDING`] bytes after the
/// RBSP as zeros (a reader without them is refused, not misread). Returns the address after
/// the slice's last macroblock.
pub(super) fn verify_slice_data(
    r: &mut BitReader<'_>,
    shape: SliceShape,
) -> Result<u32, SliceError> {
    let (data, pos, end, stop) = r.state();
    if data.len() < end / 8 + PADDING {
        return Err(SliceError::Malformed);
    }
    let mut w = Walk {
        b: Bits::new(data, pos, end, stop),
        end,
        shape,
        top_row: vec![MbCounts::default(); shape.width_mbs as usize],
        left: MbCounts::default(),
        top_left_intra: false,
        curr: shape.first_mb,
        x: shape.first_mb % shape.width_mbs,
    };
    loop {
        let mut more = true;
        if !shape.intra {
            let run = w.b.ue()?;
            if u64::from(w.curr) + u64::from(run) > u64::from(shape.total_mbs) {
                return Err(bad("mb_skip_run"));
            }
            for _ in 0..run {
                w.push(MbCounts::default());
            }
            if run > 0 {
                more = w.b.more_rbsp_data();
            }
        }
        if more {
            if w.curr >= shape.total_mbs {
                // Data after the picture's last macroblock.
                return Err(SliceError::TrailingData);
            }
            let counts = w.macroblock()?;
            w.push(counts);
            more = w.b.more_rbsp_data();
        }
        if !more {
            break;
        }
    }
    r.seek(w.b.position(end));
    if r.at_trailing_bits() {
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

impl Walk<'_> {
    /// Keep what the macroblock just read leaves its neighbours, and move to the next one.
    fn push(&mut self, c: MbCounts) {
        let x = self.x as usize;
        let slot = &mut self.top_row[x];
        self.top_left_intra = slot.intra;
        *slot = c;
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

    /// Whether the neighbour above and to the left is available to intra prediction.
    fn top_left_intra(&self) -> bool {
        self.x > 0
            && self.curr > self.shape.first_mb + self.shape.width_mbs
            && (self.top_left_intra || !self.shape.constrained_intra_pred)
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
            top_left: self.top_left_intra(),
        }
    }

    /// The 16 Intra 4x4 modes, derived as a decoder does (§8.3.1.1) and checked against the
    /// samples each may use.
    fn intra4x4_modes(&mut self) -> Result<u64, SliceError> {
        let mb = self.mb_samples();
        let left = self.intra(self.left()).map(|m| m.modes);
        let top = self.intra(self.top()).map(|m| m.modes);
        let mut modes = 0;
        for blk in 0..16usize {
            let (x, y) = ((blk / 4 % 2) * 2 + blk % 2, (blk / 8) * 2 + blk % 4 / 2);
            let a = if x > 0 {
                Some(nibble(modes, y * 4 + x - 1))
            } else {
                left.map(|m| nibble(m, y * 4 + 3))
            };
            let b = if y > 0 {
                Some(nibble(modes, (y - 1) * 4 + x))
            } else {
                top.map(|m| nibble(m, 12 + x))
            };
            let predicted = match (a, b) {
                (Some(a), Some(b)) => a.min(b),
                _ => DC,
            };
            let mode = if self.b.flag()? {
                predicted
            } else {
                let rem = self.b.bits(3)? as u8;
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
            modes |= as_nibble(mode, y * 4 + x);
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
        let mb_type = self.b.ue()?;
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
            while self.b.position(self.end) % 8 != 0 {
                if self.b.flag()? {
                    return Err(bad("pcm_alignment_zero_bit"));
                }
            }
            // 384 samples of 8 bits.
            let after = self.b.position(self.end) + 384 * 8;
            if after > self.end {
                return Err(SliceError::Malformed);
            }
            self.b.seek(after, self.end);
            return Ok(MbCounts {
                luma: u64::MAX,
                chroma: u64::from(u32::MAX),
                modes: ALL_DC,
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
                    *s = self.b.ue()?;
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
                let code = self.b.ue()? as usize;
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
            let delta = self.b.se()?;
            if !(-26..=25).contains(&delta) {
                return Err(bad("mb_qp_delta"));
            }
            self.residual(&mut counts, cbp, i16)?;
        }
        Ok(counts)
    }

    fn chroma_pred_mode(&mut self) -> Result<(), SliceError> {
        let mode = self.b.ue()?;
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
                self.b.skip(1)?;
            }
            _ => {
                if self.b.ue()? > range {
                    return Err(bad("ref_idx_l0"));
                }
            }
        }
        Ok(())
    }

    fn mvd(&mut self) -> Result<(), SliceError> {
        for _ in 0..2 {
            let v = self.b.se()?;
            if !(-32_768..=32_767).contains(&v) {
                return Err(bad("mvd_l0"));
            }
        }
        Ok(())
    }

    /// `residual()` for CAVLC, 4:2:0, 4x4 transforms (§7.3.5.3).
    fn residual(&mut self, counts: &mut MbCounts, cbp: u8, i16: bool) -> Result<(), SliceError> {
        let luma_of = |m: &MbCounts, i: usize| nibble(m.luma, i);
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
                counts.luma |= as_nibble(self.block(nc, max)?, y * 4 + x);
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
                        |m, i| nibble(m.chroma, i)
                    } else {
                        |m, i| nibble(m.chroma, 4 + i)
                    };
                    let nc = self.nc(counts, x, y, 2, get);
                    counts.chroma |= as_nibble(self.block(nc, 15)?, c * 4 + i);
                }
            }
        }
        Ok(())
    }

    /// `residual_block_cavlc()` (§7.3.5.3.2, §9.2): returns TotalCoeff.
    #[inline(always)]
    fn block(&mut self, nc: i32, max_coeff: u8) -> Result<u8, SliceError> {
        let (total, ones) = self.coeff_token(nc)?;
        if total > max_coeff {
            return Err(bad("coeff_token"));
        }
        if total == 0 {
            return Ok(0);
        }
        let mut b = self.b;
        let mut suffix_len: u32 = if total > 10 && ones < 3 { 1 } else { 0 };
        b.skip(u32::from(ones))?; // trailing_ones_sign_flag
        for i in ones..total {
            // level_prefix: leading zeros, then a one (at most 15 zeros in these profiles),
            // and level_suffix after it: at most 28 bits, one peek.
            let peek = b.peek32();
            let prefix = peek.leading_zeros();
            if prefix > 15 {
                return Err(bad("level_prefix"));
            }
            let suffix_size = if prefix == 14 && suffix_len == 0 {
                4
            } else if prefix == 15 {
                12
            } else {
                suffix_len
            };
            let suffix = ((u64::from(peek << (prefix + 1)) << suffix_size) >> 32) as u32;
            b.consume(prefix + 1 + suffix_size)?;
            let mut code = (prefix << suffix_len) + suffix;
            if prefix == 15 && suffix_len == 0 {
                code += 15;
            }
            if i == ones && ones < 3 {
                code += 2;
            }
            // |levelVal| (§9.2.2.1): (code + 2) / 2 for even codes, (code + 1) / 2 for odd.
            let magnitude = (code >> 1) + 1;
            if suffix_len == 0 {
                suffix_len = 1;
            }
            if magnitude > (3 << (suffix_len - 1)) && suffix_len < 6 {
                suffix_len += 1;
            }
        }
        let mut zeros_left = if total < max_coeff {
            let table = if max_coeff == 4 {
                &TOTAL_ZEROS_CHROMA_DC_LOOKUP[usize::from(total) - 1]
            } else {
                &TOTAL_ZEROS_LOOKUP[usize::from(total) - 1]
            };
            let tz = b.vlc(table, "total_zeros")? as u8;
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
            let table = &RUN_BEFORE_LOOKUP[usize::from(zeros_left.min(7)) - 1];
            let run = b.vlc(table, "run_before")? as u8;
            if run > zeros_left {
                return Err(bad("run_before"));
            }
            zeros_left -= run;
        }
        self.b = b;
        Ok(total)
    }

    /// coeff_token for `nc` (§9.2.1): (TotalCoeff, TrailingOnes).
    #[inline(always)]
    fn coeff_token(&mut self, nc: i32) -> Result<(u8, u8), SliceError> {
        // Chroma DC (-1), 0 ≤ nC < 2, 2 ≤ nC < 4, 4 ≤ nC < 8, 8 ≤ nC: picked without a branch.
        const CLASS: [u8; 10] = [0, 1, 1, 2, 2, 3, 3, 3, 3, 4];
        let class = CLASS[(nc.clamp(-1, 8) + 1) as usize];
        let v = self
            .b
            .vlc(&COEFF_TOKEN_LOOKUP[usize::from(class)], "coeff_token")?;
        Ok(((v >> 2) as u8, (v & 3) as u8))
    }
}

/// A CAVLC code table arranged for reading in one step, built at compile time from the
/// standard's tables (`cavlc_tables`). Entries are the code's length `<< LEN_SHIFT | value`;
/// length 0: no such code. Codes of at most [`SHORT_BITS`] bits (most codes read) are found
/// by the next [`SHORT_BITS`] bits directly in `short` (one load after the bits: the shortest
/// chain from one code to the next); for longer ones `short` holds 0 and `long` is indexed
/// by the shape every H.264 CAVLC code has: a run of zeros, a one and a rest of at most
/// [`REST_BITS`] bits (or only zeros) — the number of leading zeros of the next 32 bits (at
/// most [`MAX_ZEROS`]) and the [`REST_BITS`] bits after the one.
struct Lookup {
    short: [u16; 1 << SHORT_BITS],
    long: [u16; LOOKUP_LEN],
}

impl Lookup {
    /// The entry for the code at the top of `peek` (0: none).
    #[inline(always)]
    fn entry(&self, peek: u32) -> u16 {
        match self.short[(peek >> (32 - SHORT_BITS)) as usize] {
            0 => self.long(peek),
            short => short,
        }
    }

    /// The entry for a code longer than [`SHORT_BITS`] at the top of `peek`.
    #[inline(always)]
    fn long(&self, peek: u32) -> u16 {
        let zeros = peek.leading_zeros().min(MAX_ZEROS);
        let rest = ((u64::from(peek) << (zeros + 1)) >> (32 - REST_BITS)) as usize & (ROW - 1);
        self.long[zeros as usize * ROW + rest]
    }
}

/// Codes of at most this many bits are read with one load.
const SHORT_BITS: u32 = 8;

/// Longest rest after the first one bit in any CAVLC table.
const REST_BITS: u32 = 6;
/// Entries per number of leading zeros.
const ROW: usize = 1 << REST_BITS;
/// Rows of leading zeros in `long`: codes have at most 14 (a code of only zeros aside), and
/// row 16 takes any longer run (only a code of only zeros can match it).
const MAX_ZEROS: u32 = 16;
const LOOKUP_LEN: usize = (MAX_ZEROS as usize + 1) * ROW;
/// An entry's length field; values (at most 10 bits) below it.
const LEN_SHIFT: u32 = 10;
const VALUE_MASK: u16 = (1 << LEN_SHIFT) - 1;

/// Enter code `code` of `len` bits meaning `value`.
const fn enter(table: &mut Lookup, code: u16, len: u8, value: u16) {
    let entry = ((len as u16) << LEN_SHIFT) | value;
    if len as u32 <= SHORT_BITS {
        // Every byte that starts with the code.
        let span = 1usize << (SHORT_BITS - len as u32);
        let first = (code as usize) << (SHORT_BITS - len as u32);
        let mut k = 0;
        while k < span {
            table.short[first + k] = entry;
            k += 1;
        }
    }
    let table = &mut table.long;
    if code == 0 {
        // Only zeros: any run of at least `len` zeros starts with it (the codes are
        // prefix-free, so no other code does).
        let mut i = len as usize * ROW;
        while i < LOOKUP_LEN {
            table[i] = entry;
            i += 1;
        }
        return;
    }
    let significant = 16 - code.leading_zeros();
    let zeros = len as u32 - significant;
    let rest_len = significant - 1;
    assert!(
        rest_len <= REST_BITS && zeros < MAX_ZEROS,
        "CAVLC table shape"
    );
    let rest = (code as usize) & ((1 << rest_len) - 1);
    let first = zeros as usize * ROW + (rest << (REST_BITS - rest_len));
    let mut k = 0;
    while k < 1 << (REST_BITS - rest_len) {
        table[first + k] = entry;
        k += 1;
    }
}

/// A table without codes.
const EMPTY: Lookup = Lookup {
    short: [0; 1 << SHORT_BITS],
    long: [0; LOOKUP_LEN],
};

/// A coeff_token table: values `TotalCoeff << 2 | TrailingOnes`.
const fn token_lookup(codes: &[(u16, u8, u8, u8)]) -> Lookup {
    let mut table = EMPTY;
    let mut i = 0;
    while i < codes.len() {
        let (code, len, total, ones) = codes[i];
        enter(&mut table, code, len, ((total as u16) << 2) | ones as u16);
        i += 1;
    }
    table
}

/// The coeff_token table for 8 ≤ nC: six bits of fixed length.
const fn token_lookup_nc8() -> Lookup {
    let mut table = EMPTY;
    let mut code = 0;
    while code < 64 {
        if let Some((total, ones)) = coeff_token_nc8(code) {
            enter(&mut table, code, 6, ((total as u16) << 2) | ones as u16);
        }
        code += 1;
    }
    table
}

/// A total_zeros or run_before table.
const fn value_lookup(codes: &[(u16, u8, u8)]) -> Lookup {
    let mut table = EMPTY;
    let mut i = 0;
    while i < codes.len() {
        let (code, len, value) = codes[i];
        enter(&mut table, code, len, value as u16);
        i += 1;
    }
    table
}

/// [`value_lookup`] of each table of a list.
const fn value_lookups<const N: usize>(tables: [&[(u16, u8, u8)]; N]) -> [Lookup; N] {
    let mut out = [EMPTY; N];
    let mut i = 0;
    while i < N {
        out[i] = value_lookup(tables[i]);
        i += 1;
    }
    out
}

/// coeff_token for chroma DC (nC = -1), 0 ≤ nC < 2, 2 ≤ nC < 4, 4 ≤ nC < 8 and 8 ≤ nC.
static COEFF_TOKEN_LOOKUP: [Lookup; 5] = [
    token_lookup(&COEFF_TOKEN_CHROMA_DC),
    token_lookup(&COEFF_TOKEN_NC0),
    token_lookup(&COEFF_TOKEN_NC2),
    token_lookup(&COEFF_TOKEN_NC4),
    token_lookup_nc8(),
];
static TOTAL_ZEROS_LOOKUP: [Lookup; 15] = value_lookups(TOTAL_ZEROS_4X4);
static TOTAL_ZEROS_CHROMA_DC_LOOKUP: [Lookup; 3] = value_lookups(TOTAL_ZEROS_CHROMA_DC);
static RUN_BEFORE_LOOKUP: [Lookup; 7] = value_lookups(RUN_BEFORE);

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A table's codes: (code, length, value).
    type Codes = Vec<(u16, u8, u16)>;

    /// Every table of the standard and the lookup built from it.
    fn tables() -> Vec<(Codes, &'static Lookup)> {
        let token = |t: &[(u16, u8, u8, u8)]| {
            t.iter()
                .map(|&(c, l, total, ones)| (c, l, (u16::from(total) << 2) | u16::from(ones)))
                .collect::<Vec<_>>()
        };
        let value = |t: &[(u16, u8, u8)]| {
            t.iter()
                .map(|&(c, l, v)| (c, l, u16::from(v)))
                .collect::<Vec<_>>()
        };
        let nc8 = (0u16..64)
            .filter_map(|c| {
                coeff_token_nc8(c).map(|(t, o)| (c, 6, (u16::from(t) << 2) | u16::from(o)))
            })
            .collect();
        let mut all = vec![
            (token(&COEFF_TOKEN_CHROMA_DC), &COEFF_TOKEN_LOOKUP[0]),
            (token(&COEFF_TOKEN_NC0), &COEFF_TOKEN_LOOKUP[1]),
            (token(&COEFF_TOKEN_NC2), &COEFF_TOKEN_LOOKUP[2]),
            (token(&COEFF_TOKEN_NC4), &COEFF_TOKEN_LOOKUP[3]),
            (nc8, &COEFF_TOKEN_LOOKUP[4]),
        ];
        for (t, l) in TOTAL_ZEROS_4X4.iter().zip(&TOTAL_ZEROS_LOOKUP) {
            all.push((value(t), l));
        }
        for (t, l) in TOTAL_ZEROS_CHROMA_DC
            .iter()
            .zip(&TOTAL_ZEROS_CHROMA_DC_LOOKUP)
        {
            all.push((value(t), l));
        }
        for (t, l) in RUN_BEFORE.iter().zip(&RUN_BEFORE_LOOKUP) {
            all.push((value(t), l));
        }
        all
    }

    /// The walk reads the bytes after the RBSP as zeros, so a reader without that padding is
    /// refused rather than misread.
    #[test]
    fn a_reader_without_padding_is_refused() {
        let shape = SliceShape {
            width_mbs: 1,
            total_mbs: 1,
            first_mb: 0,
            intra: false,
            ref_idx_active: 1,
            constrained_intra_pred: false,
        };
        // mb_skip_run 1, then the stop bit: one skipped macroblock.
        let rbsp = [0b0101_0000u8];
        let mut unpadded = BitReader::new(&rbsp);
        assert_eq!(
            verify_slice_data(&mut unpadded, shape),
            Err(SliceError::Malformed)
        );
        let mut padded_data = rbsp.to_vec();
        padded_data.extend_from_slice(&[0; PADDING]);
        let mut padded = BitReader::padded(&padded_data);
        assert_eq!(verify_slice_data(&mut padded, shape), Ok(1));
    }

    /// Whatever bits follow a code, the lookup finds that code; and whatever it finds for
    /// any 32 bits is a code of the table at their top.
    #[test]
    fn lookups_find_exactly_the_standards_codes() {
        let mut next = super::super::xorshift(0x2545_f491_4f6c_dd1d);
        let mut random = || next() as u32;
        for (codes, lookup) in tables() {
            for &(code, len, value) in &codes {
                for _ in 0..64 {
                    let after = random() >> len;
                    let peek = (u32::from(code) << (32 - u32::from(len))) | after;
                    let entry = lookup.entry(peek);
                    assert_eq!(
                        (entry >> LEN_SHIFT, entry & VALUE_MASK),
                        (u16::from(len), value),
                        "code {code:0w$b} then {after:032b}",
                        w = usize::from(len)
                    );
                }
            }
            for _ in 0..20_000 {
                // Runs of zeros are where the long codes are.
                let peek = random() >> (random() % 20);
                let entry = lookup.entry(peek);
                if entry != 0 {
                    let len = u32::from(entry >> LEN_SHIFT);
                    let top = (peek >> (32 - len)) as u16;
                    assert!(
                        codes.contains(&(top, len as u8, entry & VALUE_MASK)),
                        "{peek:032b} read as a code the table does not have"
                    );
                } else {
                    assert!(
                        !codes
                            .iter()
                            .any(|&(c, l, _)| (peek >> (32 - u32::from(l))) as u16 == c),
                        "{peek:032b}: a code of the table not found"
                    );
                }
            }
        }
    }
}
