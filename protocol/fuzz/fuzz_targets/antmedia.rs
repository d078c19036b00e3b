//! Ant Media frames: any text decodes to an event, a reply or a typed error, never a panic;
//! what decodes re-encodes and forwards without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_protocol::dialects::antmedia::{AntMedia, AntState};
use switchboard_protocol::{Decoded, Dialect};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let mut state = AntState {
        app: "LiveApp".to_owned(),
    };
    match AntMedia::decode(&mut state, &text) {
        Ok(Decoded::Event(event)) => {
            let _ = AntMedia::encode(&state, &event);
            let _ = AntMedia::forward(&state, &text, &event);
        }
        Ok(_) => {}
        Err(error) => {
            // Errors are short whatever the input (they echo at most a bounded prefix).
            assert!(error.to_string().len() <= 512);
            let _ = error.code();
        }
    }
});
