//! Ant Media request/reply helpers shared by the tests that speak the Ant dialect.

use std::time::Duration;

use serde_json::{Value, json};

use crate::WsClient;

/// Sends `request` and returns the next message (the reply, where the test expects no other).
pub async fn ask(c: &mut WsClient, request: Value) -> Value {
    c.send_json(request).await;
    c.recv_json().await
}

/// The Ant refusal of a request for `stream` that failed its access check.
pub fn unauthorized(stream: &str) -> Value {
    json!({"command":"error","definition":"unauthorized_access","streamId":stream})
}

/// Asks `request` until its reply has `definition` (at most 50 times, 100 ms apart: a check
/// that needs a fetch, such as a JWKS, may not pass at once); whether it did.
pub async fn ask_until(c: &mut WsClient, request: &Value, definition: &str) -> bool {
    for _ in 0..50 {
        if ask(c, request.clone()).await["definition"] == definition {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The reply to an Ant `join` of `room` with `token`, on a fresh connection to `url`.
pub async fn ant_join(url: &str, room: &str, token: &str) -> Value {
    let mut c = WsClient::connect(url).await;
    let reply = ask(
        &mut c,
        json!({"command":"join","streamId":room,"token":token}),
    )
    .await;
    c.close().await;
    reply
}

/// A connection to `url` that joined conference room `room` with `token` (`joinRoom`); a
/// refused join fails the test.
pub async fn conference_member(url: &str, room: &str, token: &str) -> WsClient {
    let mut member = WsClient::connect(url).await;
    let joined = ask(
        &mut member,
        json!({"command":"joinRoom","room":room,"token":token}),
    )
    .await;
    assert_eq!(joined["definition"], "joinedTheRoom", "{joined}");
    member
}

/// The reply to a tokenless Ant P2P `join` of `room` (mode `both`) on a fresh connection to
/// `url`, and that connection.
pub async fn tokenless_p2p_join(url: &str, room: &str) -> (WsClient, Value) {
    let mut p2p = WsClient::connect(url).await;
    let reply = ask(
        &mut p2p,
        json!({"command":"join","streamId":room,"mode":"both"}),
    )
    .await;
    (p2p, reply)
}

/// Two Ant P2P peers joined in `room` on the gateway at `addr` (`/LiveApp/websocket`), A told
/// to start: an established call for the abuse tests to check during and after a flood.
pub async fn ant_call(addr: std::net::SocketAddr, room: &str) -> (WsClient, WsClient) {
    let url = format!("ws://{addr}/LiveApp/websocket");
    let join = json!({"command":"join","streamId":room,"mode":"both"});
    let mut a = WsClient::connect(&url).await;
    a.send_json(join.clone()).await;
    assert_eq!(crate::field(&a.recv_json().await, "definition"), "joined");
    let mut b = WsClient::connect(&url).await;
    b.send_json(join).await;
    assert_eq!(crate::field(&b.recv_json().await, "definition"), "joined");
    assert_eq!(crate::field(&a.recv_json().await, "command"), "start");
    (a, b)
}
