//! Accept-time accounting shared by every listener of a gateway: TCP connections per IP
//! address (`max_tcp_connections_per_ip`) and the file-descriptor budget that keeps
//! `reserved_fds` free below `RLIMIT_NOFILE`.
//!
//! Past the budget a new connection is still accepted (the kernel already gave it a
//! descriptor) but, while a small health reserve lasts, may only ask for `/healthz` or `/readyz`
//! once; past that too it is closed at once. Only clients from `[limits] health_check_cidrs`
//! and trusted proxies get reserve places: a flood from many other addresses that kept
//! re-taking them (each for up to 2 s) would otherwise starve the probes. Connections already
//! open, established calls among them, keep their descriptors and go on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Why a connection was closed at accept or before its first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptRefusal {
    /// `max_tcp_connections_per_ip` reached.
    TooManyFromIp,
    /// Open descriptors reached the budget and the health reserve is in use.
    NoDescriptors,
    /// A trusted proxy's PROXY header did not parse or did not arrive in time.
    ProxyHeaderMalformed,
    /// A peer not in `[proxy] trusted` connected to a `proxy_protocol` listener.
    ProxyUntrusted,
    /// A trusted proxy's `Forwarded` / `X-Forwarded-For` header did not parse.
    ForwardedMalformed,
}

impl AcceptRefusal {
    /// The `reason` label of `switchboard_connections_refused_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            AcceptRefusal::TooManyFromIp => "too_many_tcp_connections",
            AcceptRefusal::NoDescriptors => "fd_headroom",
            AcceptRefusal::ProxyHeaderMalformed => "proxy_header_malformed",
            AcceptRefusal::ProxyUntrusted => "proxy_untrusted",
            AcceptRefusal::ForwardedMalformed => "forwarded_header_malformed",
        }
    }
}

/// Open connections of one gateway, per IP and in all.
#[derive(Debug)]
pub struct FrontDoor {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    open: AtomicUsize,
    health_open: AtomicUsize,
    /// Connections allowed before the reserve (see [`FrontDoor::with_descriptors`]).
    budget: usize,
    health_slots: usize,
}

/// What an admitted connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Anything the listener serves.
    Full,
    /// One `/healthz` or `/readyz` request, then close.
    HealthOnly,
}

/// One accepted connection's place; released when dropped.
#[derive(Debug)]
pub struct TcpSlot {
    door: Arc<FrontDoor>,
    ip: Option<IpAddr>,
    /// What the connection may do.
    pub admitted: Admitted,
}

impl FrontDoor {
    /// A front door for a process whose soft `RLIMIT_NOFILE` is `nofile`, with `open_now`
    /// descriptors already open, keeping `reserved` of them free for everything else (log
    /// files, Redis, the store, plugins) and a quarter of those for health checks.
    pub fn with_descriptors(nofile: u64, open_now: usize, reserved: usize) -> Self {
        let nofile = usize::try_from(nofile).unwrap_or(usize::MAX);
        Self {
            per_ip: Mutex::default(),
            open: AtomicUsize::new(0),
            health_open: AtomicUsize::new(0),
            budget: nofile.saturating_sub(open_now).saturating_sub(reserved),
            health_slots: (reserved / 4).max(1),
        }
    }

    /// Takes a place for a connection just accepted. `ip` is counted against `per_ip_cap`
    /// unless `None` (a trusted proxy: its clients are counted once known). Past the budget,
    /// only a connection that `may_use_reserve` (a health-check network or a trusted proxy)
    /// gets a health place.
    pub fn admit(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        per_ip_cap: usize,
        may_use_reserve: bool,
    ) -> Result<TcpSlot, AcceptRefusal> {
        let admitted = if self.open.load(Ordering::Relaxed) < self.budget {
            Admitted::Full
        } else if !may_use_reserve {
            return Err(AcceptRefusal::NoDescriptors);
        } else if self.health_open.fetch_add(1, Ordering::Relaxed) < self.health_slots {
            Admitted::HealthOnly
        } else {
            self.health_open.fetch_sub(1, Ordering::Relaxed);
            return Err(AcceptRefusal::NoDescriptors);
        };
        let mut slot = TcpSlot {
            door: Arc::clone(self),
            ip: None,
            admitted,
        };
        if admitted == Admitted::Full {
            self.open.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(ip) = ip {
            slot.claim_ip(ip, per_ip_cap)?;
        }
        Ok(slot)
    }

    /// Connections open now (health-only ones not included).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_ip.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TcpSlot {
    /// Counts this connection against `ip`'s cap (once: a second claim is ignored).
    pub fn claim_ip(&mut self, ip: IpAddr, cap: usize) -> Result<(), AcceptRefusal> {
        if self.ip.is_some() {
            return Ok(());
        }
        let ip = ip.to_canonical();
        let mut counts = self.door.counts();
        let n = counts.entry(ip).or_default();
        if *n >= cap {
            if *n == 0 {
                counts.remove(&ip);
            }
            return Err(AcceptRefusal::TooManyFromIp);
        }
        *n += 1;
        self.ip = Some(ip);
        Ok(())
    }
}

impl Drop for TcpSlot {
    fn drop(&mut self) {
        match self.admitted {
            Admitted::Full => self.door.open.fetch_sub(1, Ordering::Relaxed),
            Admitted::HealthOnly => self.door.health_open.fetch_sub(1, Ordering::Relaxed),
        };
        if let Some(ip) = self.ip {
            let mut counts = self.door.counts();
            if let Some(n) = counts.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }
}

/// A connection's stream that holds its [`TcpSlot`]: the place is released when the stream is
/// dropped, which for an upgraded WebSocket is when its session ends, not when HTTP hands the
/// stream over.
#[derive(Debug)]
pub struct Counted<S> {
    io: S,
    _slot: TcpSlot,
}

impl<S> Counted<S> {
    /// `io`, holding `slot` for as long as it lives.
    pub fn new(io: S, slot: TcpSlot) -> Self {
        Self { io, _slot: slot }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft limit in force.
pub fn raise_nofile_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "Cannot raise the open-files limit; keeping the current one.");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Descriptors this process has open now (`/proc/self/fd`); 64 where that cannot be read.
pub fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(64, Iterator::count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0; 4]))
    }

    #[test]
    fn per_ip_cap_holds_and_is_released_on_drop() {
        let door = Arc::new(FrontDoor::with_descriptors(10_000, 10, 64));
        let a = door.admit(Some(ip("10.0.0.1")), 2, true);
        let b = door.admit(Some(ip("10.0.0.1")), 2, true);
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(
            door.admit(Some(ip("::ffff:10.0.0.1")), 2, true).err(),
            Some(AcceptRefusal::TooManyFromIp)
        );
        assert!(door.admit(Some(ip("10.0.0.2")), 2, true).is_ok());
        assert!(
            door.admit(None, 2, true).is_ok(),
            "a trusted proxy is not capped"
        );
        drop(a);
        assert!(door.admit(Some(ip("10.0.0.1")), 2, true).is_ok());
        drop(b);
        assert_eq!(door.open(), 0);
        assert!(door.counts().is_empty(), "no empty entries left behind");
    }

    #[test]
    fn past_the_budget_only_health_checks_then_nothing() {
        // 100 descriptors, 20 open, 64 reserved: 16 connections, then 16 health-only ones.
        let door = Arc::new(FrontDoor::with_descriptors(100, 20, 64));
        let full: Vec<_> = (0..16)
            .filter_map(|_| door.admit(None, 1, true).ok())
            .collect();
        assert!(full.iter().all(|s| s.admitted == Admitted::Full));
        assert_eq!(full.len(), 16);
        let health: Vec<_> = (0..16)
            .filter_map(|_| door.admit(None, 1, true).ok())
            .collect();
        assert_eq!(health.len(), 16);
        assert!(health.iter().all(|s| s.admitted == Admitted::HealthOnly));
        assert_eq!(
            door.admit(None, 1, true).err(),
            Some(AcceptRefusal::NoDescriptors)
        );
        drop(health);
        assert_eq!(
            door.admit(None, 1, true).map(|s| s.admitted).ok(),
            Some(Admitted::HealthOnly)
        );
        drop(full);
        assert_eq!(
            door.admit(None, 1, true).map(|s| s.admitted).ok(),
            Some(Admitted::Full)
        );
    }

    #[test]
    fn reserve_places_are_only_for_health_check_networks() {
        // 100 descriptors, 20 open, 64 reserved: 16 connections, then the reserve.
        let door = Arc::new(FrontDoor::with_descriptors(100, 20, 64));
        let _full: Vec<_> = (0..16)
            .filter_map(|_| door.admit(Some(ip("10.0.0.9")), 100, false).ok())
            .collect();
        // A flood from outside the health-check networks never gets a reserve place...
        for _ in 0..100 {
            assert_eq!(
                door.admit(Some(ip("10.0.0.9")), 100, false).err(),
                Some(AcceptRefusal::NoDescriptors)
            );
        }
        // ...so every one of them is still there for the probes.
        let probes: Vec<_> = (0..16)
            .filter_map(|_| door.admit(Some(ip("127.0.0.1")), 100, true).ok())
            .collect();
        assert_eq!(probes.len(), 16);
        assert!(probes.iter().all(|s| s.admitted == Admitted::HealthOnly));
    }
}
