//! socket.io over engine.io frames: any text decodes (packets, signals, typed errors), never a
//! panic, connected or not; a relayed signal's original is part of the frame and forwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_protocol::dialects::TextFrames;
use switchboard_protocol::dialects::engineio::{EngineState, SocketIoWs};
use switchboard_protocol::{Decoded, Dialect};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    for connected in [false, true] {
        let mut state = EngineState {
            room: "room1".to_owned(),
            connected,
            ..EngineState::default()
        };
        let _ = SocketIoWs::rate_limited(&text);
        match SocketIoWs::decode_relayable(&mut state, &text) {
            Ok((Decoded::Event(event), original)) => {
                let _ = SocketIoWs::encode(&state, &event);
                if let Some(original) = original {
                    let _ = SocketIoWs::forward(&state, &original, &event);
                }
            }
            Ok(_) => {}
            Err(error) => {
                assert!(error.to_string().len() <= 512);
                let _ = error.code();
            }
        }
    }
});
