//! PeerJS client messages: any text decodes to a signal, an ignored heartbeat or a typed error,
//! never a panic; decoded signals re-encode for a PeerJS peer, and what a PeerJS receiver is
//! forwarded is JSON naming the sender as `src`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_protocol::dialects::TextFrames;
use switchboard_protocol::dialects::peerjs::{Peerjs, PeerjsState};
use switchboard_protocol::{Decoded, Dialect};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let mut state = PeerjsState::new("alice", None);
    match Peerjs::decode_relayable(&mut state, &text) {
        Ok((Decoded::Event(event), original)) => {
            let _ = Peerjs::encode(&state, &event);
            let _ = Peerjs::implied_join(&state, &event);
            if let Some(original) = original {
                let forwarded = Peerjs::forward(&state, &original, &event);
                let forwarded = forwarded.expect("a relayed PeerJS signal is forwarded");
                let v: serde_json::Value =
                    serde_json::from_str(&forwarded).expect("the forward is JSON");
                assert_eq!(v["src"], "alice");
            }
        }
        Ok(_) => {}
        Err(error) => {
            assert!(error.to_string().len() <= 512);
            let _ = error.code();
        }
    }
});
