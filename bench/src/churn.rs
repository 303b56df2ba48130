//! The churn scenario: clients connect, join, and leave at a steady rate while one observer per
//! room counts the join and leave notices it is owed.
//!
//! This exercises the expensive edges of a connection's life (handshake, layer channel, group
//! add and discard, two broadcasts) rather than the message path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use indicatif::ProgressBar;
use serde::Serialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, ConnectError, Endpoints};
use crate::stats::{latency_histogram, LatencySummary};

/// What to run.
#[derive(Debug, Clone)]
pub struct ChurnOptions {
    /// Servers and source addresses.
    pub endpoints: Endpoints,
    /// Connections opened per second.
    pub rate: f64,
    /// How long to keep churning.
    pub duration: Duration,
    /// Rooms the churning clients are spread over (one observer each).
    pub rooms: usize,
    /// Prefix of room names.
    pub room_prefix: String,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl ChurnOptions {
    /// Options for churning against `urls` at `rate` connections/s.
    pub fn new(urls: Vec<String>, rate: f64) -> Self {
        Self {
            endpoints: Endpoints {
                urls,
                source_ips: 1,
            },
            rate,
            duration: Duration::from_secs(3),
            rooms: 4,
            room_prefix: crate::fanout::unique_prefix("churn"),
            progress: true,
        }
    }
}

/// What a churn run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnReport {
    /// `"churn"`.
    pub scenario: &'static str,
    /// Connections attempted.
    pub attempted: u64,
    /// Connections that connected, got their pong and closed.
    pub completed: u64,
    /// Connections that failed.
    pub failed: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Completed connections per second.
    pub completed_per_s: f64,
    /// Join notices the observers received.
    pub join_notices: u64,
    /// Leave notices the observers received.
    pub leave_notices: u64,
    /// Notices owed to the observers of each kind (one per completed connection).
    pub expected_notices: u64,
    /// Connect + handshake + ping/pong time.
    pub connect_latency: LatencySummary,
}

/// Runs the scenario.
pub async fn run(options: &ChurnOptions) -> Result<ChurnReport, ConnectError> {
    let joins = Arc::new(AtomicU64::new(0));
    let leaves = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let rooms = options.rooms.max(1);
    let mut observers = Vec::new();
    for room in 0..rooms {
        let url = options
            .endpoints
            .room_url(room, &format!("{}-{room}", options.room_prefix));
        let mut ws = client::connect(&url, options.endpoints.source(room)).await?;
        client::sync(&mut ws).await?;
        observers.push(tokio::spawn(observe(
            ws,
            joins.clone(),
            leaves.clone(),
            stop_rx.clone(),
        )));
    }
    let bar = if options.progress {
        ProgressBar::new((options.rate * options.duration.as_secs_f64()) as u64)
    } else {
        ProgressBar::hidden()
    };
    let start = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / options.rate.max(0.001));
    let mut churners = Vec::new();
    let mut attempted = 0u64;
    while start.elapsed() < options.duration {
        tokio::time::sleep_until(start + interval.mul_f64(attempted as f64)).await;
        let index = attempted as usize;
        let url = options.endpoints.room_url(
            index % rooms,
            &format!("{}-{}", options.room_prefix, index % rooms),
        );
        let source = options.endpoints.source(index);
        let bar = bar.clone();
        churners.push(tokio::spawn(async move {
            let began = Instant::now();
            let mut ws = client::connect(&url, source).await?;
            client::sync(&mut ws).await?;
            let took = began.elapsed();
            ws.close(None).await?;
            // Read to the end so the close handshake completes before the socket is dropped.
            while ws.next().await.is_some() {}
            bar.inc(1);
            Ok::<_, ConnectError>(took)
        }));
        attempted += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut histogram = latency_histogram();
    let (mut completed, mut failed, mut first_error) = (0, 0, None);
    for churner in churners {
        match churner.await {
            Ok(Ok(took)) => {
                completed += 1;
                let _ = histogram.record(took.as_micros().max(1) as u64);
            }
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    bar.finish_and_clear();
    // Leave notices follow the close; give them a moment.
    let deadline = Instant::now() + Duration::from_secs(3);
    while (joins.load(Ordering::Relaxed) < completed || leaves.load(Ordering::Relaxed) < completed)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    for observer in observers {
        let _ = observer.await;
    }
    Ok(ChurnReport {
        scenario: "churn",
        attempted,
        completed,
        failed,
        first_error,
        completed_per_s: completed as f64 / elapsed,
        join_notices: joins.load(Ordering::Relaxed),
        leave_notices: leaves.load(Ordering::Relaxed),
        expected_notices: completed,
        connect_latency: LatencySummary::of(&histogram),
    })
}

/// Counts join and leave notices on one connection until told to stop.
async fn observe(
    mut ws: client::Ws,
    joins: Arc<AtomicU64>,
    leaves: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => break,
            frame = ws.next() => frame,
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                if text.contains("joined room") {
                    joins.fetch_add(1, Ordering::Relaxed);
                } else if text.contains("left room") {
                    leaves.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    let _ = ws.close(None).await;
}
