//! The three dialects as real clients speak them: connecting (engine.io v4 handshake for
//! socket.io), the frames each client sends, and reading what the server sends back.
//!
//! - Ant Media: `ws://HOST/LiveApp/websocket?target=origin`, `join`, `getIceServerConfig`,
//!   `ping`, `takeConfiguration`, `takeCandidate`, exactly as `@antmedia/webrtc_adaptor` writes
//!   them (`docs/protocol/antmedia.md` 2).
//! - socket.io: `ws://HOST/socket.io/?EIO=4&transport=websocket&room=R`; `0{..}` open, `40`
//!   connect, `40{"sid"}` ack, ping `2` answered with `3`, `42["msg","<SimpleP2P JSON string>"]`.
//! - raw: `ws://HOST/ws/{room}`, simple-peer's signal objects.
//! - PeerJS: `ws://HOST/peerjs?key=peerjs&id=ID&token=…&version=1.5.5`, `OPEN` back, then the
//!   `peerjs` 1.5 client's `OFFER`/`ANSWER`/`CANDIDATE` to the partner's id. Pair `R`'s sides
//!   are ids `R-a` and `R-b` ([`peerjs_id`]), which the `peer` server and Switchboard both serve.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::sdp::{self, Kind, Tag};
use crate::shapes;

/// A client WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// How long connecting (TCP, WebSocket and socket.io handshakes) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long one write may wait for the server to read.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a socket write, failing after [`WRITE_TIMEOUT`] (a server that stops reading must not
/// hang the load generator).
pub async fn bounded<E: Into<anyhow::Error>>(
    write: impl Future<Output = Result<(), E>>,
) -> anyhow::Result<()> {
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .map_err(|_| anyhow!("the server did not read for {WRITE_TIMEOUT:?}"))?
        .map_err(Into::into)
}

/// A signaling dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Ant Media JSON commands.
    Ant,
    /// socket.io `msg` events (SimpleP2P).
    Socketio,
    /// Raw WebSocket JSON (simple-peer signals).
    Raw,
    /// The PeerJS server protocol (`peerjs` 1.5 client messages).
    Peerjs,
}

impl Dialect {
    /// The three dialects of the room model (a storm's `all` mix); PeerJS pairs call each
    /// other by id and are run on their own.
    pub const ALL: [Dialect; 3] = [Dialect::Ant, Dialect::Socketio, Dialect::Raw];

    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Ant => "ant",
            Dialect::Socketio => "socketio",
            Dialect::Raw => "raw",
            Dialect::Peerjs => "peerjs",
        }
    }

    /// Parses `ant`, `socketio`, `raw` or `peerjs`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "ant" | "antmedia" => Dialect::Ant,
            "socketio" | "sio" => Dialect::Socketio,
            "raw" => Dialect::Raw,
            "peerjs" => Dialect::Peerjs,
            other => bail!("unknown dialect `{other}` (ant, socketio, raw, peerjs)"),
        })
    }
}

/// What kind of server the target is; it decides how a client knows it is in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    /// The Switchboard gateway: every dialect, notices, the room router.
    Switchboard,
    /// The node relay (`bench/node-relay/app.js`): socket.io only, no notices.
    Node,
    /// The no-parse relay (`switchboard-loadgen limit-relay`): raw URL shape, no notices.
    Limit,
    /// The `peer` server (npm), PeerJS's own: PeerJS only.
    Peer,
}

impl Server {
    /// Parses `switchboard`, `node` or `limit`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "switchboard" | "sb" => Server::Switchboard,
            "node" => Server::Node,
            "limit" => Server::Limit,
            "peer" => Server::Peer,
            other => bail!("unknown server kind `{other}` (switchboard, node, limit, peer)"),
        })
    }

    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Server::Switchboard => "switchboard",
            Server::Node => "node",
            Server::Limit => "limit",
            Server::Peer => "peer",
        }
    }

    /// Whether `dialect` can be spoken to this server.
    pub fn speaks(self, dialect: Dialect) -> bool {
        match self {
            Server::Switchboard => true,
            Server::Node => dialect == Dialect::Socketio,
            Server::Limit => dialect == Dialect::Raw,
            Server::Peer => dialect == Dialect::Peerjs,
        }
    }
}

/// Where the load goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's address; loopback only.
    pub addr: SocketAddr,
    /// What the server is.
    pub server: Server,
    /// Client sockets are bound to 127.0.0.1 ..= 127.0.0.`sources` in turn, so that many
    /// sessions do not exhaust one source address's ephemeral ports.
    pub sources: u8,
    /// Where side B of each pair connects (another node of a cluster); `None`: `addr`.
    pub addr_b: Option<SocketAddr>,
    /// socket.io clients connect as socket.io-client does by default: long-polling first,
    /// then the upgrade ([`crate::polling`]); otherwise straight to a WebSocket.
    pub sio_polling: bool,
}

impl Target {
    /// A target at `addr`, which must be a loopback address (127.0.0.0/8 or ::1).
    pub fn new(addr: SocketAddr, server: Server) -> anyhow::Result<Self> {
        if !addr.ip().is_loopback() {
            bail!("refusing target {addr}: the load generator only targets loopback addresses");
        }
        Ok(Self {
            addr,
            server,
            sources: 1,
            addr_b: None,
            sio_polling: false,
        })
    }

    /// Sends side B of every pair to `addr` (a second node of a cluster); loopback only.
    pub fn with_addr_b(mut self, addr: Option<SocketAddr>) -> anyhow::Result<Self> {
        if let Some(addr) = addr
            && !addr.ip().is_loopback()
        {
            bail!("refusing target {addr}: the load generator only targets loopback addresses");
        }
        self.addr_b = addr;
        Ok(self)
    }

    /// The target side B of a pair connects to.
    pub fn side_b(&self) -> Self {
        Self {
            addr: self.addr_b.unwrap_or(self.addr),
            ..self.clone()
        }
    }

    /// socket.io clients connect over long-polling first, then upgrade (when `polling`).
    pub fn with_sio_polling(mut self, polling: bool) -> Self {
        self.sio_polling = polling;
        self
    }

    /// Uses `n` (1..=254) source addresses.
    pub fn with_sources(mut self, n: u8) -> Self {
        self.sources = n.clamp(1, 254);
        self
    }

    /// The URL a client of `dialect` opens for `room` (for PeerJS: its own id).
    pub fn url(&self, dialect: Dialect, room: &str) -> String {
        let addr = self.addr;
        match dialect {
            Dialect::Ant => format!("ws://{addr}/LiveApp/websocket?target=origin"),
            Dialect::Socketio => {
                format!("ws://{addr}/socket.io/?EIO=4&transport=websocket&room={room}")
            }
            Dialect::Raw => format!("ws://{addr}/ws/{room}"),
            Dialect::Peerjs => {
                format!("ws://{addr}/peerjs?key=peerjs&id={room}&token=lg{room}&version=1.5.5")
            }
        }
    }

    fn source(&self, index: u64) -> Option<IpAddr> {
        if !self.addr.is_ipv4() {
            return None;
        }
        let last = 1 + (index % u64::from(self.sources)) as u8;
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
    }
}

/// A connected client: transport handshakes done (for socket.io, through the `40` ack).
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub ws: Ws,
    /// Its dialect.
    pub dialect: Dialect,
    /// Its room (Ant stream id; for PeerJS the pair's room, its ids being [`peerjs_id`]).
    pub room: String,
    /// Frames that arrived during the handshake and were not part of it.
    pub early: VecDeque<String>,
}

/// WebSocket settings for load clients: `small` for idle sessions (tens of thousands of them).
pub fn ws_config(small: bool) -> WebSocketConfig {
    let read = if small { 4 * 1024 } else { 64 * 1024 };
    WebSocketConfig::default()
        .read_buffer_size(read)
        .write_buffer_size(if small { 0 } else { 64 * 1024 })
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Opens a TCP connection from the `index`-th source address.
async fn tcp(target: &Target, index: u64) -> anyhow::Result<TcpStream> {
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = target.source(index) {
        // SO_REUSEADDR lets bind() take a port whose old connection is still in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("bind {ip}"))?;
    }
    let stream = socket
        .connect(target.addr)
        .await
        .with_context(|| format!("connect {}", target.addr))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Conn {
    /// Connects a `dialect` client for `room`, the `index`-th connection of the run (side A
    /// of its pair: the PeerJS id matters).
    pub async fn connect(
        target: &Target,
        dialect: Dialect,
        room: &str,
        index: u64,
        small: bool,
    ) -> anyhow::Result<Conn> {
        Self::connect_side(target, dialect, room, 0, index, small).await
    }

    /// [`Conn::connect`] for side `side` (0: A, 1: B) of pair `room`.
    pub async fn connect_side(
        target: &Target,
        dialect: Dialect,
        room: &str,
        side: u8,
        index: u64,
        small: bool,
    ) -> anyhow::Result<Conn> {
        tokio::time::timeout(
            CONNECT_TIMEOUT,
            Self::connect_inner(target, dialect, room, side, index, small),
        )
        .await
        .map_err(|_| anyhow!("connecting took longer than {CONNECT_TIMEOUT:?}"))?
    }

    async fn connect_inner(
        target: &Target,
        dialect: Dialect,
        room: &str,
        side: u8,
        index: u64,
        small: bool,
    ) -> anyhow::Result<Conn> {
        let stream = tcp(target, index).await?;
        if dialect == Dialect::Socketio && target.sio_polling {
            let ws_stream = tcp(target, index).await?;
            let host = target.addr.to_string();
            let query = format!("EIO=4&room={room}");
            let (ws, early) =
                crate::polling::connect(&host, &query, stream, ws_stream, ws_config(small)).await?;
            return Ok(Conn {
                ws,
                dialect,
                room: room.to_owned(),
                early,
            });
        }
        let url = match dialect {
            Dialect::Peerjs => target.url(dialect, &peerjs_id(room, side)),
            _ => target.url(dialect, room),
        };
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            url.as_str(),
            stream,
            Some(ws_config(small)),
        )
        .await
        .with_context(|| format!("websocket handshake {url}"))?;
        let mut conn = Conn {
            ws,
            dialect,
            room: room.to_owned(),
            early: VecDeque::new(),
        };
        if dialect == Dialect::Socketio {
            conn.engine_io_handshake().await?;
        }
        Ok(conn)
    }

    /// `0{..}` from the server, `40` from us, `40{"sid"}` back (or `44{..}`: refused).
    async fn engine_io_handshake(&mut self) -> anyhow::Result<()> {
        let open = self
            .next_text()
            .await?
            .ok_or_else(|| anyhow!("closed before open"))?;
        if !open.starts_with("0{") {
            bail!("expected the engine.io open packet, got {open:.80}");
        }
        bounded(self.ws.send(Message::text("40"))).await?;
        loop {
            let text = self
                .next_text()
                .await?
                .ok_or_else(|| anyhow!("closed before the socket.io connect ack"))?;
            if text.starts_with("40") {
                return Ok(());
            }
            if let Some(error) = text.strip_prefix("44") {
                bail!("socket.io connect refused: {error:.200}");
            }
            if text == "2" {
                bounded(self.ws.send(Message::text("3"))).await?;
                continue;
            }
            self.early.push_back(text);
        }
    }

    /// The next text frame (`None` when the server closed), handshake leftovers first.
    pub async fn next_text(&mut self) -> anyhow::Result<Option<String>> {
        if let Some(text) = self.early.pop_front() {
            return Ok(Some(text));
        }
        loop {
            match self.ws.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(t))) => return Ok(Some(t.to_string())),
                Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Sends one text frame (failing if the server does not take it within [`WRITE_TIMEOUT`]).
    pub async fn send(&mut self, text: String) -> anyhow::Result<()> {
        bounded(self.ws.send(Message::text(text))).await
    }

    /// Joins the room as the dialect's client does and waits until the server says it is in
    /// (Ant `joined`; raw `switchboard.joined` on Switchboard; socket.io: the connect ack, already
    /// received). Frames other than the acknowledgement are kept for the caller.
    pub async fn join(&mut self, server: Server) -> anyhow::Result<()> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.join_inner(server))
            .await
            .map_err(|_| anyhow!("no join acknowledgement within {CONNECT_TIMEOUT:?}"))?
    }

    async fn join_inner(&mut self, server: Server) -> anyhow::Result<()> {
        let wait = match (self.dialect, server) {
            (Dialect::Ant, _) => {
                self.send(ant_join(&self.room)).await?;
                true
            }
            (Dialect::Raw, Server::Switchboard) | (Dialect::Peerjs, _) => true,
            _ => false,
        };
        if !wait {
            return Ok(());
        }
        let mut kept = VecDeque::new();
        let result = loop {
            let Some(text) = self.next_text().await? else {
                break Err(anyhow!("closed before the join was acknowledged"));
            };
            match parse(self.dialect, &self.room, &text) {
                Ok(Inbound::Joined) => break Ok(()),
                Ok(Inbound::Error(e)) => break Err(anyhow!("join refused: {e}")),
                _ => kept.push_back(text),
            }
        };
        kept.append(&mut self.early);
        self.early = kept;
        result
    }
}

// === outbound frames ===

/// Ant `join` as the SDK sends it.
pub fn ant_join(room: &str) -> String {
    shapes::text(&shapes::AntJoin {
        command: "join",
        stream_id: room,
        multi_peer: false,
        mode: "both",
    })
}

/// The PeerJS id of side `side` (0: A, 1: B) of pair `room`.
pub fn peerjs_id(room: &str, side: u8) -> String {
    format!("{room}-{}", if side == 0 { 'a' } else { 'b' })
}

/// The `connectionId` of every load call (the client's `mc_` and a random token).
const PEERJS_CONNECTION: &str = "mc_lg0load0call";

/// Ant keep-alive, every 3 s from the SDK.
pub const ANT_PING: &str = r#"{"command":"ping"}"#;
/// Sent by the SDK on every connect when the page gave no ICE servers.
pub const ANT_ICE_REQUEST: &str = r#"{"command":"getIceServerConfig"}"#;
/// engine.io pong.
pub const EIO_PONG: &str = "3";

/// One tagged signal in `dialect`: an offer or answer (Chrome SDP), or the `n`-th candidate of
/// the sender (`offerer` picks the candidate shapes and ufrag).
pub fn signal_frame(
    dialect: Dialect,
    room: &str,
    kind: Kind,
    n: u64,
    offerer: bool,
    tag: &Tag,
) -> String {
    match kind {
        Kind::Offer | Kind::Answer => {
            let (ty, body) = if kind == Kind::Offer {
                ("offer", sdp::offer(tag))
            } else {
                ("answer", sdp::answer(tag))
            };
            let description = shapes::Description {
                kind: ty,
                sdp: &body,
            };
            match dialect {
                Dialect::Ant => shapes::text(&shapes::AntConfiguration {
                    command: "takeConfiguration",
                    stream_id: room,
                    kind: ty,
                    sdp: &body,
                }),
                Dialect::Raw => shapes::text(&description),
                Dialect::Socketio => {
                    sio_msg(&shapes::text(&shapes::SioDescription { sdp: description }))
                }
                Dialect::Peerjs => shapes::text(&shapes::PeerjsMessage {
                    kind: if kind == Kind::Offer {
                        "OFFER"
                    } else {
                        "ANSWER"
                    },
                    payload: shapes::PeerjsSdpPayload {
                        sdp: shapes::PeerjsSdp {
                            sdp: &body,
                            kind: ty,
                        },
                        kind: "media",
                        connection_id: PEERJS_CONNECTION,
                    },
                    dst: &peerjs_partner(room, offerer),
                }),
            }
        }
        Kind::Candidate => {
            let (candidate, mline, mid) = sdp::candidate(n, offerer, tag);
            match dialect {
                Dialect::Ant => shapes::text(&shapes::AntCandidate {
                    command: "takeCandidate",
                    stream_id: room,
                    label: mline,
                    id: &mid,
                    candidate: &candidate,
                }),
                Dialect::Raw => shapes::text(&shapes::RawCandidate {
                    kind: "candidate",
                    candidate: shapes::SimplePeerCandidate {
                        candidate: &candidate,
                        sdp_mline_index: mline,
                        sdp_mid: &mid,
                    },
                }),
                Dialect::Socketio => sio_msg(&shapes::text(&shapes::SioCandidate {
                    candidate: shapes::IceCandidate {
                        candidate: &candidate,
                        sdp_mid: &mid,
                        sdp_mline_index: mline,
                        username_fragment: sdp::ufrag(offerer),
                    },
                })),
                Dialect::Peerjs => shapes::text(&shapes::PeerjsMessage {
                    kind: "CANDIDATE",
                    payload: shapes::PeerjsCandidatePayload {
                        candidate: shapes::IceCandidate {
                            candidate: &candidate,
                            sdp_mid: &mid,
                            sdp_mline_index: mline,
                            username_fragment: sdp::ufrag(offerer),
                        },
                        kind: "media",
                        connection_id: PEERJS_CONNECTION,
                    },
                    dst: &peerjs_partner(room, offerer),
                }),
            }
        }
    }
}

/// The id a PeerJS side of pair `room` sends to: the offerer is side A, its partner side B.
fn peerjs_partner(room: &str, offerer: bool) -> String {
    peerjs_id(room, u8::from(offerer))
}

/// A signal frame with its tag cut out, so that a sender under load pays for the tag alone:
/// `head + tag + tail` is byte-for-byte what [`signal_frame`] builds for that tag. Building the
/// JSON (and, for socket.io, escaping it twice) for every message took most of the load
/// generator's CPU, which it shares with the server under test.
#[derive(Debug, Clone)]
pub struct FrameTemplate {
    head: String,
    tail: String,
}

impl FrameTemplate {
    /// The template of `signal_frame(dialect, room, kind, n, offerer, _)`.
    pub fn new(dialect: Dialect, room: &str, kind: Kind, n: u64, offerer: bool) -> Self {
        // No other number in a frame is this long, so the marker occurs once: where the tag goes
        // (a tag is digits and dots, which no JSON encoding escapes).
        const MARKER: Tag = Tag {
            pair: u32::MAX,
            side: u8::MAX,
            seq: u64::MAX,
            sent_ns: u64::MAX,
        };
        let frame = signal_frame(dialect, room, kind, n, offerer, &MARKER);
        let marker = MARKER.render();
        let (head, tail) = frame.split_once(&marker).unwrap_or((frame.as_str(), ""));
        FrameTemplate {
            head: head.to_owned(),
            tail: tail.to_owned(),
        }
    }

    /// The frame carrying `tag`.
    pub fn render(&self, tag: &Tag) -> String {
        let mut frame = String::with_capacity(self.head.len() + self.tail.len() + 48);
        frame.push_str(&self.head);
        tag.write_to(&mut frame);
        frame.push_str(&self.tail);
        frame
    }
}

/// `42["msg","<inner>"]`: the SimpleP2P page's `socket.emit('msg', JSON.stringify(..))`.
pub fn sio_msg(inner: &str) -> String {
    let mut frame = String::with_capacity(inner.len() + inner.len() / 8 + 16);
    frame.push_str("42[\"msg\",");
    frame.push_str(&Value::String(inner.to_owned()).to_string());
    frame.push(']');
    frame
}

// === inbound frames ===

/// What a server frame means to a load client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A peer's tagged offer, answer or candidate, well-formed for this dialect.
    Signal {
        /// What it is.
        kind: Kind,
        /// Its tag.
        tag: Tag,
    },
    /// In the room (Ant `joined`, raw `switchboard.joined`, socket.io `switchboard` joined).
    Joined,
    /// Make the offer (Ant `start`, raw `switchboard.start`, socket.io `switchboard` start).
    Start,
    /// A partner arrived and will offer.
    PeerJoined,
    /// The partner left (Ant `stop`).
    PeerLeft,
    /// Ant `pong`.
    Pong,
    /// Ant `iceServerConfig` or raw `switchboard.ice-servers`.
    IceServers,
    /// An error notice.
    Error(String),
    /// engine.io ping: answer `3`.
    EioPing,
    /// Anything else.
    Other,
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no string `{key}`"))
}

fn tagged(kind: Kind, text: &str) -> Result<Inbound, String> {
    let (tag, in_sdp) = sdp::find_tag(text).ok_or("a peer signal without a load tag")?;
    if in_sdp != kind.is_sdp() {
        return Err("tag in the wrong place".into());
    }
    Ok(Inbound::Signal { kind, tag })
}

fn sdp_kind(ty: &str) -> Result<Kind, String> {
    match ty {
        "offer" => Ok(Kind::Offer),
        "answer" => Ok(Kind::Answer),
        other => Err(format!("unexpected SDP type `{other}`")),
    }
}

/// Parses and checks a server frame fully (every field a real client reads). `Err` means the
/// frame is malformed for the dialect (a correctness failure).
pub fn parse(dialect: Dialect, room: &str, text: &str) -> Result<Inbound, String> {
    match dialect {
        Dialect::Ant => parse_ant(room, text),
        Dialect::Raw => parse_raw(text),
        Dialect::Socketio => parse_sio(text),
        Dialect::Peerjs => parse_peerjs(text),
    }
}

fn parse_peerjs(text: &str) -> Result<Inbound, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let ty = str_field(&v, "type")?;
    let payload = || v.get("payload").ok_or("no payload");
    Ok(match ty {
        "OFFER" | "ANSWER" => {
            str_field(&v, "src")?;
            let p = payload()?;
            if str_field(p, "connectionId")?.is_empty() {
                return Err("empty connectionId".into());
            }
            let desc = p.get("sdp").ok_or("payload without sdp")?;
            return tagged(sdp_kind(str_field(desc, "type")?)?, str_field(desc, "sdp")?);
        }
        "CANDIDATE" => {
            str_field(&v, "src")?;
            let c = payload()?
                .get("candidate")
                .ok_or("payload without candidate")?;
            if !c.get("sdpMLineIndex").is_some_and(Value::is_u64) {
                return Err("sdpMLineIndex is not a number".into());
            }
            return tagged(Kind::Candidate, str_field(c, "candidate")?);
        }
        "OPEN" => Inbound::Joined,
        "LEAVE" => Inbound::PeerLeft,
        "HEARTBEAT" => Inbound::Other,
        "ERROR" | "ID-TAKEN" | "EXPIRE" | "INVALID-KEY" => Inbound::Error(format!(
            "{ty}: {}",
            v.get("payload").map(Value::to_string).unwrap_or_default()
        )),
        _ => Inbound::Other,
    })
}

fn parse_ant(room: &str, text: &str) -> Result<Inbound, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let command = str_field(&v, "command")?;
    let same_room = || match str_field(&v, "streamId") {
        Ok(id) if id == room => Ok(()),
        Ok(id) => Err(format!("streamId `{id}`, expected `{room}`")),
        Err(e) => Err(e),
    };
    Ok(match command {
        "takeConfiguration" => {
            same_room()?;
            let kind = sdp_kind(str_field(&v, "type")?)?;
            if !v.get("idMapping").is_some_and(Value::is_object) {
                return Err("takeConfiguration without an idMapping object".into());
            }
            return tagged(kind, str_field(&v, "sdp")?);
        }
        "takeCandidate" => {
            same_room()?;
            if !v.get("label").is_some_and(Value::is_u64) {
                return Err("takeCandidate label is not a number".into());
            }
            str_field(&v, "id")?;
            return tagged(Kind::Candidate, str_field(&v, "candidate")?);
        }
        "notification" => match str_field(&v, "definition")? {
            "joined" => {
                same_room()?;
                Inbound::Joined
            }
            _ => Inbound::Other,
        },
        "start" => {
            same_room()?;
            Inbound::Start
        }
        "stop" => Inbound::PeerLeft,
        "pong" => Inbound::Pong,
        "iceServerConfig" => Inbound::IceServers,
        "error" => Inbound::Error(str_field(&v, "definition")?.to_owned()),
        _ => Inbound::Other,
    })
}

fn parse_raw(text: &str) -> Result<Inbound, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let ty = str_field(&v, "type")?;
    Ok(match ty {
        "offer" | "answer" => return tagged(sdp_kind(ty)?, str_field(&v, "sdp")?),
        "candidate" => {
            let c = v
                .get("candidate")
                .ok_or("candidate signal without candidate")?;
            if !c.get("sdpMLineIndex").is_some_and(Value::is_u64) {
                return Err("sdpMLineIndex is not a number".into());
            }
            return tagged(Kind::Candidate, str_field(c, "candidate")?);
        }
        "switchboard.joined" => Inbound::Joined,
        "switchboard.start" => Inbound::Start,
        "switchboard.peer-joined" => Inbound::PeerJoined,
        "switchboard.peer-left" => Inbound::PeerLeft,
        "switchboard.ice-servers" => Inbound::IceServers,
        "switchboard.error" => Inbound::Error(str_field(&v, "code")?.to_owned()),
        _ => Inbound::Other,
    })
}

fn parse_sio(text: &str) -> Result<Inbound, String> {
    if text == "2" {
        return Ok(Inbound::EioPing);
    }
    let Some(body) = text.strip_prefix("42") else {
        return Ok(Inbound::Other);
    };
    let v: Value = serde_json::from_str(body).map_err(|e| format!("event not JSON: {e}"))?;
    let event = v
        .get(0)
        .and_then(Value::as_str)
        .ok_or("event without a name")?;
    match event {
        "msg" => {
            // The SimpleP2P page does JSON.parse(msg): the argument must be a string.
            let inner = v
                .get(1)
                .and_then(Value::as_str)
                .ok_or("msg argument is not a string")?;
            let m: Value =
                serde_json::from_str(inner).map_err(|e| format!("msg string not JSON: {e}"))?;
            if let Some(desc) = m.get("sdp") {
                tagged(sdp_kind(str_field(desc, "type")?)?, str_field(desc, "sdp")?)
            } else if let Some(c) = m.get("candidate") {
                if !c.get("sdpMLineIndex").is_some_and(Value::is_u64) {
                    return Err("sdpMLineIndex is not a number".into());
                }
                tagged(Kind::Candidate, str_field(c, "candidate")?)
            } else {
                Err("msg is neither sdp nor candidate".into())
            }
        }
        "switchboard" => {
            let n = v.get(1).ok_or("switchboard event without argument")?;
            Ok(match str_field(n, "type")? {
                "joined" => Inbound::Joined,
                "start" => Inbound::Start,
                "peer-joined" => Inbound::PeerJoined,
                "peer-left" => Inbound::PeerLeft,
                "error" => Inbound::Error(str_field(n, "code").unwrap_or("error").to_owned()),
                _ => Inbound::Other,
            })
        }
        _ => Ok(Inbound::Other),
    }
}

/// The quick read used under load: the tag and whether it sat in an SDP, without parsing JSON.
/// Frames without a tag are control frames (notices, pings, pongs).
pub fn fast_tag(text: &str) -> Option<(Tag, bool)> {
    sdp::find_tag(text)
}

/// Whether an untagged frame reports an error (Ant `error`, raw `switchboard.error`, socket.io
/// `switchboard` error or `44` connect error, PeerJS `ERROR`, `EXPIRE`, `ID-TAKEN`).
pub fn is_error_frame(text: &str) -> bool {
    text.contains("\"error\"")
        || text.contains("switchboard.error")
        || text.starts_with("44")
        || ["\"ERROR\"", "\"EXPIRE\"", "\"ID-TAKEN\""]
            .iter()
            .any(|t| text.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: Tag = Tag {
        pair: 3,
        side: 0,
        seq: 7,
        sent_ns: 99,
    };

    #[test]
    fn frames_round_trip_through_the_parser_of_their_own_dialect() {
        for dialect in Dialect::ALL.into_iter().chain([Dialect::Peerjs]) {
            for kind in [Kind::Offer, Kind::Answer, Kind::Candidate] {
                let mut frame = signal_frame(dialect, "r1", kind, 5, true, &TAG);
                if dialect == Dialect::Ant && kind.is_sdp() {
                    // What the gateway adds when it relays to an Ant peer.
                    frame = frame.replacen('{', "{\"idMapping\":{},", 1);
                }
                if dialect == Dialect::Peerjs {
                    // What a PeerJS server adds when it forwards.
                    frame = frame.replacen('{', "{\"src\":\"r1-a\",", 1);
                }
                assert_eq!(
                    parse(dialect, "r1", &frame),
                    Ok(Inbound::Signal { kind, tag: TAG }),
                    "{dialect:?} {kind:?}"
                );
                assert_eq!(fast_tag(&frame), Some((TAG, kind.is_sdp())));
            }
        }
    }

    #[test]
    fn templates_render_what_signal_frame_builds() {
        for dialect in Dialect::ALL.into_iter().chain([Dialect::Peerjs]) {
            for (kind, n) in [(Kind::Offer, 0), (Kind::Answer, 0), (Kind::Candidate, 7)] {
                let template = FrameTemplate::new(dialect, "r1", kind, n, kind != Kind::Answer);
                assert_eq!(
                    template.render(&TAG),
                    signal_frame(dialect, "r1", kind, n, kind != Kind::Answer, &TAG),
                    "{dialect:?} {kind:?}"
                );
            }
        }
    }

    #[test]
    fn non_loopback_targets_are_refused() {
        let addr: SocketAddr = "10.0.0.1:80".parse().unwrap_or_else(|_| unreachable!());
        assert!(Target::new(addr, Server::Switchboard).is_err());
    }

    #[test]
    fn side_b_goes_to_the_second_node_when_given() {
        let a: SocketAddr = "127.0.0.1:15084".parse().unwrap_or_else(|_| unreachable!());
        let b: SocketAddr = "127.0.0.1:15085".parse().unwrap_or_else(|_| unreachable!());
        let far: SocketAddr = "10.0.0.1:80".parse().unwrap_or_else(|_| unreachable!());
        let one = Target::new(a, Server::Switchboard).unwrap_or_else(|_| unreachable!());
        assert_eq!(one.side_b().addr, a, "no --addr-b: both sides on --addr");
        let two = one
            .clone()
            .with_addr_b(Some(b))
            .unwrap_or_else(|_| unreachable!());
        assert_eq!((two.addr, two.side_b().addr), (a, b));
        assert!(one.with_addr_b(Some(far)).is_err(), "loopback only");
    }
}
