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

/// The place (x, y) in raster order of 4x4 block `blk` in decoding order: the four blocks
/// of each 8x8 block in turn (§6.4.3).
const fn block_xy(blk: usize) -> (usize, usize) {
    ((blk / 4 % 2) * 2 + blk % 2, (blk / 8) * 2 + blk % 4 / 2)
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
    /// The Intra 4x4 modes (bit `mode`, 0..=8) that only read samples that exist (§8.3.1.2).
    #[inline(always)]
    fn intra4x4_allowed(self) -> u16 {
        let vertical = (1 << 0) | (1 << 3) | (1 << 7);
        let horizontal = (1 << 1) | (1 << 8);
        let diagonal = (1 << 4) | (1 << 5) | (1 << 6);
        (1 << DC)
            | if self.top { vertical } else { 0 }
            | if self.left { horizontal } else { 0 }
            | if self.left && self.top && self.top_left {
                diagonal
            } else {
                0
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
/// position (docs/benchmarks.md §1). It is refilled with one 8-byte load at every residual
/// block's start, and otherwise topped up only when fewer than 32 bits are loaded.
/// Reading does not check the RBSP's end: past it the reader reads zeros (the padding
/// [`BitReader::padded`] puts there, then nothing), and the walk checks the position against
/// the end after every macroblock — every loop within a macroblock is bounded, and a
/// macroblock read past the end is refused.
#[derive(Clone, Copy)]
struct Bits<'a> {
    data: &'a [u8],
    /// The next bits, MSB first; the top `avail` of them are loaded (the rest zero or also
    /// loaded).
    cache: u64,
    avail: u32,
    /// The next byte to load.
    next: usize,
    /// The position of the RBSP stop bit (0 when there is none).
    stop: usize,
}

impl<'a> Bits<'a> {
    /// A reader of `data` (padded) from bit `pos` of an RBSP with its stop bit at `stop`.
    fn new(data: &'a [u8], pos: usize, stop: Option<usize>) -> Self {
        let mut b = Bits {
            data,
            cache: 0,
            avail: 0,
            next: 0,
            stop: stop.unwrap_or(0),
        };
        b.seek(pos);
        b
    }

    /// Start again at bit `pos`.
    fn seek(&mut self, pos: usize) {
        self.cache = 0;
        self.avail = 0;
        self.next = pos / 8;
        self.refill();
        let skip = (pos % 8) as u32;
        self.cache <<= skip;
        self.avail -= skip;
    }

    /// The bit position: the bytes loaded less the bits not yet read.
    #[inline(always)]
    fn position(&self) -> usize {
        self.next * 8 - self.avail as usize
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

    /// The next 4 bits, without a refill: at least 4 must be loaded.
    #[inline(always)]
    fn top4(&self) -> u8 {
        (self.cache >> 60) as u8
    }

    /// The next 32 bits without moving (zeros past the data).
    #[inline(always)]
    fn peek32(&mut self) -> u32 {
        if self.avail < 32 {
            self.refill();
        }
        (self.cache >> 32) as u32
    }

    /// Move `n` ≤ 32 bits on after a [`Bits::peek32`] (or another refill since which no
    /// more than 24 bits were read).
    #[inline(always)]
    fn consume(&mut self, n: u32) {
        debug_assert!(n <= self.avail, "{n} bits read with {} loaded", self.avail);
        self.cache <<= n;
        self.avail -= n;
    }

    /// Move `n` ≤ 32 bits on.
    #[inline(always)]
    fn skip(&mut self, n: u32) {
        self.refill();
        self.consume(n)
    }

    /// The next `n` ≤ 32 bits.
    #[inline(always)]
    fn bits(&mut self, n: u32) -> u32 {
        let v = ((u64::from(self.peek32()) << n) >> 32) as u32;
        self.consume(n);
        v
    }

    #[inline(always)]
    fn flag(&mut self) -> bool {
        self.bits(1) == 1
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
        self.consume(len);
        Ok((peek >> (32 - len)) - 1)
    }

    /// An exp-Golomb code longer than 32 bits (a motion vector difference of ±2^15 and
    /// more); more than 31 leading zeros is malformed.
    #[cold]
    fn long_ue(&mut self, zeros: u32) -> Result<u32, SliceError> {
        if zeros > 31 {
            return Err(SliceError::Malformed);
        }
        self.skip(zeros + 1);
        let high = self.bits(zeros - 16);
        let low = self.bits(16);
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
        self.position() < self.stop
    }

    /// One code of a CAVLC table ([`Lookup`]); `field` names it in the error.
    #[inline(always)]
    fn vlc(&mut self, table: &Lookup, field: &'static str) -> Result<u16, SliceError> {
        let entry = table.entry(self.peek32());
        if entry == 0 {
            return Err(bad(field));
        }
        self.consume(u32::from(entry >> LEN_SHIFT));
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
        b: Bits::new(data, pos.min(end), stop),
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
            if w.b.position() > end {
                // The macroblock was read past the RBSP's end (on zeros).
                return Err(SliceError::Malformed);
            }
            w.push(counts);
            more = w.b.more_rbsp_data();
        }
        if !more {
            break;
        }
    }
    let pos = w.b.position();
    if pos > end {
        // The last skip run was read past the end.
        return Err(SliceError::Malformed);
    }
    r.seek(pos);
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
    /// samples each may use. Without a branch on the bits (whether a mode is the predicted
    /// one is as likely as not, and a mispredicted branch per block cost more than the rest
    /// of the block's work), and written out per block so that each block's place is a
    /// constant.
    fn intra4x4_modes(&mut self) -> Result<u64, SliceError> {
        let mb = self.mb_samples();
        let left = self.intra(self.left()).map(|m| m.modes);
        let top = self.intra(self.top()).map(|m| m.modes);
        // The samples a block may use by where it lies: at the macroblock's top-left
        // corner, in its top row, in its left column, inside.
        let inside = Samples {
            left: true,
            top: true,
            top_left: true,
        };
        let ctx = ModeContext {
            left: left.unwrap_or(ALL_DC),
            top: top.unwrap_or(ALL_DC),
            // A neighbour that is not available makes the blocks next to it predict DC.
            dc: if left.is_none() { LEFT_COLUMN } else { 0 }
                | if top.is_none() { TOP_ROW } else { 0 },
            allowed: [
                mb.intra4x4_allowed(),
                Samples {
                    top: mb.top,
                    top_left: mb.top,
                    ..inside
                }
                .intra4x4_allowed(),
                Samples {
                    left: mb.left,
                    top_left: mb.left,
                    ..inside
                }
                .intra4x4_allowed(),
                inside.intra4x4_allowed(),
            ],
        };
        let mut modes = (0u64, 0u16);
        let b = &mut self.b;
        intra4x4_mode::<0>(b, &ctx, &mut modes);
        intra4x4_mode::<1>(b, &ctx, &mut modes);
        intra4x4_mode::<2>(b, &ctx, &mut modes);
        intra4x4_mode::<3>(b, &ctx, &mut modes);
        intra4x4_mode::<4>(b, &ctx, &mut modes);
        intra4x4_mode::<5>(b, &ctx, &mut modes);
        intra4x4_mode::<6>(b, &ctx, &mut modes);
        intra4x4_mode::<7>(b, &ctx, &mut modes);
        intra4x4_mode::<8>(b, &ctx, &mut modes);
        intra4x4_mode::<9>(b, &ctx, &mut modes);
        intra4x4_mode::<10>(b, &ctx, &mut modes);
        intra4x4_mode::<11>(b, &ctx, &mut modes);
        intra4x4_mode::<12>(b, &ctx, &mut modes);
        intra4x4_mode::<13>(b, &ctx, &mut modes);
        intra4x4_mode::<14>(b, &ctx, &mut modes);
        intra4x4_mode::<15>(b, &ctx, &mut modes);
        if modes.1 != 0 {
            return Err(bad("intra4x4 prediction mode"));
        }
        Ok(modes.0)
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
            while self.b.position() % 8 != 0 {
                if self.b.flag() {
                    return Err(bad("pcm_alignment_zero_bit"));
                }
            }
            // 384 samples of 8 bits.
            let after = self.b.position() + 384 * 8;
            if after > self.end {
                return Err(SliceError::Malformed);
            }
            self.b.seek(after);
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

    #[inline(always)]
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
                self.b.skip(1);
            }
            _ => {
                if self.b.ue()? > range {
                    return Err(bad("ref_idx_l0"));
                }
            }
        }
        Ok(())
    }

    #[inline(always)]
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
        let luma = self.neighbours(|m| m.luma);
        if i16 {
            let nc = luma.nc(counts.luma, 0, 0, 4, 0);
            self.block(nc, 16)?;
        }
        // Block by block, so that each block's place is a constant.
        let max = if i16 { 15 } else { 16 };
        if cbp & 1 != 0 {
            self.luma_block::<0>(&luma, counts, max)?;
            self.luma_block::<1>(&luma, counts, max)?;
            self.luma_block::<2>(&luma, counts, max)?;
            self.luma_block::<3>(&luma, counts, max)?;
        }
        if cbp & 2 != 0 {
            self.luma_block::<4>(&luma, counts, max)?;
            self.luma_block::<5>(&luma, counts, max)?;
            self.luma_block::<6>(&luma, counts, max)?;
            self.luma_block::<7>(&luma, counts, max)?;
        }
        if cbp & 4 != 0 {
            self.luma_block::<8>(&luma, counts, max)?;
            self.luma_block::<9>(&luma, counts, max)?;
            self.luma_block::<10>(&luma, counts, max)?;
            self.luma_block::<11>(&luma, counts, max)?;
        }
        if cbp & 8 != 0 {
            self.luma_block::<12>(&luma, counts, max)?;
            self.luma_block::<13>(&luma, counts, max)?;
            self.luma_block::<14>(&luma, counts, max)?;
            self.luma_block::<15>(&luma, counts, max)?;
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
            let n = self.neighbours(|m| m.chroma);
            self.chroma_block::<0>(&n, counts)?;
            self.chroma_block::<1>(&n, counts)?;
            self.chroma_block::<2>(&n, counts)?;
            self.chroma_block::<3>(&n, counts)?;
            self.chroma_block::<4>(&n, counts)?;
            self.chroma_block::<5>(&n, counts)?;
            self.chroma_block::<6>(&n, counts)?;
            self.chroma_block::<7>(&n, counts)?;
        }
        Ok(())
    }

    /// The left and upper neighbours' counts of one kind (`get`), as far as available.
    #[inline(always)]
    fn neighbours(&self, get: fn(&MbCounts) -> u64) -> Neighbours {
        let (left, top) = (self.left(), self.top());
        Neighbours {
            left: left.map_or(0, get),
            top: top.map_or(0, get),
            left_ok: left.is_some(),
            top_ok: top.is_some(),
        }
    }

    /// Luma block `BLK` (in decoding order) of a residual.
    #[inline(always)]
    fn luma_block<const BLK: usize>(
        &mut self,
        n: &Neighbours,
        counts: &mut MbCounts,
        max: u8,
    ) -> Result<(), SliceError> {
        let (x, y) = block_xy(BLK);
        let nc = n.nc(counts.luma, x, y, 4, 0);
        counts.luma |= as_nibble(self.block(nc, max)?, y * 4 + x);
        Ok(())
    }

    /// Chroma AC block `BLK` (Cb 0..4, Cr 4..8) of a residual.
    #[inline(always)]
    fn chroma_block<const BLK: usize>(
        &mut self,
        n: &Neighbours,
        counts: &mut MbCounts,
    ) -> Result<(), SliceError> {
        let (x, y, base) = (BLK % 2, BLK % 4 / 2, BLK / 4 * 4);
        let nc = n.nc(counts.chroma, x, y, 2, base);
        counts.chroma |= as_nibble(self.block(nc, 15)?, BLK);
        Ok(())
    }

    /// `residual_block_cavlc()` (§7.3.5.3.2, §9.2): returns TotalCoeff.
    #[inline(always)]
    fn block(&mut self, nc: i32, max_coeff: u8) -> Result<u8, SliceError> {
        // Chroma DC (-1), 0 ≤ nC < 2, 2 ≤ nC < 4, 4 ≤ nC < 8, 8 ≤ nC: picked without a branch.
        const CLASS: [u8; 10] = [0, 1, 1, 2, 2, 3, 3, 3, 3, 4];
        let class = usize::from(CLASS[(nc.clamp(-1, 8) + 1) as usize]);
        // A refill at every block's start, whatever is loaded: then coeff_token, the signs
        // and the first level (at most 16 + 3 + 28 bits) need no top-up, and whether the
        // later codes need one is a branch the predictor learns.
        self.b.refill();
        // Most blocks are whole within the next BLOCK_BITS bits: one lookup reads them.
        let table = if max_coeff == 15 { class + 4 } else { class };
        let whole = WHOLE_BLOCKS[table][(self.b.cache >> (64 - BLOCK_BITS)) as usize];
        if whole != 0 {
            self.b.consume(u32::from(whole >> 5));
            return Ok((whole & 31) as u8);
        }
        block_by_codes(&mut self.b, class, max_coeff)
    }
}

/// The non-zero coefficient counts of a macroblock's left and upper neighbours, of one kind
/// (luma, or chroma: Cb then Cr), a nibble per block; 0 and not `_ok` when the neighbour is
/// not available.
struct Neighbours {
    left: u64,
    top: u64,
    left_ok: bool,
    top_ok: bool,
}

impl Neighbours {
    /// nC (§9.2.1) of the 4x4 block at (`x`, `y`) of a grid `size` blocks wide whose nibbles
    /// start at `base`, from `own` (the macroblock's counts so far) and the neighbours.
    #[inline(always)]
    fn nc(&self, own: u64, x: usize, y: usize, size: usize, base: usize) -> i32 {
        let a = if x > 0 {
            Some(nibble(own, base + y * size + x - 1))
        } else {
            self.left_ok
                .then(|| nibble(self.left, base + y * size + size - 1))
        };
        let b = if y > 0 {
            Some(nibble(own, base + (y - 1) * size + x))
        } else {
            self.top_ok
                .then(|| nibble(self.top, base + (size - 1) * size + x))
        };
        match (a, b) {
            (Some(a), Some(b)) => (i32::from(a) + i32::from(b) + 1) >> 1,
            (Some(n), None) | (None, Some(n)) => i32::from(n),
            (None, None) => 0,
        }
    }
}

/// What the Intra 4x4 modes of a macroblock are derived from: the neighbours' modes (all DC
/// for a neighbour that has none), the blocks that predict DC for want of a neighbour
/// (a bit per block), and the modes allowed by where a block lies (see
/// [`Walk::intra4x4_modes`]).
struct ModeContext {
    left: u64,
    top: u64,
    dc: u16,
    allowed: [u16; 4],
}

/// The blocks (in decoding order) of a macroblock's left column and of its top row.
const LEFT_COLUMN: u16 = (1 << 0) | (1 << 2) | (1 << 8) | (1 << 10);
const TOP_ROW: u16 = (1 << 0) | (1 << 1) | (1 << 4) | (1 << 5);

/// Block `BLK`'s Intra 4x4 mode (§8.3.1.1): read, put into `modes.0` (a nibble per block in
/// raster order) and, when its prediction would read samples that do not exist, marked in
/// `modes.1`.
#[inline(always)]
fn intra4x4_mode<const BLK: usize>(b: &mut Bits<'_>, ctx: &ModeContext, modes: &mut (u64, u16)) {
    let (x, y) = block_xy(BLK);
    let a = if x > 0 {
        nibble(modes.0, y * 4 + x - 1)
    } else {
        nibble(ctx.left, y * 4 + 3)
    };
    let above = if y > 0 {
        nibble(modes.0, (y - 1) * 4 + x)
    } else {
        nibble(ctx.top, 12 + x)
    };
    let predicted = if ctx.dc & (1 << BLK) != 0 {
        DC
    } else {
        a.min(above)
    };
    // prev_intra4x4_pred_mode_flag, or the flag 0 and rem_intra4x4_pred_mode (3 bits):
    // eight codes fit in the bits one refill makes available.
    if BLK % 8 == 0 {
        b.refill();
    }
    let code = b.top4();
    let rem = code & 7;
    let coded = rem + u8::from(rem >= predicted);
    let predicted_flag = code >> 3 == 1;
    let mode = if predicted_flag { predicted } else { coded };
    b.consume(if predicted_flag { 1 } else { 4 });
    let place = usize::from(x > 0) | usize::from(y > 0) << 1;
    modes.1 |= !ctx.allowed[place] & (1 << mode);
    modes.0 |= u64::from(mode) << (4 * (y * 4 + x));
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

/// Enter code `code` of `len` bits meaning `value`, after which `then` more bits are read
/// with it (the entry's length is `len + then`).
const fn enter(table: &mut Lookup, code: u16, len: u8, then: u8, value: u16) {
    let entry = (((len + then) as u16) << LEN_SHIFT) | value;
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

/// A coeff_token table: values `TotalCoeff << 2 | TrailingOnes`; the length read takes in
/// the trailing ones' sign bits after the code.
const fn token_lookup(codes: &[(u16, u8, u8, u8)]) -> Lookup {
    let mut table = EMPTY;
    let mut i = 0;
    while i < codes.len() {
        let (code, len, total, ones) = codes[i];
        enter(
            &mut table,
            code,
            len,
            ones,
            ((total as u16) << 2) | ones as u16,
        );
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
            enter(
                &mut table,
                code,
                6,
                ones,
                ((total as u16) << 2) | ones as u16,
            );
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
        enter(&mut table, code, len, 0, value as u16);
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

/// The level rules (§9.2.2) that the code-by-code reading and the whole-block tables share.
/// suffixLength and the `first` offset before the first level of a block of `total`
/// coefficients with `ones` trailing ones: the first level after fewer than three trailing
/// ones is at least 2 in magnitude, and its code counts from there.
const fn levels_start(total: u8, ones: u8) -> (u32, u32) {
    let suffix_len = if total > 10 && ones < 3 { 1 } else { 0 };
    (suffix_len, if ones < 3 { 2 } else { 0 })
}

/// The size of level_suffix after a level_prefix of `prefix` (at most 15).
#[inline(always)]
const fn level_suffix_size(prefix: u32, suffix_len: u32) -> u32 {
    if prefix == 14 && suffix_len == 0 {
        4
    } else if prefix == 15 {
        12
    } else {
        suffix_len
    }
}

/// suffixLength after a level of `prefix` and `suffix` (`first`: see [`levels_start`]).
/// It grows without a branch: whether it does is the data's choice.
#[inline(always)]
const fn next_suffix_len(prefix: u32, suffix: u32, suffix_len: u32, first: u32) -> u32 {
    let escape = if prefix == 15 && suffix_len == 0 {
        15
    } else {
        0
    };
    let code = (prefix << suffix_len) + suffix + first + escape;
    // |levelVal|: (code + 2) / 2 for even codes, (code + 1) / 2 for odd.
    let magnitude = (code >> 1) + 1;
    let suffix_len = if suffix_len == 0 { 1 } else { suffix_len };
    suffix_len + ((magnitude > (3 << (suffix_len - 1))) & (suffix_len < 6)) as u32
}

/// The run_before table (of [`RUN_BEFORE`], [`RUN_BEFORE_LOOKUP`]) for `zeros_left` > 0.
const fn run_table(zeros_left: u8) -> usize {
    (if zeros_left < 7 { zeros_left } else { 7 }) as usize - 1
}

/// `residual_block_cavlc()` code by code, right after a refill (see [`Walk::block`]):
/// returns TotalCoeff.
#[inline(never)]
fn block_by_codes(bits: &mut Bits<'_>, class: usize, max_coeff: u8) -> Result<u8, SliceError> {
    let (total, ones) = coeff_token(bits, class)?;
    if total > max_coeff {
        return Err(bad("coeff_token"));
    }
    if total == 0 {
        return Ok(0);
    }
    let mut b = *bits;
    // The trailing ones' sign flags were read with coeff_token.
    let (mut suffix_len, mut first) = levels_start(total, ones);
    for _ in ones..total {
        // level_prefix: leading zeros, then a one (at most 15 zeros in these profiles),
        // and level_suffix after it: at most 28 bits, one peek.
        let peek = b.peek32();
        let prefix = peek.leading_zeros();
        if prefix > 15 {
            return Err(bad("level_prefix"));
        }
        let suffix_size = level_suffix_size(prefix, suffix_len);
        let suffix = ((u64::from(peek << (prefix + 1)) << suffix_size) >> 32) as u32;
        b.consume(prefix + 1 + suffix_size);
        suffix_len = next_suffix_len(prefix, suffix, suffix_len, first);
        first = 0;
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
    // run_before: up to three codes per lookup (RUNS), one at a time where a code is long.
    let mut runs_left = total - 1;
    while runs_left > 0 && zeros_left > 0 {
        let entry = RUNS[usize::from(zeros_left) - 1][(b.peek32() >> 24) as usize];
        let codes = (entry & 3) as u8;
        if codes == 0 {
            let table = &RUN_BEFORE_LOOKUP[run_table(zeros_left)];
            let run = b.vlc(table, "run_before")? as u8;
            if run > zeros_left {
                return Err(bad("run_before"));
            }
            zeros_left -= run;
            runs_left -= 1;
            continue;
        }
        let taken = codes.min(runs_left);
        let after = (entry >> (2 + 8 * (u32::from(taken) - 1))) & 0xff;
        b.consume(after & 15);
        zeros_left = (after >> 4) as u8;
        runs_left -= taken;
    }
    *bits = b;
    Ok(total)
}

/// For each zeros_left (1..=15, row `zeros_left - 1`) and the next 8 bits: up to three
/// run_before codes read one after the other while zeros_left stays above 0 and each code
/// fits in the 8 bits — their number in bits 0–1 and, for the k-th, at bit `2 + 8 (k - 1)`:
/// the bits read so far (low nibble) and zeros_left after it (high nibble). 0 codes where
/// the first does not fit or is not valid (the walk reads it alone and finds the error).
const fn runs_lookup() -> [[u32; 256]; 15] {
    let mut out = [[0u32; 256]; 15];
    let mut row = 0;
    while row < 15 {
        let mut window = 0u32;
        while window < 256 {
            // The 8 bits at the top of a BLOCK_BITS-bit window, for value_at.
            let w = window << (BLOCK_BITS - 8);
            let mut zeros_left = row as u8 + 1;
            let (mut pos, mut codes, mut entry) = (0u32, 0u32, 0u32);
            while codes < 3 && zeros_left > 0 {
                let table = RUN_BEFORE[run_table(zeros_left)];
                let Some((len, run)) = value_at(table, w, pos) else {
                    break;
                };
                if run > zeros_left || pos + len > 8 {
                    break;
                }
                zeros_left -= run;
                pos += len;
                entry |= (pos | (zeros_left as u32) << 4) << (2 + 8 * codes);
                codes += 1;
            }
            out[row][window as usize] = entry | codes;
            window += 1;
        }
        row += 1;
    }
    out
}

static RUNS: [[u32; 256]; 15] = runs_lookup();

/// coeff_token of table `class` (§9.2.1) and the trailing ones' sign flags after it, right
/// after a refill: (TotalCoeff, TrailingOnes).
#[inline(always)]
fn coeff_token(b: &mut Bits<'_>, class: usize) -> Result<(u8, u8), SliceError> {
    let entry = COEFF_TOKEN_LOOKUP[class].entry((b.cache >> 32) as u32);
    if entry == 0 {
        return Err(bad("coeff_token"));
    }
    b.consume(u32::from(entry >> LEN_SHIFT));
    let v = entry & VALUE_MASK;
    Ok(((v >> 2) as u8, (v & 3) as u8))
}

/// Bits the whole-block lookup ([`WHOLE_BLOCKS`]) reads.
const BLOCK_BITS: u32 = 12;

/// Whether code `code` of `len` bits starts at bit `pos` of a [`BLOCK_BITS`]-bit window.
const fn code_fits(window: u32, pos: u32, code: u16, len: u8) -> bool {
    let len = len as u32;
    pos + len <= BLOCK_BITS
        && (window >> (BLOCK_BITS - pos - len)) & ((1 << len) - 1) == code as u32
}

/// The coeff_token of table `class` (as [`COEFF_TOKEN_LOOKUP`]) at bit `pos` of `window`:
/// (length, TotalCoeff, TrailingOnes).
const fn token_at(class: usize, window: u32, pos: u32) -> Option<(u32, u8, u8)> {
    if class == 4 {
        if pos + 6 > BLOCK_BITS {
            return None;
        }
        let code = ((window >> (BLOCK_BITS - pos - 6)) & 63) as u16;
        return match coeff_token_nc8(code) {
            Some((total, ones)) => Some((6, total, ones)),
            None => None,
        };
    }
    let codes: &[(u16, u8, u8, u8)] = match class {
        0 => &COEFF_TOKEN_CHROMA_DC,
        1 => &COEFF_TOKEN_NC0,
        2 => &COEFF_TOKEN_NC2,
        _ => &COEFF_TOKEN_NC4,
    };
    let mut i = 0;
    while i < codes.len() {
        let (code, len, total, ones) = codes[i];
        if code_fits(window, pos, code, len) {
            return Some((len as u32, total, ones));
        }
        i += 1;
    }
    None
}

/// The code of a total_zeros or run_before list at bit `pos` of `window`: (length, value).
const fn value_at(codes: &[(u16, u8, u8)], window: u32, pos: u32) -> Option<(u32, u8)> {
    let mut i = 0;
    while i < codes.len() {
        let (code, len, value) = codes[i];
        if code_fits(window, pos, code, len) {
            return Some((len as u32, value));
        }
        i += 1;
    }
    None
}

/// A whole `residual_block_cavlc()` of coeff_token table `class` and at most `max_coeff`
/// coefficients, read as the walk reads it (every check included) from the start of a
/// [`BLOCK_BITS`]-bit `window`: its length `<< 5 |` TotalCoeff, or 0 when it does not end
/// within the window or is not valid (the walk then reads it code by code).
const fn whole_block(class: usize, max_coeff: u8, window: u32) -> u16 {
    let Some((mut pos, total, ones)) = token_at(class, window, 0) else {
        return 0;
    };
    if total > max_coeff {
        return 0;
    }
    pos += ones as u32;
    let (mut suffix_len, mut first) = levels_start(total, ones);
    let mut i = ones;
    while i < total {
        let mut prefix = 0;
        while pos + prefix < BLOCK_BITS && (window >> (BLOCK_BITS - 1 - pos - prefix)) & 1 == 0 {
            prefix += 1;
        }
        if pos + prefix >= BLOCK_BITS {
            return 0;
        }
        let suffix_size = level_suffix_size(prefix, suffix_len);
        let after = pos + prefix + 1;
        if after + suffix_size > BLOCK_BITS {
            return 0;
        }
        let suffix = (window >> (BLOCK_BITS - after - suffix_size)) & ((1 << suffix_size) - 1);
        pos = after + suffix_size;
        suffix_len = next_suffix_len(prefix, suffix, suffix_len, first);
        first = 0;
        i += 1;
    }
    if total > 0 && total < max_coeff {
        let tz_codes = if max_coeff == 4 {
            TOTAL_ZEROS_CHROMA_DC[total as usize - 1]
        } else {
            TOTAL_ZEROS_4X4[total as usize - 1]
        };
        let Some((len, tz)) = value_at(tz_codes, window, pos) else {
            return 0;
        };
        if tz > max_coeff - total {
            return 0;
        }
        pos += len;
        let mut zeros_left = tz;
        let mut i = 1;
        while i < total && zeros_left > 0 {
            let table = RUN_BEFORE[run_table(zeros_left)];
            let Some((len, run)) = value_at(table, window, pos) else {
                return 0;
            };
            if run > zeros_left {
                return 0;
            }
            zeros_left -= run;
            pos += len;
            i += 1;
        }
    }
    ((pos << 5) | total as u32) as u16
}

/// [`whole_block`] for every window of each coeff_token table: chroma DC (at most 4
/// coefficients), the four tables of 4x4 blocks of 16 and, at 4 + the table's number, the
/// same of blocks of 15 (Intra 16x16 AC and chroma AC).
const fn whole_blocks() -> [[u16; 1 << BLOCK_BITS]; 9] {
    let mut out = [[0u16; 1 << BLOCK_BITS]; 9];
    let mut table = 0;
    while table < 9 {
        let (class, max_coeff) = match table {
            0 => (0, 4),
            1..=4 => (table, 16),
            _ => (table - 4, 15),
        };
        let mut window = 0;
        while window < 1 << BLOCK_BITS {
            out[table][window as usize] = whole_block(class, max_coeff, window);
            window += 1;
        }
        table += 1;
    }
    out
}

static WHOLE_BLOCKS: [[u16; 1 << BLOCK_BITS]; 9] = whole_blocks();

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
        for (index, (codes, lookup)) in tables().into_iter().enumerate() {
            // The first five are coeff_token's: their length takes in the TrailingOnes
            // sign bits after the code.
            let then = |value: u16| if index < 5 { value & 3 } else { 0 };
            for &(code, len, value) in &codes {
                for _ in 0..64 {
                    let after = random() >> len;
                    let peek = (u32::from(code) << (32 - u32::from(len))) | after;
                    let entry = lookup.entry(peek);
                    assert_eq!(
                        (entry >> LEN_SHIFT, entry & VALUE_MASK),
                        (u16::from(len) + then(value), value),
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
                    let len = u32::from((entry >> LEN_SHIFT) - then(entry & VALUE_MASK));
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

    /// The whole-block lookup reads exactly what reading code by code reads: for every
    /// window of every table, with any bits after it, the same length and TotalCoeff, and
    /// a window it has no entry for holds no valid block that ends within it.
    #[test]
    fn whole_block_lookup_reads_what_the_codes_read() {
        let mut random = super::super::xorshift(0x0ddb_a11c_0ffe_e123);
        let (mut looked_up, mut by_codes) = (0, 0);
        for (table, entries) in WHOLE_BLOCKS.iter().enumerate() {
            let (class, max_coeff) = match table {
                0 => (0, 4),
                1..=4 => (table, 16),
                _ => (table - 4, 15),
            };
            for window in 0..1u64 << BLOCK_BITS {
                for _ in 0..4 {
                    let word = (window << (64 - BLOCK_BITS)) | (random() >> BLOCK_BITS);
                    let mut data = word.to_be_bytes().to_vec();
                    data.extend(random().to_be_bytes());
                    data.extend([0; PADDING]);
                    let mut b = Bits::new(&data, 0, None);
                    b.refill();
                    let read = block_by_codes(&mut b, class, max_coeff).map(|t| (b.position(), t));
                    let entry = entries[window as usize];
                    if entry != 0 {
                        looked_up += 1;
                        assert_eq!(
                            read,
                            Ok((usize::from(entry >> 5), (entry & 31) as u8)),
                            "class {class}, window {window:012b}"
                        );
                    } else if let Ok((len, _)) = read {
                        by_codes += 1;
                        assert!(
                            len > BLOCK_BITS as usize,
                            "class {class}, window {window:012b}: a block of {len} bits missed"
                        );
                    }
                }
            }
        }
        assert!(
            looked_up > 10_000 && by_codes > 1_000,
            "{looked_up} {by_codes}"
        );
    }

    /// The run_before lookup reads what reading one code at a time reads: for every
    /// zeros_left and every 8 bits, each of its codes in turn (length and zeros_left after),
    /// and it stops only where the next code is longer than the bits left, not valid, or
    /// not needed.
    #[test]
    fn run_lookup_reads_what_the_codes_read() {
        let mut random = super::super::xorshift(0x005e_ed0f_0123);
        for (row, entries) in RUNS.iter().enumerate() {
            for (window, &entry) in entries.iter().enumerate() {
                let word = ((window as u64) << 56) | (random() >> 8);
                let mut data = word.to_be_bytes().to_vec();
                data.extend([0; PADDING]);
                let mut b = Bits::new(&data, 0, None);
                let mut zeros_left = row as u8 + 1;
                let codes = entry & 3;
                for k in 0..codes {
                    let table = &RUN_BEFORE_LOOKUP[run_table(zeros_left)];
                    let run = b.vlc(table, "run_before").map(|v| v as u8);
                    let Ok(run) = run else {
                        panic!("row {row}, window {window:08b}: code {k} not valid");
                    };
                    assert!(run <= zeros_left, "row {row}, window {window:08b}");
                    zeros_left -= run;
                    let slot = (entry >> (2 + 8 * k)) & 0xff;
                    assert_eq!(
                        (b.position() as u32, u32::from(zeros_left)),
                        (slot & 15, slot >> 4),
                        "row {row}, window {window:08b}, code {k}"
                    );
                }
                if codes < 3 && zeros_left > 0 {
                    let before = b.position();
                    let table = &RUN_BEFORE_LOOKUP[run_table(zeros_left)];
                    if let Ok(run) = b.vlc(table, "run_before") {
                        assert!(
                            run as u8 > zeros_left || b.position() > 8,
                            "row {row}, window {window:08b}: stopped before a code at {before}"
                        );
                    }
                }
            }
        }
    }
}
