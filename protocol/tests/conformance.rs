//! Every dialect passes the conformance harness (`switchboard_protocol::testing`).

use serde_json::json;
use switchboard_protocol::dialects::antmedia::{AntMedia, AntState};
use switchboard_protocol::dialects::peerjs::{Peerjs, PeerjsState};
use switchboard_protocol::dialects::raw::{Raw, RawState};
use switchboard_protocol::dialects::socketio::{SioMessage, SioState, SocketIo};
use switchboard_protocol::testing::{Conformance, assert_dialect_conformance};

#[test]
fn antmedia_conforms() {
    assert_dialect_conformance::<AntMedia>(Conformance {
        state: |_| AntState::default(),
        unknown: vec![
            r#"{"command":"connectWithNewId","streamId":"room1"}"#.into(),
            r#"{"command":"notification","definition":"joined","streamId":"room1"}"#.into(),
            r#"{"command":"pong"}"#.into(),
        ],
        hostile: vec![r#"{"command":"join","streamId":"a b"}"#.into()],
        // A partner arriving is told by `start` to the offerer; opaque frames of other dialects
        // mean nothing to the SDK.
        silent: &["peer_joined", "opaque"],
    });
}

#[test]
fn raw_conforms() {
    assert_dialect_conformance::<Raw>(Conformance {
        state: |room| RawState {
            room: room.to_owned(),
        },
        unknown: vec![
            r#"{"type":"renegotiate","renegotiate":true}"#.into(),
            r#"{"type":"transceiverRequest","transceiverRequest":{"kind":"video"}}"#.into(),
            "ping".into(),
        ],
        hostile: vec![],
        // Conference replies answer Ant peers' conference requests; raw peers send only the
        // media ones (publish, play), and get only the media replies.
        silent: &["conference_reply"],
    });
}

#[test]
fn socketio_conforms() {
    // serde_json parses arguments with its 128-level limit; 120 levels get through as a
    // `Value`.
    let mut deep = json!(1);
    for _ in 0..120 {
        deep = json!({ "sdp": deep });
    }
    assert_dialect_conformance::<SocketIo>(Conformance {
        state: |room| SioState {
            room: room.to_owned(),
        },
        unknown: vec![
            SioMessage::msg(r#"{"type":"bye"}"#),
            SioMessage {
                event: "join".into(),
                data: json!("room1"),
            },
            SioMessage {
                event: "msg".into(),
                data: json!({ "chat": "hi" }),
            },
        ],
        hostile: vec![
            SioMessage {
                event: "msg".into(),
                data: deep,
            },
            SioMessage {
                event: "msg".into(),
                data: json!(null),
            },
            SioMessage {
                event: "msg".into(),
                data: json!([1, 2]),
            },
            SioMessage {
                event: String::new(),
                data: json!(null),
            },
        ],
        // A socket.io peer leaves by disconnecting; nothing to acknowledge. Conference replies
        // answer Ant peers' conference requests; socket.io peers send none (conference media
        // is for Ant and raw peers).
        silent: &["left", "conference_reply", "media_reply"],
    });
}

#[test]
fn peerjs_conforms() {
    assert_dialect_conformance::<Peerjs>(Conformance {
        // The connection registered as `room`: the peer of another dialect is in its own room,
        // so what it renders from there (`src` = the room) is what it would send back there.
        state: |room| PeerjsState::new(room, None),
        unknown: vec![
            r#"{"type":"CALL","dst":"room1"}"#.into(),
            r#"{"type":"OPEN"}"#.into(),
            r#"{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}"#.into(),
        ],
        hostile: vec![
            r#"{"type":"OFFER","dst":"room1","payload":{"sdp":{"type":"offer","sdp":"v=0"}},"payload":7}"#.into(),
            r#"{"type":"CANDIDATE","dst":"room1","payload":{"candidate":{"candidate":"c","sdpMLineIndex":1e99}}}"#.into(),
        ],
        // PeerJS has no notices: joining is calling, and the server says nothing about rooms.
        // Ant peer messages, ICE server settings, conference and media replies (no SFU for PeerJS
        // peers) and the drain notice have
        // no PeerJS message; opaque frames come only from PeerJS peers (forwarded, not encoded).
        silent: &[
            "joined",
            "start",
            "peer_joined",
            "left",
            "peer_left",
            "peer_message",
            "opaque",
            "ice_servers",
            "conference_reply",
            "media_reply",
            "server_will_stop",
        ],
    });
}
