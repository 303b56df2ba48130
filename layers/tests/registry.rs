//! The standard registry: the five aliases of the tutorial, on Redis or, without it, in memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use room_chat_layers::testing::RedisServer;
use std::time::Duration;

use room_chat_layers::{DropReason, LayerError, LayerLimits, LayerRegistry};
use serde_json::json;
use support::{eventually, group, init_tracing, msg, recv};

const ALIASES: [&str; 5] = ["analytics", "chat", "memory", "notifications", "queue"];

#[tokio::test]
async fn without_redis_every_alias_is_in_memory_with_its_limits() {
    init_tracing();
    let registry = LayerRegistry::standard(None).unwrap();
    assert!(registry.has_layers());
    assert_eq!(registry.aliases(), ALIASES);
    for (_, layer) in registry.iter() {
        assert_eq!(layer.kind(), "memory");
    }
    // Separate layers: a group on `chat` is not a group on `notifications`.
    let chat = registry.get("chat").unwrap();
    let notifications = registry.get("notifications").unwrap();
    let mut inbox = chat.new_channel().await.unwrap();
    chat.group_add(&group("room"), inbox.name()).await.unwrap();
    notifications
        .group_send(&group("room"), msg(json!({"n": 1})))
        .await
        .unwrap();
    assert!(inbox.try_receive().is_none());
    // `queue` keeps the tutorial's capacity of 1000.
    let queue = registry.get("queue").unwrap();
    let unread = queue.new_channel().await.unwrap();
    for i in 0..1000 {
        queue
            .send(unread.name(), msg(json!({"i": i})))
            .await
            .unwrap();
    }
    assert!(matches!(
        queue.send(unread.name(), msg(json!({}))).await,
        Err(LayerError::ChannelFull { .. })
    ));
    assert!(registry.get("nope").is_none());
    registry.close_all().await.unwrap();
}

#[tokio::test]
async fn with_redis_the_aliases_use_their_kinds_and_prefixes() {
    init_tracing();
    let redis = RedisServer::start().await.unwrap();
    let registry = LayerRegistry::standard(Some(&redis.url())).unwrap();
    assert_eq!(registry.aliases(), ALIASES);
    let kinds: Vec<_> = registry
        .iter()
        .map(|(alias, layer)| (alias, layer.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("analytics", "redis_queue"),
            ("chat", "redis_pubsub"),
            ("memory", "memory"),
            ("notifications", "redis_pubsub"),
            ("queue", "redis_queue"),
        ]
    );
    let chat = registry.get("chat").unwrap();
    assert!(chat
        .new_channel()
        .await
        .unwrap()
        .name()
        .starts_with("chatspecific."));
    let notifications = registry.get("notifications").unwrap();
    assert!(notifications
        .new_channel()
        .await
        .unwrap()
        .name()
        .starts_with("notifyspecific."));
    for alias in ["queue", "analytics"] {
        let layer = registry.get(alias).unwrap();
        let inbox = layer.new_channel().await.unwrap();
        layer.group_add(&group("g"), inbox.name()).await.unwrap();
        let keys = redis.raw_command("KEYS *").await.unwrap();
        assert!(keys.contains(&format!("{alias}:group:g")), "{keys}");
    }
    registry.close_all().await.unwrap();
}

#[tokio::test]
async fn a_comma_separated_list_forms_a_ring() {
    init_tracing();
    let one = RedisServer::start().await.unwrap();
    let two = RedisServer::start().await.unwrap();
    let registry = LayerRegistry::standard(Some(&format!("{}, {}", one.url(), two.url()))).unwrap();
    let queue = registry.get("queue").unwrap();
    // Enough groups that both hosts hold some.
    let inbox = queue.new_channel().await.unwrap();
    for g in 0..20 {
        queue
            .group_add(&group(&format!("g{g}")), inbox.name())
            .await
            .unwrap();
    }
    for server in [&one, &two] {
        let keys = server.raw_command("KEYS queue:group:*").await.unwrap();
        assert!(
            keys.contains("queue:group:g"),
            "a host of the ring holds no group: {keys}"
        );
    }
    registry.close_all().await.unwrap();
}

#[tokio::test]
async fn a_bad_url_is_a_configuration_error() {
    assert!(matches!(
        LayerRegistry::standard(Some("not a url")),
        Err(LayerError::Config(_))
    ));
}

/// `standard` is `standard_with` the layers' defaults.
#[test]
fn default_limits_are_the_layers_defaults() {
    let limits = LayerLimits::default();
    assert_eq!(limits.local_queue_bound, 1024);
    assert_eq!(limits.memory_capacity, 100);
    assert_eq!(limits.memory_expiry, Duration::from_secs(60));
    assert_eq!(limits.group_expiry, Duration::from_secs(86_400));
    assert_eq!(limits.redis_connect_timeout, Duration::from_secs(1));
    assert_eq!(limits.redis_command_timeout, Duration::from_secs(2));
    assert_eq!(limits.reconnect_min, Duration::from_millis(100));
    assert_eq!(limits.reconnect_max, Duration::from_secs(2));
    assert_eq!(limits.pubsub_dispatch_queue, 8192);
}

/// Without Redis, the limits reach the in-memory layers (capacity, expiry, group expiry),
/// while the queue aliases keep their tutorial capacity.
#[tokio::test]
async fn limits_reach_the_in_memory_layers() {
    init_tracing();
    let limits = LayerLimits {
        memory_capacity: 2,
        memory_expiry: Duration::from_secs(5),
        group_expiry: Duration::from_secs(10),
        ..LayerLimits::default()
    };
    let registry = LayerRegistry::standard_with(None, &limits).unwrap();
    for alias in ["memory", "chat", "notifications"] {
        let layer = registry.get(alias).unwrap();
        let unread = layer.new_channel().await.unwrap();
        for i in 0..2 {
            layer
                .send(unread.name(), msg(json!({"i": i})))
                .await
                .unwrap();
        }
        assert!(
            matches!(
                layer.send(unread.name(), msg(json!({}))).await,
                Err(LayerError::ChannelFull { .. })
            ),
            "{alias} ignores memory_capacity"
        );
    }
    // Expiry and group expiry, on paused time.
    let layer = registry.get("chat").unwrap();
    let mut inbox = layer.new_channel().await.unwrap();
    tokio::time::pause();
    layer.group_add(&group("room"), inbox.name()).await.unwrap();
    layer
        .send(inbox.name(), msg(json!({"n": "stale"})))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    layer
        .group_send(&group("room"), msg(json!({"n": "news"})))
        .await
        .unwrap();
    layer
        .send(inbox.name(), msg(json!({"n": "marker"})))
        .await
        .unwrap();
    assert_eq!(recv(&mut inbox).await.get("n"), Some(&json!("marker")));
    // One stale message, one broadcast missed by the expired membership.
    assert_eq!(layer.stats().dropped(DropReason::Expired), 2);
    let queue = registry.get("queue").unwrap();
    let unread = queue.new_channel().await.unwrap();
    for i in 0..3 {
        queue
            .send(unread.name(), msg(json!({"i": i})))
            .await
            .unwrap();
    }
    registry.close_all().await.unwrap();
}

/// With Redis, the local queue bound reaches both Redis kinds, and the connection limits are
/// accepted.
#[tokio::test]
async fn limits_reach_the_redis_layers() {
    init_tracing();
    let redis = RedisServer::start().await.unwrap();
    let limits = LayerLimits {
        local_queue_bound: 2,
        redis_connect_timeout: Duration::from_millis(500),
        redis_command_timeout: Duration::from_secs(1),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(500),
        pubsub_dispatch_queue: 16,
        ..LayerLimits::default()
    };
    let registry = LayerRegistry::standard_with(Some(&redis.url()), &limits).unwrap();
    for alias in ["chat", "queue"] {
        let layer = registry.get(alias).unwrap();
        let mut unread = layer.new_channel().await.unwrap();
        for i in 0..3 {
            layer
                .send(unread.name(), msg(json!({"i": i})))
                .await
                .unwrap();
        }
        let probe = layer.clone();
        eventually("the third message is a slow-consumer drop", move || {
            let probe = probe.clone();
            async move { probe.stats().dropped(DropReason::SlowConsumer) == 1 }
        })
        .await;
        assert_eq!(recv(&mut unread).await.get("i"), Some(&json!(0)));
    }
    registry.close_all().await.unwrap();
}

/// Only the named aliases are built: a service that uses `chat` alone starts no queue reader
/// (no `BZPOPMIN` connection on Redis) and lists no other alias in its health.
#[tokio::test]
async fn only_the_named_aliases_are_started() {
    init_tracing();
    let redis = RedisServer::start().await.unwrap();
    let registry =
        LayerRegistry::standard_for(Some(&redis.url()), &LayerLimits::default(), &["chat"])
            .unwrap();
    assert_eq!(registry.aliases(), ["chat"]);
    let chat = registry.get("chat").unwrap();
    let mut inbox = chat.new_channel().await.unwrap();
    chat.send(inbox.name(), msg(json!({"n": 1}))).await.unwrap();
    assert_eq!(recv(&mut inbox).await.get("n"), Some(&json!(1)));
    // Give a queue reader, had one been started, time to block in BZPOPMIN.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let clients = redis.raw_command("CLIENT LIST").await.unwrap();
    assert!(!clients.contains("cmd=bzpopmin"), "{clients}");
    assert!(registry.get("queue").is_none());
    drop(inbox);
    registry.close_all().await.unwrap();

    let memory_only =
        LayerRegistry::standard_for(None, &LayerLimits::default(), &["queue", "queue"]).unwrap();
    assert_eq!(memory_only.aliases(), ["queue"]);
    assert!(matches!(
        LayerRegistry::standard_for(None, &LayerLimits::default(), &["chat", "nope"]),
        Err(LayerError::Config(reason)) if reason.contains("\"nope\"")
    ));
}
