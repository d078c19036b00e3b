//! Each dialect's claim that a relay passes the sender's frame on unchanged
//! ([`TextFrames::forward_is_frame`], [`TextFrames::forwards_frame`]) agrees with its
//! [`Dialect::forward`]: the gateway sends the frame itself only where `forward` would render
//! that very frame.

use std::borrow::Cow;

use super::antmedia::{AntMedia, AntState};
use super::engineio::{EngineState, SocketIoWs};
use super::raw::{Raw, RawState};
use super::{Decoded, TextFrames};

/// Decodes `frame` as a sender in `sender` would, and says whether a receiver in `receiver`
/// is sent the frame itself; when it is, `forward` must render exactly that frame.
fn shares_frame<D: TextFrames>(sender: &mut D::State, receiver: &D::State, frame: &str) -> bool {
    let (decoded, original) = D::decode_relayable(sender, frame).expect("decodes");
    let Decoded::Event(event) = decoded else {
        panic!("{frame}: not an event");
    };
    let original = original.expect("a relayed event has an original");
    let Cow::Borrowed(cut) = &original else {
        return false;
    };
    let start = cut.as_ptr().addr() - frame.as_ptr().addr();
    let shared =
        D::forward_is_frame(frame, start, start + cut.len()) && D::forwards_frame(receiver, &event);
    if shared {
        assert_eq!(
            D::forward(receiver, &original, &event).as_deref(),
            Some(frame),
            "{frame}"
        );
    }
    shared
}

const RAW_OFFER: &str = r#"{"type":"offer","sdp":"v=0\r\n"}"#;
const RAW_CANDIDATE: &str = r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 192.0.2.1 9 typ host","sdpMLineIndex":0,"sdpMid":"0"}}"#;

#[test]
fn raw_signals_and_unknown_frames_go_on_as_sent() {
    let raw = || RawState {
        room: "room1".into(),
    };
    let (mut state, receiver) = (raw(), raw());
    for frame in [RAW_OFFER, RAW_CANDIDATE, r#"{"hello":"world"}"#, "[1,2]"] {
        assert!(shares_frame::<Raw>(&mut state, &receiver, frame), "{frame}");
    }
}

#[test]
fn ant_candidates_go_on_as_sent_and_descriptions_gain_their_id_mapping() {
    let ant = || AntState {
        app: "LiveApp".into(),
    };
    let (mut state, receiver) = (ant(), ant());
    let candidate = r#"{"command":"takeCandidate","streamId":"s1","label":0,"id":"0","candidate":"candidate:1 1 udp 1 192.0.2.1 9 typ host"}"#;
    assert!(shares_frame::<AntMedia>(&mut state, &receiver, candidate));
    let offer = r#"{"command":"takeConfiguration","streamId":"s1","type":"offer","sdp":"v=0\r\n"}"#;
    assert!(!shares_frame::<AntMedia>(&mut state, &receiver, offer));
}

#[test]
fn a_socketio_msg_frame_goes_on_as_sent_to_a_connected_receiver_only() {
    let connected = || EngineState {
        room: "room1".into(),
        connected: true,
        ..EngineState::default()
    };
    let mut sender = connected();
    let literal = serde_json::to_string(RAW_OFFER).expect("a string serializes");
    let frame = format!(r#"42["msg",{literal}]"#);
    assert!(shares_frame::<SocketIoWs>(
        &mut sender,
        &connected(),
        &frame
    ));
    assert!(shares_frame::<SocketIoWs>(
        &mut sender,
        &connected(),
        r#"42["msg","hi"]"#
    ));
    let not_yet = EngineState::default();
    assert!(!shares_frame::<SocketIoWs>(&mut sender, &not_yet, &frame));
    // The literal is forwarded, in a frame of its own: this frame is not that frame.
    let with_ack = format!(r#"427["msg",{literal}]"#);
    assert!(!shares_frame::<SocketIoWs>(
        &mut sender,
        &connected(),
        &with_ack
    ));
}
