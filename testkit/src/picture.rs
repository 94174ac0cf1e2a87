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

    /// Pixels in the rectangle from (`x0`, `y0`) to (`x1`, `y1`) (exclusive, clamped to the
    /// picture) that are dark (every channel below 100): text drawn on a light background.
    pub fn dark_in(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> usize {
        let (w, h) = (self.width, self.px.len() / self.width.max(1));
        (y0.min(h)..y1.min(h))
            .flat_map(|y| (x0.min(w)..x1.min(w)).map(move |x| y * w + x))
            .filter(|&i| self.px[i].iter().all(|c| *c < 100))
            .count()
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
