//! [`Prefetch`]: what the dispatcher does for an event *before* it locks the event's room, and
//! after it released it. Plugin hooks run under the room's lock and must not wait; with
//! `[cluster]`, the conference plugin's decisions read Redis (a room's dates and owner, the
//! other nodes' streams, a one-time token), so those reads happen here, on the blocking pool,
//! with no lock held: a slow or frozen Redis delays the request that needs it, never the
//! other dispatches of its room, and holds no runtime worker. The sfu plugin's claim of a
//! conference room's media home ([`HomePrefetch`]) is made the same way, after the catalog's
//! reads (the room it names may depend on them).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use switchboard_conference::Hub;
use switchboard_plugin_api::SessionId;
use switchboard_protocol::{ConferenceCommand, Event};

use crate::cluster::homing::MediaHoming;
use crate::envelope::Envelope;

/// A boxed future of a prefetch step.
pub type Step<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Work a dispatch does around its room's lock, for one plugin: the plugin registry gives it
/// with the plugin it built ([`crate::plugins::PluginRegistry::pipeline`]), and the dispatcher
/// runs the hooks of the pipeline it dispatches through ([`crate::pipeline::Pipeline::prefetches`]),
/// so nothing is done for a plugin the pipeline does not run.
pub trait Prefetch: Send + Sync {
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

/// The sfu plugin's claim of a room's media home for a `publish` or `play`
/// ([`MediaHoming::prepare`]), read before the room is locked and given back after when the
/// decision did not use it ([`MediaHoming::settle`]).
#[derive(Debug)]
pub struct HomePrefetch {
    homing: Arc<MediaHoming>,
}

impl HomePrefetch {
    /// The prefetch of this node's room homing.
    pub fn new(homing: Arc<MediaHoming>) -> Self {
        Self { homing }
    }
}

impl Prefetch for HomePrefetch {
    fn wants(&self, event: &Event) -> bool {
        matches!(event, Event::Conference(c) if matches!(
            c.command,
            ConferenceCommand::Publish(_) | ConferenceCommand::Play(_)
        ))
    }

    fn prepare<'a>(&'a self, envelope: &Envelope) -> Step<'a> {
        let session = envelope.from.session;
        // The plugin's memory names the room (no wait); the claim waits on Redis.
        let room = self.homing.media_room_of(session, &envelope.event);
        Box::pin(async move {
            let Some(room) = room else {
                return;
            };
            let homing = Arc::clone(&self.homing);
            let _ = tokio::task::spawn_blocking(move || homing.prepare(session, room)).await;
        })
    }

    fn settle<'a>(&'a self, session: SessionId) -> Step<'a> {
        Box::pin(async move {
            if !self.homing.has_unused(session) {
                return;
            }
            let homing = Arc::clone(&self.homing);
            let _ = tokio::task::spawn_blocking(move || homing.settle(session)).await;
        })
    }
}
