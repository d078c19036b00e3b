//! The plugin pipeline: every event runs through the plugins in config order. A plugin that
//! fails is logged and counted; one that panics (or a native plugin that failed) is disabled.
//! What happens to the event then is the plugin's failure policy ([`OnFailure`]): `skip` goes
//! on without the plugin; `refuse` (policy plugins' default) refuses the event, so a broken
//! access check fails closed instead of open.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use switchboard_plugin_api::{Decision, EventContext, Outbox, Plugin, Refusal, SessionId, Verdict};
use switchboard_protocol::{ErrorCode, Event};

pub use crate::config::OnFailure;
use crate::gateway::prefetch::Prefetch;
use crate::telemetry;

/// What a peer is told when a `refuse` plugin failed on its event: a fixed text (the plugin's
/// own error goes to the log only).
const FAILED_CLOSED: &str = "a policy check of this gateway failed; the request is refused";

struct Slot {
    plugin: Box<dyn Plugin>,
    /// Set when the plugin panicked; a panicking plugin's state cannot be trusted again.
    disabled: AtomicBool,
    /// Calls and latency, registered once per plugin name.
    stats: Arc<crate::stats::PluginStats>,
    /// What a failure of this plugin does to the event.
    on_failure: OnFailure,
}

impl Slot {
    /// Whether the plugin is out of service: it panicked, or (a native plugin) disabled itself.
    fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed) || self.plugin.is_disabled()
    }

    /// The refusal a failure of this plugin on `event` makes, under a `refuse` policy. A leave
    /// is never refused: the peer goes whatever a plugin says, and refusing it would only keep
    /// a departed peer listed in its room.
    fn failure_refusal(&self, event: &Event) -> Option<Refusal> {
        (self.on_failure == OnFailure::Refuse && !matches!(event, Event::Leave(_)))
            .then(|| Refusal::new(ErrorCode::Internal, FAILED_CLOSED))
    }
}

/// The ordered plugins, and the prefetch hooks that came with them.
pub struct Pipeline {
    slots: Vec<Slot>,
    /// What the dispatcher reads for these plugins before it locks a room (with `[cluster]`,
    /// the conference catalog's reads and the sfu's claims of media homes): given by the
    /// plugin registry with the plugins it built ([`crate::plugins::PluginRegistry::pipeline`]),
    /// so a pipeline without the plugin has no prefetch for it.
    prefetches: Vec<Arc<dyn Prefetch>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.slots.iter().map(|s| s.plugin.name()))
            .finish()
    }
}

impl Pipeline {
    /// A pipeline running `plugins` in order, each with its type's default failure policy
    /// ([`OnFailure::default_for`]).
    pub fn new(plugins: Vec<Box<dyn Plugin>>) -> Self {
        Self::with_policies(
            plugins
                .into_iter()
                .map(|p| {
                    let policy = OnFailure::default_for(p.name());
                    (p, policy)
                })
                .collect(),
        )
    }

    /// A pipeline of the plugins built from `configs` (in the same order), each with its
    /// entry's `on_failure`.
    pub fn configured(
        plugins: Vec<Box<dyn Plugin>>,
        configs: &[crate::config::PluginConfig],
    ) -> Self {
        Self::with_policies(
            plugins
                .into_iter()
                .zip(configs)
                .map(|(p, c)| (p, c.failure_policy()))
                .collect(),
        )
    }

    /// A pipeline running `plugins` in order with the given failure policies.
    pub fn with_policies(plugins: Vec<(Box<dyn Plugin>, OnFailure)>) -> Self {
        Self {
            prefetches: Vec::new(),
            slots: plugins
                .into_iter()
                .map(|(plugin, on_failure)| Slot {
                    stats: {
                        telemetry::plugin_registered(plugin.name());
                        crate::stats::plugin_stats(plugin.name())
                    },
                    plugin,
                    disabled: AtomicBool::new(false),
                    on_failure,
                })
                .collect(),
        }
    }

    /// The same pipeline with its plugins' prefetch hooks, run in this order before a room is
    /// locked and settled in this order after it is released.
    pub fn with_prefetches(mut self, prefetches: Vec<Arc<dyn Prefetch>>) -> Self {
        self.prefetches = prefetches;
        self
    }

    /// The prefetch hooks of this pipeline's plugins (none without `[cluster]`).
    pub fn prefetches(&self) -> &[Arc<dyn Prefetch>] {
        &self.prefetches
    }

    /// Runs the event through every enabled plugin. Returns the decision and whether a plugin
    /// stopped the pipeline (took the event as its own), or the refusal that stopped it.
    pub fn run(&self, cx: &EventContext<'_>) -> Result<(Decision, bool), Refusal> {
        let mut decision = Decision::default();
        let mut stopped = false;
        for slot in &self.slots {
            if slot.is_disabled() {
                if let Some(refusal) = slot.failure_refusal(cx.event()) {
                    return Err(refusal);
                }
                continue;
            }
            let before = decision.clone();
            let name = slot.plugin.name();
            let started = slot.stats.call().then(Instant::now);
            let outcome =
                catch_unwind(AssertUnwindSafe(|| slot.plugin.on_event(cx, &mut decision)));
            if let Some(started) = started {
                slot.stats.observe(started.elapsed());
            }
            match outcome {
                Ok(Ok(Verdict::Continue)) => {}
                Ok(Ok(Verdict::Stop)) => {
                    stopped = true;
                    break;
                }
                Ok(Ok(Verdict::Refuse(refusal))) => return Err(bounded(refusal)),
                Ok(Err(error)) => {
                    telemetry::plugin_failed(name, &error.0);
                    if let Some(refusal) = slot.failure_refusal(cx.event()) {
                        return Err(refusal);
                    }
                    decision = before;
                }
                Err(_) => {
                    telemetry::plugin_failed(name, "panicked; plugin disabled");
                    slot.disabled.store(true, Ordering::Relaxed);
                    if let Some(refusal) = slot.failure_refusal(cx.event()) {
                        return Err(refusal);
                    }
                    decision = before;
                }
            }
        }
        Ok((decision, stopped))
    }

    /// Why nobody answered the request in `cx`: the first enabled plugin's
    /// [`Plugin::on_unanswered`] that knows. A panic disables the plugin, as in any hook.
    pub fn unanswered(&self, cx: &EventContext<'_>) -> Option<Refusal> {
        self.slots
            .iter()
            .filter(|slot| !slot.is_disabled())
            .find_map(|slot| {
                catch_unwind(AssertUnwindSafe(|| slot.plugin.on_unanswered(cx))).unwrap_or_else(
                    |_| {
                        telemetry::plugin_failed(slot.plugin.name(), "panicked; plugin disabled");
                        slot.disabled.store(true, Ordering::Relaxed);
                        None
                    },
                )
            })
            .map(bounded)
    }

    /// Starts every plugin with `outbox`, in config order; the first failure is returned with
    /// the plugin's name.
    pub fn start(&self, outbox: &Outbox) -> Result<(), String> {
        for slot in &self.slots {
            let name = slot.plugin.name();
            match catch_unwind(AssertUnwindSafe(|| slot.plugin.start(Arc::clone(outbox)))) {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(format!("plugin `{name}` did not start: {error}")),
                Err(_) => return Err(format!("plugin `{name}` panicked while starting")),
            }
        }
        Ok(())
    }

    /// Tells every enabled plugin that `session` closed.
    pub fn session_closed(&self, session: SessionId) {
        for slot in &self.slots {
            if slot.is_disabled() {
                continue;
            }
            match catch_unwind(AssertUnwindSafe(|| slot.plugin.on_session_closed(session))) {
                Ok(Ok(())) => {}
                Ok(Err(error)) => telemetry::plugin_failed(slot.plugin.name(), &error.0),
                Err(_) => {
                    telemetry::plugin_failed(slot.plugin.name(), "panicked; plugin disabled");
                    slot.disabled.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Calls every plugin's shutdown hook in reverse order.
    pub fn shutdown(&self) {
        for slot in self.slots.iter().rev() {
            if catch_unwind(AssertUnwindSafe(|| slot.plugin.shutdown())).is_err() {
                telemetry::plugin_failed(slot.plugin.name(), "panicked in shutdown");
            }
        }
    }
}

/// Most bytes of a plugin's refusal text a peer is sent. A plugin (a native one above all) may
/// put anything in its message; what reaches a peer stays bounded.
const MAX_REFUSAL_MESSAGE_BYTES: usize = 256;

/// `refusal` with its message cut to [`MAX_REFUSAL_MESSAGE_BYTES`] at a character boundary.
fn bounded(mut refusal: Refusal) -> Refusal {
    if refusal.message.len() > MAX_REFUSAL_MESSAGE_BYTES {
        let mut end = MAX_REFUSAL_MESSAGE_BYTES;
        while !refusal.message.is_char_boundary(end) {
            end -= 1;
        }
        refusal.message.truncate(end);
        refusal.message.push('…');
    }
    refusal
}

#[cfg(test)]
mod tests {
    use crate::envelope::Envelope;
    use switchboard_plugin_api::{PluginError, RoomView};
    use switchboard_protocol::{DialectKind, Join, JoinMode, Leave, LeaveReason};

    use super::*;

    /// Fails (returns an error) on every event.
    struct Failing;

    impl Plugin for Failing {
        fn name(&self) -> &str {
            "failing"
        }

        fn on_event(&self, _: &EventContext<'_>, d: &mut Decision) -> Result<Verdict, PluginError> {
            d.send(SessionId(9), Event::ServerWillStop);
            Err(PluginError("broken".into()))
        }
    }

    fn run(pipeline: &Pipeline, event: Event) -> Result<(Decision, bool), Refusal> {
        let from = crate::gateway::peer(SessionId(1), DialectKind::Antmedia);
        let cx = EventContext::new(
            from,
            &event,
            RoomView {
                room: "r",
                members: &[],
            },
        );
        pipeline.run(&cx)
    }

    fn join() -> Event {
        Event::Join(Join {
            room: "r".into(),
            mode: JoinMode::Both,
            token: None,
        })
    }

    fn leave() -> Event {
        Event::Leave(Leave {
            room: "r".into(),
            reason: LeaveReason::Leave,
        })
    }

    #[test]
    fn a_failing_plugin_fails_open_under_skip_and_closed_under_refuse() {
        let skip = Pipeline::with_policies(vec![(Box::new(Failing), OnFailure::Skip)]);
        let (decision, stopped) = run(&skip, join()).expect("skip goes on");
        assert!(
            decision.deliveries.is_empty(),
            "the failed call's changes are rolled back"
        );
        assert!(!stopped);

        let refuse = Pipeline::with_policies(vec![(Box::new(Failing), OnFailure::Refuse)]);
        let refusal = run(&refuse, join()).expect_err("refuse refuses");
        assert_eq!(refusal.code, ErrorCode::Internal);
        assert_eq!(refusal.message, FAILED_CLOSED);
        // A leave is never refused: the peer goes whatever a plugin says.
        assert!(run(&refuse, leave()).is_ok());
    }

    #[test]
    fn policy_plugins_default_to_refuse() {
        assert_eq!(OnFailure::default_for("room-policy"), OnFailure::Refuse);
        assert_eq!(OnFailure::default_for("conference"), OnFailure::Refuse);
        assert_eq!(OnFailure::default_for("room-router"), OnFailure::Skip);
    }

    /// Knows why a request went unanswered (or panics when asked, with `panics`).
    struct Knows {
        name: &'static str,
        why: Option<ErrorCode>,
        panics: bool,
    }

    impl Plugin for Knows {
        fn name(&self) -> &str {
            self.name
        }

        fn on_unanswered(&self, _: &EventContext<'_>) -> Option<Refusal> {
            assert!(!self.panics, "a broken hook");
            self.why.map(|code| Refusal::new(code, self.name))
        }
    }

    fn unanswered(pipeline: &Pipeline) -> Option<Refusal> {
        let envelope = Envelope {
            from: crate::gateway::peer(SessionId(1), DialectKind::Antmedia),
            event: join(),
            original: None,
            app: None,
        };
        let cx = envelope.context(RoomView {
            room: "r",
            members: &[],
        });
        pipeline.unanswered(&cx)
    }

    #[test]
    fn the_first_plugin_that_knows_why_nobody_answered_says_so() {
        let knows =
            |name, why, panics| -> Box<dyn Plugin> { Box::new(Knows { name, why, panics }) };
        let pipeline = Pipeline::new(vec![
            knows("silent", None, false),
            knows("broken", None, true),
            knows("first", Some(ErrorCode::MediaUnavailable), false),
            knows("second", Some(ErrorCode::Unsupported), false),
        ]);
        let refusal = unanswered(&pipeline).expect("a plugin knows");
        assert_eq!(
            (refusal.code, refusal.message.as_str()),
            (ErrorCode::MediaUnavailable, "first")
        );
        assert!(
            pipeline.slots[1].is_disabled(),
            "a panicking hook disables its plugin"
        );
        assert_eq!(unanswered(&Pipeline::new(Vec::new())), None);
    }

    #[test]
    fn refusal_texts_are_bounded() {
        let long = Refusal::new(ErrorCode::Refused, "é".repeat(1000));
        let cut = bounded(long);
        assert!(cut.message.len() <= MAX_REFUSAL_MESSAGE_BYTES + '…'.len_utf8());
    }
}
