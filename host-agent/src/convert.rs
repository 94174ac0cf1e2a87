//! BGRA → I420 colour conversion with the `yuv` crate (SIMD). BT.601, limited range: what
//! openh264's decoder (and therefore the viewer) assumes when the SPS carries no VUI.

use yuv::{
    bgra_to_yuv420, BufferStoreMut, YuvConversionMode, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix,
};

/// A planar 4:2:0 picture (Y full size, U and V half size in both directions, rounded up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420 {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Luma plane, `width` bytes per row.
    pub y: Vec<u8>,
    /// Cb plane, `chroma_width()` bytes per row.
    pub u: Vec<u8>,
    /// Cr plane, `chroma_width()` bytes per row.
    pub v: Vec<u8>,
}

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
#[error("colour conversion failed: {0}")]
pub struct ConvertError(String);

impl I420 {
    /// A black picture of this size.
    pub fn new(width: u16, height: u16) -> I420 {
        let (w, h) = (usize::from(width), usize::from(height));
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        I420 {
            width,
            height,
            y: vec![16; w * h],
            u: vec![128; cw * ch],
            v: vec![128; cw * ch],
        }
    }

    /// Bytes per chroma row.
    pub fn chroma_width(&self) -> usize {
        usize::from(self.width).div_ceil(2)
    }
}

/// Convert `bgra` (`stride` bytes per row) into `out`, which must already have the frame size.
pub fn bgra_to_i420(bgra: &[u8], stride: usize, out: &mut I420) -> Result<(), ConvertError> {
    let height = out.height;
    bgra_to_i420_rows(bgra, stride, out, (0, height))
}

/// Convert only rows `[start, end)` of `bgra` into `out` (the rest of `out` is left as it is):
/// `start` is taken down and `end` up to even rows, since each chroma sample covers two rows.
/// The result is the same as converting the whole picture, for those rows.
pub fn bgra_to_i420_rows(
    bgra: &[u8],
    stride: usize,
    out: &mut I420,
    (start, end): (u16, u16),
) -> Result<(), ConvertError> {
    let h = usize::from(out.height);
    let y0 = usize::from(start & !1).min(h);
    let y1 = ((usize::from(end).min(h) + 1) & !1).min(h);
    if y1 <= y0 {
        return Ok(());
    }
    let w = usize::from(out.width);
    let cw = out.chroma_width();
    let (c0, c1) = (y0 / 2, y1.div_ceil(2));
    let rows = bgra
        .get(y0 * stride..)
        .ok_or_else(|| ConvertError("rows outside the picture".into()))?;
    let stride = u32::try_from(stride).map_err(|_| ConvertError("stride too large".into()))?;
    let mut planar = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(&mut out.y[y0 * w..y1 * w]),
        y_stride: w as u32,
        u_plane: BufferStoreMut::Borrowed(&mut out.u[c0 * cw..c1 * cw]),
        u_stride: cw as u32,
        v_plane: BufferStoreMut::Borrowed(&mut out.v[c0 * cw..c1 * cw]),
        v_stride: cw as u32,
        width: w as u32,
        height: (y1 - y0) as u32,
    };
    bgra_to_yuv420(
        &mut planar,
        rows,
        stride,
        YuvRange::Limited,
        YuvStandardMatrix::Bt601,
        YuvConversionMode::Balanced,
    )
    .map_err(|e| ConvertError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;

    #[test]
    fn converting_the_changed_rows_gives_what_converting_everything_gives() {
        use crate::frame::{FrameSource, SyntheticContent, SyntheticSource};
        let mut page = SyntheticSource::new(320, 240, SyntheticContent::Scroll);
        let after = page.capture().expect("frame");
        // The picture before: rows 37..121 differ (odd bounds: two rows share chroma).
        let mut before = after.clone();
        for y in 37..121 {
            for x in 0..320 {
                before.bgra[y * before.stride + x * 4] ^= 0x5a;
            }
        }
        let mut whole = I420::new(320, 240);
        assert!(bgra_to_i420(&after.bgra, after.stride, &mut whole).is_ok());
        let mut updated = I420::new(320, 240);
        assert!(bgra_to_i420(&before.bgra, before.stride, &mut updated).is_ok());
        assert_ne!(updated, whole);
        assert!(bgra_to_i420_rows(&after.bgra, after.stride, &mut updated, (37, 121)).is_ok());
        assert_eq!(updated, whole);
        // Rows beyond the picture are clamped; an empty range changes nothing.
        assert!(bgra_to_i420_rows(&after.bgra, after.stride, &mut updated, (239, 900)).is_ok());
        assert!(bgra_to_i420_rows(&before.bgra, before.stride, &mut updated, (50, 50)).is_ok());
        assert_eq!(updated, whole);
    }

    #[test]
    fn white_and_red_convert_to_expected_bt601_values() {
        let white = Frame::solid(64, 64, [255, 255, 255, 0]);
        let mut out = I420::new(64, 64);
        assert!(bgra_to_i420(&white.bgra, white.stride, &mut out).is_ok());
        assert!(out.y.iter().all(|&y| (234..=236).contains(&y)));
        assert!(out.u.iter().all(|&u| (127..=129).contains(&u)));

        let red = Frame::solid(64, 64, [0, 0, 255, 0]);
        assert!(bgra_to_i420(&red.bgra, red.stride, &mut out).is_ok());
        // BT.601 limited: red → Y≈81, V≈240.
        assert!(out.y.iter().all(|&y| (79..=83).contains(&y)));
        assert!(out.v.iter().all(|&v| (238..=241).contains(&v)));
    }

    #[test]
    fn odd_sizes_are_accepted() {
        let f = Frame::solid(65, 67, [0, 0, 0, 0]);
        let mut out = I420::new(65, 67);
        assert!(bgra_to_i420(&f.bgra, f.stride, &mut out).is_ok());
    }
}
