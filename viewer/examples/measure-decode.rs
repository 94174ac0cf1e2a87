//! Measures the viewer's per-frame costs on this machine: H.264 decode, YUV→RGB, and putting
//! the picture into a window buffer (copy, nearest, bilinear).
//!
//! `cargo run --release -p tsuitate-viewer --example measure-decode`
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use openh264::decoder::Decoder;
use openh264::encoder::{BitRate, Encoder, EncoderConfig, RateControlMode, UsageType};
use openh264::formats::{RgbSliceU8, YUVBuffer, YUVSource};
use openh264::OpenH264API;
use tsuitate_viewer::args::ScaleArg;
use tsuitate_viewer::window::scale::{blit, Viewport};

/// Screen-like content: flat areas, text-like stripes, a moving block.
fn render(n: usize, w: usize, h: usize) -> Vec<u8> {
    let mut rgb = vec![255u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            let text = (y / 14) % 3 == 1 && (x / 7 + y / 14 + n / 10) % 5 != 0 && (x % 7) < 5;
            let block = (x + 600 - (n * 8) % 600) % 600 < 120 && (200..320).contains(&y);
            let c = if block {
                [30, 90, 200]
            } else if text {
                [20, 20, 20]
            } else {
                [250, 250, 248]
            };
            rgb[i..i + 3].copy_from_slice(&c);
        }
    }
    rgb
}

fn measure(w: usize, h: usize, frames: usize) {
    let cfg = EncoderConfig::new()
        .bitrate(BitRate::from_bps(4_000_000))
        .usage_type(UsageType::ScreenContentRealTime)
        .rate_control_mode(RateControlMode::Bitrate);
    let mut enc = Encoder::with_api_config(OpenH264API::from_source(), cfg).unwrap();
    let aus: Vec<Vec<u8>> = (0..frames)
        .map(|n| {
            let rgb = render(n, w, h);
            let yuv = YUVBuffer::from_rgb8_source(RgbSliceU8::new(&rgb, (w, h)));
            enc.encode(&yuv).unwrap().to_vec()
        })
        .collect();
    let bytes: usize = aus.iter().map(Vec::len).sum();
    let mut dec = Decoder::new().unwrap();
    let mut rgb = vec![0u8; w * h * 3];
    let (mut t_dec, mut t_rgb) = (0.0, 0.0);
    for au in &aus {
        let t0 = Instant::now();
        let Some(yuv) = dec.decode(au).unwrap() else {
            continue;
        };
        let t1 = Instant::now();
        assert_eq!(yuv.dimensions(), (w, h));
        yuv.write_rgb8(&mut rgb);
        t_dec += (t1 - t0).as_secs_f64();
        t_rgb += t1.elapsed().as_secs_f64();
    }
    let n = frames as f64;
    println!(
        "{w}x{h}: {frames} frames, {:.1} kB/frame, decode {:.2} ms/frame, yuv->rgb {:.2} ms/frame",
        bytes as f64 / n / 1000.0,
        t_dec * 1000.0 / n,
        t_rgb * 1000.0 / n
    );
    let (fw, fh) = (w as u32, h as u32);
    let mut sizes = vec![(fw, fh)];
    sizes.extend(
        [(1366, 768), (1920, 1080)]
            .into_iter()
            .filter(|&s| s != (fw, fh)),
    );
    for (dw, dh) in sizes {
        let same = (dw, dh) == (fw, fh);
        for filter in [ScaleArg::Nearest, ScaleArg::Bilinear] {
            if same && filter == ScaleArg::Bilinear {
                continue;
            }
            let mut dst = vec![0u32; (dw * dh) as usize];
            let vp = Viewport::fit(fw, fh, dw, dh);
            let reps = 30;
            let t = Instant::now();
            for _ in 0..reps {
                blit(&rgb, fw, fh, &mut dst, dw, vp, filter);
            }
            let ms = t.elapsed().as_secs_f64() * 1000.0 / f64::from(reps);
            let what = if vp.w == fw && vp.h == fh {
                "copy".to_string()
            } else {
                format!("{filter:?}")
            };
            println!("  -> window {dw}x{dh} ({what}): {ms:.2} ms");
        }
    }
}

fn main() {
    measure(1280, 720, 120);
    measure(1920, 1080, 120);
}
