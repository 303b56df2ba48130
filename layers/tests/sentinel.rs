//! Redis Sentinel, on a real topology the test owns (`testing::sentinel::SentinelGroup`): one
//! master, one replica and three sentinels (`redis-server --sentinel`, no other package), on
//! free ports, started once and shared by every scenario, which run in order against it (each
//! failover changes the topology the next one starts from).
//!
//! Scenarios, for both Redis layers at once (a pub/sub layer and a queue layer whose only ring
//! member is the Sentinel entry):
//! 1. a manual `SENTINEL FAILOVER` is followed: delivery resumes on the new master within
//!    1.5 s of Sentinel announcing it (`+switch-master`);
//! 2. a `kill -9` of the master is followed: delivery resumes within 3 s of the kill;
//! 3. the killed master, restarted at once on its port (an empty standalone master until
//!    Sentinel converts it), is never used: nothing of ours appears on it, and a layer built
//!    in that window talks to the real master;
//! 4. before and after the failovers, a Python `fast-channels` 1.1.0 process given the same
//!    Sentinel host entry exchanges group messages with us both ways, on both layers.
//!
//! The measured times are printed (`cargo test --test sentinel -- --nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use room_chat_layers::pubsub::{PubSubSettings, RedisPubSubLayer};
use room_chat_layers::queue::{QueueSettings, RedisQueueLayer};
use room_chat_layers::testing::command;
use room_chat_layers::testing::sentinel::{SentinelGroup, SWITCH_TIMEOUT};
use room_chat_layers::{ChannelLayer, Inbox};
use serde_json::json;
use support::{group, init_tracing, msg};

/// The two layers under test and one member of "room" on each.
struct Pair {
    pubsub: Arc<dyn ChannelLayer>,
    queue: Arc<dyn ChannelLayer>,
    pubsub_inbox: Inbox,
    queue_inbox: Inbox,
}

impl Pair {
    async fn new(url: &str) -> Self {
        let pubsub: Arc<dyn ChannelLayer> = Arc::new(
            RedisPubSubLayer::new(PubSubSettings::new(vec![url.to_owned()]).with_prefix("chat"))
                .unwrap(),
        );
        let queue: Arc<dyn ChannelLayer> = Arc::new(
            RedisQueueLayer::new(QueueSettings::new(vec![url.to_owned()]).with_prefix("queue"))
                .unwrap(),
        );
        let pubsub_inbox = pubsub.new_channel().await.unwrap();
        pubsub
            .group_add(&group("room"), pubsub_inbox.name())
            .await
            .unwrap();
        let queue_inbox = queue.new_channel().await.unwrap();
        queue
            .group_add(&group("room"), queue_inbox.name())
            .await
            .unwrap();
        Self {
            pubsub,
            queue,
            pubsub_inbox,
            queue_inbox,
        }
    }

    /// Broadcasts on both layers until each has delivered one broadcast sent after `since`
    /// (sends refused during the failover are retried), and returns when both had.
    async fn delivering(&mut self, label: &str, budget: Duration) -> Duration {
        let started = Instant::now();
        let mut done = [false, false];
        let mut n = 0u64;
        while done != [true, true] {
            assert!(
                started.elapsed() < budget,
                "{label}: delivery did not resume within {budget:?} (pubsub {}, queue {}); stats {:?} / {:?}",
                done[0],
                done[1],
                self.pubsub.stats(),
                self.queue.stats(),
            );
            n += 1;
            let m = json!({"label": label, "n": n});
            for (i, (layer, inbox)) in [
                (&self.pubsub, &mut self.pubsub_inbox),
                (&self.queue, &mut self.queue_inbox),
            ]
            .into_iter()
            .enumerate()
            {
                if done[i] {
                    continue;
                }
                let _ = tokio::time::timeout(
                    Duration::from_millis(200),
                    layer.group_send(&group("room"), msg(m.clone())),
                )
                .await;
                // Take whatever arrived; one of this label means the path works again.
                while let Ok(Ok(got)) =
                    tokio::time::timeout(Duration::from_millis(20), inbox.receive()).await
                {
                    if got.get("label") == Some(&json!(label)) {
                        done[i] = true;
                    }
                }
            }
        }
        started.elapsed()
    }

    async fn close(self) {
        drop(self.pubsub_inbox);
        drop(self.queue_inbox);
        self.pubsub.close().await.unwrap();
        self.queue.close().await.unwrap();
    }
}

/// A Python fast-channels 1.1.0 process with the same Sentinel host entry exchanges group
/// messages with our layers, both ways, on both layers.
async fn python_exchange(url: &str, pair: &mut Pair, label: &str) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let python = tokio::task::spawn_blocking(support::python).await.unwrap();
    for (kind, prefix) in [("pubsub", "chat"), ("queue", "queue")] {
        let (layer, inbox) = match kind {
            "pubsub" => (&pair.pubsub, &mut pair.pubsub_inbox),
            _ => (&pair.queue, &mut pair.queue_inbox),
        };
        // Rust to Python.
        let mut child = tokio::process::Command::new(&python)
            .arg(support::INTEROP_SCRIPT)
            .args([kind, url, prefix, "receive", "pyroom", "1"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("python answers")
            .unwrap()
            .expect("a READY line");
        assert!(ready.starts_with("READY "), "{ready}");
        let sent = json!({"from": "rust", "label": label});
        layer
            .group_send(&group("pyroom"), msg(sent.clone()))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("python receives")
            .unwrap()
            .expect("a GOT line");
        let got: serde_json::Value =
            serde_json::from_str(got.strip_prefix("GOT ").expect("GOT line")).unwrap();
        assert_eq!(got, sent, "{kind}: Rust to Python ({label})");
        assert!(child.wait().await.unwrap().success());
        // Python to Rust.
        let from_python = json!({"from": "python", "label": label});
        let output = tokio::process::Command::new(&python)
            .arg(support::INTEROP_SCRIPT)
            .args([
                kind,
                url,
                prefix,
                "group_send",
                "room",
                &from_python.to_string(),
            ])
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(
                Instant::now() < deadline,
                "{kind}: Python to Rust ({label}) never arrived"
            );
            let m = support::recv(inbox).await;
            if m.get("from") == Some(&json!("python")) && m.get("label") == Some(&json!(label)) {
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failovers_are_followed() {
    init_tracing();
    let began = Instant::now();
    let mut topology = SentinelGroup::start().await.unwrap();
    eprintln!("Sentinel group ready in {:?}", began.elapsed());
    let url = topology.url();
    let mut pair = Pair::new(&url).await;
    pair.delivering("baseline", Duration::from_secs(5)).await;
    python_exchange(&url, &mut pair, "before failovers").await;

    // 1. Manual failover.
    let old_master = topology.master_port().await.unwrap();
    let announced = topology.switch_announced(1).await.unwrap();
    let asked = Instant::now();
    topology.failover().await.unwrap();
    let switched = tokio::time::timeout(SWITCH_TIMEOUT, announced)
        .await
        .expect("+switch-master announced")
        .unwrap()
        .unwrap();
    let resumed = pair.delivering("manual", Duration::from_secs(5)).await;
    let after_switch = (switched + resumed).saturating_duration_since(switched);
    let total = asked.elapsed();
    eprintln!(
        "manual failover: +switch-master {:?} after SENTINEL FAILOVER; delivery resumed {:?} after it ({total:?} in all)",
        switched - asked,
        after_switch
    );
    assert!(
        after_switch <= Duration::from_millis(1500),
        "{after_switch:?}"
    );
    let new_master = topology.master_port().await.unwrap();
    assert_ne!(new_master, old_master);

    // Let the demoted master resync and the sentinels see it as a replica, so a second
    // failover is possible.
    topology.wait_ready_for_next_failover().await.unwrap();

    // 2. kill -9 of the master, 3. restarted at once on its port once Sentinel switched.
    let victim = topology.master_port().await.unwrap();
    let announced = topology.switch_announced(2).await.unwrap();
    let killed = Instant::now();
    topology.kill_server(victim).unwrap();
    let delivery = pair.delivering("crash", Duration::from_secs(10)).await;
    eprintln!("kill -9 of the master: delivery resumed {delivery:?} after the kill");
    let switched = tokio::time::timeout(SWITCH_TIMEOUT, announced)
        .await
        .expect("+switch-master announced")
        .unwrap()
        .unwrap();
    eprintln!(
        "  (+switch-master came {:?} after the kill)",
        switched - killed
    );
    assert!(delivery <= Duration::from_secs(3), "{delivery:?}");
    // The old master comes back empty, as a standalone master, on its port.
    topology.restart_server(victim).unwrap();
    let restarted = Instant::now();
    // A layer built now, and the running ones, must use the real master.
    let mut fresh = Pair::new(&url).await;
    fresh.delivering("fresh", Duration::from_secs(5)).await;
    pair.delivering("after-restart", Duration::from_secs(5))
        .await;
    // While it may still claim to be master, nothing of ours is on it.
    let role = command(victim, &["ROLE"]).await;
    eprintln!(
        "restarted old master after {:?}: ROLE {role:?}",
        restarted.elapsed()
    );
    // Both must answer: a server that does not would hold nothing and prove nothing.
    let keys = command(victim, &["KEYS", "*"]).await.unwrap();
    let channels = command(victim, &["PUBSUB", "CHANNELS"]).await.unwrap();
    for reply in [&keys, &channels] {
        let text = format!("{reply:?}");
        assert!(
            !text.contains("chat") && !text.contains("queue"),
            "the restarted old master was used: {text}"
        );
    }
    python_exchange(&url, &mut pair, "after failovers").await;
    let stats = pair.pubsub.stats();
    assert!(stats.outages >= 2 && stats.reconnects >= 2, "{stats:?}");
    fresh.close().await;
    pair.close().await;
    drop(topology);
}
