//! Pub/sub specifics the conformance suite cannot see: one subscriber connection per process,
//! and Redis subscriptions that follow local group membership exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use room_chat_layers::memory::{MemoryLayer, MemorySettings};
use room_chat_layers::pubsub::{PubSubSettings, RedisPubSubLayer};
use room_chat_layers::testing::RedisServer;
use room_chat_layers::{ChannelLayer, DropReason, LayerError, LuaScript, ScriptedSend};
use serde_json::json;
use support::{eventually, group, init_tracing, msg, recv};

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
        layer.group_add(&group("room"), inbox.name()).await.unwrap();
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
        layer
            .group_discard(&group("room"), inbox.name())
            .await
            .unwrap();
    }
    assert!(subscriptions(&redis).await.contains("chat__group__room"));
    // ...and unsubscribed as soon as the last one leaves.
    layer
        .group_discard(&group("room"), inboxes[0].name())
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

/// A burst that the fan-out cannot keep up with overflows the bounded dispatch queue: the
/// excess is dropped and counted (not buffered without limit inside the Redis client), the
/// subscriber keeps reading (health stays Up), and every published message is either delivered
/// or counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_dispatch_queue_is_dropped_and_counted() {
    init_tracing();
    const BURST: usize = 2000;
    const MEMBERS: usize = 300;
    let redis = RedisServer::start().await.unwrap();
    let mut settings = PubSubSettings::new(vec![redis.url()]).with_prefix("chat");
    settings.dispatch_queue = 1;
    // Room for the whole burst in every inbox: the only place a message can be lost is the
    // dispatch queue.
    settings.local_queue_bound = BURST;
    let layer = RedisPubSubLayer::new(settings).unwrap();
    let mut watcher = layer.new_channel().await.unwrap();
    layer
        .group_add(&group("room"), watcher.name())
        .await
        .unwrap();
    // Enough members that fanning one message out costs far more than reading it.
    let mut others = Vec::new();
    for _ in 0..MEMBERS {
        let inbox = layer.new_channel().await.unwrap();
        layer.group_add(&group("room"), inbox.name()).await.unwrap();
        others.push(inbox);
    }

    // The whole burst in one pipeline, so it arrives faster than it can be fanned out.
    let payload = msg(json!({"type": "burst"})).to_msgpack().unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut pipe = redis::pipe();
    for _ in 0..BURST {
        pipe.cmd("PUBLISH")
            .arg("chat__group__room")
            .arg(payload.as_ref())
            .ignore();
    }
    pipe.query_async::<()>(&mut conn).await.unwrap();

    // Every message is accounted for: received by the watcher, or dropped at the dispatch
    // queue (once per message, whatever the group size).
    let mut received = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let overflow = layer.stats().dropped(DropReason::DispatchOverflow) as usize;
        if received + overflow == BURST {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "received {received} + overflow {overflow} != {BURST}"
        );
        if tokio::time::timeout(Duration::from_millis(50), watcher.receive())
            .await
            .is_ok()
        {
            received += 1;
        }
    }
    let stats = layer.stats();
    assert!(
        stats.dropped(DropReason::DispatchOverflow) > 0,
        "the burst fit through a one-message dispatch queue: {stats:?}"
    );
    assert_eq!(stats.dropped(DropReason::SlowConsumer), 0, "{stats:?}");
    assert!(layer.health().borrow().is_up());
    drop(others);
    drop(watcher);
    layer.close().await.unwrap();
}

/// Counts its calls in `KEYS[1]` and publishes `ARGV[3]` instead of the layer's message.
static COUNT_AND_PUBLISH: std::sync::LazyLock<LuaScript> = std::sync::LazyLock::new(|| {
    LuaScript::new("redis.call('INCR', KEYS[1]) return redis.call('PUBLISH', ARGV[1], ARGV[3])")
});

/// Always fails, publishing nothing.
static FAILING: std::sync::LazyLock<LuaScript> =
    std::sync::LazyLock::new(|| LuaScript::new("return redis.error_reply('refused on purpose')"));

/// A scripted group send is one command that does the script's writes and publishes what the
/// script publishes; a Redis that lost the script is sent its source and the message still
/// arrives once; a failing script's fallback is delivered in its place, and without a fallback
/// the loss is counted. Layers that run no scripts refuse the call.
#[tokio::test]
async fn scripted_sends_publish_what_their_script_publishes() {
    init_tracing();
    let redis = RedisServer::start().await.unwrap();
    let layer = RedisPubSubLayer::new(PubSubSettings::new(vec![redis.url()])).unwrap();
    let room = group("room");
    let mut inbox = layer.new_channel().await.unwrap();
    layer.group_add(&room, inbox.name()).await.unwrap();
    assert_eq!(layer.script_server(&room), Some(redis.url().as_str()));
    let counted = |n: &str| {
        ScriptedSend::new(&COUNT_AND_PUBLISH, 1, 1)
            .key("scripted-count")
            .arg(msg(json!({"n": n})).to_msgpack().unwrap())
    };
    let placeholder = || msg(json!({"n": "the layer's own"}));

    layer
        .group_send_scripted(&room, placeholder(), counted("first"))
        .await
        .unwrap();
    assert_eq!(recv(&mut inbox).await.get("n"), Some(&json!("first")));
    redis.raw_command("SCRIPT FLUSH").await.unwrap();
    layer
        .group_send_scripted(&room, placeholder(), counted("after the flush"))
        .await
        .unwrap();
    assert_eq!(
        recv(&mut inbox).await.get("n"),
        Some(&json!("after the flush"))
    );
    assert!(redis
        .raw_command("GET scripted-count")
        .await
        .unwrap()
        .contains("\r\n2\r\n"));

    let fallback = msg(json!({"n": "fallback"})).to_msgpack().unwrap();
    layer
        .group_send_scripted(
            &room,
            placeholder(),
            ScriptedSend::new(&FAILING, 0, 0).fallback(fallback),
        )
        .await
        .unwrap();
    assert_eq!(recv(&mut inbox).await.get("n"), Some(&json!("fallback")));
    layer
        .group_send_scripted(&room, placeholder(), ScriptedSend::new(&FAILING, 0, 0))
        .await
        .unwrap();
    eventually("the failed script is counted", || async {
        layer.stats().dropped(DropReason::PublishFailed) == 1
    })
    .await;
    // Nothing else arrived: the failed script published nothing.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), inbox.receive())
            .await
            .is_err()
    );
    layer.close().await.unwrap();

    let memory = MemoryLayer::new(MemorySettings::default());
    assert_eq!(memory.script_server(&room), None);
    let refused = memory
        .group_send_scripted(&room, placeholder(), counted("nowhere"))
        .await;
    assert!(
        matches!(refused, Err(LayerError::Unsupported { .. })),
        "{refused:?}"
    );
}
