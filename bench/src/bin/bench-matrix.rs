//! The standard benchmark matrix behind `make bench`: the service on each channel layer next to
//! the reference server, measured in the same run, written up as a Markdown report with ratios.
//!
//! ```text
//! make bench                                   # builds, runs everything (~10 min on 2 cores)
//! target/release/bench-matrix --duration 2     # shorter cells
//! target/release/bench-matrix --only fixed     # only cells whose name contains "fixed"
//! target/release/bench-matrix --only cpu       # only the CPU-per-delivery cells (~2 min)
//! target/release/bench-matrix --service-arg=--foo   # an extra flag for every service process
//! ```
//!
//! It starts its own `redis-server` on a free port and a fresh server process per cell (so one
//! cell's teardown never weighs on the next, and memory figures start from a clean baseline),
//! runs the load generator in this process, and writes `target/bench/report.md`,
//! `target/bench/results.json` and one latency-percentile chart per room size
//! (`target/bench/latency-<members>.svg`). Server logs go to `target/bench/logs/`.
//!
//! First, the cost of a delivery: server CPU µs per delivered frame at a fixed 10,000
//! deliveries/s (10 rooms × 10 members, 1 room × 100), read from `/proc/<pid>/stat` over the
//! sending window only, with Redis's own CPU apart, next to the reference server's figure.
//! Then the cost of history: the same 10 × 10 cell with history on (the default) and off
//! (`HISTORY_SIZE=0`), on memory and on Redis pub/sub, alternated three times each.
//!
//! Matrix: layers memory (`CHAT_LAYER=chat`, no Redis), Redis pub/sub (`chat`), Redis queue
//! (`queue`), and two service processes on one Redis pub/sub; rooms of 10, 100 and 1,000
//! members; a fixed rate and saturation; 10,000 idle connections; 19,000 connections in one
//! process; connection churn.
//!
//! Scale-out: two service processes on a Redis Cluster of 3 masters + 3 replicas (started by
//! the matrix, `REDIS_URL=redis+cluster://…`, `chat` layer: sharded pub/sub) next to two
//! processes on one plain Redis, in the cost cells (the Cluster's own CPU summed over its six
//! nodes) and in the fan-out and churn cells (`--only cluster` runs just those).

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use room_chat_bench::client::{raise_open_files, Endpoints};
use room_chat_bench::{churn, fanout, idle, process};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

#[derive(Debug, Parser)]
#[command(
    name = "bench-matrix",
    about = "Runs the standard benchmark matrix and writes the report"
)]
struct Args {
    /// The service binary.
    #[arg(long, default_value = "target/release/room-chat")]
    service_bin: PathBuf,
    /// The reference server binary.
    #[arg(long, default_value = "target/release/reference-server")]
    reference_bin: PathBuf,
    /// `redis-server` to start.
    #[arg(long, default_value = "redis-server")]
    redis_server: String,
    /// Where the report goes.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Measured seconds per fan-out cell.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up seconds per fan-out cell.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Sending seconds per CPU-per-delivery cell. CPU time comes in 10 ms ticks: 10 s at
    /// 10,000 deliveries/s makes one tick 0.1 µs per delivery.
    #[arg(long, default_value_t = DEFAULT_COST_SECONDS)]
    cost_duration: f64,
    /// Idle connections held.
    #[arg(long, default_value_t = 10_000)]
    idle_connections: usize,
    /// Connections for the one-process capacity cell.
    #[arg(long, default_value_t = 19_000)]
    capacity_connections: usize,
    /// Only run cells whose name contains this (`cpu`, `saturation`, `fixed`, `idle`,
    /// `capacity`, `churn`, a room size such as `-100-`, or a layer such as `memory`).
    #[arg(long)]
    only: Option<String>,
    /// An extra command-line argument for every service process (not the reference server);
    /// repeat for several, e.g. `--service-arg=--outbound-queue --service-arg=256`. Two runs
    /// with and without a flag compare through their ratios to the same-run reference.
    #[arg(long = "service-arg", allow_hyphen_values = true)]
    service_args: Vec<String>,
}

/// A server setup under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Target {
    Reference,
    Memory,
    PubSub,
    Queue,
    PubSubTwo,
    /// Two service processes on a Redis Cluster (3 masters + 3 replicas).
    ClusterTwo,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Self::Reference => "reference",
            Self::Memory => "memory",
            Self::PubSub => "redis pub/sub",
            Self::Queue => "redis queue",
            Self::PubSubTwo => "pub/sub, 2 procs",
            Self::ClusterTwo => "cluster, 2 procs",
        }
    }
}

/// A room shape: rooms × members, senders per room, and the fixed rate in deliveries/s.
#[derive(Debug, Clone, Copy)]
struct Shape {
    rooms: usize,
    members: usize,
    senders: usize,
    fixed_deliveries_per_s: f64,
}

const SHAPES: [Shape; 3] = [
    Shape {
        rooms: 10,
        members: 10,
        senders: 2,
        fixed_deliveries_per_s: 20_000.0,
    },
    Shape {
        rooms: 1,
        members: 100,
        senders: 4,
        fixed_deliveries_per_s: 100_000.0,
    },
    Shape {
        rooms: 1,
        members: 1000,
        senders: 1,
        fixed_deliveries_per_s: 100_000.0,
    },
];

/// Sending seconds of a cost cell unless `--cost-duration` says otherwise (see there).
const DEFAULT_COST_SECONDS: f64 = 10.0;

/// The cost cells: server CPU per delivery at one fixed rate, in a room shape where the server's
/// work per message is mostly per-room (10 × 10) and one where it is mostly per-member (1 × 100).
/// In 10 × 10 at 10,000 deliveries/s the 20 senders share 1,000 messages/s.
const COST_SHAPES: [Shape; 2] = [
    Shape {
        rooms: 10,
        members: 10,
        senders: 2,
        fixed_deliveries_per_s: 10_000.0,
    },
    Shape {
        rooms: 1,
        members: 100,
        senders: 4,
        fixed_deliveries_per_s: 10_000.0,
    },
];

/// The setups the cost cells compare (two service processes would only add a second column of
/// the same work).
const COST_TARGETS: [Target; 4] = [
    Target::Reference,
    Target::Memory,
    Target::PubSub,
    Target::Queue,
];

/// How often the history cells alternate on and off (their report takes the median of each).
const HISTORY_ROUNDS: usize = 3;
/// The setups of the scale-out cost cells: two service processes on one plain Redis and on a
/// Redis Cluster, next to the one-process cells above and the same reference.
const SCALE_OUT_COST_TARGETS: [Target; 2] = [Target::PubSubTwo, Target::ClusterTwo];

/// Server processes of one cell, killed on drop.
struct Servers {
    children: Vec<Child>,
    urls: Vec<String>,
}

impl Servers {
    fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(Child::id).collect()
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_for_port(port: u16, child: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("server exited before listening: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("nothing listening on port {port} after 15 s")
}

struct Matrix {
    args: Args,
    redis_url: String,
    /// The shared `redis-server`, whose CPU the cost cells report apart from the service's.
    redis_pid: Option<u32>,
    logs: PathBuf,
    results: Vec<Value>,
    /// The Redis Cluster of the cluster cells, started by the first one that runs.
    cluster: Option<room_chat_layers::testing::cluster::RedisCluster>,
}

impl Matrix {
    /// Starts the Redis Cluster of the cluster cells unless it runs already.
    async fn ensure_cluster(&mut self, target: Target) -> anyhow::Result<()> {
        if target == Target::ClusterTwo && self.cluster.is_none() {
            let started = Instant::now();
            let cluster = room_chat_layers::testing::cluster::RedisCluster::start()
                .await
                .context("starting the Redis Cluster (redis-server and redis-cli)")?;
            eprintln!(
                "== Redis Cluster of 3 masters + 3 replicas ready in {:?}",
                started.elapsed()
            );
            self.cluster = Some(cluster);
        }
        Ok(())
    }

    /// The Redis processes behind `target`, whose CPU a cell reports apart from the service's:
    /// the shared server, every node of the cluster, or none (the in-memory layer).
    fn redis_pids(&self, target: Target) -> Vec<u32> {
        match (target, &self.cluster) {
            (Target::PubSub | Target::Queue | Target::PubSubTwo, _) => {
                self.redis_pid.into_iter().collect()
            }
            (Target::ClusterTwo, Some(cluster)) => cluster.pids(),
            _ => Vec::new(),
        }
    }

    /// Starts `target`'s processes for `cell` (and the Redis Cluster first, for a cluster
    /// cell); service processes get `env` on top of the usual variables (the history cells turn
    /// history off with it).
    async fn start(
        &mut self,
        target: Target,
        cell: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Servers> {
        self.ensure_cluster(target).await?;
        let processes = if matches!(target, Target::PubSubTwo | Target::ClusterTwo) {
            2
        } else {
            1
        };
        let mut servers = Servers {
            children: Vec::new(),
            urls: Vec::new(),
        };
        for index in 0..processes {
            let port = free_port()?;
            let log_path = self.logs.join(format!("{cell}-{index}.log"));
            let log = std::fs::File::create(&log_path)?;
            let mut command = match target {
                Target::Reference => {
                    let mut c = Command::new(&self.args.reference_bin);
                    c.arg("--port").arg(port.to_string());
                    c
                }
                _ => {
                    let mut c = Command::new(&self.args.service_bin);
                    c.arg("--port")
                        .arg(port.to_string())
                        .args(&self.args.service_args);
                    // No inbound rate limit: the cells measure the delivery path against a
                    // reference server that has none (the limit would only pace the senders).
                    c.env("RUST_LOG", "warn")
                        .env("MAX_CONNECTIONS", "20000")
                        .env("INBOUND_RATE", "0")
                        .env("MAX_ROOM_MEMBERS", "100000");
                    c.envs(env.iter().copied());
                    match target {
                        Target::Memory => {
                            c.env_remove("REDIS_URL").env("CHAT_LAYER", "chat");
                        }
                        Target::Queue => {
                            c.env("REDIS_URL", &self.redis_url)
                                .env("CHAT_LAYER", "queue");
                        }
                        Target::ClusterTwo => {
                            let url = self
                                .cluster
                                .as_ref()
                                .map(|cluster| cluster.url())
                                .context("the Redis Cluster is not running")?;
                            c.env("REDIS_URL", url).env("CHAT_LAYER", "chat");
                        }
                        _ => {
                            c.env("REDIS_URL", &self.redis_url)
                                .env("CHAT_LAYER", "chat");
                        }
                    }
                    c
                }
            };
            command
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true);
            let mut child = command
                .spawn()
                .with_context(|| format!("starting {}", target.label()))?;
            // A flag the service rejects (`--service-arg`) ends it here; its log says why.
            wait_for_port(port, &mut child).await.with_context(|| {
                format!(
                    "{} for {cell} (its output: {})",
                    target.label(),
                    log_path.display()
                )
            })?;
            servers.children.push(child);
            servers.urls.push(format!("ws://127.0.0.1:{port}"));
        }
        Ok(servers)
    }

    /// Server CPU per delivery at a fixed rate: the CPU time of the server (and, apart, of
    /// Redis) from right before the first send to right after the last one, divided by the
    /// deliveries made in between.
    async fn cost(&mut self, target: Target, shape: Shape) -> anyhow::Result<()> {
        self.cost_cell("cpu", target, shape, &[]).await
    }

    /// One history cell: [`Self::cost`]'s measurement of the 10 × 10 shape with history on or
    /// off, the `round`th time (rounds alternate on and off, so a drift in the machine's load
    /// weighs on both alike).
    async fn history_cost(&mut self, target: Target, on: bool, round: usize) -> anyhow::Result<()> {
        let (kind, env): (_, &[(&str, &str)]) = if on {
            ("on", &[])
        } else {
            ("off", &[("HISTORY_SIZE", "0")])
        };
        self.cost_cell(
            &format!("history-{kind}-{round}"),
            target,
            COST_SHAPES[0],
            env,
        )
        .await
    }

    async fn cost_cell(
        &mut self,
        kind: &str,
        target: Target,
        shape: Shape,
        env: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let cell = format!(
            "{kind}-{}x{}-{}",
            shape.rooms,
            shape.members,
            target.label().replace([' ', '/', ','], "_")
        );
        if !self.wanted(&cell) {
            return Ok(());
        }
        eprintln!("== {cell}");
        let servers = self.start(target, &cell, env).await?;
        let options = fanout::FanoutOptions {
            rooms: shape.rooms,
            members: shape.members,
            senders: shape.senders,
            rate: shape.fixed_deliveries_per_s / shape.members as f64,
            // The whole sending window is measured; the split only matters to the latency
            // figures, which the other cells report.
            duration: Duration::from_secs_f64(self.args.cost_duration),
            warmup: Duration::ZERO,
            cpu_watch: fanout::CpuWatch {
                server: servers.pids(),
                redis: self.redis_pids(target),
            },
            ..fanout::FanoutOptions::new(servers.urls.clone())
        };
        let report = fanout::run(&options).await;
        drop(servers);
        let value = match report {
            Ok(report) => {
                eprintln!(
                    "   {:.0} deliveries/s while sending, server {} µs/delivery, redis {} µs/delivery, lost {}",
                    report.sending.deliveries as f64 / report.sending.seconds,
                    report.sending.server_us_per_delivery.map_or("–".into(), |v| format!("{v:.2}")),
                    report.sending.redis_us_per_delivery.map_or("–".into(), |v| format!("{v:.2}")),
                    report.lost,
                );
                serde_json::to_value(&report)?
            }
            Err(e) => {
                eprintln!("   error: {e}");
                json!({ "error": e.to_string() })
            }
        };
        self.results.push(json!({
            "cell": cell, "kind": kind, "target": target.label(), "rooms": shape.rooms,
            "members": shape.members, "service_args": self.service_args_of(target), "report": value,
        }));
        Ok(())
    }

    /// The extra arguments `target`'s processes were started with.
    fn service_args_of(&self, target: Target) -> &[String] {
        if target == Target::Reference {
            &[]
        } else {
            &self.args.service_args
        }
    }

    fn wanted(&self, cell: &str) -> bool {
        self.args
            .only
            .as_deref()
            .is_none_or(|only| cell.contains(only))
    }

    async fn fanout(&mut self, kind: &str, target: Target, shape: Shape) -> anyhow::Result<()> {
        let cell = format!(
            "{kind}-{}-{}",
            shape.members,
            target.label().replace([' ', '/', ','], "_")
        );
        if !self.wanted(&cell) {
            return Ok(());
        }
        eprintln!("== {cell}");
        let servers = self.start(target, &cell, &[]).await?;
        let pids = servers.pids();
        let rate = if kind == "fixed" {
            shape.fixed_deliveries_per_s / shape.members as f64
        } else {
            0.0
        };
        let options = fanout::FanoutOptions {
            endpoints: Endpoints {
                urls: servers.urls.clone(),
                source_ips: 1,
            },
            rooms: shape.rooms,
            members: shape.members,
            senders: shape.senders,
            rate,
            window: 16,
            duration: Duration::from_secs_f64(self.args.duration),
            warmup: Duration::from_secs_f64(self.args.warmup),
            progress: true,
            ..fanout::FanoutOptions::new(servers.urls.clone())
        };
        let cpu_before = process::total_cpu_seconds(&pids).unwrap_or_default();
        let started = Instant::now();
        let report = fanout::run(&options).await;
        let wall = started.elapsed().as_secs_f64();
        let cpu = process::total_cpu_seconds(&pids).unwrap_or_default() - cpu_before;
        let rss = process::total_rss_kib(&pids).ok();
        let server_drops = if target == Target::Reference {
            None
        } else {
            Some(server_drops(&servers.urls).await)
        };
        drop(servers);
        let value = match report {
            Ok(report) => serde_json::to_value(&report)?,
            Err(e) => json!({ "error": e.to_string() }),
        };
        eprintln!("   {}", summary_line(&value));
        self.results.push(json!({
            "cell": cell, "kind": kind, "target": target.label(), "members": shape.members,
            "server_cpu_s": cpu, "wall_s": wall, "server_rss_kib": rss, "server_drops": server_drops,
            "service_args": self.service_args_of(target), "report": value,
        }));
        Ok(())
    }

    async fn idle(&mut self, kind: &str, target: Target, connections: usize) -> anyhow::Result<()> {
        let cell = format!("{kind}-{}", target.label().replace([' ', '/', ','], "_"));
        if !self.wanted(&cell) {
            return Ok(());
        }
        eprintln!("== {cell}");
        let servers = self.start(target, &cell, &[]).await?;
        let options = idle::IdleOptions {
            server_pids: servers.pids(),
            hold: Duration::from_secs(2),
            ..idle::IdleOptions::new(servers.urls.clone(), connections)
        };
        let report = idle::run(&options).await;
        drop(servers);
        let value = serde_json::to_value(&report)?;
        eprintln!(
            "   connected {} alive {} KiB/conn {:?}",
            report.connected, report.alive_after_hold, report.kib_per_connection
        );
        self.results
            .push(json!({ "cell": cell, "kind": kind, "target": target.label(), "report": value }));
        Ok(())
    }

    async fn churn(&mut self, target: Target) -> anyhow::Result<()> {
        let cell = format!("churn-{}", target.label().replace([' ', '/', ','], "_"));
        if !self.wanted(&cell) {
            return Ok(());
        }
        eprintln!("== {cell}");
        let servers = self.start(target, &cell, &[]).await?;
        let options = churn::ChurnOptions {
            duration: Duration::from_secs(3),
            ..churn::ChurnOptions::new(servers.urls.clone(), 300.0)
        };
        let value = match churn::run(&options).await {
            Ok(report) => serde_json::to_value(&report)?,
            Err(e) => json!({ "error": e.to_string() }),
        };
        drop(servers);
        self.results.push(
            json!({ "cell": cell, "kind": "churn", "target": target.label(), "report": value }),
        );
        Ok(())
    }
}

/// Messages the service itself says it dropped or refused (layer drops of every reason, slow
/// consumers closed), summed over its processes from `/metrics`: explains a loss figure.
async fn server_drops(urls: &[String]) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut total = 0;
    for url in urls {
        let Some(authority) = url.strip_prefix("ws://") else {
            continue;
        };
        let Ok(mut stream) = tokio::net::TcpStream::connect(authority).await else {
            continue;
        };
        let request =
            format!("GET /metrics HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        let mut body = String::new();
        if stream.write_all(request.as_bytes()).await.is_err()
            || stream.read_to_string(&mut body).await.is_err()
        {
            continue;
        }
        for line in body.lines() {
            let counted = (line.starts_with("room_chat_layer_messages_total{")
                && line.contains(r#"event="dropped""#))
                || (line.starts_with("room_chat_connections_closed_total{")
                    && line.contains("slow"));
            if counted {
                total += line
                    .rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0) as u64;
            }
        }
    }
    total
}

fn summary_line(value: &Value) -> String {
    if let Some(error) = value.get("error") {
        return format!("error: {error}");
    }
    format!(
        "{:.0} deliveries/s, p50 {} µs, p99 {} µs, lost {}, dup {}, inv {}, leaks {}, closed {}",
        value["deliveries_per_s"].as_f64().unwrap_or_default(),
        value["latency"]["p50_us"],
        value["latency"]["p99_us"],
        value["lost"],
        value["duplicates"],
        value["inversions"],
        value["leaks"],
        value["closed_by_server"],
    )
}

/// The 1-minute load average: other work on the machine skews every figure, so the report
/// says how busy it was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// A private `redis-server` on a free port, without persistence.
async fn start_redis(bin: &str, dir: &Path) -> anyhow::Result<(Child, String)> {
    let port = free_port()?;
    let mut child = Command::new(bin)
        .args(room_chat_layers::testing::server_args(port, dir))
        .args(["--maxclients", "10000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {bin}"))?;
    wait_for_port(port, &mut child).await?;
    Ok((child, format!("redis://127.0.0.1:{port}/")))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let limit = raise_open_files(65_536)?;
    if limit < 45_000 {
        eprintln!("warning: open-file limit {limit}; the capacity cell needs ~40,000 (run as root or raise `ulimit -n`)");
    }
    let logs = args.out.join("logs");
    std::fs::create_dir_all(&logs)?;
    let (redis, redis_url) = start_redis(&args.redis_server, &logs).await?;
    let began = Instant::now();
    let load_before = load_average();
    let mut matrix = Matrix {
        args,
        redis_url,
        redis_pid: redis.id(),
        logs,
        results: Vec::new(),
        cluster: None,
    };
    // First and quick: `--only cpu` runs just these. Each shape's reference cell runs next to
    // the layers it is compared with, so a change in the machine's load weighs on all alike.
    for shape in COST_SHAPES {
        for target in COST_TARGETS {
            matrix.cost(target, shape).await?;
        }
    }
    for shape in COST_SHAPES {
        for target in SCALE_OUT_COST_TARGETS {
            matrix.cost(target, shape).await?;
        }
    }
    for round in 0..HISTORY_ROUNDS {
        for target in [Target::Memory, Target::PubSub] {
            for on in [true, false] {
                matrix.history_cost(target, on, round).await?;
            }
        }
    }
    let targets = [
        Target::Reference,
        Target::Memory,
        Target::PubSub,
        Target::Queue,
        Target::PubSubTwo,
        Target::ClusterTwo,
    ];
    for shape in SHAPES {
        for kind in ["saturation", "fixed"] {
            for target in targets {
                matrix.fanout(kind, target, shape).await?;
            }
        }
    }
    let idle_connections = matrix.args.idle_connections;
    for target in [
        Target::Reference,
        Target::Memory,
        Target::PubSub,
        Target::Queue,
    ] {
        matrix.idle("idle", target, idle_connections).await?;
    }
    let capacity = matrix.args.capacity_connections;
    for target in [Target::Reference, Target::Memory] {
        matrix.idle("capacity", target, capacity).await?;
    }
    for target in targets {
        matrix.churn(target).await?;
    }
    let elapsed = began.elapsed();
    let load = (load_before, load_average());
    let out = matrix.args.out.clone();
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&matrix.results)?,
    )?;
    let markdown = report::render(&matrix.results, &matrix.args, elapsed, &load, &out)?;
    std::fs::write(out.join("report.md"), &markdown)?;
    println!("{markdown}");
    // The cost tables once more at the very end, where a terminal shows them.
    println!("{}", report::cost_table(&matrix.results, &matrix.args)?);
    println!("{}", report::history_table(&matrix.results)?);
    eprintln!("report: {}", out.join("report.md").display());
    Ok(())
}

/// The Markdown report and the SVG charts.
mod report {
    use super::*;

    fn find<'a>(
        results: &'a [Value],
        kind: &str,
        target: &str,
        members: Option<usize>,
    ) -> Option<&'a Value> {
        results.iter().find(|r| {
            r["kind"] == kind
                && r["target"] == target
                && members.is_none_or(|m| r["members"].as_u64() == Some(m as u64))
        })
    }

    fn f(value: &Value) -> f64 {
        value.as_f64().unwrap_or(f64::NAN)
    }

    fn ratio(a: f64, b: f64) -> String {
        if a.is_finite() && b.is_finite() && b > 0.0 {
            format!("{:.2}×", a / b)
        } else {
            "–".into()
        }
    }

    fn count(v: f64) -> String {
        if !v.is_finite() {
            return "–".into();
        }
        if v >= 10_000.0 {
            format!("{:.0}k", v / 1000.0)
        } else {
            format!("{v:.0}")
        }
    }

    pub(super) fn render(
        results: &[Value],
        args: &Args,
        elapsed: Duration,
        load: &(String, String),
        out: &Path,
    ) -> anyhow::Result<String> {
        let mut md = String::new();
        let targets = [
            "reference",
            "memory",
            "redis pub/sub",
            "redis queue",
            "pub/sub, 2 procs",
            "cluster, 2 procs",
        ];
        writeln!(md, "# room-chat benchmark report\n")?;
        writeln!(
            md,
            "Machine: {} cores, {}. Load generator, servers and Redis share the machine. 1-minute load average {} at the start, {} at the end (anything above ~2 means other work shared the cores). Cells of {} s after {} s warm-up; whole run {:.0} s. Ratios are to the reference server of the same run (`bench/src/reference.rs`): a minimal tokio-tungstenite broadcast server without JSON or channel layers.\n",
            std::thread::available_parallelism().map(usize::from).unwrap_or(0),
            std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| format!("Linux {}", s.trim())).unwrap_or_default(),
            load.0,
            load.1,
            args.duration,
            args.warmup,
            elapsed.as_secs_f64()
        )?;
        if !args.service_args.is_empty() {
            writeln!(
                md,
                "Service processes started with the extra arguments `{}`.\n",
                args.service_args.join(" ")
            )?;
        }
        md.push_str(&cost_table(results, args)?);
        md.push_str(&history_table(results)?);
        md.push_str(&scale_out_cost_table(results)?);
        for kind in ["saturation", "fixed"] {
            if kind == "saturation" {
                writeln!(
                    md,
                    "## Saturation (closed loop: 16 messages in flight per sender)\n"
                )?;
            } else {
                writeln!(md, "## Fixed rate\n")?;
            }
            writeln!(md, "| room | target | deliveries/s | × ref | p50 µs | p90 µs | p99 µs | max µs | p99 × ref | server CPU | deliveries per CPU-s | × ref | lost | server drops | dup | inv | leaks | closed |")?;
            writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
            for shape in SHAPES {
                let reference = find(results, kind, "reference", Some(shape.members));
                let ref_rate = reference.map_or(f64::NAN, |r| f(&r["report"]["deliveries_per_s"]));
                let ref_p99 = reference.map_or(f64::NAN, |r| f(&r["report"]["latency"]["p99_us"]));
                let ref_eff = reference.map_or(f64::NAN, |r| {
                    f(&r["report"]["deliveries_per_s"]) * f(&r["report"]["duration_s"])
                        / f(&r["server_cpu_s"])
                });
                for target in targets {
                    let Some(cell) = find(results, kind, target, Some(shape.members)) else {
                        continue;
                    };
                    let r = &cell["report"];
                    let room = if kind == "fixed" {
                        format!(
                            "{}×{} ({} senders each), {} deliveries/s",
                            shape.rooms,
                            shape.members,
                            shape.senders,
                            count(shape.fixed_deliveries_per_s)
                        )
                    } else {
                        format!(
                            "{}×{} ({} senders each)",
                            shape.rooms, shape.members, shape.senders
                        )
                    };
                    if let Some(error) = r.get("error") {
                        writeln!(md, "| {room} | {target} | error: {error} ||||||||||||||||")?;
                        continue;
                    }
                    let rate = f(&r["deliveries_per_s"]);
                    let p99 = f(&r["latency"]["p99_us"]);
                    let cpu = f(&cell["server_cpu_s"]);
                    let wall = f(&r["duration_s"]);
                    let eff = rate * wall / cpu;
                    writeln!(
                        md,
                        "| {room} | {target} | {} | {} | {} | {} | {} | {} | {} | {:.0}% | {} | {} | {} | {} | {} | {} | {} | {} |",
                        count(rate), ratio(rate, ref_rate),
                        r["latency"]["p50_us"], r["latency"]["p90_us"], r["latency"]["p99_us"], r["latency"]["max_us"],
                        ratio(p99, ref_p99),
                        100.0 * cpu / f(&cell["wall_s"]),
                        count(eff), ratio(eff, ref_eff),
                        r["lost"], cell["server_drops"].as_u64().map_or("–".to_owned(), |d| d.to_string()),
                        r["duplicates"], r["inversions"], r["leaks"], r["closed_by_server"],
                    )?;
                }
            }
            writeln!(md)?;
        }
        writeln!(md, "Lost: owed deliveries that had not arrived when the cell ended (5 s after the last send, or 1 s without progress). Below saturation it must be 0; at or above saturation it is mostly backlog still queued in the server, so read it with the next column.\n")?;
        writeln!(md, "Server drops: what the service's `/metrics` counts as dropped by the channel layer (every reason) plus clients closed as slow consumers, so a loss can be attributed.\n")?;
        writeln!(md, "Server CPU is the share of one core the server process(es) used over the whole cell (connect, warm-up, measure, drain); deliveries per CPU-second divide the measured rate by it, which matters when the load generator and the server compete for two cores.\n")?;

        writeln!(md, "## Connections\n")?;
        writeln!(md, "| cell | target | requested | connected | alive after hold | connects/s | server RSS before → loaded (KiB) | KiB per connection | first error |")?;
        writeln!(md, "|---|---|---:|---:|---:|---:|---|---:|---|")?;
        for kind in ["idle", "capacity"] {
            for target in targets {
                let Some(cell) = find(results, kind, target, None) else {
                    continue;
                };
                let r = &cell["report"];
                writeln!(
                    md,
                    "| {kind} | {target} | {} | {} | {} | {:.0} | {} → {} | {:.2} | {} |",
                    r["requested"],
                    r["connected"],
                    r["alive_after_hold"],
                    f(&r["connects_per_s"]),
                    r["baseline_rss_kib"],
                    r["loaded_rss_kib"],
                    f(&r["kib_per_connection"]),
                    r["first_error"].as_str().unwrap_or(""),
                )?;
            }
        }
        writeln!(md, "\n## Churn (connect, ping/pong, close at 300/s for 3 s; 4 rooms with an observer each)\n")?;
        writeln!(md, "| target | completed/s | failed | join notices | leave notices | owed each | connect p50 µs | p99 µs |")?;
        writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
        for target in targets {
            let Some(cell) = find(results, "churn", target, None) else {
                continue;
            };
            let r = &cell["report"];
            writeln!(
                md,
                "| {target} | {:.0} | {} | {} | {} | {} | {} | {} |",
                f(&r["completed_per_s"]),
                r["failed"],
                r["join_notices"],
                r["leave_notices"],
                r["expected_notices"],
                r["connect_latency"]["p50_us"],
                r["connect_latency"]["p99_us"],
            )?;
        }

        writeln!(md, "\n## Targets\n")?;
        writeln!(md, "| target | figure | holds |")?;
        writeln!(md, "|---|---|---|")?;
        let sat = |target: &str, members: usize| {
            find(results, "saturation", target, Some(members))
                .map_or(f64::NAN, |c| f(&c["report"]["deliveries_per_s"]))
        };
        for (label, target, want) in [
            ("in-memory saturation ≥ 0.8× reference", "memory", 0.8),
            (
                "Redis pub/sub saturation ≥ 0.6× reference",
                "redis pub/sub",
                0.6,
            ),
        ] {
            let figures: Vec<String> = SHAPES
                .iter()
                .map(|s| {
                    format!(
                        "room of {}: {}",
                        s.members,
                        ratio(sat(target, s.members), sat("reference", s.members))
                    )
                })
                .collect();
            let holds = SHAPES
                .iter()
                .all(|s| sat(target, s.members) / sat("reference", s.members) >= want);
            writeln!(md, "| {label} | {} | {} |", figures.join(", "), yes(holds))?;
        }
        let p99 = |target: &str| {
            find(results, "fixed", target, Some(100))
                .map_or(f64::NAN, |c| f(&c["report"]["latency"]["p99_us"]))
        };
        let p99_figures: Vec<String> = ["memory", "redis pub/sub", "redis queue"]
            .iter()
            .map(|t| format!("{t}: {}", ratio(p99(t), p99("reference"))))
            .collect();
        writeln!(
            md,
            "| p99 at 100k deliveries/s, room of 100 ≤ 1.5× reference (memory) | {} | {} |",
            p99_figures.join(", "),
            yes(p99("memory") / p99("reference") <= 1.5)
        )?;
        let idle_kib = find(results, "idle", "memory", None)
            .map_or(f64::NAN, |c| f(&c["report"]["kib_per_connection"]));
        writeln!(
            md,
            "| idle connection ≤ 8 KiB RSS (memory layer) | {idle_kib:.2} KiB | {} |",
            yes(idle_kib <= 8.0)
        )?;
        let held = find(results, "capacity", "memory", None)
            .map_or(0, |c| c["report"]["alive_after_hold"].as_u64().unwrap_or(0));
        writeln!(
            md,
            "| ≥ 19,000 concurrent connections in one process | {held} held and answering | {} |",
            yes(held >= 19_000)
        )?;
        let mut clean = true;
        let mut notes = Vec::new();
        for cell in results
            .iter()
            .filter(|c| c["kind"] == "fixed" && c["target"] != "reference")
        {
            let r = &cell["report"];
            let members = cell["members"].as_u64().unwrap_or(0) as usize;
            let saturated = sat(cell["target"].as_str().unwrap_or(""), members);
            let rate = SHAPES
                .iter()
                .find(|s| s.members == members)
                .map_or(0.0, |s| s.fixed_deliveries_per_s);
            let bad = r["lost"].as_u64() != Some(0) || r["inversions"].as_u64() != Some(0);
            if bad {
                if rate < saturated {
                    clean = false;
                }
                notes.push(format!(
                    "{} room of {members}: lost {}, inversions {} ({})",
                    cell["target"].as_str().unwrap_or(""),
                    r["lost"],
                    r["inversions"],
                    if rate < saturated {
                        "below saturation"
                    } else {
                        "at or above saturation"
                    }
                ));
            }
        }
        writeln!(
            md,
            "| zero loss, zero inversions at every fixed rate below saturation | {} | {} |",
            if notes.is_empty() {
                "all clean".to_owned()
            } else {
                notes.join("; ")
            },
            yes(clean)
        )?;

        writeln!(md, "\n## Latency percentiles at a fixed rate\n")?;
        for shape in SHAPES {
            let name = format!("latency-{}.svg", shape.members);
            let svg = chart(results, shape, &targets);
            std::fs::write(out.join(&name), svg)?;
            writeln!(md, "![latency, room of {}]({name})\n", shape.members)?;
        }
        writeln!(md, "Raw figures: `results.json`; server logs: `logs/`.")?;
        Ok(md)
    }

    /// The cost of history: server CPU µs per delivery of the 10 × 10 cell with history on and
    /// off, the median of the rounds of each, and their ratio.
    pub(super) fn history_table(results: &[Value]) -> anyhow::Result<String> {
        let mut md = String::new();
        writeln!(
            md,
            "## The cost of history
"
        )?;
        writeln!(md, "| layer | history on µs/delivery | history off µs/delivery | on × off | rounds (on / off) |")?;
        writeln!(md, "|---|---:|---:|---:|---|")?;
        let shape = COST_SHAPES[0];
        for target in ["memory", "redis pub/sub"] {
            let figures = |mode: &str| -> Vec<f64> {
                (0..HISTORY_ROUNDS)
                    .filter_map(|round| {
                        find(
                            results,
                            &format!("history-{mode}-{round}"),
                            target,
                            Some(shape.members),
                        )
                    })
                    .map(|c| f(&c["report"]["sending"]["server_us_per_delivery"]))
                    .filter(|v| v.is_finite())
                    .collect()
            };
            let (on, off) = (figures("on"), figures("off"));
            if on.is_empty() && off.is_empty() {
                continue;
            }
            let list = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (on_median, off_median) = (median(&on), median(&off));
            writeln!(
                md,
                "| {target} | {} | {} | {} | {} / {} |",
                micros(on_median),
                micros(off_median),
                ratio(on_median, off_median),
                list(&on),
                list(&off),
            )?;
        }
        writeln!(md)?;
        writeln!(md, "{}×{} at {}/s as in the table above; history on is the default (each chat message is stamped with an offset and kept: on Redis pub/sub by the script that appends it and publishes its broadcast in one command, in memory by an append before its broadcast), off is `HISTORY_SIZE=0`. The rounds alternate on and off; each figure is the median of its rounds.\n", shape.rooms, shape.members, count(shape.fixed_deliveries_per_s))?;
        Ok(md)
    }

    fn median(values: &[f64]) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }

    /// The CPU-per-delivery cell of `target` in `shape`.
    fn cost_cell<'a>(results: &'a [Value], target: &str, shape: Shape) -> Option<&'a Value> {
        results.iter().find(|r| {
            r["kind"] == "cpu"
                && r["target"] == target
                && r["rooms"].as_u64() == Some(shape.rooms as u64)
                && r["members"].as_u64() == Some(shape.members as u64)
        })
    }

    /// One figure of the sending window of that cell (NaN when it did not run).
    fn cost_figure(results: &[Value], target: &str, shape: Shape, field: &str) -> f64 {
        cost_cell(results, target, shape).map_or(f64::NAN, |c| f(&c["report"]["sending"][field]))
    }

    /// `µs (× ref)`: the server's CPU per delivery of that cell next to the reference's.
    fn versus_reference(results: &[Value], target: &str, shape: Shape) -> String {
        let figure = |target| cost_figure(results, target, shape, "server_us_per_delivery");
        let us = figure(target);
        if us.is_finite() {
            format!("{us:.2} ({})", ratio(us, figure("reference")))
        } else {
            "–".into()
        }
    }

    /// The cost of a delivery: server CPU µs per delivered frame at a fixed rate, per layer, with
    /// the ratio to the reference server and Redis's own CPU in its own columns.
    pub(super) fn cost_table(results: &[Value], args: &Args) -> anyhow::Result<String> {
        let mut md = String::new();
        writeln!(md, "## Server CPU per delivery at a fixed rate\n")?;
        writeln!(md, "| room @ deliveries/s | reference µs | memory µs (× ref) | redis pub/sub µs (× ref) | + Redis µs (pub/sub) | redis queue µs (× ref) | + Redis µs (queue) |")?;
        writeln!(md, "|---|---:|---:|---:|---:|---:|---:|")?;
        let mut notes = Vec::new();
        // The coarsest reading: one 10 ms tick over the fewest deliveries of any cell.
        let mut tick_us = 0.0f64;
        for shape in COST_SHAPES {
            let cell = |target: &str| cost_cell(results, target, shape);
            let figure = |target: &str, field: &str| cost_figure(results, target, shape, field);
            let versus_reference = |target: &str| versus_reference(results, target, shape);
            let redis = |target: &str| micros(figure(target, "redis_us_per_delivery"));
            writeln!(
                md,
                "| {}×{} @ {}/s | {} | {} | {} | {} | {} | {} |",
                shape.rooms,
                shape.members,
                count(shape.fixed_deliveries_per_s),
                micros(figure("reference", "server_us_per_delivery")),
                versus_reference("memory"),
                versus_reference("redis pub/sub"),
                redis("redis pub/sub"),
                versus_reference("redis queue"),
                redis("redis queue"),
            )?;
            for target in ["reference", "memory", "redis pub/sub", "redis queue"] {
                let Some(c) = cell(target) else { continue };
                let r = &c["report"];
                if let Some(error) = r.get("error") {
                    notes.push(format!(
                        "{}×{} {target}: {error}",
                        shape.rooms, shape.members
                    ));
                    continue;
                }
                let deliveries = f(&r["sending"]["deliveries"]);
                if deliveries > 0.0 {
                    tick_us = tick_us.max(1e4 / deliveries);
                }
                let achieved = deliveries / f(&r["sending"]["seconds"]);
                let lost = r["lost"].as_u64().unwrap_or(0);
                if lost > 0 || achieved < 0.95 * shape.fixed_deliveries_per_s {
                    notes.push(format!(
                        "{}×{} {target}: {} deliveries/s while sending, lost {lost}",
                        shape.rooms,
                        shape.members,
                        count(achieved)
                    ));
                }
            }
        }
        writeln!(md)?;
        writeln!(md, "CPU time (`utime + stime` from `/proc/<pid>/stat`) of the server process, read right before the first send and right after the last one ({} s of sending at the fixed rate; connection setup and the wait for the last messages are outside), divided by the deliveries (frames received by members) in between. Redis's CPU over the same window is its own column, not part of the service's figure or its ratio.\n", args.cost_duration)?;
        if tick_us > 0.0 {
            writeln!(md, "Resolution: `/proc` counts CPU in 10 ms ticks, {tick_us:.2} µs per delivery here (`--cost-duration` lengthens the cells), which matters most to the small Redis figures.\n")?;
        }
        if !notes.is_empty() {
            writeln!(
                md,
                "Off the fixed rate (below 95 % of it, or with loss), so the figure covers a different load: {}.\n",
                notes.join("; ")
            )?;
        }
        Ok(md)
    }

    /// The cost of a delivery with two service processes, on one plain Redis and on a Redis
    /// Cluster (the Cluster's CPU summed over its six nodes), next to the same reference.
    pub(super) fn scale_out_cost_table(results: &[Value]) -> anyhow::Result<String> {
        let mut md = String::new();
        writeln!(
            md,
            "## Server CPU per delivery, two processes: one Redis vs a Redis Cluster\n"
        )?;
        writeln!(md, "| room @ deliveries/s | reference µs | pub/sub, 2 procs µs (× ref) | + Redis µs | cluster, 2 procs µs (× ref) | + Cluster µs (6 nodes) | lost (pub/sub, cluster) |")?;
        writeln!(md, "|---|---:|---:|---:|---:|---:|---|")?;
        for shape in COST_SHAPES {
            let cell = |target: &str| cost_cell(results, target, shape);
            let figure = |target: &str, field: &str| cost_figure(results, target, shape, field);
            let versus_reference = |target: &str| versus_reference(results, target, shape);
            let lost = |target: &str| {
                cell(target).map_or("–".to_owned(), |c| match c["report"].get("error") {
                    Some(error) => format!("error: {error}"),
                    None => c["report"]["lost"].to_string(),
                })
            };
            writeln!(
                md,
                "| {}×{} @ {}/s | {} | {} | {} | {} | {} | {}, {} |",
                shape.rooms,
                shape.members,
                count(shape.fixed_deliveries_per_s),
                micros(figure("reference", "server_us_per_delivery")),
                versus_reference("pub/sub, 2 procs"),
                micros(figure("pub/sub, 2 procs", "redis_us_per_delivery")),
                versus_reference("cluster, 2 procs"),
                micros(figure("cluster, 2 procs", "redis_us_per_delivery")),
                lost("pub/sub, 2 procs"),
                lost("cluster, 2 procs"),
            )?;
        }
        writeln!(md, "\nMembers and senders are spread over both processes; the service figure is both processes' CPU together, per delivery. The fan-out and churn tables below have the same two setups as `pub/sub, 2 procs` and `cluster, 2 procs`.\n")?;
        Ok(md)
    }

    fn micros(v: f64) -> String {
        if v.is_finite() {
            format!("{v:.2}")
        } else {
            "–".into()
        }
    }

    fn yes(holds: bool) -> &'static str {
        if holds {
            "yes"
        } else {
            "**no**"
        }
    }

    /// A hand-written SVG: latency (log scale) against percentile (0 to 99.99, then max), one
    /// line per target.
    fn chart(results: &[Value], shape: Shape, targets: &[&str]) -> String {
        const W: f64 = 720.0;
        const H: f64 = 360.0;
        const LEFT: f64 = 70.0;
        const RIGHT: f64 = 170.0;
        const TOP: f64 = 40.0;
        const BOTTOM: f64 = 50.0;
        let colours = ["#222222", "#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
        let series: Vec<(&str, Vec<(f64, f64)>)> = targets
            .iter()
            .filter_map(|t| {
                let cell = find(results, "fixed", t, Some(shape.members))?;
                let curve = cell["report"]["latency"]["curve"].as_array()?;
                let points = curve
                    .iter()
                    .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?.max(1.0))))
                    .collect::<Vec<_>>();
                (!points.is_empty()).then_some((*t, points))
            })
            .collect();
        let max = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|&(_, v)| v))
            .fold(10.0, f64::max);
        let top_decade = max.log10().ceil().max(1.0);
        let x_of =
            |i: usize, n: usize| LEFT + (W - LEFT - RIGHT) * i as f64 / (n.max(2) - 1) as f64;
        let y_of = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - v.log10() / top_decade);
        let mut svg = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="22" font-size="14">Send→receive latency, {}×{} members, {} deliveries/s</text>"##,
            shape.rooms, shape.members, shape.fixed_deliveries_per_s
        );
        for decade in 0..=top_decade as i32 {
            let y = y_of(10f64.powi(decade));
            let label = match decade {
                0..=2 => format!("{} µs", 10i64.pow(decade as u32)),
                3..=5 => format!("{} ms", 10i64.pow(decade as u32 - 3)),
                _ => format!("{} s", 10i64.pow(decade as u32 - 6)),
            };
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
                W - RIGHT,
                LEFT - 6.0,
                y + 4.0
            );
        }
        if let Some((_, points)) = series.first() {
            for (i, (p, _)) in points.iter().enumerate() {
                let x = x_of(i, points.len());
                let label = if i + 1 == points.len() {
                    "max".to_owned()
                } else {
                    format!("p{p}")
                };
                let _ = write!(
                    svg,
                    r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"##,
                    H - BOTTOM,
                    H - BOTTOM + 16.0
                );
            }
        }
        for (n, (name, points)) in series.iter().enumerate() {
            let colour = colours[n % colours.len()];
            let path: Vec<String> = points
                .iter()
                .enumerate()
                .map(|(i, &(_, v))| format!("{:.1},{:.1}", x_of(i, points.len()), y_of(v)))
                .collect();
            let _ = write!(
                svg,
                r##"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"##,
                path.join(" ")
            );
            let y = TOP + 18.0 * n as f64;
            let _ = write!(
                svg,
                r##"<line x1="{}" x2="{}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{name}</text>"##,
                W - RIGHT + 12.0,
                W - RIGHT + 32.0,
                W - RIGHT + 38.0,
                y + 4.0
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}
