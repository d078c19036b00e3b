//! An engine.io 4 POST (socket.io-client 3 and 4 on long-polling): its body, at most
//! `maxPayload`, is read under the POST budget (`reserve`) and handed to the session with the
//! bytes it holds there, which the session gives back packet by packet as it takes them. The
//! POST is answered once the session's inbound channel took the body: a session that is not
//! reading makes its client's next POSTs wait, and what waits in the channel is under the
//! budget too, so one address's sessions cannot pin more than its budget however many there
//! are or however high `maxPayload` is set.

use axum::extract::Request;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use switchboard_protocol::dialects::engineio::polling::RequestError;
use tokio::time::Duration;

use super::budget::{Held, PostBudget};
use super::reserve::{Reserving, announced, too_large};
use super::{EngineSession, refuse};

/// Reads the body of `request` (at most `limit` bytes), its bytes reserved under `budget`
/// before they are read for at most `wait`: the body and what it holds, or the answer that
/// refused it.
pub(super) async fn read(
    limit: usize,
    wait: Duration,
    budget: &PostBudget,
    session: &EngineSession,
    request: Request,
) -> Result<(Bytes, Option<Held>), Response> {
    let length = announced(&request);
    let mut reserving = Reserving::start(budget, session, length, wait).await?;
    let mut body = request.into_body().into_data_stream();
    // Sized once when announced: grown chunk by chunk, a body of 1 MB left blocks of 512 KiB,
    // 256 KiB, ... behind it, outside the budget.
    let mut buf = BytesMut::with_capacity(length.unwrap_or(0).min(limit));
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            // The client went away mid-body: engine.io drops such a POST whole.
            return Err(refuse(RequestError::BadRequest));
        };
        if buf.len() + chunk.len() > limit {
            return Err(too_large(session, buf.len() + chunk.len()).await);
        }
        reserving.chunk(chunk.len()).await?;
        buf.extend_from_slice(&chunk);
    }
    Ok((buf.freeze(), reserving.held))
}
