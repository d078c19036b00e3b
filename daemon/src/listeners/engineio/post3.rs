//! An engine.io 3 POST, read as it arrives. socket.io-client 2 puts every packet it has
//! buffered into one POST (engine.io 3 has no `maxPayload` to make it split them), so a burst
//! is one body of megabytes. Its packets go to the session loop as the body is read, a few at a
//! time through the session's bounded inbound channel: a session that is not reading makes the
//! rest of the body wait in the client's TCP window, as a WebSocket peer's frames do. Each
//! packet's length prefix is checked against the frame limit before the packet is buffered.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use switchboard_protocol::dialects::engineio::payload3::{self, PayloadError, Split};
use switchboard_protocol::dialects::engineio::polling::RequestError;

use super::transport::Inbound;
use super::{EngineSession, refuse};

/// Reads the body of `request` into `session`'s packets; `limit` is the frame limit.
pub(super) async fn post(limit: usize, session: &EngineSession, request: Request) -> Response {
    let mut body = request.into_body().into_data_stream();
    let mut buf = BytesMut::new();
    let mut first = true;
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            // The client went away mid-body; what it sent whole was delivered.
            return refuse(RequestError::BadRequest);
        };
        if std::mem::take(&mut first) && payload3::is_binary_payload(&chunk) {
            // Binary data, which signaling never carries: answered as a binary packet is.
            let binary = vec![Bytes::from_static(b"b")];
            return deliver(session, Inbound::Packets(binary)).await;
        }
        buf.extend_from_slice(&chunk);
        let (packets, broken) = split(&mut buf, limit);
        if !packets.is_empty()
            && session
                .inbound
                .send(Inbound::Packets(packets))
                .await
                .is_err()
        {
            return refuse(RequestError::UnknownSid);
        }
        if let Some(error) = broken {
            return bad_payload(session, error).await;
        }
    }
    match (first, buf.is_empty()) {
        (false, true) => ok(),
        (true, _) => bad_payload(session, PayloadError::Empty).await,
        (false, false) => bad_payload(session, PayloadError::Truncated).await,
    }
}

/// Takes every whole packet off the front of `buf`, and the error that stopped the split, if
/// one did. Empty packets (`0:`) are dropped, as engine.io-parser 2 drops them.
fn split(buf: &mut BytesMut, limit: usize) -> (Vec<Bytes>, Option<PayloadError>) {
    let mut packets = Vec::new();
    loop {
        match payload3::split_first(buf, limit) {
            Ok(Split::Packet { header, end }) => {
                let packet = buf.split_to(end).freeze().slice(header..);
                if packet.len() > limit {
                    return (packets, Some(PayloadError::TooLarge(packet.len())));
                }
                if !packet.is_empty() {
                    packets.push(packet);
                }
            }
            Ok(Split::NeedMore) => return (packets, None),
            Err(e) => return (packets, Some(e)),
        }
    }
}

/// Gives the session what a POST carried and answers the POST.
async fn deliver(session: &EngineSession, inbound: Inbound) -> Response {
    match session.inbound.send(inbound).await {
        Ok(()) => ok(),
        Err(_) => refuse(RequestError::UnknownSid),
    }
}

/// A body whose framing broke: the session is closed and counted (as a malformed packet, or as
/// an oversized frame), and the POST refused.
async fn bad_payload(session: &EngineSession, error: PayloadError) -> Response {
    let status = match error {
        PayloadError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let _ = session.inbound.send(Inbound::BadPayload(error)).await;
    status.into_response()
}

fn ok() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/html")], "ok").into_response()
}
