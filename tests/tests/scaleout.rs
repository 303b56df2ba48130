//! Two service processes sharing rooms on a Redis Cluster (3 masters + 3 replicas) and on a
//! Sentinel group (1 master + 1 replica + 3 sentinels), through failovers. Each topology is
//! started once and its scenarios run in order (each failover changes the topology the next
//! one starts from); the two topologies are two tests that take turns.
//!
//! A room has members on both processes; one member (on the first process) chats every 20 ms
//! while the topology fails over. Afterwards:
//! - chat reaches every member on both processes again within the bound of the layer tests
//!   (Cluster: 1 s after `CLUSTER FAILOVER`, 5 s after `kill -9` of the master; Sentinel: 1.5 s
//!   after `+switch-master` on a manual failover, 3 s after `kill -9`);
//! - `/healthz` of both processes went 503 and then 200 again;
//! - nothing was lost silently: a message that reached nobody was refused with an error frame to
//!   its sender or counted as dropped in the sender's `/metrics`, and messages that missed the
//!   members of one process only did so in a scenario where that process counted an outage
//!   (outages shorter than the `/healthz` polling cannot be placed in time, so the check is per
//!   scenario, not per message);
//! - join and leave notices still cross the processes.
//!
//! The measured gaps are printed (`cargo test -p room-chat-e2e --test scaleout -- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use room_chat_e2e::{http_get, joined, left, metric_sum, Client, Layer, TestServer};
use room_chat_layers::cluster::slot_of_tag;
use room_chat_layers::testing::cluster::RedisCluster;
use room_chat_layers::testing::command;
use room_chat_layers::testing::sentinel::{SentinelGroup, SWITCH_TIMEOUT};
use serde_json::Value;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

const ROOM: &str = "general";

/// How often the chatting member sends.
const SEND_EVERY: Duration = Duration::from_millis(20);

/// How often `/healthz` is read during a scenario.
const HEALTH_EVERY: Duration = Duration::from_millis(10);

/// The longest a scenario may take to recover at all (the bounds asserted are far tighter).
const RECOVERY_LIMIT: Duration = Duration::from_secs(20);

/// Chat text of message `n`.
fn text_of(n: u64) -> String {
    format!("n={n}")
}

/// The `n` of a chat frame, if `frame` is one of ours.
fn chat_number(frame: &Value) -> Option<u64> {
    if frame["action"] != "room_notification" {
        return None;
    }
    frame["payload"]["message"]
        .as_str()?
        .strip_prefix("💬 n=")?
        .parse()
        .ok()
}

/// The two processes and the room's members: the chatting one on `one` (its socket split so
/// it can send and read at once), one more on `one`, two on `two`.
struct Room {
    one: TestServer,
    two: TestServer,
    /// Listeners: (process index, client).
    members: Vec<(usize, Client)>,
    sender: Client,
}

impl Room {
    async fn new(url: &str) -> Self {
        let one = TestServer::start(Layer::PubSub(url.to_owned())).await;
        let two = TestServer::start(Layer::PubSub(url.to_owned())).await;
        for server in [&one, &two] {
            assert!(
                room_chat_e2e::eventually(Duration::from_secs(10), || async {
                    server.get("/healthz").await.0 == 200
                })
                .await,
                "/healthz is not 200 after start"
            );
        }
        // Join notices cross the processes in both directions.
        let mut sender = one.join_first(ROOM).await;
        let mut b1 = two.join(ROOM).await;
        assert_eq!(sender.recv_json().await, joined(ROOM));
        let mut a = one.join(ROOM).await;
        assert_eq!(sender.recv_json().await, joined(ROOM));
        assert_eq!(b1.recv_json().await, joined(ROOM));
        let b2 = two.join(ROOM).await;
        for c in [&mut sender, &mut a, &mut b1] {
            assert_eq!(c.recv_json().await, joined(ROOM));
        }
        Self {
            one,
            two,
            members: vec![(0, a), (1, b1), (1, b2)],
            sender,
        }
    }

    fn servers(&self) -> [&TestServer; 2] {
        [&self.one, &self.two]
    }

    /// Join and leave notices cross the processes: a newcomer on `two` is announced on `one`,
    /// and its leaving too.
    async fn notices_cross(&mut self, label: &str) {
        let newcomer = self.two.join(ROOM).await;
        for (_, c) in &mut self.members {
            assert_eq!(recv_notice(c).await, joined(ROOM), "{label}");
        }
        assert_eq!(recv_notice(&mut self.sender).await, joined(ROOM), "{label}");
        newcomer.close().await;
        for (_, c) in &mut self.members {
            assert_eq!(recv_notice(c).await, left(ROOM), "{label}");
        }
        assert_eq!(recv_notice(&mut self.sender).await, left(ROOM), "{label}");
    }
}

/// The next frame that is not one of the scenario's chat messages (late ones may still come).
async fn recv_notice(client: &mut Client) -> Value {
    loop {
        let frame = client.recv_json().await;
        if chat_number(&frame).is_none() {
            return frame;
        }
    }
}

/// What a `/metrics` scrape says about the chat layer: dropped messages (every reason),
/// outages and reconnects.
async fn layer_counts(addr: SocketAddr) -> (u64, u64, u64) {
    let (_, metrics) = http_get(addr, "/metrics").await;
    let count = |prefix: &str| {
        metric_sum(&metrics, prefix).unwrap_or_else(|| panic!("no {prefix} in /metrics"))
    };
    (
        count("room_chat_layer_messages_total{alias=\"chat\",event=\"dropped\""),
        count("room_chat_layer_outages_total{alias=\"chat\"}"),
        count("room_chat_layer_reconnects_total{alias=\"chat\"}"),
    )
}

/// `/healthz` status changes of one process, read every [`HEALTH_EVERY`] until `stop`.
fn watch_health(
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Vec<(Instant, u16)>> {
    tokio::spawn(async move {
        let mut changes: Vec<(Instant, u16)> = Vec::new();
        while !*stop.borrow() {
            let (status, _) = http_get(addr, "/healthz").await;
            if changes.last().map(|(_, s)| *s) != Some(status) {
                changes.push((Instant::now(), status));
            }
            tokio::select! {
                _ = tokio::time::sleep(HEALTH_EVERY) => {}
                _ = stop.changed() => {}
            }
        }
        changes
    })
}

/// Reads a member's frames until `stop`: when each chat message arrived.
fn listen(
    mut client: Client,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(Client, BTreeMap<u64, Instant>)> {
    tokio::spawn(async move {
        let mut got = BTreeMap::new();
        while !*stop.borrow_and_update() {
            if let Some(text) = client.try_recv_text(Duration::from_millis(50)).await {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if let Some(n) = chat_number(&frame) {
                    got.entry(n).or_insert_with(Instant::now);
                }
            }
        }
        (client, got)
    })
}

/// The bound a scenario's gap is held to, and from which moment it counts.
struct Bound {
    limit: Duration,
    /// What the gap is measured from (for the printout).
    from: &'static str,
    /// The layer's own share, from the end of the disturbance (the cluster having promoted the
    /// replica, after a crash or a `CLUSTER FAILOVER`). When Redis's promotion alone takes so long that `limit` leaves
    /// less than this, the gap is held to promotion + this instead (and the printout says so):
    /// the promotion time is the cluster's, not the service's.
    after_disturbance: Option<Duration>,
}

/// Runs `disturb` while the sender chats every 20 ms and every member listens; `disturb`
/// returns the moment the gap is measured from. Checks the gap, `/healthz` Down then Up on both
/// processes, and that nothing was lost silently. Returns the room for the next scenario.
async fn through<F, Fut>(label: &str, mut room: Room, bound: Bound, disturb: F) -> Room
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Instant>,
{
    let before: Vec<(u64, u64, u64)> = vec![
        layer_counts(room.one.addr()).await,
        layer_counts(room.two.addr()).await,
    ];
    let (stop_tx, stop) = watch::channel(false);
    // The listeners stop last, once the last messages had time to land.
    let (stop_listening_tx, stop_listening) = watch::channel(false);
    let health: Vec<_> = room
        .servers()
        .iter()
        .map(|s| watch_health(s.addr(), stop.clone()))
        .collect();
    let processes: Vec<usize> = room.members.iter().map(|(p, _)| *p).collect();
    let listeners: Vec<_> = room
        .members
        .drain(..)
        .map(|(_, c)| listen(c, stop_listening.clone()))
        .collect();
    // The sender: one half sends, the other reads its own copies and its error frames.
    let (mut sink, mut stream) = room.sender.into_inner().split();
    let sender_reader = {
        let mut stop = stop_listening.clone();
        tokio::spawn(async move {
            let (mut got, mut errors) = (BTreeMap::new(), 0u64);
            loop {
                let frame = tokio::select! {
                    frame = stream.next() => frame,
                    _ = stop.changed() => break,
                };
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        let frame: Value = serde_json::from_str(&text).unwrap();
                        if let Some(n) = chat_number(&frame) {
                            got.entry(n).or_insert_with(Instant::now);
                        } else if frame["action"] == "error" {
                            errors += 1;
                        }
                    }
                    Some(Ok(_)) => {}
                    other => panic!("the sender's connection ended: {other:?}"),
                }
            }
            (stream, got, errors)
        })
    };
    let (sent_tx, sent_rx) = watch::channel(Vec::<Instant>::new());
    let sending = {
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                n += 1;
                let frame =
                    serde_json::json!({"action": "room_chat", "payload": {"message": text_of(n)}});
                sink.send(Message::text(frame.to_string())).await.unwrap();
                sent_tx.send_modify(|sent| sent.push(Instant::now()));
                tokio::select! {
                    _ = tokio::time::sleep(SEND_EVERY) => {}
                    _ = stop.changed() => break,
                }
            }
            sink
        })
    };
    let started = Instant::now();
    let event = disturb().await;
    let disturbance = started.elapsed();
    let disturbed = Instant::now();
    let limit = match bound.after_disturbance {
        Some(share) => bound
            .limit
            .max(disturbed.saturating_duration_since(event) + share),
        None => bound.limit,
    };
    // Chat goes on for the whole bound after the event and until both processes are healthy
    // again, then a little longer; the records are judged afterwards.
    let first_after = {
        let sent = sent_rx.borrow();
        sent.iter()
            .position(|t| *t > event)
            .map_or(sent.len() as u64 + 1, |i| i as u64 + 1)
    };
    tokio::time::sleep_until((event + limit).into()).await;
    for server in [&room.one, &room.two] {
        assert!(
            room_chat_e2e::eventually(RECOVERY_LIMIT, || async {
                server.get("/healthz").await.0 == 200
            })
            .await,
            "{label}: /healthz never 200 again"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_tx.send(true).unwrap();
    let sink = sending.await.unwrap();
    // The last messages land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_listening_tx.send(true).unwrap();
    let mut records = Vec::new();
    let mut clients = Vec::new();
    for (listener, process) in listeners.into_iter().zip(&processes) {
        let (client, got) = listener.await.unwrap();
        records.push((*process, got));
        clients.push((*process, client));
    }
    let (stream, sender_got, errors) = sender_reader.await.unwrap();
    records.push((0, sender_got));
    let health: Vec<Vec<(Instant, u16)>> = {
        let mut all = Vec::new();
        for h in health {
            all.push(h.await.unwrap());
        }
        all
    };
    let sent = sent_rx.borrow().clone();
    let after: Vec<(u64, u64, u64)> = vec![
        layer_counts(room.one.addr()).await,
        layer_counts(room.two.addr()).await,
    ];

    // The gap: from the event until chat reaches everyone again for good: the first message
    // sent after the event, and after the last one that missed anybody, as its last member
    // received it.
    let total = sent.len() as u64;
    let everywhere = |n: u64| -> Option<Instant> {
        let arrivals: Option<Vec<Instant>> = records
            .iter()
            .map(|(_, got)| got.get(&n).copied())
            .collect();
        arrivals.map(|a| a.into_iter().max().unwrap())
    };
    let last_missed = (1..=total)
        .rev()
        .find(|n| everywhere(*n).is_none())
        .unwrap_or(0);
    let resumed = ((last_missed + 1).max(first_after)..=total).find_map(everywhere);
    let gap = resumed.map(|t| t.saturating_duration_since(event));
    // Losses, judged per message.
    let (mut nowhere, mut partial) = (0u64, [0u64; 2]);
    for n in 1..=total {
        let missed: Vec<usize> = records
            .iter()
            .filter(|(_, got)| !got.contains_key(&n))
            .map(|(p, _)| *p)
            .collect();
        if missed.len() == records.len() {
            nowhere += 1;
        } else {
            for p in [0, 1] {
                if missed.contains(&p) {
                    partial[p] += 1;
                }
            }
        }
    }
    let dropped = [after[0].0 - before[0].0, after[1].0 - before[1].0];
    let outages = [after[0].1 - before[0].1, after[1].1 - before[1].1];
    let reconnects = [after[0].2 - before[0].2, after[1].2 - before[1].2];
    let downs: Vec<String> = health
        .iter()
        .map(|changes| {
            let down = changes.iter().find(|(_, s)| *s == 503).map(|(t, _)| *t);
            let up = down.and_then(|d| {
                changes
                    .iter()
                    .find(|(t, s)| *s == 200 && *t > d)
                    .map(|(t, _)| *t)
            });
            match (down, up) {
                (Some(d), Some(u)) => format!(
                    "503 {:?} after the event for {:?}",
                    d.saturating_duration_since(event),
                    u - d
                ),
                (Some(d), None) => format!(
                    "503 from {:?}, never 200 again",
                    d.saturating_duration_since(event)
                ),
                _ => "never 503".to_owned(),
            }
        })
        .collect();
    eprintln!(
        "{label}: disturbance took {disturbance:?}; chat reached every member of both processes {gap:?} after {} (bound {:?}); /healthz one: {}; two: {}; sent {total}, refused with an error frame {errors}, reached nobody {nowhere}, missed only on one {} / only on two {}; counted drops one {} two {}; outages one +{} two +{}, reconnects one +{} two +{}",
        bound.from,
        limit,
        downs[0],
        downs[1],
        partial[0],
        partial[1],
        dropped[0],
        dropped[1],
        outages[0],
        outages[1],
        reconnects[0],
        reconnects[1],
    );
    let gap = gap.unwrap_or_else(|| panic!("{label}: chat never reached every member again"));
    if limit > bound.limit {
        eprintln!(
            "{label}: Redis took {:?} to promote the replica, so the gap is held to that + {:?} instead of {:?}",
            disturbed.saturating_duration_since(event),
            bound.after_disturbance.unwrap_or_default(),
            bound.limit
        );
    }
    assert!(gap <= limit, "{label}: gap {gap:?} over {limit:?}");
    // Down then Up: seen on /healthz, or, for an outage shorter than the polling interval
    // (a Sentinel switch is followed within milliseconds), in the counters behind it.
    for (i, changes) in health.iter().enumerate() {
        let statuses: Vec<u16> = changes.iter().map(|(_, s)| *s).collect();
        assert!(
            statuses.windows(2).any(|w| w == [503, 200])
                || (outages[i] > 0 && reconnects[i] > 0 && statuses.last() == Some(&200)),
            "{label}: process {} did not go Down then Up: /healthz {statuses:?}, outages +{}, reconnects +{}",
            i + 1,
            outages[i],
            reconnects[i]
        );
    }
    // Never silent: a message nobody got was refused or counted by its sender's process;
    // messages that missed a process's members did so in a scenario where that process counted
    // an outage.
    assert!(
        nowhere <= errors + dropped[0],
        "{label}: {nowhere} message(s) reached nobody, {errors} refused, {} counted",
        dropped[0]
    );
    for p in [0, 1] {
        assert!(
            partial[p] == 0 || outages[p] > 0,
            "{label}: {} message(s) silently missed process {}'s members",
            partial[p],
            p + 1
        );
    }
    room.sender = Client::from_stream(sink.reunite(stream).unwrap());
    room.members = clients;
    room
}

/// The two topologies take turns: their failover times are Redis's own (detection, election,
/// promotion), and two of them failing over at once on two cores stretched those past the
/// bounds asserted here.
static ONE_TOPOLOGY_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Logs to the test output when `RUST_LOG` asks for them (`RUST_LOG=room_chat_layers=debug`).
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// The hash slot of the room's group channel: found on the cluster itself, on whichever master
/// holds a shard channel naming the room.
async fn room_slot(cluster: &RedisCluster) -> u16 {
    for node in cluster.nodes().await.into_iter().filter(|n| n.master) {
        let Ok(redis::Value::Array(channels)) =
            command(node.port, &["PUBSUB", "SHARDCHANNELS", "*__group__*"]).await
        else {
            continue;
        };
        for channel in channels {
            let channel: String = redis::from_redis_value(channel).unwrap();
            if channel.contains(ROOM) {
                let tag = channel.trim_start_matches('{').split('}').next().unwrap();
                return slot_of_tag(tag);
            }
        }
    }
    panic!("no shard channel names the room");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_room_through_cluster_failovers() {
    init_tracing();
    let _alone = ONE_TOPOLOGY_AT_A_TIME.lock().await;
    let began = Instant::now();
    let mut cluster = RedisCluster::start().await.unwrap();
    let mut room = Room::new(&cluster.url()).await;
    let slot = room_slot(&cluster).await;
    let owner = cluster.owner(slot).await.unwrap();
    eprintln!(
        "cluster: ready in {:?}; the room's slot {slot} on port {}",
        began.elapsed(),
        owner.port
    );

    let cluster_ref = &cluster;
    let mut demoted = None;
    room = through(
        "cluster CLUSTER FAILOVER",
        room,
        Bound {
            limit: Duration::from_secs(1),
            from: "CLUSTER FAILOVER",
            // The promotion itself takes about a second on a busy machine (1.03 s seen).
            after_disturbance: Some(Duration::from_millis(500)),
        },
        || async {
            let at = Instant::now();
            demoted = Some(cluster_ref.failover(slot).await.unwrap().0);
            at
        },
    )
    .await;
    room.notices_cross("after CLUSTER FAILOVER").await;
    cluster.settle(&demoted.unwrap()).await.unwrap();

    let victim = cluster.owner(slot).await.unwrap();
    let cluster_ref = &mut cluster;
    room = through(
        "cluster kill -9 of the master",
        room,
        Bound {
            limit: Duration::from_secs(5),
            from: "the kill",
            after_disturbance: Some(Duration::from_secs(1)),
        },
        || async move {
            let at = Instant::now();
            cluster_ref.kill(victim.port).unwrap();
            cluster_ref.wait_owner_changed(slot, &victim).await.unwrap();
            at
        },
    )
    .await;
    room.notices_cross("after kill -9").await;
    eprintln!("cluster scenarios took {:?}", began.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_room_through_sentinel_failovers() {
    init_tracing();
    let _alone = ONE_TOPOLOGY_AT_A_TIME.lock().await;
    let began = Instant::now();
    let mut group = SentinelGroup::start().await.unwrap();
    let mut room = Room::new(&group.url()).await;
    eprintln!("sentinel: ready in {:?}", began.elapsed());

    let group_ref = &group;
    room = through(
        "Sentinel manual failover",
        room,
        Bound {
            limit: Duration::from_millis(1500),
            from: "+switch-master",
            after_disturbance: None,
        },
        || async {
            let announced = group_ref.switch_announced(1).await.unwrap();
            group_ref.failover().await.unwrap();
            tokio::time::timeout(SWITCH_TIMEOUT, announced)
                .await
                .unwrap()
                .unwrap()
                .unwrap()
        },
    )
    .await;
    room.notices_cross("after the manual failover").await;
    // The demoted master resyncs as a replica and the sentinels see it.
    group.wait_ready_for_next_failover().await.unwrap();

    let victim = group.master_port().await.unwrap();
    let group_ref = &mut group;
    room = through(
        "Sentinel kill -9 of the master",
        room,
        Bound {
            limit: Duration::from_secs(3),
            from: "the kill",
            after_disturbance: None,
        },
        || async move {
            let at = Instant::now();
            group_ref.kill_server(victim).unwrap();
            at
        },
    )
    .await;
    room.notices_cross("after kill -9").await;
    eprintln!("sentinel scenarios took {:?}", began.elapsed());
}
