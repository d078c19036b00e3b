//! The budget of engine.io POST bytes that sessions have not taken yet, per client address and
//! in total (`engineio3_undelivered_bytes_per_ip`, `engineio3_undelivered_bytes_total`: named
//! when only engine.io 3 POSTs were under it; engine.io 4 POSTs are too).
//!
//! An engine.io 3 POST is read whole and answered at once (`post3`), so what its packets weigh
//! stays in the gateway until the session relays them; an engine.io 4 POST (`post4`) waits in
//! its session's inbound channel, several deep, behind the one being relayed. Without a bound
//! above the session, one address holding `max_connections_per_ip` sessions whose partners
//! never read could pin that many POST caps (v3), or several `maxPayload`s each (v4). Here a
//! POST reserves its bytes before its body is read (all of an announced `Content-Length` at
//! once; a chunked body chunk by chunk: `reserve`), first under its address's budget, then
//! under the total, and the session gives them back packet by packet as it takes them
//! ([`Held::release`]). A POST that does not fit waits, its body unread, in line behind the
//! earlier ones of its address; so one address's waiting POSTs queue up against the total with
//! at most its own budget, and other addresses' POSTs go on past them. tokio's semaphores are
//! the two budgets: they grant in arrival order, and a waiter that goes away (its client closed
//! the connection) leaves the line.
//!
//! Both sizes are read at start (a reload does not change them): a semaphore's size is fixed
//! while reservations are held against it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The per-address and total budgets of one gateway (shared by all its listeners).
#[derive(Debug)]
pub struct PostBudget {
    per_ip_bytes: usize,
    total_bytes: usize,
    total: Arc<Semaphore>,
    addresses: Mutex<Addresses>,
    /// POSTs waiting for room now (a gauge for `/metrics`).
    waiting: AtomicUsize,
}

/// Each address's budget while a POST of it holds or waits for bytes; a dead entry is pruned
/// once the map has doubled since the last prune, so an address that left costs nothing
/// for long.
#[derive(Debug, Default)]
struct Addresses {
    map: HashMap<IpAddr, Weak<Semaphore>>,
    prune_at: usize,
}

/// One address's budget, taken by each of its engine.io sessions for its lifetime: every
/// reservation of a session comes from the one semaphore, so what they hold can be merged.
#[derive(Debug, Clone)]
pub struct AddressBudget(Arc<Semaphore>);

/// Bytes held under both budgets; they go back when this is dropped or in part with
/// [`Held::release`].
#[derive(Debug)]
pub struct Held {
    address: OwnedSemaphorePermit,
    total: OwnedSemaphorePermit,
}

/// Why a reservation was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfit {
    /// More than an address's whole budget: it can never fit.
    Never,
}

impl PostBudget {
    /// Budgets of `per_ip` bytes for each address and `total` bytes in all (config checks that
    /// `per_ip` fits in a `u32` and `total` is at least `per_ip`).
    pub fn new(per_ip: usize, total: usize) -> Self {
        PostBudget {
            per_ip_bytes: per_ip,
            total_bytes: total,
            total: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            addresses: Mutex::default(),
            waiting: AtomicUsize::new(0),
        }
    }

    /// The most one POST may reserve: an address's whole budget.
    pub fn per_ip(&self) -> usize {
        self.per_ip_bytes
    }

    /// Reserves `bytes` for a POST under `address`, waiting for room there and then under the
    /// total. Cancel-safe: dropped while waiting, it holds nothing.
    pub async fn reserve(&self, address: &AddressBudget, bytes: usize) -> Result<Held, Unfit> {
        let n = u32::try_from(bytes).map_err(|_| Unfit::Never)?;
        if bytes > self.per_ip_bytes {
            return Err(Unfit::Never);
        }
        let address = Arc::clone(&address.0);
        let _waiting = Waiting::new(&self.waiting);
        // Neither semaphore is ever closed, so acquiring fails only if that changes.
        let address = address
            .acquire_many_owned(n)
            .await
            .map_err(|_| Unfit::Never)?;
        let total = Arc::clone(&self.total)
            .acquire_many_owned(n)
            .await
            .map_err(|_| Unfit::Never)?;
        Ok(Held { address, total })
    }

    /// Bytes held in all now.
    pub fn held(&self) -> usize {
        self.total_bytes
            .min(Semaphore::MAX_PERMITS)
            .saturating_sub(self.total.available_permits())
    }

    /// Appends the budget's gauges to a `/metrics` body.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP switchboard_engineio3_post_bytes Bytes of engine.io 3 and 4 POSTs reserved \
             under the budget and not taken by their sessions yet.\n\
             # TYPE switchboard_engineio3_post_bytes gauge\n\
             switchboard_engineio3_post_bytes {}\n\
             # HELP switchboard_engineio3_posts_waiting engine.io 3 and 4 POSTs waiting for room \
             in the budget, their bodies unread.\n\
             # TYPE switchboard_engineio3_posts_waiting gauge\n\
             switchboard_engineio3_posts_waiting {}",
            self.held(),
            self.waiting.load(Ordering::Relaxed),
        );
    }

    /// The budget of `ip`, made when none of its sessions holds it.
    pub fn address(&self, ip: IpAddr) -> AddressBudget {
        let ip = ip.to_canonical();
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = addresses.map.get(&ip).and_then(Weak::upgrade) {
            return AddressBudget(live);
        }
        if addresses.map.len() >= addresses.prune_at {
            addresses.map.retain(|_, budget| budget.strong_count() > 0);
            addresses.prune_at = (2 * addresses.map.len()).max(64);
        }
        let budget = Arc::new(Semaphore::new(self.per_ip_bytes));
        addresses.map.insert(ip, Arc::downgrade(&budget));
        AddressBudget(budget)
    }
}

impl Held {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.total.num_permits()
    }

    /// Gives back `bytes` of what is held (all of it, if it holds less).
    pub fn release(&mut self, bytes: usize) {
        let bytes = bytes.min(self.bytes());
        drop(self.address.split(bytes));
        drop(self.total.split(bytes));
    }

    /// Holds what `other` holds too (both reserved under one [`AddressBudget`]).
    pub fn merge(&mut self, other: Held) {
        self.address.merge(other.address);
        self.total.merge(other.total);
    }
}

/// Counts one waiting POST while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

    #[tokio::test]
    async fn a_post_waits_for_its_address_and_gets_in_as_the_session_takes_packets() {
        let budget = Arc::new(PostBudget::new(100, 1000));
        let mut first = budget.reserve(&budget.address(A), 80).await.expect("fits");
        let second = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(&budget.address(A), 50).await }
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "80 + 50 is over the address's 100");
        assert_eq!(budget.waiting.load(Ordering::Relaxed), 1);
        first.release(20);
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "60 + 50 is still over");
        first.release(10);
        let second = second
            .await
            .expect("joined")
            .expect("fits once 50 are free");
        assert_eq!(
            (first.bytes(), second.bytes(), budget.held()),
            (50, 50, 100)
        );
        assert_eq!(budget.waiting.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn one_address_s_waiting_posts_do_not_hold_up_another_address() {
        let budget = Arc::new(PostBudget::new(100, 250));
        let _full = budget.reserve(&budget.address(A), 100).await.expect("fits");
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(&budget.address(A), 100).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        let other = budget
            .reserve(&budget.address(B), 100)
            .await
            .expect("B has its own budget");
        assert_eq!(other.bytes(), 100);
        waiting.abort();
    }

    #[tokio::test]
    async fn the_total_bounds_every_address_together_and_a_gone_waiter_holds_nothing() {
        let budget = Arc::new(PostBudget::new(100, 150));
        let _a = budget.reserve(&budget.address(A), 100).await.expect("fits");
        let b = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(&budget.address(B), 100).await }
        });
        tokio::task::yield_now().await;
        assert!(!b.is_finished(), "100 + 100 is over the total of 150");
        b.abort();
        let _ = b.await;
        assert_eq!(budget.held(), 100, "the aborted waiter took nothing");
        assert_eq!(budget.waiting.load(Ordering::Relaxed), 0);
        let small = budget
            .reserve(&budget.address(B), 50)
            .await
            .expect("50 fit");
        drop(small);
        assert_eq!(budget.held(), 100);
    }

    #[tokio::test]
    async fn more_than_an_address_s_budget_never_fits() {
        let budget = PostBudget::new(100, 1000);
        assert_eq!(
            budget.reserve(&budget.address(A), 101).await.err(),
            Some(Unfit::Never)
        );
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn held_bytes_merge_and_release_in_parts() {
        let budget = PostBudget::new(100, 1000);
        let mut held = budget.reserve(&budget.address(A), 30).await.expect("fits");
        held.merge(budget.reserve(&budget.address(A), 40).await.expect("fits"));
        assert_eq!((held.bytes(), budget.held()), (70, 70));
        held.release(25);
        assert_eq!((held.bytes(), budget.held()), (45, 45));
        held.release(1000);
        assert_eq!((held.bytes(), budget.held()), (0, 0));
        drop(held);
        assert_eq!(
            budget
                .reserve(&budget.address(A), 100)
                .await
                .map(|h| h.bytes()),
            Ok(100)
        );
    }

    #[tokio::test]
    async fn an_address_whose_posts_are_gone_is_pruned() {
        let budget = PostBudget::new(100, 100_000);
        for last in 0..200u8 {
            let ip = IpAddr::V4(Ipv4Addr::new(127, 1, 0, last));
            drop(budget.reserve(&budget.address(ip), 10).await.expect("fits"));
        }
        let live = budget
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len();
        assert!(live < 200, "dead entries were pruned: {live} left");
    }
}
