//! Differential: wherever a fast decode path (an exact client shape read by hand, or a typed
//! struct) accepts a frame or a socket.io `msg` literal, the general decoder of that dialect
//! gives the same event (`protocol/src/dialects/exact.rs`, `protocol/src/dialects/fast.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_protocol::testing::fast_paths_agree;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(difference) = fast_paths_agree(&text) {
        panic!("{difference}");
    }
});
