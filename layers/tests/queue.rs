//! Queue specifics the conformance suite cannot see: the exact Redis layout (the Python
//! layers' key formats), and drops that happen inside Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use room_chat_layers::queue::{QueueSettings, RedisQueueLayer};
use room_chat_layers::testing::RedisServer;
use room_chat_layers::{ChannelLayer, DropReason};
use serde_json::json;
use support::{group, init_tracing, msg};

/// Entries that waited in Redis longer than `expiry` for a receiver that never came are
/// trimmed by the next send to that queue, and counted as expired.
#[tokio::test]
async fn entries_expired_in_redis_are_counted() {
    init_tracing();
    let redis = RedisServer::start().await.unwrap();
    let layer =
        RedisQueueLayer::new(QueueSettings::new(vec![redis.url()]).with_prefix("q")).unwrap();
    let gone = "specific.0123456789abcdef0123456789abcdef!x";
    // An entry sent long ago (score: one second after the epoch).
    redis
        .raw_command("ZADD qspecific.0123456789abcdef0123456789abcdef! 1 stale")
        .await
        .unwrap();
    layer
        .send(gone, msg(json!({"type": "fresh"})))
        .await
        .unwrap();
    assert_eq!(layer.stats().dropped(DropReason::Expired), 1);
    let left = redis
        .raw_command("ZCARD qspecific.0123456789abcdef0123456789abcdef!")
        .await
        .unwrap();
    assert_eq!(left, ":1\r\n", "only the fresh entry is left");
    layer.flush().await.unwrap();
    layer.close().await.unwrap();
}

/// Keys, members and scores follow the Python layer's layout.
#[tokio::test]
async fn redis_layout_matches_the_python_layer() {
    init_tracing();
    let redis = RedisServer::start().await.unwrap();
    let layer =
        RedisQueueLayer::new(QueueSettings::new(vec![redis.url()]).with_prefix("queue")).unwrap();
    let inbox = layer.new_channel().await.unwrap();
    let name = inbox.name().to_owned();
    let (process, _) = name.split_once('!').unwrap();
    assert!(process.starts_with("specific."));
    assert_eq!(process.len(), "specific.".len() + 32);
    assert_eq!(name.len(), process.len() + 1 + 32);
    layer.group_add(&group("room"), &name).await.unwrap();
    let members = redis
        .raw_command("ZRANGE queue:group:room 0 -1")
        .await
        .unwrap();
    assert!(members.contains(&name), "{members}");
    let ttl = redis.raw_command("TTL queue:group:room").await.unwrap();
    assert_eq!(ttl, ":86400\r\n");
    // Stop our reader from draining the queue by sending to a channel of another process.
    let other = "specific.ffffffffffffffffffffffffffffffff!abc";
    layer.send(other, msg(json!({"type": "x"}))).await.unwrap();
    let ttl = redis
        .raw_command("TTL queuespecific.ffffffffffffffffffffffffffffffff!")
        .await
        .unwrap();
    assert_eq!(ttl, ":60\r\n");
    drop(inbox);
    layer.flush().await.unwrap();
    layer.close().await.unwrap();
}
