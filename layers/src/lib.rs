//! Channel layers: how messages travel between WebSocket connections, within one process and
//! between processes.
//!
//! A channel layer gives every connection a **channel** (a unique name with an [`Inbox`]), lets
//! connections join named **groups**, and delivers messages sent to a channel or broadcast to a
//! group. It is the Rust counterpart of Python `fast-channels`' layers, and the two Redis layers
//! speak the Python layers' wire formats, so Rust and Python processes can share one Redis.
//!
//! Every layer is one shared local core (this process's channels, groups and memberships, the
//! fan-out into bounded queues with one drop policy, counters, health and lifecycle) under a
//! remote transport; there is one seam, the [`ChannelLayer`] trait, and one implementation per
//! backend:
//! - [`memory::MemoryLayer`]: a single process, no Redis;
//! - [`pubsub::RedisPubSubLayer`]: Redis pub/sub, fire-and-forget, lowest latency;
//! - [`queue::RedisQueueLayer`]: Redis sorted sets, messages wait for their receiver (up to
//!   `expiry`), per-channel `capacity`;
//! - [`cluster::RedisClusterPubSubLayer`]: pub/sub on Redis Cluster (sharded pub/sub).
//!
//! The service picks layers by alias from a [`LayerRegistry`]
//! ([`LayerRegistry::standard`] registers the five aliases of the tutorial;
//! [`LayerRegistry::standard_with`] does so with configured [`LayerLimits`];
//! [`LayerRegistry::standard_for`] builds and starts only the aliases an application names).
//!
//! **Topologies.** A Redis layer's `hosts` are ring members: `redis://host:port[/db]` (a Redis or
//! Valkey server) or `redis+sentinel://h1:26379?sentinel_master_name=NAME&addr=h2:26379` (the
//! master a group of sentinels watches: resolved and checked with `ROLE` on every connection,
//! `+switch-master` followed at once; see the `sentinel` module's docs). Names are spread over
//! the members by the Python layers' hash, so a Python process with the same `hosts` list
//! shares groups with ours. On Redis Cluster (`redis+cluster://seed:7000?addr=…`, ours alone:
//! the Python layers do not support it) the pub/sub layer is [`cluster::RedisClusterPubSubLayer`],
//! sharded pub/sub over hash-tagged partitions; the queue layer runs there with single-slot
//! commands only.
//!
//! **Health is end to end**: the pub/sub layer reports a member Up only while a liveness probe
//! published through its normal publish path comes back on its own subscription, and refuses
//! sends through a member that is Down; [`ChannelLayer::targets`] says which member is down.
//!
//! **Scripted sends.** A caller that keeps something in Redis beside a broadcast (the service's
//! room history) can have the pub/sub layer publish through a Lua script of its own
//! ([`ScriptedSend`], [`ChannelLayer::group_send_scripted`]), so its write and the publish are one
//! command in the layer's ordinary pipeline; [`ChannelLayer::script_server`] says on which server.
//!
//! Every layer is held to the same behaviour by one conformance suite (`tests/conformance.rs`),
//! and reports what it could not deliver ([`LayerStats`]) and whether its backend is reachable
//! ([`LayerHealth`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), room_chat_layers::LayerError> {
//! use room_chat_layers::{ChannelLayer, Group, LayerRegistry, Message};
//! use serde_json::json;
//!
//! let registry = LayerRegistry::standard(None)?; // no Redis: every alias in memory
//! let layer = registry.get("chat").expect("a standard alias");
//! let mut inbox = layer.new_channel().await?; // one per WebSocket connection
//! let room = Group::for_text("café au lait"); // any user text -> a valid group, checked once
//! layer.group_add(&room, inbox.name()).await?;
//! layer.group_send(&room, Message::from_value(json!({"type": "hello"}))?).await?;
//! assert_eq!(inbox.receive().await?.get("type"), Some(&json!("hello")));
//! registry.close_all().await?;
//! # Ok(()) }
//! ```

pub use error::LayerError;
pub use health::{LayerHealth, TargetHealth};
pub use inbox::Inbox;
pub use message::Message;
pub use names::{
    safe_group_name, validate_channel_name, validate_group_name, Group, MAX_NAME_LENGTH,
};
pub use registry::{human, positive_duration, LayerLimits, LayerRegistry, STANDARD_ALIASES};
pub use scripted::{LuaScript, ScriptedSend};
pub use stats::{DropReason, LayerStats};

pub mod cluster;
mod connect;
mod error;
mod health;
pub mod hosts;
mod inbox;
mod lifecycle;
mod local;
pub mod memory;
mod message;
mod names;
pub mod pubsub;
pub mod queue;
pub mod registry;
mod ring;
mod scripted;
pub(crate) mod sentinel;
mod stats;
#[cfg(feature = "test-support")]
pub mod testing;

/// The operations every channel layer offers. Object-safe: the service holds
/// `Arc<dyn ChannelLayer>` and never knows which backend it talks to.
///
/// Channel names come from [`new_channel`](ChannelLayer::new_channel); groups are [`Group`]s,
/// whose names were checked against the rules when they were made ([`Group::new`], or
/// [`Group::for_text`] for user text), so no group operation re-checks a name.
///
/// **Ordering.** A sender that awaits each call sees its messages to one channel, and its
/// broadcasts to one group, arrive in the order sent, on every layer (the conformance suite
/// checks zero inversions under concurrent senders). Messages of different senders interleave.
/// (On a pub/sub ring of several hosts, a direct message and a broadcast may travel through
/// different hosts and so may swap with each other.)
///
/// **Losses** are never silent: every message a layer gives up on is counted in
/// [`stats`](ChannelLayer::stats) under a [`DropReason`] and logged (rate-limited), and a backend
/// outage shows in [`health`](ChannelLayer::health).
#[async_trait::async_trait]
pub trait ChannelLayer: Send + Sync + 'static {
    /// Creates a channel owned by this process and returns its inbox. Dropping the inbox
    /// removes the channel and its group memberships.
    async fn new_channel(&self) -> Result<Inbox, LayerError>;

    /// Sends a message to one channel (possibly owned by another process). A message to a
    /// channel that no longer exists is dropped and counted, not an error (the receiver may go
    /// away at any time); a full channel is [`LayerError::ChannelFull`] where the layer can tell.
    async fn send(&self, channel: &str, message: Message) -> Result<(), LayerError>;

    /// Adds a channel to a group (idempotent; refreshes its membership time).
    async fn group_add(&self, group: &Group, channel: &str) -> Result<(), LayerError>;

    /// Removes a channel from a group (no error if it was not a member).
    async fn group_discard(&self, group: &Group, channel: &str) -> Result<(), LayerError>;

    /// Sends a message to every channel in a group. The message is encoded once; receivers
    /// that are full are skipped and counted, never waited for.
    async fn group_send(&self, group: &Group, message: Message) -> Result<(), LayerError>;

    /// The Redis server that would run a [`ScriptedSend`] to `group`: the ring member carrying
    /// the group's channel, as configured (the URL given in `hosts`), so a caller can check that
    /// its script's keys live there. `None` when this layer runs no scripts (the default).
    fn script_server(&self, group: &Group) -> Option<&str> {
        let _ = group;
        None
    }

    /// Sends a message to every channel in a group by running `script` on the group's server
    /// (see [`ScriptedSend`]): the script's writes and the publish are one command, queued and
    /// ordered like [`group_send`](ChannelLayer::group_send). Only for a layer whose
    /// [`script_server`](ChannelLayer::script_server) is `Some`; others return
    /// [`LayerError::Unsupported`].
    async fn group_send_scripted(
        &self,
        group: &Group,
        message: Message,
        script: ScriptedSend,
    ) -> Result<(), LayerError> {
        let _ = (group, message, script);
        Err(LayerError::Unsupported {
            layer: self.kind(),
            operation: "scripted group sends",
        })
    }

    /// Removes every channel, group membership and queued message of this layer (on Redis,
    /// every key under the layer's prefix, as the Python layers do). Existing inboxes then
    /// report [`LayerError::Closed`]. The layer stays usable.
    async fn flush(&self) -> Result<(), LayerError>;

    /// Stops background tasks, leaves groups joined by this process and closes connections.
    /// Inboxes report [`LayerError::Closed`]; later operations fail with it.
    async fn close(&self) -> Result<(), LayerError>;

    /// Live health for `/healthz` (the in-memory layer is always up): Down while any target
    /// of the transport is down.
    fn health(&self) -> tokio::sync::watch::Receiver<LayerHealth>;

    /// The health of each target of the transport (each Redis host of the ring, Sentinel
    /// master or Cluster partition), so `/healthz` and `/metrics` can say *which* one is down.
    /// Empty for the in-memory layer, which has no remote target.
    fn targets(&self) -> Vec<TargetHealth> {
        Vec::new()
    }

    /// Counters for `/metrics`.
    fn stats(&self) -> LayerStats;

    /// `"memory"`, `"redis_pubsub"` or `"redis_queue"`.
    fn kind(&self) -> &'static str;
}
