//! An engine.io 3 POST, read whole and answered `ok`, as engine.io 3's own server answers it.
//! socket.io-client 2 puts every packet it has buffered into one POST (engine.io 3 has no
//! `maxPayload` to make it split them), so a burst is one body of megabytes. While it upgrades
//! to a WebSocket, the client waits for that POST's answer before it sends the upgrade's `5`
//! and polls nothing meanwhile: a POST answered only as fast as the session relays its packets
//! would wait on a partner that, upgrading too, waits on its own POST (a deadlock). So the body
//! is read whole (at most `engineio3_max_post_bytes`, else 413 and the session ends) and its
//! packets wait in the session ([`Undelivered`]). Backpressure moves to the next POST: its body
//! is read once the session has taken every packet of the ones before, except while an upgrade
//! is under way (the client may wait for it to pause), when up to twice the cap may wait.
//! Above the session, every POST's bytes are reserved under its address's and the gateway's
//! budget before its body is read, and given back as the session takes the packets (`budget`):
//! a POST that does not fit waits, its body unread, for at most `write_timeout_secs`.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use switchboard_protocol::dialects::engineio::payload3::{self, PayloadError, Split};
use switchboard_protocol::dialects::engineio::polling::RequestError;
use tokio::sync::Notify;

use super::budget::{Held, PostBudget};
use super::reserve::{Reserving, announced};
use super::transport::Inbound;
use super::{EngineSession, refuse};

/// The bytes of packets a session's POSTs brought that its loop has not taken yet.
#[derive(Debug, Default)]
pub struct Undelivered {
    bytes: AtomicUsize,
    /// Wakes a POST waiting for the session to take packets, or for an upgrade to start.
    changed: Notify,
}

impl Undelivered {
    fn add(&self, bytes: usize) {
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    /// The session loop took a packet of `bytes`.
    pub fn taken(&self, bytes: usize) {
        let before = self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        debug_assert!(before >= bytes, "more taken than delivered");
        self.changed.notify_waiters();
    }

    /// Something a waiting POST's threshold depends on changed (an upgrade began or ended).
    pub fn wake(&self) {
        self.changed.notify_waiters();
    }

    /// Waits until at most `threshold()` bytes are undelivered.
    async fn at_most(&self, threshold: impl Fn() -> usize) {
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            if self.bytes.load(Ordering::Acquire) <= threshold() {
                return;
            }
            changed.await;
        }
    }
}

/// The limits one engine.io 3 POST is read under.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// The frame limit, per packet.
    pub packet: usize,
    /// The most one body may carry (`engineio3_max_post_bytes`, or an address's whole budget if
    /// lower); checked on `Content-Length` by the caller, and here as a chunked body is read.
    pub body: usize,
    /// How long the POST may wait for room in the budget (`write_timeout_secs`).
    pub wait: Duration,
}

/// Reads the body of `request` into `session`'s packets, its bytes reserved under `budget`
/// before they are read.
pub(super) async fn post(
    limits: Limits,
    budget: &PostBudget,
    session: &EngineSession,
    request: Request,
) -> Response {
    // Backpressure: the body stays in the client's TCP window until the session has taken the
    // packets of the POSTs before it.
    let threshold = || match session.probed.load(Ordering::Acquire) {
        true => 2 * limits.body,
        false => 0,
    };
    tokio::select! {
        () = session.undelivered.at_most(threshold) => {}
        () = session.inbound.closed() => return refuse(RequestError::UnknownSid),
    }
    // Then the budget (`reserve`).
    let mut reserving =
        match Reserving::start(budget, session, announced(&request), limits.wait).await {
            Ok(reserving) => reserving,
            Err(refused) => return refused,
        };
    let mut body = request.into_body().into_data_stream();
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    let mut read = 0;
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            // The client went away mid-body: engine.io drops such a POST whole.
            return refuse(RequestError::BadRequest);
        };
        if read == 0 && payload3::is_binary_payload(&chunk) {
            // Binary data, which signaling never carries: answered as a binary packet is.
            let binary = vec![Bytes::from_static(b"b")];
            return deliver(session, binary, reserving.held).await;
        }
        read += chunk.len();
        if read > limits.body {
            // Refused whole, as a v4 POST above `maxPayload` is: nothing of it is relayed.
            let held = reserving.held;
            return bad_payload(session, Vec::new(), held, PayloadError::TooLarge(read)).await;
        }
        if let Err(refused) = reserving.chunk(chunk.len()).await {
            return refused;
        }
        buf.extend_from_slice(&chunk);
        if let Some(error) = split(&mut buf, limits.packet, &mut packets) {
            return bad_payload(session, packets, reserving.held, error).await;
        }
    }
    let held = reserving.held;
    match (read, buf.is_empty()) {
        (0, _) => bad_payload(session, packets, held, PayloadError::Empty).await,
        (_, true) => deliver(session, packets, held).await,
        (_, false) => bad_payload(session, packets, held, PayloadError::Truncated).await,
    }
}

/// Moves every whole packet off the front of `buf` into `packets`; the error that stopped the
/// split, if one did. Empty packets (`0:`) are dropped, as engine.io-parser 2 drops them.
fn split(buf: &mut BytesMut, limit: usize, packets: &mut Vec<Bytes>) -> Option<PayloadError> {
    loop {
        match payload3::split_first(buf, limit) {
            Ok(Split::Packet { header, end }) => {
                let packet = buf.split_to(end).freeze().slice(header..);
                if packet.len() > limit {
                    return Some(PayloadError::TooLarge(packet.len()));
                }
                if !packet.is_empty() {
                    packets.push(packet);
                }
            }
            Ok(Split::NeedMore) => return None,
            Err(e) => return Some(e),
        }
    }
}

/// Hands `packets` to the session, counted as undelivered until its loop takes them; of the
/// bytes `held` under the budget, as many as the packets weigh go with them (the framing's
/// are given back now).
async fn hand(
    session: &EngineSession,
    packets: Vec<Bytes>,
    mut held: Option<Held>,
) -> Result<(), Response> {
    let bytes = packets.iter().map(Bytes::len).sum();
    if let Some(held) = held.as_mut() {
        held.release(held.bytes().saturating_sub(bytes));
    }
    if packets.is_empty() {
        return Ok(());
    }
    session.undelivered.add(bytes);
    if session
        .inbound
        .send(Inbound::Packets(packets, held))
        .await
        .is_err()
    {
        return Err(refuse(RequestError::UnknownSid));
    }
    Ok(())
}

/// Gives the session what a POST carried and answers the POST.
async fn deliver(session: &EngineSession, packets: Vec<Bytes>, held: Option<Held>) -> Response {
    match hand(session, packets, held).await {
        Ok(()) => ok(),
        Err(refused) => refused,
    }
}

/// A body whose framing broke or that is above the cap: what came whole before the break goes
/// to the session, which is then closed and counted (as a malformed packet, or as an oversized
/// frame), and the POST refused.
async fn bad_payload(
    session: &EngineSession,
    packets: Vec<Bytes>,
    held: Option<Held>,
    error: PayloadError,
) -> Response {
    if let Err(refused) = hand(session, packets, held).await {
        return refused;
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[tokio::test]
    async fn a_post_waits_until_the_session_took_the_packets_before_it() {
        let undelivered = Arc::new(Undelivered::default());
        undelivered.add(10);
        let waiting = tokio::spawn({
            let undelivered = undelivered.clone();
            async move { undelivered.at_most(|| 0).await }
        });
        tokio::task::yield_now().await;
        undelivered.taken(4);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "6 bytes are still undelivered");
        undelivered.taken(6);
        waiting.await.expect("let in once everything was taken");
    }

    #[tokio::test]
    async fn an_upgrade_lets_a_waiting_post_in_below_its_threshold() {
        let undelivered = Arc::new(Undelivered::default());
        let probed = Arc::new(AtomicBool::new(false));
        undelivered.add(10);
        let waiting = tokio::spawn({
            let (undelivered, probed) = (undelivered.clone(), probed.clone());
            async move {
                let threshold = || {
                    if probed.load(Ordering::Acquire) {
                        20
                    } else {
                        0
                    }
                };
                undelivered.at_most(threshold).await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        probed.store(true, Ordering::Release);
        undelivered.wake();
        waiting.await.expect("let in by the upgrade");
    }

    #[test]
    fn a_body_splits_into_its_packets_and_keeps_an_unfinished_one() {
        let mut buf = BytesMut::from(&b"2:403:42x0:3:4"[..]);
        let mut packets = Vec::new();
        assert_eq!(split(&mut buf, 100, &mut packets), None);
        assert_eq!(packets, vec![Bytes::from("40"), Bytes::from("42x")]);
        assert_eq!(&buf[..], b"3:4");
    }
}
