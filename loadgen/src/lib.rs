//! Switchboard's load generator: real-client traffic in the three dialects (Ant Media,
//! socket.io, raw WebSocket), the scenarios of the benchmark, and the no-parse relay that stands
//! for the practical limit of the machine. `bench/run.sh` drives it; `BENCHMARKS.md` explains it.
//!
//! Scenarios (each bounded in count and time; targets are loopback addresses only):
//! - [`scenario::flow`]: `throughput` (bounded window per direction) and `latency` (fixed
//!   offered rate, one-way latency p50/p99/p99.9);
//! - [`scenario::storm`]: K pairs completing join → start → offer → answer → candidates at once;
//! - [`scenario::idle`]: N idle sessions and the server's RSS per session;
//! - `burst` ([`scenario::flow`] with [`Pace::Burst`]): N senders each sending M messages as fast
//!   as they can, counting delivered, lost, out of order and disconnected.
//!
//! Every message carries its pair, sender, sequence number and send time inside the SDP or the
//! candidate string ([`sdp::Tag`]), so receivers check order, loss and routing on every path.
//!
//! # Layout
//! - [`sdp`]: Chrome-shaped SDP and candidates, and the tag they carry.
//! - [`client`]: connecting and speaking each dialect; parsing what servers send.
//! - [`polling`]: socket.io as socket.io-client connects by default (long-polling, then the
//!   upgrade).
//! - [`scenario`]: the scenarios.
//! - [`relay`]: the no-parse limit relay.
//! - [`report`]: the markdown tables and ratios.
//! - [`clock`], [`stats`]: one process clock; percentiles.

pub mod client;
pub mod clock;
pub mod polling;
pub mod relay;
pub mod report;
pub mod scenario;
pub mod sdp;
pub mod shapes;
pub mod stats;

pub use client::{Dialect, Server, Target};
pub use scenario::flow::{FlowConfig, FlowReport, Pace};
pub use scenario::idle::{IdleConfig, IdleReport};
pub use scenario::storm::{StormConfig, StormDialects, StormReport};
