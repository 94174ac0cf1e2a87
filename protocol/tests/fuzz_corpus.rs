//! Replays the committed fuzz corpus (and any crash reproducers added to it) through the same
//! entry points the cargo-fuzz targets call, so stable `cargo test` keeps them passing.

use std::path::Path;

use tsuitate_protocol::fuzzing;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut n = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("read corpus file");
        run(&data);
        // Every truncation too: the decoders must tell "need more" from "malformed".
        for cut in (0..data.len()).step_by(data.len() / 64 + 1) {
            run(&data[..cut]);
        }
        n += 1;
    }
    assert!(n > 0, "corpus {target} is empty");
}

#[test]
fn frame_decoder_corpus() {
    replay("frame_decoder", fuzzing::frame_decoder);
}

#[test]
fn viewer_messages_corpus() {
    replay("viewer_messages", fuzzing::viewer_messages);
}

#[test]
fn agent_messages_corpus() {
    replay("agent_messages", fuzzing::agent_messages);
}

#[test]
fn sanitizer_corpus() {
    replay("sanitizer", fuzzing::sanitizer);
}

#[cfg(feature = "page")]
#[test]
fn page_messages_corpus() {
    replay("page_messages", fuzzing::page_messages);
}

fn sanitizer_decode(data: &[u8]) {
    let mut decoder = openh264::decoder::Decoder::new().expect("openh264 decoder");
    fuzzing::sanitizer_decodes(data, &mut |au| {
        decoder.decode(au).map(|_| ()).map_err(|e| e.to_string())
    });
}

#[test]
fn sanitizer_decode_corpus() {
    replay("sanitizer_decode", sanitizer_decode);
}
