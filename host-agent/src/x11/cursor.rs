//! The pointer image (XFixes) composited into captured frames: the pointer is not part of the
//! X image, and carrying it as a separate bitmap would widen the gateway's allow-list, so the
//! agent draws it into the video (docs/protocol.md: cursor handling).

use crate::frame::Frame;

/// A cursor image: premultiplied ARGB pixels (as XFixes delivers them), hotspot and position.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CursorImage {
    /// Pointer x on the screen.
    pub x: i32,
    /// Pointer y on the screen.
    pub y: i32,
    /// Image width.
    pub width: u16,
    /// Image height.
    pub height: u16,
    /// Hotspot x within the image.
    pub xhot: u16,
    /// Hotspot y within the image.
    pub yhot: u16,
    /// `width * height` premultiplied ARGB pixels.
    pub pixels: Vec<u32>,
}

/// Blend `cursor` over `frame` ("over" with premultiplied alpha), clipped to the frame.
pub fn composite_cursor(frame: &mut Frame, cursor: &CursorImage) {
    let (cw, ch) = (i32::from(cursor.width), i32::from(cursor.height));
    if cursor.pixels.len() < (cw * ch) as usize {
        return;
    }
    let left = cursor.x - i32::from(cursor.xhot);
    let top = cursor.y - i32::from(cursor.yhot);
    let (fw, fh) = (i32::from(frame.width), i32::from(frame.height));
    for cy in 0..ch {
        let y = top + cy;
        if y < 0 || y >= fh {
            continue;
        }
        for cx in 0..cw {
            let x = left + cx;
            if x < 0 || x >= fw {
                continue;
            }
            let argb = cursor.pixels[(cy * cw + cx) as usize];
            let a = argb >> 24;
            if a == 0 {
                continue;
            }
            let at = y as usize * frame.stride + x as usize * 4;
            let Some(px) = frame.bgra.get_mut(at..at + 3) else {
                continue;
            };
            let inv = 255 - a;
            for (i, shift) in [(0usize, 0u32), (1, 8), (2, 16)] {
                let src = (argb >> shift) & 0xff;
                let dst = u32::from(px[i]);
                px[i] = (src + (dst * inv + 127) / 255).min(255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_cursor_pixel_replaces_and_clips() {
        let mut f = Frame::solid(64, 64, [255, 255, 255, 0]);
        let c = CursorImage {
            x: 1,
            y: 1,
            width: 2,
            height: 2,
            xhot: 1,
            yhot: 1,
            pixels: vec![0xff00_0000, 0, 0x8000_0000, 0xff00_00ff],
        };
        composite_cursor(&mut f, &c);
        assert_eq!(f.pixel(0, 0), Some([0, 0, 0, 0]));
        assert_eq!(f.pixel(1, 0), Some([255, 255, 255, 0]));
        assert_eq!(f.pixel(0, 1), Some([127, 127, 127, 0]));
        assert_eq!(f.pixel(1, 1), Some([255, 0, 0, 0]));
        // Off-screen cursor: no panic, nothing drawn.
        let off = CursorImage {
            x: -50,
            y: 500,
            ..c
        };
        composite_cursor(&mut f, &off);
    }
}
