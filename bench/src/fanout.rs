//! The fan-out scenario: rooms × members, some members sending, everybody receiving.
//!
//! Every member of a room is one WebSocket connection; the first `senders` members of each room
//! also send chat messages carrying a [`Probe`]. Each receiver checks every probe: its room
//! (leaks), its sender's sequence (loss, duplicates, inversions) and its age (latency).
//!
//! Two ways to send:
//! - **fixed rate** (`rate > 0`): messages/s across all senders, on a schedule; a sender that
//!   falls behind catches up in a burst rather than silently sending less. Below saturation
//!   this must show zero loss and zero inversions.
//! - **saturation** (`rate == 0`): each sender keeps at most `window` messages in flight
//!   (sent, not yet received back by itself, since a sender is also a member). This is a
//!   closed loop, so it finds the throughput the server sustains without the load generator
//!   flooding socket buffers until the server closes clients as slow consumers.
//!
//! Timeline: connect everyone (each connection pings and waits for its pong, so the server has
//! joined it to the room), wait for the join notices to stop arriving, send for
//! `warmup + duration` (figures cover `duration` only), then wait for the last messages in
//! flight before counting what is missing.
//!
//! CPU per delivery: the processes named in [`FanoutOptions::cpu_watch`] have their CPU time
//! read right before the first send and right after the last one (the [`SendingWindow`]), so
//! connection setup, join notices and the drain afterwards are not charged to the deliveries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, ConnectError, Endpoints, Ws};
use crate::probe::Probe;
use crate::process;
use crate::stats::{latency_histogram, LatencySummary, SeqTracker};

/// What to run.
#[derive(Debug, Clone)]
pub struct FanoutOptions {
    /// Servers and source addresses.
    pub endpoints: Endpoints,
    /// Rooms.
    pub rooms: usize,
    /// Members per room (connections).
    pub members: usize,
    /// Members of each room that send.
    pub senders: usize,
    /// Messages per second across all senders; 0 saturates (see the module docs).
    pub rate: f64,
    /// Messages in flight per sender when saturating.
    pub window: usize,
    /// Sending time that counts.
    pub duration: Duration,
    /// Sending time before the figures start (connections and caches warm up).
    pub warmup: Duration,
    /// Longest wait for messages still in flight after sending stops.
    pub drain_timeout: Duration,
    /// Prefix of room names; unique per run so runs sharing a Redis never mix.
    pub room_prefix: String,
    /// Handshakes in progress at once.
    pub connect_concurrency: usize,
    /// Show a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// Processes whose CPU time is charged to the deliveries of the sending window.
    pub cpu_watch: CpuWatch,
}

/// Processes whose CPU time (`utime + stime` from `/proc/<pid>/stat`) a run reads at the edges
/// of its [`SendingWindow`]. The server and the Redis behind it are kept apart, so a layer's
/// own cost is not hidden in (or inflated by) the store's.
#[derive(Debug, Clone, Default)]
pub struct CpuWatch {
    /// The server process(es) under test; empty for none.
    pub server: Vec<u32>,
    /// The Redis process(es) the servers use (one server, or every node of a Redis Cluster,
    /// counted together); empty for none.
    pub redis: Vec<u32>,
}

impl CpuWatch {
    /// CPU seconds used so far; `None` for what is not watched or cannot be read.
    fn sample(&self) -> CpuSample {
        CpuSample {
            server: if self.server.is_empty() {
                None
            } else {
                process::total_cpu_seconds(&self.server).ok()
            },
            redis: if self.redis.is_empty() {
                None
            } else {
                process::total_cpu_seconds(&self.redis).ok()
            },
        }
    }
}

/// One reading of the watched processes' CPU time, in seconds.
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    server: Option<f64>,
    redis: Option<f64>,
}

/// The steady sending window of a run: from right before the first send to right after the
/// last one. Connecting, the join notices and the wait for messages still in flight at the end
/// are outside it, so the CPU time used within it is what the deliveries made within it cost.
#[derive(Debug, Clone, Serialize)]
pub struct SendingWindow {
    /// Wall-clock seconds (warm-up included: sending is steady from the first message).
    pub seconds: f64,
    /// Probe frames members received within the window. Frames still in flight when it closes
    /// are a few milliseconds of traffic at a fixed rate below saturation.
    pub deliveries: u64,
    /// CPU seconds of [`CpuWatch::server`] within the window.
    pub server_cpu_s: Option<f64>,
    /// CPU seconds of [`CpuWatch::redis`] within the window.
    pub redis_cpu_s: Option<f64>,
    /// `server_cpu_s` per delivery, in µs.
    pub server_us_per_delivery: Option<f64>,
    /// `redis_cpu_s` per delivery, in µs.
    pub redis_us_per_delivery: Option<f64>,
}

impl SendingWindow {
    fn between(
        before: CpuSample,
        after: CpuSample,
        seconds: f64,
        deliveries: u64,
    ) -> SendingWindow {
        let used = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        let per_delivery = |cpu: Option<f64>| {
            cpu.filter(|_| deliveries > 0)
                .map(|s| s * 1e6 / deliveries as f64)
        };
        let server_cpu_s = used(before.server, after.server);
        let redis_cpu_s = used(before.redis, after.redis);
        SendingWindow {
            seconds,
            deliveries,
            server_cpu_s,
            redis_cpu_s,
            server_us_per_delivery: per_delivery(server_cpu_s),
            redis_us_per_delivery: per_delivery(redis_cpu_s),
        }
    }
}

impl FanoutOptions {
    /// Options for a run against `urls` with everything else at its usual value.
    pub fn new(urls: Vec<String>) -> Self {
        Self {
            endpoints: Endpoints {
                urls,
                source_ips: 1,
            },
            rooms: 1,
            members: 10,
            senders: 1,
            rate: 0.0,
            window: 16,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(5),
            room_prefix: unique_prefix("fanout"),
            connect_concurrency: 64,
            progress: true,
            cpu_watch: CpuWatch::default(),
        }
    }
}

/// A room-name prefix no other run uses (process id and clock).
pub fn unique_prefix(kind: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{kind}-{}-{nanos:x}", std::process::id())
}

/// What a fan-out run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    /// `"fanout"`.
    pub scenario: &'static str,
    /// Rooms.
    pub rooms: usize,
    /// Members per room.
    pub members: usize,
    /// Senders per room.
    pub senders_per_room: usize,
    /// Requested messages/s (0 = saturation).
    pub target_rate: f64,
    /// Messages in flight per sender when saturating.
    pub window: usize,
    /// Seconds measured.
    pub duration_s: f64,
    /// Connections opened.
    pub connections: usize,
    /// Messages sent (whole run).
    pub sent: u64,
    /// Messages/s sent during the measured window.
    pub send_rate: f64,
    /// Deliveries owed: every message to every member of its room (sender included).
    pub expected_deliveries: u64,
    /// Distinct deliveries that arrived.
    pub delivered: u64,
    /// Deliveries/s during the measured window.
    pub deliveries_per_s: f64,
    /// Owed deliveries that never arrived.
    pub lost: u64,
    /// Deliveries that arrived more than once.
    pub duplicates: u64,
    /// Deliveries that arrived after a later message of the same sender.
    pub inversions: u64,
    /// Probes that arrived in a room other than the sender's.
    pub leaks: u64,
    /// Connections the server closed during the run (e.g. as slow consumers).
    pub closed_by_server: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Frames without a probe (join/leave notices).
    pub other_frames: u64,
    /// Send→receive latency of the measured window.
    pub latency: LatencySummary,
    /// From the first send to the last, with the CPU time of the watched processes.
    pub sending: SendingWindow,
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    /// Not every connection could be opened.
    #[error("{failed} of {total} connections failed; first error: {first}")]
    Connect {
        /// How many failed.
        failed: usize,
        /// How many were wanted.
        total: usize,
        /// The first failure.
        first: ConnectError,
    },
    /// The options make no sense.
    #[error("invalid options: {0}")]
    Options(&'static str),
}

/// Counters shared by every task of a run.
struct Shared {
    clock: Instant,
    /// Probe frames received (duplicates included): progress and the drain condition.
    delivered: AtomicU64,
    /// Non-probe frames: the settle condition.
    others: AtomicU64,
    /// Probes sent from this time on (µs on `clock`) are in the measured window; set when
    /// sending starts (until then nothing counts).
    measure_from_us: AtomicU64,
}

impl Shared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// What one receiver saw.
struct Received {
    room: u32,
    trackers: Vec<SeqTracker>,
    histogram: Histogram<u64>,
    leaks: u64,
    closed_by_server: bool,
}

/// Runs the scenario.
pub async fn run(options: &FanoutOptions) -> Result<FanoutReport, FanoutError> {
    if options.rooms == 0 || options.members == 0 || options.endpoints.urls.is_empty() {
        return Err(FanoutError::Options(
            "rooms, members and urls must not be empty",
        ));
    }
    if options.senders > options.members {
        return Err(FanoutError::Options("more senders than members"));
    }
    let shared = Arc::new(Shared {
        clock: Instant::now(),
        delivered: AtomicU64::new(0),
        others: AtomicU64::new(0),
        measure_from_us: AtomicU64::new(u64::MAX),
    });
    let total = options.rooms * options.members;
    let connections = connect_all(options, total).await?;

    // Readers start at once so join notices are drained while the rest connect.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readers = Vec::with_capacity(total);
    let mut sinks = Vec::new();
    let mut senders = Vec::new();
    for (index, ws) in connections.into_iter().enumerate() {
        let room = (index / options.members) as u32;
        let member = index % options.members;
        let (sink, stream) = ws.split();
        let window =
            (member < options.senders).then(|| Arc::new(Semaphore::new(options.window.max(1))));
        readers.push(tokio::spawn(read_loop(
            stream,
            room,
            options.senders,
            window.clone().map(|w| (member as u32, w)),
            shared.clone(),
            stop_rx.clone(),
        )));
        match window {
            Some(window) => senders.push((room, member as u32, sink, window)),
            None => sinks.push(sink),
        }
    }
    settle(
        &shared.others,
        Duration::from_millis(300),
        Duration::from_secs(20),
    )
    .await;

    // Send. Probes are only sent from here on, so `delivered` is still 0: the window's
    // deliveries are what it reads after the last send.
    let cpu_before = options.cpu_watch.sample();
    let sending_started = Instant::now();
    let start = tokio::time::Instant::now();
    let warmup_us = u64::try_from(options.warmup.as_micros()).unwrap_or(u64::MAX);
    shared
        .measure_from_us
        .store(shared.now_us().saturating_add(warmup_us), Ordering::Relaxed);
    let end = start + options.warmup + options.duration;
    let sender_count = senders.len().max(1);
    let per_sender_rate = options.rate / sender_count as f64;
    let sending: Vec<_> = senders
        .into_iter()
        .map(|(room, sender, sink, window)| {
            let shared = shared.clone();
            let rate = per_sender_rate;
            tokio::spawn(async move {
                if rate > 0.0 {
                    send_at_rate(sink, room, sender, rate, start, end, &shared).await
                } else {
                    send_saturating(sink, room, sender, window, end, &shared).await
                }
            })
        })
        .collect();

    let bar = progress_bar(options);
    let ticker = {
        let bar = bar.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut last = (Instant::now(), shared.delivered.load(Ordering::Relaxed));
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let now = (Instant::now(), shared.delivered.load(Ordering::Relaxed));
                let rate = (now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64();
                bar.set_position(start.elapsed().as_millis() as u64);
                bar.set_message(format!("{rate:>10.0} deliveries/s"));
                last = now;
            }
        })
    };
    tokio::time::sleep_until(start + options.warmup).await;
    let measured_from = shared.delivered.load(Ordering::Relaxed);
    let measure_start = Instant::now();
    tokio::time::sleep_until(end).await;
    let measured = shared.delivered.load(Ordering::Relaxed) - measured_from;
    let measured_secs = measure_start.elapsed().as_secs_f64();

    let mut sent_per_sender = vec![vec![0u64; options.senders]; options.rooms];
    let mut sent_in_window = 0;
    let mut send_errors = 0;
    for task in sending {
        if let Ok(outcome) = task.await {
            sent_per_sender[outcome.room as usize][outcome.sender as usize] = outcome.sent;
            sent_in_window += outcome.sent_in_window;
            send_errors += outcome.errors;
        }
    }
    // Every sender has returned: the last message is sent.
    let cpu_after = options.cpu_watch.sample();
    let sending_window = SendingWindow::between(
        cpu_before,
        cpu_after,
        sending_started.elapsed().as_secs_f64(),
        shared.delivered.load(Ordering::Relaxed),
    );
    ticker.abort();
    bar.finish_and_clear();
    let sent: u64 = sent_per_sender.iter().flatten().sum();
    let expected = sent * options.members as u64;

    // Wait for what is still in flight, then stop the readers.
    let drain_deadline = Instant::now() + options.drain_timeout;
    let mut last = (Instant::now(), shared.delivered.load(Ordering::Relaxed));
    while Instant::now() < drain_deadline {
        let now = shared.delivered.load(Ordering::Relaxed);
        if now >= expected {
            break;
        }
        if now != last.1 {
            last = (Instant::now(), now);
        } else if last.0.elapsed() > Duration::from_secs(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    drop(sinks);

    let mut histogram = latency_histogram();
    let (mut delivered, mut duplicates, mut inversions, mut leaks, mut closed) = (0, 0, 0, 0, 0);
    let mut lost = 0;
    for reader in readers {
        let Ok(received) = reader.await else { continue };
        let _ = histogram.add(&received.histogram);
        leaks += received.leaks;
        closed += u64::from(received.closed_by_server);
        for (sender, tracker) in received.trackers.iter().enumerate() {
            let owed = sent_per_sender[received.room as usize][sender];
            delivered += tracker.unique();
            duplicates += tracker.duplicates;
            inversions += tracker.inversions;
            lost += owed.saturating_sub(tracker.unique());
        }
    }
    Ok(FanoutReport {
        scenario: "fanout",
        rooms: options.rooms,
        members: options.members,
        senders_per_room: options.senders,
        target_rate: options.rate,
        window: options.window,
        duration_s: measured_secs,
        connections: total,
        sent,
        send_rate: sent_in_window as f64 / measured_secs,
        expected_deliveries: expected,
        delivered,
        deliveries_per_s: measured as f64 / measured_secs,
        lost,
        duplicates,
        inversions,
        leaks,
        closed_by_server: closed,
        send_errors,
        other_frames: shared.others.load(Ordering::Relaxed),
        latency: LatencySummary::of(&histogram),
        sending: sending_window,
    })
}

/// Opens and syncs every connection, `connect_concurrency` handshakes at a time.
async fn connect_all(options: &FanoutOptions, total: usize) -> Result<Vec<Ws>, FanoutError> {
    let endpoints = &options.endpoints;
    let results: Vec<(usize, Result<Ws, ConnectError>)> = futures_util::stream::iter(0..total)
        .map(|index| {
            let room = format!("{}-{}", options.room_prefix, index / options.members);
            let url = endpoints.room_url(index, &room);
            let source = endpoints.source(index);
            async move {
                let result = async {
                    let mut ws = client::connect(&url, source).await?;
                    client::sync(&mut ws).await?;
                    Ok(ws)
                }
                .await;
                (index, result)
            }
        })
        .buffer_unordered(options.connect_concurrency.max(1))
        .collect()
        .await;
    let mut slots: Vec<Option<Ws>> = (0..total).map(|_| None).collect();
    let mut failed = 0;
    let mut first = None;
    for (index, result) in results {
        match result {
            Ok(ws) => slots[index] = Some(ws),
            Err(e) => {
                failed += 1;
                first.get_or_insert(e);
            }
        }
    }
    if let Some(first) = first {
        return Err(FanoutError::Connect {
            failed,
            total,
            first,
        });
    }
    Ok(slots.into_iter().flatten().collect())
}

/// Waits until `counter` has not moved for `quiet` (at most `limit`): the join notices of a
/// 1,000-member room are half a million frames, and measuring before they are through would
/// charge them to the first messages.
pub async fn settle(counter: &AtomicU64, quiet: Duration, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = (Instant::now(), counter.load(Ordering::Relaxed));
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = counter.load(Ordering::Relaxed);
        if now != last.1 {
            last = (Instant::now(), now);
        } else if last.0.elapsed() >= quiet {
            return;
        }
    }
}

fn progress_bar(options: &FanoutOptions) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let total = (options.warmup + options.duration).as_millis() as u64;
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:30}] {elapsed:>3} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// What one sender did.
struct Sent {
    room: u32,
    sender: u32,
    sent: u64,
    sent_in_window: u64,
    errors: u64,
}

/// Sends on the schedule `start + k / rate`, in bursts when behind (one flush per burst).
async fn send_at_rate(
    mut sink: SplitSink<Ws, Message>,
    room: u32,
    sender: u32,
    rate: f64,
    start: tokio::time::Instant,
    end: tokio::time::Instant,
    shared: &Shared,
) -> Sent {
    let mut outcome = Sent {
        room,
        sender,
        sent: 0,
        sent_in_window: 0,
        errors: 0,
    };
    let interval = Duration::from_secs_f64(1.0 / rate);
    loop {
        let next = start + interval.mul_f64(outcome.sent as f64);
        if next >= end {
            break;
        }
        tokio::time::sleep_until(next).await;
        let due = ((tokio::time::Instant::now() - start).as_secs_f64() * rate) as u64 + 1;
        while outcome.sent < due && start + interval.mul_f64(outcome.sent as f64) < end {
            if !feed(&mut sink, room, sender, &mut outcome, shared).await {
                return outcome;
            }
        }
        if sink.flush().await.is_err() {
            outcome.errors += 1;
            return outcome;
        }
    }
    outcome
}

/// How long a saturating sender waits for a free slot before assuming a message was lost.
const LOST_SLOT_TIMEOUT: Duration = Duration::from_millis(500);

/// Sends whenever fewer than `window` of this sender's messages are in flight.
async fn send_saturating(
    mut sink: SplitSink<Ws, Message>,
    room: u32,
    sender: u32,
    window: Arc<Semaphore>,
    end: tokio::time::Instant,
    shared: &Shared,
) -> Sent {
    let mut outcome = Sent {
        room,
        sender,
        sent: 0,
        sent_in_window: 0,
        errors: 0,
    };
    loop {
        let permit = tokio::select! {
            permit = window.acquire() => permit,
            () = tokio::time::sleep_until(end) => break,
            // A message the server lost would hold its slot forever and slowly stall the
            // window: after half a second without any slot, count one as lost and go on (the
            // loss itself is counted by the receivers).
            () = tokio::time::sleep(LOST_SLOT_TIMEOUT) => {
                window.add_permits(1);
                continue;
            }
        };
        let Ok(permit) = permit else { break };
        // The permit comes back when this sender receives its own message.
        permit.forget();
        if !feed(&mut sink, room, sender, &mut outcome, shared).await {
            return outcome;
        }
        // Batch whatever else the window allows before one flush.
        while let Ok(permit) = window.try_acquire() {
            permit.forget();
            if !feed(&mut sink, room, sender, &mut outcome, shared).await {
                return outcome;
            }
        }
        if sink.flush().await.is_err() {
            outcome.errors += 1;
            return outcome;
        }
    }
    outcome
}

/// Queues one probe; counts it as sent. `false` when the connection is gone.
async fn feed(
    sink: &mut SplitSink<Ws, Message>,
    room: u32,
    sender: u32,
    outcome: &mut Sent,
    shared: &Shared,
) -> bool {
    let sent_us = shared.now_us();
    let probe = Probe {
        room,
        sender,
        seq: outcome.sent,
        sent_us,
    };
    if sink.feed(Message::text(probe.chat_frame())).await.is_err() {
        outcome.errors += 1;
        return false;
    }
    outcome.sent += 1;
    outcome.sent_in_window += u64::from(sent_us >= shared.measure_from_us.load(Ordering::Relaxed));
    true
}

/// Reads one connection until told to stop, checking every probe.
async fn read_loop(
    mut stream: SplitStream<Ws>,
    room: u32,
    senders: usize,
    own: Option<(u32, Arc<Semaphore>)>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Received {
    let mut received = Received {
        room,
        trackers: vec![SeqTracker::default(); senders],
        histogram: latency_histogram(),
        leaks: 0,
        closed_by_server: false,
    };
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.changed() => break,
            frame = stream.next() => frame,
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                let Some(probe) = Probe::find(&text) else {
                    if !client::is_pong(&text) {
                        shared.others.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                };
                shared.delivered.fetch_add(1, Ordering::Relaxed);
                if probe.room != room {
                    received.leaks += 1;
                    continue;
                }
                if let Some(tracker) = received.trackers.get_mut(probe.sender as usize) {
                    tracker.record(probe.seq);
                }
                if probe.sent_us >= shared.measure_from_us.load(Ordering::Relaxed) {
                    let latency = shared.now_us().saturating_sub(probe.sent_us).max(1);
                    let _ = received.histogram.record(latency);
                }
                if let Some((me, window)) = &own {
                    if *me == probe.sender {
                        window.add_permits(1);
                    }
                }
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                received.closed_by_server = !*stop.borrow();
                break;
            }
            Some(Ok(_)) => {}
        }
    }
    received
}
