//! Putting a decoded RGB8 picture into the window's 0RGB `u32` buffer: a straight copy when the
//! sizes agree, otherwise nearest-neighbour or bilinear scaling into a letterboxed viewport that
//! keeps the aspect ratio. Conversion and scaling happen in one pass.

use crate::args::ScaleArg;

/// Where the picture lands in the window, in window pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Viewport {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width (≥ 1 when the window is not empty).
    pub w: u32,
    /// Height.
    pub h: u32,
}

impl Viewport {
    /// The largest viewport with the frame's aspect ratio, centred in the window.
    pub fn fit(frame_w: u32, frame_h: u32, win_w: u32, win_h: u32) -> Viewport {
        if frame_w == 0 || frame_h == 0 || win_w == 0 || win_h == 0 {
            return Viewport::default();
        }
        let (fw, fh, ww, wh) = (
            u64::from(frame_w),
            u64::from(frame_h),
            u64::from(win_w),
            u64::from(win_h),
        );
        // Width-limited if ww/fw <= wh/fh.
        let (w, h) = if ww * fh <= wh * fw {
            (ww, (fh * ww / fw).max(1))
        } else {
            ((fw * wh / fh).max(1), wh)
        };
        let w = u32::try_from(w).unwrap_or(win_w).min(win_w);
        let h = u32::try_from(h).unwrap_or(win_h).min(win_h);
        Viewport {
            x: (win_w - w) / 2,
            y: (win_h - h) / 2,
            w,
            h,
        }
    }

    /// Map a window position to frame coordinates (clamped to the frame).
    pub fn to_frame(&self, px: f64, py: f64, frame_w: u32, frame_h: u32) -> (u16, u16) {
        if self.w == 0 || self.h == 0 {
            return (0, 0);
        }
        let fx = (px - f64::from(self.x)) * f64::from(frame_w) / f64::from(self.w);
        let fy = (py - f64::from(self.y)) * f64::from(frame_h) / f64::from(self.h);
        let clamp =
            |v: f64, max: u32| v.floor().clamp(0.0, f64::from(max.saturating_sub(1))) as u16;
        (clamp(fx, frame_w), clamp(fy, frame_h))
    }
}

#[inline]
fn pack(r: u8, g: u8, b: u8) -> u32 {
    (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(b)
}

/// Draw `rgb` (`fw`×`fh`) into `dst` (`dw` wide) at `vp`. The rest of `dst` is untouched.
pub fn blit(
    rgb: &[u8],
    fw: u32,
    fh: u32,
    dst: &mut [u32],
    dw: u32,
    vp: Viewport,
    filter: ScaleArg,
) {
    let needed = (fw as usize) * (fh as usize) * 3;
    if rgb.len() < needed || vp.w == 0 || vp.h == 0 || fw == 0 || fh == 0 {
        return;
    }
    let rows = dst.len() / dw.max(1) as usize;
    if (vp.y + vp.h) as usize > rows || vp.x + vp.w > dw {
        return;
    }
    if vp.w == fw && vp.h == fh {
        copy(rgb, fw, fh, dst, dw, vp);
    } else {
        match filter {
            ScaleArg::Nearest => nearest(rgb, fw, fh, dst, dw, vp),
            ScaleArg::Bilinear => bilinear(rgb, fw, fh, dst, dw, vp),
        }
    }
}

fn copy(rgb: &[u8], fw: u32, fh: u32, dst: &mut [u32], dw: u32, vp: Viewport) {
    let (fw, dw) = (fw as usize, dw as usize);
    for y in 0..fh as usize {
        let src = &rgb[y * fw * 3..(y + 1) * fw * 3];
        let start = (vp.y as usize + y) * dw + vp.x as usize;
        let out = &mut dst[start..start + fw];
        for (o, p) in out.iter_mut().zip(src.chunks_exact(3)) {
            *o = pack(p[0], p[1], p[2]);
        }
    }
}

fn nearest(rgb: &[u8], fw: u32, fh: u32, dst: &mut [u32], dw: u32, vp: Viewport) {
    let xs: Vec<usize> = (0..vp.w)
        .map(|x| ((u64::from(x) * u64::from(fw) / u64::from(vp.w)) as usize) * 3)
        .collect();
    let stride = fw as usize * 3;
    for y in 0..vp.h {
        let sy = (u64::from(y) * u64::from(fh) / u64::from(vp.h)) as usize;
        let row = &rgb[sy * stride..(sy + 1) * stride];
        let start = (vp.y + y) as usize * dw as usize + vp.x as usize;
        let out = &mut dst[start..start + vp.w as usize];
        for (o, &sx) in out.iter_mut().zip(&xs) {
            *o = pack(row[sx], row[sx + 1], row[sx + 2]);
        }
    }
}

/// Source position and 8-bit weight of the next sample for each destination index
/// (pixel-centre aligned).
fn taps(dst_len: u32, src_len: u32) -> Vec<(usize, usize, u32)> {
    let scale = f64::from(src_len) / f64::from(dst_len);
    let max = src_len.saturating_sub(1) as usize;
    (0..dst_len)
        .map(|d| {
            let s = ((f64::from(d) + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(max);
            let i1 = (i0 + 1).min(max);
            let w = ((s - i0 as f64) * 256.0).round().clamp(0.0, 256.0) as u32;
            (i0, i1, w)
        })
        .collect()
}

/// Blend two 0RGB pixels with weight `w` (0..=256) on `b`, two channels at a time (SWAR):
/// red and blue share one multiply, green gets another; no lane overflows (255 × 256 < 2¹⁶).
#[inline]
fn mix(a: u32, b: u32, w: u32) -> u32 {
    let iw = 256 - w;
    let rb = (((a & 0x00ff_00ff) * iw + (b & 0x00ff_00ff) * w) >> 8) & 0x00ff_00ff;
    let g = (((a & 0x0000_ff00) * iw + (b & 0x0000_ff00) * w) >> 8) & 0x0000_ff00;
    rb | g
}

/// One source row, packed and scaled horizontally to the viewport width.
fn hrow(
    rgb: &[u8],
    stride: usize,
    sy: usize,
    xt: &[(usize, usize, u32)],
    packed: &mut Vec<u32>,
    out: &mut [u32],
) {
    let row = &rgb[sy * stride..(sy + 1) * stride];
    packed.clear();
    packed.extend(row.chunks_exact(3).map(|p| pack(p[0], p[1], p[2])));
    for (o, &(x0, x1, wx)) in out.iter_mut().zip(xt) {
        *o = mix(packed[x0], packed[x1], wx);
    }
}

fn bilinear(rgb: &[u8], fw: u32, fh: u32, dst: &mut [u32], dw: u32, vp: Viewport) {
    let xt = taps(vp.w, fw);
    let yt = taps(vp.h, fh);
    let stride = fw as usize * 3;
    let w = vp.w as usize;
    let mut packed = Vec::with_capacity(fw as usize);
    // Two horizontally scaled rows, reused while consecutive output rows share source rows.
    let mut rows = [vec![0u32; w], vec![0u32; w]];
    let mut have = [usize::MAX, usize::MAX];
    for (y, &(y0, y1, wy)) in yt.iter().enumerate() {
        if have[0] != y0 {
            if have[1] == y0 {
                rows.swap(0, 1);
                have.swap(0, 1);
            } else {
                hrow(rgb, stride, y0, &xt, &mut packed, &mut rows[0]);
                have[0] = y0;
            }
        }
        if have[1] != y1 {
            hrow(rgb, stride, y1, &xt, &mut packed, &mut rows[1]);
            have[1] = y1;
        }
        let start = (vp.y as usize + y) * dw as usize + vp.x as usize;
        let out = &mut dst[start..start + w];
        let (top, bot) = (&rows[0], &rows[1]);
        for ((o, &a), &b) in out.iter_mut().zip(top).zip(bot) {
            *o = mix(a, b, wy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_letterboxes() {
        assert_eq!(
            Viewport::fit(1280, 720, 1280, 720),
            Viewport {
                x: 0,
                y: 0,
                w: 1280,
                h: 720
            }
        );
        assert_eq!(
            Viewport::fit(1280, 720, 1280, 1000),
            Viewport {
                x: 0,
                y: 140,
                w: 1280,
                h: 720
            }
        );
        assert_eq!(
            Viewport::fit(1280, 720, 640, 720),
            Viewport {
                x: 0,
                y: 180,
                w: 640,
                h: 360
            }
        );
        assert_eq!(Viewport::fit(0, 720, 640, 720), Viewport::default());
    }

    #[test]
    fn pointer_maps_to_frame_coordinates() {
        let vp = Viewport::fit(1280, 720, 640, 720);
        assert_eq!(vp.to_frame(0.0, 180.0, 1280, 720), (0, 0));
        assert_eq!(vp.to_frame(320.0, 360.0, 1280, 720), (640, 360));
        assert_eq!(vp.to_frame(9999.0, -5.0, 1280, 720), (1279, 0));
    }

    fn gradient(w: u32, h: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for y in 0..h {
            for x in 0..w {
                v.extend_from_slice(&[(x * 255 / w) as u8, (y * 255 / h) as u8, 7]);
            }
        }
        v
    }

    #[test]
    fn copy_and_scale_agree_on_uniform_colour() {
        let rgb: Vec<u8> = [10u8, 20, 30].repeat(64 * 48);
        for filter in [ScaleArg::Nearest, ScaleArg::Bilinear] {
            let mut dst = vec![0u32; 100 * 100];
            let vp = Viewport::fit(64, 48, 100, 100);
            blit(&rgb, 64, 48, &mut dst, 100, vp, filter);
            let inside = dst[(vp.y as usize + 3) * 100 + vp.x as usize + 3];
            assert_eq!(inside, 0x000a_141e, "{filter:?}");
            assert_eq!(dst[0], 0, "letterbox untouched");
        }
    }

    #[test]
    fn identity_size_is_exact() {
        let rgb = gradient(32, 16);
        let mut dst = vec![0u32; 32 * 16];
        blit(
            &rgb,
            32,
            16,
            &mut dst,
            32,
            Viewport::fit(32, 16, 32, 16),
            ScaleArg::Bilinear,
        );
        assert_eq!(
            dst[5 * 32 + 7],
            pack(rgb[(5 * 32 + 7) * 3], rgb[(5 * 32 + 7) * 3 + 1], 7)
        );
    }

    #[test]
    fn bilinear_downscale_stays_close_to_source() {
        let rgb = gradient(200, 100);
        let mut dst = vec![0u32; 100 * 50];
        blit(
            &rgb,
            200,
            100,
            &mut dst,
            100,
            Viewport::fit(200, 100, 100, 50),
            ScaleArg::Bilinear,
        );
        let p = dst[25 * 100 + 50];
        let r = (p >> 16) & 0xff;
        assert!((126..=130).contains(&r), "r={r}");
    }

    #[test]
    fn bilinear_matches_a_float_reference() {
        let (fw, fh, dw, dh) = (37u32, 23u32, 90u32, 61u32);
        let rgb: Vec<u8> = (0..fw * fh * 3).map(|i| (i * 73 % 251) as u8).collect();
        let mut dst = vec![0u32; (dw * dh) as usize];
        let vp = Viewport {
            x: 0,
            y: 0,
            w: dw,
            h: dh,
        };
        blit(&rgb, fw, fh, &mut dst, dw, vp, ScaleArg::Bilinear);
        let xt = taps(dw, fw);
        let yt = taps(dh, fh);
        for (y, &(y0, y1, wy)) in yt.iter().enumerate() {
            for (x, &(x0, x1, wx)) in xt.iter().enumerate() {
                for c in 0..3 {
                    let p = |xx: usize, yy: usize| f64::from(rgb[(yy * fw as usize + xx) * 3 + c]);
                    let (fx, fy) = (f64::from(wx) / 256.0, f64::from(wy) / 256.0);
                    let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
                    let bot = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
                    let want = top * (1.0 - fy) + bot * fy;
                    let got = f64::from((dst[y * dw as usize + x] >> (16 - 8 * c)) & 0xff);
                    assert!((got - want).abs() <= 2.0, "({x},{y}) c{c}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn bad_sizes_do_not_panic() {
        let mut dst = vec![0u32; 10];
        blit(
            &[1, 2, 3],
            64,
            64,
            &mut dst,
            10,
            Viewport::fit(64, 64, 10, 1),
            ScaleArg::Nearest,
        );
        blit(
            &[0; 64 * 64 * 3],
            64,
            64,
            &mut dst,
            10,
            Viewport {
                x: 5,
                y: 0,
                w: 10,
                h: 1,
            },
            ScaleArg::Nearest,
        );
    }
}
