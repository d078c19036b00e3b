//! The practical limit: a WebSocket relay that pairs connections by request path (so the raw
//! dialect's `/ws/{room}` load works against it unchanged) and forwards every frame to the
//! partner without looking inside. What it costs is WebSocket framing, two socket reads and
//! writes and a channel hop per message: the floor under any signaling server on this machine.
//!
//! Frames sent before the partner connects are queued for it, so clients need no notice that
//! the partner arrived. A connection closing closes its partner.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Frames queued towards one connection.
const QUEUE: usize = 1024;

type Half = (mpsc::Sender<Message>, mpsc::Receiver<Message>);

/// Connections waiting for a partner, by path: what the partner will use (the sender towards
/// the waiting connection and the receiver of what the waiting one sends).
#[derive(Debug, Default)]
struct Waiting(Mutex<HashMap<String, Half>>);

impl Waiting {
    /// This connection's (sender to partner, receiver from partner).
    fn pair(&self, path: String) -> Half {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(half) = map.remove(&path) {
            return half;
        }
        let (to_me, from_partner) = mpsc::channel(QUEUE);
        let (to_partner, from_me) = mpsc::channel(QUEUE);
        map.insert(path, (to_me, from_me));
        (to_partner, from_partner)
    }
}

/// Serves on `bind` (loopback only) until the process ends.
pub async fn serve(bind: SocketAddr) -> anyhow::Result<()> {
    anyhow::ensure!(
        bind.ip().is_loopback(),
        "the limit relay binds loopback addresses only, not {bind}"
    );
    let _ = crate::scenario::idle::raise_nofile(1 << 20);
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("bind {bind}"))?;
    serve_on(listener).await
}

/// Serves on an already bound listener.
pub async fn serve_on(listener: TcpListener) -> anyhow::Result<()> {
    let waiting = Arc::new(Waiting::default());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // Out of file descriptors and the like: keep serving the connections we have.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let waiting = waiting.clone();
        tokio::spawn(async move {
            let _ = connection(stream, &waiting).await;
        });
    }
}

async fn connection(stream: TcpStream, waiting: &Waiting) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut path = String::new();
    let config = WebSocketConfig::default()
        .read_buffer_size(64 * 1024)
        .write_buffer_size(64 * 1024)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20));
    // The callback's signature is tungstenite's (its error type is the HTTP response itself).
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().to_owned();
        Ok(resp)
    };
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    let (to_partner, mut from_partner) = waiting.pair(path);
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        while let Some(msg) = from_partner.recv().await {
            sink.feed(msg).await?;
            while let Ok(more) = from_partner.try_recv() {
                sink.feed(more).await?;
            }
            sink.flush().await?;
        }
        // The partner is gone.
        let _ = sink.close().await;
        anyhow::Ok(())
    });
    while let Some(msg) = stream.next().await {
        let msg = msg?;
        if msg.is_close() {
            break;
        }
        if (msg.is_text() || msg.is_binary()) && to_partner.send(msg).await.is_err() {
            break;
        }
    }
    drop(to_partner);
    writer.abort();
    Ok(())
}
