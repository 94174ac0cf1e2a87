#![no_main]
//! Differential fuzz target: what the sanitizer forwards, openh264 decodes without error (see
//! tsuitate_protocol::fuzzing::sanitizer_decodes).

use openh264::decoder::Decoder;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(mut decoder) = Decoder::new() else {
        return;
    };
    tsuitate_protocol::fuzzing::sanitizer_decodes(data, &mut |au| {
        decoder.decode(au).map(|_| ()).map_err(|e| e.to_string())
    });
});
