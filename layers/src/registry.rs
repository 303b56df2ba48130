//! The registry of layers by alias: a consumer names the alias it uses (`room_chat` uses
//! `chat`), the service builds the registry once at start-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::hosts::parse_host_list;
use crate::memory::{MemoryLayer, MemorySettings};
use crate::pubsub::{PubSubSettings, RedisPubSubLayer};
use crate::queue::{QueueSettings, RedisQueueLayer};
use crate::{ChannelLayer, LayerError};

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

    /// The five aliases of the tutorial (DESIGN §4):
    ///
    /// | alias | kind | settings |
    /// |---|---|---|
    /// | `memory` | in-memory | defaults |
    /// | `chat` | Redis pub/sub | prefix `chat` |
    /// | `queue` | Redis queue | prefix `queue`, expiry 900 s, capacity 1000 |
    /// | `notifications` | Redis pub/sub | prefix `notify` |
    /// | `analytics` | Redis queue | prefix `analytics`, expiry 3600 s, capacity 5000 |
    ///
    /// `redis_url` may list several comma-separated URLs: they form the ring of hosts of every
    /// Redis layer. With `None`, every alias gets its own in-memory layer (with the same
    /// expiry/capacity), and a warning says so: messages then never leave this process.
    /// Must be called inside a Tokio runtime (the Redis layers start background tasks).
    pub fn standard(redis_url: Option<&str>) -> Result<Self, LayerError> {
        let mut registry = Self::new();
        registry.register("memory", Arc::new(MemoryLayer::default()));
        let queue_like = |expiry: u64, capacity: usize| MemorySettings {
            expiry: Duration::from_secs(expiry),
            capacity,
            ..MemorySettings::default()
        };
        let hosts = redis_url.map(parse_host_list).filter(|h| !h.is_empty());
        let Some(hosts) = hosts else {
            tracing::warn!(
                "no Redis configured: the chat, notifications, queue and analytics channel layers run in memory, so messages never leave this process"
            );
            registry.register("chat", Arc::new(MemoryLayer::default()));
            registry.register("notifications", Arc::new(MemoryLayer::default()));
            registry.register("queue", Arc::new(MemoryLayer::new(queue_like(900, 1000))));
            registry.register(
                "analytics",
                Arc::new(MemoryLayer::new(queue_like(3600, 5000))),
            );
            return Ok(registry);
        };
        registry.register(
            "chat",
            Arc::new(RedisPubSubLayer::new(
                PubSubSettings::new(hosts.clone()).with_prefix("chat"),
            )?),
        );
        registry.register(
            "notifications",
            Arc::new(RedisPubSubLayer::new(
                PubSubSettings::new(hosts.clone()).with_prefix("notify"),
            )?),
        );
        let mut queue = QueueSettings::new(hosts.clone()).with_prefix("queue");
        queue.expiry = Duration::from_secs(900);
        queue.capacity = 1000;
        registry.register("queue", Arc::new(RedisQueueLayer::new(queue)?));
        let mut analytics = QueueSettings::new(hosts).with_prefix("analytics");
        analytics.expiry = Duration::from_secs(3600);
        analytics.capacity = 5000;
        registry.register("analytics", Arc::new(RedisQueueLayer::new(analytics)?));
        Ok(registry)
    }
}
