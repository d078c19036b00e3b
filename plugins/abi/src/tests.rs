#![allow(clippy::unwrap_used)]

use serde_json::json;
use switchboard_plugin_api::event::{DialectKind, ErrorCode, JoinMode, RoomNotice};
use switchboard_plugin_api::{Payload, Plugin, PluginFactory, Refusal, SessionId};

use super::*;

#[test]
fn wire_shapes_are_the_documented_ones() {
    let mut decision = Decision::default();
    decision.deliver(SessionId(2), Payload::Relay);
    decision.send(SessionId(1), Event::Start(RoomNotice { room: "r".into() }));
    let reply = EventReply::ok(
        Verdict::Refuse(Refusal::new(ErrorCode::RoomFull, "full")),
        decision.clone(),
    );
    assert_eq!(
        serde_json::to_value(&reply).unwrap(),
        json!({
            "verdict": {"refuse": {"code": "room_full", "message": "full"}},
            "decision": {"deliveries": [
                {"to": 2, "payload": "relay"},
                {"to": 1, "payload": {"event": {"event": "start", "room": "r"}}},
            ]},
        })
    );
    assert_eq!(serde_json::to_value(Verdict::Stop).unwrap(), json!("stop"));
    let back: EventReply = serde_json::from_value(serde_json::to_value(&reply).unwrap()).unwrap();
    assert_eq!(back, reply);
    assert_eq!(
        serde_json::to_value(CreateReply::Ok(Created {
            name: "x".into(),
            handle: 3
        }))
        .unwrap(),
        json!({"ok": {"name": "x", "handle": 3}})
    );
}

#[test]
fn replies_must_be_a_result_or_an_error() {
    let garbage: EventReply = serde_json::from_str("{}").unwrap();
    assert!(matches!(
        garbage.into_result(),
        Err(ReplyError::Malformed(_))
    ));
    assert!(serde_json::from_str::<EventReply>(r#"{"verdict":"go"}"#).is_err());
    assert_eq!(
        EventReply::error("x").into_result(),
        Err(ReplyError::Failed("x".into()))
    );
}

#[test]
fn event_input_round_trips_from_borrowed_to_owned() {
    let from = Peer {
        session: SessionId(7),
        dialect: DialectKind::Raw,
        mode: JoinMode::Both,
    };
    let event = Event::notice(Event::Left, "r");
    let members = [from];
    let cx = EventContext {
        app: Some("LiveApp"),
        ..EventContext::new(
            from,
            &event,
            RoomView {
                room: "r",
                members: &members,
            },
        )
    };
    let decision = Decision::default();
    let text = serde_json::to_string(&EventInput::new(&cx, &decision)).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        json!({
            "envelope": {
                "from": {"session": 7, "dialect": "raw", "mode": "both"},
                "event": {"event": "left", "room": "r"},
                "app": "LiveApp",
            },
            "room": {"room": "r", "members": [{"session": 7, "dialect": "raw", "mode": "both"}]},
            "decision": {"deliveries": []},
        })
    );
    let owned: EventInput<'static> = serde_json::from_str(&text).unwrap();
    let back = owned.context();
    assert_eq!(back.room.members, &members);
    assert_eq!(back.event, &event);
    assert_eq!(back.app, Some("LiveApp"));
    assert_eq!(back.from, from);
}

#[test]
fn hook_replies_are_ok_or_an_error() {
    assert_eq!(serde_json::to_value(HookReply::Ok).unwrap(), json!("ok"));
    assert_eq!(
        serde_json::to_value(HookReply::Error("x".into())).unwrap(),
        json!({"error": "x"})
    );
    assert!(serde_json::from_str::<HookReply>(r#"{"ok":1}"#).is_err());
}

mod outbox {
    //! The plugin side of `start`, against a host outbox written here: deliveries reach the
    //! host as event JSON, and the context is released exactly once.

    use std::ffi::c_void;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use switchboard_plugin_api::{Outbox, PluginError, SettingsError};

    use super::*;

    /// What the test host saw: deliveries (session, event JSON) and releases.
    #[derive(Default)]
    struct Host {
        delivered: Mutex<Vec<(u64, serde_json::Value)>>,
        released: AtomicUsize,
    }

    unsafe extern "C-unwind" fn deliver(
        context: *const c_void,
        to: u64,
        event: *const u8,
        len: usize,
    ) -> u32 {
        // SAFETY: `context` is the `Host` the test keeps alive; the event buffer is valid for
        // the call.
        let (host, bytes) = unsafe {
            (
                &*context.cast::<Host>(),
                std::slice::from_raw_parts(event, len),
            )
        };
        let event: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        host.delivered.lock().unwrap().push((to, event));
        if to == 404 {
            delivery::NO_SESSION
        } else {
            delivery::DELIVERED
        }
    }

    unsafe extern "C-unwind" fn release(context: *const c_void) {
        // SAFETY: as in `deliver`.
        let host = unsafe { &*context.cast::<Host>() };
        host.released.fetch_add(1, Ordering::SeqCst);
    }

    /// Delivers two events from `start`, then keeps the outbox or fails.
    struct Starter {
        fail: bool,
        kept: Mutex<Option<Outbox>>,
    }

    impl Plugin for Starter {
        fn name(&self) -> &str {
            "starter"
        }

        fn start(&self, outbox: Outbox) -> Result<(), PluginError> {
            assert!(outbox.deliver(SessionId(3), Event::notice(Event::Start, "r")));
            assert!(!outbox.deliver(SessionId(404), Event::ServerWillStop));
            if self.fail {
                return Err(PluginError("no".into()));
            }
            *self.kept.lock().unwrap() = Some(outbox);
            Ok(())
        }

        fn on_session_closed(&self, session: SessionId) -> Result<(), PluginError> {
            if session.0 == 13 {
                panic!("unlucky session");
            }
            self.kept.lock().unwrap().take();
            Ok(())
        }
    }

    struct StarterFactory(bool);

    impl PluginFactory for StarterFactory {
        fn type_name(&self) -> &'static str {
            "starter"
        }

        fn build(&self, _: &toml::Table) -> Result<Box<dyn Plugin>, Vec<SettingsError>> {
            Ok(Box::new(Starter {
                fail: self.0,
                kept: Mutex::default(),
            }))
        }
    }

    /// Calls an export returning a reply buffer and decodes the reply.
    fn reply<T: serde::de::DeserializeOwned>(f: impl FnOnce(*mut usize) -> *mut u8) -> T {
        let mut len = 0;
        let ptr = f(&mut len);
        // SAFETY: the export returned `len` bytes at `ptr`, freed once below.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec();
        // SAFETY: as above.
        unsafe { export::free(ptr, len) };
        serde_json::from_slice(&bytes).unwrap()
    }

    fn create(fail: bool) -> u64 {
        let settings = b"{}";
        // SAFETY: a valid settings buffer and a local `out_len`.
        let created: CreateReply = reply(|out| unsafe {
            export::create(
                &StarterFactory(fail),
                settings.as_ptr(),
                settings.len(),
                out,
            )
        });
        match created {
            CreateReply::Ok(created) => created.handle,
            other => panic!("{other:?}"),
        }
    }

    fn host_outbox(host: &Host) -> HostOutbox {
        HostOutbox {
            context: std::ptr::from_ref(host).cast(),
            deliver,
            release,
        }
    }

    #[test]
    fn start_delivers_through_the_host_and_releases_once() {
        let host = Host::default();
        let handle = create(false);
        // SAFETY: `host` outlives every use of the outbox (released below, checked).
        let started: HookReply =
            reply(|out| unsafe { export::start(handle, host_outbox(&host), out) });
        assert_eq!(started, HookReply::Ok);
        assert_eq!(
            *host.delivered.lock().unwrap(),
            [
                (3, json!({"event": "start", "room": "r"})),
                (404, json!({"event": "server_will_stop"})),
            ]
        );
        assert_eq!(
            host.released.load(Ordering::SeqCst),
            0,
            "the plugin kept it"
        );
        // SAFETY: a local `out_len`.
        let closed: HookReply = reply(|out| unsafe { export::on_session_closed(handle, 3, out) });
        assert_eq!(closed, HookReply::Ok);
        assert_eq!(host.released.load(Ordering::SeqCst), 1, "dropped, released");
        // SAFETY: a local `out_len`.
        let panicked: HookReply =
            reply(|out| unsafe { export::on_session_closed(handle, 13, out) });
        assert_eq!(
            panicked,
            HookReply::Error("plugin panicked: unlucky session".into())
        );
        export::destroy(handle);
        assert_eq!(host.released.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failed_start_or_a_missing_instance_still_releases() {
        let host = Host::default();
        let handle = create(true);
        // SAFETY: `host` outlives every use of the outbox.
        let failed: HookReply =
            reply(|out| unsafe { export::start(handle, host_outbox(&host), out) });
        assert_eq!(failed, HookReply::Error("no".into()));
        assert_eq!(host.released.load(Ordering::SeqCst), 1);
        export::destroy(handle);
        // SAFETY: as above.
        let missing: HookReply =
            reply(|out| unsafe { export::start(handle, host_outbox(&host), out) });
        assert!(matches!(missing, HookReply::Error(e) if e.contains("no plugin instance")));
        assert_eq!(host.released.load(Ordering::SeqCst), 2);
    }
}
