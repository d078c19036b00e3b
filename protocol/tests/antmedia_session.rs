//! The two-peer Ant Media session of `antmedia.md` 4.2, byte for byte: every client frame is the
//! SDK's exact output (SDPs shortened), every server frame what the gateway must send.

use similar_asserts::assert_eq;
use switchboard_protocol::dialects::antmedia::{AntMedia, AntState};
use switchboard_protocol::{
    Candidate, Decoded, Description, Dialect, ErrorCode, Event, Join, JoinMode, Leave, LeaveReason,
    SdpKind,
};

const ROOM: &str = "room1";

/// A's offer as the SDK sends it (audio, video and data; shortened from 6153 bytes).
const OFFER: &str = concat!(
    r#"{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"#,
    r#""v=0\r\no=- 3057583230842636777 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"#,
    r#"a=group:BUNDLE 0 1 2\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS a1639172\r\n"#,
    r#"m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\n"#,
    r#"a=ice-ufrag:dK+1\r\na=ice-pwd:Fq2bQ0pWn3Xk7yq5m9cJ1tZr\r\na=setup:actpass\r\na=mid:0\r\n"#,
    r#"a=sendrecv\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"#,
    r#"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\n"#,
    r#"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n"#,
    r#"a=sctp-port:5000\r\n"}"#,
);

/// B's answer (the SDK adds `stereo=1` to answers).
const ANSWER: &str = concat!(
    r#"{"command":"takeConfiguration","streamId":"room1","type":"answer","sdp":"#,
    r#""v=0\r\no=- 8371331268673064032 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"#,
    r#"a=group:BUNDLE 0 1 2\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"#,
    r#"a=setup:active\r\na=mid:0\r\na=fmtp:111 minptime=10;useinbandfec=1; stereo=1\r\n"}"#,
);

const JOIN: &str = r#"{"command":"join","streamId":"room1","multiPeer":false,"mode":"both"}"#;
const CANDIDATE_A: &str = r#"{"command":"takeCandidate","streamId":"room1","label":0,"id":"0","candidate":"candidate:835302670 1 udp 2122194687 192.0.2.2 56557 typ host generation 0 ufrag dK+1 network-id 1"}"#;
const CANDIDATE_B: &str = r#"{"command":"takeCandidate","streamId":"room1","label":0,"id":"0","candidate":"candidate:4002052549 1 udp 2122194687 192.0.2.2 40215 typ host generation 0 ufrag lhct network-id 1"}"#;

fn decode(frame: &str) -> Decoded<String> {
    AntMedia::decode(&mut AntState::default(), frame)
        .unwrap_or_else(|e| panic!("{frame} was refused: {e}"))
}

fn event(frame: &str) -> Event {
    match decode(frame) {
        Decoded::Event(e) => e,
        other => panic!("{frame} gave {other:?}"),
    }
}

fn encode(event: &Event) -> String {
    AntMedia::encode(&AntState::default(), event)
        .unwrap_or_else(|| panic!("{event:?} rendered nothing"))
}

/// What the gateway sends to the partner when relaying `frame` between Ant peers.
fn relay(frame: &str) -> String {
    let e = event(frame);
    AntMedia::forward(&AntState::default(), frame, &e)
        .unwrap_or_else(|| panic!("{e:?} is not relayed"))
}

#[test]
fn two_peer_session_is_byte_exact() {
    // A joins the empty room.
    assert_eq!(
        event(JOIN),
        Event::Join(Join {
            room: ROOM.into(),
            mode: JoinMode::Both,
            token: None
        })
    );
    assert_eq!(
        encode(&Event::notice(Event::Joined, ROOM)),
        r#"{"command":"notification","definition":"joined","streamId":"room1"}"#
    );

    // B joins: A (waiting) is told to offer, B is acknowledged.
    assert_eq!(
        event(JOIN),
        Event::Join(Join {
            room: ROOM.into(),
            mode: JoinMode::Both,
            token: None
        })
    );
    assert_eq!(
        encode(&Event::notice(Event::Start, ROOM)),
        r#"{"command":"start","streamId":"room1"}"#
    );

    // A's offer reaches B with "idMapping":{} appended and nothing else changed.
    let Event::Description(Description { room, kind, sdp }) = event(OFFER) else {
        panic!("the offer is not a description");
    };
    assert_eq!((room.as_str(), kind), (ROOM, SdpKind::Offer));
    assert!(
        sdp.starts_with("v=0\r\no=- 3057583230842636777") && sdp.ends_with("a=sctp-port:5000\r\n")
    );
    let expected = format!(
        "{},\"idMapping\":{{}}}}",
        OFFER.strip_suffix('}').unwrap_or(OFFER)
    );
    assert_eq!(relay(OFFER), expected);

    // A's candidates reach B unchanged.
    assert_eq!(
        event(CANDIDATE_A),
        Event::Candidate(Candidate {
            room: ROOM.into(),
            candidate: "candidate:835302670 1 udp 2122194687 192.0.2.2 56557 typ host generation 0 ufrag dK+1 network-id 1".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            username_fragment: None,
        })
    );
    assert_eq!(relay(CANDIDATE_A), CANDIDATE_A);

    // B's answer and candidate reach A.
    assert!(matches!(
        event(ANSWER),
        Event::Description(Description {
            kind: SdpKind::Answer,
            ..
        })
    ));
    let expected = format!(
        "{},\"idMapping\":{{}}}}",
        ANSWER.strip_suffix('}').unwrap_or(ANSWER)
    );
    assert_eq!(relay(ANSWER), expected);
    assert_eq!(relay(CANDIDATE_B), CANDIDATE_B);

    // Keep-alive is answered directly.
    assert_eq!(
        decode(r#"{"command":"ping"}"#),
        Decoded::Reply(r#"{"command":"pong"}"#.into())
    );

    // A third peer is refused, with the stream named.
    assert_eq!(
        event(JOIN),
        Event::Join(Join {
            room: ROOM.into(),
            mode: JoinMode::Both,
            token: None
        })
    );
    assert_eq!(
        encode(&Event::error(
            ErrorCode::RoomFull,
            Some(ROOM),
            "room room1 already has two peers"
        )),
        r#"{"command":"error","definition":"NoSpaceForNewPeer","streamId":"room1"}"#
    );

    // A leaves: B gets stop, A gets leaved.
    assert_eq!(
        event(r#"{"command":"leave","streamId":"room1"}"#),
        Event::Leave(Leave {
            room: ROOM.into(),
            reason: LeaveReason::Leave
        })
    );
    assert_eq!(
        encode(&Event::notice(Event::PeerLeft, ROOM)),
        r#"{"command":"stop","streamId":"room1"}"#
    );
    assert_eq!(
        encode(&Event::notice(Event::Left, ROOM)),
        r#"{"command":"notification","definition":"leaved","streamId":"room1"}"#
    );
}

#[test]
fn ice_config_and_hang_up_by_stop() {
    assert_eq!(
        event(r#"{"command":"getIceServerConfig"}"#),
        Event::IceServersRequest
    );
    assert_eq!(
        event(r#"{"command":"stop","streamId":"room1"}"#),
        Event::Leave(Leave {
            room: ROOM.into(),
            reason: LeaveReason::Stop
        })
    );
}

#[test]
fn peer_message_is_relayed_unchanged() {
    let frame = r#"{"command":"peerMessageCommand","streamId":"r-data","definition":"myDefinition","data":"myData"}"#;
    assert_eq!(relay(frame), frame);
}

/// A relayed `takeConfiguration` is the sender's frame with `"idMapping":{}` spliced in when the
/// frame has the SDK's shape; any other frame is re-encoded. Either way the partner gets exactly
/// what re-encoding gives: byte for byte for the SDK's shape, the same JSON otherwise.
#[test]
fn relayed_configuration_equals_its_re_encoding_whatever_the_senders_shape() {
    let sdp = r#"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=fingerprint:sha-256 AB:CD\r\n"#;
    let sdk_shaped = format!(
        r#"{{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"{sdp}"}}"#
    );
    assert_eq!(relay(&sdk_shaped), encode(&event(&sdk_shaped)));

    let others = [
        // A quote inside the SDP: the literal cannot be told apart from a following key by a
        // byte search, so it is re-encoded.
        r#"{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"v=0\r\ns=\"x\"\r\n"}"#.to_owned(),
        // An extra key after the SDP must not be relayed.
        format!(
            r#"{{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"{sdp}","secret":"t"}}"#
        ),
        // Another key order, whitespace, and escapes the encoder would not write.
        format!(
            r#"{{"type":"answer","command":"takeConfiguration","sdp":"{sdp}","streamId":"room1"}}"#
        ),
        format!(
            r#"{{ "command": "takeConfiguration", "streamId": "room1", "type": "offer", "sdp": "{sdp}" }}"#
        ),
        format!(
            r#"{{"command":"takeConfiguration","streamId":"r\u006fom1","type":"offer","sdp":"{sdp}"}}"#
        ),
        // The SDK's shape with an SDP ending in an escaped backslash.
        r#"{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"v=0\\"}"#
            .to_owned(),
    ];
    for frame in &others {
        let relayed: serde_json::Value = serde_json::from_str(&relay(frame)).unwrap();
        let encoded: serde_json::Value = serde_json::from_str(&encode(&event(frame))).unwrap();
        assert_eq!(relayed, encoded, "{frame}");
        assert!(!relayed.to_string().contains("secret"), "{frame}");
    }
}
