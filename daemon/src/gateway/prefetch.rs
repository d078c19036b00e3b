//! [`Prefetch`]: what the dispatcher does for an event *before* it locks the event's room, and
//! after it released it. Plugin hooks run under the room's lock and must not wait; with
//! `[cluster]`, the conference plugin's decisions read Redis (a room's dates and owner, the
//! other nodes' streams, a one-time token), so those reads happen here, on the blocking pool,
//! with no lock held: a slow or frozen Redis delays the request that needs it, never the
//! other dispatches of its room, and holds no runtime worker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use switchboard_conference::Hub;
use switchboard_plugin_api::SessionId;
use switchboard_protocol::Event;

use crate::envelope::Envelope;

/// A boxed future of a prefetch step.
pub type Step<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Work a dispatch does around its room's lock.
pub trait Prefetch: Send + Sync {
    /// The plugin this prefetch is for: nothing is done while the pipeline does not run it.
    fn plugin(&self) -> &str;
    /// Whether `event` needs [`Self::prepare`] (every dispatch asks: must be cheap).
    fn wants(&self, event: &Event) -> bool;
    /// Before the room is locked.
    fn prepare<'a>(&'a self, envelope: &Envelope) -> Step<'a>;
    /// After the room's lock is released: gives back what the decision did not use.
    fn settle<'a>(&'a self, session: SessionId) -> Step<'a>;
}

/// The conference plugin's reads of the cluster's catalog ([`Hub::prepare`]).
#[derive(Debug)]
pub struct CatalogPrefetch {
    hub: Arc<Hub>,
}

impl CatalogPrefetch {
    /// The prefetch of the conference `hub` (one with a cluster catalog).
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

impl Prefetch for CatalogPrefetch {
    fn plugin(&self) -> &str {
        "conference"
    }

    fn wants(&self, event: &Event) -> bool {
        matches!(event, Event::Join(_) | Event::Conference(_))
    }

    fn prepare<'a>(&'a self, envelope: &Envelope) -> Step<'a> {
        let wanted = switchboard_conference::prefetch_of(&envelope.event, envelope.app.as_deref());
        let session = envelope.from.session;
        Box::pin(async move {
            let Some(wanted) = wanted else {
                return;
            };
            let hub = Arc::clone(&self.hub);
            // The catalog's calls block (bounded by the command timeout): on the blocking
            // pool, never on a worker.
            let _ = tokio::task::spawn_blocking(move || hub.prepare(session, &wanted)).await;
        })
    }

    fn settle<'a>(&'a self, session: SessionId) -> Step<'a> {
        Box::pin(async move {
            if !self.hub.has_claims(session) {
                return;
            }
            let hub = Arc::clone(&self.hub);
            let _ = tokio::task::spawn_blocking(move || hub.settle(session)).await;
        })
    }
}
