//! The Redis pub/sub layer: lowest latency, fire-and-forget, wire-compatible with Python
//! `fast-channels`' `RedisPubSubChannelLayer`.
//!
//! **Formats.** A channel is the Redis pub/sub channel `"{prefix}specific.{32 hex}"`; a group is
//! the Redis channel `"{prefix}__group__{group}"`; `send` and `group_send` are one `PUBLISH` of
//! the msgpack map. Which host of the ring carries a name is `consistent_hash(name)`, as in
//! Python, so a Python process publishing to a group reaches our members and vice versa.
//!
//! **Membership is local.** Each process keeps its own table of which of *its* channels are in
//! which group. It subscribes to a group's Redis channel while it has at least one local member
//! and unsubscribes when the last one leaves; one received message is then fanned out to every
//! local member, through each member's bounded queue (see [`Inbox`] for the drop policy).
//!
//! **One subscriber connection per host**, owned by one background task, not one per WebSocket:
//! ten thousand connections cost ten thousand `SUBSCRIBE`d names on one socket, not ten thousand
//! sockets.
//!
//! **Reading is separate from fan-out.** redis-rs hands a subscription's messages over through
//! an *unbounded* channel, so whatever reads that stream must keep up or the buffer grows
//! without limit. The subscriber task therefore only moves each message into a bounded
//! `dispatch_queue` (a non-blocking push) and goes back to reading; a separate dispatch task per
//! host decodes and fans out. A burst the fan-out cannot absorb overflows the bounded queue,
//! where it is dropped and counted ([`DropReason::DispatchOverflow`]), instead of piling up
//! unseen inside the client library. One dispatch task per host keeps each host's messages in
//! the order Redis sent them.
//!
//! **Publishing is pipelined.** A sender does not wait for Redis's reply to its `PUBLISH`: it
//! hands the encoded message to one publisher task per host (a bounded queue,
//! [`PubSubSettings::publish_queue`]) and goes on with its next frame. The task writes whatever
//! has queued up as one pipeline per round trip, in queue order, so one sender's messages keep
//! their order and a busy process pays a fraction of a round trip per message. Nothing is lost
//! silently: a pipeline that fails counts each of its messages as
//! [`DropReason::PublishFailed`]; a direct message that reached no subscriber counts as
//! [`DropReason::NoSuchChannel`]; a broadcast that reached no subscriber while this process has
//! members in the group counts as [`DropReason::Unheard`] (our own subscription was missing).
//! While a host's subscriber connection is not back with every subscription in place, sending
//! through it is refused at once with [`LayerError::Unavailable`], so the sender can tell its
//! client instead of publishing into the void.
//!
//! **Outages.** Pub/sub has no memory: what is published while we are disconnected is gone. The
//! Python layer loses those messages without telling anyone. Here the subscriber task notices
//! the closed socket at once, marks the layer Down (health, log, `outages` counter), reconnects
//! with backoff, resubscribes every wanted group and channel, and marks it Up again only once an
//! end-to-end **liveness probe** has passed: a message published through the normal publish path
//! to a probe channel of this layer, received back on the subscription within `command_timeout`.
//! The probe repeats every `keepalive_interval`; one that does not come back marks the host Down
//! and reconnects, so an open socket that delivers nothing (a stuck publish path, a dropped
//! subscription) is an outage like a closed one. Health is never Up while a wanted subscription
//! is missing, and sends are refused while it is Down.
//!
//! **Subscription consistency.** `group_add`, `group_discard`, inbox drops and the reconnecting
//! subscriber all change subscriptions concurrently. Rather than sending the `SUBSCRIBE` or
//! `UNSUBSCRIBE` each caller intended (which could arrive in the wrong order), every change goes
//! through `Shared::reconcile`: under a per-host async lock it compares what the local table
//! *wants now* with what is subscribed and sends the difference. Whatever the interleaving, the
//! last reconcile leaves Redis matching the table.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

use crate::health::TargetHealth;
use crate::hosts::{consistent_hash, moved, Backoff, ConnectionSettings, RedisHost};
use crate::inbox::ChannelOwner;
use crate::local::LocalCore;
use crate::names::{random_hex32, safe_group_name, validate_channel_name};
use crate::scripted::ScriptedSend;
use crate::stats::DropReason;
use crate::{ChannelLayer, Group, Inbox, LayerError, LayerHealth, LayerStats, Message};

const KIND: &str = "redis_pubsub";

/// Settings of the Redis pub/sub layer.
#[derive(Clone, Debug)]
pub struct PubSubSettings {
    /// Redis URLs of the ring (one or more). Every process sharing groups must list the same
    /// hosts in the same order.
    pub hosts: Vec<String>,
    /// Prepended to every Redis channel name (default `"asgi"`, as in Python), so several
    /// layers can share one Redis without hearing each other.
    pub prefix: String,
    /// Messages one local channel may hold before new ones are dropped (default 1024). A chat
    /// consumer a thousand messages behind is not coming back; beyond that the memory goes to a
    /// dead client. The queue allocates as it fills, so an idle channel costs nothing.
    pub local_queue_bound: usize,
    /// Messages received from Redis that may wait for fan-out, per host (default 8192). The
    /// subscriber task only moves messages from the Redis connection into this queue, so it
    /// keeps draining the connection (and noticing outages) however costly the fan-out is; a
    /// separate dispatch task empties it. When it is full the newest message is dropped and
    /// counted as [`DropReason::DispatchOverflow`]: the process as a whole cannot keep up, and
    /// holding more would only grow memory and latency. 8192 absorbs a burst of several
    /// thousand broadcasts (one per message, not per member); at a few hundred bytes per chat
    /// message that is a few MiB per host at worst.
    pub dispatch_queue: usize,
    /// Messages that may wait for the publisher task, per host (default 8192). Senders do not
    /// wait for Redis's reply to their `PUBLISH`: they hand the message to one publisher task per
    /// host, which writes whatever has queued up as one pipeline per round trip. When the queue
    /// is full a sender waits (up to `command_timeout`) for room, so a Redis that cannot keep up
    /// slows its senders down instead of growing memory.
    pub publish_queue: usize,
    /// Connection, timeout and reconnect settings.
    pub connection: ConnectionSettings,
}

impl PubSubSettings {
    /// Settings for the given hosts, with defaults otherwise.
    pub fn new(hosts: Vec<String>) -> Self {
        Self {
            hosts,
            prefix: "asgi".to_owned(),
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

/// The Redis pub/sub channel layer.
#[derive(Debug)]
pub struct RedisPubSubLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    settings: PubSubSettings,
    /// `"{prefix}__group__"`: tells group channels from direct ones.
    group_prefix: String,
    hosts: Vec<SubscriberHost>,
    /// This process's channels, groups and memberships, the fan-out, counters, health and
    /// lifecycle: everything but the Redis transport.
    core: LocalCore,
}

#[derive(Debug)]
struct SubscriberHost {
    redis: RedisHost,
    /// The live subscriber connection's command half; `None` while (re)connecting.
    sink: watch::Sender<Option<PubSubSink>>,
    /// What is subscribed on the live connection. The async mutex doubles as the per-host
    /// subscription lock: whoever holds it is the only one talking SUBSCRIBE/UNSUBSCRIBE.
    subscribed: tokio::sync::Mutex<HashSet<String>>,
    /// Whether the subscriber connection is up with every wanted subscription in place *and* the
    /// latest liveness probe came back on it (see [`run_subscriber`]). While it is not,
    /// publishing through this host is refused at once: what we published could not reach our
    /// own members, and the sender should hear so rather than lose it silently. A `watch` so a
    /// layer just built can wait for its first connection.
    listening: watch::Sender<bool>,
    /// Whether `listening` was ever true: tells a first connection from a reconnection.
    was_up: AtomicBool,
    /// The Redis channel of this host's liveness probe: `"{prefix}__probe__.{32 hex}"`, unique to
    /// this layer instance and chosen so that it hashes to this host of the ring (so it travels
    /// exactly the path a message to this host travels). Python processes sharing the Redis
    /// never subscribe to it.
    probe_channel: String,
    /// The queue of the host's publisher task (see [`PubSubSettings::publish_queue`]).
    publisher: mpsc::Sender<Publish>,
}

/// One `PUBLISH` waiting for its host's publisher task.
#[derive(Debug)]
struct Publish {
    /// The Redis channel.
    channel: String,
    /// The msgpack-encoded message.
    payload: Bytes,
    /// What the message is, which decides what a reply of "no subscriber" means.
    kind: PublishKind,
    /// Publish through this script instead of a bare `PUBLISH` (see [`ScriptedSend`]).
    script: Option<Box<ScriptedSend>>,
    /// When the sender handed it over: a message that waited longer than the command timeout
    /// (Redis hung, the queue behind a stalled pipeline) is dropped as expired instead of being
    /// published late, so no chat line arrives seconds later as if it were live.
    queued_at: tokio::time::Instant,
}

/// What a queued `PUBLISH` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PublishKind {
    /// A direct message to one channel.
    Direct,
    /// A broadcast to a group channel.
    Broadcast,
    /// A liveness probe, expected back on our own subscription.
    Probe,
}

/// PUBLISH commands written in one pipeline, at most: enough to amortise a round trip over a
/// burst, few enough that a pipeline's reply (one integer per command) stays small.
const PUBLISH_BATCH: usize = 512;

impl RedisPubSubLayer {
    /// Builds the layer and starts one subscriber task per host. Connections are made in the
    /// background (the first `new_channel` waits up to `connect_timeout` for them). Must be
    /// called inside a Tokio runtime.
    pub fn new(settings: PubSubSettings) -> Result<Self, LayerError> {
        if settings.hosts.is_empty() {
            return Err(LayerError::Config(
                "the pub/sub layer needs at least one Redis host".into(),
            ));
        }
        tokio::runtime::Handle::try_current().map_err(|_| {
            LayerError::Config("channel layers must be created inside a Tokio runtime".into())
        })?;
        let mut publish_queues = Vec::with_capacity(settings.hosts.len());
        if let Some(cluster) = settings
            .hosts
            .iter()
            .find(|h| h.starts_with(crate::cluster::SCHEME))
        {
            return Err(LayerError::Config(format!(
                "{cluster:?} is a Redis Cluster: use cluster::RedisClusterPubSubLayer (sharded pub/sub) there"
            )));
        }
        let ring = settings.hosts.len();
        let hosts = settings
            .hosts
            .iter()
            .enumerate()
            .map(|(index, url)| {
                let (publisher, queue) = mpsc::channel(settings.publish_queue.max(1));
                publish_queues.push(queue);
                Ok(SubscriberHost {
                    redis: RedisHost::new(url, KIND, &settings.connection)?,
                    sink: watch::Sender::new(None),
                    subscribed: tokio::sync::Mutex::new(HashSet::new()),
                    listening: watch::Sender::new(false),
                    was_up: AtomicBool::new(false),
                    probe_channel: probe_channel(&settings.prefix, index, ring),
                    publisher,
                })
            })
            .collect::<Result<Vec<_>, LayerError>>()?;
        let targets = hosts.iter().map(|h| h.redis.name.clone()).collect();
        let shared = Arc::new(Shared {
            group_prefix: format!("{}__group__", settings.prefix),
            core: LocalCore::new(KIND, targets, settings.local_queue_bound, None),
            hosts,
            settings,
        });
        for host in &shared.hosts {
            if let Some(watcher) = host.redis.watcher(shared.core.lifecycle.shutdown.clone()) {
                shared.core.lifecycle.tasks.spawn(watcher);
            }
        }
        for (index, publish_queue) in publish_queues.into_iter().enumerate() {
            shared
                .core
                .lifecycle
                .tasks
                .spawn(run_publisher(shared.clone(), index, publish_queue));
            let (dispatch, queue) = mpsc::channel(shared.settings.dispatch_queue.max(1));
            shared
                .core
                .lifecycle
                .tasks
                .spawn(run_subscriber(shared.clone(), index, dispatch));
            shared
                .core
                .lifecycle
                .tasks
                .spawn(run_dispatcher(shared.clone(), queue));
        }
        Ok(Self { shared })
    }

    /// The layer's settings.
    pub fn settings(&self) -> &PubSubSettings {
        &self.shared.settings
    }

    /// Background tasks still running (a subscriber, a dispatcher and a publisher per host, plus clean-ups in
    /// flight; 0 after `close`).
    pub fn background_tasks(&self) -> usize {
        self.shared.core.lifecycle.tasks.len()
    }

    /// Hands a message to the publisher task of its host, without waiting for Redis (see
    /// [`PubSubSettings::publish_queue`]). Messages of one caller keep their order: one task per
    /// host writes them in queue order. Refused at once while the host's subscriptions are not
    /// in place, since what is published then could not reach this process's own members.
    async fn publish(
        &self,
        channel: String,
        message: &Message,
        kind: PublishKind,
        script: Option<ScriptedSend>,
    ) -> Result<(), LayerError> {
        let host = &self.shared.hosts[self.shared.host_of(&channel)];
        if !*host.listening.borrow() {
            // A layer just built is still making its first connection: wait for it as
            // `new_channel` does. One that was up and lost it refuses at once instead, so that
            // during an outage senders hear so immediately rather than one timeout later.
            let first_connection = !host.was_up.load(Ordering::Acquire);
            let connected = first_connection && self.shared.wait_for_listening(host).await;
            if !connected {
                return Err(host
                    .redis
                    .unavailable("not subscribed, or the liveness probe has not passed"));
            }
        }
        let publish = Publish {
            channel,
            payload: message.to_msgpack()?,
            kind,
            script: script.map(Box::new),
            queued_at: tokio::time::Instant::now(),
        };
        let limit = self.shared.settings.connection.command_timeout;
        match timeout(limit, host.publisher.send(publish)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(LayerError::Closed),
            Err(_) => Err(host.redis.unavailable("publish queue full")),
        }
    }

    /// A `group_send`, plain or through a script.
    async fn broadcast(
        &self,
        group: &Group,
        message: &Message,
        script: Option<ScriptedSend>,
    ) -> Result<(), LayerError> {
        self.shared.core.lifecycle.check_open()?;
        self.publish(
            self.shared.group_channel(group),
            message,
            PublishKind::Broadcast,
            script,
        )
        .await?;
        self.shared.core.count_group_sent();
        Ok(())
    }
}

impl Shared {
    fn host_of(&self, name: &str) -> usize {
        consistent_hash(name, self.hosts.len())
    }

    /// The Redis channel of a group: `"{prefix}__group__{text}"`, with the text the group was
    /// made from (see [`Group::text`]), as the Python layer names it: a room `café` is
    /// `room_café` on both, so Python and Rust members of it meet.
    fn group_channel(&self, group: &Group) -> String {
        format!("{}{}", self.group_prefix, group.text())
    }

    /// Makes the subscriptions of `names` (all on host `index`) match the local table. Waits up
    /// to `connect_timeout` for a connection if something must be subscribed while the host is
    /// (re)connecting; unsubscribing from a dead connection is a no-op (the reconnect only
    /// resubscribes what is still wanted).
    async fn reconcile(&self, index: usize, names: &[String]) -> Result<(), LayerError> {
        let host = &self.hosts[index];
        let settings = &self.settings.connection;
        let wants_any = names.iter().any(|n| self.wants(n));
        if wants_any && host.sink.borrow().is_none() && !self.wait_for_subscriber(host).await {
            return Err(host.redis.unavailable("not connected"));
        }
        let mut subscribed = host.subscribed.lock().await;
        // Read the sink and the wishes only now, under the subscription lock: the subscriber
        // task cannot swap connections underneath us, and the wishes are the latest.
        let sink = host.sink.borrow().clone();
        let (subscribe, unsubscribe): (Vec<String>, Vec<String>) = names
            .iter()
            .filter(|n| self.wants(n) != subscribed.contains(*n))
            .cloned()
            .partition(|n| self.wants(n));
        let Some(mut sink) = sink else {
            return if subscribe.is_empty() {
                Ok(())
            } else {
                Err(host.redis.unavailable("not connected"))
            };
        };
        if !subscribe.is_empty() {
            match timeout(settings.command_timeout, sink.subscribe(&subscribe)).await {
                Ok(Ok(())) => subscribed.extend(subscribe),
                Ok(Err(e)) => return Err(host.redis.unavailable(e)),
                Err(_) => return Err(host.redis.unavailable("SUBSCRIBE timed out")),
            }
        }
        if !unsubscribe.is_empty() {
            match timeout(settings.command_timeout, sink.unsubscribe(&unsubscribe)).await {
                Ok(Ok(())) => {
                    for name in &unsubscribe {
                        subscribed.remove(name);
                    }
                }
                // The connection is going away; the reconnect will not resubscribe these.
                Ok(Err(e)) => tracing::debug!(error = %e, "UNSUBSCRIBE failed"),
                Err(_) => tracing::debug!("UNSUBSCRIBE timed out"),
            }
        }
        Ok(())
    }

    /// Waits up to `connect_timeout` (or until shutdown) for `host`'s subscriber connection;
    /// `true` once it is there.
    async fn wait_for_subscriber(&self, host: &SubscriberHost) -> bool {
        let mut connected = host.sink.subscribe();
        let limit = self.settings.connection.connect_timeout;
        tokio::select! {
            r = timeout(limit, connected.wait_for(Option::is_some)) => matches!(r, Ok(Ok(_))),
            () = self.core.lifecycle.shutdown.cancelled() => false,
        }
    }

    /// Waits up to `connect_timeout` (or until shutdown) until `host` is listening (subscribed,
    /// probe passed); `true` once it is.
    async fn wait_for_listening(&self, host: &SubscriberHost) -> bool {
        let mut listening = host.listening.subscribe();
        let limit = self.settings.connection.connect_timeout;
        tokio::select! {
            r = timeout(limit, listening.wait_for(|up| *up)) => matches!(r, Ok(Ok(_))),
            () = self.core.lifecycle.shutdown.cancelled() => false,
        }
    }

    /// Reconciles names spread over any hosts.
    async fn reconcile_all(&self, names: Vec<String>) -> Result<(), LayerError> {
        let mut by_host: HashMap<usize, Vec<String>> = HashMap::new();
        for name in names {
            by_host.entry(self.host_of(&name)).or_default().push(name);
        }
        let mut result = Ok(());
        for (index, names) in by_host {
            if let Err(e) = self.reconcile(index, &names).await {
                result = Err(e);
            }
        }
        result
    }

    /// Accounts for one `PUBLISH` that Redis delivered to `receivers` subscriber connections.
    /// A direct message nobody received had one receiver, and it is gone; a broadcast nobody
    /// received while this process has members in the group never reached them (our own
    /// subscription was not in place). Either is counted; a broadcast to a group without local
    /// members that nobody heard is normal (its members live elsewhere or nowhere).
    fn published(&self, publish: &Publish, receivers: i64) {
        if receivers > 0 {
            return;
        }
        if publish.kind == PublishKind::Direct {
            self.core
                .dropped(DropReason::NoSuchChannel, &publish.channel, 1);
        } else if publish.kind == PublishKind::Broadcast
            && self
                .group_of(&publish.channel)
                .is_some_and(|g| self.core.has_members(&g))
        {
            self.core.dropped(DropReason::Unheard, &publish.channel, 1);
        }
    }

    /// The name of the group a Redis channel carries, if it is a group channel: the channel
    /// holds the group's text, which maps to its name as [`Group::for_text`] maps it (without
    /// allocating when the text is a valid name, as it usually is).
    fn group_of<'a>(&self, redis_channel: &'a str) -> Option<std::borrow::Cow<'a, str>> {
        redis_channel
            .strip_prefix(&self.group_prefix)
            .map(safe_group_name)
    }

    /// Whether this process wants to hear a Redis channel: a local channel, or a group with
    /// local members.
    fn wants(&self, redis_channel: &str) -> bool {
        match self.group_of(redis_channel) {
            Some(group) => self.core.has_members(&group),
            None => self.core.is_local(redis_channel),
        }
    }

    /// Every name host `index` should be subscribed to.
    fn wanted_on(&self, index: usize) -> Vec<String> {
        let (channels, groups) = self.core.wanted();
        channels
            .iter()
            .map(|name| name.to_string())
            .chain(groups.iter().map(|group| self.group_channel(group)))
            .filter(|name| self.host_of(name) == index)
            .collect()
    }

    /// Hands one message from Redis to the dispatch task without waiting; when its queue is full
    /// the message is dropped and counted (see [`PubSubSettings::dispatch_queue`]).
    fn enqueue(&self, dispatch: &mpsc::Sender<redis::Msg>, msg: redis::Msg) {
        match dispatch.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(msg)) => {
                self.core
                    .dropped(DropReason::DispatchOverflow, msg.get_channel_name(), 1);
            }
            // The dispatcher only stops at shutdown; nothing is delivered any more anyway.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Routes one message from Redis to local queues. Decoded once, whatever the fan-out.
    async fn dispatch(&self, msg: &redis::Msg) {
        let name = msg.get_channel_name();
        let message = match Message::from_msgpack(msg.get_payload_bytes()) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(layer = KIND, channel = name, error = %e, "undecodable message from Redis");
                self.core.dropped(DropReason::Undecodable, name, 1);
                return;
            }
        };
        // The core fans out (one shared message, a full member is a slow consumer). A message
        // for a channel or group nobody here wants any more was published just before we
        // unsubscribed: for a group that is normal (its last local member left); a direct
        // message, though, had exactly one receiver, and it is gone (the core counts it).
        match self.group_of(name) {
            Some(group) => {
                self.core.deliver_to_group(&group, &message, None).await;
            }
            None => self.core.deliver(name, message, None),
        }
    }

    /// Forgets a channel and returns the Redis names whose subscription may have to go.
    fn forget(&self, channel: &str) -> Vec<String> {
        let Some(groups) = self.core.forget(channel) else {
            return Vec::new();
        };
        std::iter::once(channel.to_owned())
            .chain(groups.iter().map(|group| self.group_channel(group)))
            .collect()
    }
}

impl ChannelOwner for Shared {
    fn release(self: Arc<Self>, channel: &str) {
        let names = self.forget(channel);
        if names.is_empty() || self.core.lifecycle.shutdown.is_cancelled() {
            return;
        }
        // `Drop` cannot await: unsubscribe in a tracked task, so `close` waits for it.
        let this = self.clone();
        self.core.lifecycle.tasks.spawn(async move {
            if let Err(e) = this.reconcile_all(names).await {
                tracing::debug!(error = %e, "unsubscribe after inbox drop failed; the reconnect will not resubscribe it");
            }
        });
    }
}

/// Owns host `index`'s subscriber connection: connects, resubscribes, reads, probes,
/// reconnects. It never waits on fan-out: each message is pushed into `dispatch` without waiting
/// (see the module docs), so the Redis stream is always drained promptly.
///
/// **Liveness probe.** A connection that is open and answers `PING` can still deliver nothing:
/// a subscription the server dropped, a publish path that is stuck (`CLIENT PAUSE WRITE`, a
/// wedged command connection), a proxy or failover that moved one side. So health is not
/// "the socket is open" but "a message published through the normal publish path came back on
/// our subscription": every `keepalive_interval` this task queues a probe on the host's
/// publisher (the same queue, pipeline and command connection as every `PUBLISH`) to the
/// host's probe channel, and expects it on the subscriber stream within `command_timeout`.
/// After a (re)connection the host counts as listening (sends accepted, health Up) only once
/// every wanted subscription is in place *and* the first probe has come back; a probe that does
/// not come back marks the host Down (health, log, `outages`), stops sends through it, and
/// drops the connection to resubscribe from scratch. One probe is in flight at a time and each
/// carries a sequence number, so a late echo of an earlier probe never passes for a fresh one.
async fn run_subscriber(shared: Arc<Shared>, index: usize, dispatch: mpsc::Sender<redis::Msg>) {
    let host = &shared.hosts[index];
    let settings = shared.settings.connection.clone();
    let mut backoff = Backoff::new(&settings);
    let mut probe_seq: u64 = 0;
    loop {
        // Taken before resolving, so that a Sentinel switch during the connection is not missed.
        let mut changes = host.redis.changes();
        let connect = async {
            let client = host.redis.client().await?;
            client
                .get_async_pubsub()
                .await
                .map_err(|e| host.redis.unavailable(e))
        };
        // Resolving a Sentinel master costs up to two connections before ours.
        let limit = settings.connect_timeout + settings.command_timeout;
        let attempt = tokio::select! {
            () = shared.core.lifecycle.shutdown.cancelled() => return,
            r = timeout(limit, connect) => r,
        };
        let pubsub = match attempt {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => {
                shared.core.set_down(index, &e.to_string());
                if host
                    .redis
                    .pause(&shared.core.lifecycle, backoff.next_delay())
                    .await
                {
                    return;
                }
                continue;
            }
            Err(_) => {
                shared.core.set_down(index, "connect timed out");
                if host
                    .redis
                    .pause(&shared.core.lifecycle, backoff.next_delay())
                    .await
                {
                    return;
                }
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        // Resubscribe everything wanted (and the probe channel), holding the subscription lock
        // so that no group_add/discard interleaves, then publish the new sink.
        let resubscribed = {
            let mut subscribed = host.subscribed.lock().await;
            subscribed.clear();
            let wanted = shared.wanted_on(index);
            let mut failure = None;
            match timeout(
                settings.command_timeout,
                sink.subscribe(&host.probe_channel),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = Some(e.to_string()),
                Err(_) => failure = Some("SUBSCRIBE timed out".to_owned()),
            }
            for chunk in wanted.chunks(1024) {
                if failure.is_some() {
                    break;
                }
                match timeout(settings.command_timeout, sink.subscribe(chunk)).await {
                    Ok(Ok(())) => subscribed.extend(chunk.iter().cloned()),
                    Ok(Err(e)) => failure = Some(e.to_string()),
                    Err(_) => failure = Some("SUBSCRIBE timed out".to_owned()),
                }
            }
            match failure {
                None => {
                    host.sink.send_replace(Some(sink.clone()));
                    tracing::debug!(
                        layer = KIND,
                        host = host.redis.name,
                        subscriptions = subscribed.len(),
                        "subscriber connected; waiting for the liveness probe"
                    );
                    true
                }
                Some(reason) => {
                    shared.core.set_down(index, &reason);
                    false
                }
            }
        };
        if !resubscribed {
            if host
                .redis
                .pause(&shared.core.lifecycle, backoff.next_delay())
                .await
            {
                return;
            }
            continue;
        }
        // The first probe goes out at once; later ones every `keepalive_interval`.
        let mut probes = tokio::time::interval(settings.keepalive_interval);
        probes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The probe in flight: its sequence number and when it is overdue.
        let mut in_flight: Option<(u64, tokio::time::Instant)> = None;
        let reason = loop {
            let overdue = in_flight.map(|(_, deadline)| deadline);
            tokio::select! {
                biased;
                () = shared.core.lifecycle.shutdown.cancelled() => {
                    host.listening.send_replace(false);
                    host.sink.send_replace(None);
                    return;
                }
                msg = stream.next() => match msg {
                    Some(msg) if msg.get_channel_name() == host.probe_channel => {
                        let echoed = probe_seq_of(msg.get_payload_bytes());
                        if in_flight.is_some_and(|(seq, _)| Some(seq) == echoed) {
                            in_flight = None;
                            if !*host.listening.borrow() {
                                host.listening.send_replace(true);
                                host.was_up.store(true, Ordering::Release);
                                shared.core.set_up(index);
                                backoff.reset();
                            }
                        }
                    }
                    Some(msg) => shared.enqueue(&dispatch, msg),
                    None => break "connection lost".to_owned(),
                },
                () = moved(&mut changes) => break "Sentinel switched master".to_owned(),
                () = sleep_until(overdue) => {
                    break format!(
                        "liveness probe not received within {:?}",
                        settings.command_timeout
                    );
                }
                _ = probes.tick(), if in_flight.is_none() => {
                    probe_seq += 1;
                    let probe = Publish {
                        channel: host.probe_channel.clone(),
                        payload: Bytes::copy_from_slice(&probe_seq.to_be_bytes()),
                        kind: PublishKind::Probe,
                        script: None,
                        queued_at: tokio::time::Instant::now(),
                    };
                    // Never wait here (the stream must keep draining). A publish queue that is
                    // full is itself a sign of trouble; the probe goes out once it has room.
                    match host.publisher.try_send(probe) {
                        Ok(()) => {
                            in_flight = Some((
                                probe_seq,
                                tokio::time::Instant::now() + settings.command_timeout,
                            ));
                        }
                        Err(_) => tracing::debug!(
                            layer = KIND,
                            host = host.redis.name,
                            "publish queue full; liveness probe deferred"
                        ),
                    }
                }
            }
        };
        // Everything published from now until the resubscribe is lost, so say so loudly, then
        // retry at once (a restarted Redis is usually already back).
        host.listening.send_replace(false);
        host.sink.send_replace(None);
        shared.core.set_down(index, &reason);
    }
}

/// Sleeps until `deadline`; never resolves without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The sequence number a probe carries (8 bytes, big-endian).
fn probe_seq_of(payload: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(payload.try_into().ok()?))
}

/// A probe channel name unique to this layer instance that the ring places on host `index`.
/// Names are random, so about `ring` draws find one; the bound only guards against a ring
/// function that could never reach `index`, which the tests of `consistent_hash` rule out.
fn probe_channel(prefix: &str, index: usize, ring: usize) -> String {
    let mut name = format!("{prefix}__probe__.{}", random_hex32());
    for _ in 0..100_000 {
        if consistent_hash(&name, ring) == index {
            break;
        }
        name = format!("{prefix}__probe__.{}", random_hex32());
    }
    name
}

/// Writes host `index`'s queued messages to Redis, in queue order, as one pipeline per round
/// trip: whatever queued up while the previous pipeline was in flight goes out together, so a
/// busy process needs a fraction of a round trip per message and an idle one sends each message
/// at once. Every message is accounted for: a `PUBLISH` that reached nobody is counted (see
/// [`Shared::published`]), and a pipeline that fails counts each of its messages as
/// [`DropReason::PublishFailed`], as do messages still queued at shutdown. A scripted broadcast
/// ([`ScriptedSend`]) is one `EVAL` in the same pipeline, so it keeps its place in the order.
async fn run_publisher(shared: Arc<Shared>, index: usize, mut queue: mpsc::Receiver<Publish>) {
    let limit = shared.settings.connection.command_timeout;
    let mut batch: Vec<Publish> = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        let first = tokio::select! {
            biased;
            () = shared.core.lifecycle.shutdown.cancelled() => break,
            first = queue.recv() => first,
        };
        let Some(first) = first else { break };
        // Messages that waited past the command timeout (behind a pipeline that hung) are not
        // published late: they are counted as expired. The clock is read once per batch.
        let stale_before = tokio::time::Instant::now().checked_sub(limit);
        let mut take = |publish: Publish| match stale_before {
            // A late probe is simply not sent: its miss is what the probe check reports.
            Some(bound) if publish.queued_at < bound && publish.kind == PublishKind::Probe => {}
            Some(bound) if publish.queued_at < bound => {
                shared
                    .core
                    .dropped(DropReason::Expired, &publish.channel, 1);
            }
            _ => batch.push(publish),
        };
        take(first);
        let mut taken = 1;
        while taken < PUBLISH_BATCH {
            match queue.try_recv() {
                Ok(publish) => take(publish),
                Err(_) => break,
            }
            taken += 1;
        }
        if batch.is_empty() {
            continue;
        }
        // Scripts that were not run go out again right after their pipeline: with their source
        // after `NOSCRIPT`, as their plain fallback after an error. A fallback carries no
        // script, so this ends within three rounds.
        let mut again = write_batch(&shared, index, &mut batch).await;
        for _ in 0..2 {
            if again.is_empty() {
                break;
            }
            again = write_batch(&shared, index, &mut again).await;
        }
    }
    // Shutdown: whatever is still queued will not be written.
    queue.close();
    while let Ok(publish) = queue.try_recv() {
        if publish.kind == PublishKind::Probe {
            continue;
        }
        shared
            .core
            .dropped(DropReason::PublishFailed, &publish.channel, 1);
    }
}

/// Writes one batch as one pipeline (leaving `batch` empty) and accounts for every message in
/// it. Returns what to write next (see [`ScriptedSend`]): scripts Redis did not have, with their
/// source, and the plain fallbacks of scripts that failed.
async fn write_batch(shared: &Shared, index: usize, batch: &mut Vec<Publish>) -> Vec<Publish> {
    let host = &shared.hosts[index].redis;
    let limit = shared.settings.connection.command_timeout;
    let mut pipeline = redis::pipe();
    // One reply per command, errors included, so that one failing script does not hide
    // whether the others (and the plain publishes around it) went out.
    pipeline.ignore_errors();
    for publish in batch.iter() {
        match &publish.script {
            Some(script) => script.append_to(&mut pipeline, &publish.channel, &publish.payload),
            None => {
                pipeline
                    .cmd("PUBLISH")
                    .arg(&publish.channel)
                    .arg(publish.payload.as_ref());
            }
        }
    }
    let mut conn = host.commands.clone();
    let mut replies: Result<Vec<redis::Value>, String> = Err(String::new());
    // Two attempts: after Redis restarts, the shared command connection only notices on
    // its first failed write, which also makes it reconnect; that write never reached
    // Redis, so sending the batch again cannot duplicate it. A timeout is not retried:
    // Redis may have run the commands and only the reply is late.
    for attempt in 0..2 {
        replies = match timeout(limit, pipeline.query_async(&mut conn)).await {
            Ok(Ok(replies)) => Ok(replies),
            Ok(Err(e)) if attempt == 0 && is_connection_error(&e) => {
                tracing::debug!(layer = KIND, host = host.name, error = %e, "publish connection was stale; retrying once");
                continue;
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("PUBLISH timed out".to_owned()),
        };
        break;
    }
    let replies = match replies {
        Ok(replies) => replies,
        Err(reason) => {
            tracing::warn!(
                layer = KIND,
                host = host.name,
                messages = batch.len(),
                reason,
                "publishing failed; the messages are lost"
            );
            // A probe is not a message: its loss shows as a missed probe, not a drop.
            for publish in batch.drain(..).filter(|p| p.kind != PublishKind::Probe) {
                shared
                    .core
                    .dropped(DropReason::PublishFailed, &publish.channel, 1);
            }
            return Vec::new();
        }
    };
    let mut again = Vec::new();
    for (mut publish, reply) in batch.drain(..).zip(replies) {
        let error = match reply {
            redis::Value::Int(receivers) => {
                shared.published(&publish, receivers);
                continue;
            }
            redis::Value::ServerError(e) => e,
            other => {
                tracing::warn!(layer = KIND, host = host.name, reply = ?other, "unexpected reply to a publish");
                shared.published(&publish, 1);
                continue;
            }
        };
        let lost_script = publish
            .script
            .as_mut()
            .filter(|s| !s.with_source && error.kind() == Some(redis::ServerErrorKind::NoScript));
        if let Some(script) = lost_script {
            tracing::debug!(
                layer = KIND,
                host = host.name,
                "Redis lost the publish script; sending its source"
            );
            script.with_source = true;
            again.push(publish);
            continue;
        }
        let fallback = publish.script.as_ref().and_then(|s| s.fallback.clone());
        tracing::warn!(
            layer = KIND,
            host = host.name,
            channel = publish.channel,
            error = %error,
            scripted = publish.script.is_some(),
            fallback = fallback.is_some(),
            "Redis refused a publish"
        );
        match fallback {
            Some(payload) => again.push(Publish {
                payload,
                script: None,
                ..publish
            }),
            None if publish.kind == PublishKind::Probe => {}
            None => shared
                .core
                .dropped(DropReason::PublishFailed, &publish.channel, 1),
        }
    }
    again
}

/// Whether a command failed because the connection was gone (nothing reached Redis).
fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_connection_refusal() || e.is_io_error()
}

/// Fans out what the subscriber task of one host queued, in order, until shutdown.
async fn run_dispatcher(shared: Arc<Shared>, mut queue: mpsc::Receiver<redis::Msg>) {
    loop {
        let msg = tokio::select! {
            biased;
            () = shared.core.lifecycle.shutdown.cancelled() => return,
            msg = queue.recv() => msg,
        };
        match msg {
            Some(msg) => shared.dispatch(&msg).await,
            // The subscriber task has ended (shutdown).
            None => return,
        }
    }
}

#[async_trait::async_trait]
impl ChannelLayer for RedisPubSubLayer {
    async fn new_channel(&self) -> Result<Inbox, LayerError> {
        self.shared.core.lifecycle.check_open()?;
        let name = format!("{}specific.{}", self.shared.settings.prefix, random_hex32());
        let owner: std::sync::Weak<Shared> = Arc::downgrade(&self.shared);
        let owner: std::sync::Weak<dyn ChannelOwner> = owner;
        let inbox = self.shared.core.open(Arc::from(name.as_str()), owner);
        let index = self.shared.host_of(&name);
        if let Err(e) = self
            .shared
            .reconcile(index, std::slice::from_ref(&name))
            .await
        {
            // Dropping the inbox forgets the channel and unsubscribes whatever got subscribed.
            drop(inbox);
            return Err(e);
        }
        Ok(inbox)
    }

    async fn send(&self, channel: &str, message: Message) -> Result<(), LayerError> {
        self.shared.core.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        // A channel nobody is subscribed to has no receiver in any process: the publisher
        // counts such a message as gone (not an error: receivers leave at any time).
        self.publish(channel.to_owned(), &message, PublishKind::Direct, None)
            .await?;
        self.shared.core.count_sent();
        Ok(())
    }

    async fn group_add(&self, group: &Group, channel: &str) -> Result<(), LayerError> {
        self.shared.core.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        let group_channel = self.shared.group_channel(group);
        // Memberships here live as long as the inbox and never expire, so re-adding an existing
        // member has nothing to refresh (callers that re-add to refresh other layers may).
        // Whether this call made the channel a member (false when it already was one).
        let inserted = self.shared.core.join_local(group, channel)?;
        let index = self.shared.host_of(&group_channel);
        if let Err(e) = self
            .shared
            .reconcile(index, std::slice::from_ref(&group_channel))
            .await
        {
            // A new membership is rolled back: the caller is told it is not in the group, so it
            // must not be. An existing one stays: a failed refresh does not undo an earlier
            // success, and the reconnect resubscribes the group for it.
            if inserted {
                self.shared.core.leave(group, channel);
                // Best effort: if we were the only member, nothing should stay subscribed.
                let _ = self
                    .shared
                    .reconcile(index, std::slice::from_ref(&group_channel))
                    .await;
            }
            return Err(e);
        }
        Ok(())
    }

    async fn group_discard(&self, group: &Group, channel: &str) -> Result<(), LayerError> {
        self.shared.core.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        let group_channel = self.shared.group_channel(group);
        if self.shared.core.leave(group, channel) {
            let index = self.shared.host_of(&group_channel);
            // An unsubscribe only fails with the connection, and a reconnect does not
            // resubscribe an unwanted group, so a failure here needs no rollback.
            if let Err(e) = self
                .shared
                .reconcile(index, std::slice::from_ref(&group_channel))
                .await
            {
                tracing::debug!(error = %e, "unsubscribe after group_discard failed");
            }
        }
        Ok(())
    }

    async fn group_send(&self, group: &Group, message: Message) -> Result<(), LayerError> {
        self.broadcast(group, &message, None).await
    }

    fn script_server(&self, group: &Group) -> Option<&str> {
        let channel = self.shared.group_channel(group);
        let index = self.shared.host_of(&channel);
        self.shared.settings.hosts.get(index).map(String::as_str)
    }

    async fn group_send_scripted(
        &self,
        group: &Group,
        message: Message,
        script: ScriptedSend,
    ) -> Result<(), LayerError> {
        self.broadcast(group, &message, Some(script)).await
    }

    async fn flush(&self) -> Result<(), LayerError> {
        let cleared = self.shared.core.clear();
        let groups: HashSet<&Group> = cleared.memberships.iter().map(|(g, _)| g).collect();
        let names: Vec<String> = cleared
            .channels
            .iter()
            .map(|name| name.to_string())
            .chain(groups.into_iter().map(|g| self.shared.group_channel(g)))
            .collect();
        self.shared.reconcile_all(names).await
    }

    async fn close(&self) -> Result<(), LayerError> {
        self.shared.core.lifecycle.mark_closed();
        self.shared.core.clear();
        // Stop the subscribers; dropping their connections ends every subscription on Redis.
        self.shared.core.lifecycle.stop_tasks().await;
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

impl Drop for RedisPubSubLayer {
    fn drop(&mut self) {
        // Background tasks hold the shared state; without this they would outlive the layer.
        self.shared.core.lifecycle.shutdown.cancel();
    }
}
