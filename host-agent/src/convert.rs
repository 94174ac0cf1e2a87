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
    let stride = u32::try_from(stride).map_err(|_| ConvertError("stride too large".into()))?;
    let cw = out.chroma_width() as u32;
    let mut planar = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(&mut out.y),
        y_stride: u32::from(out.width),
        u_plane: BufferStoreMut::Borrowed(&mut out.u),
        u_stride: cw,
        v_plane: BufferStoreMut::Borrowed(&mut out.v),
        v_stride: cw,
        width: u32::from(out.width),
        height: u32::from(out.height),
    };
    bgra_to_yuv420(
        &mut planar,
        bgra,
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
