//! WHIP/WHEP bodies: any text is either a trickle ICE fragment or a typed error with a bounded
//! text, and the SDP check never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_protocol::whip::{MAX_FRAG_CANDIDATES, SdpFrag, check_offer, ice_ufrag};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match SdpFrag::decode(&text) {
        Ok(frag) => {
            assert!(!frag.ice_ufrag.is_empty() && !frag.ice_pwd.is_empty());
            assert!(frag.candidates().count() <= MAX_FRAG_CANDIDATES);
        }
        Err(error) => assert!(error.to_string().len() <= 256),
    }
    let _ = check_offer(&text);
    let _ = ice_ufrag(&text);
});
