//! The lock discipline of [`Hub::prepare`] with a catalog whose token read blocks until the
//! test lets it answer (a Redis round trip that does not come back): nothing behind the hub's
//! state lock waits for it, and the token's single use holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use switchboard_plugin_api::SessionId;
use switchboard_plugin_api::event::conference::JoinRoom;
use switchboard_plugin_api::event::{ConferenceCommand, ConferenceRequest, Event};

use crate::hub::{Hub, HubOptions};
use crate::records::{RoomRecord, TokenRecord, TokenType};
use crate::security::{AppSecurityConfig, TokenCheck};
use crate::shared::{SharedCatalog, SharedStream};
use crate::store::StoreError;

use super::prefetch_of;

/// Tokens in memory; `token` waits while `held` is set, and says it is waiting.
#[derive(Debug, Default)]
struct SlowCatalog {
    tokens: Mutex<HashMap<String, TokenRecord>>,
    held: Mutex<bool>,
    released: Condvar,
    waiting: AtomicBool,
}

impl SlowCatalog {
    fn release(&self) {
        *self.held.lock().unwrap() = false;
        self.released.notify_all();
    }
}

impl SharedCatalog for SlowCatalog {
    fn rooms(&self) -> Result<Vec<RoomRecord>, StoreError> {
        Ok(Vec::new())
    }
    fn room(&self, _id: &str) -> Result<Option<RoomRecord>, StoreError> {
        Ok(None)
    }
    fn create_room(&self, _room: &RoomRecord) -> Result<bool, StoreError> {
        Ok(true)
    }
    fn put_room(&self, _room: &RoomRecord) -> Result<(), StoreError> {
        Ok(())
    }
    fn delete_room(&self, _id: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
    fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.tokens
            .lock()
            .unwrap()
            .insert(token.token_id.clone(), token.clone());
        Ok(())
    }
    fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let mut held = self.held.lock().unwrap();
        self.waiting.store(true, Ordering::SeqCst);
        while *held {
            held = self.released.wait(held).unwrap();
        }
        Ok(self.tokens.lock().unwrap().get(id).cloned())
    }
    fn use_token(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.tokens.lock().unwrap().remove(id).is_some())
    }
    fn publish_stream(&self, _room: &str, _key: &str, _stream: &SharedStream) {}
    fn unpublish_stream(&self, _room: &str, _key: &str) {}
    fn remote_streams(&self, _room: &str) -> Result<Vec<SharedStream>, StoreError> {
        Ok(Vec::new())
    }
}

fn token(id: &str, stream: &str) -> TokenRecord {
    TokenRecord {
        token_id: id.into(),
        stream_id: stream.into(),
        expire_date: i64::MAX,
        kind: TokenType::Play,
        room_id: None,
        app: Some("LiveApp".into()),
    }
}

fn join_with(room: &str, token: &str) -> Event {
    Event::Conference(Box::new(ConferenceRequest {
        app: "LiveApp".into(),
        command: ConferenceCommand::JoinRoom(JoinRoom {
            room: room.into(),
            stream_id: None,
            mode: None,
            stream_name: None,
            role: None,
            meta_data: None,
            token: Some(token.into()),
        }),
    }))
}

fn hub(catalog: &Arc<SlowCatalog>) -> Arc<Hub> {
    let app = AppSecurityConfig {
        join_room: TokenCheck::OneTime,
        ..AppSecurityConfig::unchecked("LiveApp")
    };
    Arc::new(Hub::open(
        HubOptions {
            store: None,
            apps: vec![app],
            shared: Some(Arc::clone(catalog) as Arc<dyn SharedCatalog>),
        },
        0,
    ))
}

#[test]
fn a_token_read_that_does_not_come_back_holds_no_state_lock() {
    let catalog = Arc::new(SlowCatalog::default());
    catalog.put_token(&token("t1", "r1")).unwrap();
    *catalog.held.lock().unwrap() = true;
    let hub = hub(&catalog);
    let wanted = prefetch_of(&join_with("r1", "t1"), Some("LiveApp")).expect("a join reads");
    let preparing = {
        let hub = Arc::clone(&hub);
        std::thread::spawn(move || hub.prepare(SessionId(1), &wanted))
    };
    while !catalog.waiting.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    // The read waits; the hub's state is free meanwhile (another thread, so that a lock held
    // across the read fails the test instead of hanging it).
    let (tx, rx) = mpsc::channel();
    {
        let hub = Arc::clone(&hub);
        std::thread::spawn(move || {
            let _ = tx.send(hub.participant_room("s", SessionId(2)));
        });
    }
    let answered = rx.recv_timeout(Duration::from_secs(5));
    catalog.release();
    preparing.join().unwrap();
    assert_eq!(
        answered,
        Ok(None),
        "the state lock was free during the read"
    );
    // The token, good once, was taken for session 1 and only for it.
    assert!(catalog.tokens.lock().unwrap().is_empty());
    assert!(hub.has_claims(SessionId(1)));
    let again = prefetch_of(&join_with("r1", "t1"), Some("LiveApp")).unwrap();
    hub.prepare(SessionId(3), &again);
    assert!(
        !hub.has_claims(SessionId(3)),
        "used once across the cluster"
    );
    // Not used by a decision: written back.
    hub.settle(SessionId(1));
    assert!(!hub.has_claims(SessionId(1)));
    assert!(catalog.tokens.lock().unwrap().contains_key("t1"));
}
