//! The idle scenario: hold many quiet connections and see what each costs the server.
//!
//! Opens `connections` WebSockets (each pings and waits for its pong, so the server has fully
//! set it up: task, queue, layer channel, group membership), waits for the server to settle,
//! and reads the server's `VmRSS` against a baseline taken before the first connection. Then,
//! after holding them, every connection pings again: the figure counts only connections the
//! server still serves.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Endpoints};
use crate::process;

/// What to run.
#[derive(Debug, Clone)]
pub struct IdleOptions {
    /// Servers and source addresses.
    pub endpoints: Endpoints,
    /// Connections to open.
    pub connections: usize,
    /// Members per room (1: each connection alone in its room, so no join notices).
    pub room_size: usize,
    /// How long to hold them before the liveness check.
    pub hold: Duration,
    /// Server processes whose RSS is measured (empty: no memory figures).
    pub server_pids: Vec<u32>,
    /// Prefix of room names.
    pub room_prefix: String,
    /// Handshakes in progress at once.
    pub connect_concurrency: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl IdleOptions {
    /// Options for `connections` idle clients against `urls`.
    pub fn new(urls: Vec<String>, connections: usize) -> Self {
        Self {
            endpoints: Endpoints {
                urls,
                source_ips: 1,
            },
            connections,
            room_size: 1,
            hold: Duration::from_secs(2),
            server_pids: Vec::new(),
            room_prefix: crate::fanout::unique_prefix("idle"),
            connect_concurrency: 128,
            progress: true,
        }
    }
}

/// What an idle run measured.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// `"idle"`.
    pub scenario: &'static str,
    /// Connections asked for.
    pub requested: usize,
    /// Connections opened and synced.
    pub connected: usize,
    /// Connections that could not be opened.
    pub failed: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Seconds to open them all.
    pub connect_s: f64,
    /// Handshakes per second.
    pub connects_per_s: f64,
    /// Connections that answered a ping after the hold.
    pub alive_after_hold: u64,
    /// Server RSS before connecting, KiB (sum over server processes).
    pub baseline_rss_kib: Option<u64>,
    /// Server RSS with every connection open and settled, KiB.
    pub loaded_rss_kib: Option<u64>,
    /// `(loaded - baseline) / connected`.
    pub kib_per_connection: Option<f64>,
}

/// Runs the scenario.
pub async fn run(options: &IdleOptions) -> IdleReport {
    let baseline = process::total_rss_kib(&options.server_pids)
        .ok()
        .filter(|_| !options.server_pids.is_empty());
    let alive = Arc::new(AtomicU64::new(0));
    // 0: hold, 1: ping now, 2: stop.
    let (phase_tx, phase_rx) = watch::channel(0u8);
    let bar = if options.progress {
        let bar = ProgressBar::new(options.connections as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} connecting [{bar:30}] {pos}/{len} {per_sec}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let room_size = options.room_size.max(1);
    let outcomes: Vec<Result<tokio::task::JoinHandle<()>, String>> =
        futures_util::stream::iter(0..options.connections)
            .map(|index| {
                let room = format!("{}-{}", options.room_prefix, index / room_size);
                let url = options.endpoints.room_url(index, &room);
                let source: Option<IpAddr> = options.endpoints.source(index);
                let phase = phase_rx.clone();
                let alive = alive.clone();
                let bar = bar.clone();
                async move {
                    let result = async {
                        let mut ws = client::connect(&url, source).await?;
                        client::sync(&mut ws).await?;
                        Ok::<_, client::ConnectError>(ws)
                    }
                    .await;
                    bar.inc(1);
                    result
                        .map(|ws| tokio::spawn(hold(ws, phase, alive)))
                        .map_err(|e| e.to_string())
                }
            })
            .buffer_unordered(options.connect_concurrency.max(1))
            .collect()
            .await;
    let connect_s = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let mut tasks = Vec::with_capacity(outcomes.len());
    let mut failed = 0;
    let mut first_error = None;
    for outcome in outcomes {
        match outcome {
            Ok(task) => tasks.push(task),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let connected = tasks.len();
    // Let allocator caches and the server's queues settle before reading memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = process::total_rss_kib(&options.server_pids)
        .ok()
        .filter(|_| !options.server_pids.is_empty());
    tokio::time::sleep(options.hold).await;
    let _ = phase_tx.send(1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive.load(Ordering::Relaxed) < connected as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = phase_tx.send(2);
    for task in tasks {
        let _ = task.await;
    }
    let kib_per_connection = match (baseline, loaded) {
        (Some(base), Some(loaded)) if connected > 0 => {
            Some(loaded.saturating_sub(base) as f64 / connected as f64)
        }
        _ => None,
    };
    IdleReport {
        scenario: "idle",
        requested: options.connections,
        connected,
        failed,
        first_error,
        connect_s,
        connects_per_s: connected as f64 / connect_s,
        alive_after_hold: alive.load(Ordering::Relaxed),
        baseline_rss_kib: baseline,
        loaded_rss_kib: loaded,
        kib_per_connection,
    }
}

/// Holds one connection: reads (so the server's pings get answered), pings when told, counts
/// the pong.
async fn hold(mut ws: client::Ws, mut phase: watch::Receiver<u8>, alive: Arc<AtomicU64>) {
    loop {
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = *phase.borrow_and_update();
                match now {
                    1 if ws.send(Message::text(r#"{"action":"ping"}"#)).await.is_err() => break,
                    2 => break,
                    _ => {}
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) if client::is_pong(&text) => {
                    alive.fetch_add(1, Ordering::Relaxed);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
        }
    }
    let _ = ws.close(None).await;
}
