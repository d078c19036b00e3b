//! A POST's bytes reserved under the POST budget (`budget`) as its body is read, for engine.io 3
//! (`post3`) and engine.io 4 (`post4`) alike: an announced body whole before any of it is read,
//! a chunked one chunk by chunk before each is buffered. A POST that finds no room waits, its
//! body unread, for at most `write_timeout_secs` in all; then it is refused (503) and its
//! session ended, counted once (`post_budget_full`).

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use switchboard_protocol::dialects::engineio::polling::RequestError;
use tokio::time::{Duration, Instant};

use super::budget::{Held, PostBudget, Unfit};
use super::transport::Inbound;
use super::{EngineSession, refuse};

/// The body length `request` announces (`Content-Length`), if it does.
pub(super) fn announced(request: &Request) -> Option<usize> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
}

/// The reservation of one POST while its body is read.
pub(super) struct Reserving<'a> {
    budget: &'a PostBudget,
    session: &'a EngineSession,
    /// Whether the body's length was announced (and reserved whole at the start).
    announced: bool,
    deadline: Instant,
    /// What is reserved so far.
    pub held: Option<Held>,
}

impl<'a> Reserving<'a> {
    /// Starts reserving for a POST whose body is `announced` (its `Content-Length`) bytes, if
    /// it says: they are reserved whole now, waiting for room until `wait` from now.
    pub async fn start(
        budget: &'a PostBudget,
        session: &'a EngineSession,
        announced: Option<usize>,
        wait: Duration,
    ) -> Result<Self, Response> {
        let mut reserving = Reserving {
            budget,
            session,
            announced: announced.is_some(),
            deadline: Instant::now() + wait,
            held: None,
        };
        if let Some(bytes) = announced {
            reserving.held = Some(reserving.reserve(bytes).await?);
        }
        Ok(reserving)
    }

    /// A chunk of `len` bytes was read off the body: a chunked body reserves it before it is
    /// buffered (an announced one holds it already).
    pub async fn chunk(&mut self, len: usize) -> Result<(), Response> {
        if self.announced {
            return Ok(());
        }
        let more = self.reserve(len).await?;
        match self.held.as_mut() {
            Some(held) => held.merge(more),
            None => self.held = Some(more),
        }
        Ok(())
    }

    /// Reserves `bytes` of the session's address's budget, waiting for room until the
    /// deadline. Past it the POST is refused and the session ended ([`budget_full`]); a
    /// session that ended meanwhile refuses it as unknown.
    async fn reserve(&self, bytes: usize) -> Result<Held, Response> {
        let session = self.session;
        let reserve = self.budget.reserve(&session.budget, bytes);
        tokio::select! {
            reserved = tokio::time::timeout_at(self.deadline, reserve) => match reserved {
                Ok(Ok(held)) => Ok(held),
                // Not reached: the body limit is at most an address's budget.
                Ok(Err(Unfit::Never)) => Err(too_large(session, bytes).await),
                Err(_) => Err(budget_full(session).await),
            },
            () = session.inbound.closed() => Err(refuse(RequestError::UnknownSid)),
        }
    }
}

/// A POST that found no room in its address's budget (or the gateway's) within
/// `write_timeout_secs`: 503 with engine.io's error shape, and the session is closed and
/// counted once (`post_budget_full`), its partners told, as for a POST above the cap.
async fn budget_full(session: &EngineSession) -> Response {
    let _ = session.inbound.send(Inbound::BudgetFull).await;
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"code":3,"message":"post_budget_full: no room for this POST among the undelivered messages the gateway may hold for your address and in all; the session is closed"}"#,
    )
        .into_response()
}

/// A body that can never be reserved, or read past its limit: 413, the session closed as for
/// a POST above the cap.
pub(super) async fn too_large(session: &EngineSession, bytes: usize) -> Response {
    let _ = session.inbound.send(Inbound::TooLarge(bytes)).await;
    StatusCode::PAYLOAD_TOO_LARGE.into_response()
}
