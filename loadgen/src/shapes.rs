//! The JSON objects each real client sends, with their keys in the order the client writes them
//! (JavaScript's `JSON.stringify` keeps insertion order; `serde_json::json!` sorts keys, which no
//! client does, and which a server may handle differently, e.g. Switchboard splices the Ant
//! SDK's `takeConfiguration` when relaying it).
//!
//! - Ant Media: `@antmedia/webrtc_adaptor` (`docs/protocol/antmedia.md` 2).
//! - raw: simple-peer's `signal` data: `{type, sdp}` and `{type:"candidate", candidate:{candidate,
//!   sdpMLineIndex, sdpMid}}`.
//! - socket.io: the SimpleP2P page sends `{sdp: pc.localDescription}` and `{candidate:
//!   event.candidate}`, whose `toJSON` give `{type, sdp}` and `{candidate, sdpMid,
//!   sdpMLineIndex, usernameFragment}`.

use serde::Serialize;

/// Ant `join`.
#[derive(Debug, Serialize)]
pub struct AntJoin<'a> {
    pub command: &'static str,
    #[serde(rename = "streamId")]
    pub stream_id: &'a str,
    #[serde(rename = "multiPeer")]
    pub multi_peer: bool,
    pub mode: &'static str,
}

/// Ant `takeConfiguration`.
#[derive(Debug, Serialize)]
pub struct AntConfiguration<'a> {
    pub command: &'static str,
    #[serde(rename = "streamId")]
    pub stream_id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub sdp: &'a str,
}

/// Ant `takeCandidate`.
#[derive(Debug, Serialize)]
pub struct AntCandidate<'a> {
    pub command: &'static str,
    #[serde(rename = "streamId")]
    pub stream_id: &'a str,
    pub label: u32,
    pub id: &'a str,
    pub candidate: &'a str,
}

/// `RTCSessionDescription.toJSON()`, and simple-peer's offer/answer signal.
#[derive(Debug, Serialize)]
pub struct Description<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub sdp: &'a str,
}

/// simple-peer's candidate signal.
#[derive(Debug, Serialize)]
pub struct RawCandidate<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub candidate: SimplePeerCandidate<'a>,
}

/// The candidate inside [`RawCandidate`].
#[derive(Debug, Serialize)]
pub struct SimplePeerCandidate<'a> {
    pub candidate: &'a str,
    #[serde(rename = "sdpMLineIndex")]
    pub sdp_mline_index: u32,
    #[serde(rename = "sdpMid")]
    pub sdp_mid: &'a str,
}

/// The SimpleP2P page's `{sdp: pc.localDescription}`.
#[derive(Debug, Serialize)]
pub struct SioDescription<'a> {
    pub sdp: Description<'a>,
}

/// The SimpleP2P page's `{candidate: event.candidate}`.
#[derive(Debug, Serialize)]
pub struct SioCandidate<'a> {
    pub candidate: IceCandidate<'a>,
}

/// `RTCIceCandidate.toJSON()`.
#[derive(Debug, Serialize)]
pub struct IceCandidate<'a> {
    pub candidate: &'a str,
    #[serde(rename = "sdpMid")]
    pub sdp_mid: &'a str,
    #[serde(rename = "sdpMLineIndex")]
    pub sdp_mline_index: u32,
    #[serde(rename = "usernameFragment")]
    pub username_fragment: &'a str,
}

/// Compact JSON text of `value` (these shapes always serialize).
pub fn text(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A `peerjs` client's `OFFER`/`ANSWER`/`CANDIDATE`: `type`, `payload`, `dst` in its order.
#[derive(Debug, Serialize)]
pub struct PeerjsMessage<'a, P: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub payload: P,
    pub dst: &'a str,
}

/// `JSON.stringify(RTCSessionDescription)` as Chromium writes it: `sdp` first.
#[derive(Debug, Serialize)]
pub struct PeerjsSdp<'a> {
    pub sdp: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
}

/// A media connection's `OFFER`/`ANSWER` payload.
#[derive(Debug, Serialize)]
pub struct PeerjsSdpPayload<'a> {
    pub sdp: PeerjsSdp<'a>,
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(rename = "connectionId")]
    pub connection_id: &'a str,
}

/// A media connection's `CANDIDATE` payload.
#[derive(Debug, Serialize)]
pub struct PeerjsCandidatePayload<'a> {
    pub candidate: IceCandidate<'a>,
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(rename = "connectionId")]
    pub connection_id: &'a str,
}
