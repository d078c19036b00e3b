//! Golden files of the frames cluster nodes exchange through Redis (`tests/golden/cluster/`):
//! each `<case>.json` is one frame exactly as a node publishes it. The test builds every frame
//! in code, compares its JSON byte for byte with the file, and parses the file back into the
//! same frame. `GOLDEN_BLESS=1 cargo test -p switchboard-protocol --test cluster_golden`
//! rewrites the files; review the diff, since every change here is a change of the wire format
//! between nodes (bump `NODE_PROTOCOL_VERSION` when old nodes cannot read it).

use std::path::PathBuf;

use similar_asserts::assert_eq;
use switchboard_protocol::cluster::{NODE_PROTOCOL_VERSION, NodeFrame, NodeMessage, RemotePeer};
use switchboard_protocol::{
    Candidate, Description, DialectKind, ErrorCode, Event, JoinMode, Opaque, RoomNotice, SdpKind,
};

fn frame(msg: NodeMessage) -> NodeFrame {
    NodeFrame {
        v: NODE_PROTOCOL_VERSION,
        node: "node-a@1763740000000".to_owned(),
        seq: Some(7),
        msg,
    }
}

fn ant(session: u64) -> RemotePeer {
    RemotePeer {
        session,
        dialect: DialectKind::Antmedia,
        mode: JoinMode::Both,
    }
}

fn cases() -> Vec<(&'static str, NodeFrame)> {
    vec![
        (
            "joined",
            frame(NodeMessage::Joined {
                room: "room1".into(),
                peer: RemotePeer {
                    session: 7,
                    dialect: DialectKind::Antmedia,
                    mode: JoinMode::Play,
                },
            }),
        ),
        (
            "left",
            frame(NodeMessage::Left {
                room: "room1".into(),
                session: 7,
            }),
        ),
        (
            "relay_offer_verbatim",
            frame(NodeMessage::Relay {
                to: 12,
                from: ant(7),
                event: Event::Description(Description {
                    room: "room1".into(),
                    kind: SdpKind::Offer,
                    sdp: "v=0\r\n".into(),
                }),
                original: Some(
                    r#"{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"v=0\r\n"}"#
                        .into(),
                ),
            }),
        ),
        (
            "relay_candidate",
            frame(NodeMessage::Relay {
                to: 12,
                from: RemotePeer {
                    session: 3,
                    dialect: DialectKind::Socketio,
                    mode: JoinMode::Both,
                },
                event: Event::Candidate(Candidate {
                    room: "room1".into(),
                    candidate: "candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host".into(),
                    sdp_mid: Some("0".into()),
                    sdp_mline_index: Some(0),
                    username_fragment: None,
                }),
                original: None,
            }),
        ),
        (
            "relay_opaque_raw",
            frame(NodeMessage::Relay {
                to: 4,
                from: RemotePeer {
                    session: 9,
                    dialect: DialectKind::Raw,
                    mode: JoinMode::Both,
                },
                event: Event::Opaque(Opaque {
                    room: "room1".into(),
                    payload: r#"{ "app":"chat" }"#.into(),
                }),
                original: Some(r#"{ "app":"chat" }"#.into()),
            }),
        ),
        (
            "deliver_start",
            frame(NodeMessage::Deliver {
                to: 12,
                event: Event::Start(RoomNotice {
                    room: "room1".into(),
                }),
            }),
        ),
        (
            "deliver_peer_left",
            frame(NodeMessage::Deliver {
                to: 12,
                event: Event::PeerLeft(RoomNotice {
                    room: "room1".into(),
                }),
            }),
        ),
        (
            "media_offer",
            frame(NodeMessage::Media {
                from: ant(7),
                app: "LiveApp".into(),
                room: "conf1".into(),
                event: Event::Description(Description {
                    room: "cam1".into(),
                    kind: SdpKind::Offer,
                    sdp: "v=0\r\n".into(),
                }),
            }),
        ),
        ("media_closed", frame(NodeMessage::MediaClosed { session: 7 })),
        (
            "deliver_error",
            frame(NodeMessage::Deliver {
                to: 12,
                event: Event::error(ErrorCode::RoomFull, Some("room1"), "room `room1` is full"),
            }),
        ),
    ]
}

#[test]
fn node_frames_match_their_golden_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cluster");
    let bless = std::env::var_os("GOLDEN_BLESS").is_some();
    for (name, frame) in cases() {
        let path = dir.join(format!("{name}.json"));
        let json = frame.to_json();
        if bless {
            std::fs::write(&path, format!("{json}\n")).unwrap();
        }
        let stored = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (bless with GOLDEN_BLESS=1)", path.display()));
        let stored = stored.strip_suffix('\n').unwrap_or(&stored);
        assert_eq!(json, stored, "{name}: serialized frame");
        assert_eq!(
            NodeFrame::from_json(stored).unwrap(),
            frame,
            "{name}: parsed frame"
        );
    }
}

#[test]
fn frames_of_another_version_or_shape_are_refused() {
    let mut other = cases().remove(0).1;
    other.v = NODE_PROTOCOL_VERSION + 1;
    let error = NodeFrame::from_json(&other.to_json()).unwrap_err();
    assert!(error.contains("version"), "{error}");
    assert!(NodeFrame::from_json(r#"{"v":1,"node":"x","msg":{"type":"nope"}}"#).is_err());
    assert!(
        NodeFrame::from_json(
            r#"{"v":1,"node":"x","msg":{"type":"left","room":"r","session":1},"extra":1}"#
        )
        .is_err()
    );
}
