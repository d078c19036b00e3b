//! Batched UDP sends: what one `drive` writes leaves in `sendmmsg` calls of up to [`BATCH`]
//! datagrams instead of one `sendto` each. At 16 × 16 the gateway writes some 25,000 datagrams a
//! second, and every system call entry it saves is CPU per forwarded packet.

use std::io::{self, IoSlice};
use std::net::SocketAddr;

use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per `sendmmsg` call (the kernel takes up to 1024).
pub const BATCH: usize = 64;

/// Datagrams waiting for the next `sendmmsg`. str0m hands each over as an owned buffer, so
/// they are queued without a copy.
#[derive(Debug, Default)]
pub struct SendQueue {
    bufs: Vec<Vec<u8>>,
    addrs: Vec<SocketAddr>,
}

impl SendQueue {
    /// Queues `datagram` for `to`, sending the batch first when it is full. Returns the
    /// datagrams that left the socket.
    pub fn push(&mut self, socket: &UdpSocket, datagram: Vec<u8>, to: SocketAddr) -> u64 {
        let sent = if self.bufs.len() >= BATCH {
            self.flush(socket)
        } else {
            0
        };
        self.bufs.push(datagram);
        self.addrs.push(to);
        sent
    }

    /// Sends every queued datagram. One the kernel refuses (an address it cannot reach) is
    /// dropped and the rest still go; a full socket buffer drops the rest, as a network would.
    /// Returns the datagrams that left the socket.
    pub fn flush(&mut self, socket: &UdpSocket) -> u64 {
        let mut next = 0;
        let mut sent = 0;
        // Each pass takes at least one datagram off, so this ends.
        while next < self.bufs.len() {
            let bufs = self.bufs.get(next..).unwrap_or_default();
            let addrs = self.addrs.get(next..).unwrap_or_default();
            match send_batch(socket, bufs, addrs) {
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
        self.bufs.clear();
        self.addrs.clear();
        sent
    }
}

/// One `sendmmsg` of `bufs[i]` to `addrs[i]`; the count the kernel took.
fn send_batch(socket: &UdpSocket, bufs: &[Vec<u8>], addrs: &[SocketAddr]) -> io::Result<usize> {
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
