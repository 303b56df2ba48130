//! The Redis room store on a real Redis, as two processes would use it: offsets never repeat
//! under concurrent appends, the trimmed history says it is incomplete, a flush starts a new
//! epoch, and a store dropped without leaving (a crashed process) loses its members within the
//! expiry.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use room_chat::rooms::{now_ms, MemberEntry, RedisStore, Retention, RoomStore};
use room_chat_e2e::RedisServer;
use room_chat_layers::hosts::ConnectionSettings;

fn store(url: &str, size: usize, expiry: Duration) -> Arc<RedisStore> {
    let retention = Retention {
        size,
        max_age: Duration::from_secs(3600),
    };
    let connection = ConnectionSettings {
        command_timeout: Duration::from_secs(2),
        ..ConnectionSettings::default()
    };
    Arc::new(RedisStore::new(url, &connection, retention, expiry).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_share_one_sequence_and_a_flush_starts_a_new_epoch() {
    let redis = RedisServer::start().await.unwrap();
    let one = store(&redis.url(), 50, Duration::from_secs(30));
    let two = store(&redis.url(), 50, Duration::from_secs(30));
    let mut tasks = Vec::new();
    for (i, s) in [one.clone(), two.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut stamps = Vec::new();
            for n in 0..100 {
                stamps.push(s.append("r", &format!("💬 {i}-{n}"), None).await.unwrap());
            }
            stamps
        }));
    }
    let mut offsets = BTreeSet::new();
    let mut epochs = BTreeSet::new();
    for task in tasks {
        for stamp in task.await.unwrap() {
            assert!(
                offsets.insert(stamp.offset),
                "offset {} given twice",
                stamp.offset
            );
            epochs.insert(stamp.epoch);
        }
    }
    assert_eq!(offsets, (1..=200).collect());
    assert_eq!(epochs.len(), 1);
    // 50 kept: the newest, oldest first, and not the whole story.
    let history = two.history("r", None, 100).await.unwrap();
    let kept: Vec<u64> = history.messages.iter().map(|m| m.offset).collect();
    assert_eq!(kept, (151..=200).collect::<Vec<_>>());
    assert!(!history.complete);
    assert!(two.history("r", Some(190), 100).await.unwrap().complete);
    assert!(!two.history("r", Some(100), 100).await.unwrap().complete);

    redis.raw_command("FLUSHALL").await.unwrap();
    let after = one.history("r", Some(200), 100).await.unwrap();
    assert!(
        !epochs.contains(&after.epoch),
        "a new epoch after the flush"
    );
    let stamp = two.append("r", "💬 again", None).await.unwrap();
    assert_eq!((stamp.offset, stamp.epoch), (1, after.epoch));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_store_loses_its_members_within_the_expiry() {
    let redis = RedisServer::start().await.unwrap();
    let expiry = Duration::from_millis(900);
    let stays = store(&redis.url(), 10, expiry);
    let crashes = store(&redis.url(), 10, expiry);
    let member = |id: &str| MemberEntry {
        id: id.into(),
        name: Some(id.into()),
        joined_at_ms: now_ms(),
    };
    stays.join("r", &member("a")).await.unwrap();
    crashes.join("r", &member("b")).await.unwrap();
    tokio::time::sleep(expiry * 2).await;
    assert_eq!(
        stays.presence("r", 10).await.unwrap().count,
        2,
        "heartbeats keep both"
    );
    drop(crashes); // no leave: what a killed process leaves behind
    tokio::time::sleep(expiry + expiry / 2).await;
    let presence = stays.presence("r", 10).await.unwrap();
    assert_eq!(presence.count, 1);
    assert_eq!(presence.members[0].id, "a");
    // And a capped list still counts everyone.
    stays.join("r", &member("c")).await.unwrap();
    let capped = stays.presence("r", 1).await.unwrap();
    assert_eq!((capped.count, capped.members.len()), (2, 1));
    let counted = stays.presence("r", 0).await.unwrap();
    assert_eq!((counted.count, counted.members.len()), (2, 0));
}
