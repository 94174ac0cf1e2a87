//! Text for status messages and the overlay, drawn into the window's 0RGB buffer with the
//! shared renderer (`tsuitate-text`: a system font, CJK first).

pub use tsuitate_text::TextRenderer;

/// Draw `text` with its top-left at (`x`, `y`) into a 0RGB buffer `dw`×`dh`.
#[allow(clippy::too_many_arguments)]
pub fn draw(
    renderer: &TextRenderer,
    dst: &mut [u32],
    dw: u32,
    dh: u32,
    x: f32,
    y: f32,
    size: f32,
    text: &str,
    color: u32,
) {
    renderer.draw(x, y, size, text, |px, py, cov| {
        if px < 0 || py < 0 || px >= i64::from(dw) || py >= i64::from(dh) {
            return;
        }
        let i = py as usize * dw as usize + px as usize;
        if let Some(d) = dst.get_mut(i) {
            *d = blend(*d, color, cov);
        }
    });
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
