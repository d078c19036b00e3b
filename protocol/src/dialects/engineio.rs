//! The socket.io dialect read straight off engine.io v4 WebSocket frames: what a socket.io 3 or 4
//! client sends when it opens a WebSocket at once (`transports: ["websocket"]`, and Switchboard's
//! own `/socket.io/socket.io.js`). The `msg` relay is the one of [`super::socketio`], and a peer
//! here is a socket.io peer like any other (same [`DialectKind`], same `original`: the `msg`
//! argument's literal), so the two servers' peers relay to each other verbatim.
//!
//! A frame is an engine.io packet: a type digit, then its payload. Type `4` (message) carries a
//! socket.io packet: a type digit, an optional namespace (`/name,`), an optional ack id, and JSON
//! data. Only namespace `/` exists.
//!
//! Both engine.io versions are read here, told apart by [`EngineState::version`]: engine.io 4
//! (socket.io-client 3 and 4, socket.io protocol 5) and engine.io 3 (socket.io-client 2,
//! socket.io protocol 4). In v3 the client pings and the server answers; the server connects
//! namespace `/` itself, right after the open packet (the client sends no `40` for it); and a
//! refused connect is an error packet whose data is a JSON string (`44"..."`, the client's
//! `error` event), not an object. Long-polling framing is in [`polling`] (v4) and [`payload3`]
//! (v3); see `docs/dialect-spec.md`.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::Value;

use super::common::truncate;
use super::socketio::{
    self, EventData, EventDataError, NOTICE_EVENT, SioMessage, forwards_verbatim, not_a_string,
    read_event_data,
};
use super::{Decoded, Dialect, DialectKind, Keepalive, TextFrames};
use crate::{DecodeError, Event, Join, JoinMode};

pub mod payload3;
pub mod polling;

/// How often the server pings, as socket.io servers do by default.
pub const PING_INTERVAL: Duration = Duration::from_secs(25);
/// How long a client has to answer a ping.
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// socket.io `msg` relay over engine.io v4 WebSocket frames.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketIoWs;

/// The engine.io protocol version of a session (the handshake's `EIO` query).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EngineVersion {
    /// engine.io 3: socket.io-client 2 (socket.io protocol 4).
    V3,
    /// engine.io 4: socket.io-client 3 and 4 (socket.io protocol 5).
    #[default]
    V4,
}

/// Per-connection state: what the handshake said, and whether the namespace is connected.
#[derive(Debug, Default)]
pub struct EngineState {
    /// The engine.io version the client speaks.
    pub version: EngineVersion,
    /// The room, from the handshake query or the listener's default.
    pub room: String,
    /// The join token from the handshake query.
    pub token: Option<String>,
    /// The engine.io session id, sent in the open packet.
    pub engine_sid: String,
    /// The socket id, sent in the connect acknowledgement.
    pub socket_sid: String,
    /// The largest frame the server accepts, announced as `maxPayload`.
    pub max_payload: usize,
    /// Whether the connect to `/` was accepted: until then only a connect error can be sent.
    pub connected: bool,
    /// Whether the session opened on long-polling, so its open packet offers the upgrade to a
    /// WebSocket.
    pub polling: bool,
}

impl Dialect for SocketIoWs {
    type Wire = String;
    type Input = str;
    type State = EngineState;
    const KIND: DialectKind = DialectKind::Socketio;

    fn decode(state: &mut EngineState, frame: &str) -> Result<Decoded<String>, DecodeError> {
        decode_frame(state, frame).map(|(decoded, _)| decoded)
    }

    /// Events go out as `switchboard` notices and `msg` signals once the namespace is connected;
    /// before that, an error (a refused join) is the connect error the client's `connect_error`
    /// handler receives, and anything else has no one to go to.
    fn encode(state: &EngineState, event: &Event) -> Option<String> {
        if !state.connected {
            return match event {
                Event::Error(e) => Some(connect_error_for(
                    state.version,
                    &format!("{}: {}", e.code.as_str(), e.message),
                )),
                _ => None,
            };
        }
        match event {
            // Every error a socket.io peer gets names its room (the peer has only one).
            Event::Error(e) if e.room.is_none() => {
                let mut e = e.clone();
                e.room = Some(state.room.clone());
                socketio::encode(&Event::Error(e)).map(|msg| event_frame(&msg))
            }
            _ => socketio::encode(event).map(|msg| event_frame(&msg)),
        }
    }

    /// Signals from socket.io peers keep the sender's `msg` literal, byte for byte.
    fn forward(state: &EngineState, original: &str, event: &Event) -> Option<String> {
        if Self::forwards_frame(state, event) {
            Some(msg_frame(original))
        } else {
            Self::encode(state, event)
        }
    }
}

impl TextFrames for SocketIoWs {
    /// A `msg` frame carrying nothing but the literal: `42["msg",<literal>]`.
    fn forward_is_frame(frame: &str, start: usize, end: usize) -> bool {
        frame.get(..start) == Some(MSG_FRAME_HEAD) && frame.get(end..) == Some(MSG_FRAME_TAIL)
    }

    /// Signals, once the receiver's namespace is connected.
    fn forwards_frame(state: &EngineState, event: &Event) -> bool {
        state.connected && forwards_verbatim(event)
    }

    /// As [`Self::forward`] of a signal: the literal in a `msg` frame, once connected (before,
    /// a signal renders as nothing).
    fn forward_literal(state: &EngineState, literal: &str) -> Option<String> {
        state.connected.then(|| msg_frame(literal))
    }

    fn greeting(state: &EngineState) -> Option<String> {
        let upgrades = if state.polling {
            r#"["websocket"]"#
        } else {
            "[]"
        };
        // engine.io 3 has no `maxPayload` (its clients neither read nor split by it).
        let max_payload = match state.version {
            EngineVersion::V3 => String::new(),
            EngineVersion::V4 => format!(r#","maxPayload":{}"#, state.max_payload),
        };
        Some(format!(
            r#"0{{"sid":"{}","upgrades":{upgrades},"pingInterval":{},"pingTimeout":{}{max_payload}}}"#,
            state.engine_sid,
            PING_INTERVAL.as_millis(),
            PING_TIMEOUT.as_millis(),
        ))
    }

    fn rate_limited(frame: &str) -> bool {
        // Engine pings, pongs, closes and noops, and namespace connects and disconnects.
        !matches!(
            frame.as_bytes(),
            [b'1' | b'2' | b'3' | b'6', ..] | [b'4', b'0' | b'1', ..]
        )
    }

    /// engine.io 4: the server pings. engine.io 3: the client pings every `pingInterval` and
    /// the server answers ([`Dialect::decode`] replies `3`); a client silent for `pingInterval`
    /// + `pingTimeout` is gone, as the engine.io 3 server decides.
    fn keepalive(state: &EngineState) -> Option<Keepalive> {
        let ping = match state.version {
            EngineVersion::V3 => None,
            EngineVersion::V4 => Some("2"),
        };
        Some(Keepalive {
            interval: PING_INTERVAL,
            timeout: PING_TIMEOUT,
            ping,
        })
    }

    fn decode_relayable<'a>(
        state: &mut EngineState,
        frame: &'a str,
    ) -> Result<(Decoded<String>, Option<Cow<'a, str>>), DecodeError> {
        decode_frame(state, frame)
    }

    /// v4 acknowledges the client's connect with the socket id; v3 connects `/` with a bare
    /// `40`, which socket.io-client 2 takes as its `connect`.
    fn joined(state: &mut EngineState) -> Option<String> {
        state.connected = true;
        match state.version {
            EngineVersion::V3 => Some("40".to_owned()),
            EngineVersion::V4 => Some(format!(r#"40{{"sid":"{}"}}"#, state.socket_sid)),
        }
    }

    fn closing(state: &EngineState) -> Option<String> {
        state.connected.then(|| "41".to_owned())
    }
}

/// A `msg` event frame carrying `literal` (a JSON string literal) as its argument.
pub fn msg_frame(literal: &str) -> String {
    let mut frame = String::with_capacity(MSG_FRAME_HEAD.len() + literal.len() + 1);
    frame.push_str(MSG_FRAME_HEAD);
    frame.push_str(literal);
    frame.push_str(MSG_FRAME_TAIL);
    frame
}

/// What comes before and after the literal in a [`msg_frame`].
const MSG_FRAME_HEAD: &str = r#"42["msg","#;
const MSG_FRAME_TAIL: &str = "]";

/// An event frame for `msg` (its event name and argument).
fn event_frame(msg: &SioMessage) -> String {
    // A `Value` and a plain name always serialize.
    let name = serde_json::to_string(&msg.event).unwrap_or_default();
    let data = serde_json::to_string(&msg.data).unwrap_or_default();
    format!("42[{name},{data}]")
}

/// A connect error on `/` with `message`, which the client's `connect_error` handler receives
/// as the error's message.
pub fn connect_error(message: &str) -> String {
    connect_error_on(EngineVersion::V4, "", message)
}

/// A connect error on `/` for a client of `version`: socket.io-client 2 (v3) gets an error
/// packet whose data is the message as a JSON string, which it emits as its `error` event.
pub fn connect_error_for(version: EngineVersion, message: &str) -> String {
    connect_error_on(version, "", message)
}

fn connect_error_on(version: EngineVersion, namespace: &str, message: &str) -> String {
    let data = match version {
        EngineVersion::V3 => serde_json::Value::from(message),
        EngineVersion::V4 => serde_json::json!({ "message": message }),
    };
    format!("44{namespace}{data}")
}

/// A decoded frame, and the `original` a relay to socket.io peers forwards.
type Relayable<'a> = (Decoded<String>, Option<Cow<'a, str>>);

fn decode_frame<'a>(state: &mut EngineState, frame: &'a str) -> Result<Relayable<'a>, DecodeError> {
    let nothing = |decoded| Ok((decoded, None));
    let Some(kind) = frame.chars().next() else {
        return Err(invalid("engine.io packet type", frame));
    };
    let payload = &frame[kind.len_utf8()..];
    match kind {
        '4' => decode_packet(state, payload),
        // A client's ping (engine.io 3 clients, and the `2probe` of an upgrade) is answered as
        // engine.io answers it; pongs need nothing (any frame counts as the peer being alive).
        '2' => nothing(Decoded::Reply(format!("3{payload}"))),
        '3' | '6' => nothing(Decoded::Ignore),
        '1' => nothing(Decoded::Close),
        _ => Err(invalid("engine.io packet type", frame)),
    }
}

/// The `token` string of a connect packet's `auth` object, when it has a non-empty one. Any
/// other payload (none, not JSON, no `token`) gives `None`: the query's token applies then.
pub fn auth_token(payload: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Auth {
        token: Option<String>,
    }
    if payload.is_empty() {
        return None;
    }
    serde_json::from_str::<Auth>(payload)
        .ok()?
        .token
        .filter(|t| !t.is_empty())
}

fn decode_packet<'a>(
    state: &mut EngineState,
    packet: &'a str,
) -> Result<Relayable<'a>, DecodeError> {
    let nothing = |decoded| Ok((decoded, None));
    let Some(kind) = packet.chars().next() else {
        return Err(invalid("socket.io packet type", packet));
    };
    let (namespace, rest) = split_namespace(&packet[kind.len_utf8()..]);
    if namespace != "/" {
        return match kind {
            // socket.io servers answer a connect to a namespace they do not have this way.
            '0' => nothing(Decoded::Reply(connect_error_on(
                state.version,
                &format!("{namespace},"),
                "Invalid namespace",
            ))),
            _ => nothing(Decoded::Ignore),
        };
    }
    match kind {
        '0' if state.connected => nothing(Decoded::Ignore),
        // The room comes from the handshake query; the token from the connect's `auth`
        // payload (socket.io v4 `io(url, {auth: {token}})`, kept out of URLs and access logs)
        // or else the query (engine.io 3 clients have no `auth`: theirs is always the query's).
        '0' => nothing(Decoded::Event(Event::Join(Join {
            room: state.room.clone(),
            mode: JoinMode::Both,
            token: auth_token(rest).or_else(|| state.token.clone()),
        }))),
        '1' => nothing(Decoded::Close),
        '2' if state.connected => decode_event(state, skip_ack_id(rest)),
        // Acknowledgements are never asked for; events before the connect have no namespace.
        '2' | '3' => nothing(Decoded::Ignore),
        // Binary events and acks: signaling is text.
        '5' | '6' => Err(not_a_string()),
        _ => Err(invalid("socket.io packet type", packet)),
    }
}

/// `(namespace, rest)`: a namespace is written `/name,` right after the packet type.
fn split_namespace(packet: &str) -> (&str, &str) {
    if !packet.starts_with('/') {
        return ("/", packet);
    }
    match packet.split_once(',') {
        Some((namespace, rest)) => (namespace, rest),
        None => (packet, ""),
    }
}

fn skip_ack_id(data: &str) -> &str {
    data.trim_start_matches(|c: char| c.is_ascii_digit())
}

fn decode_event<'a>(state: &EngineState, data: &'a str) -> Result<Relayable<'a>, DecodeError> {
    let read = read_event_data(&state.room, data).map_err(EventDataError::into_decode_error)?;
    match read {
        EventData::Msg(decoded, literal) => Ok((framed(decoded?), Some(literal))),
        EventData::Other(name, argument) if name == NOTICE_EVENT => {
            let data = match argument {
                Some(raw) => serde_json::from_str(raw.get())?,
                None => Value::Null,
            };
            let wire = SioMessage {
                event: NOTICE_EVENT.to_owned(),
                data,
            };
            let decoded = socketio::decode::decode(&state.room, &wire)?;
            Ok((framed(decoded), None))
        }
        // Events the gateway has no handler for are dropped, as socket.io servers drop them.
        EventData::Other(..) => Ok((Decoded::Ignore, None)),
    }
}

/// A decoding of the socket.io dialect, with any direct reply framed.
fn framed(decoded: Decoded<SioMessage>) -> Decoded<String> {
    match decoded {
        Decoded::Event(event) => Decoded::Event(event),
        Decoded::Reply(msg) => Decoded::Reply(event_frame(&msg)),
        Decoded::Ignore => Decoded::Ignore,
        Decoded::Close => Decoded::Close,
    }
}

fn invalid(field: &'static str, text: &str) -> DecodeError {
    DecodeError::InvalidValue {
        field,
        value: truncate(text, 32),
    }
}

#[cfg(test)]
mod tests;
