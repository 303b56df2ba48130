//! What a room remembers beyond its live members: who is in it (presence) and its last chat
//! messages (history), on every process that shares the channel layer.
//!
//! This is a capability beside the channel layers rather than part of them: layers move
//! messages, the store keeps a little state per room. It is touched once per chat message sent
//! (one append, which gives the message its `offset`), twice per connection (join and leave),
//! and on the `presence` / `history` requests; never per delivery, so fan-out costs the same
//! with or without it.
//!
//! Two implementations: [`MemoryStore`] (one process; the in-memory layer) and [`RedisStore`]
//! (every process on one Redis; presence kept alive by heartbeats so a crashed process's members
//! disappear within the expiry).

mod memory;
mod redis_store;
pub mod stamp;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use memory::MemoryStore;
pub use redis_store::RedisStore;

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis refused or failed.
    #[error("room store (Redis): {0}")]
    Redis(#[from] redis::RedisError),
    /// The Redis URL could not be used.
    #[error("room store: {0}")]
    Config(#[from] room_chat_layers::LayerError),
    /// Redis did not answer within the command timeout.
    #[error("room store (Redis): no answer within {0:?}")]
    Timeout(Duration),
    /// A recent command failed; the store does not wait on Redis again for this long.
    #[error("room store (Redis): unavailable, retrying within {0:?}")]
    BackingOff(Duration),
    /// Redis held something this store did not write.
    #[error("room store (Redis): unreadable entry: {0}")]
    Corrupt(String),
}

/// How much history a room keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Chat messages kept per room (the newest ones).
    pub size: usize,
    /// Messages older than this are dropped; a room with no message for this long forgets its
    /// history entirely (and starts a new epoch).
    pub max_age: Duration,
}

/// A chat message as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredChat {
    /// Its place in the room's history (1, 2, 3, ... within an epoch).
    #[serde(default)]
    pub offset: u64,
    /// The notice text as delivered (`💬 hello`).
    pub message: String,
    /// The sender's display name, if any.
    pub sender: Option<String>,
    /// When it was appended, in milliseconds since the Unix epoch (for `max_age`).
    pub at_ms: u64,
}

/// Where an appended message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The message's offset.
    pub offset: u64,
    /// The history's epoch.
    pub epoch: String,
}

/// A history answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// The history's epoch now.
    pub epoch: String,
    /// The messages, oldest first.
    pub messages: Vec<StoredChat>,
    /// Whether they are every message after `since` (see the contract's `complete`).
    pub complete: bool,
}

/// One connection in a room's presence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberEntry {
    /// Unique across processes (process id and connection number).
    pub id: String,
    /// Display name, if any.
    pub name: Option<String>,
    /// When it joined, in milliseconds since the Unix epoch.
    pub joined_at_ms: u64,
}

/// A presence answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// Members in the room, listed or not.
    pub count: usize,
    /// At most the requested number of members, oldest first.
    pub members: Vec<MemberEntry>,
}

/// The presence and history of rooms. Implementations must be cheap to call from every
/// connection's task at once (no lock held across an await).
#[async_trait::async_trait]
pub trait RoomStore: Send + Sync + std::fmt::Debug + 'static {
    /// The Redis server this store keeps rooms on, as configured, when an append can travel
    /// inside the broadcast's own publish ([`RoomStore::append_script`]): the caller compares
    /// it with the server carrying the room's group. `None` (the default) when it cannot.
    fn script_server(&self) -> Option<&str> {
        None
    }

    /// The scripted send that appends a chat message to `room`'s history and publishes its
    /// broadcast `encoded` (the layer's bytes, with the [`stamp`] placeholders) stamped with
    /// its offset and epoch, in one Redis command. `None` when this store cannot, or `encoded`
    /// holds no placeholders; the caller then uses [`RoomStore::append`] and a plain broadcast.
    fn append_script(
        &self,
        room: &str,
        message: &str,
        sender: Option<&str>,
        encoded: &bytes::Bytes,
    ) -> Option<room_chat_layers::ScriptedSend> {
        let _ = (room, message, sender, encoded);
        None
    }

    /// Appends a chat message to `room`'s history; returns its offset and the epoch.
    async fn append(
        &self,
        room: &str,
        message: &str,
        sender: Option<&str>,
    ) -> Result<Stamp, StoreError>;

    /// The retained messages of `room` after `since` (the newest `limit` when `since` is
    /// `None`), oldest first, at most `limit`.
    async fn history(
        &self,
        room: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Result<History, StoreError>;

    /// Adds a member to `room`'s presence (kept alive until [`RoomStore::leave`]).
    async fn join(&self, room: &str, member: &MemberEntry) -> Result<(), StoreError>;

    /// Removes a member from `room`'s presence.
    async fn leave(&self, room: &str, member: &MemberEntry) -> Result<(), StoreError>;

    /// Who is in `room`: the count, and at most `max` members, oldest first.
    async fn presence(&self, room: &str, max: usize) -> Result<Presence, StoreError>;
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `ms` since the Unix epoch as RFC 3339 in UTC with milliseconds (`2026-01-01T12:00:00.000Z`).
pub fn rfc3339(ms: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(at).to_string()
}

/// A fresh epoch: 64 random bits in hex. Random rather than a counter or a clock, so a room
/// whose history was lost can never come back with an epoch a client has seen.
pub(crate) fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Picks the messages of a history answer out of everything retained (oldest first), after
/// dropping those older than `max_age`. `last` is the newest offset ever given in this epoch.
pub(crate) fn select(
    retained: impl IntoIterator<Item = StoredChat>,
    last: u64,
    since: Option<u64>,
    limit: usize,
    max_age: Duration,
    now_ms: u64,
) -> (Vec<StoredChat>, bool) {
    let oldest_kept = now_ms.saturating_sub(u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX));
    let live: Vec<StoredChat> = retained
        .into_iter()
        .filter(|m| m.at_ms >= oldest_kept)
        .collect();
    match since {
        Some(since) => {
            let after: Vec<StoredChat> = live.into_iter().filter(|m| m.offset > since).collect();
            // Gap-free from `since`: the first retained one follows it directly, or nothing
            // was written since (and `since` is not from the future of this epoch).
            let starts_right = match after.first() {
                Some(first) => first.offset == since + 1,
                None => since == last,
            };
            let complete = starts_right && after.len() <= limit;
            (after.into_iter().take(limit).collect(), complete)
        }
        None => {
            let skip = live.len().saturating_sub(limit);
            let newest: Vec<StoredChat> = live.into_iter().skip(skip).collect();
            let complete = match newest.first() {
                Some(first) => first.offset == 1,
                None => last == 0,
            };
            (newest, complete)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(offset: u64, at_ms: u64) -> StoredChat {
        StoredChat {
            offset,
            message: format!("💬 {offset}"),
            sender: None,
            at_ms,
        }
    }

    #[test]
    fn selection_says_whether_anything_is_missing() {
        let hour = Duration::from_secs(3600);
        let all = || (3..=6).map(|o| chat(o, 1_000));
        let offsets = |v: &[StoredChat]| v.iter().map(|m| m.offset).collect::<Vec<_>>();
        // After 4: 5 and 6, nothing missing.
        let (got, complete) = select(all(), 6, Some(4), 10, hour, 2_000);
        assert_eq!((offsets(&got), complete), (vec![5, 6], true));
        // After 1: 2 was dropped.
        let (got, complete) = select(all(), 6, Some(1), 10, hour, 2_000);
        assert_eq!((offsets(&got), complete), (vec![3, 4, 5, 6], false));
        // Cut by the limit: the oldest first, not complete.
        let (got, complete) = select(all(), 6, Some(2), 2, hour, 2_000);
        assert_eq!((offsets(&got), complete), (vec![3, 4], false));
        // Up to date.
        assert_eq!(select(all(), 6, Some(6), 10, hour, 2_000), (vec![], true));
        // The newest ones; 1 and 2 are gone.
        let (got, complete) = select(all(), 6, None, 2, hour, 2_000);
        assert_eq!((offsets(&got), complete), (vec![5, 6], false));
        // Too old.
        let (got, complete) = select(all(), 6, Some(4), 10, hour, 10_000_000);
        assert_eq!((offsets(&got), complete), (vec![], false));
    }
}
