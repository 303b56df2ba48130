//! Redis Cluster, on a real cluster the test owns: 3 masters + 3 replicas on free ports
//! (`redis-server --cluster-enabled yes`, `redis-cli --cluster create`), started once and shared
//! by every scenario, which run in order against it (each one moves the slot the next starts
//! from).
//!
//! The layer under test both sends and receives in one group while a sender loop broadcasts
//! every 10 ms, so that every accepted broadcast must end up received or counted. Scenarios,
//! each against the node that holds the group's slot at that moment:
//! 1. slot migration (`CLUSTER SETSLOT … IMPORTING/MIGRATING`, then `… NODE` everywhere);
//! 2. `CLUSTER FAILOVER` on that node's replica;
//! 3. `kill -9` of the master holding the subscription (its replica is promoted).
//!
//! After each: health went Down then Up again, the outage is counted, delivery resumed (here and
//! in a second process), and every accepted broadcast was received or counted (no silent loss). Timings
//! are printed (`cargo test --test cluster -- --nocapture`). Then the registry's Cluster URL, and
//! the queue layer on the cluster (direct sends and broadcasts across two processes, single-slot
//! commands only, nothing left behind).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use room_chat_layers::cluster::{slot_of_tag, ClusterPubSubSettings, RedisClusterPubSubLayer};
use room_chat_layers::{ChannelLayer, DropReason, Inbox, LayerHealth};
use serde_json::json;
use support::{group, init_tracing, msg};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Node {
    port: u16,
    child: Option<Child>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Cluster {
    _dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
struct NodeInfo {
    id: String,
    port: u16,
    master: bool,
    failed: bool,
    master_id: String,
    slots: Vec<(u16, u16)>,
}

impl Cluster {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let program = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let (port, bus) = (free_port(), free_port());
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let child = Command::new(&program)
                .args([
                    "--port",
                    &port.to_string(),
                    "--cluster-port",
                    &bus.to_string(),
                ])
                .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                .args([
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(&node_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server runs");
            nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        for node in &nodes {
            wait_until(Duration::from_secs(10), || async {
                query(node.port, &["PING"]).await.is_some()
            })
            .await;
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Self { _dir: dir, nodes };
        cluster.wait_healthy().await;
        cluster
    }

    /// Every node says `cluster_state:ok` and there are three masters with a replica each.
    async fn wait_healthy(&self) {
        wait_until(Duration::from_secs(30), || async {
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                let info = text(query(node.port, &["CLUSTER", "INFO"]).await);
                if !info.contains("cluster_state:ok") {
                    return false;
                }
            }
            let nodes = self.topology().await;
            let masters = nodes
                .iter()
                .filter(|n| n.master && !n.failed && !n.slots.is_empty())
                .count();
            let replicas = nodes.iter().filter(|n| !n.master && !n.failed).count();
            masters == 3 && replicas >= 2
        })
        .await;
    }

    fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}/", n.port))
            .collect()
    }

    async fn topology(&self) -> Vec<NodeInfo> {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let listing = text(query(node.port, &["CLUSTER", "NODES"]).await);
            if listing.is_empty() {
                continue;
            }
            return listing
                .lines()
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split(' ').collect();
                    let port = fields
                        .get(1)?
                        .split('@')
                        .next()?
                        .rsplit(':')
                        .next()?
                        .parse()
                        .ok()?;
                    let flags = fields.get(2)?;
                    let slots = fields
                        .iter()
                        .skip(8)
                        .filter(|s| !s.starts_with('['))
                        .filter_map(|s| match s.split_once('-') {
                            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                            None => s.parse().ok().map(|x| (x, x)),
                        })
                        .collect();
                    Some(NodeInfo {
                        id: fields[0].to_owned(),
                        port,
                        master: flags.contains("master"),
                        failed: flags.contains("fail"),
                        master_id: fields.get(3)?.to_string(),
                        slots,
                    })
                })
                .collect();
        }
        Vec::new()
    }

    /// The live master that owns `slot` (none while a failed owner is not replaced yet).
    async fn try_owner(&self, slot: u16) -> Option<NodeInfo> {
        self.topology().await.into_iter().find(|n| {
            n.master && !n.failed && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
        })
    }

    async fn owner(&self, slot: u16) -> NodeInfo {
        self.try_owner(slot).await.expect("a master owns the slot")
    }

    fn node(&mut self, port: u16) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.port == port).unwrap()
    }
}

fn text(value: Option<redis::Value>) -> String {
    value
        .and_then(|v| redis::from_redis_value::<String>(v).ok())
        .unwrap_or_default()
}

async fn query(port: u16, args: &[&str]) -> Option<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(1000)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .ok()?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut conn).await.ok()
}

async fn wait_until<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn layer(cluster: &Cluster) -> Arc<RedisClusterPubSubLayer> {
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
    let mut cluster = Cluster::start().await;
    let layer = layer(&cluster);
    let peer = layer_peer(&cluster);
    let mut inbox = layer.new_channel().await.unwrap();
    layer.group_add(&group("room"), inbox.name()).await.unwrap();
    let mut peer_inbox = peer.new_channel().await.unwrap();
    peer.group_add(&group("room"), peer_inbox.name())
        .await
        .unwrap();
    let channel = layer.redis_channel_of_group(&group("room"));
    let tag = channel
        .trim_start_matches('{')
        .split('}')
        .next()
        .unwrap()
        .to_owned();
    let slot = slot_of_tag(&tag);
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
    let from = cluster.owner(slot).await;
    let to = cluster
        .topology()
        .await
        .into_iter()
        .find(|n| n.master && !n.failed && n.id != from.id && !n.slots.is_empty())
        .unwrap();
    let mut masters: Vec<NodeInfo> = cluster
        .topology()
        .await
        .into_iter()
        .filter(|n| n.master && !n.failed)
        .collect();
    masters.sort_by_key(|n| (n.id != to.id, n.id != from.id));
    let slot_text = slot.to_string();
    survive(
        "slot migration",
        &layer,
        &mut inbox,
        &mut peer_inbox,
        || async {
            query(
                to.port,
                &["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &from.id],
            )
            .await
            .unwrap();
            query(
                from.port,
                &["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &to.id],
            )
            .await
            .unwrap();
            // The new owner first, then the old one, then the rest (a node that already
            // learnt the move by gossip may refuse; the owner check below is what counts).
            for node in &masters {
                let _ = query(
                    node.port,
                    &["CLUSTER", "SETSLOT", &slot_text, "NODE", &to.id],
                )
                .await;
            }
            // A new config epoch for the new owner, so the move wins over any stale view.
            let _ = query(to.port, &["CLUSTER", "BUMPEPOCH"]).await;
        },
    )
    .await;
    assert_eq!(cluster.owner(slot).await.id, to.id);

    // 2. Manual failover of the new owner to its replica.
    let owner = cluster.owner(slot).await;
    let replica = cluster
        .topology()
        .await
        .into_iter()
        .find(|n| !n.master && n.master_id == owner.id)
        .expect("the owner has a replica");
    survive(
        "CLUSTER FAILOVER",
        &layer,
        &mut inbox,
        &mut peer_inbox,
        || async {
            query(replica.port, &["CLUSTER", "FAILOVER"]).await.unwrap();
            wait_until(Duration::from_secs(10), || async {
                cluster
                    .try_owner(slot)
                    .await
                    .is_some_and(|owner| owner.id == replica.id)
            })
            .await;
        },
    )
    .await;
    cluster.wait_healthy().await;
    // The demoted master must be a synced replica before its new master dies, and the masters
    // only vote again for a failover after twice the node timeout.
    let demoted = owner.port;
    wait_until(Duration::from_secs(20), || async {
        text(query(demoted, &["INFO", "replication"]).await).contains("master_link_status:up")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;

    // 3. kill -9 of the master holding the subscription.
    let victim = cluster.owner(slot).await;
    for node in cluster.topology().await {
        let channels = format!("{:?}", query(node.port, &["PUBSUB", "SHARDCHANNELS"]).await);
        eprintln!(
            "node {} master={} owner={}: holds our subscription: {}",
            node.port,
            node.master,
            node.id == victim.id,
            channels.contains("chat__group__room")
        );
    }
    let mut victim_child = cluster.node(victim.port).child.take().unwrap();
    let cluster_ref = &cluster;
    survive(
        "kill -9 of the master",
        &layer,
        &mut inbox,
        &mut peer_inbox,
        || async move {
            victim_child.kill().unwrap();
            victim_child.wait().unwrap();
            wait_until(Duration::from_secs(20), || async {
                cluster_ref
                    .try_owner(slot)
                    .await
                    .is_some_and(|owner| owner.id != victim.id)
            })
            .await;
        },
    )
    .await;

    // The registry runs the pub/sub aliases on the cluster from a redis+cluster:// URL, and
    // refuses the queue aliases there with a clear error.
    let live: Vec<u16> = cluster
        .nodes
        .iter()
        .filter(|n| n.child.is_some())
        .map(|n| n.port)
        .collect();
    let url = format!(
        "redis+cluster://127.0.0.1:{}?addr=127.0.0.1:{}",
        live[0], live[1]
    );
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
    q1.group_discard(&group("room"), a.name()).await.unwrap();
    drop((a, b));
    q1.flush().await.unwrap();
    one.close_all().await.unwrap();
    two.close_all().await.unwrap();
    for port in &live {
        let keys: Vec<String> = query(*port, &["KEYS", "queue*"])
            .await
            .and_then(|v| redis::from_redis_value(v).ok())
            .expect("KEYS answers");
        assert!(keys.is_empty(), "left behind on {port}: {keys:?}");
    }

    drop(inbox);
    drop(peer_inbox);
    layer.close().await.unwrap();
    peer.close().await.unwrap();
    assert_eq!(layer.background_tasks(), 0);
    // Nothing of ours stays subscribed anywhere.
    for port in &live {
        let channels: Vec<String> = query(*port, &["PUBSUB", "SHARDCHANNELS"])
            .await
            .and_then(|v| redis::from_redis_value(v).ok())
            .expect("PUBSUB answers");
        assert!(
            channels.is_empty(),
            "left subscribed on {port}: {channels:?}"
        );
    }
}

fn layer_peer(cluster: &Cluster) -> Arc<RedisClusterPubSubLayer> {
    layer(cluster)
}
