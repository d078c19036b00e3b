//! socket.io events: the input is the `msg` string argument, and, when it is JSON, also the
//! parsed argument (modern clients emit objects) of `msg` and of `switchboard`. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_protocol::dialects::socketio::{SioMessage, SioState, SocketIo};
use switchboard_protocol::{Decoded, Dialect};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let mut wires = vec![SioMessage::msg(text.clone())];
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
        for event in ["msg", "switchboard"] {
            wires.push(SioMessage {
                event: event.to_owned(),
                data: value.clone(),
            });
        }
    }
    for wire in wires {
        let mut state = SioState {
            room: "room1".to_owned(),
        };
        match SocketIo::decode(&mut state, &wire) {
            Ok(Decoded::Event(event)) => {
                let _ = SocketIo::encode(&state, &event);
                if let Some(original) = wire.msg_text() {
                    let _ = SocketIo::forward(&state, &original, &event);
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
