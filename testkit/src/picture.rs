//! Snapshots (PNG files the headless viewer writes) as pixels, for checks of what a user sees.

use std::path::Path;

/// A decoded picture as RGB pixels, row by row.
#[derive(Debug, Clone)]
pub struct Picture {
    /// The pixels.
    pub px: Vec<[u8; 3]>,
    /// Pixels per row.
    pub width: usize,
}

impl Picture {
    /// Decode a PNG file (any colour type); panics with the path on any error.
    pub fn load(path: &Path) -> Picture {
        let img = image::open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .into_rgb8();
        Picture {
            width: img.width() as usize,
            px: img.pixels().map(|p| p.0).collect(),
        }
    }

    /// Share of pixels for which `pred` holds.
    pub fn share(&self, pred: impl Fn(&[u8; 3]) -> bool) -> f64 {
        self.px.iter().filter(|p| pred(p)).count() as f64 / self.px.len().max(1) as f64
    }

    /// Share of pixels in the band of rows from `top` to `bottom` (fractions of the height)
    /// that differ clearly (by more than 40 in a channel) from `other`, a picture of one size.
    pub fn changed_in(&self, other: &Picture, top: f64, bottom: f64) -> f64 {
        assert_eq!(self.px.len(), other.px.len(), "pictures of one size");
        let (w, h) = (self.width, self.px.len() / self.width.max(1));
        let rows = (h as f64 * top) as usize..(h as f64 * bottom) as usize;
        let (mut changed, mut total) = (0usize, 0usize);
        for y in rows {
            for x in 0..w {
                let (a, b) = (self.px[y * w + x], other.px[y * w + x]);
                total += 1;
                if a.iter().zip(b.iter()).any(|(p, q)| p.abs_diff(*q) > 40) {
                    changed += 1;
                }
            }
        }
        changed as f64 / total.max(1) as f64
    }

    /// [`Picture::changed_in`] over the whole picture.
    pub fn changed_from(&self, other: &Picture) -> f64 {
        self.changed_in(other, 0.0, 1.0)
    }
}
