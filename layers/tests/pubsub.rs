//! Pub/sub specifics the conformance suite cannot see: one subscriber connection per process,
//! and Redis subscriptions that follow local group membership exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use room_chat_layers::pubsub::{PubSubSettings, RedisPubSubLayer};
use room_chat_layers::testing::RedisServer;
use room_chat_layers::ChannelLayer;
use support::{eventually, init_tracing};

/// Connections currently subscribed to something (`sub=` non-zero in `CLIENT LIST`).
async fn subscriber_connections(redis: &RedisServer) -> usize {
    let list = redis.raw_command("CLIENT LIST").await.unwrap();
    list.lines()
        .filter(|line| {
            line.split(' ')
                .any(|field| field.starts_with("sub=") && field != "sub=0")
        })
        .count()
}

async fn subscriptions(redis: &RedisServer) -> String {
    redis.raw_command("PUBSUB CHANNELS").await.unwrap()
}

#[tokio::test]
async fn one_subscriber_connection_and_subscriptions_follow_membership() {
    init_tracing();
    let redis = RedisServer::start().await.unwrap();
    let layer =
        RedisPubSubLayer::new(PubSubSettings::new(vec![redis.url()]).with_prefix("chat")).unwrap();
    let mut inboxes = Vec::new();
    for _ in 0..100 {
        let inbox = layer.new_channel().await.unwrap();
        layer.group_add("room", inbox.name()).await.unwrap();
        inboxes.push(inbox);
    }
    assert_eq!(
        subscriber_connections(&redis).await,
        1,
        "one subscriber connection for 100 channels"
    );
    assert!(subscriptions(&redis).await.contains("chat__group__room"));

    // Still subscribed while one member is left...
    for inbox in &inboxes[1..] {
        layer.group_discard("room", inbox.name()).await.unwrap();
    }
    assert!(subscriptions(&redis).await.contains("chat__group__room"));
    // ...and unsubscribed as soon as the last one leaves.
    layer
        .group_discard("room", inboxes[0].name())
        .await
        .unwrap();
    assert!(!subscriptions(&redis).await.contains("chat__group__room"));

    // Dropping inboxes unsubscribes their channels.
    inboxes.truncate(1);
    eventually("dropped channels unsubscribed", || async {
        subscriptions(&redis).await.matches("chatspecific.").count() == 1
    })
    .await;
    drop(inboxes);
    layer.close().await.unwrap();
    eventually("no subscriber left after close", || async {
        subscriber_connections(&redis).await == 0
    })
    .await;
}
