//! Shared inputs and harnesses for the criterion benchmarks in `benches/benches/`:
//! the benchmark cases ([`content`]), the in-process video path ([`full_path`]), the relay over
//! loopback QUIC through a real gateway or a bare quinn forward ([`relay`]), summary
//! statistics ([`summary`]) and the RFB client of the end-to-end x11vnc comparison ([`vnc`]).
#![forbid(unsafe_code)]

pub mod content;
pub mod full_path;
pub mod relay;
pub mod summary;
pub mod vnc;

/// Why a benchmark could not run (setup failure or an unexpected answer from a component).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(String);

impl BenchError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        BenchError(msg.into())
    }
}

use openh264::encoder::Encoder;
use openh264::formats::{RgbSliceU8, YUVBuffer};

/// A synthetic "web page" picture: white background, text-like dark stripes, a coloured banner,
/// shifted down by `scroll` rows. Stands in for a browser frame in benchmarks only.
pub fn page_rgb(width: usize, height: usize, scroll: usize) -> Vec<u8> {
    let mut rgb = vec![0u8; width * height * 3];
    for y in 0..height {
        let py = y + scroll;
        for x in 0..width {
            let i = (y * width + x) * 3;
            let px = if py % 400 < 60 {
                [0x1f, 0x4e, 0x99]
            } else if py % 24 < 14 && x % 9 < 6 && (x / 90 + py / 24) % 5 != 0 && x > 40 {
                [0x22, 0x22, 0x22]
            } else {
                [0xff, 0xff, 0xff]
            };
            rgb[i..i + 3].copy_from_slice(&px);
        }
    }
    rgb
}

/// The access units of `frames` pictures of a page scrolling by 8 rows per frame, encoded with
/// openh264 (frames the rate control skipped are left out).
pub fn encoded_scroll(width: usize, height: usize, frames: usize) -> Vec<Vec<u8>> {
    let Ok(mut enc) = Encoder::new() else {
        return Vec::new();
    };
    (0..frames)
        .filter_map(|n| {
            let rgb = page_rgb(width, height, n * 8);
            let yuv = YUVBuffer::from_rgb_source(RgbSliceU8::new(&rgb, (width, height)));
            enc.encode(&yuv)
                .ok()
                .map(|b| b.to_vec())
                .filter(|au| !au.is_empty())
        })
        .collect()
}
