//! The Redis queue layer: messages wait in Redis for their receiver, wire-compatible with
//! Python `fast-channels`' `RedisChannelLayer`.
//!
//! **Formats** (Python's, so both can share a Redis):
//! - a channel is `"specific.{process id}!{32 hex}"`; everything before and including the `!`
//!   names the process, whose single sorted set `"{prefix}specific.{process id}!"` holds the
//!   messages for all its channels;
//! - a queued entry is 12 random bytes (so equal messages stay distinct set members) followed by
//!   the msgpack map, which carries the routing key `"__asgi_channel__"`: the target channel for a
//!   `send`, the list of targets on that process for a `group_send`; its score is the send time
//!   in seconds;
//! - a group is the sorted set `"{prefix}:group:{group}"` of channel names scored by join time;
//! - with several hosts, a key lives on host `consistent_hash(name)` of the ring, where `name`
//!   is the group name, or the process part of the channel name.
//!
//! **Redis Cluster** (`redis+cluster://…` as the only host; ours alone, Python does not support
//! Cluster): every command touches one key, hence one slot; a broadcast runs one script per
//! process queue instead of one per host, and `flush` lists keys with `KEYS` on every master
//! (`SCAN` would walk one node).
//!
//! **Fixed Python defects.**
//! - Python's `send` hashes the *full* channel name to pick a host, but the receiver reads the
//!   host of the *process part*: with two or more hosts a direct message can land where nobody
//!   reads. We hash what the receiver reads.
//! - Python scores entries with `time.time()`; two sends in the same clock tick tie, and ties are
//!   ordered by the random prefix, so one sender's messages can swap. Here every score comes
//!   from a per-process clock that is strictly increasing ([`ScoreClock`]). Since a sender awaits
//!   each `send` before the next, its second message is written after its first *and* scored
//!   higher, and the single reader pops in score order: no inversions for a sender. (Messages
//!   of *different* senders are ordered by their scores, as in Python.)
//!
//! **One reader per process.** One task blocks in `BZPOPMIN` on the process's sorted set (on a
//! dedicated connection, since a blocking command would stall a shared one), drains up to
//! `receive_batch` more entries with `ZPOPMIN`, and routes each to the local queues of its
//! targets (see [`Inbox`] for the drop policy). Entries older than `expiry` are dropped.
//!
//! **Atomic writes.** A `send` is one Lua script (trim expired, check capacity, add, refresh
//! expiry), so the capacity check cannot race another sender, unlike Python's four commands.
//! A `group_send` reads the members on the group's host, then runs one Lua script per host.
//!
//! **Outages.** The reader (and a pinger for each other host) notices a lost connection at once
//! and marks the layer Down; on reconnect it re-adds this process's group memberships (a
//! restarted Redis without persistence has forgotten them) and marks it Up again. Messages
//! already in a Redis that restarts without persistence are gone, and the outage says so. One
//! more can be lost when a *hung* connection is abandoned: a `BZPOPMIN` that Redis executes
//! after we gave up on its reply pops an entry nobody receives. (Python keeps an `$inflight`
//! backup set for that case; we accept the single-message loss, which the outage reports.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::{timeout, Instant};

use crate::health::TargetHealth;
use crate::hosts::{consistent_hash, moved, Backoff, ConnectionSettings, Dedicated, RedisHost};
use crate::inbox::ChannelOwner;
use crate::local::LocalCore;
use crate::message::lock;
use crate::names::{non_local_name, random_hex32, validate_channel_name};
use crate::stats::DropReason;
use crate::{ChannelLayer, Group, Inbox, LayerError, LayerHealth, LayerStats, Message};

const KIND: &str = "redis_queue";
/// The routing key inside queued messages.
const CHANNEL_KEY: &str = "__asgi_channel__";
/// Random bytes in front of each queued message (Python's `random_prefix_length`).
const RANDOM_PREFIX_LEN: usize = 12;

/// Settings of the Redis queue layer. Defaults are the Python layer's unless noted.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// Redis URLs of the ring. Every process sharing groups must list the same hosts in the
    /// same order.
    pub hosts: Vec<String>,
    /// Prepended to every key (default `"asgi"`).
    pub prefix: String,
    /// Undelivered messages older than this are dropped, and a queue nobody reads disappears
    /// from Redis after it (default 60 s). It bounds what a dead process leaves behind.
    pub expiry: Duration,
    /// Group memberships older than this are forgotten (default one day), so channels of
    /// processes that died without `group_discard` do not accumulate in groups forever. A
    /// `group_add` of an existing member refreshes its join time (its score); a member evicted
    /// by a broadcast is counted as an [`Expired`](DropReason::Expired) drop and logged.
    pub group_expiry: Duration,
    /// Entries a process's queue holds before `send` refuses with `ChannelFull` (default 100).
    /// A live process drains its queue continuously, so this only fills when the receiving
    /// process is gone or stalled; it caps the Redis memory such a process can pin.
    pub capacity: usize,
    /// Messages one local channel may hold once popped from Redis (default 1024; newest dropped
    /// and counted beyond it). See [`Inbox`] for the drop policy.
    pub local_queue_bound: usize,
    /// Entries the reader pops per round trip after the blocking pop (default 256): under load
    /// one round trip carries many messages; at rest it costs nothing.
    pub receive_batch: usize,
    /// How long one `BZPOPMIN` blocks (default 1 s). Shorter means more idle round trips; longer
    /// means a wedged (not closed) connection is noticed later.
    pub block_timeout: Duration,
    /// Connection, timeout and reconnect settings.
    pub connection: ConnectionSettings,
}

impl QueueSettings {
    /// Settings for the given hosts, with defaults otherwise.
    pub fn new(hosts: Vec<String>) -> Self {
        Self {
            hosts,
            prefix: "asgi".to_owned(),
            expiry: Duration::from_secs(60),
            group_expiry: Duration::from_secs(86_400),
            capacity: 100,
            local_queue_bound: 1024,
            receive_batch: 256,
            block_timeout: Duration::from_secs(1),
            connection: ConnectionSettings::default(),
        }
    }

    /// Sets the prefix.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// A per-process clock whose readings strictly increase, for queue scores (see the module docs
/// for why ordering needs it). Seconds since the Unix epoch, like Python's `time.time()`, so
/// expiry trimming by score works across Rust and Python processes; when the wall clock stalls
/// or steps back, readings advance by 1 µs instead (coarser than an `f64` step at today's
/// epoch, about 0.24 µs, so every reading is a distinct `f64`).
#[derive(Debug, Default)]
pub struct ScoreClock {
    last: Mutex<f64>,
}

impl ScoreClock {
    /// The next score.
    pub fn next(&self) -> f64 {
        let now = unix_now();
        let mut last = lock(&self.last);
        let score = if now > *last { now } else { *last + 1e-6 };
        *last = score;
        score
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The Redis queue channel layer.
#[derive(Debug)]
pub struct RedisQueueLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    settings: QueueSettings,
    hosts: Vec<RedisHost>,
    /// `"specific.{process id}!"`: the process part of our channel names.
    process: String,
    /// `"{prefix}{process}"`: the sorted set our reader drains.
    read_key: String,
    read_host: usize,
    /// This process's channels and their memberships (left on drop and `close`, re-added after
    /// a Redis restart), the fan-out into local queues, counters, health and lifecycle.
    core: LocalCore,
    clock: ScoreClock,
    scripts: Scripts,
}

#[derive(Debug)]
struct Scripts {
    send: redis::Script,
    group_members: redis::Script,
    group_send: redis::Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            // KEYS[1] queue; ARGV: member, score, expired-before, capacity, expiry seconds.
            send: redis::Script::new(
                r"
                local trimmed = redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[3])
                if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
                    return {0, trimmed}
                end
                redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
                redis.call('EXPIRE', KEYS[1], ARGV[5])
                return {1, trimmed}
                ",
            ),
            // KEYS[1] group; ARGV[1] joined-before: drop stale members, return how many were
            // dropped and the rest.
            group_members: redis::Script::new(
                r"
                local expired = redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[1])
                return {expired, redis.call('ZRANGE', KEYS[1], 0, -1)}
                ",
            ),
            // KEYS: queues; ARGV: one member per key, then score, expired-before, capacity,
            // expiry seconds. Returns the number of expired entries trimmed, then the 1-based
            // indexes of the queues that were full.
            group_send: redis::Script::new(
                r"
                local n = #KEYS
                local score = ARGV[n + 1]
                local cutoff = ARGV[n + 2]
                local capacity = tonumber(ARGV[n + 3])
                local expiry = ARGV[n + 4]
                local full = {0}
                for i = 1, n do
                    full[1] = full[1] + redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, cutoff)
                    if redis.call('ZCARD', KEYS[i]) < capacity then
                        redis.call('ZADD', KEYS[i], score, ARGV[i])
                        redis.call('EXPIRE', KEYS[i], expiry)
                    else
                        full[#full + 1] = i
                    end
                end
                return full
                ",
            ),
        }
    }
}

impl RedisQueueLayer {
    /// Builds the layer and starts its reader (and one pinger per other host). Must be called
    /// inside a Tokio runtime.
    pub fn new(settings: QueueSettings) -> Result<Self, LayerError> {
        if settings.hosts.is_empty() {
            return Err(LayerError::Config(
                "the queue layer needs at least one Redis host".into(),
            ));
        }
        tokio::runtime::Handle::try_current().map_err(|_| {
            LayerError::Config("channel layers must be created inside a Tokio runtime".into())
        })?;
        let hosts = settings
            .hosts
            .iter()
            .map(|url| RedisHost::new(url, KIND, &settings.connection))
            .collect::<Result<Vec<_>, _>>()?;
        let process = format!("specific.{}!", random_hex32());
        let read_host = consistent_hash(&process, hosts.len());
        let targets = hosts.iter().map(|h| h.name.clone()).collect();
        let shared = Arc::new(Shared {
            read_key: format!("{}{process}", settings.prefix),
            process,
            read_host,
            core: LocalCore::new(KIND, targets, settings.local_queue_bound, None),
            hosts,
            settings,
            clock: ScoreClock::default(),
            scripts: Scripts::new(),
        });
        shared
            .core
            .lifecycle
            .tasks
            .spawn(run_reader(shared.clone()));
        for host in &shared.hosts {
            if let Some(watcher) = host.watcher(shared.core.lifecycle.shutdown.clone()) {
                shared.core.lifecycle.tasks.spawn(watcher);
            }
        }
        for index in (0..shared.hosts.len()).filter(|i| *i != read_host) {
            shared
                .core
                .lifecycle
                .tasks
                .spawn(run_pinger(shared.clone(), index));
        }
        Ok(Self { shared })
    }

    /// The layer's settings.
    pub fn settings(&self) -> &QueueSettings {
        &self.shared.settings
    }

    /// Background tasks still running (0 after `close`).
    pub fn background_tasks(&self) -> usize {
        self.shared.core.lifecycle.tasks.len()
    }
}

impl Shared {
    fn expired_before(&self) -> i64 {
        // Python: int(time.time()) - int(expiry)
        unix_now() as i64 - self.settings.expiry.as_secs() as i64
    }

    /// Counts entries that expired unread in Redis (trimmed by a send): their receivers were
    /// gone or stalled for longer than `expiry`. Each entry holds one message (or one broadcast
    /// for several channels of one process).
    fn count_trimmed(&self, key: &str, trimmed: u64) {
        self.core.dropped(DropReason::Expired, key, trimmed);
    }

    fn expiry_secs(&self) -> u64 {
        self.settings.expiry.as_secs().max(1)
    }

    /// The sorted set of a group: `"{prefix}:group:{group}"`.
    fn group_key(&self, group: &str) -> String {
        format!("{}:group:{group}", self.settings.prefix)
    }

    /// Leaves groups in Redis (after an inbox drop, or at close).
    async fn leave_groups(&self, pairs: Vec<(Group, Arc<str>)>) {
        for (group, channel) in pairs {
            let (group, channel) = (group.as_str(), &*channel);
            let host = &self.hosts[consistent_hash(group, self.hosts.len())];
            let mut conn = host.commands.clone();
            let removed: Result<i64, _> = redis::cmd("ZREM")
                .arg(self.group_key(group))
                .arg(channel)
                .query_async(&mut conn)
                .await;
            if let Err(e) = removed {
                tracing::warn!(layer = KIND, group, channel, error = %e, "could not leave group; group_expiry will remove the membership");
            }
        }
    }

    /// Re-adds this process's memberships of groups on host `index` (after a reconnect: a Redis
    /// restarted without persistence has forgotten them). Uses the caller's freshly connected
    /// `conn`: the shared command connection may not have noticed the restart yet.
    async fn restore_memberships(&self, index: usize, conn: &mut Dedicated) {
        let pairs: Vec<(Group, Arc<str>)> = self
            .core
            .memberships()
            .into_iter()
            .filter(|(group, _)| consistent_hash(group, self.hosts.len()) == index)
            .collect();
        if pairs.is_empty() {
            return;
        }
        let now = unix_now();
        let mut pipe = redis::pipe();
        for (group, channel) in &pairs {
            let key = self.group_key(group);
            pipe.cmd("ZADD").arg(&key).arg(now).arg(&**channel).ignore();
            pipe.cmd("EXPIRE")
                .arg(&key)
                .arg(self.settings.group_expiry.as_secs().max(1))
                .ignore();
        }
        match pipe.query_async::<()>(conn).await {
            Ok(()) => tracing::info!(
                layer = KIND,
                memberships = pairs.len(),
                "group memberships restored after reconnect"
            ),
            Err(e) => {
                tracing::warn!(layer = KIND, error = %e, "could not restore group memberships after reconnect");
            }
        }
    }

    /// Routes one popped entry to its local channels.
    async fn deliver(&self, member: &[u8], score: f64) {
        let decoded = member
            .get(RANDOM_PREFIX_LEN..)
            .ok_or(None)
            .and_then(|body| {
                rmp_serde::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
                    .map_err(Some)
            });
        let mut map = match decoded {
            Ok(map) => map,
            Err(e) => {
                tracing::warn!(layer = KIND, error = ?e.map(|e| e.to_string()), "undecodable entry in the queue");
                self.core
                    .dropped(DropReason::Undecodable, &self.read_key, 1);
                return;
            }
        };
        let targets: Vec<String> = match map.remove(CHANNEL_KEY) {
            Some(serde_json::Value::String(channel)) => vec![channel],
            Some(serde_json::Value::Array(channels)) => channels
                .into_iter()
                .filter_map(|c| match c {
                    serde_json::Value::String(c) => Some(c),
                    _ => None,
                })
                .collect(),
            _ => {
                self.core
                    .dropped(DropReason::Undecodable, &self.read_key, 1);
                return;
            }
        };
        let age = (unix_now() - score).max(0.0);
        let remaining = self.settings.expiry.as_secs_f64() - age;
        if remaining <= 0.0 {
            for target in &targets {
                self.core.dropped(DropReason::Expired, target, 1);
            }
            return;
        }
        let expires_at = Instant::now().checked_add(Duration::from_secs_f64(remaining));
        let message = Message::new(map);
        match targets.as_slice() {
            [one] => self.core.deliver(one, message, expires_at),
            many => {
                self.core
                    .deliver_to_channels(many, &message, expires_at)
                    .await;
            }
        }
    }
}

/// Prepends the random prefix and splices `"__asgi_channel__": target` into an encoded map, so
/// a broadcast is encoded once and only the routing key differs per process queue.
fn queue_entry(encoded: &[u8], target: &impl Serialize) -> Result<Vec<u8>, LayerError> {
    let bad = || {
        LayerError::Encode(rmp_serde::encode::Error::Syntax(
            "message is not a msgpack map".into(),
        ))
    };
    let (len, header) = match encoded.first().copied() {
        Some(b) if b & 0xf0 == 0x80 => (u32::from(b & 0x0f), 1),
        Some(0xde) => {
            let bytes = encoded.get(1..3).ok_or_else(bad)?;
            (u32::from(u16::from_be_bytes([bytes[0], bytes[1]])), 3)
        }
        Some(0xdf) => {
            let bytes = encoded.get(1..5).ok_or_else(bad)?;
            (
                u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
                5,
            )
        }
        _ => return Err(bad()),
    };
    let key = rmp_serde::to_vec(CHANNEL_KEY).map_err(LayerError::Encode)?;
    let value = rmp_serde::to_vec(target).map_err(LayerError::Encode)?;
    let mut out =
        Vec::with_capacity(RANDOM_PREFIX_LEN + 5 + encoded.len() + key.len() + value.len());
    out.extend_from_slice(&rand::random::<[u8; RANDOM_PREFIX_LEN]>());
    let len = len + 1;
    if len < 16 {
        out.push(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0xde);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&encoded[header..]);
    out.extend_from_slice(&key);
    out.extend_from_slice(&value);
    Ok(out)
}

impl ChannelOwner for Shared {
    fn release(self: Arc<Self>, channel: &str) {
        let Some(groups) = self.core.forget(channel) else {
            return;
        };
        if groups.is_empty() || self.core.lifecycle.shutdown.is_cancelled() {
            return;
        }
        let channel: Arc<str> = Arc::from(channel);
        let pairs = groups.into_iter().map(|g| (g, channel.clone())).collect();
        let this = self.clone();
        // `Drop` cannot await; the tracked task is waited for by `close`.
        self.core
            .lifecycle
            .tasks
            .spawn(async move { this.leave_groups(pairs).await });
    }
}

/// Parses a score that Redis sent as a bulk string (RESP2) or a double (RESP3).
fn score_of(value: &Value) -> Option<f64> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        Value::Double(d) => Some(*d),
        Value::Int(i) => Some(*i as f64),
        _ => None,
    }
}

fn bytes_of(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        _ => None,
    }
}

/// The process's single reader: pops entries in score order and routes them.
async fn run_reader(shared: Arc<Shared>) {
    let index = shared.read_host;
    let host = &shared.hosts[index];
    let settings = shared.settings.connection.clone();
    let block = shared.settings.block_timeout.max(Duration::from_millis(10));
    let mut backoff = Backoff::new(&settings);
    let mut connected_before = false;
    'connect: loop {
        // Taken before resolving, so that a Sentinel switch during the connection is not missed.
        let mut changes = host.changes();
        let attempt = tokio::select! {
            () = shared.core.lifecycle.shutdown.cancelled() => return,
            r = host.dedicated(&settings, Some(block + settings.command_timeout)) => r,
        };
        let mut conn = match attempt {
            Ok(conn) => conn,
            Err(e) => {
                shared.core.set_down(index, &e.to_string());
                if host
                    .pause(&shared.core.lifecycle, backoff.next_delay())
                    .await
                {
                    return;
                }
                continue;
            }
        };
        if connected_before {
            shared.restore_memberships(index, &mut conn).await;
        }
        connected_before = true;
        shared.core.set_up(index);
        backoff.reset();
        loop {
            let mut bzpopmin = redis::cmd("BZPOPMIN");
            bzpopmin.arg(&shared.read_key).arg(block.as_secs_f64());
            let popped: Result<Value, _> = tokio::select! {
                () = shared.core.lifecycle.shutdown.cancelled() => return,
                () = moved(&mut changes) => {
                    // A `BZPOPMIN` abandoned here may still pop one entry on the old master
                    // (see the module docs on hung connections); the outage reports it.
                    shared.core.set_down(index, "Sentinel switched master");
                    continue 'connect;
                }
                r = bzpopmin.query_async(&mut conn) => r,
            };
            let first = match popped {
                Ok(Value::Array(items)) if items.len() == 3 => items,
                Ok(Value::Nil) => continue,
                Ok(other) => {
                    tracing::warn!(layer = KIND, reply = ?other, "unexpected BZPOPMIN reply");
                    continue;
                }
                Err(e) => {
                    shared.core.set_down(index, &e.to_string());
                    continue 'connect;
                }
            };
            if let (Some(member), Some(score)) = (bytes_of(&first[1]), score_of(&first[2])) {
                shared.deliver(member, score).await;
            }
            // Drain what else is waiting, in score order, in one round trip.
            if shared.settings.receive_batch > 0 {
                let more: Result<Value, _> = redis::cmd("ZPOPMIN")
                    .arg(&shared.read_key)
                    .arg(shared.settings.receive_batch)
                    .query_async(&mut conn)
                    .await;
                match more {
                    Ok(Value::Array(items)) => {
                        for pair in items.chunks(2) {
                            if let [member, score] = pair {
                                if let (Some(member), Some(score)) =
                                    (bytes_of(member), score_of(score))
                                {
                                    shared.deliver(member, score).await;
                                }
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        shared.core.set_down(index, &e.to_string());
                        continue 'connect;
                    }
                }
            }
        }
    }
}

/// Watches a host the reader does not use: PING every `keepalive_interval`, so an outage there
/// shows in health within a second too.
async fn run_pinger(shared: Arc<Shared>, index: usize) {
    let host = &shared.hosts[index];
    let settings = shared.settings.connection.clone();
    let mut conn: Option<Dedicated> = None;
    let mut was_down = false;
    loop {
        if shared
            .core
            .lifecycle
            .sleep_or_shutdown(settings.keepalive_interval)
            .await
        {
            return;
        }
        if conn.is_none() {
            conn = host
                .dedicated(&settings, Some(settings.command_timeout))
                .await
                .ok();
            if let (Some(c), true) = (conn.as_mut(), was_down) {
                shared.restore_memberships(index, c).await;
            }
        }
        let ok = match conn.as_mut() {
            Some(c) => redis::cmd("PING").query_async::<String>(c).await.is_ok(),
            None => false,
        };
        if ok {
            shared.core.set_up(index);
            was_down = false;
        } else {
            conn = None;
            was_down = true;
            shared.core.set_down(index, "PING failed");
        }
    }
}

#[async_trait::async_trait]
impl ChannelLayer for RedisQueueLayer {
    async fn new_channel(&self) -> Result<Inbox, LayerError> {
        self.shared.core.lifecycle.check_open()?;
        let name = format!("{}{}", self.shared.process, random_hex32());
        let owner: std::sync::Weak<Shared> = Arc::downgrade(&self.shared);
        let owner: std::sync::Weak<dyn ChannelOwner> = owner;
        Ok(self.shared.core.open(Arc::from(name), owner))
    }

    async fn send(&self, channel: &str, message: Message) -> Result<(), LayerError> {
        self.shared.core.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        if message.get(CHANNEL_KEY).is_some() {
            return Err(LayerError::ReservedKey { key: CHANNEL_KEY });
        }
        let shared = &self.shared;
        // The host and key are those of the part the receiver reads (Python hashes the full
        // name here, a bug).
        let process_part = non_local_name(channel);
        let key = format!("{}{process_part}", shared.settings.prefix);
        let entry = if channel.contains('!') {
            queue_entry(&message.to_msgpack()?, &channel)?
        } else {
            let mut plain = rand::random::<[u8; RANDOM_PREFIX_LEN]>().to_vec();
            plain.extend_from_slice(&message.to_msgpack()?);
            plain
        };
        let host = &shared.hosts[consistent_hash(process_part, shared.hosts.len())];
        let mut conn = host.commands.clone();
        let (added, trimmed): (i64, u64) = shared
            .scripts
            .send
            .key(&key)
            .arg(entry)
            .arg(shared.clock.next())
            .arg(shared.expired_before())
            .arg(shared.settings.capacity)
            .arg(shared.expiry_secs())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| host.unavailable(e))?;
        shared.count_trimmed(&key, trimmed);
        if added == 0 {
            shared.core.dropped(DropReason::ChannelFull, channel, 1);
            return Err(LayerError::ChannelFull {
                channel: channel.to_owned(),
            });
        }
        shared.core.count_sent();
        Ok(())
    }

    async fn group_add(&self, group: &Group, channel: &str) -> Result<(), LayerError> {
        self.shared.core.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        let shared = &self.shared;
        let host = &shared.hosts[consistent_hash(group, shared.hosts.len())];
        let key = self.shared.group_key(group);
        let mut conn = host.commands.clone();
        // ZADD of an existing member updates its score: re-adding refreshes the join time.
        redis::pipe()
            .atomic()
            .cmd("ZADD")
            .arg(&key)
            .arg(unix_now())
            .arg(channel)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(shared.settings.group_expiry.as_secs().max(1))
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| host.unavailable(e))?;
        // Remember local memberships, to leave them on drop and restore them after a restart;
        // a remote channel's membership is its own process's business.
        let _ = shared.core.join_local(group, channel);
        Ok(())
    }

    async fn group_discard(&self, group: &Group, channel: &str) -> Result<(), LayerError> {
        self.shared.core.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        let shared = &self.shared;
        shared.core.leave(group, channel);
        let host = &shared.hosts[consistent_hash(group, shared.hosts.len())];
        let mut conn = host.commands.clone();
        redis::cmd("ZREM")
            .arg(self.shared.group_key(group))
            .arg(channel)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|e| host.unavailable(e))?;
        Ok(())
    }

    async fn group_send(&self, group: &Group, message: Message) -> Result<(), LayerError> {
        self.shared.core.lifecycle.check_open()?;
        if message.get(CHANNEL_KEY).is_some() {
            return Err(LayerError::ReservedKey { key: CHANNEL_KEY });
        }
        let shared = &self.shared;
        let ring = shared.hosts.len();
        let group_host = &shared.hosts[consistent_hash(group, ring)];
        let mut conn = group_host.commands.clone();
        let joined_before = unix_now() as i64 - shared.settings.group_expiry.as_secs() as i64;
        let (expired, members): (u64, Vec<String>) = shared
            .scripts
            .group_members
            .key(self.shared.group_key(group))
            .arg(joined_before)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| group_host.unavailable(e))?;
        if expired > 0 {
            // Members that joined more than `group_expiry` ago (and did not re-add themselves)
            // were evicted and miss this broadcast: never silently.
            tracing::info!(
                layer = KIND,
                group = group.as_str(),
                evicted = expired,
                "group memberships expired; their channels no longer receive this group"
            );
            shared
                .core
                .dropped(DropReason::Expired, group.as_str(), expired);
        }
        // Bucket the members by process queue, and the queues by host, keeping first-seen order.
        let mut queues: Vec<(String, Vec<&str>)> = Vec::new();
        let mut queue_index: HashMap<&str, usize> = HashMap::new();
        for member in &members {
            let process_part = non_local_name(member);
            match queue_index.get(process_part) {
                Some(&i) => queues[i].1.push(member),
                None => {
                    queue_index.insert(process_part, queues.len());
                    queues.push((
                        format!("{}{process_part}", shared.settings.prefix),
                        vec![member],
                    ));
                }
            }
        }
        // One script per host, holding every queue on it; on a Cluster, one per queue, since a
        // script may only touch keys of one slot (and each process queue has its own).
        let mut by_host: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
        for (i, (_, _)) in queues.iter().enumerate() {
            let process_part = non_local_name(queues[i].1[0]);
            let host = consistent_hash(process_part, ring);
            let batch = if shared.hosts[host].is_cluster() {
                i
            } else {
                0
            };
            by_host.entry((host, batch)).or_default().push(i);
        }
        let encoded = message.to_msgpack()?;
        // One score for the whole broadcast, so it sorts as one message in every queue.
        let score = shared.clock.next();
        for ((host_index, _), queue_ids) in by_host {
            let host = &shared.hosts[host_index];
            let mut invocation = shared.scripts.group_send.prepare_invoke();
            for &q in &queue_ids {
                invocation.key(&queues[q].0);
            }
            for &q in &queue_ids {
                invocation.arg(queue_entry(&encoded, &queues[q].1)?);
                tokio::task::consume_budget().await;
            }
            invocation
                .arg(score)
                .arg(shared.expired_before())
                .arg(shared.settings.capacity)
                .arg(shared.expiry_secs());
            let mut conn = host.commands.clone();
            let reply: Vec<usize> = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(|e| host.unavailable(e))?;
            let (trimmed, full) = reply.split_first().map_or((0, &[][..]), |(t, f)| (*t, f));
            shared.count_trimmed(&queues[queue_ids[0]].0, trimmed as u64);
            for &i in full {
                if let Some(&q) = i.checked_sub(1).and_then(|i| queue_ids.get(i)) {
                    let (key, channels) = &queues[q];
                    shared
                        .core
                        .dropped(DropReason::ChannelFull, key, channels.len() as u64);
                }
            }
        }
        shared.core.count_group_sent();
        Ok(())
    }

    async fn flush(&self) -> Result<(), LayerError> {
        self.shared.core.clear();
        let pattern = format!("{}*", self.shared.settings.prefix);
        for host in &self.shared.hosts {
            let mut conn = host.commands.clone();
            if host.is_cluster() {
                // SCAN walks one node; KEYS is sent to every master and the replies merged.
                // `flush` is for tests and resets, where that cost is fine.
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(&pattern)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| host.unavailable(e))?;
                for key in keys {
                    redis::cmd("UNLINK")
                        .arg(&key)
                        .query_async::<i64>(&mut conn)
                        .await
                        .map_err(|e| host.unavailable(e))?;
                }
                continue;
            }
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| host.unavailable(e))?;
                if !keys.is_empty() {
                    redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async::<i64>(&mut conn)
                        .await
                        .map_err(|e| host.unavailable(e))?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), LayerError> {
        if !self.shared.core.lifecycle.mark_closed() {
            return Ok(());
        }
        let shared = &self.shared;
        // Leave every group this process joined, so no member that will never read stays behind.
        let pairs = shared.core.clear().memberships;
        let budget = shared.settings.connection.command_timeout * 2;
        if timeout(budget, shared.leave_groups(pairs)).await.is_err() {
            tracing::warn!(
                layer = KIND,
                "timed out leaving groups at close; group_expiry will clean up"
            );
        }
        shared.core.lifecycle.stop_tasks().await;
        // Nobody reads our queue any more: delete what is left in it.
        let host = &shared.hosts[shared.read_host];
        let mut conn = host.commands.clone();
        let deleted = timeout(
            shared.settings.connection.command_timeout,
            redis::cmd("DEL")
                .arg(&shared.read_key)
                .query_async::<i64>(&mut conn),
        )
        .await;
        if !matches!(deleted, Ok(Ok(_))) {
            tracing::debug!(
                layer = KIND,
                "could not delete the queue at close; it expires by itself"
            );
        }
        Ok(())
    }

    fn health(&self) -> watch::Receiver<LayerHealth> {
        self.shared.core.health()
    }

    fn targets(&self) -> Vec<TargetHealth> {
        self.shared.core.targets()
    }

    fn stats(&self) -> LayerStats {
        self.shared.core.stats()
    }

    fn kind(&self) -> &'static str {
        KIND
    }
}

impl Drop for RedisQueueLayer {
    fn drop(&mut self) {
        self.shared.core.lifecycle.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spliced_entry_decodes_like_a_python_entry() {
        for size in [1usize, 15, 16, 300] {
            let mut map = serde_json::Map::new();
            for i in 0..size {
                map.insert(format!("k{i}"), json!(i));
            }
            let message = Message::new(map.clone());
            let entry = queue_entry(&message.to_msgpack().unwrap(), &vec!["a!b", "a!c"]).unwrap();
            let decoded: serde_json::Map<String, serde_json::Value> =
                rmp_serde::from_slice(&entry[RANDOM_PREFIX_LEN..]).unwrap();
            map.insert(CHANNEL_KEY.into(), json!(["a!b", "a!c"]));
            assert_eq!(decoded, map);
        }
    }

    #[test]
    fn score_clock_strictly_increases() {
        let clock = ScoreClock::default();
        let mut last = 0.0;
        for _ in 0..100_000 {
            let s = clock.next();
            assert!(s > last);
            last = s;
        }
    }
}
