//! One P picture's slice data (ITU-T H.264 §7.3.4, CAVLC, one slice): every macroblock is a
//! copy of the reference picture — `P_Skip` when the copy is the one a decoder infers,
//! otherwise `P_L0_16x16` with its motion vector difference and no residual — or an Intra
//! 16x16 patch. The writer reconstructs the picture exactly as a decoder does (§8.3.3,
//! §8.3.4, §8.4.1, §8.4.2.2, §8.5), with the deblocking filter off in the slice header.

use tsuitate_protocol::h264::cavlc_tables::{CBP_INTER, CBP_INTRA};
use tsuitate_protocol::h264::BitWriter;

use super::cavlc::residual_block;
use super::transform::{
    chroma_dc_dequant, chroma_dc_quant, chroma_qp, dequant, forward, inverse, luma_dc_dequant,
    luma_dc_quant, quant, quant_inter, satd4x4, ZIGZAG,
};
use crate::convert::I420;

/// What the writer does with one macroblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Copy the reference picture's content shifted by (dx, dy) whole pixels: the macroblock
    /// shows what was at (x + dx, y + dy) before. (0, 0) for an unchanged macroblock.
    Copy(i32, i32),
    /// Code the captured content (Intra 16x16 with residual).
    Intra,
}

/// Slice-wide coding values.
#[derive(Debug, Clone, Copy)]
pub struct Coding {
    /// Luma QP of every macroblock.
    pub qp: i32,
    /// The PPS's `chroma_qp_index_offset`.
    pub chroma_qp_offset: i32,
    /// The PPS's `constrained_intra_pred_flag`.
    pub constrained_intra: bool,
}

/// How the macroblocks of a picture were written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// `P_Skip` macroblocks.
    pub skipped: u32,
    /// Copies with a coded motion vector.
    pub moved: u32,
    /// Intra-coded macroblocks.
    pub intra: u32,
    /// Copies with a residual (a shifted or unchanged prediction, corrected).
    pub residual: u32,
}

/// Non-zero coefficient counts of a macroblock's 4x4 blocks (row-major), for nC.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    luma: [u8; 16],
    chroma: [[u8; 4]; 2],
}

/// An inter prediction of a macroblock: luma and both chroma blocks.
type Prediction = ([u8; 256], [[u8; 64]; 2]);

/// What later macroblocks need of one. The default is a `P_Skip` with vector (0, 0).
#[derive(Debug, Clone, Copy, Default)]
struct MbRec {
    intra: bool,
    /// Intra 4x4 prediction modes (row-major by block position) of an Intra 4x4 macroblock.
    modes: Option<[u8; 16]>,
    /// Motion vector in quarter samples (inter macroblocks).
    mv: (i32, i32),
    counts: Counts,
}

/// The inputs of one picture: this capture and the last one sent (both at the coded size).
#[derive(Debug, Clone, Copy)]
pub struct Pictures<'a> {
    /// The capture to code.
    pub src: &'a I420,
    /// The capture the reference shows.
    pub prev: &'a I420,
}

/// Whether the macroblock at (`mbx`, `mby`) of `src` equals `prev` shifted by (dx, dy), the
/// shifted block inside the picture: luma exactly, and chroma exactly for an even shift. An odd
/// shift puts chroma half a sample off (§8.4.2.2.2); the writer adds a chroma residual there.
pub fn copy_matches(p: Pictures<'_>, mbx: usize, mby: usize, (dx, dy): (i32, i32)) -> bool {
    let (w, h) = (usize::from(p.src.width), usize::from(p.src.height));
    let (x0, y0) = (mbx * 16, mby * 16);
    let (sx, sy) = (x0 as i64 + i64::from(dx), y0 as i64 + i64::from(dy));
    if sx < 0 || sy < 0 || sx as usize + 16 > w || sy as usize + 16 > h {
        return false;
    }
    let (sx, sy) = (sx as usize, sy as usize);
    let luma = (0..16).all(|r| {
        row_eq::<16>(
            &p.src.y[(y0 + r) * w + x0..],
            &p.prev.y[(sy + r) * w + sx..],
        )
    });
    if !luma || dx % 2 != 0 || dy % 2 != 0 {
        return luma;
    }
    let cw = w / 2;
    let (cx, cy, csx, csy) = (x0 / 2, y0 / 2, sx / 2, sy / 2);
    [(&p.src.u, &p.prev.u), (&p.src.v, &p.prev.v)]
        .iter()
        .all(|(s, r)| {
            (0..8).all(|j| row_eq::<8>(&s[(cy + j) * cw + cx..], &r[(csy + j) * cw + csx..]))
        })
}

/// The `W`-wide block of `N` samples at (`x0`, `y0`) of a plane `stride` samples wide, row by
/// row.
fn block<const N: usize, const W: usize>(
    plane: &[u8],
    stride: usize,
    x0: usize,
    y0: usize,
) -> [i32; N] {
    let mut out = [0i32; N];
    for (j, row) in out.chunks_exact_mut(W).enumerate() {
        let from = &plane[(y0 + j) * stride + x0..][..W];
        for (o, s) in row.iter_mut().zip(from) {
            *o = i32::from(*s);
        }
    }
    out
}

/// Copy `count` macroblocks side by side, from the samples of `src` at luma position (`sx`,
/// `sy`) (even: chroma at half), into `dst` at macroblock (`mbx`, `mby`); both pictures of one
/// size, the area inside both.
fn copy_macroblocks(
    dst: &mut I420,
    src: &I420,
    (mbx, mby): (usize, usize),
    count: usize,
    (sx, sy): (usize, usize),
) {
    let w = usize::from(dst.width);
    let n = count * 16;
    for j in 0..16 {
        dst.y[(mby * 16 + j) * w + mbx * 16..][..n]
            .copy_from_slice(&src.y[(sy + j) * w + sx..][..n]);
    }
    let cw = w / 2;
    for (d, s) in [(&mut dst.u, &src.u), (&mut dst.v, &src.v)] {
        for j in 0..8 {
            d[(mby * 8 + j) * cw + mbx * 8..][..n / 2]
                .copy_from_slice(&s[(sy / 2 + j) * cw + sx / 2..][..n / 2]);
        }
    }
}

/// Whether the first `N` samples of `a` and `b` are equal (false if either is shorter):
/// compared as arrays of a size known here, in one or two loads each, not as slices (a call
/// per row, which was most of the time a scroll's macroblock checks took).
#[inline(always)]
pub fn row_eq<const N: usize>(a: &[u8], b: &[u8]) -> bool {
    match (a.first_chunk::<N>(), b.first_chunk::<N>()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// A chroma macroblock (8x8) predicted with motion vector `mv` (quarter luma samples, i.e.
/// eighth chroma samples) from `plane` (§8.4.2.2.2, samples outside the picture clamped).
fn chroma_mc(
    plane: &[u8],
    cw: usize,
    ch: usize,
    mbx: usize,
    mby: usize,
    mv: (i32, i32),
) -> [u8; 64] {
    let (fx, fy) = (mv.0 & 7, mv.1 & 7);
    let x0 = (mbx * 8) as i64 + i64::from(mv.0 >> 3);
    let y0 = (mby * 8) as i64 + i64::from(mv.1 >> 3);
    let mut out = [0u8; 64];
    // Whole samples inside the picture: a copy.
    if fx == 0 && fy == 0 && x0 >= 0 && y0 >= 0 && x0 + 8 <= cw as i64 && y0 + 8 <= ch as i64 {
        let (x0, y0) = (x0 as usize, y0 as usize);
        for j in 0..8 {
            out[j * 8..][..8].copy_from_slice(&plane[(y0 + j) * cw + x0..][..8]);
        }
        return out;
    }
    let (a, b, c, d) = ((8 - fx) * (8 - fy), fx * (8 - fy), (8 - fx) * fy, fx * fy);
    // The block and the samples right of and below it inside the picture (a scroll's usual
    // case): no edge to repeat.
    if x0 >= 0 && y0 >= 0 && x0 + 9 <= cw as i64 && y0 + 9 <= ch as i64 {
        let (x0, y0) = (x0 as usize, y0 as usize);
        for j in 0..8 {
            let r0 = &plane[(y0 + j) * cw + x0..][..9];
            let r1 = &plane[(y0 + j + 1) * cw + x0..][..9];
            for i in 0..8 {
                let v = a * i32::from(r0[i])
                    + b * i32::from(r0[i + 1])
                    + c * i32::from(r1[i])
                    + d * i32::from(r1[i + 1]);
                out[j * 8 + i] = ((v + 32) >> 6) as u8;
            }
        }
        return out;
    }
    let at = |x: i64, y: i64| -> i32 {
        let x = x.clamp(0, cw as i64 - 1) as usize;
        let y = y.clamp(0, ch as i64 - 1) as usize;
        i32::from(plane[y * cw + x])
    };
    for j in 0..8 {
        for i in 0..8 {
            let (xi, yi) = (x0 + i as i64, y0 + j as i64);
            let v = (a * at(xi, yi)
                + b * at(xi + 1, yi)
                + c * at(xi, yi + 1)
                + d * at(xi + 1, yi + 1)
                + 32)
                >> 6;
            out[j * 8 + i] = v as u8;
        }
    }
    out
}

impl MbRec {
    /// An inter macroblock with vector (0, 0) (reference index 0): the neighbour that makes a
    /// `P_Skip` vector (0, 0).
    fn still(&self) -> bool {
        !self.intra && self.mv == (0, 0)
    }
}

fn median(a: i32, b: i32, c: i32) -> i32 {
    a.max(b).min(a.min(b).max(c))
}

/// Position (column, row) of 4x4 luma block `idx` in the macroblock's 4x4 grid (§6.4.3).
fn luma_block_pos(idx: usize) -> (usize, usize) {
    ((idx / 4 % 2) * 2 + idx % 2, (idx / 4 / 2) * 2 + idx % 4 / 2)
}

fn nc(a: Option<u8>, b: Option<u8>) -> i32 {
    match (a, b) {
        (Some(a), Some(b)) => (i32::from(a) + i32::from(b) + 1) >> 1,
        (Some(n), None) | (None, Some(n)) => i32::from(n),
        (None, None) => 0,
    }
}

/// Writes the slice data of one P picture and builds the decoder's picture of it.
pub struct PictureWriter<'a> {
    p: Pictures<'a>,
    /// The reference picture exactly as decoders hold it; `None` when `out` is the reference
    /// itself, updated in place (only for pictures without motion).
    reference: Option<&'a I420>,
    out: &'a mut I420,
    coding: Coding,
    w_mbs: usize,
    recs: Vec<MbRec>,
}

impl<'a> PictureWriter<'a> {
    /// A writer of pictures the size of `p.src` (multiples of 16) into `out` (same size),
    /// predicting from `reference`, or from `out` itself when `reference` is `None` (then no
    /// macroblock may be planned with a motion vector other than (0, 0)).
    pub fn new(
        p: Pictures<'a>,
        reference: Option<&'a I420>,
        out: &'a mut I420,
        coding: Coding,
    ) -> Self {
        let w_mbs = usize::from(p.src.width) / 16;
        let mbs = w_mbs * (usize::from(p.src.height) / 16);
        PictureWriter {
            p,
            reference,
            out,
            coding,
            w_mbs,
            recs: vec![MbRec::default(); mbs],
        }
    }

    /// Write `slice_data()` for `plans` (one per macroblock, raster order), ending with the
    /// last skip run; the caller adds the trailing bits. `shifts` are the picture's scroll
    /// vectors (whole pixels), tried as predictions for the macroblocks to code.
    pub fn write(mut self, w: &mut BitWriter, plans: &[Plan], shifts: &[(i32, i32)]) -> Written {
        self.copy_still(plans);
        let mut done = Written::default();
        let mut run = 0u32;
        for (idx, plan) in plans.iter().enumerate().take(self.recs.len()) {
            let (mbx, mby) = (idx % self.w_mbs, idx / self.w_mbs);
            // The common case first: an unchanged macroblock next to (or on the edge beside)
            // another still copy is a `P_Skip` with vector (0, 0) (§8.4.1.1), and its record is
            // the default one already.
            if *plan == Plan::Copy(0, 0)
                && (mbx == 0
                    || mby == 0
                    || self.recs[idx - 1].still()
                    || self.recs[idx - self.w_mbs].still())
            {
                run += 1;
                done.skipped += 1;
                continue;
            }
            match *plan {
                Plan::Copy(dx, dy) => {
                    let want = (4 * dx, 4 * dy);
                    let skip = self.skip_mv(mbx, mby);
                    let mv = if skip == want
                        || copy_matches(self.p, mbx, mby, (skip.0 / 4, skip.1 / 4))
                    {
                        skip
                    } else {
                        want
                    };
                    self.motion_copy(mbx, mby, mv);
                    // An odd shift puts chroma half a sample off: correct it with a residual.
                    let odd = (mv.0 / 4) % 2 != 0 || (mv.1 / 4) % 2 != 0;
                    let residual = odd
                        .then(|| self.chroma_residual(mbx, mby))
                        .filter(|r| r.cbp > 0);
                    let mut counts = Counts::default();
                    match residual {
                        None if mv == skip => {
                            run += 1;
                            done.skipped += 1;
                        }
                        residual => {
                            let mvp = self.mvp(mbx, mby);
                            w.ue(run);
                            run = 0;
                            w.ue(0); // P_L0_16x16; one reference: no ref_idx
                            w.se(i64::from(mv.0 - mvp.0));
                            w.se(i64::from(mv.1 - mvp.1));
                            let cbp = residual.as_ref().map_or(0, |r| r.cbp);
                            w.ue(inter_cbp_code(cbp << 4));
                            if let Some(r) = residual {
                                w.se(0); // mb_qp_delta
                                let (left, top) = self.neighbour_counts(mbx, mby);
                                r.write(w, &mut counts, left, top);
                                self.add_chroma(mbx, mby, &r);
                            }
                            done.moved += 1;
                        }
                    }
                    self.recs[idx] = MbRec {
                        intra: false,
                        modes: None,
                        mv,
                        counts,
                    };
                }
                Plan::Intra => {
                    w.ue(run);
                    run = 0;
                    let chosen = self.patch(mbx, mby, shifts);
                    if chosen.rec.intra {
                        done.intra += 1;
                    } else {
                        done.residual += 1;
                    }
                    self.recs[idx] = self.commit(w, mbx, mby, chosen);
                }
            }
        }
        if run > 0 {
            w.ue(run);
        }
        done
    }

    /// With a separate reference: copy the macroblocks planned as copies with vector (0, 0)
    /// into `out`, a run of them in a row at a time (the others are all written: moved,
    /// or intra-coded).
    fn copy_still(&mut self, plans: &[Plan]) {
        let Some(r) = self.reference else {
            return;
        };
        for (mby, row) in plans.chunks(self.w_mbs).enumerate() {
            let mut mbx = 0;
            while mbx < row.len() {
                if row[mbx] != Plan::Copy(0, 0) {
                    mbx += 1;
                    continue;
                }
                let end = row[mbx..]
                    .iter()
                    .position(|p| *p != Plan::Copy(0, 0))
                    .map_or(row.len(), |n| mbx + n);
                copy_macroblocks(self.out, r, (mbx, mby), end - mbx, (mbx * 16, mby * 16));
                mbx = end;
            }
        }
    }

    /// Neighbour (column, row) relative to a macroblock, if inside the picture and already
    /// written (one slice, raster order).
    fn neighbour(&self, mbx: usize, mby: usize, dx: i64, dy: i64) -> Option<&MbRec> {
        let x = mbx as i64 + dx;
        let y = mby as i64 + dy;
        if x < 0 || y < 0 || x >= self.w_mbs as i64 || (dy == 0 && dx >= 0) || dy > 0 {
            return None;
        }
        self.recs.get(y as usize * self.w_mbs + x as usize)
    }

    /// Motion data of a neighbour for prediction: `None` if not available, (-1, 0) if intra.
    fn motion(&self, mbx: usize, mby: usize, dx: i64, dy: i64) -> Option<(i32, (i32, i32))> {
        self.neighbour(mbx, mby, dx, dy)
            .map(|r| if r.intra { (-1, (0, 0)) } else { (0, r.mv) })
    }

    /// Motion vector predictor of a 16x16 partition with reference index 0 (§8.4.1.3).
    fn mvp(&self, mbx: usize, mby: usize) -> (i32, i32) {
        let a = self.motion(mbx, mby, -1, 0);
        let mut b = self.motion(mbx, mby, 0, -1);
        let mut c = self
            .motion(mbx, mby, 1, -1)
            .or_else(|| self.motion(mbx, mby, -1, -1));
        if b.is_none() && c.is_none() && a.is_some() {
            b = a;
            c = a;
        }
        let [a, b, c] = [a, b, c].map(|n| n.unwrap_or((-1, (0, 0))));
        match (a.0 == 0, b.0 == 0, c.0 == 0) {
            (true, false, false) => a.1,
            (false, true, false) => b.1,
            (false, false, true) => c.1,
            _ => (
                median(a.1 .0, b.1 .0, c.1 .0),
                median(a.1 .1, b.1 .1, c.1 .1),
            ),
        }
    }

    /// The motion vector a decoder infers for `P_Skip` (§8.4.1.1).
    fn skip_mv(&self, mbx: usize, mby: usize) -> (i32, i32) {
        let (Some(a), Some(b)) = (self.motion(mbx, mby, -1, 0), self.motion(mbx, mby, 0, -1))
        else {
            return (0, 0);
        };
        if a == (0, (0, 0)) || b == (0, (0, 0)) {
            return (0, 0);
        }
        self.mvp(mbx, mby)
    }

    /// Inter prediction with a whole-sample luma vector (§8.4.2.2), written to `out`. Written
    /// in place, a zero vector leaves `out` as it is; with a separate reference it is copied
    /// like any other (the macroblocks planned as such copies are there already:
    /// [`PictureWriter::copy_still`]).
    fn motion_copy(&mut self, mbx: usize, mby: usize, mv: (i32, i32)) {
        if mv == (0, 0) && self.reference.is_none() {
            return;
        }
        let w = usize::from(self.out.width);
        let h = usize::from(self.out.height);
        let sx = (mbx * 16) as i64 + i64::from(mv.0 >> 2);
        let sy = (mby * 16) as i64 + i64::from(mv.1 >> 2);
        let inside = sx >= 0 && sy >= 0 && sx + 16 <= w as i64 && sy + 16 <= h as i64;
        if let (Some(r), true, 0) = (self.reference, inside, (mv.0 | mv.1) & 7) {
            // Whole luma and chroma samples inside the picture (a scroll's usual case): the
            // rows straight from the reference.
            copy_macroblocks(self.out, r, (mbx, mby), 1, (sx as usize, sy as usize));
            return;
        }
        let (luma, chroma) = self.mc(mbx, mby, mv);
        for j in 0..16 {
            self.out.y[(mby * 16 + j) * w + mbx * 16..][..16]
                .copy_from_slice(&luma[j * 16..][..16]);
        }
        let cw = w / 2;
        for (c, dst) in [&mut self.out.u, &mut self.out.v].into_iter().enumerate() {
            for j in 0..8 {
                dst[(mby * 8 + j) * cw + mbx * 8..][..8].copy_from_slice(&chroma[c][j * 8..][..8]);
            }
        }
    }

    /// Inter prediction of a macroblock with a whole-sample luma vector (§8.4.2.2): luma and
    /// both chroma blocks. Written in place, the picture is its own reference, which holds for
    /// (0, 0) only (this macroblock not written yet).
    fn mc(&self, mbx: usize, mby: usize, mv: (i32, i32)) -> Prediction {
        (self.mc_luma(mbx, mby, mv), self.mc_chroma(mbx, mby, mv))
    }

    /// The picture copies and motion vectors predict from: the reference, or (when the
    /// picture is written in place, without motion) the picture itself.
    fn source(&self, mv: (i32, i32)) -> &I420 {
        match self.reference {
            Some(r) => r,
            None => {
                debug_assert!(
                    mv == (0, 0),
                    "a motion vector in a picture written in place"
                );
                &*self.out
            }
        }
    }

    /// The luma part of [`PictureWriter::mc`].
    fn mc_luma(&self, mbx: usize, mby: usize, mv: (i32, i32)) -> [u8; 256] {
        let r = self.source(mv);
        let (w, h) = (usize::from(r.width), usize::from(r.height));
        let sx = (mbx * 16) as i64 + i64::from(mv.0 >> 2);
        let sy = (mby * 16) as i64 + i64::from(mv.1 >> 2);
        let mut luma = [0u8; 256];
        if sx >= 0 && sy >= 0 && sx + 16 <= w as i64 && sy + 16 <= h as i64 {
            let (sx, sy) = (sx as usize, sy as usize);
            for j in 0..16 {
                luma[j * 16..][..16].copy_from_slice(&r.y[(sy + j) * w + sx..][..16]);
            }
        } else {
            for j in 0..16i64 {
                let y = (sy + j).clamp(0, h as i64 - 1) as usize;
                for i in 0..16i64 {
                    let x = (sx + i).clamp(0, w as i64 - 1) as usize;
                    luma[(j * 16 + i) as usize] = r.y[y * w + x];
                }
            }
        }
        luma
    }

    /// The chroma part of [`PictureWriter::mc`].
    fn mc_chroma(&self, mbx: usize, mby: usize, mv: (i32, i32)) -> [[u8; 64]; 2] {
        let r = self.source(mv);
        let (cw, ch) = (usize::from(r.width) / 2, usize::from(r.height) / 2);
        [
            chroma_mc(&r.u, cw, ch, mbx, mby, mv),
            chroma_mc(&r.v, cw, ch, mbx, mby, mv),
        ]
    }

    /// The captured luma of a macroblock.
    fn luma_source(&self, mbx: usize, mby: usize) -> [i32; 256] {
        let width = usize::from(self.p.src.width);
        block::<256, 16>(&self.p.src.y, width, mbx * 16, mby * 16)
    }

    /// A macroblock the plan intra-codes (a patch): the best copy with a residual, Intra
    /// 16x16 or Intra 4x4. A copy that is close already (a few levels per sample) is taken as
    /// it is. Otherwise the three are ranked by an estimate (SATD and header bits,
    /// [`Estimates`]); only those within [`MARGIN_PERCENT`] of the cheapest (with 0: the
    /// cheapest and any tied with it) are written in full, and the one written in the fewest
    /// bits is kept — one coding written instead of three (docs/agent.md).
    fn patch(&self, mbx: usize, mby: usize, shifts: &[(i32, i32)]) -> Candidate {
        let src = self.luma_source(mbx, mby);
        let inter = self.inter_prediction(mbx, mby, shifts, &src);
        if let Some((sad, mv, prediction)) = &inter {
            if *sad <= CLOSE_SAD {
                return self.inter(mbx, mby, &src, *mv, prediction);
            }
        }
        let preds = self.intra_predictions(mbx, mby, &src);
        let e = self.estimates(
            mbx,
            mby,
            &src,
            inter.as_ref().map(|(_, mv, p)| (*mv, p)),
            &preds,
        );
        let cheapest = [e.inter, Some(e.intra16), Some(e.intra4)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(0);
        let worth = |cost: i64| cost * 100 <= cheapest * (100 + MARGIN_PERCENT);
        let inter = inter
            .filter(|_| e.inter.is_some_and(worth))
            .map(|(_, mv, prediction)| self.inter(mbx, mby, &src, mv, &prediction));
        let intra = (worth(e.intra16) || worth(e.intra4))
            .then(|| self.intra(mbx, mby, &src, &preds, worth(e.intra16), worth(e.intra4)));
        match (inter, intra) {
            (Some(inter), Some(intra)) if intra.bits.len_bits() <= inter.bits.len_bits() => intra,
            (Some(inter), _) => inter,
            (None, Some(intra)) => intra,
            // Unreachable: the cheapest estimate is always worth writing.
            (None, None) => self.intra(mbx, mby, &src, &preds, true, true),
        }
    }

    /// Of (0, 0) and the picture's shifts, the vector whose prediction is closest to the
    /// capture `src` (luma SAD): (that SAD, the vector, its prediction). `None` when no
    /// vector can be used.
    fn inter_prediction(
        &self,
        mbx: usize,
        mby: usize,
        shifts: &[(i32, i32)],
        src: &[i32; 256],
    ) -> Option<(i64, (i32, i32), Prediction)> {
        let vectors = std::iter::once((0, 0))
            .chain(shifts.iter().map(|(dx, dy)| (4 * dx, 4 * dy)))
            .filter(|mv| *mv == (0, 0) || self.reference.is_some());
        // Vectors are compared by luma; the best one's luma is kept, not made again, and only
        // its chroma is made.
        let mut best: Option<(i64, (i32, i32), [u8; 256])> = None;
        for mv in vectors {
            let luma = self.mc_luma(mbx, mby, mv);
            let cost = sad(&luma, src);
            if best.as_ref().is_none_or(|b| cost < b.0) {
                best = Some((cost, mv, luma));
            }
        }
        best.map(|(cost, mv, luma)| (cost, mv, (luma, self.mc_chroma(mbx, mby, mv))))
    }

    /// A copy with vector `mv` and prediction `(pred, cpred)`, coded as `P_L0_16x16` with
    /// its residual.
    fn inter(
        &self,
        mbx: usize,
        mby: usize,
        src: &[i32; 256],
        mv: (i32, i32),
        (pred, cpred): &Prediction,
    ) -> Candidate {
        let (pred, cpred) = (*pred, *cpred);
        let qp = self.coding.qp;
        let mut levels = [[0i32; 16]; 16]; // by block position (row-major)
        let mut luma = [0u8; 256];
        for (b, block) in levels.iter_mut().enumerate() {
            let (bx, by) = (b % 4, b / 4);
            let at = |k: usize| (by * 4 + k / 4) * 16 + bx * 4 + k % 4;
            let diff: [i32; 16] = std::array::from_fn(|k| src[at(k)] - i32::from(pred[at(k)]));
            *block = quant_inter(&forward(&diff), qp);
            let r = inverse(&dequant(block, qp));
            for (k, v) in r.iter().enumerate() {
                luma[at(k)] = (i32::from(pred[at(k)]) + v).clamp(0, 255) as u8;
            }
        }
        let mut cbp = 0u32;
        for b8 in 0..4 {
            if (0..4).any(|k| {
                let (bx, by) = luma_block_pos(b8 * 4 + k);
                levels[by * 4 + bx].iter().any(|v| *v != 0)
            }) {
                cbp |= 1 << b8;
            }
        }
        let cqp = chroma_qp(qp, self.coding.chroma_qp_offset);
        let chroma = ChromaResidual::new(&cpred, &self.chroma_source(mbx, mby), cqp);
        let (left, top) = self.neighbour_counts(mbx, mby);
        let mvp = self.mvp(mbx, mby);
        let mut bits = BitWriter::new();
        let mut counts = Counts::default();
        bits.ue(0); // P_L0_16x16; one reference: no ref_idx
        bits.se(i64::from(mv.0 - mvp.0));
        bits.se(i64::from(mv.1 - mvp.1));
        let all = cbp | (chroma.cbp << 4);
        bits.ue(inter_cbp_code(all));
        if all > 0 {
            bits.se(0); // mb_qp_delta
            write_luma_4x4(&mut bits, &mut counts, &levels, cbp, left, top);
            chroma.write(&mut bits, &mut counts, left, top);
        }
        Candidate {
            bits,
            counts,
            luma,
            chroma_pred: cpred,
            chroma,
            rec: MbRec {
                intra: false,
                modes: None,
                mv,
                counts,
            },
        }
    }

    /// The intra predictions of a macroblock with luma `src`: chroma's and Intra 16x16's,
    /// the cheapest available of each (made once for the estimates and the coding).
    fn intra_predictions(&self, mbx: usize, mby: usize, src: &[i32; 256]) -> IntraPredictions {
        let width = usize::from(self.p.src.width);
        let left = self.intra_neighbour(mbx, mby, -1, 0);
        let top = self.intra_neighbour(mbx, mby, 0, -1);
        IntraPredictions {
            chroma: self.intra_chroma(mbx, mby, left, top),
            luma16: best(
                predictions(&self.out.y, width, mbx * 16, mby * 16, 16, left, top),
                src,
            ),
        }
    }

    /// Estimated costs of the codings of a patch (see [`Estimates`]); `inter` the best
    /// copy's vector and prediction, if any.
    fn estimates(
        &self,
        mbx: usize,
        mby: usize,
        src: &[i32; 256],
        inter: Option<((i32, i32), &Prediction)>,
        preds: &IntraPredictions,
    ) -> Estimates {
        let lambda = lambda(self.coding.qp);
        let (x0, y0) = (mbx * 16, mby * 16);
        let left = self.intra_neighbour(mbx, mby, -1, 0);
        let top = self.intra_neighbour(mbx, mby, 0, -1);
        let csrc = self.chroma_source(mbx, mby);
        let chroma_cost = |cpred: &[[u8; 64]; 2]| -> i64 {
            (0..2)
                .map(|c| satd_blocks::<64, 8>(&cpred[c], &csrc[c]))
                .sum()
        };
        let inter = inter.map(|(mv, (pred, cpred))| {
            let mvp = self.mvp(mbx, mby);
            let bits = se_bits(mv.0 - mvp.0) + se_bits(mv.1 - mvp.1) + 2;
            satd_blocks::<256, 16>(pred, src) + chroma_cost(cpred) + lambda * bits
        });
        let chroma = chroma_cost(&preds.chroma.1);
        let intra16 = satd_blocks::<256, 16>(&preds.luma16.1, src) + chroma + lambda * 4;
        // Intra 4x4 predicts each block from the decoded samples of the blocks before it;
        // the estimate takes the captured ones (not decoded yet) inside the macroblock.
        let mut intra4 = chroma + lambda * (16 * 2 + 4);
        for idx in 0..16 {
            let (bx, by) = luma_block_pos(idx);
            // The captured samples are 0-255 (`src` holds them widened).
            let e = self.edges4((x0, y0), (bx, by), (left, top), |at| src[at] as u8);
            let (has_top, has_left, dc) = (e.has_top, e.has_left, i32::from(e.dc));
            let (above, side) = (e.above.map(i32::from), e.side.map(i32::from));
            let block: [i32; 16] =
                std::array::from_fn(|k| src[(by * 4 + k / 4) * 16 + bx * 4 + k % 4]);
            let cost =
                |pred: &dyn Fn(usize) -> i32| satd4x4(&std::array::from_fn(|k| block[k] - pred(k)));
            let mut block_cost = cost(&|_| dc);
            if has_top {
                block_cost = block_cost.min(cost(&|k| above[k % 4]));
            }
            if has_left {
                block_cost = block_cost.min(cost(&|k| side[k / 4]));
            }
            intra4 += block_cost;
        }
        Estimates {
            inter,
            intra16,
            intra4,
        }
    }

    /// Write a chosen coding of a macroblock and its decoded samples; its record.
    fn commit(&mut self, w: &mut BitWriter, mbx: usize, mby: usize, c: Candidate) -> MbRec {
        w.append(&c.bits);
        let width = usize::from(self.out.width);
        for j in 0..16 {
            self.out.y[(mby * 16 + j) * width + mbx * 16..][..16]
                .copy_from_slice(&c.luma[j * 16..][..16]);
        }
        let cw = width / 2;
        for (k, plane) in [&mut self.out.u, &mut self.out.v].into_iter().enumerate() {
            for j in 0..8 {
                plane[(mby * 8 + j) * cw + mbx * 8..][..8]
                    .copy_from_slice(&c.chroma_pred[k][j * 8..][..8]);
            }
        }
        self.add_chroma(mbx, mby, &c.chroma);
        MbRec {
            counts: c.counts,
            ..c.rec
        }
    }

    /// Coefficient counts of the left and top neighbours, where they exist.
    fn neighbour_counts(&self, mbx: usize, mby: usize) -> (Option<Counts>, Option<Counts>) {
        (
            self.neighbour(mbx, mby, -1, 0).map(|r| r.counts),
            self.neighbour(mbx, mby, 0, -1).map(|r| r.counts),
        )
    }

    /// The captured chroma of a macroblock.
    fn chroma_source(&self, mbx: usize, mby: usize) -> [[i32; 64]; 2] {
        let cw = usize::from(self.p.src.width) / 2;
        [&self.p.src.u, &self.p.src.v].map(|plane| block::<64, 8>(plane, cw, mbx * 8, mby * 8))
    }

    /// The chroma residual between the capture and the prediction already in `out`.
    fn chroma_residual(&self, mbx: usize, mby: usize) -> ChromaResidual {
        let cw = usize::from(self.p.src.width) / 2;
        let pred = [&self.out.u, &self.out.v]
            .map(|plane| std::array::from_fn(|k| plane[(mby * 8 + k / 8) * cw + mbx * 8 + k % 8]));
        let cqp = chroma_qp(self.coding.qp, self.coding.chroma_qp_offset);
        ChromaResidual::new(&pred, &self.chroma_source(mbx, mby), cqp)
    }

    /// Add a decoded chroma residual to the prediction in `out` (§8.5.11).
    fn add_chroma(&mut self, mbx: usize, mby: usize, r: &ChromaResidual) {
        let cw = usize::from(self.p.src.width) / 2;
        let cqp = chroma_qp(self.coding.qp, self.coding.chroma_qp_offset);
        for (c, plane) in [&mut self.out.u, &mut self.out.v].into_iter().enumerate() {
            let dcc = chroma_dc_dequant(&r.dc[c], cqp);
            for (b, (levels, dc)) in r.ac[c].iter().zip(dcc).enumerate() {
                let (bx, by) = (b % 2, b / 2);
                let mut d = dequant(levels, cqp);
                d[0] = dc;
                let res = inverse(&d);
                for (k, v) in res.iter().enumerate() {
                    let at = (mby * 8 + by * 4 + k / 4) * cw + mbx * 8 + bx * 4 + k % 4;
                    plane[at] = (i32::from(plane[at]) + v).clamp(0, 255) as u8;
                }
            }
        }
    }

    /// Whether a neighbour's samples may be used for intra prediction.
    fn intra_neighbour(&self, mbx: usize, mby: usize, dx: i64, dy: i64) -> bool {
        self.neighbour(mbx, mby, dx, dy)
            .is_some_and(|r| r.intra || !self.coding.constrained_intra)
    }

    /// The chroma prediction of an intra macroblock: one mode for both components, the
    /// same for either luma kind: the mode and the predictions.
    fn intra_chroma(
        &self,
        mbx: usize,
        mby: usize,
        left: bool,
        top: bool,
    ) -> (usize, [[u8; 64]; 2]) {
        let cwidth = usize::from(self.p.src.width) / 2;
        let (cx0, cy0) = (mbx * 8, mby * 8);
        let csrc = self.chroma_source(mbx, mby);
        let candidates = [
            chroma_predictions(&self.out.u, cwidth, cx0, cy0, left, top),
            chroma_predictions(&self.out.v, cwidth, cx0, cy0, left, top),
        ];
        let mut chroma_mode = 0usize;
        let mut best_sad = i64::MAX;
        for (m, (pu, pv)) in candidates[0].iter().zip(&candidates[1]).enumerate() {
            let (Some(pu), Some(pv)) = (pu, pv) else {
                continue;
            };
            let sad = sad(pu, &csrc[0]) + sad(pv, &csrc[1]);
            if sad < best_sad {
                best_sad = sad;
                chroma_mode = m;
            }
        }
        let cpred: [[u8; 64]; 2] = [
            candidates[0][chroma_mode].unwrap_or([128; 64]),
            candidates[1][chroma_mode].unwrap_or([128; 64]),
        ];
        (chroma_mode, cpred)
    }

    /// The intra coding of a macroblock with luma `src`: Intra 16x16 (if `try16`) or Intra
    /// 4x4 (if `try4`), whichever takes fewer bits, with its decoded samples.
    fn intra(
        &self,
        mbx: usize,
        mby: usize,
        src: &[i32; 256],
        preds: &IntraPredictions,
        try16: bool,
        try4: bool,
    ) -> Candidate {
        let left = self.intra_neighbour(mbx, mby, -1, 0);
        let top = self.intra_neighbour(mbx, mby, 0, -1);
        let cqp = chroma_qp(self.coding.qp, self.coding.chroma_qp_offset);
        let (x0, y0) = (mbx * 16, mby * 16);
        let (chroma_mode, cpred) = preds.chroma;
        let chroma = ChromaResidual::new(&cpred, &self.chroma_source(mbx, mby), cqp);

        // The luma codings tried, each written in full; the shorter one is kept.
        let (left_rec, top_rec) = self.neighbour_counts(mbx, mby);
        let try16 = try16 || !try4;
        let i16 = try16.then(|| {
            let l16 = self.luma16(src, preds.luma16);
            let mut w16 = BitWriter::new();
            let mut c16 = Counts::default();
            let cm = chroma_mode as u32;
            l16.write(&mut w16, &mut c16, cm, chroma.cbp, left_rec, top_rec);
            chroma.write(&mut w16, &mut c16, left_rec, top_rec);
            (l16, w16, c16)
        });
        // A macroblock Intra 16x16 predicts without any AC residual is flat: Intra 4x4 would
        // not be shorter.
        let i4 = (try4 && i16.as_ref().is_none_or(|(l16, ..)| l16.cbp)).then(|| {
            let l4 = self.luma4(src, x0, y0, left, top);
            let predicted = self.predicted_modes(mbx, mby);
            let mut w4 = BitWriter::new();
            let mut c4 = Counts::default();
            let cm = chroma_mode as u32;
            l4.write(
                &mut w4, &mut c4, &predicted, cm, chroma.cbp, left_rec, top_rec,
            );
            chroma.write(&mut w4, &mut c4, left_rec, top_rec);
            (l4, w4, c4)
        });
        let (bits, counts, modes, luma) = match (i16, i4) {
            (Some((l16, w16, c16)), Some((_, w4, _))) if w4.len_bits() >= w16.len_bits() => {
                (w16, c16, None, l16.recon(self.coding.qp))
            }
            (_, Some((l4, w4, c4))) => (w4, c4, Some(l4.modes), l4.recon),
            (Some((l16, w16, c16)), None) => (w16, c16, None, l16.recon(self.coding.qp)),
            (None, None) => unreachable!("Intra 16x16 is tried when Intra 4x4 is not"),
        };
        Candidate {
            bits,
            counts,
            luma,
            chroma_pred: cpred,
            chroma,
            rec: MbRec {
                intra: true,
                modes,
                mv: (0, 0),
                counts,
            },
        }
    }

    /// Intra 16x16: the cheapest of vertical, horizontal and DC prediction (by SAD), then
    /// the transform of the whole macroblock.
    fn luma16(&self, src: &[i32; 256], (mode, pred): (usize, [u8; 256])) -> Luma16 {
        let qp = self.coding.qp;
        // Transform each 4x4 block; DC coefficients go to the second-stage transform.
        let mut ac = [[0i32; 16]; 16]; // by block position (row-major)
        let mut dc = [0i32; 16];
        for (b, block) in ac.iter_mut().enumerate() {
            let (bx, by) = (b % 4, b / 4);
            let diff: [i32; 16] = std::array::from_fn(|k| {
                let at = (by * 4 + k / 4) * 16 + bx * 4 + k % 4;
                src[at] - i32::from(pred[at])
            });
            let coef = forward(&diff);
            dc[b] = coef[0];
            *block = quant(&coef, qp);
            block[0] = 0;
        }
        let dc_levels = luma_dc_quant(&dc, qp);
        let cbp = ac.iter().any(|b| b.iter().any(|c| *c != 0));
        if !cbp {
            ac = [[0; 16]; 16];
        }
        Luma16 {
            mode,
            pred,
            dc_levels,
            ac,
            cbp,
        }
    }

    /// What Intra 4x4 block (`bx`, `by`) of the macroblock at luma (`x0`, `y0`) predicts from
    /// (§8.3.1.2): the row above and the column left of it — inside the macroblock
    /// `inside(index)` (16 samples a row), outside it the decoded picture where `left`/`top`
    /// make it available, 0 otherwise — and its DC prediction.
    fn edges4(
        &self,
        (x0, y0): (usize, usize),
        (bx, by): (usize, usize),
        (left, top): (bool, bool),
        inside: impl Fn(usize) -> u8,
    ) -> Edges4 {
        let width = usize::from(self.p.src.width);
        let has_top = by > 0 || top;
        let has_left = bx > 0 || left;
        let above: [u8; 4] = std::array::from_fn(|i| {
            if by > 0 {
                inside((by * 4 - 1) * 16 + bx * 4 + i)
            } else if top {
                self.out.y[(y0 - 1) * width + x0 + bx * 4 + i]
            } else {
                0
            }
        });
        let side: [u8; 4] = std::array::from_fn(|j| {
            if bx > 0 {
                inside((by * 4 + j) * 16 + bx * 4 - 1)
            } else if left {
                self.out.y[(y0 + by * 4 + j) * width + x0 - 1]
            } else {
                0
            }
        });
        let sum = |v: &[u8; 4]| v.iter().map(|s| u32::from(*s)).sum::<u32>();
        let dc = match (has_left, has_top) {
            (true, true) => ((sum(&above) + sum(&side) + 4) >> 3) as u8,
            (true, false) => ((sum(&side) + 2) >> 2) as u8,
            (false, true) => ((sum(&above) + 2) >> 2) as u8,
            (false, false) => 128,
        };
        Edges4 {
            above,
            side,
            has_top,
            has_left,
            dc,
        }
    }

    /// Intra 4x4: for each block in decoding order the cheapest of vertical, horizontal and
    /// DC prediction (by SAD) from the samples decoded so far, transformed and reconstructed
    /// before the next block predicts from it.
    fn luma4(&self, src: &[i32; 256], x0: usize, y0: usize, left: bool, top: bool) -> Luma4 {
        let qp = self.coding.qp;
        let mut rec = [0u8; 256];
        let mut modes = [DC; 16];
        let mut levels = [[0i32; 16]; 16];
        for idx in 0..16 {
            let (bx, by) = luma_block_pos(idx);
            let Edges4 {
                above,
                side,
                has_top,
                has_left,
                dc,
            } = self.edges4((x0, y0), (bx, by), (left, top), |at| rec[at]);
            let block: [i32; 16] =
                std::array::from_fn(|k| src[(by * 4 + k / 4) * 16 + bx * 4 + k % 4]);
            let candidates: [Option<[u8; 16]>; 3] = [
                has_top.then(|| std::array::from_fn(|k| above[k % 4])),
                has_left.then(|| std::array::from_fn(|k| side[k / 4])),
                Some([dc; 16]),
            ];
            let mut mode = 2usize;
            let mut pred = [dc; 16];
            let mut best_sad = i64::MAX;
            for (m, c) in candidates.iter().enumerate() {
                if let Some(p) = c {
                    let s = sad(p, &block);
                    if s < best_sad {
                        best_sad = s;
                        mode = m;
                        pred = *p;
                    }
                }
            }
            let diff: [i32; 16] = std::array::from_fn(|k| block[k] - i32::from(pred[k]));
            let q = quant(&forward(&diff), qp);
            let r = inverse(&dequant(&q, qp));
            for (k, v) in r.iter().enumerate() {
                rec[(by * 4 + k / 4) * 16 + bx * 4 + k % 4] =
                    (i32::from(pred[k]) + v).clamp(0, 255) as u8;
            }
            modes[by * 4 + bx] = mode as u8;
            levels[by * 4 + bx] = q;
        }
        let mut cbp = 0u32;
        for b8 in 0..4 {
            let nonzero = (0..4).any(|k| {
                let (bx, by) = luma_block_pos(b8 * 4 + k);
                levels[by * 4 + bx].iter().any(|v| *v != 0)
            });
            if nonzero {
                cbp |= 1 << b8;
            }
        }
        Luma4 {
            modes,
            levels,
            recon: rec,
            cbp,
        }
    }

    /// The modes the neighbouring macroblocks give Intra 4x4 prediction-mode prediction
    /// (§8.3.1.1): for the blocks on the left edge the left macroblock's right column, for
    /// the top edge the top macroblock's bottom row; `None` where the mode is predicted as DC
    /// whatever the block (a neighbour missing, or inter under `constrained_intra_pred`).
    fn predicted_modes(&self, mbx: usize, mby: usize) -> NeighbourModes {
        let modes = |dx: i64, dy: i64| -> Option<[u8; 16]> {
            let r = self.neighbour(mbx, mby, dx, dy)?;
            if !r.intra && self.coding.constrained_intra {
                return None;
            }
            Some(r.modes.unwrap_or([DC; 16]))
        };
        NeighbourModes {
            left: modes(-1, 0),
            top: modes(0, -1),
        }
    }
}

/// The coded_block_pattern codeNum of an inter macroblock (Table 9-4).
fn inter_cbp_code(cbp: u32) -> u32 {
    CBP_INTER
        .iter()
        .position(|v| u32::from(*v) == cbp)
        .map_or(0, |p| p as u32)
}

/// A macroblock's quantised chroma residual (4:2:0): `cbp` 0 (none), 1 (DC only) or 2 (DC
/// and AC), per component the DC levels (row-major) and each 4x4 block's levels (row-major,
/// DC position unused).
#[derive(Debug, Clone)]
struct ChromaResidual {
    cbp: u32,
    dc: [[i32; 4]; 2],
    ac: [[[i32; 16]; 4]; 2],
}

impl ChromaResidual {
    fn new(pred: &[[u8; 64]; 2], src: &[[i32; 64]; 2], cqp: i32) -> Self {
        let mut ac = [[[0i32; 16]; 4]; 2];
        let mut dc = [[0i32; 4]; 2];
        // The prediction already exact (flat colour, as under most text): nothing to code.
        let exact = (0..2).all(|c| (0..64).all(|k| src[c][k] == i32::from(pred[c][k])));
        if exact {
            return ChromaResidual { cbp: 0, dc, ac };
        }
        for c in 0..2 {
            let mut dcs = [0i32; 4];
            for b in 0..4 {
                let (bx, by) = (b % 2, b / 2);
                let diff: [i32; 16] = std::array::from_fn(|k| {
                    let at = (by * 4 + k / 4) * 8 + bx * 4 + k % 4;
                    src[c][at] - i32::from(pred[c][at])
                });
                let coef = forward(&diff);
                dcs[b] = coef[0];
                ac[c][b] = quant(&coef, cqp);
                ac[c][b][0] = 0;
            }
            dc[c] = chroma_dc_quant(&dcs, cqp);
        }
        let any_ac = ac.iter().flatten().any(|b| b.iter().any(|v| *v != 0));
        let any_dc = dc.iter().flatten().any(|v| *v != 0);
        let cbp = if any_ac { 2 } else { u32::from(any_dc) };
        if cbp < 2 {
            ac = [[[0; 16]; 4]; 2];
        }
        if cbp == 0 {
            dc = [[0; 4]; 2];
        }
        ChromaResidual { cbp, dc, ac }
    }

    /// The chroma part of `residual()` (§7.3.5.3), recording AC counts for nC.
    fn write(
        &self,
        w: &mut BitWriter,
        counts: &mut Counts,
        left: Option<Counts>,
        top: Option<Counts>,
    ) {
        if self.cbp > 0 {
            for levels in &self.dc {
                residual_block(w, levels, -1);
            }
        }
        if self.cbp == 2 {
            for c in 0..2 {
                for b in 0..4 {
                    let (bx, by) = (b % 2, b / 2);
                    let a = if bx > 0 {
                        Some(counts.chroma[c][b - 1])
                    } else {
                        left.map(|r| r.chroma[c][by * 2 + 1])
                    };
                    let t = if by > 0 {
                        Some(counts.chroma[c][b - 2])
                    } else {
                        top.map(|r| r.chroma[c][2 + bx])
                    };
                    let scan: [i32; 15] = std::array::from_fn(|k| self.ac[c][b][ZIGZAG[k + 1]]);
                    counts.chroma[c][b] = residual_block(w, &scan, nc(a, t));
                }
            }
        }
    }
}

/// Intra 4x4 prediction mode 2: DC, which needs no neighbouring samples.
const DC: u8 = 2;

/// A copy whose luma differs from the capture by at most this sum of absolute differences
/// (2 levels per sample on average) is coded with its residual without trying intra.
const CLOSE_SAD: i64 = 2 * 256;

/// A coding whose estimated cost is more than this many percent above the cheapest
/// estimate is not written. Measured on the synthetic scroll against writing all three
/// (docs/agent.md): 0 → 1.4–1.9 % more bytes, 5 → 1.2 % more and 3–7 % slower, 25 → nearly
/// all written again.
const MARGIN_PERCENT: i64 = 0;

/// Estimated costs of the codings of a patch: SATD of luma and chroma against their
/// predictions, plus λ times a rough count of header bits (motion vector difference, mb_type,
/// prediction modes). `inter`: the best copy with a residual, if there is one.
#[derive(Debug, Clone, Copy)]
struct Estimates {
    inter: Option<i64>,
    intra16: i64,
    intra4: i64,
}

/// What an Intra 4x4 block predicts from ([`PictureWriter::edges4`]).
struct Edges4 {
    above: [u8; 4],
    side: [u8; 4],
    has_top: bool,
    has_left: bool,
    dc: u8,
}

/// A macroblock's intra predictions: chroma (mode, both components) and Intra 16x16 luma
/// (mode, samples).
struct IntraPredictions {
    chroma: (usize, [[u8; 64]; 2]),
    luma16: (usize, [u8; 256]),
}

/// λ of the estimates: SATD per header bit at `qp`, 2^((qp - 12) / 6) (the step size
/// doubles every 6 QP), at least 1.
fn lambda(qp: i32) -> i64 {
    let q = (qp - 12).max(0);
    let base = [16, 18, 20, 23, 25, 28][(q % 6) as usize];
    ((base << (q / 6)) / 16).max(1)
}

/// Bits of the signed exp-Golomb code of `v`.
fn se_bits(v: i32) -> i64 {
    let k = if v > 0 {
        2 * i64::from(v) - 1
    } else {
        -2 * i64::from(v)
    };
    let len = 64 - (k + 1).leading_zeros();
    i64::from(2 * len - 1)
}

/// SATD of a block `W` samples wide (`N` samples, row-major) against `src`, in 4x4 blocks.
fn satd_blocks<const N: usize, const W: usize>(pred: &[u8; N], src: &[i32; N]) -> i64 {
    let mut total = 0;
    for by in (0..N / W).step_by(4) {
        for bx in (0..W).step_by(4) {
            let diff: [i32; 16] = std::array::from_fn(|k| {
                let at = (by + k / 4) * W + bx + k % 4;
                src[at] - i32::from(pred[at])
            });
            total += satd4x4(&diff);
        }
    }
    total
}

/// The coded_block_pattern codeNum of an Intra 4x4 macroblock (Table 9-4).
fn intra_cbp_code(cbp: u32) -> u32 {
    CBP_INTRA
        .iter()
        .position(|v| u32::from(*v) == cbp)
        .map_or(0, |p| p as u32)
}

/// Neighbouring macroblocks' Intra 4x4 modes as mode prediction sees them.
#[derive(Debug, Clone, Copy)]
struct NeighbourModes {
    left: Option<[u8; 16]>,
    top: Option<[u8; 16]>,
}

/// nC of the 4x4 luma block at (`bx`, `by`) from the counts so far and the neighbours'.
fn luma_nc(
    counts: &Counts,
    left: Option<Counts>,
    top: Option<Counts>,
    bx: usize,
    by: usize,
) -> i32 {
    let a = if bx > 0 {
        Some(counts.luma[by * 4 + bx - 1])
    } else {
        left.map(|r| r.luma[by * 4 + 3])
    };
    let b = if by > 0 {
        Some(counts.luma[(by - 1) * 4 + bx])
    } else {
        top.map(|r| r.luma[12 + bx])
    };
    nc(a, b)
}

/// An Intra 16x16 luma coding.
struct Luma16 {
    mode: usize,
    pred: [u8; 256],
    dc_levels: [i32; 16],
    ac: [[i32; 16]; 16],
    cbp: bool,
}

impl Luma16 {
    /// mb_type, mb_pred, mb_qp_delta and the luma residual.
    fn write(
        &self,
        w: &mut BitWriter,
        counts: &mut Counts,
        chroma_mode: u32,
        cbp_chroma: u32,
        left: Option<Counts>,
        top: Option<Counts>,
    ) {
        // An I type in a P slice: 5 + Table 7-11.
        w.ue(5 + 1 + self.mode as u32 + 4 * cbp_chroma + if self.cbp { 12 } else { 0 });
        w.ue(chroma_mode);
        w.se(0);
        let dc_scan: [i32; 16] = std::array::from_fn(|k| self.dc_levels[ZIGZAG[k]]);
        residual_block(w, &dc_scan, luma_nc(counts, left, top, 0, 0));
        if self.cbp {
            for idx in 0..16 {
                let (bx, by) = luma_block_pos(idx);
                let block = &self.ac[by * 4 + bx];
                let scan: [i32; 15] = std::array::from_fn(|k| block[ZIGZAG[k + 1]]);
                let n = luma_nc(counts, left, top, bx, by);
                counts.luma[by * 4 + bx] = residual_block(w, &scan, n);
            }
        }
    }

    /// The decoded luma samples (§8.5.2).
    fn recon(&self, qp: i32) -> [u8; 256] {
        let dcy = luma_dc_dequant(&self.dc_levels, qp);
        let mut out = [0u8; 256];
        for (b, block) in self.ac.iter().enumerate() {
            let (bx, by) = (b % 4, b / 4);
            let mut d = dequant(block, qp);
            d[0] = dcy[b];
            let r = inverse(&d);
            for (k, v) in r.iter().enumerate() {
                let at = (by * 4 + k / 4) * 16 + bx * 4 + k % 4;
                out[at] = (i32::from(self.pred[at]) + v).clamp(0, 255) as u8;
            }
        }
        out
    }
}

/// An Intra 4x4 luma coding, its samples already decoded.
struct Luma4 {
    modes: [u8; 16],
    levels: [[i32; 16]; 16],
    recon: [u8; 256],
    cbp: u32,
}

impl Luma4 {
    /// mb_type, the 16 prediction modes, chroma mode, coded_block_pattern, mb_qp_delta and
    /// the luma residual.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        w: &mut BitWriter,
        counts: &mut Counts,
        neighbours: &NeighbourModes,
        chroma_mode: u32,
        cbp_chroma: u32,
        left: Option<Counts>,
        top: Option<Counts>,
    ) {
        w.ue(5); // I_NxN in a P slice
        for idx in 0..16 {
            let (bx, by) = luma_block_pos(idx);
            let a = if bx > 0 {
                Some(self.modes[by * 4 + bx - 1])
            } else {
                neighbours.left.map(|m| m[by * 4 + 3])
            };
            let b = if by > 0 {
                Some(self.modes[(by - 1) * 4 + bx])
            } else {
                neighbours.top.map(|m| m[12 + bx])
            };
            let predicted = match (a, b) {
                (Some(a), Some(b)) => a.min(b),
                _ => DC,
            };
            let mode = self.modes[by * 4 + bx];
            if mode == predicted {
                w.bit(true);
            } else {
                w.bit(false);
                w.bits(u32::from(if mode < predicted { mode } else { mode - 1 }), 3);
            }
        }
        w.ue(chroma_mode);
        let cbp = self.cbp | (cbp_chroma << 4);
        w.ue(intra_cbp_code(cbp));
        if cbp > 0 {
            w.se(0);
        }
        write_luma_4x4(w, counts, &self.levels, self.cbp, left, top);
    }
}

/// The luma residual of a macroblock coded in 4x4 blocks (Intra 4x4 or inter): the blocks of
/// each 8x8 quarter whose `cbp` bit is set, 16 coefficients each (§7.3.5.3).
fn write_luma_4x4(
    w: &mut BitWriter,
    counts: &mut Counts,
    levels: &[[i32; 16]; 16],
    cbp: u32,
    left: Option<Counts>,
    top: Option<Counts>,
) {
    for b8 in 0..4 {
        if cbp & (1 << b8) == 0 {
            continue;
        }
        for k in 0..4 {
            let (bx, by) = luma_block_pos(b8 * 4 + k);
            let block = &levels[by * 4 + bx];
            let scan: [i32; 16] = std::array::from_fn(|i| block[ZIGZAG[i]]);
            let n = luma_nc(counts, left, top, bx, by);
            counts.luma[by * 4 + bx] = residual_block(w, &scan, n);
        }
    }
}

/// One way to code a macroblock, written to the side: its bits, counts, decoded luma, chroma
/// prediction and residual, and its record.
struct Candidate {
    bits: BitWriter,
    counts: Counts,
    luma: [u8; 256],
    chroma_pred: [[u8; 64]; 2],
    chroma: ChromaResidual,
    rec: MbRec,
}

fn sad<const N: usize>(pred: &[u8; N], src: &[i32; N]) -> i64 {
    pred.iter()
        .zip(src)
        .map(|(p, s)| i64::from((i32::from(*p) - s).abs()))
        .sum()
}

/// The available Intra 16x16 predictions (§8.3.3), indexed by mode: vertical, horizontal, DC.
fn predictions(
    plane: &[u8],
    width: usize,
    x0: usize,
    y0: usize,
    n: usize,
    left: bool,
    top: bool,
) -> [Option<[u8; 256]>; 3] {
    let above: Vec<u8> = if top {
        plane[(y0 - 1) * width + x0..][..n].to_vec()
    } else {
        Vec::new()
    };
    let side: Vec<u8> = if left {
        (0..n).map(|j| plane[(y0 + j) * width + x0 - 1]).collect()
    } else {
        Vec::new()
    };
    let sum = |v: &[u8]| v.iter().map(|s| u32::from(*s)).sum::<u32>();
    let dc = match (left, top) {
        (true, true) => ((sum(&above) + sum(&side) + 16) >> 5) as u8,
        (true, false) => ((sum(&side) + 8) >> 4) as u8,
        (false, true) => ((sum(&above) + 8) >> 4) as u8,
        (false, false) => 128,
    };
    [
        top.then(|| std::array::from_fn(|k| above[k % 16])),
        left.then(|| std::array::from_fn(|k| side[k / 16])),
        Some([dc; 256]),
    ]
}

/// The cheapest available prediction: (Intra 16x16 mode number, samples).
fn best(preds: [Option<[u8; 256]>; 3], src: &[i32; 256]) -> (usize, [u8; 256]) {
    let mut out = (2, [128u8; 256]);
    let mut best_sad = i64::MAX;
    for (mode, p) in preds.iter().enumerate() {
        if let Some(p) = p {
            let s = sad(p, src);
            if s < best_sad {
                best_sad = s;
                out = (mode, *p);
            }
        }
    }
    out
}

/// The available chroma predictions (§8.3.4), indexed by `intra_chroma_pred_mode`: DC,
/// horizontal, vertical.
fn chroma_predictions(
    plane: &[u8],
    cwidth: usize,
    x0: usize,
    y0: usize,
    left: bool,
    top: bool,
) -> [Option<[u8; 64]>; 3] {
    let above: [u8; 8] = if top {
        std::array::from_fn(|i| plane[(y0 - 1) * cwidth + x0 + i])
    } else {
        [0; 8]
    };
    let side: [u8; 8] = if left {
        std::array::from_fn(|j| plane[(y0 + j) * cwidth + x0 - 1])
    } else {
        [0; 8]
    };
    let sum4 =
        |v: &[u8; 8], from: usize| v[from..from + 4].iter().map(|s| u32::from(*s)).sum::<u32>();
    let mut dc = [0u8; 64];
    for b in 0..4 {
        let (xo, yo) = ((b % 2) * 4, (b / 2) * 4);
        let (st, sl) = (sum4(&above, xo), sum4(&side, yo));
        let both = ((st + sl + 4) >> 3) as u8;
        let t = ((st + 2) >> 2) as u8;
        let l = ((sl + 2) >> 2) as u8;
        let v = if (xo == 0 && yo == 0) || (xo > 0 && yo > 0) {
            match (top, left) {
                (true, true) => both,
                (false, true) => l,
                (true, false) => t,
                (false, false) => 128,
            }
        } else if xo > 0 {
            match (top, left) {
                (true, _) => t,
                (false, true) => l,
                (false, false) => 128,
            }
        } else {
            match (left, top) {
                (true, _) => l,
                (false, true) => t,
                (false, false) => 128,
            }
        };
        for k in 0..16 {
            dc[(yo + k / 4) * 8 + xo + k % 4] = v;
        }
    }
    [
        Some(dc),
        left.then(|| std::array::from_fn(|k| side[k / 8])),
        top.then(|| std::array::from_fn(|k| above[k % 8])),
    ]
}
