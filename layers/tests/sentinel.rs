//! Redis Sentinel, on a real topology the test owns: one master, one replica and three
//! sentinels (`redis-server --sentinel`, no other package), on free ports, started once and
//! shared by every scenario, which run in order against it (each failover changes the topology
//! the next one starts from).
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

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use room_chat_layers::pubsub::{PubSubSettings, RedisPubSubLayer};
use room_chat_layers::queue::{QueueSettings, RedisQueueLayer};
use room_chat_layers::{ChannelLayer, Inbox};
use serde_json::json;
use support::{group, init_tracing, msg};

const MASTER_NAME: &str = "mymaster";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One server process of the topology, killed on drop.
struct Process {
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Process {
    fn spawn(port: u16, args: Vec<String>) -> Self {
        let mut process = Self {
            port,
            args,
            child: None,
        };
        process.start();
        process
    }

    fn start(&mut self) {
        let program = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let child = Command::new(program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.child = Some(child);
    }

    /// `kill -9`.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// 1 master + 1 replica + 3 sentinels.
struct Topology {
    _dir: tempfile::TempDir,
    /// The two data servers; which one is master changes as the scenarios run.
    servers: Vec<Process>,
    sentinels: Vec<Process>,
}

fn server_args(port: u16, dir: &Path, replica_of: Option<u16>) -> Vec<String> {
    let dir = dir.join(format!("server-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.push(dir.display().to_string());
    if let Some(master) = replica_of {
        args.extend([
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            master.to_string(),
        ]);
    }
    args
}

impl Topology {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (master, replica) = (free_port(), free_port());
        let servers = vec![
            Process::spawn(master, server_args(master, dir.path(), None)),
            Process::spawn(replica, server_args(replica, dir.path(), Some(master))),
        ];
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let conf: PathBuf = dir.path().join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                     sentinel failover-timeout {MASTER_NAME} 2000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n",
                    dir.path().display()
                ),
            )
            .unwrap();
            sentinels.push(Process::spawn(
                port,
                vec![conf.display().to_string(), "--sentinel".to_owned()],
            ));
        }
        let topology = Self {
            _dir: dir,
            servers,
            sentinels,
        };
        topology.wait_ready().await;
        topology
    }

    /// The `REDIS_URL` entry naming all three sentinels.
    fn url(&self) -> String {
        let mut url = format!(
            "redis+sentinel://127.0.0.1:{}?sentinel_master_name={MASTER_NAME}",
            self.sentinels[0].port
        );
        for s in &self.sentinels[1..] {
            url.push_str(&format!("&addr=127.0.0.1:{}", s.port));
        }
        url
    }

    /// Ready when every sentinel agrees on the master, sees a quorum, and the master has a
    /// replica that is in sync and known to the sentinels (so a failover can happen).
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.ready().await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Sentinel topology never got ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn ready(&self) -> bool {
        let Some(master) = self.master_port().await else {
            return false;
        };
        for sentinel in &self.sentinels {
            let quorum = query(sentinel.port, &["SENTINEL", "CKQUORUM", MASTER_NAME]).await;
            if !matches!(
                quorum,
                Some(redis::Value::Okay) | Some(redis::Value::SimpleString(_))
            ) {
                return false;
            }
            let replicas = query(sentinel.port, &["SENTINEL", "REPLICAS", MASTER_NAME]).await;
            let text = format!("{replicas:?}");
            if !text.contains("slave") || text.contains("s_down") || text.contains("disconnected") {
                return false;
            }
        }
        replication_ok(master).await
    }

    /// The master port all three sentinels agree on.
    async fn master_port(&self) -> Option<u16> {
        let mut agreed = None;
        for sentinel in &self.sentinels {
            let reply = query(
                sentinel.port,
                &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME],
            )
            .await?;
            let port: u16 = match reply {
                redis::Value::Array(items) => {
                    redis::from_redis_value(items.get(1)?.clone()).ok()?
                }
                _ => return None,
            };
            if agreed.is_some_and(|p| p != port) {
                return None;
            }
            agreed = Some(port);
        }
        agreed
    }

    fn server(&mut self, port: u16) -> &mut Process {
        self.servers.iter_mut().find(|s| s.port == port).unwrap()
    }
}

async fn replication_ok(master: u16) -> bool {
    let Some(reply) = query(master, &["INFO", "replication"]).await else {
        return false;
    };
    let text: String = redis::from_redis_value(reply).unwrap_or_default();
    text.contains("role:master")
        && text.contains("connected_slaves:1")
        && text.contains("state=online")
}

/// One command on a fresh connection, `None` on any failure.
async fn query(port: u16, args: &[&str]) -> Option<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)));
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

/// Waits for `+switch-master` on a sentinel and returns when it came.
async fn switch_announced(sentinel: u16) -> tokio::task::JoinHandle<Instant> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{sentinel}/")).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("+switch-master").await.unwrap();
    tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut stream = pubsub.into_on_message();
        stream.next().await.unwrap();
        Instant::now()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failovers_are_followed() {
    init_tracing();
    let mut topology = Topology::start().await;
    let url = topology.url();
    let mut pair = Pair::new(&url).await;
    pair.delivering("baseline", Duration::from_secs(5)).await;
    python_exchange(&url, &mut pair, "before failovers").await;

    // 1. Manual failover.
    let old_master = topology.master_port().await.unwrap();
    let announced = switch_announced(topology.sentinels[1].port).await;
    let asked = Instant::now();
    let reply = query(
        topology.sentinels[0].port,
        &["SENTINEL", "FAILOVER", MASTER_NAME],
    )
    .await;
    assert!(reply.is_some(), "SENTINEL FAILOVER refused");
    let switched = tokio::time::timeout(Duration::from_secs(10), announced)
        .await
        .expect("+switch-master announced")
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
    // failover is possible (and past the failover-timeout spacing between two).
    tokio::time::sleep(Duration::from_secs(4)).await;
    topology.wait_ready().await;

    // 2. kill -9 of the master, 3. restarted at once on its port once Sentinel switched.
    let victim = topology.master_port().await.unwrap();
    let announced = switch_announced(topology.sentinels[2].port).await;
    let killed = Instant::now();
    topology.server(victim).kill();
    let delivery = pair.delivering("crash", Duration::from_secs(10)).await;
    eprintln!("kill -9 of the master: delivery resumed {delivery:?} after the kill");
    let switched = tokio::time::timeout(Duration::from_secs(10), announced)
        .await
        .expect("+switch-master announced")
        .unwrap();
    eprintln!(
        "  (+switch-master came {:?} after the kill)",
        switched - killed
    );
    assert!(delivery <= Duration::from_secs(3), "{delivery:?}");
    // The old master comes back empty, as a standalone master, on its port.
    topology.server(victim).start();
    let restarted = Instant::now();
    // A layer built now, and the running ones, must use the real master.
    let mut fresh = Pair::new(&url).await;
    fresh.delivering("fresh", Duration::from_secs(5)).await;
    pair.delivering("after-restart", Duration::from_secs(5))
        .await;
    // While it may still claim to be master, nothing of ours is on it.
    let role = query(victim, &["ROLE"]).await;
    eprintln!(
        "restarted old master after {:?}: ROLE {role:?}",
        restarted.elapsed()
    );
    let keys = query(victim, &["KEYS", "*"]).await;
    let channels = query(victim, &["PUBSUB", "CHANNELS"]).await;
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
