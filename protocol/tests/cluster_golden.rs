//! Golden files of the frames cluster nodes exchange through Redis (`tests/golden/cluster/`):
//! each `<case>.frame` is one frame alone in a bundle exactly as a node publishes it (the
//! bundle's header, then the frame's length, number and body: the sender's text or a JSON
//! message; `xxd` shows it), and `bundle.frame` several frames for one node in one bundle. The
//! test builds every frame in code, compares its bytes with the file, and parses the file back
//! into the same frame. `v3/` keeps the frames of node protocol 3 (one frame per message), `v4/`
//! and `v5/` those of the protocols before this one (v5: numbers across all receivers, no
//! acknowledgements), which this version refuses.
//! `GOLDEN_BLESS=1 cargo test -p switchboard-protocol --test cluster_golden` rewrites the
//! files; review the diff, since every change here is a change of the wire format between
//! nodes (bump `NODE_PROTOCOL_VERSION` when old nodes cannot read it).
//!
//! A forward carries only the sender's text: the receiver decodes it again
//! ([`rebuild_event`]), and the last test holds that to the event the sender decoded, for
//! every dialect.

use std::path::PathBuf;

use bytes::BytesMut;
use similar_asserts::assert_eq;
use switchboard_protocol::Dialect;
use switchboard_protocol::cluster::{
    BundleReader, BundleWriter, Forwarding, FrameBody, FrameError, FrameRef, NODE_PROTOCOL_VERSION,
    NodeFrame, NodeMessage, Part, PartsWriter, RemotePeer, SignalKind, decode_bundle, forward_body,
    forward_head, prepare_forward, rebuild_event,
};
use switchboard_protocol::dialects::TextFrames;
use switchboard_protocol::dialects::{antmedia, engineio, peerjs, raw};
use switchboard_protocol::{
    Candidate, Description, DialectKind, ErrorCode, Event, JoinMode, RoomNotice, SdpKind,
};

fn frame(msg: NodeMessage) -> NodeFrame {
    NodeFrame {
        v: NODE_PROTOCOL_VERSION,
        node: "node-a@1763740000000".to_owned(),
        seq: Some(7),
        msg,
    }
}

/// An acknowledgement or a reset: control messages carry no frame number.
fn unnumbered(msg: NodeMessage) -> NodeFrame {
    NodeFrame {
        seq: None,
        ..frame(msg)
    }
}

/// An Ant SDK offer, and what a peer of the Ant dialect gets for it (`idMapping` added).
const ANT_OFFER: &str =
    r#"{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"v=0\r\n"}"#;
const ANT_OFFER_RENDERED: &str = r#"{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"v=0\r\n","idMapping":{}}"#;
/// The `msg` argument of a SimpleP2P page's candidate.
const SIO_CANDIDATE_LITERAL: &str = r#""{\"candidate\":{\"candidate\":\"candidate:1 1 udp 1 127.0.0.1 9 typ host\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}}""#;

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
            "forward_ant_offer",
            frame(NodeMessage::Forward {
                to: 12,
                dialect: DialectKind::Antmedia,
                mode: JoinMode::Both,
                how: Forwarding::Frame(SignalKind::Description),
                room: "room1".into(),
                original: ANT_OFFER_RENDERED.into(),
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
            "forward_opaque_raw",
            frame(NodeMessage::Forward {
                to: 4,
                dialect: DialectKind::Raw,
                mode: JoinMode::Both,
                how: Forwarding::Frame(SignalKind::Opaque),
                room: "room1".into(),
                original: r#"{ "app":"chat" }"#.into(),
            }),
        ),
        (
            "forward_sio_candidate",
            frame(NodeMessage::Forward {
                to: 5,
                dialect: DialectKind::Socketio,
                mode: JoinMode::Both,
                how: Forwarding::Literal(SignalKind::Candidate),
                room: "room1".into(),
                original: SIO_CANDIDATE_LITERAL.into(),
            }),
        ),
        (
            "forward_decode",
            frame(NodeMessage::Forward {
                to: 6,
                dialect: DialectKind::Antmedia,
                mode: JoinMode::Both,
                how: Forwarding::Decode,
                room: "room1".into(),
                original: ANT_OFFER.into(),
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
                from: RemotePeer {
                    session: 7,
                    dialect: DialectKind::Antmedia,
                    mode: JoinMode::Conference,
                },
                app: "LiveApp".into(),
                room: "conf1".into(),
                event: Event::Description(Description {
                    room: "cam1".into(),
                    kind: SdpKind::Offer,
                    sdp: "v=0\r\n".into(),
                }),
            }),
        ),
        (
            "media_closed",
            frame(NodeMessage::MediaClosed { session: 7 }),
        ),
        (
            "ack",
            unnumbered(NodeMessage::Ack {
                got: 41,
                resend: false,
            }),
        ),
        (
            "ack_resend",
            unnumbered(NodeMessage::Ack {
                got: 41,
                resend: true,
            }),
        ),
        ("reset", unnumbered(NodeMessage::Reset { next: 97 })),
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
        let path = dir.join(format!("{name}.frame"));
        let bytes = frame.to_bytes();
        if bless {
            std::fs::write(&path, &bytes).unwrap();
        }
        let stored = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (bless with GOLDEN_BLESS=1)", path.display()));
        assert_eq!(
            bytes.escape_ascii().to_string(),
            stored.escape_ascii().to_string(),
            "{name}: published frame"
        );
        assert_eq!(
            NodeFrame::from_bytes(&stored).unwrap(),
            frame,
            "{name}: parsed frame"
        );
    }
}

const NODE: &str = "node-a@1763740000000";

/// The bundle header, then a frame's length and number: what precedes a frame's body.
const HEAD: usize = 1 + 1 + NODE.len() + 4 + 8;

#[test]
fn a_forward_carries_the_senders_text_once_and_nothing_else() {
    let original = r#"{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"v=0\r\na=x\r\n"}"#;
    let bytes = frame(NodeMessage::Forward {
        to: 12,
        dialect: DialectKind::Antmedia,
        mode: JoinMode::Both,
        how: Forwarding::Decode,
        room: "room1".into(),
        original: original.into(),
    })
    .to_bytes();
    let header = HEAD + 1 + 8 + 1 + 1 + 1 + 1 + 2 + "room1".len();
    assert_eq!(bytes.len(), header + original.len(), "header and text only");
    assert!(
        bytes.ends_with(original.as_bytes()),
        "the text as it came, unescaped"
    );
}

/// Frames for one node, in the order pushed, each with its own number: the forwards of two
/// dialects, a membership message and a notice.
fn bundle_cases() -> Vec<NodeFrame> {
    let all = cases();
    let pick = |name: &str| {
        let (_, frame) = all.iter().find(|(n, _)| *n == name).expect("a case");
        frame.clone()
    };
    let mut frames = vec![
        pick("joined"),
        pick("forward_ant_offer"),
        pick("relay_candidate"),
        pick("forward_opaque_raw"),
        pick("deliver_start"),
    ];
    for (seq, frame) in frames.iter_mut().enumerate() {
        frame.seq = Some(40 + seq as u64);
    }
    frames
}

fn push(writer: &mut BundleWriter<'_>, frame: &NodeFrame) -> Option<bytes::Bytes> {
    match frame.msg.as_forward() {
        Some(forward) => writer.push(frame.seq, FrameRef::Forward(&forward)),
        None => writer.push(frame.seq, FrameRef::Message(&frame.msg)),
    }
}

#[test]
fn a_bundle_carries_the_header_once_and_every_frame_in_order() {
    let frames = bundle_cases();
    let mut buf = BytesMut::new();
    let mut writer = BundleWriter::new(&mut buf, NODE, usize::MAX);
    for frame in &frames {
        assert!(push(&mut writer, frame).is_none(), "no limit: one bundle");
    }
    let bundle = writer.finish().unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cluster/bundle.frame");
    if std::env::var_os("GOLDEN_BLESS").is_some() {
        std::fs::write(&path, &bundle).unwrap();
    }
    let stored = std::fs::read(&path).unwrap();
    assert_eq!(
        bundle.escape_ascii().to_string(),
        stored.escape_ascii().to_string(),
        "published bundle"
    );
    assert_eq!(decode_bundle(&stored).unwrap(), frames);
    // The header once: the bundle is its header plus each frame alone minus its header.
    let alone: usize = frames
        .iter()
        .map(|f| f.to_bytes().len() - (2 + NODE.len()))
        .sum();
    assert_eq!(stored.len(), 2 + NODE.len() + alone);
    // Read in place: a forward's room and text are slices of the bundle.
    let reader = BundleReader::new(&stored).unwrap();
    assert_eq!(reader.node(), NODE);
    let read: Vec<_> = reader.map(Result::unwrap).collect();
    let FrameBody::Forward { original, .. } = &read[1].1 else {
        panic!("the second frame is a forward");
    };
    let at = original.as_ptr() as usize - stored.as_ptr() as usize;
    assert_eq!(&stored[at..at + original.len()], *original);
    assert_eq!(
        read.iter().map(|(seq, _)| seq.unwrap()).collect::<Vec<_>>(),
        [40, 41, 42, 43, 44]
    );
}

/// What a sender's task renders ahead (`forward_body`) and the publisher copies into a bundle
/// is the same bundle, byte for byte, as a forward written straight into it.
#[test]
fn a_forward_rendered_ahead_makes_the_golden_bundle() {
    let frames = bundle_cases();
    let mut buf = BytesMut::new();
    let mut writer = BundleWriter::new(&mut buf, NODE, usize::MAX);
    let mut ahead = 0;
    for frame in &frames {
        let Some(forward) = frame.msg.as_forward() else {
            assert!(push(&mut writer, frame).is_none());
            continue;
        };
        let body = forward_body(&forward);
        ahead += 1;
        assert!(writer.push(frame.seq, FrameRef::Body(&body)).is_none());
    }
    assert!(ahead > 0, "the cases hold forwards");
    let bundle = writer.finish().unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cluster/bundle.frame");
    let stored = std::fs::read(&path).unwrap();
    assert_eq!(
        bundle.escape_ascii().to_string(),
        stored.escape_ascii().to_string()
    );
}

/// The bodies rendered ahead of each forward of the golden cases (`None` for other frames).
fn bodies(frames: &[NodeFrame]) -> Vec<Option<Box<[u8]>>> {
    frames
        .iter()
        .map(|frame| frame.msg.as_forward().map(|forward| forward_body(&forward)))
        .collect()
}

/// A forward's body before its text (`forward_head`), and the text.
type Split<'a> = (Box<[u8]>, &'a [u8]);

/// Each forward of the golden cases as a sender keeps it apart from its text, with the text
/// (`None` for other frames).
fn heads(frames: &[NodeFrame]) -> Vec<Option<Split<'_>>> {
    frames
        .iter()
        .map(|frame| {
            frame
                .msg
                .as_forward()
                .map(|forward| (forward_head(&forward), forward.original.as_bytes()))
        })
        .collect()
}

/// Bundles written from their parts (each forward's body from its own buffer, not copied)
/// are the bundles `BundleWriter` makes, byte for byte, cut at the same frames: the golden
/// bundle whole, and every limit from one frame per bundle to all in one.
#[test]
fn a_bundle_written_from_its_parts_is_the_same_bundle() {
    let frames = bundle_cases();
    let bodies = bodies(&frames);
    let heads = heads(&frames);
    assert!(
        bodies.iter().any(Option::is_some),
        "the cases hold forwards"
    );
    let whole: usize = frames
        .iter()
        .map(|f| f.to_bytes().len() - (2 + NODE.len()))
        .sum::<usize>()
        + 2
        + NODE.len();
    for share_from in [0, 200, usize::MAX] {
        for limit in (1..=whole + 1).step_by(37).chain([whole, usize::MAX]) {
            let mut buf = BytesMut::new();
            let mut writer = BundleWriter::new(&mut buf, NODE, limit);
            let mut expected = Vec::new();
            for frame in &frames {
                expected.extend(push(&mut writer, frame));
            }
            expected.extend(writer.finish());
            let mut buf = BytesMut::new();
            let mut writer = PartsWriter::new(&mut buf, NODE, limit, share_from);
            let mut got = Vec::new();
            for (frame, body) in frames.iter().zip(&bodies) {
                got.extend(match body {
                    Some(body) => writer.push_body(frame.seq, body),
                    None => writer.push(frame.seq, FrameRef::Message(&frame.msg)),
                });
            }
            got.extend(writer.finish());
            let mut buf = BytesMut::new();
            let mut writer = PartsWriter::new(&mut buf, NODE, limit, share_from);
            let mut split = Vec::new();
            for (frame, head) in frames.iter().zip(&heads) {
                split.extend(match head {
                    Some((head, text)) => writer.push_split(frame.seq, head, text),
                    None => writer.push(frame.seq, FrameRef::Message(&frame.msg)),
                });
            }
            split.extend(writer.finish());
            let expected: Vec<Vec<u8>> = expected.iter().map(|b| b.to_vec()).collect();
            for (how, got) in [("whole bodies", got), ("heads and texts", split)] {
                let got: Vec<Vec<u8>> = got
                    .iter()
                    .inspect(|b| assert_eq!(b.len, b.to_vec().len()))
                    .map(|b| b.to_vec())
                    .collect();
                assert_eq!(
                    got, expected,
                    "{how}, share_from {share_from}, limit {limit}"
                );
            }
        }
    }
    let stored = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cluster/bundle.frame"),
    )
    .unwrap();
    let mut buf = BytesMut::new();
    let mut writer = PartsWriter::new(&mut buf, NODE, usize::MAX, 0);
    for (frame, body) in frames.iter().zip(&bodies) {
        match body {
            Some(body) => assert!(writer.push_body(frame.seq, body).is_none()),
            None => assert!(
                writer
                    .push(frame.seq, FrameRef::Message(&frame.msg))
                    .is_none()
            ),
        }
    }
    let parts = writer.finish().unwrap();
    assert!(
        parts.parts.iter().any(|p| matches!(p, Part::Body(_))),
        "bodies are written from their own buffers"
    );
    assert_eq!(parts.to_vec(), stored);
}

#[test]
fn a_bundle_is_cut_at_the_limit_and_a_larger_frame_goes_alone() {
    let frames = bundle_cases();
    let sizes: Vec<usize> = frames
        .iter()
        .map(|f| f.to_bytes().len() - (2 + NODE.len()))
        .collect();
    // Room for the header and the first two frames, not the third.
    let limit = 2 + NODE.len() + sizes[0] + sizes[1];
    let mut buf = BytesMut::new();
    let mut writer = BundleWriter::new(&mut buf, NODE, limit);
    let mut bundles = Vec::new();
    for frame in &frames {
        bundles.extend(push(&mut writer, frame));
    }
    bundles.extend(writer.finish());
    let got: Vec<Vec<NodeFrame>> = bundles.iter().map(|b| decode_bundle(b).unwrap()).collect();
    assert!(
        bundles
            .iter()
            .all(|b| b.len() <= limit || decode_bundle(b).unwrap().len() == 1)
    );
    assert_eq!(got.concat(), frames, "every frame once, in order");
    assert_eq!(got[0].len(), 2, "the first bundle is full at two frames");
    // A limit below any frame: each frame goes alone, none is lost.
    let mut writer = BundleWriter::new(&mut buf, NODE, 1);
    let mut alone = Vec::new();
    for frame in &frames {
        alone.extend(push(&mut writer, frame));
    }
    alone.extend(writer.finish());
    assert_eq!(alone.len(), frames.len());
    let got: Vec<NodeFrame> = alone
        .iter()
        .flat_map(|b| decode_bundle(b).unwrap())
        .collect();
    assert_eq!(got, frames);
    // Nothing pushed, nothing to publish.
    assert!(BundleWriter::new(&mut buf, NODE, limit).finish().is_none());
}

#[test]
fn frames_of_another_version_or_shape_are_refused() {
    // Node protocol 3's frames (one per message, no length prefix), as published then.
    // Node protocol 4's bundles (forwards the receiver always decoded again), as published then.
    // Node protocol 5's (frames numbered across all receivers, no acknowledgements).
    for (version, files) in [(3, 10), (4, 11), (5, 13)] {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/golden/cluster/v{version}"));
        let mut old = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert_eq!(
                BundleReader::new(&bytes).unwrap_err(),
                FrameError::Version { got: version }
            );
            assert!(
                decode_bundle(&bytes)
                    .unwrap_err()
                    .to_string()
                    .contains(&format!("version {version}"))
            );
            old += 1;
        }
        assert_eq!(old, files, "every v{version} golden frame");
    }
    let mut newer = cases().remove(0).1.to_bytes();
    newer[0] = u8::try_from(NODE_PROTOCOL_VERSION + 1).unwrap();
    let error = NodeFrame::from_bytes(&newer).unwrap_err();
    assert!(error.to_string().contains("version"), "{error}");
    let good = cases().remove(1).1.to_bytes();
    for cut in 0..good.len() {
        assert!(
            NodeFrame::from_bytes(&good[..cut]).is_err(),
            "a frame cut at {cut} bytes is refused"
        );
    }
    let mut unknown_body = good.clone();
    unknown_body[HEAD] = b'X';
    assert!(NodeFrame::from_bytes(&unknown_body).is_err());
    let mut extra_field = good[..HEAD].to_vec();
    let json = br#"J{"type":"left","room":"r","session":1,"extra":1}"#;
    let len = u32::try_from(8 + json.len()).unwrap();
    extra_field[HEAD - 12..HEAD - 8].copy_from_slice(&len.to_be_bytes());
    extra_field.extend_from_slice(json);
    assert!(matches!(
        NodeFrame::from_bytes(&extra_field),
        Err(FrameError::Json(_))
    ));
    let mut bad_dialect = cases().remove(2).1.to_bytes();
    bad_dialect[HEAD + 1 + 8] = b'?';
    assert!(matches!(
        NodeFrame::from_bytes(&bad_dialect),
        Err(FrameError::UnknownDialect(_))
    ));
    // A forward that says neither how its receiver renders it nor a known kind.
    for (at, byte) in [(HEAD + 1 + 8 + 2, b'?'), (HEAD + 1 + 8 + 3, b'?')] {
        let mut bad = cases().remove(2).1.to_bytes();
        bad[at] = byte;
        assert!(
            matches!(
                NodeFrame::from_bytes(&bad),
                Err(FrameError::UnknownForwarding(_))
            ),
            "byte {at}"
        );
    }
    // A length that runs past the end, and a header with no frame.
    let mut long = good.clone();
    long[HEAD - 12..HEAD - 8].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(NodeFrame::from_bytes(&long), Err(FrameError::Truncated));
    assert_eq!(
        BundleReader::new(&good[..2 + NODE.len()]).unwrap_err(),
        FrameError::Empty
    );
}

/// The sender decodes a frame (its event and the text a peer of its dialect gets); the
/// receiving node decodes that text again. Both must give the same event, or a forward would
/// render differently across nodes than on one.
#[test]
fn the_receiver_rebuilds_the_senders_event_from_the_forwarded_text() {
    fn sent<D: TextFrames>(state: &mut D::State, frame: &str) -> (Event, String) {
        let (decoded, original) = D::decode_relayable(state, frame).unwrap();
        let switchboard_protocol::Decoded::Event(event) = decoded else {
            panic!("{frame}: no event");
        };
        (event, original.expect("a relayable part").into_owned())
    }
    let sdp = r"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    let mut cases: Vec<(DialectKind, Event, String)> = Vec::new();
    let mut ant = antmedia::AntState::default();
    for frame in [
        format!(r#"{{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"{sdp}"}}"#),
        r#"{"command":"takeCandidate","streamId":"room1","label":0,"id":"0","candidate":"candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host"}"#.to_owned(),
    ] {
        let (e, o) = sent::<antmedia::AntMedia>(&mut ant, &frame);
        cases.push((DialectKind::Antmedia, e, o));
    }
    let mut rawst = raw::RawState {
        room: "room1".into(),
    };
    for frame in [
        format!(r#"{{"type":"answer","sdp":"{sdp}"}}"#),
        r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMLineIndex":0,"sdpMid":"0"}}"#.to_owned(),
        r#"{ "app":"chat" }"#.to_owned(),
        "not json at all".to_owned(),
    ] {
        let (e, o) = sent::<raw::Raw>(&mut rawst, &frame);
        cases.push((DialectKind::Raw, e, o));
    }
    let mut sio = engineio::EngineState {
        room: "room1".into(),
        connected: true,
        ..Default::default()
    };
    for frame in [
        format!(r#"42["msg","{{\"sdp\":{{\"type\":\"offer\",\"sdp\":\"{}\"}}}}"]"#, sdp.replace('\\', "\\\\")),
        r#"42["msg","{\"candidate\":{\"candidate\":\"candidate:1 1 udp 1 127.0.0.1 9 typ host\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0,\"usernameFragment\":null}}"]"#.to_owned(),
        r#"42["msg","{ \"hello\" : 1 }"]"#.to_owned(),
    ] {
        let (e, o) = sent::<engineio::SocketIoWs>(&mut sio, &frame);
        cases.push((DialectKind::Socketio, e, o));
    }
    let mut pj = peerjs::PeerjsState::new("alice", None);
    for frame in [
        format!(r#"{{"type":"OFFER","dst":"bob","payload":{{"sdp":{{"type":"offer","sdp":"{sdp}"}},"type":"media","connectionId":"mc_1"}}}}"#),
        r#"{"type":"CANDIDATE","dst":"bob","payload":{"candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0},"type":"media","connectionId":"mc_1"}}"#.to_owned(),
    ] {
        let (e, o) = sent::<peerjs::Peerjs>(&mut pj, &frame);
        cases.push((DialectKind::Peerjs, e, o));
    }
    for (dialect, event, original) in cases {
        let room = event.room().expect("a signal names its room").to_owned();
        let (how, text) = prepare_forward(dialect, &original, &event);
        let crossed = NodeFrame::from_bytes(
            &frame(NodeMessage::Forward {
                to: 1,
                dialect,
                mode: JoinMode::Both,
                how,
                room: room.clone(),
                original: text.into_owned(),
            })
            .to_bytes(),
        )
        .unwrap();
        let NodeMessage::Forward {
            dialect: got_dialect,
            how: got_how,
            original: text,
            ..
        } = crossed.msg
        else {
            panic!("a forward");
        };
        assert_eq!((got_dialect, got_how), (dialect, how));
        // What the receiving peer gets from the forward is what its session renders from the
        // sender's event and text on one node.
        let on_one_node = receiver_renders(dialect, &room, &original, &event);
        let across = match how {
            Forwarding::Frame(kind) => {
                assert_eq!(kind.name(), event.kind());
                Some(text.clone())
            }
            Forwarding::Literal(kind) => {
                assert_eq!(kind.name(), event.kind());
                assert_eq!(dialect, DialectKind::Socketio);
                let not_yet = engineio::EngineState::default();
                assert_eq!(
                    engineio::SocketIoWs::forward_literal(&not_yet, &text),
                    receiver_renders_sio(&not_yet, &original, &event),
                    "before the namespace connects"
                );
                engineio::SocketIoWs::forward_literal(&connected_sio(), &text)
            }
            Forwarding::Decode => {
                let rebuilt = rebuild_event(dialect, &room, &text).unwrap();
                assert_eq!(rebuilt, event, "{dialect}: {original}");
                receiver_renders(dialect, &room, &text, &rebuilt)
            }
        };
        assert_eq!(across, on_one_node, "{dialect} {how:?}: {original}");
        assert!(across.is_some(), "{dialect}: {original} renders");
        // Only signals whose rendering needs the receiving session are decoded again: none
        // of these.
        assert_ne!(how, Forwarding::Decode, "{dialect}: {original}");
        // And the sender's text still decodes as its event (a node that must decode).
        assert_eq!(rebuild_event(dialect, &room, &original).unwrap(), event);
    }
}

fn connected_sio() -> engineio::EngineState {
    engineio::EngineState {
        room: "room1".into(),
        connected: true,
        ..Default::default()
    }
}

fn receiver_renders_sio(
    state: &engineio::EngineState,
    original: &str,
    event: &Event,
) -> Option<String> {
    engineio::SocketIoWs::forward(state, original, event)
}

/// What a session of `dialect` renders on one node for a relay of `event` from a peer of its
/// own dialect (`Dialect::forward`).
fn receiver_renders(
    dialect: DialectKind,
    room: &str,
    original: &str,
    event: &Event,
) -> Option<String> {
    match dialect {
        DialectKind::Antmedia => {
            antmedia::AntMedia::forward(&antmedia::AntState::default(), original, event)
        }
        DialectKind::Raw => {
            raw::Raw::forward(&raw::RawState { room: room.into() }, original, event)
        }
        DialectKind::Socketio => receiver_renders_sio(&connected_sio(), original, event),
        DialectKind::Peerjs => {
            peerjs::Peerjs::forward(&peerjs::PeerjsState::new("bob", None), original, event)
        }
    }
}

/// The golden forward of an Ant offer is what the sender renders for an Ant receiver, and the
/// SimpleP2P candidate goes as its literal.
#[test]
fn the_golden_forwards_are_what_a_sender_prepares() {
    let mut ant = antmedia::AntState::default();
    let switchboard_protocol::Decoded::Event(offer) =
        antmedia::AntMedia::decode(&mut ant, ANT_OFFER).unwrap()
    else {
        panic!("an offer");
    };
    let (how, text) = prepare_forward(DialectKind::Antmedia, ANT_OFFER, &offer);
    assert_eq!(how, Forwarding::Frame(SignalKind::Description));
    assert_eq!(text, ANT_OFFER_RENDERED);
    let frame = format!(r#"42["msg",{SIO_CANDIDATE_LITERAL}]"#);
    let (decoded, original) =
        engineio::SocketIoWs::decode_relayable(&mut connected_sio(), &frame).unwrap();
    let switchboard_protocol::Decoded::Event(candidate) = decoded else {
        panic!("a candidate");
    };
    let original = original.unwrap();
    assert_eq!(original, SIO_CANDIDATE_LITERAL);
    let (how, text) = prepare_forward(DialectKind::Socketio, &original, &candidate);
    assert_eq!(how, Forwarding::Literal(SignalKind::Candidate));
    assert_eq!(text, SIO_CANDIDATE_LITERAL);
}
