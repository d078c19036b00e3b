//! The gateway's lifecycle phases, published on a `watch` channel: `/readyz` answers from it,
//! admission refuses new sessions once draining, and tests assert the sequence.

use tokio::sync::watch;

/// Where the gateway is in its life. Only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Binding listeners and building plugins.
    Starting,
    /// Serving.
    Running,
    /// Shutting down: no new sessions, peers told and closed, plugins finishing.
    Draining,
    /// Every session and plugin is done.
    Stopped,
}

impl Phase {
    /// Lowercase name for logs, `/readyz` and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Draining => "draining",
            Phase::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sending side of the phase channel.
#[derive(Debug)]
pub struct Lifecycle {
    tx: watch::Sender<Phase>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            tx: watch::Sender::new(Phase::Starting),
        }
    }
}

impl Lifecycle {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.tx.borrow()
    }

    /// Moves to `next` unless already there or past it; logs the change.
    pub fn advance(&self, next: Phase) {
        let changed = self.tx.send_if_modified(|phase| {
            if next > *phase {
                *phase = next;
                true
            } else {
                false
            }
        });
        if changed {
            tracing::info!(phase = %next, "Lifecycle phase changed.");
        }
    }

    /// A receiver that sees every later change.
    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_move_forward() {
        let l = Lifecycle::default();
        let rx = l.subscribe();
        l.advance(Phase::Running);
        l.advance(Phase::Starting);
        assert_eq!(l.phase(), Phase::Running);
        l.advance(Phase::Draining);
        l.advance(Phase::Draining);
        assert_eq!(*rx.borrow(), Phase::Draining);
    }
}
