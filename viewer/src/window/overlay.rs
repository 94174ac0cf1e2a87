//! The F12 overlay: latency p50/p95, fps, bitrate, dropped frames, and status text.

use crate::report::Stats;
use crate::window::text::{draw as draw_text, shade, TextRenderer};

/// Overlay text size in px.
const SIZE: f32 = 15.0;

/// The overlay lines for the current stats (updated every 2 s by the session loop).
pub fn lines(stats: &Stats, rtt_us: Option<u64>) -> Vec<String> {
    let w = stats.last_window();
    let ms = |us: u32| f64::from(us) / 1000.0;
    let mut out = vec![
        format!(
            "latency p50 {:.1} ms  p95 {:.1} ms",
            ms(w.p50_us),
            ms(w.p95_us)
        ),
        format!("{:.1} fps  {:.2} Mbit/s", w.fps, w.bitrate_bps / 1e6),
        format!("dropped {}", stats.dropped_frames()),
    ];
    if let Some(rtt) = rtt_us {
        out.push(format!("rtt {:.1} ms", rtt as f64 / 1000.0));
    }
    out
}

/// Draw `lines` in the top-left corner on a shaded box.
pub fn draw(text: &TextRenderer, dst: &mut [u32], dw: u32, dh: u32, lines: &[String]) {
    let lh = text.line_height(SIZE).ceil();
    let width = lines
        .iter()
        .map(|l| text.measure(l, SIZE))
        .fold(0.0f32, f32::max)
        .ceil() as u32
        + 16;
    let height = (lh as u32) * lines.len() as u32 + 12;
    shade(dst, dw, 4, 4, width, height);
    for (i, line) in lines.iter().enumerate() {
        let y = 10.0 + lh * i as f32;
        draw_text(text, dst, dw, dh, 12.0, y, SIZE, line, 0x00ff_ffff);
    }
}

/// Draw a warning centred at the top of the picture on a shaded box (e.g. 「あと 5 分で切断されます」).
pub fn draw_banner(text: &TextRenderer, dst: &mut [u32], dw: u32, dh: u32, msg: &str) {
    let size = 18.0;
    let lh = text.line_height(size).ceil();
    let w = (text.measure(msg, size).ceil() as u32 + 24).min(dw);
    let x = dw.saturating_sub(w) / 2;
    shade(dst, dw, x, 8, w, lh as u32 + 16);
    draw_text(
        text,
        dst,
        dw,
        dh,
        x as f32 + 12.0,
        16.0,
        size,
        msg,
        0x00ff_e080,
    );
}

/// Draw a centred message (status or error) over a dark background.
pub fn draw_message(text: Option<&TextRenderer>, dst: &mut [u32], dw: u32, dh: u32, msg: &str) {
    dst.fill(0x0020_2830);
    let Some(text) = text else { return };
    let size = 22.0;
    let lh = text.line_height(size);
    let lines: Vec<&str> = msg.lines().collect();
    let total = lh * lines.len() as f32;
    for (i, line) in lines.iter().enumerate() {
        let w = text.measure(line, size);
        let x = ((dw as f32 - w) / 2.0).max(8.0);
        let y = (dh as f32 - total) / 2.0 + lh * i as f32;
        draw_text(text, dst, dw, dh, x, y, size, line, 0x00f0_f0f0);
    }
}
