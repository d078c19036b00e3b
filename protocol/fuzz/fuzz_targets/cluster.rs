//! Bundles from other cluster nodes (node protocol 6): any bytes read as a bundle give frames or
//! a typed error, never a panic; a forward's text is decoded again as the receiver does when
//! told to (and as a session that renders relays its own way does with every forward).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_protocol::cluster::{BundleReader, FrameBody, rebuild_event};

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = BundleReader::new(data) else {
        return;
    };
    let _ = reader.node();
    for frame in reader {
        match frame {
            Ok((_, FrameBody::Forward { dialect, how, room, original, .. })) => {
                let _ = format!("{how:?}");
                if let Ok(text) = std::str::from_utf8(original) {
                    let _ = rebuild_event(dialect, room, text);
                }
            }
            Ok((_, FrameBody::Message(msg))) => {
                let _ = serde_json::to_string(&msg);
            }
            Err(error) => assert!(error.to_string().len() <= 512),
        }
    }
});
