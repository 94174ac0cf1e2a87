//! Entry points shared by the cargo-fuzz targets in `protocol/fuzz/` and by the corpus replay
//! test, so the fuzzers and `cargo test` exercise the same code (docs/protocol.md §9). Each must
//! never panic.

use crate::codec::Message;
use crate::h264::{nal_type, nal_units, NalSanitizer};
use crate::limits::Limits;
use crate::video::VideoHeader;
use crate::{
    AgentSessionToGateway, AgentToGateway, GatewayToAgent, GatewayToAgentSession, GatewayToViewer,
    ViewerToGateway,
};

/// Decode messages of type `M` from `data` until the bytes run out or are malformed; every
/// message decoded must re-encode to the bytes it came from.
fn decode_all<M: Message + std::fmt::Debug>(data: &[u8]) {
    let limits = Limits::default();
    let mut rest = data;
    while let Ok(Some((msg, used))) = M::decode(rest, &limits) {
        assert_eq!(
            msg.to_bytes(),
            &rest[..used],
            "re-encoding must be exact: {msg:?}"
        );
        rest = &rest[used..];
    }
}

/// Fuzz the framing codec with every message direction.
pub fn frame_decoder(data: &[u8]) {
    decode_all::<ViewerToGateway>(data);
    decode_all::<GatewayToViewer>(data);
    decode_all::<AgentToGateway>(data);
    decode_all::<GatewayToAgent>(data);
    decode_all::<AgentSessionToGateway>(data);
    decode_all::<GatewayToAgentSession>(data);
}

/// Fuzz the messages a viewer sends (the gateway's viewer-side decoder).
pub fn viewer_messages(data: &[u8]) {
    decode_all::<ViewerToGateway>(data);
}

/// Fuzz the messages an agent sends (the gateway's agent-side decoders).
pub fn agent_messages(data: &[u8]) {
    decode_all::<AgentToGateway>(data);
    decode_all::<AgentSessionToGateway>(data);
}

/// Fuzz the sanitizer: the first 4 bytes give the header dimensions, the rest is a sequence of
/// access units separated by `0xff 0xfe 0xfd`. Output must be idempotent.
pub fn sanitizer(data: &[u8]) {
    let Some((dims, body)) = data.split_first_chunk::<4>() else {
        return;
    };
    let width = u16::from_be_bytes([dims[0], dims[1]]);
    let height = u16::from_be_bytes([dims[2], dims[3]]);
    let mut sanitizer = NalSanitizer::new(Limits::default());
    for (i, au) in split_aus(body).enumerate() {
        // Derive the flag from the content so the fuzzer reaches the deeper checks.
        let keyframe = nal_units(au).any(|nal| nal_type(nal) == Some(5));
        let header = VideoHeader {
            sequence: i as u64,
            capture_us: 0,
            keyframe,
            width,
            height,
        };
        let before = sanitizer.clone();
        if let Ok(out) = sanitizer.sanitize(&header, au) {
            let mut again = before;
            let twice = again.sanitize(&header, &out);
            assert_eq!(
                twice.as_ref(),
                Ok(&out),
                "sanitizing its own output must change nothing"
            );
        }
    }
}

/// The differential property (issue 12): whatever the sanitizer forwards, a real decoder
/// decodes without error. `data` is the header dimensions (4 bytes), then access units, each
/// with a 2-byte big-endian length. The access units go through one sanitizer, as one agent's
/// stream would; the first one refused ends the stream (the gateway ends that session); every
/// one forwarded is given to `decode` (one decoder for the stream, as a viewer has), which
/// returns the decoder's error, if any.
pub fn sanitizer_decodes(data: &[u8], decode: &mut dyn FnMut(&[u8]) -> Result<(), String>) {
    let Some((dims, mut body)) = data.split_first_chunk::<4>() else {
        return;
    };
    let width = u16::from_be_bytes([dims[0], dims[1]]);
    let height = u16::from_be_bytes([dims[2], dims[3]]);
    let mut sanitizer = NalSanitizer::new(Limits::default());
    let mut i = 0u64;
    while let Some((len, rest)) = body.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
        let (au, rest) = rest.split_at(len);
        body = rest;
        let header = VideoHeader {
            sequence: i,
            capture_us: 0,
            keyframe: nal_units(au).any(|nal| nal_type(nal) == Some(5)),
            width,
            height,
        };
        i += 1;
        let Ok(out) = sanitizer.sanitize(&header, au) else {
            return;
        };
        if let Err(e) = decode(&out) {
            panic!("access unit {i} was forwarded but does not decode: {e}");
        }
    }
}

/// Access units in the [`sanitizer_decodes`] input format.
pub fn sanitizer_decodes_input(width: u16, height: u16, aus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
    for au in aus {
        let len = u16::try_from(au.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&au[..usize::from(len)]);
    }
    out
}

fn split_aus(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(body);
    std::iter::from_fn(move || {
        let cur = rest?;
        match cur.windows(3).position(|w| w == [0xff, 0xfe, 0xfd]) {
            Some(p) => {
                rest = Some(&cur[p + 3..]);
                Some(&cur[..p])
            }
            None => {
                rest = None;
                Some(cur)
            }
        }
    })
}

/// Fuzz the web viewer page's data-channel decoder: never panics, and whatever it accepts is
/// inside the protocol's sets (a pointer inside the picture, text within its limits).
#[cfg(feature = "page")]
pub fn page_messages(data: &[u8]) {
    use crate::page::{decode, PageMessage};
    use crate::InputEvent;
    let limits = Limits::default();
    let picture = (1280, 720);
    if let Ok(msg) = decode(data, picture, &limits) {
        match msg {
            PageMessage::Input(InputEvent::PointerMove { x, y }) => {
                assert!(x < picture.0 && y < picture.1);
            }
            PageMessage::Input(InputEvent::Text(t)) => {
                assert!(t.chars().count() <= limits.max_text_chars && crate::text_valid(&t));
            }
            PageMessage::Input(InputEvent::Key { keysym, .. }) => {
                assert!(crate::keysym_valid(keysym));
            }
            PageMessage::Resize { width, height } => assert!(limits.dimensions_ok(width, height)),
            _ => {}
        }
    }
}
