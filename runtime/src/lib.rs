//! The consumer runtime: one task per WebSocket connection, joining a generated protocol to a
//! channel layer. It knows nothing of rooms; an app plugs in through the [`Consumer`] trait,
//! the way a chanx consumer subclasses `AsyncJsonWebsocketConsumer`.
//!
//! | module | what |
//! |---|---|
//! | [`consumer`] | the [`Consumer`] trait an app implements, the handshake it judges, the outcome of a frame |
//! | [`connection`] | [`Connection`], what handlers use: groups, sending, broadcasting |
//! | [`session`] | [`serve`]: the connection's one task, its poll order and flow control |
//! | `limit` | the inbound rate limit, a token bucket that paces a client's reading |
//! | `writer` | batched, deadline-bounded writes to the socket |
//! | [`shutdown`] | [`Shutdown`], the two-phase graceful shutdown passed into every task |
//! | [`close`] | close codes and the reason each closure is counted under |
//! | [`metrics`] | [`RuntimeMetrics`], counters the service renders at `/metrics` |
//!
//! The session is generic over its socket (a `Stream` and `Sink` of axum WebSocket messages),
//! so its behaviours (slow consumers, write batching, the closing handshake, the shutdown
//! drain, the idle timeout) are unit-tested over an in-memory socket with a paused clock.

mod broadcast;
pub mod close;
pub mod connection;
pub mod consumer;
mod limit;
pub mod metrics;
pub mod session;
pub mod settings;
pub mod shutdown;
mod writer;

#[cfg(test)]
mod tests;

pub use broadcast::GROUP_MESSAGE_TYPE;
pub use close::{close_code, CloseReason};
pub use connection::{Connection, ConsumerError};
pub use consumer::{Consumer, FrameOutcome, Handshake, Refusal};
pub use limit::rate_limit_notice;
pub use metrics::RuntimeMetrics;
pub use session::serve;
pub use settings::SessionSettings;
pub use shutdown::Shutdown;
