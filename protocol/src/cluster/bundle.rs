//! A bundle: what one pub/sub message between nodes carries (node protocol 4; 5 since a forward
//! says how its receiver renders it; 6 since frames are numbered per receiver and acknowledged). Every frame the
//! publisher has queued for one receiving node goes into one bundle, so Redis, the receiver's
//! RESP parsing and the syscalls are paid once per bundle rather than once per frame:
//!
//! ```text
//! [version u8][node len u8][node]                     the header, once
//! [len u32 BE][seq u64 BE, 0 = none][body]            a frame (len counts seq and body) ...
//! ```
//!
//! A body is `F` and `[to u64 BE][dialect u8][mode u8][how u8][kind u8][room len u16 BE][room]
//! [text]` (a forward: the receiver's frame, a socket.io literal, or the sender's text to decode
//! again; see [`super::forward`]) or `J` and a [`NodeMessage`] as JSON. Each frame keeps
//! its own number, so the receiver's order and duplicate checks work per frame as before.
//!
//! [`BundleWriter`] packs frames into a [`BytesMut`] (each frame's bytes copied once, straight
//! from the sender's text); [`BundleReader`] walks a received bundle without copying: a forward's
//! room and text are slices of the bundle.

use bytes::{BufMut, Bytes, BytesMut};

use super::forward::Forwarding;
use super::message::{ForwardRef, NODE_PROTOCOL_VERSION, NodeMessage};
use crate::{DialectKind, JoinMode};

/// Largest bundle the publisher builds (a single larger frame goes alone in its bundle).
pub const BUNDLE_LIMIT: usize = 256 * 1024;

/// First byte of a frame's body: a forward (binary) or a [`NodeMessage`] as JSON.
pub(super) const FORWARD: u8 = b'F';
pub(super) const JSON: u8 = b'J';

/// Why bytes received from another node are not a bundle this node can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Sent by a node of another release: nodes of one cluster must speak one version.
    #[error("node protocol version {got} (this node speaks {NODE_PROTOCOL_VERSION})")]
    Version {
        /// The version the bytes say.
        got: u8,
    },
    /// The bytes end inside a field.
    #[error("truncated frame")]
    Truncated,
    /// A text field (node, room, original) is not UTF-8.
    #[error("a text field is not UTF-8")]
    Utf8,
    /// A body kind this version does not know.
    #[error("unknown frame body `{0}`")]
    UnknownBody(String),
    /// A dialect byte this version does not know.
    #[error("unknown dialect `{0}`")]
    UnknownDialect(String),
    /// A join mode byte this version does not know.
    #[error("unknown join mode `{0}`")]
    UnknownMode(String),
    /// A forward's rendering (how, kind) this version does not know.
    #[error("unknown forwarding `{0}`")]
    UnknownForwarding(String),
    /// A JSON body that is not a [`NodeMessage`].
    #[error("malformed message: {0}")]
    Json(String),
    /// A bundle with no frame in it.
    #[error("empty bundle")]
    Empty,
}

/// One frame of a bundle, borrowed from it.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameBody<'a> {
    /// A peer's signal for a receiver of the sender's dialect: a text, unparsed (UTF-8 is
    /// checked where it is used, once).
    Forward {
        /// The receiving session.
        to: u64,
        /// The sender's dialect.
        dialect: DialectKind,
        /// The sender's join mode.
        mode: JoinMode,
        /// What `original` is for the receiver.
        how: Forwarding,
        /// The room.
        room: &'a str,
        /// The text ([`Forwarding`] says which), as bytes of the bundle.
        original: &'a [u8],
    },
    /// Anything else.
    Message(NodeMessage),
}

/// A frame to add to a bundle.
#[derive(Debug, Clone, Copy)]
pub enum FrameRef<'a> {
    /// A forward, written straight from the sender's text.
    Forward(&'a ForwardRef<'a>),
    /// A message, written as JSON.
    Message(&'a NodeMessage),
    /// A body written before ([`forward_body`]), copied as it is.
    Body(&'a [u8]),
}

/// Packs frames for one receiving node into bundles of at most [`BUNDLE_LIMIT`] bytes
/// (`limit` in tests), in the order they are pushed.
#[derive(Debug)]
pub struct BundleWriter<'a> {
    buf: &'a mut BytesMut,
    node: &'a str,
    limit: usize,
    /// Frames in the open bundle.
    frames: usize,
}

impl<'a> BundleWriter<'a> {
    /// Opens a bundle from `node` in `buf` (which should be empty; its capacity is reused).
    pub fn new(buf: &'a mut BytesMut, node: &'a str, limit: usize) -> Self {
        header(buf, node);
        Self {
            buf,
            node,
            limit,
            frames: 0,
        }
    }

    /// Frames in the open bundle.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Adds `frame`. When it does not fit in the open bundle, that bundle (with every frame
    /// pushed before this one) is closed and returned, and `frame` opens the next.
    pub fn push(&mut self, seq: Option<u64>, frame: FrameRef<'_>) -> Option<Bytes> {
        let start = self.buf.len();
        write_frame(self.buf, seq, frame);
        self.frames += 1;
        if self.buf.len() <= self.limit || self.frames == 1 {
            return None;
        }
        // Rare (once per `limit` bytes): move this frame into a bundle of its own.
        let tail = self.buf.split_off(start);
        let full = self.buf.split().freeze();
        // The next bundle's buffer whole: the full one still shares the old allocation.
        self.buf.reserve(
            self.limit
                .max(tail.len())
                .saturating_add(2 + self.node.len()),
        );
        header(self.buf, self.node);
        self.buf.extend_from_slice(&tail);
        self.frames = 1;
        Some(full)
    }

    /// Closes the open bundle; `None` when it holds no frame.
    pub fn finish(self) -> Option<Bytes> {
        if self.frames == 0 {
            self.buf.clear();
            return None;
        }
        Some(self.buf.split().freeze())
    }
}

/// A piece of a bundle written from its parts ([`PartsWriter`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part<'a> {
    /// These bytes of the bundle's own buffer ([`BundleParts::own`]): its header, the frames'
    /// lengths and numbers, the frames written into it.
    Own(std::ops::Range<usize>),
    /// A body rendered ahead ([`forward_body`]), written from where it is.
    Body(&'a [u8]),
}

/// A bundle as the pieces it is written from, in order: the published bytes are their
/// concatenation, the same bytes [`BundleWriter`] makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleParts<'a> {
    /// The bundle's own bytes, which [`Part::Own`] ranges index.
    pub own: Bytes,
    /// The pieces in order.
    pub parts: Vec<Part<'a>>,
    /// The bundle's length in bytes (the sum of the pieces).
    pub len: usize,
}

impl BundleParts<'_> {
    /// The bundle's bytes in one buffer (for tests and tools; the publisher writes the pieces
    /// with a vectored write).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for part in &self.parts {
            match part {
                Part::Own(range) => out.extend_from_slice(&self.own[range.clone()]),
                Part::Body(body) => out.extend_from_slice(body),
            }
        }
        out
    }
}

/// [`BundleWriter`] for bodies rendered ahead: a body of at least `share_from` bytes is not
/// copied into the bundle but written from its own buffer (a [`Part::Body`] between the
/// bundle's own bytes); smaller frames are copied, as a copy of a few hundred bytes costs less
/// than a piece of its own.
#[derive(Debug)]
pub struct PartsWriter<'a, 'b> {
    buf: &'b mut BytesMut,
    node: &'b str,
    limit: usize,
    share_from: usize,
    /// The pieces of the open bundle before `buf[cut..]`.
    parts: Vec<Part<'a>>,
    cut: usize,
    /// The bytes of the open bundle's bodies (its own are `buf.len()`).
    shared: usize,
    frames: usize,
}

impl<'a, 'b> PartsWriter<'a, 'b> {
    /// Opens a bundle from `node` in `buf` (which should be empty; its capacity is reused).
    pub fn new(buf: &'b mut BytesMut, node: &'b str, limit: usize, share_from: usize) -> Self {
        buf.clear();
        header(buf, node);
        Self {
            buf,
            node,
            limit,
            share_from,
            parts: Vec::new(),
            cut: 0,
            shared: 0,
            frames: 0,
        }
    }

    fn len(&self) -> usize {
        self.buf.len() + self.shared
    }

    /// Adds a body rendered ahead ([`forward_body`]) as frame `seq`; a full bundle comes back
    /// as with [`BundleWriter::push`].
    pub fn push_body(&mut self, seq: Option<u64>, body: &'a [u8]) -> Option<BundleParts<'a>> {
        self.push_split(seq, &[], body)
    }

    /// Adds a forward whose body is `head` ([`forward_head`]) then `text`, as frame `seq`: the
    /// head is copied into the bundle, the text written from where it is when it is at least
    /// `share_from` bytes; a full bundle comes back as with [`BundleWriter::push`].
    pub fn push_split(
        &mut self,
        seq: Option<u64>,
        head: &[u8],
        text: &'a [u8],
    ) -> Option<BundleParts<'a>> {
        let body = head.len() + text.len();
        if text.len() < self.share_from {
            let start = self.buf.len();
            self.buf.reserve(12 + body);
            self.buf
                .put_u32(u32::try_from(8 + body).unwrap_or(u32::MAX));
            self.buf.put_u64(seq.unwrap_or(0));
            self.buf.put_slice(head);
            self.buf.put_slice(text);
            return self.moved_on(start);
        }
        let full = (self.frames > 0 && self.len() + 12 + body > self.limit).then(|| self.close());
        self.buf
            .put_u32(u32::try_from(8 + body).unwrap_or(u32::MAX));
        self.buf.put_u64(seq.unwrap_or(0));
        self.buf.put_slice(head);
        self.parts.push(Part::Own(self.cut..self.buf.len()));
        self.cut = self.buf.len();
        self.parts.push(Part::Body(text));
        self.shared += text.len();
        self.frames += 1;
        full
    }

    /// Adds `frame`, copied into the bundle's own bytes; a full bundle comes back as with
    /// [`BundleWriter::push`].
    pub fn push(&mut self, seq: Option<u64>, frame: FrameRef<'_>) -> Option<BundleParts<'a>> {
        let start = self.buf.len();
        write_frame(self.buf, seq, frame);
        self.moved_on(start)
    }

    /// Counts the frame just copied into the bundle's own bytes from `start`; when it took the
    /// bundle past its limit, moves it into the next bundle and gives back the full one.
    fn moved_on(&mut self, start: usize) -> Option<BundleParts<'a>> {
        self.frames += 1;
        if self.len() <= self.limit || self.frames == 1 {
            return None;
        }
        // Rare (once per `limit` bytes): move this frame into a bundle of its own.
        let tail = self.buf.split_off(start);
        let full = self.close();
        self.buf.extend_from_slice(&tail);
        self.frames = 1;
        Some(full)
    }

    /// Closes the open bundle and opens the next (its header written, no frame in it).
    fn close(&mut self) -> BundleParts<'a> {
        if self.cut < self.buf.len() {
            self.parts.push(Part::Own(self.cut..self.buf.len()));
        }
        let own = self.buf.split().freeze();
        let full = BundleParts {
            len: own.len() + self.shared,
            own,
            parts: std::mem::take(&mut self.parts),
        };
        header(self.buf, self.node);
        self.cut = 0;
        self.shared = 0;
        self.frames = 0;
        full
    }

    /// Closes the open bundle; `None` when it holds no frame.
    pub fn finish(mut self) -> Option<BundleParts<'a>> {
        if self.frames == 0 {
            self.buf.clear();
            return None;
        }
        let full = self.close();
        self.buf.clear();
        Some(full)
    }
}

/// A bundle's header.
fn header(buf: &mut BytesMut, node: &str) {
    let node = node.as_bytes();
    let node = node.get(..usize::from(u8::MAX)).unwrap_or(node);
    buf.reserve(2 + node.len());
    buf.put_u8(u8::try_from(NODE_PROTOCOL_VERSION).unwrap_or(u8::MAX));
    buf.put_u8(u8::try_from(node.len()).unwrap_or(u8::MAX));
    buf.put_slice(node);
}

/// Appends one length-prefixed frame.
fn write_frame(buf: &mut BytesMut, seq: Option<u64>, frame: FrameRef<'_>) {
    let at = buf.len();
    buf.put_u32(0); // the length, set below
    buf.put_u64(seq.unwrap_or(0));
    match frame {
        FrameRef::Forward(fwd) => {
            buf.reserve(forward_len(fwd));
            write_forward(buf, fwd);
        }
        FrameRef::Body(body) => buf.put_slice(body),
        FrameRef::Message(msg) => {
            buf.put_u8(JSON);
            // Every field is a string, a number or an `Event`, all of which serialize.
            let _ = serde_json::to_writer((&mut *buf).writer(), msg);
        }
    }
    let len = u32::try_from(buf.len() - at - 4).unwrap_or(u32::MAX);
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// A forward's body on its own, for [`FrameRef::Body`]: the sender's task renders it while the
/// event is at hand, and the publisher copies it into a bundle later (one allocation, so what
/// the publisher keeps for replay is freed at once when the receiver acknowledges it).
pub fn forward_body(fwd: &ForwardRef<'_>) -> Box<[u8]> {
    let mut buf = Vec::with_capacity(forward_len(fwd));
    write_forward(&mut buf, fwd);
    buf.into_boxed_slice()
}

/// A forward's body without its text ([`PartsWriter::push_split`]): what precedes the text,
/// for a sender whose text is kept where it already is (the frame its peer sent).
pub fn forward_head(fwd: &ForwardRef<'_>) -> Box<[u8]> {
    let mut buf = Vec::with_capacity(forward_len(fwd) - fwd.original.len());
    write_forward_head(&mut buf, fwd);
    buf.into_boxed_slice()
}

/// The room as written: cut at what its length field holds.
fn forward_room<'a>(fwd: &ForwardRef<'a>) -> &'a [u8] {
    let room = fwd.room.as_bytes();
    room.get(..usize::from(u16::MAX)).unwrap_or(room)
}

/// The bytes of a forward's body.
fn forward_len(fwd: &ForwardRef<'_>) -> usize {
    15 + forward_room(fwd).len() + fwd.original.len()
}

/// Appends a forward's body.
fn write_forward(buf: &mut impl BufMut, fwd: &ForwardRef<'_>) {
    write_forward_head(buf, fwd);
    buf.put_slice(fwd.original.as_bytes());
}

/// Appends what precedes a forward's text.
fn write_forward_head(buf: &mut impl BufMut, fwd: &ForwardRef<'_>) {
    let room = forward_room(fwd);
    buf.put_u8(FORWARD);
    buf.put_u64(fwd.to);
    buf.put_u8(dialect_byte(fwd.dialect));
    buf.put_u8(mode_byte(fwd.mode));
    buf.put_u8(fwd.how.byte());
    buf.put_u8(fwd.how.kind_byte());
    buf.put_u16(u16::try_from(room.len()).unwrap_or(u16::MAX));
    buf.put_slice(room);
}

/// Walks a received bundle: its sending node, then its frames in order.
#[derive(Debug, Clone)]
pub struct BundleReader<'a> {
    node: &'a str,
    rest: &'a [u8],
}

impl<'a> BundleReader<'a> {
    /// Reads a bundle's header; [`FrameError::Version`] for another node protocol version.
    pub fn new(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let mut r = Reader(bytes);
        let v = r.u8()?;
        if u32::from(v) != NODE_PROTOCOL_VERSION {
            return Err(FrameError::Version { got: v });
        }
        let len = usize::from(r.u8()?);
        let node = r.text(len)?;
        if r.0.is_empty() {
            return Err(FrameError::Empty);
        }
        Ok(Self { node, rest: r.0 })
    }

    /// The sending node's instance id.
    pub fn node(&self) -> &'a str {
        self.node
    }
}

impl<'a> Iterator for BundleReader<'a> {
    type Item = Result<(Option<u64>, FrameBody<'a>), FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let mut r = Reader(self.rest);
        let frame = r
            .u32()
            .and_then(|len| r.take(usize::try_from(len).unwrap_or(usize::MAX)));
        match frame {
            Ok(frame) => {
                self.rest = r.0;
                Some(read_frame(frame))
            }
            Err(e) => {
                // A cut bundle: nothing after this is readable.
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// One frame's number and body.
fn read_frame(frame: &[u8]) -> Result<(Option<u64>, FrameBody<'_>), FrameError> {
    let mut r = Reader(frame);
    let seq = Some(r.u64()?).filter(|&s| s != 0);
    let body = match r.u8()? {
        FORWARD => {
            let to = r.u64()?;
            let dialect = dialect_of(r.u8()?)?;
            let mode = mode_of(r.u8()?)?;
            let (how, kind) = (r.u8()?, r.u8()?);
            let how = Forwarding::from_bytes(how, kind).ok_or_else(|| {
                FrameError::UnknownForwarding(format!(
                    "{}{}",
                    how.escape_ascii(),
                    kind.escape_ascii()
                ))
            })?;
            let len = usize::from(r.u16()?);
            let room = r.text(len)?;
            FrameBody::Forward {
                to,
                dialect,
                mode,
                how,
                room,
                original: r.0,
            }
        }
        JSON => FrameBody::Message(
            serde_json::from_slice(r.0).map_err(|e| FrameError::Json(e.to_string()))?,
        ),
        other => return Err(FrameError::UnknownBody(other.escape_ascii().to_string())),
    };
    Ok((seq, body))
}

/// Reads a frame's fields in order.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let mut b = [0; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        self.array().map(u64::from_be_bytes)
    }

    fn text(&mut self, n: usize) -> Result<&'a str, FrameError> {
        std::str::from_utf8(self.take(n)?).map_err(|_| FrameError::Utf8)
    }
}

fn dialect_byte(d: DialectKind) -> u8 {
    match d {
        DialectKind::Antmedia => b'a',
        DialectKind::Socketio => b's',
        DialectKind::Raw => b'r',
        DialectKind::Peerjs => b'p',
    }
}

fn dialect_of(b: u8) -> Result<DialectKind, FrameError> {
    Ok(match b {
        b'a' => DialectKind::Antmedia,
        b's' => DialectKind::Socketio,
        b'r' => DialectKind::Raw,
        b'p' => DialectKind::Peerjs,
        other => return Err(FrameError::UnknownDialect(other.escape_ascii().to_string())),
    })
}

fn mode_byte(m: JoinMode) -> u8 {
    match m {
        JoinMode::Both => b'b',
        JoinMode::Play => b'p',
        JoinMode::Conference => b'c',
    }
}

fn mode_of(b: u8) -> Result<JoinMode, FrameError> {
    Ok(match b {
        b'b' => JoinMode::Both,
        b'p' => JoinMode::Play,
        b'c' => JoinMode::Conference,
        other => return Err(FrameError::UnknownMode(other.escape_ascii().to_string())),
    })
}
