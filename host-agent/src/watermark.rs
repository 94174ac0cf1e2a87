//! The watermark: the user, the viewer's address (both written by the gateway into the
//! `Open` message) and the current date and time, drawn into every captured picture before it
//! is encoded, so that a photo of the screen can be traced (docs/agent.md, docs/operations.md).
//!
//! 透かし: 利用者名・端末アドレス・日時を画面に描き込みます（画面の撮影による持ち出しの追跡用）。
//!
//! The text is rendered once a minute into a light-on-dark tile (an `image` grey+alpha buffer:
//! light text over a one-pixel dark shadow, so it shows on white and on dark pages alike); each
//! picture only blends that tile in where it goes. The wrapped frame source reports a change
//! when the minute turns, so an idle screen still shows the current time.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use image::{GrayAlphaImage, LumaA};
use tsuitate_cli::time::Civil;
use tsuitate_protocol::{Watermark, WatermarkPlace};
use tsuitate_text::TextRenderer;

use crate::frame::{now_us, union_range, CaptureError, Change, Frame, FrameSource};

/// Space between the tile and the picture's edge, in pixels.
const MARGIN: i64 = 12;
/// The text colour and the shadow's.
const LIGHT: u8 = 245;
const DARK: u8 = 16;

/// The font every session's watermark uses: loaded once per agent (`watermark_font`, else the
/// first CJK font installed). `None` when no font can be read.
pub fn font(path: Option<&Path>) -> Option<Arc<TextRenderer>> {
    static FONT: OnceLock<Option<Arc<TextRenderer>>> = OnceLock::new();
    FONT.get_or_init(|| {
        let f = TextRenderer::load(path).map(Arc::new);
        match &f {
            Some(f) => tracing::info!(font = %f.path().display(), "watermark font"),
            None => tracing::warn!(
                "no font for the watermark: install fonts-noto-cjk or set watermark_font; sessions that must show a watermark will not start / 透かし用のフォントがありません"
            ),
        }
        f
    })
    .clone()
}

/// One session's watermark.
#[derive(Debug)]
pub struct Painter {
    spec: Watermark,
    font: Arc<TextRenderer>,
    /// The minute (since the epoch, in the watermark's time zone) `tile` shows.
    minute: i64,
    tile: GrayAlphaImage,
}

impl Painter {
    /// A painter for `spec` with `font`, rendered for now.
    pub fn new(spec: Watermark, font: Arc<TextRenderer>) -> Painter {
        let mut p = Painter {
            spec,
            font,
            minute: i64::MIN,
            tile: GrayAlphaImage::new(1, 1),
        };
        p.refresh(unix_secs(now_us()));
        p
    }

    fn minute_at(&self, unix_secs: i64) -> i64 {
        (unix_secs + i64::from(self.spec.utc_offset_min) * 60).div_euclid(60)
    }

    /// Whether the minute shown is no longer the minute at `unix_secs`.
    pub fn stale(&self, unix_secs: i64) -> bool {
        self.minute_at(unix_secs) != self.minute
    }

    /// The line drawn for the minute at `unix_secs`: the gateway's text and `YYYY-MM-DD HH:MM`.
    pub fn line(&self, unix_secs: i64) -> String {
        let local = unix_secs + i64::from(self.spec.utc_offset_min) * 60;
        format!("{}  {}", self.spec.text, Civil::from_unix(local).minutes())
    }

    /// Draw `text` instead from the next picture on (its owner took the browser over from
    /// another PC: the address in it changed).
    pub fn set_text(&mut self, text: String) {
        self.spec.text = text;
        // Rendered again at the next refresh.
        self.minute = i64::MIN;
    }

    /// Render the tile again if the minute changed.
    pub fn refresh(&mut self, unix_secs: i64) {
        let minute = self.minute_at(unix_secs);
        if minute == self.minute {
            return;
        }
        self.minute = minute;
        self.tile = self.render(&self.line(unix_secs));
    }

    /// Light text over a dark shadow one pixel down and right, at the configured opacity.
    fn render(&self, line: &str) -> GrayAlphaImage {
        let mask = self.font.mask(line, f32::from(self.spec.size_px), 2);
        let (w, h) = mask.dimensions();
        let opacity = u32::from(self.spec.opacity);
        GrayAlphaImage::from_fn(w, h, |x, y| {
            let text = u32::from(mask.get_pixel(x, y).0[0]);
            let shadow = match (x.checked_sub(1), y.checked_sub(1)) {
                (Some(sx), Some(sy)) => u32::from(mask.get_pixel(sx, sy).0[0]),
                _ => 0,
            };
            // Text over shadow ("over" compositing), both with coverage in 0..=255.
            let alpha = text + shadow * (255 - text) / 255;
            if alpha == 0 {
                return LumaA([0, 0]);
            }
            let value =
                (u32::from(LIGHT) * text + u32::from(DARK) * shadow * (255 - text) / 255) / alpha;
            LumaA([value as u8, (alpha * opacity / 100) as u8])
        })
    }

    /// Where the tile's top-left corners go in a `width`×`height` picture.
    fn places(&self, width: i64, height: i64) -> Vec<(i64, i64)> {
        let (w, h) = (i64::from(self.tile.width()), i64::from(self.tile.height()));
        let (left, right) = (MARGIN, width - w - MARGIN);
        let (top, bottom) = (MARGIN, height - h - MARGIN);
        match self.spec.place {
            WatermarkPlace::TopLeft => vec![(left, top)],
            WatermarkPlace::TopRight => vec![(right, top)],
            WatermarkPlace::BottomLeft => vec![(left, bottom)],
            WatermarkPlace::BottomRight => vec![(right, bottom)],
            WatermarkPlace::Center => vec![((width - w) / 2, (height - h) / 2)],
            WatermarkPlace::Tiled => {
                // Rows five text heights apart, every other row shifted by half a step, so
                // that any part of the screen larger than a tile shows one.
                let (step_x, step_y) = (w + 4 * h, 5 * h);
                let mut v = Vec::new();
                let mut y = MARGIN;
                let mut row = 0;
                while y < height {
                    let mut x = if row % 2 == 0 {
                        MARGIN
                    } else {
                        MARGIN - step_x / 2
                    };
                    while x < width {
                        v.push((x, y));
                        x += step_x;
                    }
                    y += step_y;
                    row += 1;
                }
                v
            }
        }
    }

    /// Blend the watermark into `frame` (refreshed for the frame's capture time first).
    /// Returns the rows `[start, end)` it drew on.
    pub fn apply(&mut self, frame: &mut Frame) -> (u16, u16) {
        self.refresh(unix_secs(frame.capture_us));
        let (fw, fh) = (i64::from(frame.width), i64::from(frame.height));
        let mut rows = (0, 0);
        let tile_h = i64::from(self.tile.height());
        for (ox, oy) in self.places(fw, fh) {
            let (top, bottom) = (oy.clamp(0, fh), (oy + tile_h).clamp(0, fh));
            rows = union_range(rows, (top as u16, bottom as u16));
            for (x, y, p) in self.tile.enumerate_pixels() {
                let LumaA([value, alpha]) = *p;
                if alpha == 0 {
                    continue;
                }
                let (px, py) = (ox + i64::from(x), oy + i64::from(y));
                if px < 0 || py < 0 || px >= fw || py >= fh {
                    continue;
                }
                // In range: 0 ≤ px < width, 0 ≤ py < height, and the frame holds stride × height.
                let at = py as usize * frame.stride + px as usize * 4;
                let Some(bgr) = frame.bgra.get_mut(at..at + 3) else {
                    continue;
                };
                let (a, v) = (u32::from(alpha), u32::from(value));
                for c in bgr {
                    *c = ((v * a + u32::from(*c) * (255 - a) + 127) / 255) as u8;
                }
            }
        }
        rows
    }
}

fn unix_secs(us: u64) -> i64 {
    i64::try_from(us / 1_000_000).unwrap_or(i64::MAX)
}

/// Where a running session's watermark text is changed (from the session's task; the capture
/// thread draws it from its next picture on).
#[derive(Debug, Clone, Default)]
pub struct Retext(Arc<std::sync::Mutex<Option<String>>>);

impl Retext {
    /// Draw `text` from the next picture on.
    pub fn set(&self, text: String) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }

    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A frame source with the watermark drawn into every picture.
pub struct Watermarked {
    inner: Box<dyn FrameSource>,
    painter: Painter,
    retext: Retext,
}

impl Watermarked {
    /// Wrap `inner`.
    pub fn new(inner: Box<dyn FrameSource>, painter: Painter) -> Watermarked {
        Watermarked {
            inner,
            painter,
            retext: Retext::default(),
        }
    }

    /// Where to change the text while it runs.
    pub fn retext(&self) -> Retext {
        self.retext.clone()
    }

    /// Take a new text, if one was set.
    fn take_text(&mut self) {
        if let Some(text) = self.retext.take() {
            self.painter.set_text(text);
        }
    }
}

impl FrameSource for Watermarked {
    fn size(&self) -> (u16, u16) {
        self.inner.size()
    }

    fn wait_change(&mut self, timeout: Duration) -> Result<Change, CaptureError> {
        // A new minute, or a new text, is a change: what is shown must be current even on an
        // idle screen.
        self.take_text();
        if self.painter.stale(unix_secs(now_us())) {
            return Ok(Change::Damaged);
        }
        match self.inner.wait_change(timeout)? {
            Change::Idle if self.painter.stale(unix_secs(now_us())) => Ok(Change::Damaged),
            c => Ok(c),
        }
    }

    fn recycle(&mut self, frame: Frame) {
        self.inner.recycle(frame);
    }

    fn capture(&mut self) -> Result<Frame, CaptureError> {
        let mut frame = self.inner.capture()?;
        self.take_text();
        let drawn = self.painter.minute;
        let painted = self.painter.apply(&mut frame);
        frame.overlay_rows = union_range(frame.overlay_rows, painted);
        if self.painter.minute != drawn {
            // A new text or minute: the watermark's rows changed too (wherever it is).
            frame.changed_rows = None;
        }
        Ok(frame)
    }

    fn set_size(&mut self, width: u16, height: u16) -> Result<(), CaptureError> {
        self.inner.set_size(width, height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(place: WatermarkPlace) -> Watermark {
        Watermark {
            text: "山田太郎 192.0.2.10".into(),
            place,
            opacity: 60,
            size_px: 16,
            utc_offset_min: 540,
        }
    }

    /// Bounding box of the pixels that differ from white.
    fn inked(f: &Frame) -> Option<(usize, usize, usize, usize)> {
        let mut b: Option<(usize, usize, usize, usize)> = None;
        for y in 0..usize::from(f.height) {
            for x in 0..usize::from(f.width) {
                if f.pixel(x, y) != Some([255, 255, 255, 0]) {
                    b = Some(match b {
                        None => (x, y, x, y),
                        Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
                    });
                }
            }
        }
        b
    }

    #[test]
    fn the_line_shows_the_text_and_the_local_minute() {
        let Some(font) = font(None) else {
            eprintln!("no font installed: skipped");
            return;
        };
        let mut p = Painter::new(spec(WatermarkPlace::BottomRight), font);
        // 2026-11-26T22:52:05Z is 2026-11-27 07:52 in Japan.
        assert_eq!(
            p.line(1_795_733_525),
            "山田太郎 192.0.2.10  2026-11-27 07:52"
        );
        p.refresh(1_795_733_525);
        assert!(!p.stale(1_795_733_579));
        assert!(p.stale(1_795_733_580), "the next minute");
    }

    #[test]
    fn corners_and_center_put_the_mark_where_configured() {
        let Some(font) = font(None) else {
            eprintln!("no font installed: skipped");
            return;
        };
        let (w, h) = (640usize, 360usize);
        for place in [
            WatermarkPlace::TopLeft,
            WatermarkPlace::TopRight,
            WatermarkPlace::BottomLeft,
            WatermarkPlace::BottomRight,
            WatermarkPlace::Center,
        ] {
            let mut frame = Frame::solid(w as u16, h as u16, [255, 255, 255, 0]);
            Painter::new(spec(place), Arc::clone(&font)).apply(&mut frame);
            let (x0, y0, x1, y1) = inked(&frame).expect("something drawn");
            let (cx, cy) = ((x0 + x1) / 2, (y0 + y1) / 2);
            let left = cx < w / 3;
            let right = cx > 2 * w / 3;
            let top = cy < h / 3;
            let bottom = cy > 2 * h / 3;
            let ok = match place {
                WatermarkPlace::TopLeft => left && top,
                WatermarkPlace::TopRight => right && top,
                WatermarkPlace::BottomLeft => left && bottom,
                WatermarkPlace::BottomRight => right && bottom,
                _ => !left && !right && !top && !bottom,
            };
            assert!(ok, "{place:?}: ink in {x0},{y0}–{x1},{y1}");
            assert!(x1 - x0 > 100, "{place:?}: the whole line, not a glyph");
            // Light text and its dark shadow, both at the configured opacity.
            let values: Vec<u8> = (y0..=y1)
                .flat_map(|y| (x0..=x1).map(move |x| (x, y)))
                .filter_map(|(x, y)| frame.pixel(x, y).map(|p| p[1]))
                .collect();
            let darkest = values.iter().copied().min().unwrap_or(255);
            assert!(
                (90..200).contains(&darkest),
                "{place:?}: shadow at 60 % is mid grey on white, got {darkest}"
            );
        }
    }

    #[test]
    fn tiled_covers_every_quarter_and_low_opacity_stays_faint() {
        let Some(font) = font(None) else {
            eprintln!("no font installed: skipped");
            return;
        };
        let mut frame = Frame::solid(1280, 720, [255, 255, 255, 0]);
        let faint = Watermark {
            opacity: 10,
            ..spec(WatermarkPlace::Tiled)
        };
        Painter::new(faint, font).apply(&mut frame);
        for (qx, qy) in [(0, 0), (640, 0), (0, 360), (640, 360)] {
            let inked = (qy..qy + 360)
                .flat_map(|y| (qx..qx + 640).map(move |x| (x, y)))
                .filter(|&(x, y)| frame.pixel(x, y) != Some([255, 255, 255, 0]))
                .count();
            assert!(inked > 500, "quarter at {qx},{qy}: {inked} pixels");
        }
        let darkest = frame.bgra.chunks(4).map(|p| p[1]).min().unwrap_or(255);
        assert!(darkest > 200, "10 % opacity stays faint: {darkest}");
    }

    /// A white screen that never changes.
    struct Still;

    impl FrameSource for Still {
        fn size(&self) -> (u16, u16) {
            (640, 360)
        }
        fn wait_change(&mut self, _: Duration) -> Result<Change, CaptureError> {
            Ok(Change::Idle)
        }
        fn capture(&mut self) -> Result<Frame, CaptureError> {
            Ok(Frame::solid(640, 360, [255, 255, 255, 0]))
        }
        fn set_size(&mut self, _: u16, _: u16) -> Result<(), CaptureError> {
            Ok(())
        }
    }

    #[test]
    fn a_new_text_is_a_change_and_is_drawn_from_the_next_picture() {
        let Some(font) = font(None) else {
            eprintln!("no font installed: skipped");
            return;
        };
        let mut w = Watermarked::new(
            Box::new(Still),
            Painter::new(spec(WatermarkPlace::TopLeft), font),
        );
        let before = w.capture().expect("picture");
        // Still (a new minute may have just begun: then the second look is still).
        let still = (0..2).any(|_| w.wait_change(Duration::ZERO).ok() == Some(Change::Idle));
        assert!(still, "nothing changed");
        w.retext()
            .set("鈴木一郎 198.51.100.77 (longer than before)".into());
        assert_eq!(
            w.wait_change(Duration::ZERO).ok(),
            Some(Change::Damaged),
            "the new text is a change on a still screen"
        );
        let after = w.capture().expect("picture");
        let (b, a) = (inked(&before), inked(&after));
        assert!(
            a.zip(b).is_some_and(|(a, b)| a.2 - a.0 > b.2 - b.0),
            "the longer line is drawn: {b:?} → {a:?}"
        );
    }

    #[test]
    fn a_tiny_picture_is_drawn_into_without_going_outside() {
        let Some(font) = font(None) else {
            eprintln!("no font installed: skipped");
            return;
        };
        let mut frame = Frame::solid(64, 64, [0, 0, 0, 0]);
        let len = frame.bgra.len();
        Painter::new(spec(WatermarkPlace::BottomRight), font).apply(&mut frame);
        assert_eq!(frame.bgra.len(), len);
    }
}
