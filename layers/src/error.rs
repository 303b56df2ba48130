//! What can go wrong when talking to a channel layer.
//!
//! One enum for every layer so that the service can react to a failure without knowing which
//! backend it talks to (a full channel is a full channel, whether it lives in memory or in
//! Redis). The variants stay concrete and unboxed on purpose: `send` and `group_send` are the hot
//! path, and a caller that wants to distinguish `ChannelFull` from `Unavailable` should be able to
//! `match` without downcasting (mini-redis makes the same choice for its `Error`).

/// An error returned by a [`ChannelLayer`](crate::ChannelLayer) operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The target channel already holds `capacity` undelivered messages; the message was not
    /// queued. The sender decides whether to retry, drop or disconnect the slow receiver.
    #[error("channel {channel:?} is full")]
    ChannelFull {
        /// The channel that refused the message.
        channel: String,
    },
    /// A channel name breaks the naming rules (ASCII alphanumerics, `-`, `_`, `.`, an optional
    /// `!` section, fewer than 100 characters).
    #[error("invalid channel name {name:?}: {reason}")]
    InvalidChannelName {
        /// The offending name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A group name breaks the naming rules (ASCII alphanumerics, `-`, `_`, `.`, fewer than 100
    /// characters), from [`Group::new`](crate::Group::new). Map user-chosen names with
    /// [`Group::for_text`](crate::Group::for_text) instead.
    #[error("invalid group name {name:?}: {reason}")]
    InvalidGroupName {
        /// The offending name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The operation needs a channel that lives in this process (for example `group_add` on the
    /// pub/sub layer, whose memberships are process-local).
    #[error("channel {channel:?} does not belong to this process")]
    NotLocal {
        /// The channel that was named.
        channel: String,
    },
    /// A message carries a key that the layer reserves for its own routing (`__asgi_channel__`).
    #[error("message uses the reserved key {key:?}")]
    ReservedKey {
        /// The reserved key.
        key: &'static str,
    },
    /// A value that should have been a message is not a JSON object.
    #[error("a message must be a JSON object, got {found}")]
    NotAnObject {
        /// The JSON type that was found instead.
        found: &'static str,
    },
    /// The backend cannot be reached right now (connection refused, lost, or timed out). The
    /// layer keeps reconnecting in the background; its health reports the outage.
    #[error("{layer} layer unavailable ({host}): {reason}")]
    Unavailable {
        /// The layer kind (`redis_pubsub`, `redis_queue`).
        layer: &'static str,
        /// Which host of the ring (the URL without credentials).
        host: String,
        /// What the client library said.
        reason: String,
    },
    /// The layer was closed, or the inbox's channel was removed by `flush`/`close`.
    #[error("channel layer closed")]
    Closed,
    /// A message could not be encoded as msgpack.
    #[error("cannot encode message: {0}")]
    Encode(#[source] rmp_serde::encode::Error),
    /// Bytes from the backend are not a msgpack map with string keys.
    #[error("cannot decode message: {0}")]
    Decode(#[source] rmp_serde::decode::Error),
    /// A layer setting is unusable (for example an unparsable Redis URL).
    #[error("invalid layer configuration: {0}")]
    Config(String),
    /// This layer does not offer the operation (for example a scripted send on a layer without
    /// [`script_server`](crate::ChannelLayer::script_server)).
    #[error("the {layer} layer does not support {operation}")]
    Unsupported {
        /// The layer kind.
        layer: &'static str,
        /// What was asked for.
        operation: &'static str,
    },
}
