//! Golden engine.io 3 polling payloads (`tests/golden/engineio3/`): each `<case>.payload.txt`
//! is what the real engine.io-parser 2 (socket.io-client 2's) encodes for the packets in
//! `<case>.packets.json`, recorded by `tests/node/eio3_golden_record.cjs`. The gateway's
//! framing must build the same bytes from the packets and split the payload back into them.

use std::fs;
use std::path::Path;

use similar_asserts::assert_eq;
use switchboard_protocol::dialects::engineio::payload3;

#[test]
fn payloads_match_engine_io_parser_2_both_ways() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/engineio3");
    let mut cases = 0;
    for entry in fs::read_dir(&dir).expect("the golden directory") {
        let path = entry.expect("an entry").path();
        let Some(case) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".payload.txt"))
        else {
            continue;
        };
        let payload = fs::read_to_string(&path).expect("a payload");
        let packets: Vec<String> = serde_json::from_str(
            &fs::read_to_string(dir.join(format!("{case}.packets.json"))).expect("its packets"),
        )
        .expect("a JSON list of packets");
        let mut built = String::new();
        for packet in &packets {
            payload3::append(&mut built, packet);
        }
        assert_eq!(built, payload, "{case}: built");
        let split: Vec<&str> = payload3::packets(&payload, 1 << 20)
            .expect("a golden payload splits")
            .into_iter()
            .map(|r| &payload[r])
            .collect();
        assert_eq!(split, packets, "{case}: split");
        cases += 1;
    }
    assert!(cases >= 5, "only {cases} golden payloads");
}
