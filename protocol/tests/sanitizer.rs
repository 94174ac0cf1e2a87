//! NAL sanitizer tests with hand-built and real openh264 streams (docs/protocol.md §3.3).

use tsuitate_protocol::h264;
use tsuitate_protocol::h264::{
    nal_type, nal_units, parse_pps, parse_sps, BitWriter, DropPolicy, SliceError, ALLOWED_NAL_TYPES,
};
use tsuitate_protocol::*;

fn sps(width_mbs: u32, height_mbs: u32, crop_bottom: u32, level: u32) -> Vec<u8> {
    sps_with_poc(width_mbs, height_mbs, crop_bottom, level, None)
}

/// An SPS as an agent could write it (no VUI). `poc_offset`: use pic_order_cnt_type 1 with
/// these (large) offsets, whose long runs of zero bits force emulation-prevention bytes into
/// the NAL unit.
fn sps_with_poc(w: u32, h: u32, crop_bottom: u32, level: u32, poc_offset: Option<u32>) -> Vec<u8> {
    let (width_mbs, height_mbs) = (w, h);
    let mut b = BitWriter::new();
    b.bits(66, 8);
    b.bits(0xc0, 8);
    b.bits(level, 8);
    b.ue(0); // sps id
    b.ue(0); // log2_max_frame_num_minus4
    match poc_offset {
        None => b.ue(2), // poc type
        Some(v) => {
            b.ue(1);
            b.bit(false); // delta_pic_order_always_zero_flag
            b.se(i64::from(v)); // offset_for_non_ref_pic
            b.se(i64::from(v)); // offset_for_top_to_bottom_field
            b.ue(0); // num_ref_frames_in_pic_order_cnt_cycle
        }
    }
    b.ue(1); // max_num_ref_frames
    b.bit(false);
    b.ue(width_mbs - 1);
    b.ue(height_mbs - 1);
    b.bit(true); // frame_mbs_only
    b.bit(true); // direct_8x8
    if crop_bottom > 0 {
        b.bit(true);
        for v in [0, 0, 0, crop_bottom] {
            b.ue(v);
        }
    } else {
        b.bit(false);
    }
    b.bit(false); // vui
    b.into_nal(0x67)
}

/// A CAVLC PPS with deblocking control.
fn pps() -> Vec<u8> {
    let mut b = BitWriter::new();
    b.ue(0); // pps id
    b.ue(0); // sps id
    b.bit(false); // CAVLC
    b.bit(false);
    b.ue(0); // one slice group
    b.ue(0);
    b.ue(0);
    b.bit(false);
    b.bits(0, 2);
    b.se(0);
    b.se(0);
    b.se(0);
    b.bit(true); // deblocking_filter_control_present_flag
    b.bit(false);
    b.bit(false);
    b.into_nal(0x68)
}

/// Macroblocks of the 640x480 picture most tests use (`sps(40, 30, …)`).
const TEST_MBS: u32 = 40 * 30;

/// A complete slice for `sps(40, 30, …)`/`pps()` (log2_max_frame_num 4, POC type 2): an IDR
/// whose first macroblock is I_PCM with samples starting with `pcm` (then mid-grey) and the
/// rest Intra 16x16 DC without residual; a P slice skips every macroblock.
fn slice(idr: bool, pcm: &[u8]) -> Vec<u8> {
    slice_numbered(idr, pcm, 1)
}

/// [`slice`] with a P slice's `frame_num` (the IDR's is 0).
fn slice_numbered(idr: bool, pcm: &[u8], frame_num: u32) -> Vec<u8> {
    let mut b = BitWriter::new();
    b.ue(0); // first_mb_in_slice
    b.ue(if idr { 7 } else { 5 });
    b.ue(0); // pps id
    b.bits(if idr { 0 } else { frame_num }, 4); // frame_num
    if idr {
        b.ue(0); // idr_pic_id
        b.bit(false); // no_output_of_prior_pics_flag
        b.bit(false); // long_term_reference_flag
    } else {
        b.bit(false); // num_ref_idx_active_override_flag
        b.bit(false); // ref_pic_list_modification_flag_l0
        b.bit(false); // adaptive_ref_pic_marking_mode_flag
    }
    b.se(0); // slice_qp_delta
    b.ue(0); // disable_deblocking_filter_idc
    b.se(0);
    b.se(0);
    if idr {
        b.ue(25); // I_PCM
        b.align_zero();
        for k in 0..384 {
            b.bits(u32::from(pcm.get(k).copied().unwrap_or(0x80)), 8);
        }
        for mb in 1..TEST_MBS {
            b.ue(3); // I_16x16_2_0_0: DC prediction, no coded residual
            b.ue(0); // intra_chroma_pred_mode DC
            b.se(0); // mb_qp_delta
                     // The DC block's coeff_token, TotalCoeff 0: next to the I_PCM macroblock nC is 16
                     // (the 6-bit code), elsewhere 0.
            if mb == 1 || mb == 40 {
                b.bits(0b000011, 6);
            } else {
                b.bit(true);
            }
        }
    } else {
        b.ue(TEST_MBS); // mb_skip_run: the whole picture
    }
    b.into_nal(if idr { 0x65 } else { 0x41 })
}

/// What the gateway forwards for an SPS or PPS: the same values, its own bytes.
fn canon(nal: &[u8]) -> Vec<u8> {
    match nal[0] & 0x1f {
        7 => parse_sps(nal).expect("valid SPS").write(),
        8 => parse_pps(nal).expect("valid PPS").write(),
        _ => nal.to_vec(),
    }
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
    assert_eq!(out, annexb(&[&canon(&s), &canon(&p), &i]));
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
    // A slice whose samples need an escape (00 00 01 → 00 00 03 01) passes byte-identical.
    let i = slice(true, &[0x88, 0, 0, 1, 0x42]);
    assert!(
        i.windows(4).any(|x| x == [0, 0, 3, 1]),
        "the slice holds an escape"
    );
    let (s, p) = (sps(40, 30, 0, 30), pps());
    let au = annexb(&[&s, &p, &i]);
    let mut san = NalSanitizer::new(Limits::default());
    assert_eq!(
        san.sanitize(&header(true, 640, 480), &au),
        Ok(annexb(&[&canon(&s), &canon(&p), &i]))
    );
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
    // A P picture whose frame_num does not follow the last reference picture's.
    assert_eq!(
        san.sanitize(&header(false, 640, 480), &p_slice),
        Err(SanitizeError::FrameNumGap)
    );
    // New parameter sets without an IDR.
    let change = annexb(&[
        &sps(80, 45, 0, 31),
        &pps(),
        &slice_numbered(false, &[0x9a], 2),
    ]);
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

/// Decode access units with openh264: one RGB picture per decoded frame.
fn decode_all(aus: &[Vec<u8>]) -> Vec<Vec<u8>> {
    use openh264::decoder::Decoder;
    use openh264::formats::YUVSource;
    let mut dec = Decoder::new().expect("openh264 decoder");
    let mut out = Vec::new();
    for au in aus {
        if let Some(yuv) = dec.decode(au).expect("decodes") {
            let (w, h) = yuv.dimensions();
            let mut rgb = vec![0; w * h * 3];
            yuv.write_rgb8(&mut rgb);
            out.push(rgb);
        }
    }
    out
}

/// The differential check: openh264's own streams, at several sizes (cropped ones included),
/// are always accepted; the slices pass byte for byte, the parameter sets are the gateway's own
/// rebuild; and openh264 decodes the sanitized stream to exactly the same pictures as the
/// original.
#[test]
fn real_openh264_streams_are_accepted_rebuilt_and_decode_identically() {
    for (w, h, frames) in [(320, 240, 5), (1366, 768, 2), (64, 64, 3)] {
        let aus: Vec<Vec<u8>> = encode_real(w, h, frames)
            .into_iter()
            .filter(|au| !au.is_empty())
            .collect();
        let mut san = NalSanitizer::new(Limits::default());
        let mut clean = Vec::new();
        for (n, au) in aus.iter().enumerate() {
            let keyframe = types(au).contains(&5);
            assert_eq!(keyframe, n == 0, "{w}x{h}: openh264 starts with one IDR");
            let out = san
                .sanitize(&header(keyframe, w as u16, h as u16), au)
                .unwrap_or_else(|e| panic!("{w}x{h} frame {n}: {e}"));
            let expected: Vec<Vec<u8>> = nal_units(au)
                .filter(|u| ALLOWED_TYPES.contains(&(u[0] & 0x1f)))
                .map(canon)
                .collect();
            let refs: Vec<&[u8]> = expected.iter().map(Vec::as_slice).collect();
            assert!(
                out == annexb(&refs),
                "{w}x{h} frame {n}: slices byte-identical, parameter sets rebuilt"
            );
            // A fresh sanitizer accepts the output as it is (idempotent).
            if n == 0 {
                let mut twin = NalSanitizer::new(Limits::default());
                assert!(twin.sanitize(&header(true, w as u16, h as u16), &out) == Ok(out.clone()));
                // With an SEI injected, the output is the same.
                let mut with_sei = annexb(&[SEI_USER_DATA]);
                with_sei.extend_from_slice(au);
                let mut other = NalSanitizer::new(Limits::default());
                assert!(
                    other.sanitize(&header(true, w as u16, h as u16), &with_sei) == Ok(out.clone())
                );
            }
            clean.push(out);
        }
        let (a, b) = (decode_all(&aus), decode_all(&clean));
        assert_eq!(a.len(), aus.len(), "{w}x{h}: every frame decodes");
        assert!(
            a == b,
            "{w}x{h}: the sanitized stream decodes to the same pictures"
        );
    }
}

const ALLOWED_TYPES: [u8; 4] = tsuitate_protocol::h264::ALLOWED_NAL_TYPES;

/// Hostile parameter sets and slices an agent could send: each is refused, never forwarded.
#[test]
fn hostile_parameter_sets_and_slices_are_refused() {
    let refused = |au: Vec<u8>, keyframe: bool| {
        let mut san = NalSanitizer::new(Limits::default());
        san.sanitize(&header(keyframe, 640, 480), &au)
            .expect_err("must be refused")
    };
    let (s, p, i) = (sps(40, 30, 0, 30), pps(), slice(true, &[0x88]));
    // An SPS followed by 1 MiB of hidden bytes.
    let mut fat = s.clone();
    fat.extend(std::iter::repeat_n(0x5a, 1 << 20));
    assert_eq!(
        refused(annexb(&[&fat, &p, &i]), true),
        SanitizeError::Sps(h264::SpsError::TrailingData)
    );
    // A PPS with data after its last field.
    let mut tail = p.clone();
    tail.extend_from_slice(&[0x11, 0x22, 0x33]);
    assert!(matches!(
        refused(annexb(&[&s, &tail, &i]), true),
        SanitizeError::Pps(_)
    ));
    // A PPS with slice groups (FMO).
    let mut b = BitWriter::new();
    b.ue(0);
    b.ue(0);
    b.bit(false);
    b.bit(false);
    b.ue(3); // four slice groups
    b.ue(0); // slice_group_map_type …
    let fmo = b.into_nal(0x68);
    assert!(matches!(
        refused(annexb(&[&s, &fmo, &i]), true),
        SanitizeError::Pps(h264::PpsError::Feature(_))
    ));
    // An IDR unit (type 5) holding a P slice.
    let mut p_in_idr = slice(false, &[0x9a]);
    p_in_idr[0] = 0x65;
    assert_eq!(
        refused(annexb(&[&s, &p, &p_in_idr]), true),
        SanitizeError::Slice(h264::SliceError::IdrNotIntra)
    );
    // An SPS 100 001 macroblocks wide "cropped to 1280".
    let mut b = BitWriter::new();
    for v in [66, 0xc0, 31] {
        b.bits(v, 8);
    }
    b.ue(0);
    b.ue(0);
    b.ue(2);
    b.ue(1);
    b.bit(false);
    b.ue(100_000);
    b.ue(44);
    b.bit(true);
    b.bit(true);
    b.bit(true);
    for c in [0, 99_360, 0, 0] {
        b.ue(c);
    }
    b.bit(false);
    let wide = b.into_nal(0x67);
    assert!(matches!(
        refused(annexb(&[&wide, &p, &i]), true),
        SanitizeError::Sps(h264::SpsError::OutOfRange(_))
    ));
    // A B slice (frames would need reordering).
    let mut b = BitWriter::new();
    b.ue(0);
    b.ue(6); // B
    b.ue(0);
    b.bits(1, 4);
    let bslice = b.into_nal(0x41);
    let mut san = NalSanitizer::new(Limits::default());
    san.sanitize(&header(true, 640, 480), &annexb(&[&s, &p, &i]))
        .expect("keyframe");
    assert_eq!(
        san.sanitize(&header(false, 640, 480), &annexb(&[&bslice])),
        Err(SanitizeError::Slice(h264::SliceError::Type(6)))
    );
    // A slice whose first macroblock lies outside the picture.
    let mut b = BitWriter::new();
    b.ue(1200); // 40 × 30 = 1200 macroblocks: 0…1199
    b.ue(5);
    b.ue(0);
    b.bits(1, 4);
    let outside = b.into_nal(0x41);
    assert_eq!(
        san.sanitize(&header(false, 640, 480), &annexb(&[&outside])),
        Err(SanitizeError::Slice(h264::SliceError::OutOfRange(
            "first_mb_in_slice"
        )))
    );
    // An IDR without its parameter sets (after a good keyframe).
    assert_eq!(
        san.sanitize(&header(true, 640, 480), &annexb(&[&i])),
        Err(SanitizeError::IdrWithoutParameterSets)
    );
}

/// Issue 12 item 4: "keyframe A; P frames; keyframe with new sets B (which a viewer may never
/// get); IDR without sets" — the last is refused, and every keyframe that passes carries its
/// own sets, so a viewer resuming at any passed keyframe decodes with the same sets the
/// gateway checked: a fresh sanitizer accepts it and what follows.
#[test]
fn every_passed_keyframe_carries_its_sets_so_a_fresh_sanitizer_accepts_it() {
    let a = annexb(&[&sps(40, 30, 0, 30), &pps(), &slice(true, &[0x88])]);
    let pf = |n| annexb(&[&slice_numbered(false, &[0x9a], n)]);
    let b = annexb(&[&sps(40, 30, 0, 31), &pps(), &slice(true, &[0x88])]);
    let bare_idr = annexb(&[&slice(true, &[0x88])]);
    let stream = [
        (true, a),
        (false, pf(1)),
        (false, pf(2)),
        (true, b),
        (true, bare_idr),
        (false, pf(1)),
    ];
    let mut san = NalSanitizer::new(Limits::default());
    let mut passed = Vec::new();
    for (key, au) in &stream {
        match san.sanitize(&header(*key, 640, 480), au) {
            Ok(out) => passed.push((*key, out)),
            Err(e) => assert_eq!(e, SanitizeError::IdrWithoutParameterSets),
        }
    }
    assert_eq!(passed.len(), 5, "only the bare IDR is refused");
    let keyframes: Vec<usize> = (0..passed.len()).filter(|k| passed[*k].0).collect();
    assert_eq!(keyframes.len(), 2);
    for k in keyframes {
        let mut fresh = NalSanitizer::new(Limits::default());
        for (n, (key, out)) in passed.iter().enumerate().skip(k) {
            if n > k && *key {
                break;
            }
            assert!(
                fresh.sanitize(&header(*key, 640, 480), out).is_ok(),
                "a viewer resuming at keyframe {k} decodes unit {n}"
            );
        }
    }
}

/// Slice data is walked to its end: bytes hidden after a real slice's trailing bits, a slice
/// cut short, and a corrupted macroblock are refused; the untouched slice passes.
#[test]
fn real_slices_with_hidden_bytes_or_cut_short_are_refused() {
    let aus: Vec<Vec<u8>> = encode_real(320, 240, 3)
        .into_iter()
        .filter(|au| !au.is_empty())
        .collect();
    let first = &aus[0];
    let nals: Vec<&[u8]> = nal_units(first)
        .filter(|u| ALLOWED_TYPES.contains(&(u[0] & 0x1f)))
        .collect();
    let idr = nals
        .iter()
        .position(|n| n[0] & 0x1f == 5)
        .expect("an IDR slice");
    let with = |slice: Vec<u8>| {
        let mut units: Vec<Vec<u8>> = nals.iter().map(|n| n.to_vec()).collect();
        units[idr] = slice;
        let refs: Vec<&[u8]> = units.iter().map(Vec::as_slice).collect();
        let mut san = NalSanitizer::new(Limits::default());
        san.sanitize(&header(true, 320, 240), &annexb(&refs))
    };
    assert!(with(nals[idr].to_vec()).is_ok(), "the real slice passes");
    // Hidden bytes after the trailing bits.
    let mut hidden = nals[idr].to_vec();
    hidden.extend_from_slice(b"<script>");
    assert_eq!(
        with(hidden),
        Err(SanitizeError::Slice(h264::SliceError::TrailingData))
    );
    // Cut short (the last third of the slice data gone).
    let cut = nals[idr][..nals[idr].len() * 2 / 3].to_vec();
    assert!(matches!(with(cut), Err(SanitizeError::Slice(_))));
    // Corrupted bytes in the middle: the walk fails somewhere or ends off the trailing bits.
    let mut refused = 0;
    for at in (20..nals[idr].len() - 10).step_by(97) {
        let mut bad = nals[idr].to_vec();
        bad[at] ^= 0x5a;
        if with(bad).is_err() {
            refused += 1;
        }
    }
    assert!(refused > 0, "corrupted slice data is noticed");
}

/// RGB pictures for the differential corpus: a moving gradient with detail, then a still one
/// (P_Skip), then a patch of change (a typed glyph's worth of macroblocks).
fn pictures(width: usize, height: usize) -> Vec<Vec<u8>> {
    let base = |shift: usize| -> Vec<u8> {
        (0..width * height)
            .flat_map(|i| {
                let (x, y) = (i % width, i / width);
                [
                    (x + shift) as u8,
                    (y * 3) as u8,
                    (((x + shift) ^ y) & 0xff) as u8,
                ]
            })
            .collect()
    };
    let mut patched = base(8);
    for y in 4..12.min(height) {
        for x in 4..20.min(width) {
            let i = (y * width + x) * 3;
            patched[i..i + 3].copy_from_slice(&[0, 0, 0]);
        }
    }
    vec![base(0), base(8), base(8), patched]
}

/// Encode with openh264: its default (camera) settings, or the agent's screen-content ones.
fn encode_pictures(width: usize, height: usize, pics: &[Vec<u8>], screen: bool) -> Vec<Vec<u8>> {
    use openh264::encoder::{Encoder, EncoderConfig, UsageType};
    use openh264::formats::{RgbSliceU8, YUVBuffer};
    use openh264::OpenH264API;
    let mut enc = if screen {
        let config = EncoderConfig::new()
            .usage_type(UsageType::ScreenContentRealTime)
            .adaptive_quantization(false)
            .background_detection(false);
        Encoder::with_api_config(OpenH264API::from_source(), config).expect("openh264 encoder")
    } else {
        Encoder::new().expect("openh264 encoder")
    };
    pics.iter()
        .map(|rgb| {
            let yuv = YUVBuffer::from_rgb_source(RgbSliceU8::new(rgb, (width, height)));
            enc.encode(&yuv).expect("encode").to_vec()
        })
        .filter(|au| !au.is_empty())
        .collect()
}

/// The differential harness (`fuzzing::sanitizer_decodes`, the `sanitizer_decode` fuzz target)
/// on openh264's own streams: every access unit is forwarded and decodes. With
/// `TSUITATE_WRITE_CORPUS=1` the streams are written as the fuzz target's seed corpus.
#[test]
fn real_streams_pass_the_differential_harness() {
    let corpus =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/sanitizer_decode");
    for (w, h, screen) in [
        (48, 32, false),
        (64, 48, false),
        (80, 36, false),
        (96, 64, false),
        (64, 48, true),
        (112, 80, true),
    ] {
        let aus = encode_pictures(w, h, &pictures(w, h), screen);
        let input = tsuitate_protocol::fuzzing::sanitizer_decodes_input(w as u16, h as u16, &aus);
        let mut dec = openh264::decoder::Decoder::new().expect("decoder");
        let mut decoded = 0;
        tsuitate_protocol::fuzzing::sanitizer_decodes(&input, &mut |au| {
            decoded += 1;
            dec.decode(au).map(|_| ()).map_err(|e| e.to_string())
        });
        assert_eq!(decoded, aus.len(), "{w}x{h}: every access unit forwarded");
        if std::env::var_os("TSUITATE_WRITE_CORPUS").is_some() {
            std::fs::create_dir_all(&corpus).expect("corpus dir");
            let kind = if screen { "screen" } else { "camera" };
            std::fs::write(corpus.join(format!("openh264-{kind}-{w}x{h}")), &input)
                .expect("write seed");
        }
    }
}

/// An IDR for `sps(4, 4, …)`/`pps()` whose first macroblock (top-left) is Intra 4x4 with every
/// block in `mode` and chroma `chroma` prediction, and the other 15 Intra 4x4 DC; no residual.
fn idr_intra4x4(mode: u32, chroma: u32) -> Vec<u8> {
    let mut b = BitWriter::new();
    b.ue(0); // first_mb_in_slice
    b.ue(7); // I
    b.ue(0); // pps id
    b.bits(0, 4); // frame_num
    b.ue(0); // idr_pic_id
    b.bit(false);
    b.bit(false);
    b.se(0); // slice_qp_delta
    b.ue(1); // deblocking off
    for mb in 0..16 {
        let (mode, chroma) = if mb == 0 { (mode, chroma) } else { (2, 0) };
        b.ue(0); // mb_type I_NxN
        for blk in 0..16 {
            // Block 0 predicts DC (no neighbours); later blocks predict from earlier ones, so
            // the mode is sent relative to the prediction.
            let predicted = if blk == 0 || mode == 2 { 2 } else { mode };
            if mode == predicted {
                b.bit(true);
            } else {
                b.bit(false);
                b.bits(if mode < predicted { mode } else { mode - 1 }, 3);
            }
        }
        b.ue(chroma);
        b.ue(3); // coded_block_pattern 0 (intra table)
    }
    b.into_nal(0x65)
}

/// A P slice for `sps(4, 4, …)` (max_num_ref_frames 1) that skips all 16 macroblocks, with
/// `num_ref_idx_active_override` and a list modification of `diffs` (idc 0, abs_diff − 1).
fn p_slice_with(frame_num: u32, active: Option<u32>, diffs: &[u32], mmco: bool) -> Vec<u8> {
    let mut b = BitWriter::new();
    b.ue(0);
    b.ue(5); // P
    b.ue(0);
    b.bits(frame_num, 4);
    match active {
        Some(n) => {
            b.bit(true);
            b.ue(n - 1);
        }
        None => b.bit(false),
    }
    b.bit(!diffs.is_empty());
    if !diffs.is_empty() {
        for d in diffs {
            b.ue(0);
            b.ue(*d);
        }
        b.ue(3);
    }
    b.bit(mmco); // adaptive_ref_pic_marking_mode_flag
    if mmco {
        b.ue(1);
        b.ue(0);
        b.ue(0);
    }
    b.se(0);
    b.ue(1);
    b.ue(16); // mb_skip_run: the whole picture
    b.into_nal(0x41)
}

/// The semantic checks that keep the gateway's view of the stream and the decoder's the same:
/// intra prediction only from samples that exist, references only to pictures the decoder
/// holds, no frame_num gaps, no memory-management operations. Each case is refused; the same
/// stream without the fault passes and decodes.
#[test]
fn prediction_and_references_the_decoder_cannot_follow_are_refused() {
    let hdr = |key| header(key, 64, 64);
    let params = |idr: &[u8]| annexb(&[&sps(4, 4, 0, 30), &pps(), idr]);
    let accepted = |aus: &[(bool, Vec<u8>)]| -> Result<(), SanitizeError> {
        let mut san = NalSanitizer::new(Limits::default());
        let mut dec = openh264::decoder::Decoder::new().expect("decoder");
        for (key, au) in aus {
            let out = san.sanitize(&hdr(*key), au)?;
            dec.decode(&out).expect("what passes decodes");
        }
        Ok(())
    };
    // The top-left macroblock: DC passes; vertical (0) needs the row above, horizontal (1) the
    // column to the left, diagonal down-right (4) both and the corner; chroma likewise.
    assert_eq!(accepted(&[(true, params(&idr_intra4x4(2, 0)))]), Ok(()));
    for (mode, chroma) in [(0, 0), (1, 0), (4, 0), (2, 1), (2, 2), (2, 3)] {
        assert!(
            matches!(
                accepted(&[(true, params(&idr_intra4x4(mode, chroma)))]),
                Err(SanitizeError::Slice(SliceError::OutOfRange(_)))
            ),
            "intra 4x4 mode {mode}, chroma {chroma} at the picture's corner"
        );
    }
    let idr = (true, params(&idr_intra4x4(2, 0)));
    let p = |f, a, d: &[u32], m| (false, annexb(&[&p_slice_with(f, a, d, m)]));
    assert_eq!(accepted(&[idr.clone(), p(1, None, &[], false)]), Ok(()));
    assert_eq!(accepted(&[idr.clone(), p(1, None, &[0], false)]), Ok(()));
    // Two references when the decoder holds one; a modification naming the picture before the
    // one it holds; a frame_num gap; memory management.
    for (case, au) in [
        ("two references", p(1, Some(2), &[], false)),
        ("a picture not held", p(1, None, &[1], false)),
        ("a frame_num gap", p(2, None, &[], false)),
        ("memory management", p(1, None, &[], true)),
    ] {
        assert!(accepted(&[idr.clone(), au]).is_err(), "{case}");
    }
}
