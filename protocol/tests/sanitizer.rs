//! NAL sanitizer tests with hand-built and real openh264 streams (docs/protocol.md §3.3).

use tsuitate_protocol::h264::{nal_type, nal_units, parse_sps, DropPolicy, ALLOWED_NAL_TYPES};
use tsuitate_protocol::*;

/// Writes bits MSB-first and produces an escaped NAL unit.
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    n: usize,
}

impl Bits {
    fn bit(&mut self, b: u32) {
        if self.n % 8 == 0 {
            self.bytes.push(0);
        }
        if b != 0 {
            *self.bytes.last_mut().expect("pushed") |= 0x80 >> (self.n % 8);
        }
        self.n += 1;
    }
    fn bits(&mut self, v: u32, n: u32) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1);
        }
    }
    fn ue(&mut self, v: u32) {
        let x = v + 1;
        let len = 32 - x.leading_zeros();
        self.bits(0, len - 1);
        self.bits(x, len);
    }
    /// rbsp_trailing_bits, then the NAL header and emulation prevention.
    fn nal(mut self, header: u8) -> Vec<u8> {
        self.bit(1);
        let mut out = vec![header];
        let mut zeros = 0;
        for b in self.bytes {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }
}

fn sps(width_mbs: u32, height_mbs: u32, crop_bottom: u32, level: u32) -> Vec<u8> {
    sps_with_poc(width_mbs, height_mbs, crop_bottom, level, None)
}

/// `poc_offset`: use pic_order_cnt_type 1 with these (large) offsets, whose long runs of zero
/// bits force emulation-prevention bytes into the NAL unit.
fn sps_with_poc(w: u32, h: u32, crop_bottom: u32, level: u32, poc_offset: Option<u32>) -> Vec<u8> {
    let (width_mbs, height_mbs) = (w, h);
    let mut b = Bits::default();
    b.bits(66, 8);
    b.bits(0xc0, 8);
    b.bits(level, 8);
    b.ue(0); // sps id
    b.ue(0); // log2_max_frame_num_minus4
    match poc_offset {
        None => b.ue(2), // poc type
        Some(v) => {
            b.ue(1);
            b.bit(0); // delta_pic_order_always_zero_flag
            b.ue(2 * v - 1); // offset_for_non_ref_pic = +v
            b.ue(2 * v - 1); // offset_for_top_to_bottom_field = +v
            b.ue(0); // num_ref_frames_in_pic_order_cnt_cycle
        }
    }
    b.ue(1); // max_num_ref_frames
    b.bit(0);
    b.ue(width_mbs - 1);
    b.ue(height_mbs - 1);
    b.bit(1); // frame_mbs_only
    b.bit(1); // direct_8x8
    if crop_bottom > 0 {
        b.bit(1);
        for v in [0, 0, 0, crop_bottom] {
            b.ue(v);
        }
    } else {
        b.bit(0);
    }
    b.bit(0); // vui
    b.nal(0x67)
}

fn pps() -> Vec<u8> {
    let mut b = Bits::default();
    b.ue(0);
    b.ue(0);
    b.bits(0b1011, 4);
    b.nal(0x68)
}

fn slice(idr: bool, payload: &[u8]) -> Vec<u8> {
    let mut b = Bits::default();
    b.ue(0); // first_mb_in_slice
    b.ue(if idr { 7 } else { 5 });
    b.ue(0); // pps id
    let mut nal = b.nal(if idr { 0x65 } else { 0x41 });
    nal.extend_from_slice(payload);
    nal
}

fn annexb(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(n);
    }
    out
}

fn header(keyframe: bool, width: u16, height: u16) -> VideoHeader {
    VideoHeader {
        sequence: 0,
        capture_us: 0,
        keyframe,
        width,
        height,
    }
}

fn types(au: &[u8]) -> Vec<u8> {
    nal_units(au).filter_map(nal_type).collect()
}

const SEI_USER_DATA: &[u8] = &[
    0x06, 0x05, 0x18, 0xdc, 0x45, 0xe9, 0xbd, 0xe6, 0xd9, 0x48, 0xb7, 0x96, 0x2c, 0xd8, 0x20, 0xd9,
    0x23, 0xee, 0xef, b'<', b's', b'c', b'r', b'i', b'p', b't', b'>', 0x80,
];

#[test]
fn keeps_parameter_sets_and_slices_drops_sei() {
    let (s, p, i) = (sps(40, 30, 0, 30), pps(), slice(true, &[0x88, 0x84]));
    let au = annexb(&[&s, SEI_USER_DATA, &p, &i]);
    let mut san = NalSanitizer::new(Limits::default());
    let out = san
        .sanitize(&header(true, 640, 480), &au)
        .expect("valid keyframe");
    assert_eq!(out, annexb(&[&s, &p, &i]));
    assert!(
        !out.windows(8).any(|w| w == b"<script>"),
        "the SEI payload is gone"
    );
    assert_eq!(san.counters().dropped_by_type[6], 1);
    // Idempotent.
    let mut again = NalSanitizer::new(Limits::default());
    assert_eq!(
        again.sanitize(&header(true, 640, 480), &out),
        Ok(out.clone())
    );
}

#[test]
fn drops_unspecified_and_reserved_types() {
    let (s, p, i) = (sps(40, 30, 0, 30), pps(), slice(true, &[0x88]));
    let mut nals: Vec<Vec<u8>> = vec![s.clone(), p.clone(), i.clone()];
    for ty in [0u8, 9, 12, 13, 19, 24, 25, 26, 27, 28, 29, 30, 31] {
        nals.push(vec![ty, 0xde, 0xad, 0xbe, 0xef]);
    }
    let refs: Vec<&[u8]> = nals.iter().map(|n| n.as_slice()).collect();
    let mut san = NalSanitizer::new(Limits::default());
    let out = san
        .sanitize(&header(true, 640, 480), &annexb(&refs))
        .expect("valid");
    assert_eq!(types(&out), vec![7, 8, 5]);
    for ty in [0usize, 9, 12, 13, 19, 24, 25, 26, 27, 28, 29, 30, 31] {
        assert_eq!(san.counters().dropped_by_type[ty], 1, "type {ty} counted");
    }
}

#[test]
fn refuse_policy_refuses_any_type_outside_the_allow_list() {
    let (s, p, i) = (sps(40, 30, 0, 30), pps(), slice(true, &[0x88]));
    for ty in 0u8..32 {
        let extra = vec![ty, 0xde, 0xad, 0xbe, 0xef];
        let au = annexb(&[&s, &p, &extra, &i]);
        let mut san = NalSanitizer::new(Limits::default()).with_policy(DropPolicy::Refuse);
        let r = san.sanitize(&header(true, 640, 480), &au);
        if ALLOWED_NAL_TYPES.contains(&ty) {
            // 1, 5, 7, 8 are judged on their content, never as forbidden types.
            assert_ne!(r, Err(SanitizeError::ForbiddenNal(ty)), "type {ty}");
            continue;
        }
        assert_eq!(r, Err(SanitizeError::ForbiddenNal(ty)), "type {ty}");
        assert_eq!(r.expect_err("refused").code(), "forbidden_nal");
        let c = san.counters();
        assert_eq!((c.frames_refused, c.frames_passed), (1, 0), "type {ty}");
        assert_eq!(c.dropped_by_type[usize::from(ty)], 1, "type {ty} counted");
        // State untouched: the clean access unit still starts the stream.
        assert!(san
            .sanitize(&header(true, 640, 480), &annexb(&[&s, &p, &i]))
            .is_ok());
    }
}

#[test]
fn rejects_oversized_sps_and_level() {
    let mut san = NalSanitizer::new(Limits::default());
    let huge = sps(300, 200, 0, 30); // 4800x3200
    let au = annexb(&[&huge, &pps(), &slice(true, &[0x88])]);
    assert_eq!(
        san.sanitize(&header(true, 3840, 2160), &au),
        Err(SanitizeError::SpsTooLarge {
            width: 4800,
            height: 3200
        })
    );
    let high_level = sps(40, 30, 0, 52);
    let au = annexb(&[&high_level, &pps(), &slice(true, &[0x88])]);
    assert_eq!(
        san.sanitize(&header(true, 640, 480), &au),
        Err(SanitizeError::Level(52))
    );
    assert_eq!(san.counters().frames_refused, 2);
}

#[test]
fn rejects_sps_that_disagrees_with_the_header() {
    let mut san = NalSanitizer::new(Limits::default());
    let au = annexb(&[&sps(40, 30, 0, 30), &pps(), &slice(true, &[0x88])]);
    assert!(matches!(
        san.sanitize(&header(true, 1280, 720), &au),
        Err(SanitizeError::SizeMismatch {
            sps_width: 640,
            sps_height: 480,
            ..
        })
    ));
}

#[test]
fn cropping_and_emulation_prevention_are_handled() {
    // 1920x1080 is coded as 120x68 macroblocks with 4 cropped rows (crop_bottom = 4 units of 2).
    let s = sps(120, 68, 4, 40);
    assert_eq!(parse_sps(&s).map(|i| (i.width, i.height)), Ok((1920, 1080)));
    // Find a size whose SPS needed emulation-prevention bytes, and check it still parses.
    let escaped = sps_with_poc(40, 30, 0, 30, Some(1 << 15));
    assert!(
        escaped.windows(3).any(|x| x == [0, 0, 3]),
        "the SPS holds an escape"
    );
    assert_eq!(
        parse_sps(&escaped).map(|i| (i.width, i.height)),
        Ok((640, 480))
    );
    // A slice whose payload holds an escaped 00 00 03 01 passes byte-identical.
    let i = slice(true, &[0x88, 0, 0, 3, 1, 0x42]);
    let au = annexb(&[&sps(40, 30, 0, 30), &pps(), &i]);
    let mut san = NalSanitizer::new(Limits::default());
    assert_eq!(san.sanitize(&header(true, 640, 480), &au), Ok(au.clone()));
}

#[test]
fn stream_rules() {
    let mut san = NalSanitizer::new(Limits::default());
    let p_slice = annexb(&[&slice(false, &[0x9a])]);
    assert_eq!(
        san.sanitize(&header(false, 640, 480), &p_slice),
        Err(SanitizeError::NoKeyframeYet)
    );
    let key = annexb(&[&sps(40, 30, 0, 30), &pps(), &slice(true, &[0x88])]);
    assert_eq!(
        san.sanitize(&header(false, 640, 480), &key),
        Err(SanitizeError::KeyframeMismatch)
    );
    assert!(san.sanitize(&header(true, 640, 480), &key).is_ok());
    assert!(san.sanitize(&header(false, 640, 480), &p_slice).is_ok());
    // New parameter sets without an IDR.
    let change = annexb(&[&sps(80, 45, 0, 31), &pps(), &slice(false, &[0x9a])]);
    assert_eq!(
        san.sanitize(&header(false, 1280, 720), &change),
        Err(SanitizeError::ParameterChangeWithoutIdr)
    );
    // Only SEI: nothing decodable.
    assert_eq!(
        san.sanitize(&header(false, 640, 480), &annexb(&[SEI_USER_DATA])),
        Err(SanitizeError::NoSlice)
    );
    // forbidden_zero_bit.
    let bad = annexb(&[&[0xc1, 0x9a]]);
    assert_eq!(
        san.sanitize(&header(false, 640, 480), &bad),
        Err(SanitizeError::ForbiddenBit)
    );
}

fn encode_real(width: usize, height: usize, frames: usize) -> Vec<Vec<u8>> {
    use openh264::encoder::Encoder;
    use openh264::formats::{RgbSliceU8, YUVBuffer};
    let mut enc = Encoder::new().expect("openh264 encoder");
    (0..frames)
        .map(|n| {
            let rgb: Vec<u8> = (0..width * height)
                .flat_map(|i| {
                    let (x, y) = (i % width, i / width);
                    [(x + n * 8) as u8, y as u8, ((x ^ y) & 0xff) as u8]
                })
                .collect();
            let yuv = YUVBuffer::from_rgb_source(RgbSliceU8::new(&rgb, (width, height)));
            enc.encode(&yuv).expect("encode").to_vec()
        })
        .collect()
}

#[test]
fn real_openh264_stream_passes_unchanged_apart_from_dropped_units() {
    let aus = encode_real(320, 240, 4);
    let mut san = NalSanitizer::new(Limits::default());
    for (n, au) in aus.iter().enumerate() {
        let keyframe = types(au).contains(&5);
        assert_eq!(keyframe, n == 0, "openh264 starts with one IDR");
        let out = san
            .sanitize(&header(keyframe, 320, 240), au)
            .unwrap_or_else(|e| panic!("frame {n}: {e}"));
        let kept: Vec<&[u8]> = nal_units(au)
            .filter(|u| ALLOWED_TYPES.contains(&(u[0] & 0x1f)))
            .collect();
        assert_eq!(
            out,
            annexb(&kept),
            "frame {n} is byte-identical apart from dropped units"
        );
        // With an SEI injected, the output is the same.
        let mut with_sei = annexb(&[SEI_USER_DATA]);
        with_sei.extend_from_slice(au);
        let mut twin = NalSanitizer::new(Limits::default());
        if n == 0 {
            assert_eq!(twin.sanitize(&header(true, 320, 240), &with_sei), Ok(out));
        }
    }
}

const ALLOWED_TYPES: [u8; 4] = tsuitate_protocol::h264::ALLOWED_NAL_TYPES;
