//! Socket buffering that exists only while a connection is busy.
//!
//! Each WebSocket session reads through tungstenite's 4 KiB read buffer and flushes after every
//! batch of deliveries ([`super::WS_READ_BUFFER_BYTES`]: a larger tungstenite buffer is
//! zero-filled up front and held by every idle session). Under load that meant a `recv` per 4 KiB
//! and a `send` per 8 KiB, several times the syscalls of the no-parse relay with its 64 KiB
//! buffers (the counts are in BENCHMARKS.md, third round). [`BurstIo`] sits between the TCP
//! (or TLS) stream and everything above it (hyper, axum's WebSocket, the engine.io transport) and gives a
//! connection 64 KiB buffers while data keeps coming, and nothing while it waits:
//!
//! - Reads go straight into the caller's buffer until one fills it completely (more is likely
//!   waiting); from then on the socket is read 64 KiB at a time and handed out from there. The
//!   buffer is released when the socket has nothing more to read.
//! - Writes are gathered (up to 64 KiB) and go out on flush, in one `send` per batch rather than
//!   one per tungstenite buffer. The buffer is released once flushed.
//!
//! So an idle session holds no more memory than before, and a busy one makes about as few
//! syscalls as the no-parse relay.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket at once while busy, and gathered before a write.
const BURST_BYTES: usize = 64 * 1024;

/// A stream with burst-only read and write buffers; see the module docs.
#[derive(Debug)]
pub struct BurstIo<S> {
    io: S,
    /// Read from the socket; `read[taken..]` is not yet handed out. Empty (no allocation)
    /// unless busy.
    read: BytesMut,
    /// How much of `read` is handed out. Counted here rather than cut off the buffer
    /// (`BytesMut::advance`), which costs more per call than this counter (BENCHMARKS.md,
    /// "Profiling figures (moved from code comments)"): tungstenite reads a frame
    /// [`super::WS_READ_BUFFER_BYTES`] at a time, several calls per relayed message.
    taken: usize,
    /// The last socket read filled the caller's buffer: read in bursts.
    busy: bool,
    /// Written by the caller, not yet sent. Empty (no allocation) between flushes.
    write: Vec<u8>,
    /// How much of `write` is already sent.
    sent: usize,
}

impl<S> BurstIo<S> {
    pub fn new(io: S) -> Self {
        Self {
            io,
            read: BytesMut::new(),
            taken: 0,
            busy: false,
            write: Vec::new(),
            sent: 0,
        }
    }

    /// Bytes of buffer this connection holds (zero while it waits).
    #[cfg(test)]
    fn buffered_capacity(&self) -> usize {
        self.read.capacity() + self.write.capacity()
    }
}

impl<S: AsyncWrite + Unpin> BurstIo<S> {
    /// Sends everything gathered; the buffer is released once it is all out.
    fn poll_send_gathered(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.write.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.write[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.write = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BurstIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.taken == this.read.len() {
            this.read.clear();
            this.taken = 0;
            if !this.busy {
                let before = buf.remaining();
                ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                // A read that filled the caller's buffer likely left more in the socket.
                this.busy = before > 0 && buf.remaining() == 0;
                return Poll::Ready(Ok(()));
            }
            this.read.reserve(BURST_BYTES);
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, &mut this.read) {
                Poll::Pending => {
                    // The burst is over: hold nothing while the connection waits.
                    this.read = BytesMut::new();
                    this.busy = false;
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // End of stream: nothing read, as the caller expects.
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(_)) => {}
            }
        }
        let n = (this.read.len() - this.taken).min(buf.remaining());
        buf.put_slice(&this.read[this.taken..this.taken + n]);
        this.taken += n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BurstIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write.len() + data.len() > BURST_BYTES {
            ready!(this.poll_send_gathered(cx))?;
            if data.len() >= BURST_BYTES {
                return Pin::new(&mut this.io).poll_write(cx, data);
            }
        }
        if this.write.capacity() == 0 {
            this.write.reserve(BURST_BYTES);
        }
        this.write.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_gathered(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_gathered(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    #[tokio::test]
    async fn small_reads_go_straight_through_and_hold_nothing() {
        let (mut peer, ours) = duplex(1 << 20);
        let mut io = BurstIo::new(ours);
        peer.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 4096];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert!(!io.busy);
        assert_eq!(io.buffered_capacity(), 0);
    }

    #[tokio::test]
    async fn a_full_read_switches_to_bursts_and_every_byte_arrives_in_order() {
        let (mut peer, ours) = duplex(1 << 20);
        let mut io = BurstIo::new(ours);
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        peer.write_all(&sent).await.unwrap();
        drop(peer);
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut saw_burst = false;
        loop {
            let n = io.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            // Bytes left in our buffer: the socket was read for more than the caller asked.
            saw_burst |= io.taken < io.read.len();
            got.extend_from_slice(&chunk[..n]);
        }
        assert!(saw_burst, "a 4 KiB reader of 200 KB never read in bursts");
        assert_eq!(got, sent);
    }

    #[tokio::test]
    async fn reads_of_any_size_hand_out_every_byte_once_and_in_order() {
        // tungstenite asks for WS_READ_BUFFER_BYTES at a time; 1000 divides no burst evenly.
        for chunk_size in [super::super::WS_READ_BUFFER_BYTES, 1000, 1] {
            let (mut peer, ours) = duplex(1 << 20);
            let mut io = BurstIo::new(ours);
            let sent: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8).collect();
            peer.write_all(&sent).await.unwrap();
            drop(peer);
            let mut got = Vec::new();
            let mut chunk = vec![0u8; chunk_size];
            loop {
                let n = io.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&chunk[..n]);
            }
            assert_eq!(got, sent, "reads of {chunk_size} bytes");
        }
    }

    #[tokio::test]
    async fn the_burst_buffer_is_released_when_the_socket_runs_dry() {
        let (mut peer, ours) = duplex(1 << 20);
        let mut io = BurstIo::new(ours);
        peer.write_all(&[7u8; 10_000]).await.unwrap();
        let mut chunk = [0u8; 4096];
        let mut total = 0;
        while total < 10_000 {
            total += io.read(&mut chunk).await.unwrap();
        }
        // Nothing left: the next read waits, and waiting holds no buffer.
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(20), io.read(&mut chunk)).await;
        assert!(waited.is_err(), "read returned with no data sent");
        assert_eq!(io.buffered_capacity(), 0);
        assert!(!io.busy);
    }

    #[tokio::test]
    async fn writes_are_gathered_until_flush_then_released() {
        let (mut peer, ours) = duplex(1 << 20);
        let mut io = BurstIo::new(ours);
        io.write_all(b"one ").await.unwrap();
        io.write_all(b"two").await.unwrap();
        let mut buf = [0u8; 16];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(20), peer.read(&mut buf)).await;
        assert!(early.is_err(), "gathered bytes went out before the flush");
        io.flush().await.unwrap();
        assert_eq!(io.buffered_capacity(), 0);
        let n = peer.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"one two");
    }

    #[tokio::test]
    async fn writes_past_the_burst_size_go_out_whole_and_in_order() {
        let (mut peer, ours) = duplex(1 << 22);
        let mut io = BurstIo::new(ours);
        let mut sent = Vec::new();
        for i in 0..40u8 {
            let piece = vec![i; 6000];
            io.write_all(&piece).await.unwrap();
            sent.extend_from_slice(&piece);
        }
        let big = vec![0xAB; 100_000];
        io.write_all(&big).await.unwrap();
        sent.extend_from_slice(&big);
        io.shutdown().await.unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, sent);
    }
}
