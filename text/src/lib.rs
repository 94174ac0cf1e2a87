//! Text drawn into pictures: the native viewer's status messages and the agent's watermark.
//! A system font is read (never written) and rasterised with ab_glyph; Japanese needs a CJK
//! font, so CJK fonts are tried first.
//!
//! 画面に描く文字（ビューアの状態表示、エージェントの透かし）。日本語のため CJK フォントを優先します。

use std::path::{Path, PathBuf};

use ab_glyph::{point, Font, FontVec, PxScale, ScaleFont};
use image::{GrayImage, Luma};

/// Fonts tried in order (CJK first so 日本語 renders): Debian's and other distributions'
/// Noto CJK, Japanese fonts on Windows and macOS, then a Latin fallback.
pub const CANDIDATES: &[&str] = &[
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
    path: PathBuf,
}

impl std::fmt::Debug for TextRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextRenderer")
            .field("path", &self.path)
            .finish()
    }
}

impl TextRenderer {
    /// Load `path`, or the first of [`CANDIDATES`] that parses.
    pub fn load(path: Option<&Path>) -> Option<TextRenderer> {
        let list: Vec<PathBuf> = match path {
            Some(p) => vec![p.to_path_buf()],
            None => CANDIDATES.iter().map(PathBuf::from).collect(),
        };
        list.into_iter().find_map(|p| {
            let data = std::fs::read(&p).ok()?;
            let font = FontVec::try_from_vec_and_index(data, 0).ok()?;
            tracing::debug!(font = %p.display(), "font loaded");
            Some(TextRenderer { font, path: p })
        })
    }

    /// The file the font came from.
    pub fn path(&self) -> &Path {
        &self.path
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

    /// Rasterise `text` with its top-left at (`x`, `y`): `plot(px, py, coverage)` for every
    /// pixel a glyph touches (coordinates may lie outside any picture; coverage 0..=1).
    pub fn draw(&self, x: f32, y: f32, size: f32, text: &str, mut plot: impl FnMut(i64, i64, f32)) {
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
                plot(
                    b.min.x as i64 + i64::from(gx),
                    b.min.y as i64 + i64::from(gy),
                    cov,
                );
            });
        }
    }

    /// `text` at `size` px as a coverage mask (0 = none, 255 = full) just large enough for
    /// it, with `pad` empty pixels on every side.
    pub fn mask(&self, text: &str, size: f32, pad: u32) -> GrayImage {
        let w = self.measure(text, size).ceil().max(1.0) as u32 + 2 * pad;
        let h = self.line_height(size).ceil().max(1.0) as u32 + 2 * pad;
        let mut img = GrayImage::new(w, h);
        self.draw(pad as f32, pad as f32, size, text, |x, y, cov| {
            let (Ok(x), Ok(y)) = (u32::try_from(x), u32::try_from(y)) else {
                return;
            };
            if x < w && y < h {
                let v = (cov.clamp(0.0, 1.0) * 255.0).round() as u8;
                let p = img.get_pixel_mut(x, y);
                *p = Luma([p.0[0].max(v)]);
            }
        });
        img
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn japanese_text_has_ink_where_measured() {
        let Some(t) = TextRenderer::load(None) else {
            eprintln!("no font installed: skipped");
            return;
        };
        let m = t.mask("山田 192.0.2.10", 20.0, 2);
        assert!(
            m.width() > 90 && m.height() >= 20,
            "{}x{}",
            m.width(),
            m.height()
        );
        let ink = m.pixels().filter(|p| p.0[0] > 128).count();
        assert!(ink > 100, "only {ink} inked pixels");
        // The padding stays empty.
        assert!((0..m.width()).all(|x| m.get_pixel(x, 0).0[0] == 0));
        assert!((0..m.height()).all(|y| m.get_pixel(0, y).0[0] == 0));
    }

    #[test]
    fn a_missing_font_file_is_none() {
        assert!(TextRenderer::load(Some(Path::new("/nonexistent/font.ttf"))).is_none());
    }
}
