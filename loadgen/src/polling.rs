//! A socket.io client that connects as socket.io-client does with its default options: the
//! engine.io handshake and the namespace connect over HTTP long-polling, then the upgrade to a
//! WebSocket (`2probe` / `3probe` / `5`). After the upgrade the connection is an ordinary
//! engine.io WebSocket, so the scenarios use it like a direct one.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::client::Ws;

/// engine.io v4 separates the packets of one long-polling payload with this byte.
const RECORD_SEPARATOR: char = '\u{1e}';
/// Polls made while waiting for the namespace connect ack before giving up.
const MAX_POLLS: usize = 20;
/// How long one HTTP exchange may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One long-polling engine.io session: its HTTP/1.1 connection and its `sid`.
struct Polling {
    http: http1::SendRequest<Full<Bytes>>,
    host: String,
    query: String,
    sid: String,
}

impl Polling {
    /// One request on the keep-alive connection; the response body as text.
    async fn exchange(&mut self, method: Method, body: &str) -> anyhow::Result<String> {
        let uri = if self.sid.is_empty() {
            format!("/socket.io/?{}", self.query)
        } else {
            format!("/socket.io/?{}&sid={}", self.query, self.sid)
        };
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(Full::new(Bytes::from(body.to_owned())))?;
        let exchange = async {
            self.http.ready().await?;
            let response = self.http.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            let text = String::from_utf8(body.to_vec()).context("polling body is not UTF-8")?;
            if !status.is_success() {
                bail!("polling {status}: {text:.200}");
            }
            anyhow::Ok(text)
        };
        tokio::time::timeout(HTTP_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow!("polling request took longer than {HTTP_TIMEOUT:?}"))?
    }
}

/// Connects over long-polling (`query` is the handshake query without `transport`, e.g.
/// `EIO=4&room=r1`), connects to the namespace, then upgrades to a WebSocket opened on `ws_tcp`.
/// Returns the WebSocket and the packets that arrived on the way, not part of the handshake.
pub async fn connect(
    host: &str,
    query: &str,
    http_tcp: TcpStream,
    ws_tcp: TcpStream,
    ws_config: tokio_tungstenite::tungstenite::protocol::WebSocketConfig,
) -> anyhow::Result<(Ws, VecDeque<String>)> {
    let (http, connection) = http1::handshake(TokioIo::new(http_tcp)).await?;
    // Drives the HTTP connection; ends when `http` is dropped after the upgrade.
    tokio::spawn(connection);
    let mut polling = Polling {
        http,
        host: host.to_owned(),
        query: format!("{query}&transport=polling"),
        sid: String::new(),
    };
    let open = polling.exchange(Method::GET, "").await?;
    polling.sid = sid_of(&open)?;
    let ack = polling.exchange(Method::POST, "40").await?;
    if ack != "ok" {
        bail!("namespace connect POST answered {ack:.80}");
    }
    let mut early = VecDeque::new();
    let mut connected = false;
    for _ in 0..MAX_POLLS {
        for packet in polling
            .exchange(Method::GET, "")
            .await?
            .split(RECORD_SEPARATOR)
        {
            match packet {
                p if p.starts_with("40") => connected = true,
                p if p.starts_with("44") => bail!("socket.io connect refused: {p:.200}"),
                "2" => {
                    polling.exchange(Method::POST, "3").await?;
                }
                p => early.push_back(p.to_owned()),
            }
        }
        if connected {
            break;
        }
    }
    if !connected {
        bail!("no socket.io connect ack within {MAX_POLLS} polls");
    }
    let url = format!(
        "ws://{host}/socket.io/?{query}&transport=websocket&sid={}",
        polling.sid
    );
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url.as_str(), ws_tcp, Some(ws_config))
            .await
            .with_context(|| format!("upgrade {url}"))?;
    ws.send(Message::text("2probe")).await?;
    loop {
        let frame = tokio::time::timeout(HTTP_TIMEOUT, ws.next())
            .await
            .map_err(|_| anyhow!("no 3probe within {HTTP_TIMEOUT:?}"))?;
        match frame {
            Some(Ok(Message::Text(t))) if t.as_str() == "3probe" => break,
            Some(Ok(Message::Text(t))) => early.push_back(t.to_string()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed during the upgrade"),
        }
    }
    ws.send(Message::text("5")).await?;
    Ok((ws, early))
}

/// The `sid` of an engine.io open packet (`0{"sid":"...",...}`).
fn sid_of(open: &str) -> anyhow::Result<String> {
    let json = open
        .split(RECORD_SEPARATOR)
        .next()
        .and_then(|p| p.strip_prefix('0'))
        .ok_or_else(|| anyhow!("expected the engine.io open packet, got {open:.80}"))?;
    let value: serde_json::Value = serde_json::from_str(json)?;
    value["sid"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("open packet without sid: {json:.80}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sid_comes_from_the_open_packet() {
        let open = r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000}"#;
        assert_eq!(sid_of(open).unwrap_or_default(), "abc");
        assert!(sid_of("40").is_err());
    }
}
