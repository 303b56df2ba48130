//! The room store on Redis, shared by every process that uses the same Redis.
//!
//! Per room (the name hex-encoded inside a `{...}` hash tag, so one room's keys stay on one
//! Cluster slot and any text is a safe key):
//!
//! | key | type | what |
//! |---|---|---|
//! | `room-chat:{<hex>}:meta` | hash | `epoch` and `seq` (the newest offset): one key, so they are lost together |
//! | `room-chat:{<hex>}:log` | list | the newest `HISTORY_SIZE` messages, `<offset> <json>`, oldest first |
//! | `room-chat:{<hex>}:presence` | sorted set | members (JSON) scored by their last heartbeat, in ms |
//!
//! `meta` and `log` expire `HISTORY_MAX_AGE` after the room's last message; when `meta` is gone
//! (expired, flushed, evicted) the next message starts a new epoch at offset 1. A member's entry
//! is re-added by its process every `PRESENCE_EXPIRY / 3`; readers first drop entries whose
//! heartbeat is older than `PRESENCE_EXPIRY`, so the members of a process that died vanish
//! within that time (process clocks must agree to well within it). Keys the Python layers use
//! are never touched.
//!
//! A chat message is appended by the script that also publishes its broadcast, stamped with the
//! offset and epoch ([`RoomStore::append_script`], run by the pub/sub layer's publisher as a
//! [`ScriptedSend`]), whenever this store's server is the one carrying the room's group; by a
//! separate [`RoomStore::append`] before the broadcast otherwise (a Cluster, another ring member).
//!
//! `REDIS_URL`'s first member may be a plain server, a Sentinel group or a Cluster: the store
//! uses the layers' command connection for it ([`RedisCommands`]), which follows a Sentinel
//! failover and routes each command to the node owning its slot. Every command, pipeline and
//! script here names the keys of one room only, so on a Cluster each stays within the room's
//! slot; the heartbeat, which covers every room of the process, is one pipeline per room there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use redis::Script;
use room_chat_layers::hosts::{ConnectionSettings, RedisCommands};
use room_chat_layers::{LuaScript, ScriptedSend};

use super::{
    new_epoch, now_ms, select, stamp, History, MemberEntry, Presence, Retention, RoomStore, Stamp,
    StoreError, StoredChat,
};

/// The body of an append, shared by both scripts: starts an epoch if the room has none, takes
/// the next offset, pushes, trims to the retained size and renews the expiry. One script, so two
/// processes appending at once cannot give the same offset or interleave push and trim. Expects
/// the locals `new_epoch`, `entry`, `keep` and `ttl`; leaves `offset` and `epoch`.
macro_rules! append_body {
    () => {
        r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = new_epoch
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
local offset = redis.call('HINCRBY', KEYS[1], 'seq', 1)
if keep > 0 then
  redis.call('RPUSH', KEYS[2], offset .. ' ' .. entry)
  redis.call('LTRIM', KEYS[2], -keep, -1)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('PEXPIRE', KEYS[1], ttl)
"
    };
}

/// Appends one message and returns its offset and the epoch (for a message sent apart from the
/// append: on a Cluster, or when the room's group is carried by another server than the store).
const APPEND: &str = concat!(
    "local new_epoch, entry, keep, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]",
    append_body!(),
    "return {offset, epoch}"
);

/// Appends one message and publishes its broadcast stamped with the offset and epoch (see the
/// `stamp` module), returning `PUBLISH`'s reply: the whole chat message in one command, run by
/// the channel layer's publisher in place of its `PUBLISH`. `ARGV[1]` and `ARGV[2]` are the
/// channel and the encoded broadcast (the layer's convention; the broadcast is published from
/// its parts instead); then the epoch to start, the entry, the size and the expiry as for
/// [`APPEND`]; then the broadcast's three parts around its placeholders, joined with the
/// msgpack encodings of the offset and the epoch.
const APPEND_AND_PUBLISH: &str = concat!(
    "local new_epoch, entry, keep, ttl = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]",
    append_body!(),
    "return redis.call('PUBLISH', ARGV[1], ARGV[7] .. cmsgpack.pack(offset) .. ARGV[8] .. cmsgpack.pack(epoch) .. ARGV[9])"
);

/// [`APPEND_AND_PUBLISH`], hashed once.
static APPEND_AND_PUBLISH_SCRIPT: std::sync::LazyLock<LuaScript> =
    std::sync::LazyLock::new(|| LuaScript::new(APPEND_AND_PUBLISH));

/// Reads the epoch, the newest offset and the retained messages; a room with no epoch gets one
/// (so a client that asks before anyone spoke has an epoch to compare later messages with).
const READ: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {epoch, redis.call('HGET', KEYS[1], 'seq'), redis.call('LRANGE', KEYS[2], 0, -1)}
";

/// After a failed or timed-out command, how long every command fails at once instead of waiting
/// on Redis again. The store sits on the path of every chat message sent (the append that gives
/// it its offset): without this, a Redis that hangs would hold each sender's messages for the
/// whole command timeout, one after the other, and deliver them late; with it, messages go out
/// at once without an offset until Redis answers again.
const BACK_OFF: Duration = Duration::from_secs(1);

/// Members this process keeps alive: room → the JSON of each member.
type Local = Mutex<HashMap<String, Vec<String>>>;

/// Presence and history on Redis.
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: RedisCommands,
    /// The URL the store was opened on, as configured (see [`RoomStore::script_server`]).
    url: String,
    /// `retention.size` and `retention.max_age` in ms, as script arguments (made once, shared
    /// by every append).
    size_arg: Bytes,
    ttl_arg: Bytes,
    timeout: Duration,
    retention: Retention,
    presence_expiry: Duration,
    local: Local,
    append: Script,
    read: Script,
    /// Until when (ms since the Unix epoch) commands fail at once; see [`BACK_OFF`].
    down_until_ms: AtomicU64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("retention", &self.inner.retention)
            .field("presence_expiry", &self.inner.presence_expiry)
            .finish_non_exhaustive()
    }
}

fn key(room: &str, what: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut key = String::with_capacity(13 + room.len() * 2 + what.len());
    key.push_str("room-chat:{");
    for byte in room.bytes() {
        key.push(char::from(HEX[usize::from(byte >> 4)]));
        key.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    key.push_str("}:");
    key.push_str(what);
    key
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// A store on the Redis at `url` (plain, `redis+sentinel://` or `redis+cluster://`),
    /// connected as `connection` says; each operation gives up after its `command_timeout`.
    /// Connects on first use (and reconnects by itself), so a Redis that is down at start-up
    /// delays presence and history, not the service. Must be called inside a Tokio runtime: it
    /// starts the presence heartbeat task, which ends when the store is dropped.
    pub fn new(
        url: &str,
        connection: &ConnectionSettings,
        retention: Retention,
        presence_expiry: Duration,
    ) -> Result<Self, StoreError> {
        let inner = Arc::new(Inner {
            conn: RedisCommands::open(url, connection)?,
            url: url.to_owned(),
            size_arg: Bytes::from(retention.size.to_string()),
            ttl_arg: Bytes::from(millis(retention.max_age).to_string()),
            timeout: connection.command_timeout,
            retention,
            presence_expiry,
            local: Mutex::new(HashMap::new()),
            append: Script::new(APPEND),
            read: Script::new(READ),
            down_until_ms: AtomicU64::new(0),
        });
        tokio::spawn(heartbeat(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }
}

/// Re-adds every local member with the current time, every third of the expiry, until the store
/// is dropped. A failed round is logged and retried at the next one: members expire only if
/// every heartbeat in `PRESENCE_EXPIRY` fails.
async fn heartbeat(inner: Weak<Inner>) {
    let every = match inner.upgrade() {
        Some(inner) => inner.presence_expiry / 3,
        None => return,
    };
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let rooms: Vec<(String, Vec<String>)> = inner
            .lock_local()
            .iter()
            .map(|(room, members)| (room.clone(), members.clone()))
            .collect();
        if rooms.is_empty() {
            continue;
        }
        let now = now_ms();
        let ttl = millis(inner.presence_expiry * 2) as i64;
        let renew = |pipe: &mut redis::Pipeline, room: &str, members: &[String]| {
            let key = key(room, "presence");
            for member in members {
                pipe.zadd(&key, member, now).ignore();
            }
            pipe.pexpire(&key, ttl).ignore();
        };
        // One round trip for every room on a single server; on a Cluster a pipeline must stay
        // within one slot, so one per room (sent together, so the round costs one wait).
        let mut pipes = Vec::new();
        if inner.conn.is_cluster() {
            for (room, members) in &rooms {
                let mut pipe = redis::pipe();
                renew(&mut pipe, room, members);
                pipes.push(pipe);
            }
        } else {
            let mut pipe = redis::pipe();
            for (room, members) in &rooms {
                renew(&mut pipe, room, members);
            }
            pipes.push(pipe);
        }
        let rounds = pipes
            .into_iter()
            .map(|pipe| inner.run(|mut c| async move { pipe.query_async::<()>(&mut c).await }));
        let failed = futures_util::future::join_all(rounds)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect::<Vec<_>>();
        if let Some(e) = failed.first() {
            tracing::warn!(error = %e, pipelines = failed.len(), "presence heartbeat failed; retrying at the next one");
        }
    }
}

impl Inner {
    fn lock_local(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<String>>> {
        // Each change is one push or removal, so a poisoned lock is taken over.
        self.local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs one command (or pipeline, or script) within the command timeout.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(RedisCommands) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if now_ms() < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(StoreError::BackingOff(BACK_OFF));
        }
        let work = async { Ok::<T, StoreError>(f(self.conn.clone()).await?) };
        let result = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))
            .and_then(|r| r);
        if matches!(&result, Err(StoreError::Timeout(_)))
            || matches!(&result, Err(StoreError::Redis(e)) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal())
        {
            self.down_until_ms
                .store(now_ms() + millis(BACK_OFF), Ordering::Relaxed);
        }
        result
    }
}

#[derive(serde::Deserialize)]
struct Entry {
    message: String,
    sender: Option<String>,
    at_ms: u64,
}

/// An [`Entry`] as written (borrowing the message rather than copying it first).
#[derive(serde::Serialize)]
struct NewEntry<'a> {
    message: &'a str,
    sender: Option<&'a str>,
    at_ms: u64,
}

fn parse_entry(raw: &str) -> Result<StoredChat, StoreError> {
    let (offset, json) = raw
        .split_once(' ')
        .ok_or_else(|| StoreError::Corrupt(raw.chars().take(80).collect()))?;
    let offset = offset
        .parse()
        .map_err(|_| StoreError::Corrupt(raw.chars().take(80).collect()))?;
    let entry: Entry =
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(StoredChat {
        offset,
        message: entry.message,
        sender: entry.sender,
        at_ms: entry.at_ms,
    })
}

impl Inner {
    /// The JSON a message is kept as.
    fn entry(message: &str, sender: Option<&str>) -> Result<String, StoreError> {
        serde_json::to_string(&NewEntry {
            message,
            sender,
            at_ms: now_ms(),
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

#[async_trait::async_trait]
impl RoomStore for RedisStore {
    fn script_server(&self) -> Option<&str> {
        // On a Cluster the room's keys and the group's shard channel sit on different slots,
        // which one script may not span.
        (!self.inner.conn.is_cluster()).then_some(self.inner.url.as_str())
    }

    fn append_script(
        &self,
        room: &str,
        message: &str,
        sender: Option<&str>,
        encoded: &Bytes,
    ) -> Option<ScriptedSend> {
        let inner = &self.inner;
        let slots = stamp::locate(encoded)?;
        let parts = stamp::parts(encoded, slots);
        let unstamped = stamp::unstamped(&parts);
        let entry = match Inner::entry(message, sender) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(error = %e, "could not encode a history entry");
                return None;
            }
        };
        Some(
            ScriptedSend::new(&APPEND_AND_PUBLISH_SCRIPT, 2, 7)
                .key(key(room, "meta"))
                .key(key(room, "log"))
                .arg(new_epoch())
                .arg(entry)
                .arg(inner.size_arg.clone())
                .arg(inner.ttl_arg.clone())
                .arg(parts.before)
                .arg(parts.between)
                .arg(parts.after)
                .fallback(unstamped),
        )
    }

    async fn append(
        &self,
        room: &str,
        message: &str,
        sender: Option<&str>,
    ) -> Result<Stamp, StoreError> {
        let inner = &self.inner;
        let entry = Inner::entry(message, sender)?;
        let mut invocation = inner.append.key(key(room, "meta"));
        invocation
            .key(key(room, "log"))
            .arg(new_epoch())
            .arg(entry)
            .arg(inner.retention.size)
            .arg(millis(inner.retention.max_age));
        let (offset, epoch): (u64, String) = inner
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(Stamp { offset, epoch })
    }

    async fn history(
        &self,
        room: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Result<History, StoreError> {
        let inner = &self.inner;
        let mut invocation = inner.read.key(key(room, "meta"));
        invocation
            .key(key(room, "log"))
            .arg(new_epoch())
            .arg(millis(inner.retention.max_age));
        let (epoch, last, raw): (String, u64, Vec<String>) = inner
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        let retained = raw
            .iter()
            .map(|r| parse_entry(r))
            .collect::<Result<Vec<_>, _>>()?;
        let (messages, complete) = select(
            retained,
            last,
            since,
            limit,
            inner.retention.max_age,
            now_ms(),
        );
        Ok(History {
            epoch,
            messages,
            complete,
        })
    }

    async fn join(&self, room: &str, member: &MemberEntry) -> Result<(), StoreError> {
        let inner = &self.inner;
        let json = serde_json::to_string(member).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        inner
            .lock_local()
            .entry(room.to_owned())
            .or_default()
            .push(json.clone());
        let key = key(room, "presence");
        let ttl = millis(inner.presence_expiry * 2) as i64;
        let mut pipe = redis::pipe();
        pipe.zadd(&key, json, now_ms())
            .ignore()
            .pexpire(&key, ttl)
            .ignore();
        inner
            .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await
    }

    async fn leave(&self, room: &str, member: &MemberEntry) -> Result<(), StoreError> {
        let inner = &self.inner;
        let json = serde_json::to_string(member).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        {
            let mut local = inner.lock_local();
            if let Some(members) = local.get_mut(room) {
                members.retain(|m| m != &json);
                if members.is_empty() {
                    local.remove(room);
                }
            }
        }
        let key = key(room, "presence");
        inner
            .run(|mut c| async move {
                redis::cmd("ZREM")
                    .arg(&key)
                    .arg(json)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    async fn presence(&self, room: &str, max: usize) -> Result<Presence, StoreError> {
        let inner = &self.inner;
        let key = key(room, "presence");
        let stale = now_ms().saturating_sub(millis(inner.presence_expiry));
        // One transaction: drop the expired, count, list the oldest `max`. `ZRANGE 0 -1` would
        // list everyone, so `max` 0 asks for the empty range 1..0.
        let (start, stop) = match isize::try_from(max) {
            Ok(0) => (1, 0),
            Ok(max) => (0, max - 1),
            Err(_) => (0, -1),
        };
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(format!("({stale}"))
            .ignore()
            .zcard(&key)
            .zrange(&key, start, stop);
        let (count, raw): (usize, Vec<String>) = inner
            .run(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        let mut members = raw
            .iter()
            .map(|r| {
                serde_json::from_str::<MemberEntry>(r)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        members.sort_by(|a, b| {
            a.joined_at_ms
                .cmp(&b.joined_at_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(Presence { count, members })
    }
}
