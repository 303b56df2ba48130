//! The pub/sub layer on Redis Cluster: sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis 7.0+)
//! over a fixed set of hash-tagged partitions. Cluster mode is ours alone: the Python layers do
//! not support Redis Cluster, so no Python process can share a cluster with this layer, and its
//! Redis channel names differ from the Python ones (they carry a hash tag).
//!
//! **Names.** Channel and group names are the pub/sub layer's (`"{prefix}specific.{32 hex}"`,
//! group channel `"{prefix}__group__{group}"`). On Redis each travels as `"{TAG}" + name`, where
//! `TAG` is the tag of the name's *partition* (`consistent_hash(name, partitions)`, the ring
//! hash). The `partitions` tags (default [`DEFAULT_PARTITIONS`]) are fixed and spread evenly over
//! the 16,384 slots: partition `i`'s tag is the first `p{i}.{n}` (`n` = 0, 1, …) whose slot lies in
//! the `i`-th of `partitions` equal slot ranges ([`partition_tags`]). One `SSUBSCRIBE` may only
//! name channels of one slot, so subscriptions are sent one partition at a time; a `SPUBLISH`
//! pipeline likewise holds one partition's messages. Sharded pub/sub keeps a message inside the
//! shard that owns its slot (classic `PUBLISH` on a cluster is broadcast over the cluster bus to
//! every node: measured 5x the bus traffic on 6 nodes).
//!
//! **Silent loss, and what is done about it.** On a slot migration or a failover Redis pushes an
//! unsolicited `sunsubscribe` for the slot's channels; redis-rs applies it as a removal and
//! never resubscribes, and after a `kill -9` of a node only a `Disconnection` push arrives (no
//! node named). Left alone the channel goes silent for good while the connection looks fine.
//! Here a supervisor task:
//! - on `sunsubscribe`s of channels this process still wants, marks their partitions Down and
//!   queues the channels for resubscription. A failover unsubscribes every channel of the moved
//!   slots at once (thousands with thousands of groups); the pushes land in a set that the
//!   supervisor takes whole, so a burst costs one `SSUBSCRIBE` per partition, not one per
//!   channel (measured with 10,000 groups: see `tests/cluster.rs`), and a partition is never
//!   Up again while one of its lost channels is not resubscribed;
//! - on a `Disconnection`, marks every partition Down and queues everything wanted;
//! - resubscribes what is queued, one partition per `SSUBSCRIBE`, retrying (redis-rs follows
//!   `MOVED` and refreshes its slot map) every `keepalive_interval` until it succeeds
//!   ([`LayerStats::resubscribes`] counts these commands);
//! - sends each partition an end-to-end **liveness probe** every `keepalive_interval`: a
//!   `SPUBLISH` through the normal publish path to the partition's probe channel, expected back
//!   on our subscription within `command_timeout`. A partition is Up (health, sends accepted)
//!   only while its subscriptions are in place and its latest probe came back; a missed probe
//!   marks it Down and resubscribes it, whatever the cause (one the pushes above did not report
//!   included).
//!
//! **Routing publishes.** `SPUBLISH` goes to each partition's master as found by our own
//! `CLUSTER SLOTS` poll (every 10 s, and at once after a partition went Down or a publish
//! failed), over our own connection to that master, not where redis-rs's slot map says: after a `CLUSTER FAILOVER` that map was seen to
//! keep naming the demoted master, now a replica, which accepts `SPUBLISH` but delivers it only
//! to its own subscribers (replication flows master to replica, never back), a silent loss for
//! every other process. Subscriptions are sent after a keyed read of the partition's slot, whose
//! `MOVED` makes redis-rs refresh a stale map first, so they land on the master too (a
//! subscription left on a freshly demoted master heard nothing while it resynced: ~2 s of
//! broadcasts lost, measured, before this).
//!
//! **Counting.** `SPUBLISH`'s reply counts the subscribers on the master it was sent to. A
//! direct message nobody heard is [`DropReason::NoSuchChannel`]; a broadcast nobody heard while
//! this process has members is [`DropReason::Unheard`] (during a migration or failover our
//! subscription is briefly elsewhere: those broadcasts are counted). The count errs on the side
//! of loss, never of silence: should a subscription still sit on a replica, it receives what the
//! master propagates while the master counts no subscriber. Measured on a local 3+3 cluster with a broadcast every 10 ms: a slot
//! migration lost none, a `CLUSTER FAILOVER` lost one (counted), a `kill -9` of the master lost
//! one (counted) while sends during the ~3.6 s promotion were refused. Sends to a partition
//! that is Down are refused with [`LayerError::Unavailable`]; a pipeline that fails counts
//! [`DropReason::PublishFailed`] per message. Messages from Redis arrive through a bounded queue:
//! one that does not fit is [`DropReason::DispatchOverflow`].
//!
//! **A hung node.** Each partition has its own publish queue and publisher task, so a master
//! that stops answering (SIGSTOP, a silent partition) holds up only the partitions it serves:
//! their probes go unanswered and they are Down within `keepalive_interval` +
//! `command_timeout` (rounded up to whole keepalive ticks), while the other partitions keep
//! publishing and stay Up.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{mpsc, watch, Notify, OnceCell};
use tokio::time::{timeout, Instant};

use crate::connect::ConnectionSettings;
use crate::health::TargetHealth;
use crate::inbox::ChannelOwner;
use crate::local::LocalCore;
use crate::message::lock;
use crate::names::{random_hex32, validate_channel_name};
use crate::ring::consistent_hash;
use crate::stats::DropReason;
use crate::{ChannelLayer, Group, Inbox, LayerError, LayerHealth, LayerStats, Message};

const KIND: &str = "redis_pubsub";

/// The URL scheme of a Cluster `REDIS_URL`.
pub const SCHEME: &str = "redis+cluster://";

/// Partitions by default: 64 spreads a process's channels over every master of any cluster up
/// to 64 shards; each costs one probe subscription and two probe `SPUBLISH`es a second.
pub const DEFAULT_PARTITIONS: usize = 64;

/// Hash slots in a Redis Cluster.
const SLOTS: u16 = 16_384;

/// Settings of the Cluster pub/sub layer.
#[derive(Clone, Debug)]
pub struct ClusterPubSubSettings {
    /// Seed nodes (`redis://host:port`); the rest of the cluster is discovered from them.
    pub seeds: Vec<String>,
    /// Prepended to every channel name (default `"asgi"`).
    pub prefix: String,
    /// Partitions the names are spread over (default [`DEFAULT_PARTITIONS`], at most 4096, the
    /// resolution of the ring hash). Every process sharing groups must use the same number.
    pub partitions: usize,
    /// Messages one local channel may hold before new ones are dropped (default 1024).
    pub local_queue_bound: usize,
    /// Messages from Redis that may wait for fan-out (default 8192; beyond it dropped and
    /// counted as dispatch overflow).
    pub dispatch_queue: usize,
    /// Messages that may wait to be published (default 8192), split evenly over the partitions
    /// (128 each with 64): every partition has its own queue and publisher task, so a node that
    /// hangs stalls only the partitions it serves, never the others' publishes and probes. A
    /// full queue makes a sender wait up to `command_timeout`, then refuses.
    pub publish_queue: usize,
    /// Timeouts and the probe interval (`keepalive_interval`).
    pub connection: ConnectionSettings,
}

impl ClusterPubSubSettings {
    /// Settings for the given seed nodes, with defaults otherwise.
    pub fn new(seeds: Vec<String>) -> Self {
        Self {
            seeds,
            prefix: "asgi".to_owned(),
            partitions: DEFAULT_PARTITIONS,
            local_queue_bound: 1024,
            dispatch_queue: 8192,
            publish_queue: 8192,
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

/// Parses `redis+cluster://seed1:7000?addr=seed2:7001&addr=…` into seed URLs.
pub fn parse_cluster_url(url: &str) -> Result<Vec<String>, LayerError> {
    let invalid = |why: &str| LayerError::Config(format!("invalid Cluster URL {url:?}: {why}"));
    let rest = url
        .strip_prefix(SCHEME)
        .ok_or_else(|| invalid("it must start with redis+cluster://"))?;
    let (first, query) = rest.split_once('?').unwrap_or((rest, ""));
    let first = first.trim_end_matches('/');
    let mut seeds = vec![seed(first).ok_or_else(|| invalid("bad host:port"))?];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("addr", addr)) => {
                seeds.push(seed(addr).ok_or_else(|| invalid("bad addr host:port"))?);
            }
            _ => return Err(invalid(&format!("unknown parameter {pair:?}"))),
        }
    }
    Ok(seeds)
}

fn seed(addr: &str) -> Option<String> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    (!host.is_empty()).then(|| format!("redis://{host}:{port}/"))
}

/// CRC16/XMODEM, the Cluster key-slot hash.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of a hash tag.
pub fn slot_of_tag(tag: &str) -> u16 {
    crc16(tag.as_bytes()) % SLOTS
}

/// The tags of `partitions` partitions: partition `i`'s tag is the first `p{i}.{n}` whose slot
/// falls in the `i`-th of `partitions` equal ranges of slots, so partitions spread evenly over
/// the cluster however its slots are assigned.
pub fn partition_tags(partitions: usize) -> Vec<String> {
    let partitions = partitions.clamp(1, 4096);
    (0..partitions)
        .map(|i| {
            let low = i * usize::from(SLOTS) / partitions;
            let high = (i + 1) * usize::from(SLOTS) / partitions;
            let mut n = 0u32;
            loop {
                let tag = format!("p{i}.{n}");
                let slot = usize::from(slot_of_tag(&tag));
                if (low..high).contains(&slot) {
                    return tag;
                }
                n += 1;
            }
        })
        .collect()
}

/// The Redis Cluster pub/sub channel layer.
#[derive(Debug)]
pub struct RedisClusterPubSubLayer {
    shared: Arc<Shared>,
}

struct Shared {
    settings: ClusterPubSubSettings,
    group_prefix: String,
    tags: Vec<String>,
    core: LocalCore,
    client: ClusterClient,
    /// The cluster connection, made on first use (it reconnects to nodes by itself).
    conn: OnceCell<ClusterConnection>,
    partitions: Vec<Partition>,
    /// Probe channel -> partition.
    probes: HashMap<String, usize>,
    /// Redis channels subscribed. The async mutex is the subscription lock: whoever holds it is
    /// the only one sending SSUBSCRIBE/SUNSUBSCRIBE.
    subscribed: tokio::sync::Mutex<HashSet<String>>,
    /// Redis channels waiting to be resubscribed by the supervisor.
    pending: Mutex<HashSet<String>>,
    /// Channels Redis unsubscribed us from (`sunsubscribe` pushes), not yet handled by the
    /// supervisor. A set rather than a queue: a failover unsubscribes every channel of the
    /// moved slots in one burst (thousands with thousands of groups), and the supervisor takes
    /// the whole set at once, so one burst costs one `SSUBSCRIBE` per partition. It holds at
    /// most the channels this process subscribed (Redis names no others), so it needs no bound
    /// of its own.
    lost: Arc<Mutex<HashSet<String>>>,
    /// Set on a `Disconnection` push (or a `sunsubscribe` naming no channel): resubscribe
    /// everything.
    disconnected: Arc<AtomicBool>,
    /// SMessage pushes dropped because the dispatch queue was full (counted by the dispatcher).
    overflowed: Arc<AtomicU64>,
    wake: Arc<Notify>,
    /// Each partition's publish queue, read by that partition's publisher task.
    publishers: Vec<mpsc::Sender<Publish>>,
    /// Each partition's master (host, port), from our own `CLUSTER SLOTS` poll: `SPUBLISH` is
    /// routed there explicitly (see [`Shared::refresh_masters`]).
    masters: Mutex<Vec<Option<(String, u16)>>>,
    /// Set when a publish failed or a partition went down: poll the topology at the next tick.
    stale_masters: AtomicBool,
    /// Our own connection to each master that `SPUBLISH` pipelines go to, made on first use and
    /// dropped when it fails. Not redis-rs's cluster connection: that one connects to a node
    /// only once its own slot map names it, and after a failover it was seen to lack the new
    /// master for seconds ("connection not found" for every publish and probe, the partition
    /// Down all that while), although our `CLUSTER SLOTS` poll already named it.
    master_conns: Mutex<HashMap<(String, u16), redis::aio::MultiplexedConnection>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("seeds", &self.settings.seeds)
            .finish_non_exhaustive()
    }
}

struct Partition {
    /// Subscriptions in place and the latest probe came back.
    listening: watch::Sender<bool>,
    was_up: AtomicBool,
    probe_channel: String,
    /// The probe in flight: sequence number and deadline.
    in_flight: Mutex<Option<(u64, Instant)>>,
}

#[derive(Debug)]
struct Publish {
    /// The Redis (tagged) channel.
    channel: String,
    payload: Bytes,
    kind: PublishKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PublishKind {
    Direct,
    Broadcast,
    Probe,
}

/// Supervisor ticks (`keepalive_interval` each) between two topology polls when all is well:
/// 20 x 500 ms = 10 s.
const TOPOLOGY_POLL_TICKS: u32 = 20;

/// How often the topology is polled while a partition is Down (see `run_supervisor`): a
/// `CLUSTER SLOTS` to one node every 100 ms of an outage, to notice a promotion within 0.1 s.
const OUTAGE_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// SPUBLISH commands per pipeline, at most.
const PUBLISH_BATCH: usize = 512;

impl RedisClusterPubSubLayer {
    /// Builds the layer and starts its tasks (supervisor, dispatcher, publisher). The cluster
    /// connection is made in the background. Must be called inside a Tokio runtime.
    pub fn new(settings: ClusterPubSubSettings) -> Result<Self, LayerError> {
        if settings.seeds.is_empty() {
            return Err(LayerError::Config(
                "the Cluster pub/sub layer needs at least one seed node".into(),
            ));
        }
        tokio::runtime::Handle::try_current().map_err(|_| {
            LayerError::Config("channel layers must be created inside a Tokio runtime".into())
        })?;
        let (messages_tx, messages_rx) = mpsc::channel::<PushInfo>(settings.dispatch_queue.max(1));
        let lost = Arc::new(Mutex::new(HashSet::new()));
        let disconnected = Arc::new(AtomicBool::new(false));
        let overflowed = Arc::new(AtomicU64::new(0));
        let wake = Arc::new(Notify::new());
        let push_sender = {
            let lost = lost.clone();
            let disconnected = disconnected.clone();
            let overflowed = overflowed.clone();
            let wake = wake.clone();
            // Runs inside redis-rs for every push: classify and hand over, never wait.
            move |push: PushInfo| -> Result<(), std::convert::Infallible> {
                match push.kind {
                    PushKind::SMessage => {
                        let full = messages_tx.try_send(push).is_err();
                        if full {
                            overflowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    PushKind::SUnsubscribe => {
                        match push.data.first().and_then(text) {
                            Some(channel) => {
                                lock(&lost).insert(channel);
                            }
                            None => disconnected.store(true, Ordering::Release),
                        }
                        wake.notify_one();
                    }
                    PushKind::Disconnection => {
                        disconnected.store(true, Ordering::Release);
                        wake.notify_one();
                    }
                    _ => {}
                }
                Ok(())
            }
        };
        let client = redis::cluster::ClusterClientBuilder::new(settings.seeds.clone())
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(push_sender)
            .connection_timeout(settings.connection.connect_timeout)
            .response_timeout(settings.connection.command_timeout)
            .retries(3)
            .tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true))
            .build()
            .map_err(|e| LayerError::Config(format!("invalid Cluster seeds: {e}")))?;
        let tags = partition_tags(settings.partitions);
        let mut probes = HashMap::new();
        let partitions: Vec<Partition> = tags
            .iter()
            .enumerate()
            .map(|(i, tag)| {
                let probe_channel =
                    format!("{{{tag}}}{}__probe__.{}", settings.prefix, random_hex32());
                probes.insert(probe_channel.clone(), i);
                Partition {
                    listening: watch::Sender::new(false),
                    was_up: AtomicBool::new(false),
                    probe_channel,
                    in_flight: Mutex::new(None),
                }
            })
            .collect();
        let targets = tags
            .iter()
            .enumerate()
            .map(|(i, tag)| format!("partition {i} (tag {{{tag}}}, slot {})", slot_of_tag(tag)))
            .collect();
        let per_partition = settings.publish_queue.div_ceil(partitions.len()).max(1);
        let (publishers, publish_rxs): (Vec<_>, Vec<_>) = (0..partitions.len())
            .map(|_| mpsc::channel::<Publish>(per_partition))
            .unzip();
        let pending = partitions.iter().map(|p| p.probe_channel.clone()).collect();
        let shared = Arc::new(Shared {
            group_prefix: format!("{}__group__", settings.prefix),
            core: LocalCore::new(KIND, targets, settings.local_queue_bound, None),
            tags,
            client,
            conn: OnceCell::new(),
            partitions,
            probes,
            subscribed: tokio::sync::Mutex::new(HashSet::new()),
            pending: Mutex::new(pending),
            lost,
            disconnected,
            overflowed,
            wake,
            publishers,
            masters: Mutex::new(Vec::new()),
            stale_masters: AtomicBool::new(true),
            master_conns: Mutex::new(HashMap::new()),
            settings,
        });
        let tasks = &shared.core.lifecycle.tasks;
        tasks.spawn(run_supervisor(shared.clone()));
        tasks.spawn(run_dispatcher(shared.clone(), messages_rx));
        for (partition, queue) in publish_rxs.into_iter().enumerate() {
            tasks.spawn(run_publisher(shared.clone(), partition, queue));
        }
        Ok(Self { shared })
    }

    /// The layer's settings.
    pub fn settings(&self) -> &ClusterPubSubSettings {
        &self.shared.settings
    }

    /// Background tasks still running (0 after `close`).
    pub fn background_tasks(&self) -> usize {
        self.shared.core.lifecycle.tasks.len()
    }

    /// The Redis channel (with its partition's hash tag) a channel or group name travels on,
    /// for tests and operators.
    pub fn redis_channel_of_group(&self, group: &Group) -> String {
        self.shared.tagged(&self.shared.group_channel(group))
    }

    async fn publish(
        &self,
        name: &str,
        message: &Message,
        kind: PublishKind,
    ) -> Result<(), LayerError> {
        let shared = &self.shared;
        let partition = shared.partition_of(name);
        let part = &shared.partitions[partition];
        if !*part.listening.borrow() {
            let first = !part.was_up.load(Ordering::Acquire);
            let up = first && shared.wait_for_listening(partition).await;
            if !up {
                return Err(shared.unavailable(
                    partition,
                    "not subscribed, or the liveness probe has not passed",
                ));
            }
        }
        let publish = Publish {
            channel: shared.tagged(name),
            payload: message.to_msgpack()?,
            kind,
        };
        match timeout(
            shared.settings.connection.command_timeout,
            shared.publishers[partition].send(publish),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(LayerError::Closed),
            Err(_) => Err(shared.unavailable(partition, "publish queue full")),
        }
    }
}

/// A bulk or simple string push element as text.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

impl Shared {
    fn partition_of(&self, name: &str) -> usize {
        consistent_hash(name, self.tags.len())
    }

    fn tagged(&self, name: &str) -> String {
        format!("{{{}}}{name}", self.tags[self.partition_of(name)])
    }

    /// The name inside a tagged Redis channel.
    fn untagged<'a>(&self, channel: &'a str) -> &'a str {
        match (channel.starts_with('{'), channel.find('}')) {
            (true, Some(end)) => &channel[end + 1..],
            _ => channel,
        }
    }

    fn group_channel(&self, group: &Group) -> String {
        format!("{}{group}", self.group_prefix)
    }

    fn unavailable(&self, partition: usize, reason: &str) -> LayerError {
        LayerError::Unavailable {
            layer: KIND,
            host: format!("cluster partition {partition}"),
            reason: reason.to_owned(),
        }
    }

    /// Whether this process wants a (tagged) Redis channel.
    fn wants(&self, channel: &str) -> bool {
        if self.probes.contains_key(channel) {
            return true;
        }
        let name = self.untagged(channel);
        match name.strip_prefix(&self.group_prefix) {
            Some(group) => self.core.has_members(group),
            None => self.core.is_local(name),
        }
    }

    /// Every tagged channel wanted now (probes included).
    fn wanted(&self) -> Vec<String> {
        let (channels, groups) = self.core.wanted();
        channels
            .iter()
            .map(|c| self.tagged(c))
            .chain(groups.iter().map(|g| self.tagged(&self.group_channel(g))))
            .chain(self.partitions.iter().map(|p| p.probe_channel.clone()))
            .collect()
    }

    fn partition_of_tagged(&self, channel: &str) -> usize {
        match self.probes.get(channel) {
            Some(&p) => p,
            None => self.partition_of(self.untagged(channel)),
        }
    }

    async fn conn(&self) -> Result<ClusterConnection, LayerError> {
        let limit = self.settings.connection.connect_timeout;
        let conn = self
            .conn
            .get_or_try_init(|| async {
                match timeout(limit, self.client.get_async_connection()).await {
                    Ok(Ok(conn)) => Ok(conn),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("connect timed out".to_owned()),
                }
            })
            .await
            .map_err(|reason| LayerError::Unavailable {
                layer: KIND,
                host: "cluster".to_owned(),
                reason,
            })?;
        Ok(conn.clone())
    }

    async fn wait_for_listening(&self, partition: usize) -> bool {
        let mut listening = self.partitions[partition].listening.subscribe();
        let limit =
            self.settings.connection.connect_timeout + self.settings.connection.command_timeout;
        tokio::select! {
            r = timeout(limit, listening.wait_for(|up| *up)) => matches!(r, Ok(Ok(_))),
            () = self.core.lifecycle.shutdown.cancelled() => false,
        }
    }

    /// Makes the subscriptions of `channels` (tagged) match what is wanted, one partition per
    /// command. Subscribing fails with `Unavailable` (the caller rolls back); unsubscribing is
    /// best effort.
    async fn reconcile(&self, channels: &[String]) -> Result<(), LayerError> {
        let mut conn = self.conn().await?;
        let mut subscribed = self.subscribed.lock().await;
        let (subscribe, unsubscribe): (Vec<String>, Vec<String>) = channels
            .iter()
            .filter(|c| self.wants(c) != subscribed.contains(*c))
            .cloned()
            .partition(|c| self.wants(c));
        let limit = self.settings.connection.command_timeout;
        for (partition, batch) in by_partition(self, subscribe) {
            match timeout(limit, conn.ssubscribe(&batch)).await {
                Ok(Ok(())) => subscribed.extend(batch),
                Ok(Err(e)) => return Err(self.unavailable(partition, &e.to_string())),
                Err(_) => return Err(self.unavailable(partition, "SSUBSCRIBE timed out")),
            }
        }
        for (_, batch) in by_partition(self, unsubscribe) {
            for c in &batch {
                subscribed.remove(c);
            }
            if !matches!(timeout(limit, conn.sunsubscribe(&batch)).await, Ok(Ok(()))) {
                tracing::debug!(layer = KIND, "SUNSUBSCRIBE failed");
            }
        }
        Ok(())
    }

    /// Handles every loss Redis reported since the last call, as one batch: the channels of a
    /// `sunsubscribe` burst (or, after a disconnection, everything wanted) are queued for
    /// resubscription, their partitions marked Down, the topology polled once (the slot moved:
    /// publish to its new master from now on, not after the next poll; a publish to the old
    /// one is lost, if counted), and the queue resubscribed with one `SSUBSCRIBE` per partition.
    async fn follow_losses(&self) {
        let disconnected = self.disconnected.swap(false, Ordering::AcqRel);
        let lost: Vec<String> = lock(&self.lost).drain().collect();
        if disconnected {
            lock(&self.pending).extend(self.wanted());
            for partition in 0..self.partitions.len() {
                self.partition_down(
                    partition,
                    "connection to a cluster node lost; resubscribing",
                );
            }
        } else {
            let lost: Vec<String> = lost.into_iter().filter(|c| self.wants(c)).collect();
            if lost.is_empty() {
                return;
            }
            {
                let mut subscribed = self.subscribed.lock().await;
                for channel in &lost {
                    subscribed.remove(channel);
                }
            }
            let mut partitions: Vec<usize> =
                lost.iter().map(|c| self.partition_of_tagged(c)).collect();
            partitions.sort_unstable();
            partitions.dedup();
            lock(&self.pending).extend(lost);
            for partition in partitions {
                self.partition_down(
                    partition,
                    "Redis unsubscribed us (slot moved or failover); resubscribing",
                );
            }
        }
        self.refresh_masters().await;
        self.resubscribe_pending().await;
    }

    /// Resubscribes what the supervisor queued. Partitions that succeed get a probe at once.
    async fn resubscribe_pending(&self) {
        let pending: Vec<String> = lock(&self.pending).drain().collect();
        if pending.is_empty() {
            return;
        }
        let Ok(conn) = self.conn().await else {
            lock(&self.pending).extend(pending);
            return;
        };
        let mut subscribed = self.subscribed.lock().await;
        let limit = self.settings.connection.command_timeout;
        let batches: Vec<(usize, Vec<String>)> = by_partition(self, pending)
            .into_iter()
            .map(|(p, batch)| (p, batch.into_iter().filter(|c| self.wants(c)).collect()))
            .filter(|(_, batch): &(usize, Vec<String>)| !batch.is_empty())
            .collect();
        let mut outcomes = Vec::with_capacity(batches.len());
        for (partition, batch) in &batches {
            let mut conn = conn.clone();
            let route = format!("{{{}}}route", self.tags[*partition]);
            outcomes.push({
                // redis-rs routes SSUBSCRIBE by its slot map, which a failover leaves naming
                // the demoted master, now a replica that accepts the subscription and then
                // hears nothing while it resyncs (measured: ~2 s of broadcasts lost, uncounted).
                // A keyed read of the partition's slot answers MOVED there, which makes redis-rs
                // refresh its map first, so the subscription lands on the master. Only a hint,
                // so bounded by the keepalive interval: while a crashed master is not replaced
                // yet it does not answer, and the supervisor must get on with its probes.
                let _ = timeout(
                    self.settings.connection.keepalive_interval,
                    redis::cmd("EXISTS")
                        .arg(route)
                        .query_async::<i64>(&mut conn),
                )
                .await;
                timeout(limit, conn.ssubscribe(batch)).await
            });
        }
        for ((partition, batch), outcome) in batches.into_iter().zip(outcomes) {
            // The first subscription of a partition (at start) establishes, every later one
            // restores: only those are counted.
            if self.partitions[partition].was_up.load(Ordering::Acquire) {
                self.core.count_resubscribe();
            }
            match outcome {
                Ok(Ok(())) => {
                    subscribed.extend(batch);
                    self.send_probe(partition);
                }
                outcome => {
                    let reason = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => "SSUBSCRIBE timed out".to_owned(),
                    };
                    tracing::debug!(
                        layer = KIND,
                        partition,
                        reason,
                        "resubscription failed; retrying"
                    );
                    self.core.set_down(partition, &reason);
                    lock(&self.pending).extend(batch);
                }
            }
        }
    }

    /// Polls `CLUSTER SLOTS` and records each partition's master, where `SPUBLISH` is routed
    /// (see "Routing publishes" in the module docs for why not redis-rs's own slot map).
    async fn refresh_masters(&self) {
        let Ok(mut conn) = self.conn().await else {
            return;
        };
        // A random master may be the one that just crashed, which answers nothing until its
        // timeout: up to three tries, each bounded by the keepalive interval, so one dead node
        // does not hold up the supervisor (and the probes it sends) for a command timeout.
        let mut reply = None;
        for _ in 0..3 {
            let attempt = timeout(
                self.settings.connection.keepalive_interval,
                conn.route_command(
                    redis::cmd("CLUSTER").arg("SLOTS").clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
                ),
            )
            .await;
            if let Ok(Ok(value)) = attempt {
                reply = Some(value);
                break;
            }
        }
        let Some(Value::Array(ranges)) = reply else {
            tracing::debug!(
                layer = KIND,
                "CLUSTER SLOTS failed; keeping the last topology"
            );
            return;
        };
        let mut table: Vec<(u16, u16, String, u16)> = Vec::new();
        for range in ranges {
            let Value::Array(fields) = range else {
                continue;
            };
            let (Some(start), Some(end), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                continue;
            };
            let (Ok(start), Ok(end)) = (
                redis::from_redis_value::<u16>(start.clone()),
                redis::from_redis_value::<u16>(end.clone()),
            ) else {
                continue;
            };
            let (Some(host), Some(port)) = (master.first().and_then(text), master.get(1)) else {
                continue;
            };
            let Ok(port) = redis::from_redis_value::<u16>(port.clone()) else {
                continue;
            };
            table.push((start, end, host, port));
        }
        let masters = self
            .tags
            .iter()
            .map(|tag| {
                let slot = slot_of_tag(tag);
                table
                    .iter()
                    .find(|(start, end, _, _)| (*start..=*end).contains(&slot))
                    .map(|(_, _, host, port)| (host.clone(), *port))
            })
            .collect::<Vec<Option<(String, u16)>>>();
        let moved: Vec<usize> = {
            let mut known = lock(&self.masters);
            let moved = known
                .iter()
                .zip(&masters)
                .enumerate()
                .filter(|(_, (old, new))| old.is_some() && new.is_some() && old != new)
                .map(|(partition, _)| partition)
                .collect();
            *known = masters;
            moved
        };
        self.stale_masters.store(false, Ordering::Release);
        // A partition whose master changed (a replica promoted after a crash) is resubscribed
        // now, whatever redis-rs said of earlier attempts: it acknowledges an SSUBSCRIBE for a
        // slot whose master is dead without it reaching any node, and waiting for the probe
        // sent then to miss its deadline cost a whole command timeout after the promotion
        // (measured: delivery back ~2.5 s after the promotion; now within a keepalive tick).
        for partition in moved {
            let channels: Vec<String> = self
                .wanted()
                .into_iter()
                .filter(|c| self.partition_of_tagged(c) == partition)
                .collect();
            {
                let mut subscribed = self.subscribed.lock().await;
                for channel in &channels {
                    subscribed.remove(channel);
                }
            }
            lock(&self.pending).extend(channels);
            self.partition_down(partition, "the partition's master changed; resubscribing");
        }
    }

    /// A connection to the master at `host:port` for publishing (see `master_conns`), with the
    /// seeds' credentials and the layer's timeouts.
    async fn master_conn(
        &self,
        host: &str,
        port: u16,
    ) -> Result<redis::aio::MultiplexedConnection, String> {
        let key = (host.to_owned(), port);
        if let Some(conn) = lock(&self.master_conns).get(&key) {
            return Ok(conn.clone());
        }
        let seed = self
            .settings
            .seeds
            .first()
            .ok_or_else(|| "no seed node".to_owned())?;
        let info = redis::IntoConnectionInfo::into_connection_info(seed.as_str())
            .map_err(|e| e.to_string())?
            .set_addr(redis::ConnectionAddr::Tcp(host.to_owned(), port));
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let connection = &self.settings.connection;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connection.connect_timeout))
            .set_response_timeout(Some(connection.command_timeout));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        lock(&self.master_conns).insert(key, conn.clone());
        Ok(conn)
    }

    /// Sends one partition's `SPUBLISH` pipeline to the partition's master over our own
    /// connection to it (see `master_conns`), or, before the first topology poll named one,
    /// through redis-rs's cluster connection, which routes by slot. Returns each command's
    /// receiver count, or why the pipeline failed (a failed master connection is dropped).
    async fn publish_pipeline(
        &self,
        partition: usize,
        pipeline: &redis::Pipeline,
        limit: std::time::Duration,
    ) -> Result<Vec<i64>, String> {
        let Some((host, port)) = self.master_of(partition) else {
            let mut conn = self.conn().await.map_err(|e| e.to_string())?;
            return match timeout(limit, pipeline.query_async(&mut conn)).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err("SPUBLISH timed out".to_owned()),
            };
        };
        let mut master = self.master_conn(&host, port).await?;
        match timeout(limit, pipeline.query_async(&mut master)).await {
            Ok(Ok(replies)) => Ok(replies),
            Ok(Err(e)) => {
                self.forget_master_conn(&host, port);
                Err(e.to_string())
            }
            Err(_) => {
                self.forget_master_conn(&host, port);
                Err("SPUBLISH timed out".to_owned())
            }
        }
    }

    /// Drops a failed publishing connection, so the next publish makes a new one.
    fn forget_master_conn(&self, host: &str, port: u16) {
        lock(&self.master_conns).remove(&(host.to_owned(), port));
    }

    /// Whether any partition is Down (not listening).
    fn any_partition_down(&self) -> bool {
        self.partitions.iter().any(|p| !*p.listening.borrow())
    }

    /// The master of a partition, if known.
    fn master_of(&self, partition: usize) -> Option<(String, u16)> {
        lock(&self.masters).get(partition).cloned().flatten()
    }

    /// Marks a partition Down (health, log, outage counter) and stops sends through it.
    fn partition_down(&self, partition: usize, reason: &str) {
        self.stale_masters.store(true, Ordering::Release);
        self.partitions[partition].listening.send_replace(false);
        *lock(&self.partitions[partition].in_flight) = None;
        self.core.set_down(partition, reason);
    }

    /// Queues a probe for `partition` on the publisher, unless one is in flight; it is overdue
    /// `command_timeout` from now.
    fn send_probe(&self, partition: usize) {
        self.send_probe_at(partition, Instant::now());
    }

    /// [`Self::send_probe`] with the deadline counted from `tick`, the keepalive tick that
    /// sends it: the check on a later tick then finds it overdue exactly `command_timeout`
    /// (rounded up to whole ticks) after it was sent, not one tick later for the microseconds
    /// the tick's own work took.
    fn send_probe_at(&self, partition: usize, tick: Instant) {
        static SEQ: AtomicU64 = AtomicU64::new(1);
        let part = &self.partitions[partition];
        let mut in_flight = lock(&part.in_flight);
        if in_flight.is_some() {
            return;
        }
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let probe = Publish {
            channel: part.probe_channel.clone(),
            payload: Bytes::copy_from_slice(&seq.to_be_bytes()),
            kind: PublishKind::Probe,
        };
        if self.publishers[partition].try_send(probe).is_ok() {
            *in_flight = Some((seq, tick + self.settings.connection.command_timeout));
        }
    }

    /// A probe came back.
    fn probe_returned(&self, partition: usize, payload: &[u8]) {
        let Ok(bytes) = <[u8; 8]>::try_from(payload) else {
            return;
        };
        let seq = u64::from_be_bytes(bytes);
        let part = &self.partitions[partition];
        {
            let mut in_flight = lock(&part.in_flight);
            if !in_flight.is_some_and(|(s, _)| s == seq) {
                return;
            }
            *in_flight = None;
        }
        // Not Up while any of its subscriptions is known to be missing: queued for
        // resubscription, or reported lost and not handled yet.
        let waiting = self.disconnected.load(Ordering::Acquire)
            || lock(&self.pending)
                .iter()
                .any(|c| self.partition_of_tagged(c) == partition)
            || lock(&self.lost)
                .iter()
                .any(|c| self.wants(c) && self.partition_of_tagged(c) == partition);
        if !waiting && !*part.listening.borrow() {
            part.listening.send_replace(true);
            part.was_up.store(true, Ordering::Release);
            self.core.set_up(partition);
        }
    }

    /// Routes one `smessage` push.
    async fn dispatch(&self, push: PushInfo) {
        let (Some(channel), Some(Value::BulkString(payload))) =
            (push.data.first().and_then(text), push.data.get(1))
        else {
            return;
        };
        if let Some(&partition) = self.probes.get(&channel) {
            self.probe_returned(partition, payload);
            return;
        }
        let message = match Message::from_msgpack(payload) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(layer = KIND, channel, error = %e, "undecodable message from Redis");
                self.core.dropped(DropReason::Undecodable, &channel, 1);
                return;
            }
        };
        let name = self.untagged(&channel);
        match name.strip_prefix(&self.group_prefix) {
            Some(group) => {
                self.core.deliver_to_group(group, &message, None).await;
            }
            None => self.core.deliver(name, message, None),
        }
    }

    fn published(&self, publish: &Publish, receivers: i64) {
        if receivers > 0 {
            return;
        }
        let name = self.untagged(&publish.channel);
        match publish.kind {
            PublishKind::Direct => self.core.dropped(DropReason::NoSuchChannel, name, 1),
            PublishKind::Broadcast => {
                if name
                    .strip_prefix(&self.group_prefix)
                    .is_some_and(|g| self.core.has_members(g))
                {
                    self.core.dropped(DropReason::Unheard, name, 1);
                }
            }
            PublishKind::Probe => {}
        }
    }

    fn forget(&self, channel: &str) -> Vec<String> {
        let Some(groups) = self.core.forget(channel) else {
            return Vec::new();
        };
        std::iter::once(self.tagged(channel))
            .chain(groups.iter().map(|g| self.tagged(&self.group_channel(g))))
            .collect()
    }
}

/// Groups tagged channels by partition (one slot each), keeping order.
fn by_partition(shared: &Shared, channels: Vec<String>) -> Vec<(usize, Vec<String>)> {
    let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
    for channel in channels {
        let p = shared.partition_of_tagged(&channel);
        match groups.iter_mut().find(|(q, _)| *q == p) {
            Some((_, batch)) => batch.push(channel),
            None => groups.push((p, vec![channel])),
        }
    }
    groups
}

impl ChannelOwner for Shared {
    fn release(self: Arc<Self>, channel: &str) {
        let names = self.forget(channel);
        if names.is_empty() || self.core.lifecycle.shutdown.is_cancelled() {
            return;
        }
        let this = self.clone();
        self.core.lifecycle.tasks.spawn(async move {
            if let Err(e) = this.reconcile(&names).await {
                tracing::debug!(error = %e, "unsubscribe after inbox drop failed");
            }
        });
    }
}

/// Follows control pushes, resubscribes, and probes every partition (see the module docs).
async fn run_supervisor(shared: Arc<Shared>) {
    let interval = shared.settings.connection.keepalive_interval;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The topology is polled at least every TOPOLOGY_POLL_TICKS ticks, and at the next tick
    // after anything went wrong.
    let mut since_poll = 0u32;
    loop {
        tokio::select! {
            biased;
            () = shared.core.lifecycle.shutdown.cancelled() => return,
            () = shared.wake.notified() => shared.follow_losses().await,
            // While a partition is Down, the topology is polled every OUTAGE_POLL rather than
            // every keepalive tick, so a promoted replica is used as soon as the cluster
            // names it.
            () = tokio::time::sleep(OUTAGE_POLL), if shared.any_partition_down() => {
                shared.refresh_masters().await;
                shared.resubscribe_pending().await;
            }
            tick = ticks.tick() => {
                // Overdue probes first, before anything here that talks to Redis (and may
                // wait on a hung node): a missed probe is reported on the tick it is due.
                for (partition, part) in shared.partitions.iter().enumerate() {
                    let overdue = lock(&part.in_flight).is_some_and(|(_, deadline)| tick >= deadline);
                    if overdue {
                        let channels: Vec<String> = shared
                            .wanted()
                            .into_iter()
                            .filter(|c| shared.partition_of_tagged(c) == partition)
                            .collect();
                        lock(&shared.pending).extend(channels);
                        shared.partition_down(partition, "liveness probe not received in time; resubscribing");
                    }
                }
                // Pushes that came while the last round ran (a wake-up is one permit).
                shared.follow_losses().await;
                since_poll += 1;
                if since_poll >= TOPOLOGY_POLL_TICKS || shared.stale_masters.load(Ordering::Acquire) {
                    since_poll = 0;
                    shared.refresh_masters().await;
                }
                shared.resubscribe_pending().await;
                for partition in 0..shared.partitions.len() {
                    shared.send_probe_at(partition, tick);
                }
            }
        }
    }
}

/// Fans out what Redis pushed, in order, and counts what the push queue could not hold.
async fn run_dispatcher(shared: Arc<Shared>, mut queue: mpsc::Receiver<PushInfo>) {
    loop {
        let push = tokio::select! {
            biased;
            () = shared.core.lifecycle.shutdown.cancelled() => return,
            push = queue.recv() => push,
        };
        let overflowed = shared.overflowed.swap(0, Ordering::Relaxed);
        if overflowed > 0 {
            shared
                .core
                .dropped(DropReason::DispatchOverflow, "cluster", overflowed);
        }
        match push {
            Some(push) => shared.dispatch(push).await,
            None => return,
        }
    }
}

/// Writes one partition's queued messages as `SPUBLISH` pipelines to its master, in queue
/// order (a sender's messages to one channel stay in order). One task per partition: a master
/// that hangs holds up only its own partitions' pipelines, for at most `command_timeout` each.
async fn run_publisher(shared: Arc<Shared>, partition: usize, mut queue: mpsc::Receiver<Publish>) {
    let limit = shared.settings.connection.command_timeout;
    let mut list: Vec<Publish> = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        let first = tokio::select! {
            biased;
            () = shared.core.lifecycle.shutdown.cancelled() => break,
            first = queue.recv() => first,
        };
        let Some(first) = first else { break };
        list.push(first);
        while list.len() < PUBLISH_BATCH {
            match queue.try_recv() {
                Ok(publish) => list.push(publish),
                Err(_) => break,
            }
        }
        let mut pipeline = redis::pipe();
        for publish in &list {
            pipeline
                .cmd("SPUBLISH")
                .arg(&publish.channel)
                .arg(publish.payload.as_ref());
        }
        let replies = shared.publish_pipeline(partition, &pipeline, limit).await;
        if replies.is_err() {
            shared.stale_masters.store(true, Ordering::Release);
        }
        match replies {
            Ok(replies) => {
                for (publish, receivers) in list.iter().zip(replies) {
                    shared.published(publish, receivers);
                }
            }
            Err(reason) => {
                let lost = list.iter().filter(|p| p.kind != PublishKind::Probe).count();
                tracing::warn!(
                    layer = KIND,
                    partition,
                    messages = lost,
                    reason,
                    "publishing failed; the messages are lost"
                );
                for publish in list.iter().filter(|p| p.kind != PublishKind::Probe) {
                    shared.core.dropped(
                        DropReason::PublishFailed,
                        shared.untagged(&publish.channel),
                        1,
                    );
                }
            }
        }
        list.clear();
    }
    queue.close();
    while let Ok(publish) = queue.try_recv() {
        if publish.kind != PublishKind::Probe {
            shared.core.dropped(
                DropReason::PublishFailed,
                shared.untagged(&publish.channel),
                1,
            );
        }
    }
}

#[async_trait::async_trait]
impl ChannelLayer for RedisClusterPubSubLayer {
    async fn new_channel(&self) -> Result<Inbox, LayerError> {
        self.shared.core.lifecycle.check_open()?;
        let name = format!("{}specific.{}", self.shared.settings.prefix, random_hex32());
        let owner: std::sync::Weak<Shared> = Arc::downgrade(&self.shared);
        let owner: std::sync::Weak<dyn ChannelOwner> = owner;
        let inbox = self.shared.core.open(Arc::from(name.as_str()), owner);
        if let Err(e) = self.shared.reconcile(&[self.shared.tagged(&name)]).await {
            drop(inbox);
            return Err(e);
        }
        Ok(inbox)
    }

    async fn send(&self, channel: &str, message: Message) -> Result<(), LayerError> {
        self.shared.core.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        self.publish(channel, &message, PublishKind::Direct).await?;
        self.shared.core.count_sent();
        Ok(())
    }

    async fn group_add(&self, group: &Group, channel: &str) -> Result<(), LayerError> {
        self.shared.core.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        let inserted = self.shared.core.join_local(group, channel)?;
        let tagged = self.shared.tagged(&self.shared.group_channel(group));
        if let Err(e) = self.shared.reconcile(std::slice::from_ref(&tagged)).await {
            if inserted {
                self.shared.core.leave(group, channel);
                let _ = self.shared.reconcile(std::slice::from_ref(&tagged)).await;
            }
            return Err(e);
        }
        Ok(())
    }

    async fn group_discard(&self, group: &Group, channel: &str) -> Result<(), LayerError> {
        self.shared.core.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        if self.shared.core.leave(group, channel) {
            let tagged = self.shared.tagged(&self.shared.group_channel(group));
            if let Err(e) = self.shared.reconcile(&[tagged]).await {
                tracing::debug!(error = %e, "unsubscribe after group_discard failed");
            }
        }
        Ok(())
    }

    async fn group_send(&self, group: &Group, message: Message) -> Result<(), LayerError> {
        self.shared.core.lifecycle.check_open()?;
        self.publish(
            &self.shared.group_channel(group),
            &message,
            PublishKind::Broadcast,
        )
        .await?;
        self.shared.core.count_group_sent();
        Ok(())
    }

    async fn flush(&self) -> Result<(), LayerError> {
        let cleared = self.shared.core.clear();
        let groups: HashSet<&Group> = cleared.memberships.iter().map(|(g, _)| g).collect();
        let names: Vec<String> = cleared
            .channels
            .iter()
            .map(|c| self.shared.tagged(c))
            .chain(
                groups
                    .into_iter()
                    .map(|g| self.shared.tagged(&self.shared.group_channel(g))),
            )
            .collect();
        self.shared.reconcile(&names).await
    }

    async fn close(&self) -> Result<(), LayerError> {
        self.shared.core.lifecycle.mark_closed();
        // The cluster connection outlives `close` (it is shared with clones of the state), so
        // leave every subscription explicitly instead of relying on the socket closing.
        let mut subscribed: Vec<String> = self
            .shared
            .subscribed
            .lock()
            .await
            .iter()
            .cloned()
            .collect();
        self.shared.core.clear();
        // The supervisor first: it would take our own SUNSUBSCRIBE confirmations of the probe
        // channels for losses and subscribe them again.
        self.shared.core.lifecycle.stop_tasks().await;
        subscribed.retain(|c| !self.shared.probes.contains_key(c));
        let budget = self.shared.settings.connection.command_timeout * 2;
        if timeout(budget, self.shared.reconcile(&subscribed))
            .await
            .is_err()
        {
            tracing::debug!(layer = KIND, "timed out leaving subscriptions at close");
        }
        if let Ok(mut conn) = self.shared.conn().await {
            let probes: Vec<String> = self.shared.probes.keys().cloned().collect();
            for (_, batch) in by_partition(&self.shared, probes) {
                let _ = timeout(
                    self.shared.settings.connection.command_timeout,
                    conn.sunsubscribe(&batch),
                )
                .await;
            }
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

impl Drop for RedisClusterPubSubLayer {
    fn drop(&mut self) {
        self.shared.core.lifecycle.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_the_cluster_hash() {
        // The Redis Cluster specification's test vector.
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn tags_spread_evenly_over_slots() {
        for partitions in [1, 16, 64] {
            let tags = partition_tags(partitions);
            assert_eq!(tags.len(), partitions);
            for (i, tag) in tags.iter().enumerate() {
                let slot = usize::from(slot_of_tag(tag));
                assert!(slot >= i * 16384 / partitions && slot < (i + 1) * 16384 / partitions);
            }
        }
    }

    #[test]
    fn cluster_urls() {
        assert_eq!(
            parse_cluster_url("redis+cluster://a:7000?addr=b:7001").unwrap(),
            ["redis://a:7000/", "redis://b:7001/"]
        );
        assert!(parse_cluster_url("redis+cluster://a").is_err());
        assert!(parse_cluster_url("redis+cluster://a:1?x=y").is_err());
    }
}
