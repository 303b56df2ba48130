//! Redis outages: kill `redis-server` mid-stream, restart it on the same port, and check that
//! each Redis layer reports the outage within a second, refuses (rather than silently loses)
//! sends while Redis is away, recovers by itself, carries later messages, and leaks no task.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use room_chat_layers::pubsub::{PubSubSettings, RedisPubSubLayer};
use room_chat_layers::queue::{QueueSettings, RedisQueueLayer};
use room_chat_layers::testing::RedisServer;
use room_chat_layers::{ChannelLayer, DropReason, LayerError};
use serde_json::json;
use support::{group, init_tracing, msg, recv};

/// The scenario, shared by both layers. `tasks` reads the layer's live background task count.
async fn survive_a_redis_restart(
    redis: &mut RedisServer,
    layer: Arc<dyn ChannelLayer>,
    tasks: impl Fn() -> usize,
) {
    let mut inbox = layer.new_channel().await.unwrap();
    layer.group_add(&group("room"), inbox.name()).await.unwrap();
    let mut health = layer.health();
    health.wait_for(|h| h.is_up()).await.unwrap();
    layer
        .group_send(&group("room"), msg(json!({"n": "before"})))
        .await
        .unwrap();
    assert_eq!(recv(&mut inbox).await.get("n"), Some(&json!("before")));
    let running = tasks();
    assert!(running >= 1);

    redis.kill().await;
    tokio::time::timeout(Duration::from_secs(1), health.wait_for(|h| !h.is_up()))
        .await
        .expect("Down reported within a second")
        .unwrap();
    // While Redis is away a send fails loudly instead of vanishing.
    let refused = layer
        .group_send(&group("room"), msg(json!({"n": "during"})))
        .await;
    assert!(
        matches!(refused, Err(LayerError::Unavailable { .. })),
        "{refused:?}"
    );
    // Stay down long enough for a few reconnect attempts to fail.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!layer.health().borrow().is_up());

    redis.restart().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), health.wait_for(|h| h.is_up()))
        .await
        .expect("Up again after Redis is back")
        .unwrap();
    // The command connection may need one failed call to notice the restart.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = layer
        .group_send(&group("room"), msg(json!({"n": "after"})))
        .await
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sends never recovered: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(recv(&mut inbox).await.get("n"), Some(&json!("after")));
    let stats = layer.stats();
    assert!(stats.outages >= 1 && stats.reconnects >= 1, "{stats:?}");
    assert_eq!(
        tasks(),
        running,
        "no task died or leaked through the outage"
    );

    drop(inbox);
    layer.close().await.unwrap();
    assert_eq!(tasks(), 0, "close stops every background task");
}

#[tokio::test]
async fn pubsub_survives_a_redis_restart() {
    init_tracing();
    let mut redis = RedisServer::start().await.unwrap();
    let layer = Arc::new(
        RedisPubSubLayer::new(PubSubSettings::new(vec![redis.url()]).with_prefix("chat")).unwrap(),
    );
    let probe = layer.clone();
    survive_a_redis_restart(&mut redis, layer, move || probe.background_tasks()).await;
}

#[tokio::test]
async fn queue_survives_a_redis_restart() {
    init_tracing();
    let mut redis = RedisServer::start().await.unwrap();
    let layer = Arc::new(
        RedisQueueLayer::new(QueueSettings::new(vec![redis.url()]).with_prefix("queue")).unwrap(),
    );
    let probe = layer.clone();
    survive_a_redis_restart(&mut redis, layer, move || probe.background_tasks()).await;
}

/// A layer whose Redis is not there at start-up reports Down, refuses channels with a clear
/// error, and comes up by itself once Redis appears.
#[tokio::test]
async fn pubsub_starts_without_redis_and_recovers() {
    init_tracing();
    let mut redis = RedisServer::start().await.unwrap();
    redis.kill().await;
    let layer = RedisPubSubLayer::new(PubSubSettings::new(vec![redis.url()])).unwrap();
    let mut health = layer.health();
    tokio::time::timeout(Duration::from_secs(2), health.wait_for(|h| !h.is_up()))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        layer.new_channel().await,
        Err(LayerError::Unavailable { .. })
    ));
    redis.restart().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), health.wait_for(|h| h.is_up()))
        .await
        .unwrap()
        .unwrap();
    let mut inbox = layer.new_channel().await.unwrap();
    layer
        .send(inbox.name(), msg(json!({"ok": true})))
        .await
        .unwrap();
    assert_eq!(recv(&mut inbox).await.get("ok"), Some(&json!(true)));
    drop(inbox);
    layer.close().await.unwrap();
    assert_eq!(layer.background_tasks(), 0);
}

/// A hung Redis (process stopped, sockets open) is noticed through unanswered PINGs or
/// blocking-read timeouts, not only through closed sockets, and the layer recovers when it
/// answers again.
async fn notice_a_hung_redis(redis: &RedisServer, layer: Arc<dyn ChannelLayer>) {
    let mut inbox = layer.new_channel().await.unwrap();
    layer.group_add(&group("room"), inbox.name()).await.unwrap();
    let mut health = layer.health();
    health.wait_for(|h| h.is_up()).await.unwrap();
    redis.freeze().await.unwrap();
    // keepalive (0.5 s) + command timeout (2 s), or block (1 s) + command timeout (2 s).
    tokio::time::timeout(Duration::from_secs(5), health.wait_for(|h| !h.is_up()))
        .await
        .expect("a hung Redis is reported")
        .unwrap();
    redis.thaw().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), health.wait_for(|h| h.is_up()))
        .await
        .expect("Up again once Redis answers")
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = layer
        .group_send(&group("room"), msg(json!({"n": "after"})))
        .await
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sends never recovered: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(recv(&mut inbox).await.get("n"), Some(&json!("after")));
    drop(inbox);
    layer.close().await.unwrap();
}

#[tokio::test]
async fn pubsub_notices_a_hung_redis() {
    init_tracing();
    let redis = RedisServer::start().await.unwrap();
    let layer = Arc::new(RedisPubSubLayer::new(PubSubSettings::new(vec![redis.url()])).unwrap());
    notice_a_hung_redis(&redis, layer).await;
}

#[tokio::test]
async fn queue_notices_a_hung_redis() {
    init_tracing();
    let redis = RedisServer::start().await.unwrap();
    let layer = Arc::new(RedisQueueLayer::new(QueueSettings::new(vec![redis.url()])).unwrap());
    notice_a_hung_redis(&redis, layer).await;
}

/// A `group_add` that fails during an outage does not undo an earlier successful one: the
/// member stays in the group and receives again once Redis is back.
#[tokio::test]
async fn pubsub_failed_re_add_keeps_an_existing_membership() {
    init_tracing();
    let mut redis = RedisServer::start().await.unwrap();
    let layer = RedisPubSubLayer::new(PubSubSettings::new(vec![redis.url()])).unwrap();
    let mut inbox = layer.new_channel().await.unwrap();
    layer.group_add(&group("room"), inbox.name()).await.unwrap();
    let mut health = layer.health();
    redis.kill().await;
    tokio::time::timeout(Duration::from_secs(1), health.wait_for(|h| !h.is_up()))
        .await
        .expect("Down reported within a second")
        .unwrap();
    let refused = layer.group_add(&group("room"), inbox.name()).await;
    assert!(
        matches!(refused, Err(LayerError::Unavailable { .. })),
        "{refused:?}"
    );
    redis.restart().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), health.wait_for(|h| h.is_up()))
        .await
        .expect("Up again after Redis is back")
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = layer
        .group_send(&group("room"), msg(json!({"n": "after"})))
        .await
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sends never recovered: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(recv(&mut inbox).await.get("n"), Some(&json!("after")));
    drop(inbox);
    layer.close().await.unwrap();
}

/// A broadcast that was accepted but could not be written (Redis hung before it answered) is
/// counted as `publish_failed`, and later sends are refused until the layer is back.
#[tokio::test]
async fn pubsub_counts_a_publish_that_redis_never_answered() {
    init_tracing();
    let redis = RedisServer::start().await.unwrap();
    let layer = RedisPubSubLayer::new(PubSubSettings::new(vec![redis.url()])).unwrap();
    let mut inbox = layer.new_channel().await.unwrap();
    layer.group_add(&group("room"), inbox.name()).await.unwrap();
    let mut health = layer.health();
    health.wait_for(|h| h.is_up()).await.unwrap();
    // Fully up (subscribed, and the first liveness probe back) once a broadcast makes the
    // round trip; freezing Redis before that would test the start-up wait instead.
    layer
        .group_send(&group("room"), msg(json!({"n": "warm"})))
        .await
        .unwrap();
    let _ = recv(&mut inbox).await;
    redis.freeze().await.unwrap();
    // Still subscribed as far as the layer knows: the send is accepted, then times out.
    layer
        .group_send(&group("room"), msg(json!({"n": "into the hang"})))
        .await
        .unwrap();
    let counted = tokio::time::timeout(Duration::from_secs(5), async {
        while layer.stats().dropped(DropReason::PublishFailed) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        counted.is_ok(),
        "the lost publish is counted: {:?}",
        layer.stats()
    );
    tokio::time::timeout(Duration::from_secs(5), health.wait_for(|h| !h.is_up()))
        .await
        .expect("the hang is reported")
        .unwrap();
    let refused = layer.group_send(&group("room"), msg(json!({}))).await;
    assert!(
        matches!(refused, Err(LayerError::Unavailable { .. })),
        "{refused:?}"
    );
    redis.thaw().await.unwrap();
    drop(inbox);
    layer.close().await.unwrap();
}

/// An open connection that delivers nothing is an outage too. With Redis pausing writes
/// (`CLIENT PAUSE … WRITE`) every socket stays open and `PING` still answers, but no `PUBLISH`
/// runs: the end-to-end liveness probe does not come back, so the layer reports the host Down
/// (naming it and the probe), refuses sends instead of accepting them into the void, and is Up
/// again only once a probe has passed after writes resume.
#[tokio::test]
async fn pubsub_probe_catches_a_publish_path_that_delivers_nothing() {
    init_tracing();
    let redis = RedisServer::start().await.unwrap();
    let layer = RedisPubSubLayer::new(PubSubSettings::new(vec![redis.url()])).unwrap();
    let mut inbox = layer.new_channel().await.unwrap();
    layer.group_add(&group("room"), inbox.name()).await.unwrap();
    let mut health = layer.health();
    health.wait_for(|h| h.is_up()).await.unwrap();
    let reply = redis.raw_command("CLIENT PAUSE 6000 WRITE").await.unwrap();
    assert!(reply.starts_with("+OK"), "{reply}");
    // A PING-based check would see nothing wrong.
    assert!(redis.raw_command("PING").await.unwrap().contains("PONG"));
    let started = tokio::time::Instant::now();
    // keepalive (0.5 s) + command timeout (2 s).
    tokio::time::timeout(Duration::from_secs(4), health.wait_for(|h| !h.is_up()))
        .await
        .expect("a publish path that delivers nothing is reported")
        .unwrap();
    let noticed = started.elapsed();
    let targets = layer.targets();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].target, redis.url());
    assert!(
        matches!(&targets[0].health, room_chat_layers::LayerHealth::Down { reason, .. } if reason.contains("liveness probe")),
        "{targets:?}"
    );
    let refused = layer.group_send(&group("room"), msg(json!({}))).await;
    assert!(
        matches!(refused, Err(LayerError::Unavailable { .. })),
        "{refused:?}"
    );
    let reply = redis.raw_command("CLIENT UNPAUSE").await.unwrap();
    assert!(reply.starts_with("+OK"), "{reply}");
    tokio::time::timeout(Duration::from_secs(10), health.wait_for(|h| h.is_up()))
        .await
        .expect("Up again once a probe passes")
        .unwrap();
    layer
        .group_send(&group("room"), msg(json!({"n": "after"})))
        .await
        .unwrap();
    assert_eq!(recv(&mut inbox).await.get("n"), Some(&json!("after")));
    let stats = layer.stats();
    assert!(stats.outages >= 1 && stats.reconnects >= 1, "{stats:?}");
    tracing::info!(?noticed, "probe miss noticed");
    drop(inbox);
    layer.close().await.unwrap();
}
