//! Benchmarks for the room chat service, as a library the binaries and the smoke test share.
//!
//! - [`fanout`], [`idle`] and [`churn`] are the load generator's scenarios: real WebSocket
//!   clients over real TCP that speak the room chat protocol and measure what they see
//!   (deliveries/s, send→receive latency, loss, duplicates, cross-room leaks, order inversions,
//!   server memory per connection, connect/leave handling).
//! - [`reference`](mod@reference) is a minimal broadcast server (no JSON, no channel layers, bounded queues):
//!   the practical ceiling on the machine, measured in the same run so reports can give ratios
//!   that survive a change of machine.
//! - [`probe`] is the format of the measured chat messages; [`client`] opens the connections;
//!   [`stats`] keeps the per-connection bookkeeping; [`process`] reads a server's RSS and CPU
//!   time from `/proc`.
//!
//! Figures are reports, never test assertions: the smoke test (`tests/smoke.rs`) only checks
//! behaviour (no loss, no inversions, no leaks) on tiny numbers.

pub mod churn;
pub mod client;
pub mod fanout;
pub mod idle;
pub mod probe;
pub mod process;
pub mod reference;
pub mod stats;
