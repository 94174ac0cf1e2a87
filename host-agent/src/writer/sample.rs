//! A synthetic web page for the writer's tests and benchmarks: lines of pseudo-random
//! "glyphs" (black, some blue) on white, a fixed grey bar on top holding a text field, and a
//! scrollbar whose thumb follows the scroll offset. What a browser shows, reduced to what
//! matters to an encoder: text, fixed and scrolling parts, typed glyphs and a caret.

use crate::convert::{bgra_to_i420, ConvertError, I420};

/// A synthetic page, rendered at a scroll offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Picture width (even).
    pub width: usize,
    /// Picture height (even).
    pub height: usize,
    /// Which text the page holds (another seed: another page).
    pub seed: u64,
    /// Vertical scroll offset in pixels.
    pub scroll_y: usize,
    /// Horizontal scroll offset in pixels.
    pub scroll_x: usize,
    /// Glyphs typed into the text field.
    pub typed: usize,
    /// Whether the caret is drawn (after the typed glyphs).
    pub caret: bool,
}

fn hash(mut v: u64) -> u64 {
    v ^= v >> 33;
    v = v.wrapping_mul(0xff51_afd7_ed55_8ccd);
    v ^= v >> 33;
    v
}

impl Page {
    /// The top of page `seed`, nothing typed, no caret.
    pub fn new(width: usize, height: usize, seed: u64) -> Page {
        Page {
            width,
            height,
            seed,
            scroll_y: 0,
            scroll_x: 0,
            typed: 0,
            caret: false,
        }
    }

    /// Document pixel (in page coordinates) as BGRX.
    fn doc(&self, x: usize, y: usize) -> [u8; 4] {
        let (cell_x, cell_y) = (x / 9, y / 18);
        let (in_x, in_y) = (x % 9, y % 18);
        let line = hash(self.seed ^ (cell_y as u64) << 20);
        if line % 5 == 0 || !(3..=14).contains(&in_y) || in_x > 7 {
            return [255, 255, 255, 0];
        }
        let g = hash(self.seed ^ ((cell_y as u64) << 20) ^ cell_x as u64);
        if g % 7 == 0 {
            return [255, 255, 255, 0];
        }
        let bit = (g >> ((in_y - 3) * 5 + in_x % 5)) & 1 == 1;
        match (bit, line % 3) {
            (false, _) => [255, 255, 255, 0],
            (true, 0) => [200, 60, 20, 0],
            (true, _) => [20, 20, 20, 0],
        }
    }

    /// The picture as the agent's capture would convert it.
    pub fn render(&self) -> Result<I420, ConvertError> {
        let (w, h) = (self.width, self.height);
        let mut bgra = vec![0u8; w * h * 4];
        for y in 0..h {
            for x in 0..w {
                let in_field = (12..36).contains(&y) && (20..20 + 9 * 20).contains(&x);
                let px = if y < 48 && !in_field {
                    [120, 120, 120, 0]
                } else if x >= w - 12 {
                    // Scrollbar: its thumb follows the scroll offset.
                    let thumb = 48 + self.scroll_y / 8;
                    if (thumb..thumb + 40).contains(&y) {
                        [90, 90, 90, 0]
                    } else {
                        [230, 230, 230, 0]
                    }
                } else if in_field {
                    // A text field in the top bar, with typed glyphs and a caret.
                    let col = (x - 20) / 9;
                    if self.caret && x == 20 + 9 * self.typed && y > 14 && y < 34 {
                        [0, 0, 0, 0]
                    } else if col < self.typed {
                        self.doc(x + 1000, y + 2000)
                    } else {
                        [250, 250, 250, 0]
                    }
                } else {
                    self.doc(x + self.scroll_x, y + self.scroll_y)
                };
                bgra[(y * w + x) * 4..][..4].copy_from_slice(&px);
            }
        }
        let mut pic = I420::new(w as u16, h as u16);
        bgra_to_i420(&bgra, w * 4, &mut pic)?;
        Ok(pic)
    }
}
