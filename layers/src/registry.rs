//! The registry of layers by alias: a consumer names the alias it uses (`room_chat` uses
//! `chat`), the service builds the registry once at start-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::{ClusterPubSubSettings, RedisClusterPubSubLayer};
use crate::hosts::{parse_host_list, ConnectionSettings};
use crate::memory::{MemoryLayer, MemorySettings};
use crate::pubsub::{PubSubSettings, RedisPubSubLayer};
use crate::queue::{QueueSettings, RedisQueueLayer};
use crate::{ChannelLayer, LayerError};

/// Default of [`LayerLimits::local_queue_bound`].
pub const LOCAL_QUEUE_BOUND: usize = 1024;
/// Default of [`LayerLimits::memory_capacity`].
pub const MEMORY_CAPACITY: usize = 1024;
/// Default of [`LayerLimits::memory_expiry`].
pub const MEMORY_EXPIRY: Duration = Duration::from_secs(60);
/// Default of [`LayerLimits::group_expiry`].
pub const GROUP_EXPIRY: Duration = Duration::from_secs(86_400);
/// Default of [`LayerLimits::redis_connect_timeout`].
pub const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default of [`LayerLimits::redis_command_timeout`].
pub const REDIS_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Default of [`LayerLimits::reconnect_min`].
pub const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// Default of [`LayerLimits::reconnect_max`].
pub const RECONNECT_MAX: Duration = Duration::from_secs(2);
/// Default of [`LayerLimits::pubsub_dispatch_queue`].
pub const PUBSUB_DISPATCH_QUEUE: usize = 8192;

/// Parses a duration that must not be zero (`2s`, `250ms`): a zero timeout or expiry would
/// fail or expire everything at once, so it is refused with a message instead.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(duration)
}

/// A duration as `--help` shows a default and [`positive_duration`] reads it back (`2s`,
/// `1day`), so a default written once as a `Duration` const is also the flag's default text.
pub fn human(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// The limits of the standard layers, set once at the edge and applied to every alias by
/// [`LayerRegistry::standard_for`]. What each alias *is* (kind, prefix, and the queue aliases'
/// tutorial expiry and capacity) stays fixed; how much memory, time and patience the layers
/// spend is tuned here.
///
/// It is also a `clap` argument group, so a service flattens it into its command line and the
/// parsed flags are the limits the layers get. `Default` is the flags' defaults (one `const`
/// each, above).
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Channel layers")]
pub struct LayerLimits {
    /// Messages one connection's local queue holds in the Redis layers before new ones are
    /// dropped as slow-consumer drops. A chat consumer a thousand messages behind is not coming
    /// back; beyond that the memory goes to a dead client. The queue allocates as it fills, so
    /// an idle connection costs nothing.
    #[arg(long = "layer-local-queue", env = "LAYER_LOCAL_QUEUE", default_value_t = LOCAL_QUEUE_BOUND)]
    pub local_queue_bound: usize,
    /// Messages a channel of the in-memory layer holds before further ones are dropped and
    /// counted (the Python layer's default is 100). Sized like a connection's outbound queue, so
    /// a burst the client could absorb is not lost one step earlier in the layer. Applies to the
    /// `memory` alias and to the in-memory stand-ins for `chat` and `notifications` when there is
    /// no Redis (the queue aliases keep their tutorial capacities).
    #[arg(long = "layer-channel-capacity", env = "LAYER_CHANNEL_CAPACITY", default_value_t = MEMORY_CAPACITY)]
    pub memory_capacity: usize,
    /// How long a message may wait in an in-memory channel before it is dropped as expired
    /// (the Python layer's 60 s): a consumer that catches up after a minute should not replay a
    /// minute-old chat as if it were live. Same aliases as the channel capacity.
    #[arg(long = "layer-memory-expiry", env = "LAYER_MEMORY_EXPIRY", value_parser = positive_duration,
          default_value = human(MEMORY_EXPIRY))]
    pub memory_expiry: Duration,
    /// How long a group membership lasts without a refreshing `group_add` (the Python layers'
    /// day), on the in-memory and Redis queue layers (pub/sub memberships end with their
    /// connection instead). It reclaims the memberships of consumers that died without leaving;
    /// a connection that lives longer must re-add itself well within it.
    #[arg(long, env = "GROUP_EXPIRY", value_parser = positive_duration,
          default_value = human(GROUP_EXPIRY))]
    pub group_expiry: Duration,
    /// Give up connecting to Redis after this long. A healthy Redis on the network answers in
    /// milliseconds; a longer wait only delays reporting an outage.
    #[arg(long, env = "REDIS_CONNECT_TIMEOUT", value_parser = positive_duration,
          default_value = human(REDIS_CONNECT_TIMEOUT))]
    pub redis_connect_timeout: Duration,
    /// Give up waiting for a Redis reply after this long, so a wedged Redis turns into an
    /// outage instead of a consumer stuck forever; a message that waited this long to be
    /// published is dropped as expired rather than delivered late.
    #[arg(long, env = "REDIS_COMMAND_TIMEOUT", value_parser = positive_duration,
          default_value = human(REDIS_COMMAND_TIMEOUT))]
    pub redis_command_timeout: Duration,
    /// First delay before reconnecting to Redis after a failed attempt (the first retry after
    /// a lost connection is immediate).
    #[arg(long = "redis-reconnect-min", env = "REDIS_RECONNECT_MIN", value_parser = humantime::parse_duration,
          default_value = human(RECONNECT_MIN))]
    pub reconnect_min: Duration,
    /// Longest delay between reconnect attempts: recovery is noticed within this long of Redis
    /// coming back, while a long outage costs one attempt per interval per host.
    #[arg(long = "redis-reconnect-max", env = "REDIS_RECONNECT_MAX", value_parser = positive_duration,
          default_value = human(RECONNECT_MAX))]
    pub reconnect_max: Duration,
    /// Messages received from Redis that may wait for fan-out in a pub/sub layer, per host
    /// (beyond it they are dropped and counted as dispatch overflow). It keeps the subscriber
    /// draining Redis whatever the fan-out costs; a few MiB per host at worst.
    #[arg(long, env = "PUBSUB_DISPATCH_QUEUE", default_value_t = PUBSUB_DISPATCH_QUEUE)]
    pub pubsub_dispatch_queue: usize,
}

impl Default for LayerLimits {
    fn default() -> Self {
        Self {
            local_queue_bound: LOCAL_QUEUE_BOUND,
            memory_capacity: MEMORY_CAPACITY,
            memory_expiry: MEMORY_EXPIRY,
            group_expiry: GROUP_EXPIRY,
            redis_connect_timeout: REDIS_CONNECT_TIMEOUT,
            redis_command_timeout: REDIS_COMMAND_TIMEOUT,
            reconnect_min: RECONNECT_MIN,
            reconnect_max: RECONNECT_MAX,
            pubsub_dispatch_queue: PUBSUB_DISPATCH_QUEUE,
        }
    }
}

impl LayerLimits {
    /// How the Redis layers connect under these limits; also what anything else kept in the
    /// same Redis (the service's room store) should connect with, so one outage looks the same
    /// to both.
    pub fn connection(&self) -> ConnectionSettings {
        ConnectionSettings {
            connect_timeout: self.redis_connect_timeout,
            command_timeout: self.redis_command_timeout,
            reconnect_min: self.reconnect_min,
            reconnect_max: self.reconnect_max,
            ..ConnectionSettings::default()
        }
    }

    fn memory(&self) -> MemorySettings {
        MemorySettings {
            capacity: self.memory_capacity,
            expiry: self.memory_expiry,
            group_expiry: self.group_expiry,
        }
    }

    fn pubsub(&self, hosts: Vec<String>, prefix: &str) -> PubSubSettings {
        let mut settings = PubSubSettings::new(hosts).with_prefix(prefix);
        settings.local_queue_bound = self.local_queue_bound;
        settings.dispatch_queue = self.pubsub_dispatch_queue;
        settings.connection = self.connection();
        settings
    }

    fn cluster_pubsub(&self, seeds: Vec<String>, prefix: &str) -> ClusterPubSubSettings {
        let mut settings = ClusterPubSubSettings::new(seeds).with_prefix(prefix);
        settings.local_queue_bound = self.local_queue_bound;
        settings.dispatch_queue = self.pubsub_dispatch_queue;
        settings.connection = self.connection();
        settings
    }

    fn queue(
        &self,
        hosts: Vec<String>,
        prefix: &str,
        expiry: Duration,
        capacity: usize,
    ) -> QueueSettings {
        let mut settings = QueueSettings::new(hosts).with_prefix(prefix);
        settings.expiry = expiry;
        settings.capacity = capacity;
        settings.group_expiry = self.group_expiry;
        settings.local_queue_bound = self.local_queue_bound;
        settings.connection = self.connection();
        settings
    }
}

/// Layers by alias.
#[derive(Default, Clone)]
pub struct LayerRegistry {
    layers: BTreeMap<String, Arc<dyn ChannelLayer>>,
}

impl std::fmt::Debug for LayerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.layers
                    .iter()
                    .map(|(alias, layer)| (alias, layer.kind())),
            )
            .finish()
    }
}

impl LayerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) a layer under an alias.
    pub fn register(&mut self, alias: impl Into<String>, layer: Arc<dyn ChannelLayer>) {
        self.layers.insert(alias.into(), layer);
    }

    /// The layer registered under an alias.
    pub fn get(&self, alias: &str) -> Option<Arc<dyn ChannelLayer>> {
        self.layers.get(alias).cloned()
    }

    /// Whether any layer is registered.
    pub fn has_layers(&self) -> bool {
        !self.layers.is_empty()
    }

    /// Registered aliases, sorted.
    pub fn aliases(&self) -> Vec<&str> {
        self.layers.keys().map(String::as_str).collect()
    }

    /// Aliases with their layers, sorted by alias (for `/healthz` and `/metrics`).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<dyn ChannelLayer>)> {
        self.layers
            .iter()
            .map(|(alias, layer)| (alias.as_str(), layer))
    }

    /// Closes every layer (stops their background tasks). Returns the first error, after
    /// trying them all.
    pub async fn close_all(&self) -> Result<(), LayerError> {
        let mut result = Ok(());
        for layer in self.layers.values() {
            if let Err(e) = layer.close().await {
                result = result.and(Err(e));
            }
        }
        result
    }

    /// The five aliases of the tutorial with default limits:
    /// `standard_with(redis_url, &LayerLimits::default())`.
    pub fn standard(redis_url: Option<&str>) -> Result<Self, LayerError> {
        Self::standard_with(redis_url, &LayerLimits::default())
    }

    /// All five aliases of the tutorial ([`STANDARD_ALIASES`]), with the given limits:
    /// `standard_for(redis_url, limits, &STANDARD_ALIASES)`. Every alias's layer is built and
    /// started; an application that uses fewer should name them with
    /// [`standard_for`](Self::standard_for).
    pub fn standard_with(
        redis_url: Option<&str>,
        limits: &LayerLimits,
    ) -> Result<Self, LayerError> {
        Self::standard_for(redis_url, limits, &STANDARD_ALIASES)
    }

    /// The named aliases of the tutorial, and only those, with the given [`LayerLimits`]:
    ///
    /// | alias | kind | settings |
    /// |---|---|---|
    /// | `memory` | in-memory | `limits` |
    /// | `chat` | Redis pub/sub | prefix `chat` |
    /// | `queue` | Redis queue | prefix `queue`, expiry 900 s, capacity 1000 |
    /// | `notifications` | Redis pub/sub | prefix `notify` |
    /// | `analytics` | Redis queue | prefix `analytics`, expiry 3600 s, capacity 5000 |
    ///
    /// Only the layers of `aliases` are built, so only their background tasks run and only
    /// their connections are opened: a Redis layer costs a subscriber or reader connection,
    /// a publisher and a dispatcher per host, which a service that never uses the alias should
    /// not pay (nor see in its health). An alias outside the table is a
    /// [`LayerError::Config`] naming it; a repeated one is built once.
    ///
    /// `redis_url` may list several comma-separated URLs: they form the ring of hosts of every
    /// Redis layer (plain `redis://` hosts and `redis+sentinel://` entries, mixed as Python's
    /// `hosts`). A single `redis+cluster://seed:7000?addr=seed2:7001` runs the pub/sub aliases on
    /// Redis Cluster's sharded pub/sub ([`RedisClusterPubSubLayer`]) and the queue aliases on
    /// the queue layer with single-slot commands. With `None`, every alias gets its own in-memory layer (the queue aliases
    /// with their expiry/capacity), and a warning says so: messages then never leave this
    /// process. Must be called inside a Tokio runtime (the Redis layers start background tasks).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), room_chat_layers::LayerError> {
    /// use room_chat_layers::{LayerLimits, LayerRegistry};
    /// let registry = LayerRegistry::standard_for(None, &LayerLimits::default(), &["chat"])?;
    /// assert_eq!(registry.aliases(), ["chat"]);
    /// # Ok(()) }
    /// ```
    pub fn standard_for(
        redis_url: Option<&str>,
        limits: &LayerLimits,
        aliases: &[&str],
    ) -> Result<Self, LayerError> {
        const QUEUE: (u64, usize) = (900, 1000);
        const ANALYTICS: (u64, usize) = (3600, 5000);
        if let Some(unknown) = aliases.iter().find(|a| !STANDARD_ALIASES.contains(a)) {
            return Err(LayerError::Config(format!(
                "unknown channel layer alias {unknown:?} (the standard aliases are {})",
                STANDARD_ALIASES.join(", ")
            )));
        }
        let hosts = redis_url.map(parse_host_list).filter(|h| !h.is_empty());
        // Redis Cluster: `redis+cluster://seed:port?addr=…`, alone (a cluster is not a ring
        // member). The pub/sub aliases get the Cluster pub/sub layer; the queue aliases the
        // queue layer, whose commands then stay within one slot each.
        let cluster = match hosts.as_deref() {
            Some([one]) if one.starts_with(crate::cluster::SCHEME) => {
                Some(crate::cluster::parse_cluster_url(one)?)
            }
            Some(many) if many.iter().any(|h| h.starts_with(crate::cluster::SCHEME)) => {
                return Err(LayerError::Config(
                    "a redis+cluster:// URL must be the only entry of REDIS_URL".into(),
                ));
            }
            _ => None,
        };
        let mut registry = Self::new();
        let in_memory_only: Vec<&str> =
            aliases.iter().copied().filter(|a| *a != "memory").collect();
        if hosts.is_none() && !in_memory_only.is_empty() {
            tracing::warn!(
                aliases = in_memory_only.join(", "),
                "no Redis configured: these channel layers run in memory, so messages never leave this process"
            );
        }
        for &alias in aliases {
            if registry.layers.contains_key(alias) {
                continue;
            }
            let layer: Arc<dyn ChannelLayer> = match (alias, &hosts) {
                ("memory", _) | ("chat" | "notifications", None) => {
                    Arc::new(MemoryLayer::new(limits.memory()))
                }
                (_, None) => {
                    let (expiry, capacity) = if alias == "queue" { QUEUE } else { ANALYTICS };
                    Arc::new(MemoryLayer::new(MemorySettings {
                        expiry: Duration::from_secs(expiry),
                        capacity,
                        ..limits.memory()
                    }))
                }
                ("chat" | "notifications", Some(_)) if cluster.is_some() => {
                    let prefix = if alias == "chat" { "chat" } else { "notify" };
                    let seeds = cluster.clone().unwrap_or_default();
                    Arc::new(RedisClusterPubSubLayer::new(
                        limits.cluster_pubsub(seeds, prefix),
                    )?)
                }
                ("chat", Some(hosts)) => {
                    Arc::new(RedisPubSubLayer::new(limits.pubsub(hosts.clone(), "chat"))?)
                }
                ("notifications", Some(hosts)) => Arc::new(RedisPubSubLayer::new(
                    limits.pubsub(hosts.clone(), "notify"),
                )?),
                (_, Some(hosts)) => {
                    let (expiry, capacity) = if alias == "queue" { QUEUE } else { ANALYTICS };
                    Arc::new(RedisQueueLayer::new(limits.queue(
                        hosts.clone(),
                        alias,
                        Duration::from_secs(expiry),
                        capacity,
                    ))?)
                }
            };
            registry.register(alias, layer);
        }
        Ok(registry)
    }
}

/// The five aliases of the tutorial, sorted: what [`LayerRegistry::standard_with`] builds.
pub const STANDARD_ALIASES: [&str; 5] = ["analytics", "chat", "memory", "notifications", "queue"];
