#![no_main]
//! Fuzz target: see tsuitate_protocol::fuzzing::frame_decoder.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tsuitate_protocol::fuzzing::frame_decoder(data);
});
