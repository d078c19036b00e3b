//! The node's own connections for the cluster's data path: the publisher's (`PUBLISH` of
//! bundles, the membership scripts between them) and the subscription. They speak RESP2
//! directly: a bundle is written from its own buffer inside RESP framing (no copy into a command
//! and no re-encoding), and a pushed message is a slice of the read buffer (no copy). Measured
//! in a cross-node run, redis-rs's command encoding, its reply parser and the copies between
//! them were about a tenth of each node's CPU (BENCHMARKS.md, *A cheap hop*).
//!
//! What redis-rs gives the other connections holds here too: the server (and, through Sentinel,
//! the current primary) comes from the same [`redis::Client`], `rediss://` goes through rustls
//! with the system's roots or `redis_ca_file`, and the ACL user and password are sent with
//! `AUTH`. Replies are parsed with the `redis-protocol` crate, zero-copy into [`Bytes`].

use std::io::IoSlice;
use std::path::Path;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use redis::{ConnectionAddr, ErrorKind, RedisError, RedisResult};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;
use switchboard_protocol::cluster::{BundleParts, Part};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// What a read asks room for at least: a bundle under load is tens to hundreds of KiB, and a
/// larger read means fewer syscalls and fewer attempts to parse a message that is incomplete.
const READ_ROOM: usize = 64 * 1024;

/// Most a read reserves ahead for one reply its framing announces (bundles are at most a few
/// hundred KiB; a larger reply grows the buffer read by read).
const MAX_RESERVE: usize = 4 * 1024 * 1024;

/// Most buffers handed to one vectored write: a bundle is written in pieces, two per large
/// body (Linux takes up to 1,024).
const IOV: usize = 512;

/// Bytes to write: a buffer of the connection's own, or bytes borrowed from their owner for
/// the time of the write (a bundle's bodies, written from the frames the publisher keeps).
#[derive(Debug)]
pub enum Chunk<'a> {
    /// Owned (shared) bytes.
    Owned(Bytes),
    /// Borrowed bytes.
    Borrowed(&'a [u8]),
}

impl Chunk<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(b) => b,
            Chunk::Borrowed(b) => b,
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Chunk::Owned(b) => b.advance(n),
            Chunk::Borrowed(b) => *b = &b[n..],
        }
    }
}

impl From<Bytes> for Chunk<'_> {
    fn from(bytes: Bytes) -> Self {
        Chunk::Owned(bytes)
    }
}

/// A byte stream to Redis: TCP, TLS over TCP, or a Unix socket.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One RESP2 connection: writes whole buffers, reads replies and pushed messages in order.
pub struct RespConn {
    io: Box<dyn Io>,
    read: BytesMut,
}

impl std::fmt::Debug for RespConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RespConn")
    }
}

impl RespConn {
    /// Connects to the server `client` names, with TLS and `AUTH` as its URL and settings say
    /// (`ca_file`: the `redis_ca_file` of the config, the only roots trusted when set).
    pub async fn connect(client: &redis::Client, ca_file: Option<&Path>) -> RedisResult<Self> {
        let info = client.get_connection_info();
        let io: Box<dyn Io> = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Box::new(tcp(host, *port).await?),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => {
                if *insecure {
                    return Err(refused(
                        ErrorKind::InvalidClientConfig,
                        "an insecure rediss:// connection is not supported",
                    ));
                }
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| refused(ErrorKind::InvalidClientConfig, &e.to_string()))?;
                let stream = tcp(host, *port).await?;
                let connector = TlsConnector::from(tls_config(ca_file)?);
                Box::new(connector.connect(name, stream).await?)
            }
            ConnectionAddr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            _ => {
                return Err(refused(
                    ErrorKind::InvalidClientConfig,
                    "unsupported Redis address",
                ));
            }
        };
        let mut conn = RespConn {
            io,
            read: BytesMut::with_capacity(READ_ROOM),
        };
        let settings = info.redis_settings();
        if let Some(password) = settings.password() {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = settings.username() {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            let mut out = BytesMut::new();
            command(&mut out, &args);
            conn.write(vec![out.freeze().into()]).await?;
            match conn.read_frame().await? {
                Some(BytesFrame::SimpleString(_)) => {}
                Some(BytesFrame::Error(e)) => {
                    return Err(RedisError::from((
                        ErrorKind::AuthenticationFailed,
                        "Redis refused the node's credentials",
                        e.to_string(),
                    )));
                }
                _ => return Err(protocol("unexpected answer to AUTH")),
            }
        }
        Ok(conn)
    }

    /// A connection over `stream`, connected already: a direct link between two nodes
    /// (`cluster/direct`), which speaks the `PUBLISH` subset of RESP. Its read buffer starts
    /// at `room` bytes: small while the other end is not yet trusted.
    pub fn over(stream: tokio::net::TcpStream, room: usize) -> Self {
        Self {
            io: Box::new(stream),
            read: BytesMut::with_capacity(room),
        }
    }

    /// The next frame already read, reading nothing more.
    pub fn buffered_frame(&mut self) -> RedisResult<Option<BytesFrame>> {
        if self.read.is_empty() {
            return Ok(None);
        }
        match decode_bytes_mut(&mut self.read) {
            Ok(Some((frame, _, _))) => Ok(Some(frame)),
            Ok(None) => Ok(None),
            Err(e) => Err(protocol(&e.to_string())),
        }
    }

    /// The next frame, which must come whole within `limit` bytes and start with one of the
    /// `kinds` (RESP type bytes): the other end is not trusted yet, so whatever length its
    /// framing announces, no more than `limit` is read or reserved, and something else than
    /// the frame expected (an HTTP request, say) is refused at its first byte.
    pub async fn read_small_frame(
        &mut self,
        limit: usize,
        kinds: &[u8],
    ) -> RedisResult<Option<BytesFrame>> {
        loop {
            if self.read.first().is_some_and(|b| !kinds.contains(b)) {
                return Err(protocol("not the frame expected"));
            }
            if reply_len(&self.read) > limit {
                return Err(protocol("a frame longer than a handshake"));
            }
            if let Some(frame) = self.buffered_frame()? {
                return Ok(Some(frame));
            }
            let room = limit.saturating_sub(self.read.len());
            if room == 0 {
                return Err(protocol("a frame longer than a handshake"));
            }
            self.read.reserve(room);
            let mut bounded = (&mut self.io).take(room as u64);
            if bounded.read_buf(&mut self.read).await? == 0 {
                if self.read.is_empty() {
                    return Ok(None);
                }
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    /// Writes `chunks` in order, as few syscalls as the kernel allows (vectored writes).
    pub async fn write(&mut self, mut chunks: Vec<Chunk<'_>>) -> RedisResult<()> {
        let mut first = 0;
        while first < chunks.len() {
            let slices: Vec<IoSlice<'_>> = chunks[first..]
                .iter()
                .take(IOV)
                .map(|c| IoSlice::new(c.bytes()))
                .collect();
            let mut written = self.io.write_vectored(&slices).await?;
            if written == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
            }
            while written > 0 {
                let chunk = &mut chunks[first];
                let n = written.min(chunk.bytes().len());
                chunk.advance(n);
                written -= n;
                if chunk.bytes().is_empty() {
                    first += 1;
                }
            }
            while chunks.get(first).is_some_and(|c| c.bytes().is_empty()) {
                first += 1;
            }
        }
        self.io.flush().await?;
        Ok(())
    }

    /// The next reply or pushed message; `None` once the server closed the connection. Cancel
    /// safe: what was read stays in the buffer for the next call.
    pub async fn read_frame(&mut self) -> RedisResult<Option<BytesFrame>> {
        loop {
            if !self.read.is_empty() {
                match decode_bytes_mut(&mut self.read) {
                    Ok(Some((frame, _, _))) => return Ok(Some(frame)),
                    Ok(None) => {}
                    Err(e) => return Err(protocol(&e.to_string())),
                }
            }
            // Room for the rest of the reply at once, when its framing says how long it is:
            // grown read by read, a bundle of a few hundred KiB was copied again at each
            // growth (`BytesMut::reserve_inner`).
            let coming = reply_len(&self.read)
                .min(MAX_RESERVE)
                .saturating_sub(self.read.len());
            if self.read.capacity() - self.read.len() < coming.max(READ_ROOM / 4) {
                self.read.reserve(coming.max(READ_ROOM));
            }
            if self.io.read_buf(&mut self.read).await? == 0 {
                if self.read.is_empty() {
                    return Ok(None);
                }
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
    }
}

async fn tcp(host: &str, port: u16) -> RedisResult<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    // Bundles are written whole; nothing is gained by waiting for more.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The rustls client config: the CA of `ca_file` when set (as redis-rs does with
/// `redis_ca_file`), else the system's roots.
fn tls_config(ca_file: Option<&Path>) -> RedisResult<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| refused(ErrorKind::InvalidClientConfig, &e.to_string()))?
            {
                let cert =
                    cert.map_err(|e| refused(ErrorKind::InvalidClientConfig, &e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| refused(ErrorKind::InvalidClientConfig, &e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system root rustls cannot use is skipped, as redis-rs's loader does.
                let _ = roots.add(cert);
            }
        }
    }
    Ok(Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Commands sent as one pipeline on a [`RespConn`]: `PUBLISH`es whose payloads are written
/// from their own buffers, and other commands encoded by redis-rs.
#[derive(Debug, Default)]
pub struct Pipeline<'a> {
    /// Framing (and whole commands) not yet cut into `chunks`.
    head: BytesMut,
    chunks: Vec<Chunk<'a>>,
    /// For each command in order: whether it is a `PUBLISH` (whose reply is returned).
    publish: Vec<bool>,
}

impl<'a> Pipeline<'a> {
    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.publish.is_empty()
    }

    /// Adds `PUBLISH channel payload`; `payload` is written as it is, not copied.
    pub fn publish(&mut self, channel: &[u8], payload: Bytes) {
        publish_header(&mut self.head, channel, payload.len());
        self.chunks.push(self.head.split().freeze().into());
        self.chunks.push(payload.into());
        self.head.extend_from_slice(CRLF);
        self.publish.push(true);
    }

    /// Adds `PUBLISH channel bundle` for a bundle in pieces, each written from where it is.
    pub fn publish_parts(&mut self, channel: &[u8], bundle: BundleParts<'a>) {
        publish_header(&mut self.head, channel, bundle.len);
        self.chunks.push(self.head.split().freeze().into());
        for part in bundle.parts {
            self.chunks.push(match part {
                Part::Own(range) => Chunk::Owned(bundle.own.slice(range)),
                Part::Body(body) => Chunk::Borrowed(body),
            });
        }
        self.head.extend_from_slice(CRLF);
        self.publish.push(true);
    }

    /// Adds the commands of `pipe` (encoded by redis-rs), their replies checked for errors only.
    pub fn commands(&mut self, pipe: &redis::Pipeline) {
        self.head.extend_from_slice(&pipe.get_packed_pipeline());
        self.publish.extend(std::iter::repeat_n(false, pipe.len()));
    }

    /// Sends the pipeline without reading replies (a direct link between nodes answers none):
    /// every `PUBLISH` counts one receiver, the node at the other end of the link.
    pub async fn send(mut self, conn: &mut RespConn) -> RedisResult<Vec<i64>> {
        if !self.head.is_empty() {
            self.chunks.push(self.head.split().freeze().into());
        }
        conn.write(self.chunks).await?;
        Ok(self.publish.iter().map(|_| 1).collect())
    }

    /// Sends the pipeline and reads its replies: the receiver counts of the `PUBLISH`es, in
    /// order. An error reply fails the whole pipeline, as redis-rs's pipelines do.
    pub async fn exec(mut self, conn: &mut RespConn) -> RedisResult<Vec<i64>> {
        if !self.head.is_empty() {
            self.chunks.push(self.head.split().freeze().into());
        }
        conn.write(self.chunks).await?;
        let mut counts = Vec::new();
        let mut failed = None;
        for publish in self.publish {
            let frame = conn
                .read_frame()
                .await?
                .ok_or_else(|| protocol("the connection closed before all replies"))?;
            match frame {
                BytesFrame::Error(e) => {
                    failed.get_or_insert_with(|| e.to_string());
                }
                BytesFrame::Integer(n) if publish => counts.push(n),
                _ if publish => return Err(protocol("a PUBLISH answered without a count")),
                _ => {}
            }
        }
        match failed {
            // Every reply is read first: the connection stays in step.
            Some(e) => Err(RedisError::from(std::io::Error::other(format!(
                "a command of the cluster's pipeline failed: {e}"
            )))),
            None => Ok(counts),
        }
    }
}

/// How long the first reply in `buf` is at least, from the framing read so far: for an array
/// of bulk strings (a pushed message: `*3`, `message`, the channel, the payload), the whole
/// reply once the last element's length is in; 0 when nothing is known.
fn reply_len(buf: &[u8]) -> usize {
    fn line(buf: &[u8], at: usize) -> Option<(i64, usize)> {
        let rest = buf.get(at + 1..)?;
        let end = rest.windows(2).take(24).position(|w| w == CRLF)?;
        let n = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
        Some((n, at + 1 + end + 2))
    }
    let (mut at, count) = match buf.first() {
        Some(b'*') => match line(buf, 0) {
            Some((n, next)) if n > 0 => (next, n),
            _ => return 0,
        },
        Some(b'$') => (0, 1),
        _ => return 0,
    };
    for _ in 0..count {
        if buf.get(at) != Some(&b'$') {
            return at;
        }
        let Some((len, next)) = line(buf, at) else {
            return at;
        };
        let len = usize::try_from(len).unwrap_or(0);
        at = next.saturating_add(len).saturating_add(2);
    }
    at
}

/// Appends one RESP command (an array of bulk strings) to `out`.
pub fn command(out: &mut BytesMut, args: &[&[u8]]) {
    array_header(out, args.len());
    for arg in args {
        bulk_header(out, arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends the framing of `PUBLISH channel <len bytes>` up to its payload: the payload and
/// a closing `\r\n` ([`CRLF`]) follow, written from their own buffers.
pub fn publish_header(out: &mut BytesMut, channel: &[u8], len: usize) {
    array_header(out, 3);
    bulk_header(out, 7);
    out.extend_from_slice(b"PUBLISH\r\n");
    bulk_header(out, channel.len());
    out.extend_from_slice(channel);
    out.extend_from_slice(b"\r\n");
    bulk_header(out, len);
}

/// What ends a bulk string.
pub const CRLF: &[u8] = b"\r\n";

fn array_header(out: &mut BytesMut, n: usize) {
    out.extend_from_slice(format!("*{n}\r\n").as_bytes());
}

fn bulk_header(out: &mut BytesMut, len: usize) {
    out.extend_from_slice(format!("${len}\r\n").as_bytes());
}

/// An error for something Redis sent that this connection cannot read.
pub fn protocol(what: &str) -> RedisError {
    RedisError::from((
        ErrorKind::Parse,
        "unreadable answer from Redis",
        what.to_owned(),
    ))
}

/// An error reply: one that says the node's credentials or rights are refused keeps that kind
/// (so that at start-up the gateway stops with it, see `connect::is_refusal`).
pub fn server_error(text: &str) -> RedisError {
    let code = text.split(' ').next().unwrap_or_default();
    let kind = if matches!(code, "NOAUTH" | "WRONGPASS" | "NOPERM") {
        ErrorKind::AuthenticationFailed
    } else {
        ErrorKind::Extension
    };
    RedisError::from((kind, "Redis refused a command", text.to_owned()))
}

fn refused(kind: ErrorKind, what: &str) -> RedisError {
    RedisError::from((
        kind,
        "cannot open the cluster's data connection",
        what.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_is_framed_around_its_payload() {
        let mut out = BytesMut::new();
        publish_header(&mut out, b"sb:node:a", 5);
        out.extend_from_slice(b"hello");
        out.extend_from_slice(CRLF);
        assert_eq!(
            &out[..],
            b"*3\r\n$7\r\nPUBLISH\r\n$9\r\nsb:node:a\r\n$5\r\nhello\r\n"
        );
    }

    #[test]
    fn a_pushed_message_says_its_length_once_its_payload_header_is_in() {
        let whole: &[u8] = b"*3\r\n$7\r\nmessage\r\n$4\r\nsb:a\r\n$5\r\nhello\r\n";
        let header = whole.len() - b"hello\r\n".len();
        assert_eq!(reply_len(whole), whole.len());
        assert_eq!(reply_len(&whole[..header + 2]), whole.len());
        assert_eq!(reply_len(&whole[..header]), whole.len());
        // Before the payload's length is read: what is known so far, at most.
        assert!(reply_len(&whole[..header - 3]) <= header);
        assert_eq!(reply_len(b""), 0);
        assert_eq!(reply_len(b":1\r\n"), 0);
        assert_eq!(reply_len(b"$3\r\nabc\r\n"), 9);
    }

    #[test]
    fn a_command_is_an_array_of_bulk_strings() {
        let mut out = BytesMut::new();
        command(&mut out, &[b"AUTH", b"user", b"pw"]);
        assert_eq!(&out[..], b"*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$2\r\npw\r\n");
    }
}
