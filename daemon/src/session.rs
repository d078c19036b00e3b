//! A peer session on a plain WebSocket (the `antmedia` and `raw` dialects): one task owns the
//! socket, decodes what the peer sends, dispatches it, and writes what the bus delivers, rendered
//! in the peer's dialect.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use switchboard_plugin_api::protocol::{
    DecodeError, Decoded, Dialect, ErrorCode, Event, IceServers, Join,
};
use switchboard_plugin_api::{Envelope, Peer, Refusal};

use crate::gateway::{self, Gateway, Membership, Outbound, SessionHandle};
use crate::telemetry;

/// WebSocket close codes used by the gateway.
pub mod close_code {
    /// The gateway is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// The session broke a rule (it stopped reading its messages).
    pub const POLICY: u16 = 1008;
    /// A frame above the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Raw join refused: the room is full.
    pub const ROOM_FULL: u16 = 4409;
    /// Raw join refused by a plugin.
    pub const REFUSED: u16 = 4403;
    /// Raw join refused: bad room name.
    pub const BAD_ROOM: u16 = 4400;
}

/// Renders a delivery for a peer of dialect `D`.
pub fn render<D: Dialect>(state: &D::State, out: &Outbound) -> Option<D::Wire> {
    match out {
        Outbound::Relay(env) => match &env.original {
            Some(original) if env.from.dialect == D::KIND => {
                D::forward(state, original, &env.event)
            }
            _ => D::encode(state, &env.event),
        },
        Outbound::Event(event) => D::encode(state, event),
    }
}

/// The error event a refusal becomes.
pub fn refusal_event(refusal: &Refusal, room: Option<&str>) -> Event {
    Event::error(refusal.code, room, refusal.message.clone())
}

/// The ICE settings event from the config.
pub fn ice_servers(gateway: &Gateway) -> Event {
    let ice = &gateway.config().ice;
    Event::IceServers(IceServers {
        uri: ice.uri.clone(),
        username: ice.username.clone(),
        credential: ice.credential.clone(),
    })
}

/// A session's identity and rooms, shared by every dialect's session type.
#[derive(Debug)]
pub struct SessionCore {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// This session as plugins see it.
    pub peer: Peer,
    /// Rooms this session is in, so they can be left when it closes.
    pub rooms: Vec<String>,
}

impl SessionCore {
    /// Dispatches `event` from this session and records any membership change.
    pub fn dispatch(&mut self, event: Event, original: Option<Arc<str>>) -> Option<Refusal> {
        let out = self.gateway.dispatch(Envelope {
            from: self.peer,
            event,
            original,
        });
        match out.membership {
            Some(Membership::Joined(room)) => self.rooms.push(room),
            Some(Membership::Left(room)) => self.rooms.retain(|r| *r != room),
            None => {}
        }
        out.refusal
    }

    /// Leaves every room (partners are told) and unregisters.
    pub fn finish(&mut self, reason: &str) {
        let rooms = std::mem::take(&mut self.rooms);
        self.gateway.leave_all(self.peer, &rooms);
        self.gateway.unregister(self.peer.session);
        telemetry::session_closed(self.peer.session, self.peer.dialect, reason);
    }
}

/// Runs one WebSocket peer session until the peer closes, the gateway shuts down, or the peer
/// breaks a rule. `join` is the room a raw peer joins on connect (from its URL).
pub async fn run_websocket<D>(
    socket: WebSocket,
    gateway: Arc<Gateway>,
    handle: SessionHandle,
    mut state: D::State,
    join: Option<Join>,
) where
    D: Dialect<Wire = String>,
{
    let SessionHandle { id, mut rx, cancel } = handle;
    let max_frame = gateway.config().limits.max_frame_bytes;
    let mut core = SessionCore {
        gateway,
        peer: gateway::peer(id, D::KIND),
        rooms: Vec::new(),
    };
    telemetry::session_opened(id, D::KIND);
    let (mut sink, mut stream) = socket.split();

    if let Some(join) = join {
        let room = join.room.clone();
        if let Some(refusal) = core.dispatch(Event::Join(join), None) {
            let frame = D::encode(&state, &refusal_event(&refusal, Some(&room)));
            let code = match refusal.code {
                ErrorCode::RoomFull => close_code::ROOM_FULL,
                _ => close_code::REFUSED,
            };
            if let Some(frame) = frame {
                let _ = sink.send(Message::Text(frame.into())).await;
            }
            let _ = sink.send(close(code, &refusal.message)).await;
            core.finish("join refused");
            return;
        }
    }

    let reason = loop {
        tokio::select! {
            () = cancel.cancelled() => {
                let _ = sink.send(close(close_code::GOING_AWAY, "gateway shutting down")).await;
                break "cancelled";
            }
            Some(out) = rx.recv() => {
                if let Some(frame) = render::<D>(&state, &out)
                    && sink.send(Message::Text(frame.into())).await.is_err()
                {
                    break "write failed";
                }
            }
            inbound = stream.next() => {
                let replies = match inbound {
                    None | Some(Ok(Message::Close(_))) => break "peer closed",
                    Some(Err(e)) => {
                        if is_too_large(&e) {
                            telemetry::frame_too_large(D::KIND, max_frame);
                            let _ = sink.send(close(close_code::TOO_BIG, "frame too large")).await;
                            break "frame too large";
                        }
                        break "read failed";
                    }
                    Some(Ok(Message::Text(text))) => handle_text::<D>(&mut core, &mut state, text),
                    Some(Ok(Message::Binary(_))) => {
                        let e = Event::error(ErrorCode::BinaryNotSupported, None, "binary frames are not supported; send JSON text frames");
                        D::encode(&state, &e).into_iter().collect()
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Vec::new(),
                };
                for reply in replies {
                    if sink.send(Message::Text(reply.into())).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    core.finish(reason);
}

/// Decodes and dispatches one text frame; returns frames to send straight back.
fn handle_text<D>(core: &mut SessionCore, state: &mut D::State, text: Utf8Bytes) -> Vec<String>
where
    D: Dialect<Wire = String>,
{
    let text = text.to_string();
    match D::decode(state, &text) {
        Ok(Decoded::Reply(reply)) => vec![reply],
        Ok(Decoded::Ignore) => Vec::new(),
        Ok(Decoded::Event(Event::IceServersRequest)) => {
            D::encode(state, &ice_servers(&core.gateway))
                .into_iter()
                .collect()
        }
        Ok(Decoded::Event(event)) => {
            let room = event.room().map(str::to_owned);
            let original: Arc<str> = Arc::from(text);
            match core.dispatch(event, Some(original)) {
                Some(refusal) => D::encode(state, &refusal_event(&refusal, room.as_deref()))
                    .into_iter()
                    .collect(),
                None => Vec::new(),
            }
        }
        Err(error) => {
            telemetry::decode_failed(D::KIND, &error);
            // Ant Media names the offending id in `invalidStreamName`.
            let room = match &error {
                DecodeError::InvalidStreamName(id) => Some(id.as_str()),
                _ => None,
            };
            let event = Event::error(error.code(), room, error.to_string());
            D::encode(state, &event).into_iter().collect()
        }
    }
}

fn close(code: u16, reason: &str) -> Message {
    // Close reasons are limited to 123 bytes; cut on a char boundary.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].to_owned().into(),
    }))
}

/// Whether a read error is tungstenite's size limit. axum wraps the error without exposing its
/// type, so this matches tungstenite's message ("Space limit exceeded: Message too long: ...").
fn is_too_large(error: &axum::Error) -> bool {
    let text = error.to_string();
    text.contains("too long") || text.contains("Space limit")
}
