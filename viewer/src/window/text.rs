//! Text for status messages and the overlay: a system font (read, never written) rasterised
//! with ab_glyph. Japanese needs a CJK font; the first one found is used.

use std::path::{Path, PathBuf};

use ab_glyph::{point, Font, FontVec, PxScale, ScaleFont};

/// Fonts tried in order (CJK first so 日本語 messages render).
const CANDIDATES: &[&str] = &[
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/truetype/vlgothic/VL-Gothic-Regular.ttf",
    "C:\\Windows\\Fonts\\meiryo.ttc",
    "C:\\Windows\\Fonts\\YuGothM.ttc",
    "C:\\Windows\\Fonts\\msgothic.ttc",
    "/System/Library/Fonts/ヒラギノ角ゴシック W3.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// A loaded font.
pub struct TextRenderer {
    font: FontVec,
}

impl TextRenderer {
    /// Load `path`, or the first candidate that parses.
    pub fn load(path: Option<&Path>) -> Option<TextRenderer> {
        let list: Vec<PathBuf> = match path {
            Some(p) => vec![p.to_path_buf()],
            None => CANDIDATES.iter().map(PathBuf::from).collect(),
        };
        list.iter().find_map(|p| {
            let data = std::fs::read(p).ok()?;
            let font = FontVec::try_from_vec_and_index(data, 0).ok()?;
            tracing::debug!(font = %p.display(), "font loaded");
            Some(TextRenderer { font })
        })
    }

    /// Width of `text` at `size` px.
    pub fn measure(&self, text: &str, size: f32) -> f32 {
        let f = self.font.as_scaled(PxScale::from(size));
        text.chars().map(|c| f.h_advance(f.glyph_id(c))).sum()
    }

    /// Line height at `size` px.
    pub fn line_height(&self, size: f32) -> f32 {
        self.font.as_scaled(PxScale::from(size)).height()
    }

    /// Draw `text` with its top-left at (`x`, `y`) into a 0RGB buffer `dw`×`dh`.
    #[allow(clippy::too_many_arguments)]
    pub fn draw(
        &self,
        dst: &mut [u32],
        dw: u32,
        dh: u32,
        x: f32,
        y: f32,
        size: f32,
        text: &str,
        color: u32,
    ) {
        let scale = PxScale::from(size);
        let f = self.font.as_scaled(scale);
        let baseline = y + f.ascent();
        let mut caret = x;
        for c in text.chars() {
            let id = f.glyph_id(c);
            let glyph = id.with_scale_and_position(scale, point(caret, baseline));
            caret += f.h_advance(id);
            let Some(outlined) = self.font.outline_glyph(glyph) else {
                continue;
            };
            let b = outlined.px_bounds();
            outlined.draw(|gx, gy, cov| {
                let px = b.min.x as i64 + i64::from(gx);
                let py = b.min.y as i64 + i64::from(gy);
                if px < 0 || py < 0 || px >= i64::from(dw) || py >= i64::from(dh) {
                    return;
                }
                let i = py as usize * dw as usize + px as usize;
                if let Some(d) = dst.get_mut(i) {
                    *d = blend(*d, color, cov);
                }
            });
        }
    }
}

/// Blend `color` over `under` with coverage `a` (0..=1).
pub fn blend(under: u32, color: u32, a: f32) -> u32 {
    let a = (a.clamp(0.0, 1.0) * 256.0) as u32;
    let mix = |shift: u32| {
        let u = (under >> shift) & 0xff;
        let c = (color >> shift) & 0xff;
        ((c * a + u * (256 - a)) >> 8) & 0xff
    };
    (mix(16) << 16) | (mix(8) << 8) | mix(0)
}

/// Darken a rectangle (for text backgrounds).
pub fn shade(dst: &mut [u32], dw: u32, x: u32, y: u32, w: u32, h: u32) {
    let rows = dst.len() / dw.max(1) as usize;
    for yy in y as usize..((y + h) as usize).min(rows) {
        for xx in x as usize..((x + w) as usize).min(dw as usize) {
            let i = yy * dw as usize + xx;
            dst[i] = blend(dst[i], 0, 0.6);
        }
    }
}
