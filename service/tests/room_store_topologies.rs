//! The Redis room store on a Redis Cluster (3 masters + 3 replicas) and on a Sentinel group
//! (1 master + 1 replica + 3 sentinels), each a real topology the test owns, as two processes
//! would use it: offsets never repeat across rooms spread over the cluster's slots, history
//! written through one store is read through the other, the presence heartbeat keeps members of
//! rooms on different slots alive (a cross-slot pipeline would fail there), a crashed store's
//! members leave, and a failover keeps the history and its offsets going.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use room_chat::rooms::{now_ms, MemberEntry, RedisStore, Retention, RoomStore, Stamp};
use room_chat_e2e::room_key;
use room_chat_layers::cluster::slot_of_tag;
use room_chat_layers::hosts::ConnectionSettings;
use room_chat_layers::testing::cluster::RedisCluster;
use room_chat_layers::testing::command;
use room_chat_layers::testing::sentinel::SentinelGroup;

const EXPIRY: Duration = Duration::from_millis(1500);

fn store(url: &str) -> Arc<RedisStore> {
    let retention = Retention {
        size: 100,
        max_age: Duration::from_secs(3600),
    };
    let connection = ConnectionSettings {
        command_timeout: Duration::from_secs(1),
        ..ConnectionSettings::default()
    };
    Arc::new(RedisStore::new(url, &connection, retention, EXPIRY).unwrap())
}

fn member(id: &str) -> MemberEntry {
    MemberEntry {
        id: id.to_owned(),
        name: Some(id.to_owned()),
        joined_at_ms: now_ms(),
    }
}

/// The slot of a room's keys (they share the hash tag: the hex of the room's name).
fn slot_of_room(room: &str) -> u16 {
    slot_of_tag(&hex::encode(room.as_bytes()))
}

/// Appends until the store answers again (after a failover it fails fast for a moment).
async fn append_eventually(store: &RedisStore, room: &str, text: &str, within: Duration) -> Stamp {
    let deadline = Instant::now() + within;
    loop {
        match store.append(room, text, None).await {
            Ok(stamp) => return stamp,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no append within {within:?}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_rooms_spread_over_slots_and_survive_a_failover() {
    let cluster = RedisCluster::start().await.unwrap();
    let (one, two) = (store(&cluster.url()), store(&cluster.url()));
    let rooms: Vec<String> = (0..20).map(|i| format!("room {i}")).collect();
    let mut owners = BTreeSet::new();
    for room in &rooms {
        owners.insert(cluster.owner(slot_of_room(room)).await.unwrap().port);
    }
    assert_eq!(owners.len(), 3, "the rooms live on every master");

    // Both stores append to every room at once: each room's offsets are 1..=50, once each.
    let mut tasks = Vec::new();
    for (who, s) in [("one", one.clone()), ("two", two.clone())] {
        let rooms = rooms.clone();
        tasks.push(tokio::spawn(async move {
            let mut stamps = Vec::new();
            for n in 0..25 {
                for room in &rooms {
                    let text = format!("💬 {who} {n}");
                    let stamp = s.append(room, &text, Some(who)).await.unwrap();
                    stamps.push((room.clone(), stamp, text));
                }
            }
            stamps
        }));
    }
    let mut by_room: BTreeMap<String, BTreeMap<u64, String>> = BTreeMap::new();
    for task in tasks {
        for (room, stamp, text) in task.await.unwrap() {
            let previous = by_room.entry(room).or_default().insert(stamp.offset, text);
            assert!(previous.is_none(), "offset {} given twice", stamp.offset);
        }
    }
    for (room, offsets) in &by_room {
        assert_eq!(
            offsets.keys().copied().collect::<Vec<_>>(),
            (1..=50).collect::<Vec<_>>(),
            "{room}"
        );
        // Written through both, read through the other: the same messages in offset order.
        let history = one.history(room, None, 100).await.unwrap();
        let read: Vec<&str> = history
            .messages
            .iter()
            .map(|m| m.message.as_str())
            .collect();
        assert_eq!(
            read,
            offsets.values().map(String::as_str).collect::<Vec<_>>(),
            "{room}"
        );
        assert!(history.complete);
    }

    // Presence over every slot: members joined through one are listed through the other,
    // and stay listed past the expiry because the heartbeat renews them on each slot.
    for room in &rooms {
        one.join(room, &member(&format!("ada in {room}")))
            .await
            .unwrap();
        two.join(room, &member(&format!("bob in {room}")))
            .await
            .unwrap();
    }
    tokio::time::sleep(EXPIRY * 2).await;
    for room in &rooms {
        assert_eq!(two.presence(room, 10).await.unwrap().count, 2, "{room}");
    }
    // A store that goes away without leaving (its process crashed): its members leave every
    // room within the expiry; the other's stay.
    drop(one);
    tokio::time::sleep(EXPIRY + Duration::from_millis(500)).await;
    for room in &rooms {
        let presence = two.presence(room, 10).await.unwrap();
        let names: Vec<_> = presence.members.iter().map(|m| m.id.clone()).collect();
        assert_eq!(names, [format!("bob in {room}")], "{room}");
    }

    // A manual failover of one room's master: the history is still there (the replica had
    // it), in the same epoch, and the next message takes the next offset.
    let room = &rooms[0];
    let before = two.history(room, None, 100).await.unwrap();
    let began = Instant::now();
    cluster.failover(slot_of_room(room)).await.unwrap();
    let stamp = append_eventually(&two, room, "💬 after", Duration::from_secs(5)).await;
    eprintln!(
        "cluster failover: the store appended again {:?} after it began",
        began.elapsed()
    );
    assert_eq!(
        (stamp.offset, stamp.epoch.as_str()),
        (51, before.epoch.as_str())
    );
    let after = two.history(room, Some(50), 100).await.unwrap();
    assert_eq!(after.messages.len(), 1);
    assert!(after.complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_sentinel_group_the_store_follows_a_failover() {
    let group = SentinelGroup::start().await.unwrap();
    let (one, two) = (store(&group.url()), store(&group.url()));
    let mut last = None;
    for n in 1..=10 {
        let s = if n % 2 == 0 { &one } else { &two };
        last = Some(s.append("lobby", &format!("💬 {n}"), None).await.unwrap());
    }
    let last = last.unwrap();
    assert_eq!(last.offset, 10);
    one.join("lobby", &member("ada")).await.unwrap();

    let old_master = group.master_port().await.unwrap();
    let announced = group.switch_announced(0).await.unwrap();
    let began = Instant::now();
    group.failover().await.unwrap();
    // The old master stays a writable master for a while after the promotion (about 10 s,
    // until Sentinel converts it), so a write this process sends there before it hears of the
    // switch is lost with it (the README says so). The stores follow `+switch-master`; half a
    // second after the announcement both write to the new master: the next offsets follow on,
    // in the same epoch, and land there.
    let switched = announced.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = append_eventually(&one, "lobby", "💬 11", Duration::from_secs(10)).await;
    let b = append_eventually(&two, "lobby", "💬 12", Duration::from_secs(10)).await;
    eprintln!(
        "sentinel failover: announced after {:?}, both stores appending again after {:?}",
        switched - began,
        began.elapsed()
    );
    let new_master = group.master_port().await.unwrap();
    assert_ne!(new_master, old_master);
    let meta = room_key("lobby", "meta");
    let seq = command(new_master, &["HGET", &meta, "seq"]).await.unwrap();
    assert_eq!(
        redis::from_redis_value::<u64>(seq).unwrap(),
        12,
        "written on the new master"
    );
    assert_eq!((a.offset, b.offset), (11, 12));
    assert_eq!(
        (a.epoch.as_str(), b.epoch.as_str()),
        (last.epoch.as_str(), last.epoch.as_str())
    );
    let history = two.history("lobby", None, 100).await.unwrap();
    let offsets: Vec<u64> = history.messages.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, (1..=12).collect::<Vec<_>>());
    // Presence went along (replicated) and is renewed on the new master.
    tokio::time::sleep(EXPIRY * 2).await;
    assert_eq!(two.presence("lobby", 10).await.unwrap().count, 1);
}
