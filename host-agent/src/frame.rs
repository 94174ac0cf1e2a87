//! Captured frames and the trait every frame source implements (X11 capture, synthetic).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the UNIX epoch on the agent's wall clock (the clock the gateway's ping
/// offset is measured against, docs/protocol.md §3.2).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros()
        .try_into()
        .unwrap_or(u64::MAX)
}

/// One captured picture: 32-bit pixels in memory order B, G, R, X (X11 ZPixmap, depth 24,
/// little endian), `stride` bytes per row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Bytes per row (at least `width * 4`).
    pub stride: usize,
    /// Pixel bytes, `stride * height` long.
    pub bgra: Vec<u8>,
    /// When the picture was taken (µs since the UNIX epoch).
    pub capture_us: u64,
    /// Rows `[start, end)` outside of which the picture equals the source's previous one
    /// (XDamage, the pointer's old and new place); `None`: any row may have changed.
    pub changed_rows: Option<(u16, u16)>,
    /// The source's number of this picture (0: the source does not number them).
    pub seq: u64,
    /// Rows `[start, end)` where something was drawn over the screen (the pointer, the
    /// watermark): a source that reuses the buffer reads them again.
    pub overlay_rows: (u16, u16),
}

/// The union of two `changed_rows` (`None`, unknown, absorbs).
pub fn union_rows(a: Option<(u16, u16)>, b: Option<(u16, u16)>) -> Option<(u16, u16)> {
    Some(union_range(a?, b?))
}

/// The smallest row range `[start, end)` holding both (an empty range adds nothing).
pub fn union_range((a0, a1): (u16, u16), (b0, b1): (u16, u16)) -> (u16, u16) {
    if a0 >= a1 {
        (b0, b1)
    } else if b0 >= b1 {
        (a0, a1)
    } else {
        (a0.min(b0), a1.max(b1))
    }
}

impl Frame {
    /// A frame filled with one colour (`[b, g, r, x]`).
    pub fn solid(width: u16, height: u16, bgrx: [u8; 4]) -> Frame {
        let stride = usize::from(width) * 4;
        let mut bgra = Vec::with_capacity(stride * usize::from(height));
        for _ in 0..usize::from(width) * usize::from(height) {
            bgra.extend_from_slice(&bgrx);
        }
        Frame {
            width,
            height,
            stride,
            bgra,
            capture_us: now_us(),
            changed_rows: None,
            seq: 0,
            overlay_rows: (0, 0),
        }
    }

    /// The pixel at (`x`, `y`) as `[b, g, r, x]`, if inside the frame.
    pub fn pixel(&self, x: usize, y: usize) -> Option<[u8; 4]> {
        if x >= usize::from(self.width) || y >= usize::from(self.height) {
            return None;
        }
        let at = y.checked_mul(self.stride)?.checked_add(x * 4)?;
        let p = self.bgra.get(at..at + 4)?;
        Some([p[0], p[1], p[2], p[3]])
    }
}

/// Why a frame source could not produce a frame.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The X server connection failed or was closed (the display is gone).
    #[error("X11 connection lost: {0}")]
    Connection(String),
    /// The X server answered a request with an error.
    #[error("X11 request failed: {0}")]
    Request(String),
    /// The server lacks something capture needs.
    #[error("X11 server unsupported: {0}")]
    Unsupported(String),
    /// Reading the shared-memory segment failed.
    #[error("shared memory: {0}")]
    Shm(#[from] std::io::Error),
}

/// What a source reports when asked to wait for a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Something on screen (or the pointer) changed: capture.
    Damaged,
    /// Nothing changed before the timeout.
    Idle,
}

/// A source of frames: the X11 capture or a synthetic generator (tests, benches).
///
/// The capture loop calls [`FrameSource::wait_change`] and, on a change, [`FrameSource::capture`].
pub trait FrameSource: Send {
    /// Frame size.
    fn size(&self) -> (u16, u16);
    /// Block until the picture may have changed or `timeout` passes.
    fn wait_change(&mut self, timeout: Duration) -> Result<Change, CaptureError>;
    /// Take a picture of the whole screen now (pointer included where the source has one).
    fn capture(&mut self) -> Result<Frame, CaptureError>;
    /// From now on produce `width`×`height` pictures (the session was resized; the X11
    /// capture reads the rectangle at the screen's top-left corner). Fails, changing
    /// nothing, when the size does not fit the source.
    fn set_size(&mut self, width: u16, height: u16) -> Result<(), CaptureError>;
    /// Take back a picture nobody needs any more, for its buffer (a source that reuses it
    /// allocates and clears no new buffer per picture, and may read only what changed since).
    fn recycle(&mut self, _frame: Frame) {}
}

/// Content a [`SyntheticSource`] draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntheticContent {
    /// A static page with a blinking caret: a small area changes every frame.
    StaticCaret,
    /// A page of text lines scrolling up a few pixels per frame.
    Scroll,
    /// Every pixel changes every frame (video-like worst case).
    FullMotion,
}

/// A deterministic frame generator behind the same trait as the X11 capture.
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    width: u16,
    height: u16,
    content: SyntheticContent,
    tick: u64,
    /// When false, `wait_change` reports `Idle` (a settled screen).
    pub changing: bool,
}

impl SyntheticSource {
    /// A generator of `content` at `width`×`height`.
    pub fn new(width: u16, height: u16, content: SyntheticContent) -> Self {
        SyntheticSource {
            width,
            height,
            content,
            tick: 0,
            changing: true,
        }
    }

    /// Render the frame for the current tick without advancing.
    pub fn render(&self) -> Frame {
        let (w, h) = (usize::from(self.width), usize::from(self.height));
        let stride = w * 4;
        let mut bgra = vec![0xffu8; stride * h];
        let t = self.tick as usize;
        for y in 0..h {
            let row = &mut bgra[y * stride..(y + 1) * stride];
            for x in 0..w {
                let px = &mut row[x * 4..x * 4 + 4];
                let v = match self.content {
                    SyntheticContent::StaticCaret => text_pattern(x, y),
                    SyntheticContent::Scroll => text_pattern(x, y + t * 3),
                    SyntheticContent::FullMotion => ((x ^ y).wrapping_add(t * 7) & 0xff) as u8,
                };
                px[0] = v;
                px[1] = v.wrapping_add((y & 0x3f) as u8);
                px[2] = v.wrapping_sub((x & 0x3f) as u8);
            }
        }
        if self.content == SyntheticContent::StaticCaret && t % 2 == 0 {
            // A 2×18 caret at (100, 100).
            for y in 100..118.min(h) {
                for x in 100..102.min(w) {
                    bgra[y * stride + x * 4..y * stride + x * 4 + 3].fill(0);
                }
            }
        }
        Frame {
            width: self.width,
            height: self.height,
            stride,
            bgra,
            capture_us: now_us(),
            changed_rows: None,
            seq: 0,
            overlay_rows: (0, 0),
        }
    }
}

/// Dark "glyph" blocks on white in 20-pixel lines, like a page of text.
fn text_pattern(x: usize, y: usize) -> u8 {
    let line = y / 20;
    let in_line = y % 20;
    let glyph = (x / 9).wrapping_mul(31).wrapping_add(line * 17) % 11;
    if (4..16).contains(&in_line) && x % 9 < 7 && glyph > 2 && x > 40 && x < 1200 {
        0x20
    } else {
        0xff
    }
}

impl FrameSource for SyntheticSource {
    fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }
    fn wait_change(&mut self, timeout: Duration) -> Result<Change, CaptureError> {
        if self.changing {
            Ok(Change::Damaged)
        } else {
            std::thread::sleep(timeout);
            Ok(Change::Idle)
        }
    }
    fn capture(&mut self) -> Result<Frame, CaptureError> {
        let frame = self.render();
        self.tick += 1;
        Ok(frame)
    }
    fn set_size(&mut self, width: u16, height: u16) -> Result<(), CaptureError> {
        if width == 0 || height == 0 {
            return Err(CaptureError::Unsupported(format!("size {width}x{height}")));
        }
        self.width = width;
        self.height = height;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_scroll_changes_between_ticks() {
        let mut s = SyntheticSource::new(320, 240, SyntheticContent::Scroll);
        let a = s.capture().map(|f| f.bgra);
        let b = s.capture().map(|f| f.bgra);
        assert!(matches!((a, b), (Ok(a), Ok(b)) if a != b));
    }

    #[test]
    fn pixel_outside_is_none() {
        let f = Frame::solid(64, 64, [1, 2, 3, 0]);
        assert_eq!(f.pixel(63, 63), Some([1, 2, 3, 0]));
        assert_eq!(f.pixel(64, 0), None);
    }
}
