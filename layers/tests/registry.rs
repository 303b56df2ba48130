//! The standard registry: the five aliases of the tutorial, on Redis or, without it, in memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use room_chat_layers::testing::RedisServer;
use room_chat_layers::{LayerError, LayerRegistry};
use serde_json::json;
use support::{init_tracing, msg};

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
    chat.group_add("room", inbox.name()).await.unwrap();
    notifications
        .group_send("room", msg(json!({"n": 1})))
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
        layer.group_add("g", inbox.name()).await.unwrap();
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
            .group_add(&format!("g{g}"), inbox.name())
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
