#![no_main]
//! Fuzz target: see tsuitate_protocol::fuzzing::page_messages.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tsuitate_protocol::fuzzing::page_messages(data);
});
