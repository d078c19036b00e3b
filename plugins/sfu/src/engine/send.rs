//! Batched UDP sends: what one `drive` writes leaves in as few system calls as it can. Runs of
//! equal-sized RTP/RTCP datagrams to one destination (a player's packets of one batch: the
//! packets of a video frame, a burst of audio) go as one UDP GSO send each (`UDP_SEGMENT`: the
//! kernel cuts the buffer into datagrams after routing it once); the rest in `sendmmsg` calls of
//! up to [`BATCH`] datagrams. At 16 × 16 the gateway writes some 25,000 datagrams a second, and
//! most of its kernel time is per datagram (UDP/IP output and, on loopback, the receiver's
//! delivery).

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, getsockopt, sendmsg, sockopt};
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per `sendmmsg` call (the kernel takes up to 1024).
pub const BATCH: usize = 64;

/// Datagrams queued before the queue is sent without waiting for the end of the `drive`: the
/// more a flush holds, the longer the runs GSO can send at once.
const QUEUE: usize = 1024;

/// Segments of one GSO send (the kernel's `UDP_MAX_SEGMENTS` was 64 before Linux 6.9).
const GSO_SEGMENTS: usize = 64;

/// Bytes of one GSO send: the payload of one IPv4 UDP datagram at most.
const GSO_BYTES: usize = 65_507;

/// Datagrams waiting for the next flush. str0m hands each over as an owned buffer, so they are
/// queued without a copy.
#[derive(Debug, Default)]
pub struct SendQueue {
    bufs: Vec<Vec<u8>>,
    addrs: Vec<SocketAddr>,
    /// Whether GSO sends are tried: unknown until the first flush, then what the kernel said.
    gso: Option<bool>,
    /// GSO sends made (the tests check that runs took this path).
    pub gso_sends: u64,
}

impl SendQueue {
    /// Queues `datagram` for `to`, sending the queue first when it is full. Returns the
    /// datagrams that left the socket.
    pub fn push(&mut self, socket: &UdpSocket, datagram: Vec<u8>, to: SocketAddr) -> u64 {
        let sent = if self.bufs.len() >= QUEUE {
            self.flush(socket)
        } else {
            0
        };
        self.bufs.push(datagram);
        self.addrs.push(to);
        sent
    }

    /// Sends every queued datagram: runs that GSO can take first, then the rest in their
    /// order. One the kernel refuses (an address it cannot reach) is dropped and the rest still
    /// go; a full socket buffer drops the rest, as a network would. Returns the datagrams that
    /// left the socket.
    pub fn flush(&mut self, socket: &UdpSocket) -> u64 {
        let gso = *self.gso.get_or_insert_with(|| gso_supported(socket));
        let (mut sent, rest) = if gso {
            match self.send_runs(socket) {
                Ok(done) => done,
                Err(full) => {
                    self.bufs.clear();
                    self.addrs.clear();
                    return full;
                }
            }
        } else {
            (0, (0..self.bufs.len()).collect())
        };
        sent += self.send_each(socket, &rest);
        self.bufs.clear();
        self.addrs.clear();
        sent
    }

    /// Sends each run of at least two equal-sized RTP/RTCP datagrams to one destination as
    /// one GSO send. Returns what was sent and the indices left to send one by one (in queue
    /// order), or, when the socket buffer is full, `Err` with what was sent before.
    fn send_runs(&mut self, socket: &UdpSocket) -> Result<(u64, Vec<usize>), u64> {
        let (bufs, addrs) = (&self.bufs, &self.addrs);
        // Grouped by destination and size; queue order within a group (the sort is stable).
        // Only SRTP and SRTCP (first byte 128-191): ICE and DTLS keep their order.
        let mut order: Vec<usize> = (0..bufs.len()).collect();
        order.sort_by_key(|&i| (addrs.get(i).copied(), bufs.get(i).map(Vec::len)));
        let mut rest = Vec::new();
        let mut sent = 0;
        let mut start = 0;
        while start < order.len() {
            let key = |j: usize| {
                let i = order.get(j).copied().unwrap_or_default();
                (addrs.get(i).copied(), bufs.get(i).map(Vec::len))
            };
            let mut end = start + 1;
            while end < order.len() && key(end) == key(start) {
                end += 1;
            }
            for run in order
                .get(start..end)
                .unwrap_or_default()
                .chunks(gso_run(key(start).1))
            {
                let first = run.first().and_then(|&i| bufs.get(i));
                let rtp = first
                    .and_then(|b| b.first())
                    .is_some_and(|b| (128..192).contains(b));
                let to = run.first().and_then(|&i| addrs.get(i)).copied();
                let (Some(to), Some(first), true, true) = (to, first, rtp, run.len() >= 2) else {
                    rest.extend_from_slice(run);
                    continue;
                };
                let segments: Vec<&[u8]> = run
                    .iter()
                    .filter_map(|&i| bufs.get(i))
                    .map(Vec::as_slice)
                    .collect();
                match send_gso(socket, &segments, first.len(), to) {
                    Ok(()) => {
                        sent += run.len() as u64;
                        self.gso_sends += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(sent),
                    Err(e) => {
                        // EIO: the route's device cannot segment; the rest go one by one.
                        if e.raw_os_error() == Some(Errno::EIO as i32) {
                            self.gso = Some(false);
                        }
                        rest.extend_from_slice(run);
                    }
                }
            }
            start = end;
        }
        rest.sort_unstable();
        Ok((sent, rest))
    }

    /// Sends the datagrams at `indices` in `sendmmsg` calls of up to [`BATCH`].
    fn send_each(&self, socket: &UdpSocket, indices: &[usize]) -> u64 {
        let mut next = 0;
        let mut sent = 0;
        // Each pass takes at least one datagram off, so this ends.
        while next < indices.len() {
            let batch = indices.get(next..).unwrap_or_default();
            let batch = batch.get(..BATCH).unwrap_or(batch);
            let bufs: Vec<&[u8]> = batch
                .iter()
                .filter_map(|&i| self.bufs.get(i))
                .map(Vec::as_slice)
                .collect();
            let addrs: Vec<SocketAddr> = batch
                .iter()
                .filter_map(|&i| self.addrs.get(i))
                .copied()
                .collect();
            match send_batch(socket, &bufs, &addrs) {
                Ok(0) => next += 1,
                Ok(n) => {
                    sent += n as u64;
                    next += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::trace!(error = %e, to = ?addrs.first(), "Dropped a datagram the kernel refused.");
                    next += 1;
                }
            }
        }
        sent
    }
}

/// How many datagrams of `len` bytes one GSO send takes.
fn gso_run(len: Option<usize>) -> usize {
    let len = len.unwrap_or(GSO_BYTES).max(1);
    (GSO_BYTES / len).clamp(1, GSO_SEGMENTS)
}

/// Whether the kernel knows `UDP_SEGMENT` (Linux 4.18 and later): an older one would ignore
/// the control message and send a run as one large datagram.
fn gso_supported(socket: &UdpSocket) -> bool {
    getsockopt(socket, sockopt::UdpGsoSegment).is_ok()
}

/// One GSO send of `segments` (each `size` bytes) to `to`: one `sendmsg` whose buffers the
/// kernel cuts into datagrams of `size`.
fn send_gso(socket: &UdpSocket, segments: &[&[u8]], size: usize, to: SocketAddr) -> io::Result<()> {
    let size = u16::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let iovs: Vec<IoSlice<'_>> = segments.iter().map(|s| IoSlice::new(s)).collect();
    let addr = SockaddrStorage::from(to);
    let cmsgs = [ControlMessage::UdpGsoSegments(&size)];
    socket.try_io(Interest::WRITABLE, || {
        sendmsg(
            socket.as_raw_fd(),
            &iovs,
            &cmsgs,
            MsgFlags::MSG_DONTWAIT,
            Some(&addr),
        )
        .map(drop)
        .map_err(io::Error::from)
    })
}

/// One `sendmmsg` of `bufs[i]` to `addrs[i]`; the count the kernel took.
fn send_batch(socket: &UdpSocket, bufs: &[&[u8]], addrs: &[SocketAddr]) -> io::Result<usize> {
    let addrs: Vec<SocketAddrAny> = addrs.iter().map(|a| SocketAddrAny::from(*a)).collect();
    let iovs: Vec<[IoSlice<'_>; 1]> = bufs.iter().map(|b| [IoSlice::new(b)]).collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = iovs
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut msgs: Vec<MMsgHdr<'_>> = addrs
        .iter()
        .zip(&iovs)
        .zip(&mut controls)
        .map(|((addr, iov), control)| MMsgHdr::new_with_addr(addr, iov, control))
        .collect();
    socket.try_io(Interest::WRITABLE, || {
        sendmmsg(socket, &mut msgs, SendFlags::DONTWAIT).map_err(io::Error::from)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A socket on loopback that tokio already knows to be writable (the media task's socket
    /// is, from its first wake-up on; a fresh one reports nothing until the reactor ran).
    async fn bound() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind on loopback");
        socket.writable().await.expect("writable");
        socket
    }

    /// Reads datagrams from `socket` until `n` arrived or nothing comes for a second.
    async fn receive(socket: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while got.len() < n {
            let recv = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await;
            let Ok(Ok(len)) = recv else { break };
            got.push(buf.get(..len).unwrap_or_default().to_vec());
        }
        got
    }

    #[tokio::test]
    async fn every_datagram_reaches_its_own_destination_across_batches() {
        let (sender, a, b) = (bound().await, bound().await, bound().await);
        let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut queue = SendQueue::default();
        let total = 2 * BATCH + 7;
        let mut sent = 0;
        for i in 0..total {
            let to = if i % 2 == 0 { to_a } else { to_b };
            // Sizes differ, so that a datagram cut or run together with another would show.
            let datagram = vec![i as u8; 1 + (i * 37) % 1200];
            sent += queue.push(&sender, datagram, to);
        }
        sent += queue.flush(&sender);
        assert_eq!(sent, total as u64);
        let (got_a, got_b) = (
            receive(&a, total.div_ceil(2)).await,
            receive(&b, total / 2).await,
        );
        let expected = |parity: usize| -> Vec<Vec<u8>> {
            (0..total)
                .filter(|i| i % 2 == parity)
                .map(|i| vec![i as u8; 1 + (i * 37) % 1200])
                .collect()
        };
        assert_eq!(got_a, expected(0));
        assert_eq!(got_b, expected(1));
        assert_eq!(queue.flush(&sender), 0, "a flushed queue is empty");
    }

    #[tokio::test]
    async fn runs_of_equal_sized_rtp_go_in_gso_sends_and_arrive_datagram_by_datagram() {
        let (sender, a, b) = (bound().await, bound().await, bound().await);
        let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut queue = SendQueue::default();
        // SRTP-like datagrams (first byte 0x80) of two sizes to two players, interleaved as a
        // player's audio and video packets are, numbered in their second byte; and one
        // DTLS-like record (first byte 22), which is never part of a run.
        let datagram = |i: usize| -> Vec<u8> {
            let mut d = vec![0x80; if i % 4 < 2 { 1040 } else { 1100 }];
            if let Some(n) = d.get_mut(1) {
                *n = i as u8;
            }
            d
        };
        let total = 150;
        let mut sent = 0;
        for i in 0..total {
            sent += queue.push(&sender, datagram(i), if i % 2 == 0 { to_a } else { to_b });
        }
        sent += queue.push(&sender, vec![22, 254, 253], to_a);
        sent += queue.flush(&sender);
        assert_eq!(sent, total as u64 + 1);
        assert!(queue.gso_sends >= 4, "{} GSO sends", queue.gso_sends);
        let (got_a, got_b) = (
            receive(&a, total / 2 + 1).await,
            receive(&b, total / 2).await,
        );
        // Each datagram arrives whole and once; within one size, in the order queued.
        for (got, parity, extra) in [(got_a, 0, 1), (got_b, 1, 0)] {
            assert_eq!(got.len(), total / 2 + extra);
            for len in [1040, 1100] {
                let want: Vec<Vec<u8>> = (0..total)
                    .filter(|i| i % 2 == parity)
                    .map(datagram)
                    .filter(|d| d.len() == len)
                    .collect();
                let have: Vec<Vec<u8>> = got.iter().filter(|d| d.len() == len).cloned().collect();
                assert_eq!(have, want);
            }
            assert_eq!(got.iter().filter(|d| d.len() == 3).count(), extra);
        }
    }

    #[tokio::test]
    async fn a_refused_datagram_is_dropped_and_the_rest_still_go() {
        let (sender, a) = (bound().await, bound().await);
        let to_a = a.local_addr().unwrap();
        // An IPv6 destination on an IPv4 socket: the kernel refuses that one message.
        let unreachable: SocketAddr = "[::1]:9".parse().unwrap();
        let mut queue = SendQueue::default();
        queue.push(&sender, b"one".to_vec(), to_a);
        queue.push(&sender, b"refused".to_vec(), unreachable);
        queue.push(&sender, b"two".to_vec(), to_a);
        assert_eq!(queue.flush(&sender), 2);
        assert_eq!(receive(&a, 2).await, vec![b"one".to_vec(), b"two".to_vec()]);
    }
}
