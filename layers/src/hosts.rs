//! Redis hosts: one member of a layer's ring (a server, a Sentinel group or a Cluster) and the
//! connections made to it. The connection settings (`connect`) and the ring's spreading of
//! names the way the Python layers do (`ring`) are their own modules, re-exported here.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, RedisFuture, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use crate::connect::ConnectionSettings;
pub use crate::ring::{consistent_hash, parse_host_list};

use crate::lifecycle::Lifecycle;
use crate::sentinel::{FollowingConnection, SentinelMaster};
use crate::LayerError;

/// One member of a layer's ring: a Redis server, or a Sentinel-managed master (see
/// [`crate::sentinel`]).
pub(crate) struct RedisHost {
    endpoint: Endpoint,
    /// The URL without credentials (or the sentinels and master name), for logs and errors.
    pub(crate) name: String,
    /// Shared multiplexed connection for ordinary commands; reconnects by itself (to the
    /// current master, for a Sentinel entry).
    pub(crate) commands: Commands,
    layer: &'static str,
}

/// Where a ring member's connections go.
enum Endpoint {
    /// One fixed server.
    Direct(redis::Client),
    /// Whatever server the sentinels name as master, resolved on every connection.
    Sentinel(Arc<SentinelMaster>),
    /// A Redis Cluster (the only member of its ring): every command goes to the node that owns
    /// its key's slot, so a layer on it must use single-slot commands.
    Cluster(Arc<redis::cluster::ClusterClient>),
}

/// The shared command connection of a ring member: redis-rs's `ConnectionManager` for a fixed
/// server (it reconnects to the same address, which is right there), a
/// [`FollowingConnection`] for a Sentinel entry (it re-resolves the master).
#[derive(Clone)]
pub(crate) enum Commands {
    Direct(ConnectionManager),
    Sentinel(FollowingConnection),
    Cluster(LazyCluster),
}

/// A cluster connection made on first use and shared by clones (it reconnects to nodes, and
/// follows `MOVED`, by itself).
#[derive(Clone)]
pub(crate) struct LazyCluster {
    client: Arc<redis::cluster::ClusterClient>,
    conn: Arc<tokio::sync::OnceCell<redis::cluster_async::ClusterConnection>>,
}

impl LazyCluster {
    async fn get(&self) -> redis::RedisResult<redis::cluster_async::ClusterConnection> {
        self.conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }
}

impl ConnectionLike for LazyCluster {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move { self.get().await?.req_packed_command(cmd).await })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.get()
                .await?
                .req_packed_commands(pipeline, offset, count)
                .await
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// A dedicated connection for blocking commands (the queue reader's `BZPOPMIN`).
pub(crate) enum Dedicated {
    Direct(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Dedicated {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Dedicated::Direct(c) => c.req_packed_command(cmd),
            Dedicated::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Dedicated::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Dedicated::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Dedicated::Direct(c) => c.get_db(),
            Dedicated::Cluster(c) => c.get_db(),
        }
    }
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Commands::Direct(c) => c.req_packed_command(cmd),
            Commands::Sentinel(c) => c.req_packed_command(cmd),
            Commands::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Commands::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Commands::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
            Commands::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Commands::Direct(c) => c.get_db(),
            Commands::Sentinel(c) => c.get_db(),
            Commands::Cluster(c) => c.get_db(),
        }
    }
}

impl std::fmt::Debug for RedisHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHost")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RedisHost {
    /// Prepares a host without connecting (connections are made lazily, in the background).
    /// Must run inside a Tokio runtime.
    pub(crate) fn new(
        url: &str,
        layer: &'static str,
        settings: &ConnectionSettings,
    ) -> Result<Self, LayerError> {
        if url.starts_with(crate::cluster::SCHEME) {
            let seeds = crate::cluster::parse_cluster_url(url)?;
            let client = redis::cluster::ClusterClientBuilder::new(seeds)
                .connection_timeout(settings.connect_timeout)
                .response_timeout(settings.command_timeout)
                .retries(3)
                .tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true))
                .build()
                .map_err(|e| LayerError::Config(format!("invalid Cluster URL {url:?}: {e}")))?;
            let client = Arc::new(client);
            return Ok(Self {
                name: url.to_owned(),
                commands: Commands::Cluster(LazyCluster {
                    client: client.clone(),
                    conn: Arc::new(tokio::sync::OnceCell::new()),
                }),
                endpoint: Endpoint::Cluster(client),
                layer,
            });
        }
        if url.starts_with(crate::sentinel::SCHEME) {
            let master = Arc::new(SentinelMaster::parse(url, settings)?);
            return Ok(Self {
                name: master.display_name(),
                commands: Commands::Sentinel(FollowingConnection::new(master.clone())),
                endpoint: Endpoint::Sentinel(master),
                layer,
            });
        }
        let invalid = |e: redis::RedisError| {
            LayerError::Config(format!("invalid Redis URL {:?}: {e}", redact(url)))
        };
        // TCP_NODELAY: a chat message is a few hundred bytes; Nagle's algorithm would hold it
        // back waiting for more (redis-rs leaves it off by default).
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(invalid)?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(invalid)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            .set_number_of_retries(1)
            .set_min_delay(settings.reconnect_min)
            .set_max_delay(settings.reconnect_max);
        let commands = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| LayerError::Config(format!("cannot prepare Redis connection: {e}")))?;
        Ok(Self {
            endpoint: Endpoint::Direct(client),
            name: redact(url),
            commands: Commands::Direct(commands),
            layer,
        })
    }

    /// A client for the server to connect to now: the fixed one, or the master the sentinels
    /// name, confirmed with `ROLE` (resolved again on every call, i.e. on every reconnection).
    pub(crate) async fn client(&self) -> Result<redis::Client, LayerError> {
        match &self.endpoint {
            Endpoint::Direct(client) => Ok(client.clone()),
            Endpoint::Sentinel(master) => master.resolve().await.map_err(|e| self.unavailable(e)),
            Endpoint::Cluster(_) => Err(LayerError::Config(
                "this layer does not run on Redis Cluster".into(),
            )),
        }
    }

    /// Whether this member is a Redis Cluster (commands must then stay within one slot).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.endpoint, Endpoint::Cluster(_))
    }

    /// For a Sentinel entry, a receiver notified whenever the master moves; take it *before*
    /// resolving, so a switch during the connection is not missed.
    pub(crate) fn changes(&self) -> Option<watch::Receiver<u64>> {
        match &self.endpoint {
            Endpoint::Direct(_) | Endpoint::Cluster(_) => None,
            Endpoint::Sentinel(master) => Some(master.changes()),
        }
    }

    /// The background task that follows `+switch-master` for a Sentinel entry (the layer
    /// spawns it on its task tracker); `None` for a fixed server.
    pub(crate) fn watcher(
        &self,
        shutdown: CancellationToken,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        match &self.endpoint {
            Endpoint::Direct(_) | Endpoint::Cluster(_) => None,
            Endpoint::Sentinel(master) => Some(master.clone().watch(shutdown)),
        }
    }

    /// Waits `delay` before a reconnection attempt; returns early when the master moves (the
    /// new one is worth trying at once). `true` if the layer is shutting down.
    pub(crate) async fn pause(&self, lifecycle: &Lifecycle, delay: Duration) -> bool {
        let mut changes = self.changes();
        tokio::select! {
            stop = lifecycle.sleep_or_shutdown(delay) => stop,
            () = moved(&mut changes) => false,
        }
    }

    /// Turns a Redis error into the layer's error, naming this host.
    pub(crate) fn unavailable(&self, error: impl std::fmt::Display) -> LayerError {
        LayerError::Unavailable {
            layer: self.layer,
            host: self.name.clone(),
            reason: error.to_string(),
        }
    }

    /// A dedicated connection (for blocking commands), with the given reply timeout.
    pub(crate) async fn dedicated(
        &self,
        settings: &ConnectionSettings,
        response_timeout: Option<Duration>,
    ) -> Result<Dedicated, LayerError> {
        if let Endpoint::Cluster(client) = &self.endpoint {
            let mut config = redis::cluster::ClusterConfig::new()
                .set_connection_timeout(settings.connect_timeout);
            if let Some(limit) = response_timeout {
                config = config.set_response_timeout(limit);
            }
            return client
                .get_async_connection_with_config(config)
                .await
                .map(Dedicated::Cluster)
                .map_err(|e| self.unavailable(e));
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(response_timeout);
        self.client()
            .await?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map(Dedicated::Direct)
            .map_err(|e| self.unavailable(e))
    }
}

/// A shared command connection to one `REDIS_URL` entry of any form the layers take (a plain
/// `redis://` server, a `redis+sentinel://` group, a `redis+cluster://` cluster), for state kept
/// beside the layers in the same Redis (the service's presence and history).
///
/// It behaves as the layers' own command connection does: a plain server is reconnected to at
/// the same address; a Sentinel master is resolved (and confirmed with `ROLE`) again after any
/// connection error, a `READONLY` reply (a demoted master) or a `+switch-master` announcement,
/// so writes never go to a restarted old master; on a cluster every command goes to the node
/// that owns its key's slot (`MOVED` is followed), so callers must keep each command, pipeline
/// and script within one slot (a hash tag in the keys). Clones share the connection; the
/// `+switch-master` watcher of a Sentinel entry ends when the last clone is dropped.
#[derive(Clone)]
pub struct RedisCommands {
    commands: Commands,
    cluster: bool,
    /// Cancels the Sentinel watcher when the last clone goes.
    _watch: Option<Arc<tokio_util::sync::DropGuard>>,
}

impl std::fmt::Debug for RedisCommands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCommands")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl RedisCommands {
    /// Prepares the connection to `url` without connecting (the first command connects), so a
    /// Redis that is down at start-up fails commands rather than the caller. Must run inside
    /// a Tokio runtime (a Sentinel entry starts its watcher task here).
    pub fn open(url: &str, settings: &ConnectionSettings) -> Result<Self, LayerError> {
        let host = RedisHost::new(url, "store", settings)?;
        let shutdown = CancellationToken::new();
        let watch = host.watcher(shutdown.clone()).map(|watcher| {
            tokio::spawn(watcher);
            Arc::new(shutdown.drop_guard())
        });
        Ok(Self {
            cluster: host.is_cluster(),
            commands: host.commands,
            _watch: watch,
        })
    }

    /// Whether this is a Redis Cluster: each command, pipeline and script must then stay
    /// within one hash slot.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }
}

impl ConnectionLike for RedisCommands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.commands.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.commands.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.commands.get_db()
    }
}

/// Resolves when a Sentinel master moves (see [`RedisHost::changes`]); never for a fixed
/// server.
pub(crate) async fn moved(changes: &mut Option<watch::Receiver<u64>>) {
    match changes {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Drops the password from a URL (`redis://user:secret@host` -> `redis://user:***@host`).
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Exponential reconnect delays between `reconnect_min` and `reconnect_max`, with jitter so a
/// fleet of processes does not reconnect in lockstep after a Redis restart.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(settings: &ConnectionSettings) -> Self {
        Self {
            min: settings.reconnect_min,
            max: settings.reconnect_max.max(settings.reconnect_min),
            next: settings.reconnect_min,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        // Up to +50 % jitter.
        base + base.mul_f64(rand::random::<f64>() * 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_matches_python() {
        // Expected values printed by fast_channels 1.1.0:
        // consistent_hash(name, k) for k in (2, 3, 5, 7).
        let expected: [(&str, [usize; 4]); 8] = [
            ("specific.0123456789abcdef0123456789abcdef!", [0, 1, 1, 2]),
            ("general", [0, 1, 1, 2]),
            ("chat__group__lobby", [1, 2, 3, 5]),
            ("x", [0, 1, 2, 2]),
            ("lobby", [0, 1, 1, 2]),
            ("café", [0, 0, 0, 1]),
            ("specific.ffffffffffffffffffffffffffffffff!", [0, 0, 0, 1]),
            ("analytics:group:events", [1, 2, 4, 6]),
        ];
        for (name, indexes) in expected {
            for (ring, index) in [2, 3, 5, 7].into_iter().zip(indexes) {
                assert_eq!(consistent_hash(name, ring), index, "{name} on {ring} hosts");
            }
            assert_eq!(consistent_hash(name, 1), 0);
        }
    }

    #[test]
    fn host_lists_and_redaction() {
        assert_eq!(
            parse_host_list("redis://a:1, redis://b:2,"),
            ["redis://a:1", "redis://b:2"]
        );
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }
}
