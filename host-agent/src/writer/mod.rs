//! The damage-proportional encoder: our own H.264 writer for the frames where little changed,
//! openh264 for keyframes and large changes (docs/agent.md "Encoding cost proportional to
//! what changed").
//!
//! Each capture is compared with the last one sent, macroblock by macroblock. Unchanged
//! macroblocks are copies (`P_Skip`, free to write); a scroll found by [`scroll`] turns the
//! moved ones into copies with a motion vector; what is left (a typed glyph, the caret, the
//! strip a scroll exposes) is intra-coded by [`picture`]. When more than a share of the
//! picture would be intra-coded, or a keyframe is due, openh264 encodes the picture instead —
//! as an IDR if the last frame was ours, since openh264's own reference would be stale.
//!
//! The writer predicts from the picture decoders hold: after an openh264 frame that is
//! openh264's decoder's output of it (decoded here), after one of ours it is the writer's own
//! reconstruction. Both are exact, so nothing drifts. Pictures whose size is not a multiple
//! of 16 are coded at the next multiple (edges repeated) with the SPS cropping them back, so
//! every sample the writer predicts from is known.

pub mod cavlc;
pub mod picture;
pub mod sample;
pub mod scroll;
pub mod transform;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use tsuitate_protocol::h264::{
    nal_units, parse_pps, parse_slice, parse_sps, BitWriter, PpsInfo, SpsInfo,
};

use crate::convert::I420;
use crate::encode::{
    same_size, EncodeError, EncodedAu, EncoderSettings, OpenH264Encoder, VideoEncoder,
};
use picture::{copy_matches, Coding, PictureWriter, Pictures, Plan, Written};

/// Default QP of the macroblocks the writer codes: the strip a scroll exposes stays at PSNR
/// ≥ 40 dB on dense synthetic text (the tests); on a real browsing session it costs about 1.2×
/// openh264's bytes, QP 26 about 1× (docs/agent.md). Agent config `patch_qp`.
pub const PATCH_QP: i32 = 22;

/// Default QP of refinements: the text of a still screen at about 50 dB where it was coded
/// coarser (docs/agent.md "Refinement"). Agent config `refine_qp`.
pub const REFINE_QP: i32 = 16;

/// A macroblock whose decoded luma differs from the capture by more than this sum of squared
/// differences (46 dB PSNR over the macroblock) is refined.
const REFINE_SSE: u64 = 256 * 255 * 255 / 39_811;

/// At most this share (percent) of the macroblocks are refined in one picture, the furthest
/// from the capture first; the rest in the next refinements.
const REFINE_MAX_PERCENT: usize = 25;

/// When more than this share (percent) of the macroblocks would be intra-coded, openh264
/// encodes the picture (a page load, a new window).
pub const LARGE_CHANGE_PERCENT: usize = 40;

/// Which encoder produced the last access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastFrame {
    /// Nothing yet, or rate control skipped the picture.
    None,
    /// openh264 (an IDR when `keyframe`).
    OpenH264 {
        /// Whether it was an IDR.
        keyframe: bool,
    },
    /// Our writer, with its macroblock counts.
    Writer(Written),
}

/// What the writer needs of openh264's stream: its parameter sets and the `frame_num` its
/// next picture takes.
#[derive(Debug, Clone)]
struct Stream {
    sps: SpsInfo,
    pps: PpsInfo,
    /// The next reference picture's `frame_num` (§7.4.3: the last reference picture's + 1).
    next_frame_num: u32,
}

/// The vertical motion vector range of a level in whole luma samples: vectors lie in
/// [-max, max) (Table A-1, MaxVmvR).
fn max_vertical_mv(level_idc: u8) -> i32 {
    match level_idc {
        0..=10 => 64,
        11..=20 => 128,
        21..=30 => 256,
        _ => 512,
    }
}

/// What [`DamageEncoder::plan`] decided for a picture.
struct PicturePlan {
    /// One per macroblock, raster order.
    plans: Vec<Plan>,
    /// How many of them are patches (to be coded, not copied).
    patches: usize,
    /// The picture's scroll vectors.
    shifts: Vec<(i32, i32)>,
    /// Which rows of macroblocks changed.
    changed_rows: Vec<bool>,
}

/// Whether our writer can continue a stream with these parameter sets (what openh264 writes
/// with our settings; checked so that a different openh264 falls back instead of breaking).
fn writable(sps: &SpsInfo, pps: &PpsInfo) -> bool {
    sps.poc_type == 2
        && sps.max_num_ref_frames >= 1
        && !pps.cabac
        && !pps.weighted_pred
        && pps.deblocking_control
        && !pps.bottom_field_pic_order
}

/// openh264 for keyframes and large changes, our writer for the rest.
pub struct DamageEncoder {
    open: OpenH264Encoder,
    decoder: Decoder,
    /// The visible size.
    settings: EncoderSettings,
    /// The capture padded to the coded size (sizes that are not multiples of 16), the last
    /// capture sent, and the decoders' pictures, all at the coded size.
    src: I420,
    prev: I420,
    reference: I420,
    next: I420,
    /// Rows of macroblocks the last encoded capture changed (what `prev` must take of it).
    changed_rows: Vec<bool>,
    /// Whether `reference` holds the decoders' last picture.
    have_reference: bool,
    stream: Option<Stream>,
    /// openh264's next frame must be an IDR: the last frame was ours (openh264's own reference
    /// is stale), or the agent's decoder lost openh264's stream.
    need_idr: bool,
    last: LastFrame,
    totals: Totals,
    patch_qp: i32,
    /// QP of refinements ([`VideoEncoder::refine`]); `None`: none.
    refine_qp: Option<i32>,
    /// Macroblocks refined since their content last changed (not refined again).
    refined: Vec<bool>,
}

/// What an encoder wrote over its life (logged when it ends: counts only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Access units from openh264, and how many of them were IDRs.
    pub openh264_frames: u64,
    /// IDRs among them.
    pub openh264_idr: u64,
    /// Their bytes.
    pub openh264_bytes: u64,
    /// Access units from our writer.
    pub writer_frames: u64,
    /// Their bytes.
    pub writer_bytes: u64,
    /// Our writer's macroblocks by kind.
    pub skipped: u64,
    /// Copies with a motion vector.
    pub moved: u64,
    /// Intra-coded.
    pub intra: u64,
    /// Copies with a residual.
    pub residual: u64,
    /// Macroblocks coded again by refinements of a still screen (also counted above).
    pub refined: u64,
}

impl Drop for DamageEncoder {
    fn drop(&mut self) {
        let t = self.totals;
        if t == Totals::default() {
            return;
        }
        tracing::info!(
            openh264_frames = t.openh264_frames,
            openh264_idr = t.openh264_idr,
            openh264_bytes = t.openh264_bytes,
            writer_frames = t.writer_frames,
            writer_bytes = t.writer_bytes,
            skipped_mbs = t.skipped,
            moved_mbs = t.moved,
            intra_mbs = t.intra,
            residual_mbs = t.residual,
            refined_mbs = t.refined,
            "encoder totals / 符号化の集計"
        );
    }
}

impl std::fmt::Debug for DamageEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DamageEncoder")
            .field("settings", &self.settings)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

fn coded(v: u16) -> u16 {
    v.div_ceil(16).saturating_mul(16)
}

impl DamageEncoder {
    /// An encoder for pictures of `settings.width`×`settings.height`.
    pub fn new(settings: EncoderSettings) -> Result<Self, EncodeError> {
        let (cw, ch) = (coded(settings.width), coded(settings.height));
        let open = OpenH264Encoder::new(EncoderSettings {
            width: cw,
            height: ch,
            ..settings
        })?;
        let decoder = Decoder::new().map_err(|e| EncodeError::Codec(e.to_string()))?;
        Ok(DamageEncoder {
            open,
            decoder,
            settings,
            src: I420::new(cw, ch),
            prev: I420::new(cw, ch),
            reference: I420::new(cw, ch),
            next: I420::new(cw, ch),
            changed_rows: Vec::new(),
            have_reference: false,
            stream: None,
            need_idr: false,
            last: LastFrame::None,
            totals: Totals::default(),
            patch_qp: PATCH_QP,
            refine_qp: Some(REFINE_QP),
            refined: Vec::new(),
        })
    }

    /// Which encoder produced the last access unit.
    pub fn last_frame(&self) -> LastFrame {
        self.last
    }

    /// Code patches at `qp` (12–51) instead of [`PATCH_QP`]: higher, fewer bytes and blurrier
    /// text. Below 12 the largest DC levels would not fit CAVLC's level range.
    pub fn with_patch_qp(mut self, qp: i32) -> Self {
        self.patch_qp = qp.clamp(12, 51);
        self
    }

    /// Refine still screens at `qp` (12–51), or not at all (`None`); see
    /// [`VideoEncoder::refine`].
    pub fn with_refine_qp(mut self, qp: Option<i32>) -> Self {
        self.refine_qp = qp.map(|qp| qp.clamp(12, 51));
        self
    }

    /// What it wrote so far.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// The decoders' picture after the last access unit, at the coded size (for tests).
    pub fn reconstruction(&self) -> &I420 {
        &self.reference
    }

    /// What to do with each macroblock of `src` (the capture at the coded size).
    fn plan(&self, src: &I420) -> PicturePlan {
        let (w, h) = (usize::from(src.width), usize::from(src.height));
        let (wm, hm) = (w / 16, h / 16);
        let mut changed = vec![false; wm * hm];
        let mut area: Option<scroll::Area> = None;
        // Whole rows of macroblocks first: most of a screen is unchanged.
        let row_same: Vec<bool> = (0..hm)
            .map(|mby| {
                let (l, c) = (16 * w, 8 * (w / 2));
                src.y[mby * l..][..l] == self.prev.y[mby * l..][..l]
                    && src.u[mby * c..][..c] == self.prev.u[mby * c..][..c]
                    && src.v[mby * c..][..c] == self.prev.v[mby * c..][..c]
            })
            .collect();
        for mby in 0..hm {
            for mbx in 0..wm {
                let p = Pictures {
                    src,
                    prev: &self.prev,
                };
                if !row_same[mby] && !copy_matches(p, mbx, mby, (0, 0)) {
                    changed[mby * wm + mbx] = true;
                    let a = area.get_or_insert((mbx, mbx + 1, mby, mby + 1));
                    *a = (
                        a.0.min(mbx),
                        a.1.max(mbx + 1),
                        a.2.min(mby),
                        a.3.max(mby + 1),
                    );
                }
            }
        }
        let changed_rows: Vec<bool> = row_same.iter().map(|same| !same).collect();
        let mut plans = vec![Plan::Copy(0, 0); wm * hm];
        let Some(area) = area else {
            return PicturePlan {
                plans,
                patches: 0,
                shifts: Vec::new(),
                changed_rows,
            };
        };
        // Vectors stay within the level's range (Table A-1, MaxVmvR; ±2048 horizontally).
        let max_v = self
            .stream
            .as_ref()
            .map_or(64, |s| max_vertical_mv(s.sps.level_idc));
        let shifts: Vec<(i32, i32)> = scroll::candidates(&self.prev.y, &src.y, w, h, area)
            .into_iter()
            .filter(|&(dx, dy)| (-2048..2048).contains(&dx) && (-max_v..max_v).contains(&dy))
            .collect();
        let p = Pictures {
            src,
            prev: &self.prev,
        };
        let mut intra = 0;
        for (idx, plan) in plans.iter_mut().enumerate() {
            if !changed[idx] {
                continue;
            }
            let (mbx, mby) = (idx % wm, idx / wm);
            *plan = match shifts.iter().find(|d| copy_matches(p, mbx, mby, **d)) {
                Some(&(dx, dy)) => Plan::Copy(dx, dy),
                None => {
                    intra += 1;
                    Plan::Intra
                }
            };
        }
        PicturePlan {
            plans,
            patches: intra,
            shifts,
            changed_rows,
        }
    }

    /// Write one P picture with our writer.
    fn write_ours(
        &mut self,
        src: &I420,
        stream: &Stream,
        plans: &[Plan],
        shifts: &[(i32, i32)],
        qp: i32,
    ) -> EncodedAu {
        let frame_num = stream.next_frame_num;
        let mut w = BitWriter::new();
        w.ue(0); // first_mb_in_slice
        w.ue(0); // slice_type P
        w.ue(stream.pps.pps_id);
        w.bits(frame_num, stream.sps.log2_max_frame_num);
        // poc_type 2: no picture order count fields.
        if stream.pps.num_ref_idx_default.0 == 1 {
            w.bit(false);
        } else {
            w.bit(true); // num_ref_idx_active_override_flag: one reference
            w.ue(0);
        }
        w.bit(false); // ref_pic_list_modification_flag_l0
        w.bit(false); // adaptive_ref_pic_marking_mode_flag: sliding window
        w.se(i64::from(qp - 26 - stream.pps.pic_init_qp_minus26));
        w.ue(1); // disable_deblocking_filter_idc: off
        let coding = Coding {
            qp,
            chroma_qp_offset: stream.pps.chroma_qp_index_offset,
            constrained_intra: stream.pps.constrained_intra_pred,
        };
        let pictures = Pictures {
            src,
            prev: &self.prev,
        };
        // Without motion the picture is written over the reference in place (one copy of the
        // picture less); with motion into the spare picture, which then becomes the reference.
        let still = plans
            .iter()
            .all(|p| matches!(p, Plan::Copy(0, 0) | Plan::Intra));
        let written = if still {
            PictureWriter::new(pictures, None, &mut self.reference, coding)
                .write(&mut w, plans, shifts)
        } else {
            let written =
                PictureWriter::new(pictures, Some(&self.reference), &mut self.next, coding)
                    .write(&mut w, plans, shifts);
            std::mem::swap(&mut self.reference, &mut self.next);
            written
        };
        // nal_ref_idc 3 (a reference picture), type 1.
        let nal = w.into_nal(0x61);
        let mut data = Vec::with_capacity(nal.len() + 4);
        data.extend_from_slice(&[0, 0, 0, 1]);
        data.extend_from_slice(&nal);
        if let Some(s) = &mut self.stream {
            s.next_frame_num = (frame_num + 1) % (1 << s.sps.log2_max_frame_num);
        }
        self.last = LastFrame::Writer(written);
        let t = &mut self.totals;
        t.writer_frames += 1;
        t.writer_bytes += data.len() as u64;
        t.skipped += u64::from(written.skipped);
        t.moved += u64::from(written.moved);
        t.intra += u64::from(written.intra);
        t.residual += u64::from(written.residual);
        EncodedAu {
            data,
            keyframe: false,
        }
    }

    /// Encode with openh264; learn its parameter sets and decode its picture as the reference.
    fn write_openh264(&mut self, src: &I420, idr: bool) -> Result<Option<EncodedAu>, EncodeError> {
        // openh264 replaces the reference: nothing of it is refined.
        self.refined.clear();
        let Some(au) = self.open.encode(src, idr)? else {
            self.last = LastFrame::None;
            return Ok(None);
        };
        if idr && !au.keyframe {
            // A P picture predicted from a picture decoders no longer hold: never sent. The
            // pipeline tries again (as after a picture the rate control skipped).
            self.need_idr = true;
            self.last = LastFrame::None;
            return Ok(None);
        }
        let mut out = Vec::with_capacity(au.data.len() + 8);
        let mut frame_num = None;
        let mut sps = self.stream.as_ref().map(|s| s.sps.clone());
        let mut pps = self.stream.as_ref().map(|s| s.pps.clone());
        let bad = |e: String| EncodeError::Codec(format!("openh264 output: {e}"));
        for nal in nal_units(&au.data) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            match nal[0] & 0x1f {
                7 => {
                    let info = parse_sps(nal).map_err(|e| bad(e.to_string()))?;
                    out.extend_from_slice(&self.cropped(&info));
                    sps = Some(info);
                    continue;
                }
                8 => pps = Some(parse_pps(nal).map_err(|e| bad(e.to_string()))?),
                _ => {
                    if let (Some(sps), Some(pps)) = (&sps, &pps) {
                        let h = parse_slice(nal, sps, pps, sps.max_num_ref_frames)
                            .map_err(|e| bad(e.to_string()))?;
                        // After a non-reference picture the next one takes the same number.
                        let step = u32::from(h.nal_ref_idc != 0);
                        frame_num = Some((h.frame_num + step) % (1 << sps.log2_max_frame_num));
                    }
                }
            }
            out.extend_from_slice(nal);
        }
        self.stream = match (sps, pps, frame_num) {
            (Some(sps), Some(pps), Some(next_frame_num)) => Some(Stream {
                sps,
                pps,
                next_frame_num,
            }),
            _ => None,
        };
        // The decoders' picture (decoded from openh264's own SPS, uncropped).
        self.have_reference = match self.decoder.decode(&au.data) {
            Ok(Some(pic)) => copy_decoded(&pic, &mut self.reference),
            _ => false,
        };
        // Without the decoders' picture the writer waits for openh264's next IDR.
        self.need_idr = !self.have_reference;
        self.last = LastFrame::OpenH264 {
            keyframe: au.keyframe,
        };
        let t = &mut self.totals;
        t.openh264_frames += 1;
        t.openh264_idr += u64::from(au.keyframe);
        t.openh264_bytes += out.len() as u64;
        Ok(Some(EncodedAu {
            data: out,
            keyframe: au.keyframe,
        }))
    }

    /// openh264's SPS with cropping to the visible size (written anew).
    fn cropped(&self, sps: &SpsInfo) -> Vec<u8> {
        let mut s = sps.clone();
        let right = u32::from(self.prev.width - self.settings.width) / 2;
        let bottom = u32::from(self.prev.height - self.settings.height) / 2;
        s.crop = [0, right, 0, bottom];
        s.width = u32::from(self.settings.width);
        s.height = u32::from(self.settings.height);
        s.write()
    }
}

/// Copy a decoded picture into `dst` (same coded size). False if the sizes differ.
fn copy_decoded(pic: &impl YUVSource, dst: &mut I420) -> bool {
    let (w, h) = pic.dimensions();
    let (sy, su, sv) = pic.strides();
    if (w, h) != (usize::from(dst.width), usize::from(dst.height)) {
        return false;
    }
    let cw = w / 2;
    for r in 0..h {
        dst.y[r * w..][..w].copy_from_slice(&pic.y()[r * sy..][..w]);
    }
    for r in 0..h / 2 {
        dst.u[r * cw..][..cw].copy_from_slice(&pic.u()[r * su..][..cw]);
        dst.v[r * cw..][..cw].copy_from_slice(&pic.v()[r * sv..][..cw]);
    }
    true
}

/// `src` into `dst` (at least as large), the last column and row repeated.
fn pad(src: &I420, dst: &mut I420) {
    fn plane(s: &[u8], sw: usize, sh: usize, d: &mut [u8], dw: usize, dh: usize) {
        for r in 0..dh {
            let from = &s[r.min(sh - 1) * sw..][..sw];
            let row = &mut d[r * dw..][..dw];
            row[..sw].copy_from_slice(from);
            let edge = from[sw - 1];
            row[sw..].fill(edge);
        }
    }
    let (sw, sh) = (usize::from(src.width), usize::from(src.height));
    let (dw, dh) = (usize::from(dst.width), usize::from(dst.height));
    plane(&src.y, sw, sh, &mut dst.y, dw, dh);
    plane(&src.u, sw / 2, sh / 2, &mut dst.u, dw / 2, dh / 2);
    plane(&src.v, sw / 2, sh / 2, &mut dst.v, dw / 2, dh / 2);
}

impl VideoEncoder for DamageEncoder {
    fn resize(&mut self, width: u16, height: u16) -> Result<(), EncodeError> {
        if (width, height) == (self.settings.width, self.settings.height) {
            return Ok(());
        }
        let mut fresh = DamageEncoder::new(EncoderSettings {
            width,
            height,
            ..self.settings
        })?
        .with_patch_qp(self.patch_qp)
        .with_refine_qp(self.refine_qp);
        // One session, one log line: the totals go on with the new size.
        fresh.totals = std::mem::take(&mut self.totals);
        *self = fresh;
        Ok(())
    }

    fn encode(&mut self, pic: &I420, force_idr: bool) -> Result<Option<EncodedAu>, EncodeError> {
        same_size(pic, &self.settings)?;
        // The capture at the coded size: the picture itself when its size is a multiple of
        // 16, else a padded copy (taken out of `self` while it is read).
        let padded = (pic.width, pic.height) != (self.prev.width, self.prev.height);
        let mut own = std::mem::replace(&mut self.src, I420::new(0, 0));
        if padded {
            pad(pic, &mut own);
        }
        let src = if padded { &own } else { pic };
        let result = self.encode_coded(src, force_idr);
        if let Ok(Some(_)) = &result {
            // `prev` becomes this capture: the rows of macroblocks that changed.
            if padded {
                std::mem::swap(&mut own, &mut self.prev);
            } else {
                copy_rows(src, &mut self.prev, &self.changed_rows);
            }
        }
        self.src = own;
        result
    }

    fn refine(&mut self) -> Result<Option<EncodedAu>, EncodeError> {
        Ok(self.refine_still())
    }
}

impl DamageEncoder {
    /// Encode a capture at the coded size.
    fn encode_coded(
        &mut self,
        src: &I420,
        force_idr: bool,
    ) -> Result<Option<EncodedAu>, EncodeError> {
        let stream = self.writable_stream();
        let rows = usize::from(src.height) / 16;
        match stream {
            Some(stream) if !force_idr => {
                let PicturePlan {
                    plans,
                    patches,
                    shifts,
                    changed_rows,
                } = self.plan(src);
                if patches * 100 > plans.len() * LARGE_CHANGE_PERCENT {
                    self.changed_rows = vec![true; rows];
                    let idr = self.need_idr;
                    self.write_openh264(src, idr)
                } else {
                    self.changed_rows = changed_rows;
                    if self.refined.len() == plans.len() {
                        for (done, plan) in self.refined.iter_mut().zip(&plans) {
                            *done &= *plan == Plan::Copy(0, 0);
                        }
                    }
                    let au = self.write_ours(src, &stream, &plans, &shifts, self.patch_qp);
                    self.need_idr = true;
                    Ok(Some(au))
                }
            }
            _ => {
                self.changed_rows = vec![true; rows];
                let idr = force_idr || self.need_idr;
                self.write_openh264(src, idr)
            }
        }
    }

    /// openh264's stream, if our writer can continue it now: a reference picture is held and
    /// the parameter sets are ones it writes for.
    fn writable_stream(&self) -> Option<Stream> {
        self.stream
            .clone()
            .filter(|s| self.have_reference && writable(&s.sps, &s.pps))
    }

    /// [`VideoEncoder::refine`]: the macroblocks whose decoded luma is furthest from the last
    /// capture sent (more than [`REFINE_SSE`]; at most [`REFINE_MAX_PERCENT`] of them, the
    /// furthest first), coded again at the refinement QP as patches are (a copy of what
    /// decoders show with a finer residual, or intra), the rest skipped. A macroblock is
    /// refined once until its content changes. `None` when none is left, refinement is off,
    /// or our writer cannot write the stream.
    fn refine_still(&mut self) -> Option<EncodedAu> {
        let qp = self.refine_qp?;
        let stream = self.writable_stream()?;
        if matches!(self.last, LastFrame::None) {
            return None;
        }
        let w = usize::from(self.prev.width);
        let (wm, hm) = (w / 16, usize::from(self.prev.height) / 16);
        if self.refined.len() != wm * hm {
            self.refined = vec![false; wm * hm];
        }
        let mut far: Vec<(u64, usize)> = Vec::new();
        for idx in (0..wm * hm).filter(|i| !self.refined[*i]) {
            let (x0, y0) = ((idx % wm) * 16, (idx / wm) * 16);
            let sse: u64 = (y0..y0 + 16)
                .map(|y| {
                    let at = y * w + x0;
                    self.prev.y[at..at + 16]
                        .iter()
                        .zip(&self.reference.y[at..at + 16])
                        .map(|(a, b)| u64::from(a.abs_diff(*b)).pow(2))
                        .sum::<u64>()
                })
                .sum();
            if sse > REFINE_SSE {
                far.push((sse, idx));
            }
        }
        if far.is_empty() {
            return None;
        }
        far.sort_unstable_by(|a, b| b.cmp(a));
        far.truncate((wm * hm * REFINE_MAX_PERCENT / 100).max(1));
        let mut plans = vec![Plan::Copy(0, 0); wm * hm];
        for &(_, idx) in &far {
            plans[idx] = Plan::Intra;
            self.refined[idx] = true;
        }
        let refined = far.len();
        // Written against the capture already sent, which stays the last one sent.
        let capture = self.prev.clone();
        let au = self.write_ours(&capture, &stream, &plans, &[], qp);
        self.need_idr = true;
        self.totals.refined += refined as u64;
        Some(au)
    }
}

/// Copy the rows of macroblocks marked in `rows` from `src` to `dst` (same size).
fn copy_rows(src: &I420, dst: &mut I420, rows: &[bool]) {
    let w = usize::from(src.width);
    let (l, c) = (16 * w, 8 * (w / 2));
    for (mby, _) in rows.iter().enumerate().filter(|(_, changed)| **changed) {
        dst.y[mby * l..][..l].copy_from_slice(&src.y[mby * l..][..l]);
        dst.u[mby * c..][..c].copy_from_slice(&src.u[mby * c..][..c]);
        dst.v[mby * c..][..c].copy_from_slice(&src.v[mby * c..][..c]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openh264::formats::YUVSource;
    use tsuitate_protocol::{Limits, NalSanitizer, VideoHeader};

    use super::sample::Page;
    use tsuitate_testkit::viewer_gateway::psnr;

    /// The visible part of a coded-size picture as three tight planes.
    fn visible(p: &I420, w: usize, h: usize) -> [Vec<u8>; 3] {
        let cw = usize::from(p.width);
        let crop = |plane: &[u8], stride: usize, w: usize, h: usize| {
            (0..h)
                .flat_map(|r| plane[r * stride..][..w].to_vec())
                .collect::<Vec<u8>>()
        };
        [
            crop(&p.y, cw, w, h),
            crop(&p.u, cw / 2, w / 2, h / 2),
            crop(&p.v, cw / 2, w / 2, h / 2),
        ]
    }

    /// A viewer of the writer's stream behind the gateway's sanitizer: every access unit
    /// must pass the sanitizer and decode exactly as the writer reconstructs it.
    struct Viewer {
        dec: Decoder,
        sanitizer: NalSanitizer,
        sequence: u64,
        width: usize,
        height: usize,
    }

    impl Viewer {
        fn new(width: usize, height: usize) -> Self {
            let Ok(dec) = Decoder::new() else {
                panic!("decoder")
            };
            let sanitizer = NalSanitizer::new(Limits::default());
            Viewer {
                dec,
                sanitizer,
                sequence: 0,
                width,
                height,
            }
        }

        /// Sanitize and decode `au` (`what` names it in a failure); the decoded planes.
        fn show(&mut self, enc: &DamageEncoder, au: &EncodedAu, what: &str) -> [Vec<u8>; 3] {
            let header = VideoHeader {
                sequence: self.sequence,
                capture_us: 0,
                keyframe: au.keyframe,
                width: self.width as u16,
                height: self.height as u16,
            };
            self.sequence += 1;
            let checked = self.sanitizer.sanitize(&header, &au.data);
            assert!(checked.is_ok(), "{what}: sanitizer refused: {checked:?}");
            let Ok(Some(d)) = self.dec.decode(&au.data) else {
                panic!("{what}: openh264 did not decode")
            };
            let got = decoded(&d);
            let want = visible(enc.reconstruction(), self.width, self.height);
            for (plane, (g, w)) in got.iter().zip(&want).enumerate() {
                let diff = g.iter().zip(w).filter(|(a, b)| a != b).count();
                assert_eq!(
                    diff, 0,
                    "{what}: plane {plane} differs from the writer's reconstruction in {diff} samples"
                );
            }
            got
        }
    }

    /// The agent's settings for a screen of `width` × `height`.
    fn screen_settings(width: usize, height: usize) -> EncoderSettings {
        EncoderSettings {
            width: width as u16,
            height: height as u16,
            fps: 30,
            bitrate_kbps: 4000,
            screen_content: true,
        }
    }

    /// Render `page` and encode it: the picture and its access unit (`what` names the step
    /// in a failure).
    fn encode_page(enc: &mut DamageEncoder, page: &Page, what: &str) -> (I420, EncodedAu) {
        let Ok(pic) = page.render() else {
            panic!("{what}: render")
        };
        let Ok(Some(au)) = enc.encode(&pic, false) else {
            panic!("{what}: no access unit")
        };
        (pic, au)
    }

    fn decoded(pic: &impl YUVSource) -> [Vec<u8>; 3] {
        let (w, h) = pic.dimensions();
        let (sy, su, sv) = pic.strides();
        let crop = |plane: &[u8], stride: usize, w: usize, h: usize| {
            (0..h)
                .flat_map(|r| plane[r * stride..][..w].to_vec())
                .collect::<Vec<u8>>()
        };
        [
            crop(pic.y(), sy, w, h),
            crop(pic.u(), su, w / 2, h / 2),
            crop(pic.v(), sv, w / 2, h / 2),
        ]
    }

    /// Everything a session at this size sends: each access unit passes the gateway's
    /// sanitizer, openh264 decodes it, and the decoded picture equals the writer's
    /// reconstruction bit for bit. Returns (which encoder, PSNR of luma vs the capture, the same
    /// for the bottom strip).
    fn run(
        width: usize,
        height: usize,
        steps: &[&dyn Fn(&mut Page)],
    ) -> Vec<(LastFrame, f64, f64)> {
        let settings = screen_settings(width, height);
        let Ok(mut enc) = DamageEncoder::new(settings) else {
            panic!("encoder")
        };
        let mut viewer = Viewer::new(width, height);
        let mut page = Page::new(width, height, 7);
        let mut out = Vec::new();
        let first: &dyn Fn(&mut Page) = &|_: &mut Page| {};
        for (i, step) in std::iter::once(first)
            .chain(steps.iter().copied())
            .enumerate()
        {
            step(&mut page);
            let (pic, au) = encode_page(&mut enc, &page, &format!("step {i}"));
            let got = viewer.show(&enc, &au, &format!("step {i} ({:?})", enc.last_frame()));
            // The bottom 32 rows left of the scrollbar: what a downward scroll exposes.
            let strip = |plane: &[u8]| {
                (height - 32..height)
                    .flat_map(|r| plane[r * width..][..width - 16].to_vec())
                    .collect::<Vec<u8>>()
            };
            out.push((
                enc.last_frame(),
                psnr(&got[0], &pic.y),
                psnr(&strip(&got[0]), &strip(&pic.y)),
            ));
        }
        out
    }

    /// A still screen after a scroll coded coarsely (`patch_qp` 30): refinements, each at
    /// most a quarter of the macroblocks and none twice, make the decoded picture much closer
    /// to the capture, pass the sanitizer and decode as the writer reconstructs them, and then
    /// stop; refinement off (kept over a resize) finds nothing.
    #[test]
    fn a_still_screen_is_refined_towards_the_capture() {
        let (width, height) = (328usize, 184usize);
        let settings = screen_settings(width, height);
        let mut viewer = Viewer::new(width, height);
        let mut page = Page::new(width, height, 7);
        let Ok(enc) = DamageEncoder::new(settings) else {
            panic!("encoder")
        };
        let mut enc = enc.with_patch_qp(30);
        assert!(
            matches!(enc.refine(), Ok(None)),
            "nothing to refine before the first picture"
        );
        let (_, au) = encode_page(&mut enc, &page, "first picture");
        viewer.show(&enc, &au, "first picture");
        page.scroll_y += 37;
        let (capture, au) = encode_page(&mut enc, &page, "scroll");
        viewer.show(&enc, &au, "scroll");
        assert!(matches!(enc.last_frame(), LastFrame::Writer(_)));
        let decoded_before = visible(enc.reconstruction(), width, height);
        let before = psnr(&decoded_before[0], &capture.y);
        // Refinements until nothing is left: each bounded, no macroblock twice.
        let mbs = width.div_ceil(16) * height.div_ceil(16);
        let mut rounds = 0;
        let mut last = 0;
        let mut after = before;
        while let Ok(Some(au)) = enc.refine() {
            rounds += 1;
            assert!(rounds <= 4, "refinements do not end");
            let now = enc.totals().refined;
            assert!(
                (now - last) as usize <= (mbs * REFINE_MAX_PERCENT).div_ceil(100),
                "{} macroblocks in one refinement",
                now - last
            );
            last = now;
            after = psnr(&viewer.show(&enc, &au, "refinement")[0], &capture.y);
        }
        println!("refined: {before:.1} dB -> {after:.1} dB over {last} macroblocks in {rounds}");
        assert!(
            rounds >= 2,
            "bounded: {last} macroblocks take more than one"
        );
        // Each refined macroblock is marked once: a macroblock refined twice would count
        // twice in the totals.
        assert_eq!(
            enc.refined.iter().filter(|done| **done).count(),
            last as usize,
            "no macroblock refined twice"
        );
        assert!(
            after >= before + 3.0,
            "refined: {before:.1} dB -> {after:.1} dB over {last} macroblocks"
        );
        // The next change is coded as usual on top of the refined picture.
        page.scroll_y += 16;
        let (_, au) = encode_page(&mut enc, &page, "scroll after the refinement");
        viewer.show(&enc, &au, "scroll after the refinement");

        let Ok(off) = DamageEncoder::new(settings) else {
            panic!("encoder")
        };
        let mut off = off.with_patch_qp(30).with_refine_qp(None);
        // Still off after a resize (which starts a new stream).
        assert!(off.resize(320, 176).is_ok());
        for step in [0, 37] {
            let mut small = Page::new(320, 176, 7);
            small.scroll_y = step;
            encode_page(&mut off, &small, "refinement off");
        }
        assert!(matches!(off.last_frame(), LastFrame::Writer(_)));
        assert!(matches!(off.refine(), Ok(None)), "refinement off");
    }

    #[test]
    fn vectors_stay_within_the_levels_range() {
        // Table A-1: level 3.0 (640x480) ±256 rows, 3.1 and up (720p, 1080p) ±512.
        assert_eq!(max_vertical_mv(10), 64);
        assert_eq!(max_vertical_mv(20), 128);
        assert_eq!(max_vertical_mv(30), 256);
        assert_eq!(max_vertical_mv(31), 512);
        assert_eq!(max_vertical_mv(51), 512);
    }

    fn type_glyph(p: &mut Page) {
        p.typed += 1;
        p.caret = true;
    }

    fn blink(p: &mut Page) {
        p.caret = !p.caret;
    }

    #[test]
    fn typing_scrolling_and_blinking_decode_exactly_as_the_writer_reconstructs() {
        for (w, h) in [(320, 240), (328, 184)] {
            let frames = run(
                w,
                h,
                &[
                    &type_glyph,
                    &type_glyph,
                    &blink,
                    &blink,
                    &|p| p.scroll_y += 37,
                    &|p| p.scroll_y += 54,
                    &type_glyph,
                    &|p| p.scroll_y -= 17,
                    &|p| p.scroll_x += 30,
                    &|p| p.seed = 99,
                    &type_glyph,
                    &|p| p.scroll_y += 40,
                    &blink,
                ],
            );
            assert!(matches!(
                frames[0].0,
                LastFrame::OpenH264 { keyframe: true }
            ));
            // Typing and blinking are small patches.
            for i in [1, 2, 3, 4, 7, 11, 13] {
                let LastFrame::Writer(wr) = frames[i].0 else {
                    panic!("{w}x{h} step {i}: {:?}", frames[i].0)
                };
                assert!(wr.intra <= 6, "{w}x{h} step {i}: {wr:?}");
            }
            // A scroll intra-codes only the strip it exposes, the macroblocks on its edge and
            // the scrollbar's column; the rest are copies.
            let (wm, hm) = (w.div_ceil(16), h.div_ceil(16));
            for (i, dx, dy) in [(5, 0, 37), (6, 0, 54), (8, 0, 17), (9, 30, 0), (12, 0, 40)] {
                let LastFrame::Writer(wr) = frames[i].0 else {
                    panic!("{w}x{h} step {i}: {:?}", frames[i].0)
                };
                let strip = if dy > 0 {
                    (dy / 16 + 2) * wm
                } else {
                    (dx / 16 + 2) * hm
                };
                assert!(wr.intra as usize <= strip + hm, "{w}x{h} step {i}: {wr:?}");
                assert!(wr.moved > 0, "{w}x{h} step {i}: {wr:?}");
            }
            // Intra-coded text is sharp: the strip a scroll exposed (left of the scrollbar).
            for (i, psnr) in [(5, frames[5].2), (6, frames[6].2), (12, frames[12].2)] {
                assert!(
                    psnr >= 40.0,
                    "{w}x{h} step {i}: exposed strip at {psnr:.1} dB"
                );
            }
            // A new page is a large change: openh264, as an IDR after our frames.
            assert!(
                matches!(frames[10].0, LastFrame::OpenH264 { keyframe: true }),
                "{:?}",
                frames[10]
            );
            println!("{w}x{h}: {frames:?}");
        }
    }
}
