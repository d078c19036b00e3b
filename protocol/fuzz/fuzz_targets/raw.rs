//! Raw frames: any text decodes (recognized signals, opaque frames, typed errors), never a
//! panic; recognized signals re-encode and forward.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_protocol::dialects::raw::{Raw, RawState};
use switchboard_protocol::{Decoded, Dialect};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let mut state = RawState {
        room: "room1".to_owned(),
    };
    match Raw::decode(&mut state, &text) {
        Ok(Decoded::Event(event)) => {
            let _ = Raw::encode(&state, &event);
            let _ = Raw::forward(&state, &text, &event);
        }
        Ok(_) => {}
        Err(error) => {
            assert!(error.to_string().len() <= 512);
            let _ = error.code();
        }
    }
});
