//! Redis Cluster, on a real cluster the test owns (`testing::cluster::RedisCluster`: 3
//! masters + 3 replicas on free ports), started once and shared by every scenario, which run
//! in order against it (each one moves the slot the next starts from).
//!
//! The layer under test both sends and receives in one group while a sender loop broadcasts
//! every 10 ms, so that every accepted broadcast must end up received or counted. Scenarios,
//! each against the node that holds the group's slot at that moment:
//! 1. slot migration (`CLUSTER SETSLOT … IMPORTING/MIGRATING`, then `… NODE` everywhere);
//! 2. `CLUSTER FAILOVER` on that node's replica;
//! 3. SIGSTOP of that node: the group's partition is Down within `keepalive_interval` + the
//!    command timeout (asserted, with a small margin), only the partitions on that node go
//!    Down, and delivery resumes after SIGCONT;
//! 4. `kill -9` of the master holding the subscription (its replica is promoted).
//!
//! After each: health went Down then Up again, the outage is counted, delivery resumed (here and
//! in a second process), and every accepted broadcast was received or counted (no silent loss).
//! 5. Ten thousand groups, each with a member of its own, through one `CLUSTER FAILOVER` of the
//!    master serving the most of them: a broadcast to every group is delivered or counted; the
//!    resubscribe commands it cost and the time until every group delivers again are printed.
//!
//! Timings are printed (`cargo test --test cluster -- --nocapture`). Then the registry's Cluster
//! URL, and the queue layer on the cluster (direct sends and broadcasts across two processes,
//! single-slot commands only, nothing left behind), through a migration (keys and all), a
//! `CLUSTER FAILOVER` and a `kill -9` of the master holding its group: each time the group
//! keeps both members and a broadcast reaches both processes again (times printed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use room_chat_layers::cluster::{slot_of_tag, ClusterPubSubSettings, RedisClusterPubSubLayer};
use room_chat_layers::testing::cluster::{ClusterNode, RedisCluster};
use room_chat_layers::testing::command;
use room_chat_layers::{ChannelLayer, DropReason, Group, Inbox, LayerHealth};
use serde_json::json;
use support::{group, init_tracing, msg};

/// The slot a (tagged) Redis channel of the Cluster layer lives in.
fn slot_of_channel(channel: &str) -> u16 {
    let tag = channel.trim_start_matches('{').split('}').next().unwrap();
    slot_of_tag(tag)
}

fn layer(cluster: &RedisCluster) -> Arc<RedisClusterPubSubLayer> {
    let mut settings = ClusterPubSubSettings::new(cluster.seeds()).with_prefix("chat");
    settings.partitions = 16;
    Arc::new(RedisClusterPubSubLayer::new(settings).unwrap())
}

fn counted_drops(layer: &RedisClusterPubSubLayer) -> u64 {
    layer.stats().dropped_total()
}

/// Health transitions seen by a watcher: how many times it went Down.
fn watch_downs(layer: &RedisClusterPubSubLayer) -> Arc<AtomicU64> {
    let downs = Arc::new(AtomicU64::new(0));
    let mut health = layer.health();
    let counter = downs.clone();
    tokio::spawn(async move {
        let mut was_up = health.borrow().is_up();
        while health.changed().await.is_ok() {
            let up = health.borrow().is_up();
            if was_up && !up {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            was_up = up;
        }
    });
    downs
}

/// Broadcasts a marker to the queue layer's "room" (retrying while the cluster settles) until
/// it reaches both inboxes, within 10 s; older messages read on the way are skipped.
async fn queue_delivers_to_both(
    layer: &Arc<dyn ChannelLayer>,
    a: &mut Inbox,
    b: &mut Inbox,
    label: &str,
) {
    let began = Instant::now();
    let deadline = began + Duration::from_secs(10);
    let marker = json!({"marker": label});
    loop {
        assert!(
            Instant::now() < deadline,
            "{label}: the queue layer never delivered"
        );
        if layer
            .group_send(&group("room"), msg(marker.clone()))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let mut got = 0;
        for inbox in [&mut *a, &mut *b] {
            let wait = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    if inbox.receive().await.ok()?.get("marker") == marker.get("marker") {
                        return Some(());
                    }
                }
            });
            if wait.await.ok().flatten().is_some() {
                got += 1;
            }
        }
        if got == 2 {
            eprintln!(
                "queue layer, {label}: both delivering after {:?}",
                began.elapsed()
            );
            return;
        }
    }
}

/// Runs `disturb` while `layer` broadcasts to "room" every 10 ms and both inboxes read; then
/// checks that delivery resumed in both processes and that nothing was lost silently.
async fn survive<F, Fut>(
    label: &str,
    layer: &Arc<RedisClusterPubSubLayer>,
    inbox: &mut Inbox,
    peer_inbox: &mut Inbox,
    disturb: F,
) where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let downs = watch_downs(layer);
    let outages_before = layer.stats().outages;
    let drops_before = counted_drops(layer);
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(Mutex::new(false));
    let sender = {
        let (layer, accepted, refused, stop) = (
            layer.clone(),
            accepted.clone(),
            refused.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0u64;
            while !*stop.lock().unwrap() {
                n += 1;
                match layer.group_send(&group("room"), msg(json!({"n": n}))).await {
                    Ok(()) => accepted.fetch_add(1, Ordering::Relaxed),
                    Err(_) => refused.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let received = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    disturb().await;
    let disturbed = Instant::now();
    // Delivery resumes: a broadcast accepted after the disturbance arrives here and in the peer.
    let mut resumed_at = None;
    let mut peer_resumed = false;
    let marker_from = accepted.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while resumed_at.is_none() || !peer_resumed {
        assert!(
            Instant::now() < deadline,
            "{label}: delivery did not resume; {:?}",
            layer.stats()
        );
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(20), inbox.receive()).await {
            received.fetch_add(1, Ordering::Relaxed);
            if m.get("n").and_then(serde_json::Value::as_u64) > Some(marker_from)
                && resumed_at.is_none()
            {
                resumed_at = Some(Instant::now());
            }
        }
        if let Ok(Ok(m)) =
            tokio::time::timeout(Duration::from_millis(1), peer_inbox.receive()).await
        {
            if m.get("n").and_then(serde_json::Value::as_u64) > Some(marker_from) {
                peer_resumed = true;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    *stop.lock().unwrap() = true;
    sender.await.unwrap();
    // Let the last publishes land, then drain.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Some(_m) = inbox.try_receive() {
        received.fetch_add(1, Ordering::Relaxed);
    }
    while peer_inbox.try_receive().is_some() {}
    let stats = layer.stats();
    let accepted = accepted.load(Ordering::Relaxed);
    let received = received.load(Ordering::Relaxed);
    let dropped = counted_drops(layer) - drops_before;
    eprintln!(
        "{label}: disturbance took {:?}; delivery resumed {:?} after it; accepted {accepted}, refused {}, received {received}, counted drops {dropped} ({:?} unheard, {:?} publish_failed); Down {} time(s), outages +{}",
        disturbed - started,
        resumed_at.map(|t| t - disturbed),
        refused.load(Ordering::Relaxed),
        stats.dropped(DropReason::Unheard),
        stats.dropped(DropReason::PublishFailed),
        downs.load(Ordering::Relaxed),
        stats.outages - outages_before,
    );
    assert!(
        downs.load(Ordering::Relaxed) >= 1,
        "{label}: health never went Down"
    );
    // Every partition (not only the group's) is Up again once its probe passed.
    let mut health = layer.health();
    let up = tokio::time::timeout(Duration::from_secs(10), health.wait_for(|h| h.is_up())).await;
    assert!(
        up.is_ok(),
        "{label}: health is not Up again: {:?}",
        layer.health().borrow().clone()
    );
    assert!(
        stats.outages > outages_before,
        "{label}: outage not counted"
    );
    // Every accepted broadcast was received or counted. (The count may exceed the loss: a
    // subscription that redis-rs placed on a replica receives what the master propagates,
    // while the master's SPUBLISH reply counts only its own subscribers.)
    assert!(received <= accepted, "{label}: duplicates: {stats:?}");
    assert!(
        received + dropped >= accepted,
        "{label}: silent loss of {} message(s): {stats:?}",
        accepted - received - dropped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_sharded_pubsub_survives_migration_failover_and_crash() {
    init_tracing();
    let began = Instant::now();
    let mut cluster = RedisCluster::start().await.unwrap();
    eprintln!("cluster ready in {:?}", began.elapsed());
    // A second process's layer, on the same cluster.
    let peer = layer(&cluster);
    let layer = layer(&cluster);
    let mut inbox = layer.new_channel().await.unwrap();
    layer.group_add(&group("room"), inbox.name()).await.unwrap();
    let mut peer_inbox = peer.new_channel().await.unwrap();
    peer.group_add(&group("room"), peer_inbox.name())
        .await
        .unwrap();
    let channel = layer.redis_channel_of_group(&group("room"));
    let slot = slot_of_channel(&channel);
    eprintln!("group channel {channel} in slot {slot}");
    // Baseline.
    layer
        .group_send(&group("room"), msg(json!({"n": 0})))
        .await
        .unwrap();
    assert_eq!(support::recv(&mut inbox).await.get("n"), Some(&json!(0)));
    assert_eq!(
        support::recv(&mut peer_inbox).await.get("n"),
        Some(&json!(0))
    );
    assert!(layer.targets().iter().all(|t| t.health == LayerHealth::Up));

    // 1. Slot migration to another master.
    let from = cluster.owner(slot).await.unwrap();
    let to = cluster
        .nodes()
        .await
        .into_iter()
        .find(|n| n.master && !n.failed && n.id != from.id && !n.slots.is_empty())
        .unwrap();
    survive(
        "slot migration",
        &layer,
        &mut inbox,
        &mut peer_inbox,
        || async { cluster.migrate(slot, &to).await.unwrap() },
    )
    .await;
    assert_eq!(cluster.owner(slot).await.unwrap().id, to.id);

    // 2. Manual failover of the new owner to its replica.
    let mut demoted = None;
    survive(
        "CLUSTER FAILOVER",
        &layer,
        &mut inbox,
        &mut peer_inbox,
        || async { demoted = Some(cluster.failover(slot).await.unwrap().0) },
    )
    .await;
    // The demoted master must be a synced replica before its new master dies, and the masters
    // only vote again for a failover after twice the node timeout.
    cluster.settle(&demoted.unwrap()).await.unwrap();

    // 3. SIGSTOP of the node holding the group's subscription, until the layer reports it.
    frozen_node(&mut cluster, &layer, &mut inbox, &mut peer_inbox, slot).await;
    // Whichever node serves the slot now, its replica must be in sync before the crash (a
    // thawed master that was failed over meanwhile turns into that replica).
    cluster.wait_healthy().await.unwrap();
    let owner = cluster.owner(slot).await.unwrap();
    let replica = cluster.replica_of(&owner).await.unwrap();
    cluster.settle(&replica).await.unwrap();

    // 4. kill -9 of the master holding the subscription.
    let victim = cluster.owner(slot).await.unwrap();
    for node in cluster.nodes().await {
        let channels = format!(
            "{:?}",
            command(node.port, &["PUBSUB", "SHARDCHANNELS"]).await.ok()
        );
        eprintln!(
            "node {} master={} owner={}: holds our subscription: {}",
            node.port,
            node.master,
            node.id == victim.id,
            channels.contains("chat__group__room")
        );
    }
    let cluster_ref = &mut cluster;
    survive(
        "kill -9 of the master",
        &layer,
        &mut inbox,
        &mut peer_inbox,
        || async move {
            cluster_ref.kill(victim.port).unwrap();
            cluster_ref.wait_owner_changed(slot, &victim).await.unwrap();
        },
    )
    .await;
    cluster.wait_healthy().await.unwrap();

    // 5. Ten thousand groups through one failover.
    many_groups_through_a_failover(&mut cluster).await;

    // The registry runs the pub/sub aliases on the cluster from a redis+cluster:// URL, and
    // refuses the queue aliases there with a clear error.
    let live = cluster.ports();
    let url = cluster.url();
    let limits = room_chat_layers::LayerLimits::default();
    let registry =
        room_chat_layers::LayerRegistry::standard_for(Some(&url), &limits, &["chat"]).unwrap();
    let chat = registry.get("chat").unwrap();
    let mut chat_inbox = chat.new_channel().await.unwrap();
    chat.group_add(&group("lobby"), chat_inbox.name())
        .await
        .unwrap();
    chat.group_send(&group("lobby"), msg(json!({"via": "registry"})))
        .await
        .unwrap();
    assert_eq!(
        support::recv(&mut chat_inbox).await.get("via"),
        Some(&json!("registry"))
    );
    assert_eq!(
        chat.targets().len(),
        room_chat_layers::cluster::DEFAULT_PARTITIONS
    );
    drop(chat_inbox);
    registry.close_all().await.unwrap();

    // The queue layer on the cluster: every command stays within one slot (a broadcast runs
    // one script per process queue), across two processes.
    let one =
        room_chat_layers::LayerRegistry::standard_for(Some(&url), &limits, &["queue"]).unwrap();
    let two =
        room_chat_layers::LayerRegistry::standard_for(Some(&url), &limits, &["queue"]).unwrap();
    let (q1, q2) = (one.get("queue").unwrap(), two.get("queue").unwrap());
    let mut a = q1.new_channel().await.unwrap();
    let mut b = q2.new_channel().await.unwrap();
    q1.send(b.name(), msg(json!({"direct": 1}))).await.unwrap();
    assert_eq!(support::recv(&mut b).await.get("direct"), Some(&json!(1)));
    q1.group_add(&group("room"), a.name()).await.unwrap();
    q2.group_add(&group("room"), b.name()).await.unwrap();
    for n in 0..20 {
        q2.group_send(&group("room"), msg(json!({"n": n})))
            .await
            .unwrap();
    }
    for inbox in [&mut a, &mut b] {
        for n in 0..20 {
            assert_eq!(support::recv(inbox).await.get("n"), Some(&json!(n)));
        }
    }

    // The same events under the queue layer, on the master that holds the group's key: after
    // each, the group still has both members (migrated, replicated, or re-added by the layer
    // after its reconnect) and a broadcast reaches both processes again.
    let group_key = "queue:group:room";
    let slot = redis::from_redis_value::<u16>(
        command(live[0], &["CLUSTER", "KEYSLOT", group_key])
            .await
            .unwrap(),
    )
    .unwrap();
    let owner = cluster.owner(slot).await.unwrap();
    // To a master with a replica, which the failover below needs.
    let mut target = None;
    for n in cluster.nodes().await {
        if n.master && !n.failed && n.id != owner.id && cluster.replica_of(&n).await.is_some() {
            target = Some(n);
            break;
        }
    }
    let target = target.expect("a master with a replica");
    cluster.migrate(slot, &target).await.unwrap();
    queue_delivers_to_both(&q2, &mut a, &mut b, "after the migration").await;
    cluster.failover(slot).await.unwrap();
    queue_delivers_to_both(&q2, &mut a, &mut b, "after the failover").await;
    let victim = cluster.owner(slot).await.unwrap();
    let began = Instant::now();
    cluster.kill(victim.port).unwrap();
    cluster.wait_owner_changed(slot, &victim).await.unwrap();
    eprintln!(
        "queue layer: {group_key}'s master killed, replica promoted after {:?}",
        began.elapsed()
    );
    queue_delivers_to_both(&q2, &mut a, &mut b, "after the crash").await;
    eprintln!(
        "queue layer: both members delivering again {:?} after the kill",
        began.elapsed()
    );
    let members = command(
        cluster.owner(slot).await.unwrap().port,
        &["ZCARD", group_key],
    )
    .await
    .unwrap();
    assert_eq!(
        redis::from_redis_value::<u64>(members).unwrap(),
        2,
        "both memberships kept"
    );
    // Two masters are gone now; the rest of the test only reads the running nodes.
    let live = cluster.ports();

    q1.group_discard(&group("room"), a.name()).await.unwrap();
    drop((a, b));
    q1.flush().await.unwrap();
    one.close_all().await.unwrap();
    two.close_all().await.unwrap();
    for port in &live {
        let keys: Vec<String> =
            redis::from_redis_value(command(*port, &["KEYS", "queue*"]).await.unwrap()).unwrap();
        assert!(keys.is_empty(), "left behind on {port}: {keys:?}");
    }

    drop(inbox);
    drop(peer_inbox);
    layer.close().await.unwrap();
    peer.close().await.unwrap();
    assert_eq!(layer.background_tasks(), 0);
    // Nothing of ours stays subscribed anywhere.
    for port in &live {
        let channels: Vec<String> =
            redis::from_redis_value(command(*port, &["PUBSUB", "SHARDCHANNELS"]).await.unwrap())
                .unwrap();
        assert!(
            channels.is_empty(),
            "left subscribed on {port}: {channels:?}"
        );
    }
}

/// Slack on top of the detection bound a frozen node is held to: the health watch, the
/// polling here, and a keepalive tick that runs late on two busy cores (the supervisor's own
/// commands to the frozen node wait out their timeouts): one keepalive interval's worth.
const DETECTION_MARGIN: Duration = Duration::from_millis(500);

/// SIGSTOP of the master serving `slot` (the group's subscription): the group's partition is
/// Down within one keepalive interval plus the command timeout (the probe check runs on the
/// keepalive tick, so the timeout is rounded up to whole ticks), the outage is counted, and
/// after SIGCONT (sent as soon as the layer reported the outage) delivery resumes with every
/// loss counted (`survive`).
async fn frozen_node(
    cluster: &mut RedisCluster,
    layer: &Arc<RedisClusterPubSubLayer>,
    inbox: &mut Inbox,
    peer_inbox: &mut Inbox,
    slot: u16,
) {
    let connection = layer.settings().connection.clone();
    let (keepalive, command_timeout) = (connection.keepalive_interval, connection.command_timeout);
    let ticks = command_timeout.as_nanos().div_ceil(keepalive.as_nanos());
    let bound = keepalive + keepalive * u32::try_from(ticks).unwrap() + DETECTION_MARGIN;
    let owner = cluster.owner(slot).await.unwrap();
    let target = format!("slot {slot})");
    let mut detected = None;
    let mut partitions_down = 0;
    survive("SIGSTOP of the node", layer, inbox, peer_inbox, || async {
        cluster.freeze(owner.port).await.unwrap();
        let frozen = Instant::now();
        let deadline = frozen + Duration::from_secs(15);
        loop {
            let targets = layer.targets();
            let ours = targets
                .iter()
                .find(|t| t.target.ends_with(&target))
                .unwrap();
            if !ours.health.is_up() {
                detected = Some(frozen.elapsed());
                partitions_down = targets.iter().filter(|t| !t.health.is_up()).count();
                break;
            }
            assert!(Instant::now() < deadline, "a frozen node never reported");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cluster.thaw(owner.port).await.unwrap();
    })
    .await;
    let detected = detected.unwrap();
    let now_owner = cluster.owner(slot).await;
    eprintln!(
        "SIGSTOP of the node: the group's partition Down {detected:?} after the freeze (bound {bound:?} = keepalive {keepalive:?} + command timeout {command_timeout:?} in ticks + {DETECTION_MARGIN:?}); {partitions_down} of {} partitions Down then; after SIGCONT the slot is served by {}",
        layer.targets().len(),
        match &now_owner {
            Some(n) if n.id == owner.id => "the thawed node (no failover)".to_owned(),
            Some(n) => format!("its replica {} (failed over)", n.port),
            None => "nobody yet".to_owned(),
        }
    );
    assert!(
        detected <= bound,
        "frozen node reported after {detected:?}, bound {bound:?}"
    );
    // Each partition publishes on its own: a hung node must not take the others down.
    assert!(
        partitions_down < layer.targets().len(),
        "a frozen node took every partition down"
    );
}

/// Groups of the load case, each with one local member of its own (one connection per room).
const LOAD_GROUPS: usize = 10_000;

/// How long the load case gives every group to deliver again after the failover.
const LOAD_RECOVERY: Duration = Duration::from_secs(30);

/// Broadcasts `{"round": round}` to every group not `done`; returns (accepted, refused).
async fn broadcast_round(
    layer: &RedisClusterPubSubLayer,
    groups: &[Group],
    done: &[bool],
    round: u64,
) -> (u64, u64) {
    let (mut accepted, mut refused) = (0, 0);
    for (i, (g, _)) in groups
        .iter()
        .zip(done)
        .filter(|(_, done)| !**done)
        .enumerate()
    {
        match layer.group_send(g, msg(json!({"round": round}))).await {
            Ok(()) => accepted += 1,
            Err(_) => refused += 1,
        }
        // A short pause every 1,000 sends, so that the burst measures the layer rather than
        // how fast an unoptimised test build drains its dispatch queue.
        if i % 1000 == 999 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    (accepted, refused)
}

/// Takes everything waiting in the inboxes; marks a group done once it got a message of
/// `from_round` or later. Returns the number of messages taken.
fn drain(inboxes: &mut [Inbox], done: &mut [bool], from_round: u64) -> u64 {
    let mut taken = 0;
    for (inbox, done) in inboxes.iter_mut().zip(done.iter_mut()) {
        while let Some(m) = inbox.try_receive() {
            taken += 1;
            if m.get("round").and_then(serde_json::Value::as_u64) >= Some(from_round) {
                *done = true;
            }
        }
    }
    taken
}

/// A layer with ten thousand groups, each with a local member, through one `CLUSTER FAILOVER`
/// of the master serving the most of them: afterwards a broadcast to every group is delivered
/// or counted; prints the resubscribe commands it cost and the time until every group
/// delivered again.
async fn many_groups_through_a_failover(cluster: &mut RedisCluster) {
    let layer = Arc::new(
        RedisClusterPubSubLayer::new(
            ClusterPubSubSettings::new(cluster.seeds()).with_prefix("load"),
        )
        .unwrap(),
    );
    let started = Instant::now();
    let groups: Vec<Group> = (0..LOAD_GROUPS).map(|i| group(&format!("g{i}"))).collect();
    let mut inboxes = Vec::with_capacity(LOAD_GROUPS);
    for g in &groups {
        let inbox = layer.new_channel().await.unwrap();
        layer.group_add(g, inbox.name()).await.unwrap();
        inboxes.push(inbox);
    }
    let joined = started.elapsed();
    // Baseline: every group delivers (a group whose message was dropped and counted, say by
    // the dispatch queue overflowing under the burst, gets another one).
    let mut done = vec![false; LOAD_GROUPS];
    let deadline = Instant::now() + Duration::from_secs(20);
    while done.iter().any(|d| !d) {
        assert!(
            Instant::now() < deadline,
            "baseline broadcast not delivered: {:?}",
            layer.stats()
        );
        broadcast_round(&layer, &groups, &done, 0).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        drain(&mut inboxes, &mut done, 0);
    }
    eprintln!(
        "load: {LOAD_GROUPS} groups joined in {joined:?}, baseline broadcast to all delivered {:?} later",
        started.elapsed() - joined
    );

    // The master (with a replica, so it can fail over) serving the most groups.
    let nodes = cluster.nodes().await;
    let mut per_master: HashMap<String, (usize, u16)> = HashMap::new();
    for g in &groups {
        let slot = slot_of_channel(&layer.redis_channel_of_group(g));
        let owner = nodes
            .iter()
            .find(|n| n.master && !n.failed && n.owns(slot))
            .unwrap();
        per_master.entry(owner.id.clone()).or_insert((0, slot)).0 += 1;
    }
    let with_replica = |n: &&ClusterNode| {
        nodes
            .iter()
            .any(|r| !r.master && !r.failed && r.master_id.as_deref() == Some(n.id.as_str()))
    };
    let (victim_groups, victim_slot) = nodes
        .iter()
        .filter(|n| n.master && !n.failed)
        .filter(with_replica)
        .filter_map(|n| per_master.get(&n.id).copied())
        .max()
        .unwrap();

    let before = layer.stats();
    done.fill(false);
    let event = Instant::now();
    cluster.failover(victim_slot).await.unwrap();
    let switched = event.elapsed();
    // Rounds: broadcast to every group that has not delivered since the event (refused sends
    // are retried in the next round), then take what arrived.
    let (mut accepted, mut refused, mut received, mut rounds) = (0u64, 0u64, 0u64, 0u64);
    let mut first_round_refused = None;
    // When every partition was Up again after the failover took some Down.
    let (mut seen_down, mut up_again) = (false, None);
    while done.iter().any(|d| !d) {
        assert!(
            event.elapsed() < LOAD_RECOVERY,
            "{} of {LOAD_GROUPS} groups still not delivering {LOAD_RECOVERY:?} after the failover: {:?}",
            done.iter().filter(|d| !**d).count(),
            layer.stats()
        );
        rounds += 1;
        let (a, r) = broadcast_round(&layer, &groups, &done, rounds).await;
        first_round_refused.get_or_insert(r);
        accepted += a;
        refused += r;
        tokio::time::sleep(Duration::from_millis(100)).await;
        received += drain(&mut inboxes, &mut done, 1);
        let up = layer.health().borrow().is_up();
        seen_down |= !up || r > 0;
        if seen_down && up && up_again.is_none() {
            up_again = Some(event.elapsed());
        }
    }
    let all_delivering = event.elapsed();
    // Let the last publishes land, then count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    received += drain(&mut inboxes, &mut done, 1);
    let after = layer.stats();
    let dropped = after.dropped_total() - before.dropped_total();
    let resubscribes = after.resubscribes - before.resubscribes;
    eprintln!(
        "load: CLUSTER FAILOVER of the master serving {victim_groups} of {LOAD_GROUPS} groups (took {switched:?}): health Up again {up_again:?} and all groups delivering again {all_delivering:?} after it, in {rounds} round(s) of a broadcast to every group not delivering yet; {resubscribes} resubscribe command(s); broadcasts accepted {accepted}, refused {refused} ({} in the first round), received {received}, counted drops {dropped} ({} unheard, {} publish_failed, {} dispatch_overflow); outages +{}",
        first_round_refused.unwrap_or(0),
        after.dropped(DropReason::Unheard) - before.dropped(DropReason::Unheard),
        after.dropped(DropReason::PublishFailed) - before.dropped(DropReason::PublishFailed),
        after.dropped(DropReason::DispatchOverflow) - before.dropped(DropReason::DispatchOverflow),
        after.outages - before.outages,
    );
    assert!(received <= accepted, "duplicates: {after:?}");
    assert!(
        received + dropped >= accepted,
        "silent loss of {} broadcast(s): {after:?}",
        accepted - received - dropped
    );
    // One SSUBSCRIBE per partition of the failed-over master (plus retries), not one per
    // channel Redis unsubscribed (thousands here).
    let partitions = layer.targets().len() as u64;
    assert!(
        (1..=2 * partitions).contains(&resubscribes),
        "{resubscribes} resubscribe commands for one failover ({partitions} partitions)"
    );
    // Close before dropping the inboxes: the layer leaves every subscription at once instead
    // of one SUNSUBSCRIBE per dropped inbox.
    layer.close().await.unwrap();
    drop(inboxes);
    assert_eq!(layer.background_tasks(), 0);
}
