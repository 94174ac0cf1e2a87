//! Synthetic video: openh264-encoded frames of a moving test picture, and hostile variants.

use std::sync::OnceLock;

use openh264::encoder::Encoder;
use openh264::formats::{RgbSliceU8, YUVBuffer};

pub const WIDTH: usize = 320;
pub const HEIGHT: usize = 240;
/// A keyframe every this many frames.
pub const GOP: usize = 10;
/// Frames in the loop.
pub const FRAMES: usize = 40;

/// Bytes a hostile agent hides in what it sends; the viewer must never see them.
pub const MARKER: &[u8] = b"EVIL-PAYLOAD-MUST-NOT-CROSS";

/// One encoded access unit.
#[derive(Clone, Debug)]
pub struct Au {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

fn picture(n: usize) -> Vec<u8> {
    let mut rgb = vec![0u8; WIDTH * HEIGHT * 3];
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let i = (y * WIDTH + x) * 3;
            let band = ((x + n * 4) / 16 + y / 16) % 2 == 0;
            let px = if band {
                [0x20, 0x60, 0xc0]
            } else {
                [0xf0, 0xf0, 0xf0]
            };
            rgb[i..i + 3].copy_from_slice(&px);
        }
    }
    rgb
}

/// NAL unit types in an Annex-B access unit.
pub fn nal_types(au: &[u8]) -> Vec<u8> {
    tsuitate_protocol::h264::nal_units(au)
        .map(|n| n[0] & 0x1f)
        .collect()
}

/// The frame loop, encoded once per process: a keyframe at every multiple of `GOP`.
pub fn frames() -> &'static [Au] {
    static FRAMES_CELL: OnceLock<Vec<Au>> = OnceLock::new();
    FRAMES_CELL.get_or_init(|| {
        let mut enc = Encoder::new().unwrap();
        let mut out = Vec::new();
        let mut n = 0;
        while out.len() < FRAMES {
            if out.len() % GOP == 0 {
                enc.force_intra_frame();
            }
            let rgb = picture(n);
            n += 1;
            let yuv = YUVBuffer::from_rgb_source(RgbSliceU8::new(&rgb, (WIDTH, HEIGHT)));
            let data = enc.encode(&yuv).unwrap().to_vec();
            if data.is_empty() {
                continue;
            }
            let keyframe = nal_types(&data).contains(&5);
            out.push(Au { data, keyframe });
        }
        out
    })
}

/// `au` with an SEI user-data-unregistered message carrying `MARKER` in front of the slice.
pub fn with_sei(au: &[u8]) -> Vec<u8> {
    let mut sei = vec![0, 0, 0, 1, 0x06, 0x05];
    let payload_len = 16 + MARKER.len();
    sei.push(payload_len as u8);
    sei.extend_from_slice(&[0x11; 16]); // uuid
    sei.extend_from_slice(MARKER);
    sei.push(0x80); // rbsp trailing bits
    sei.extend_from_slice(au);
    sei
}

/// `au` with a NAL unit of type `ty` carrying `MARKER`.
pub fn with_nal_type(au: &[u8], ty: u8) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1, ty & 0x1f];
    v.extend_from_slice(MARKER);
    v.extend_from_slice(au);
    v
}
