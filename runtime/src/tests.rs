//! The session's behaviours over an in-memory socket: no TCP, and a paused clock where time
//! matters. The socket is a bounded wire between the session and a test client, so a client
//! that does not read fills it the way a TCP window would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, Utf8Bytes};
use axum::http::{HeaderMap, StatusCode};
use futures_util::{Sink, Stream};
use room_chat_layers::memory::{MemoryLayer, MemorySettings};
use room_chat_layers::{ChannelLayer, Group};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::{
    close_code, serve, CloseReason, Connection, Consumer, ConsumerError, FrameOutcome, Handshake,
    Refusal, RuntimeMetrics, SessionSettings, Shutdown,
};

/// What travels between the session and the test client, with the wakers of both ends.
#[derive(Default)]
struct Wire {
    /// Fed by the session, not yet flushed.
    buffered: Vec<WsMessage>,
    /// Flushed, not yet read by the client.
    delivered: VecDeque<WsMessage>,
    /// Frames the wire holds before the session's writes wait (a TCP window, in frames).
    capacity: usize,
    /// Flushes that carried at least one frame, and the frames they carried.
    writes: Vec<usize>,
    closed: bool,
    writer: Option<Waker>,
    reader: Option<Waker>,
}

fn lock(wire: &Mutex<Wire>) -> std::sync::MutexGuard<'_, Wire> {
    wire.lock().unwrap()
}

/// The session's side of the in-memory socket.
struct TestSocket {
    wire: Arc<Mutex<Wire>>,
    incoming: mpsc::UnboundedReceiver<WsMessage>,
}

impl Stream for TestSocket {
    type Item = Result<WsMessage, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.incoming.poll_recv(cx).map(|m| m.map(Ok))
    }
}

impl Sink<WsMessage> for TestSocket {
    type Error = String;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        let mut wire = lock(&self.wire);
        if wire.closed {
            return Poll::Ready(Err("closed".into()));
        }
        // Like a real WebSocket sink, a full buffer is written out before it asks to wait:
        // whatever fits on the wire goes, and only a full wire makes the writer wait.
        if wire.buffered.len() + wire.delivered.len() >= wire.capacity {
            let room = wire.capacity.saturating_sub(wire.delivered.len());
            let moved: Vec<WsMessage> = {
                let take = room.min(wire.buffered.len());
                wire.buffered.drain(..take).collect()
            };
            if !moved.is_empty() {
                wire.writes.push(moved.len());
                wire.delivered.extend(moved);
                if let Some(reader) = wire.reader.take() {
                    reader.wake();
                }
            }
            if wire.buffered.len() + wire.delivered.len() >= wire.capacity {
                wire.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: WsMessage) -> Result<(), String> {
        lock(&self.wire).buffered.push(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        let mut wire = lock(&self.wire);
        if !wire.buffered.is_empty() {
            let frames = std::mem::take(&mut wire.buffered);
            wire.writes.push(frames.len());
            wire.delivered.extend(frames);
            if let Some(reader) = wire.reader.take() {
                reader.wake();
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        let flushed = self.as_ref().get_ref().wire.clone();
        let _ = Pin::new(&mut *self.get_mut()).poll_flush(cx);
        let mut wire = lock(&flushed);
        wire.closed = true;
        if let Some(reader) = wire.reader.take() {
            reader.wake();
        }
        Poll::Ready(Ok(()))
    }
}

/// The test's side: send frames as a client would, read what the server wrote.
struct TestClient {
    wire: Arc<Mutex<Wire>>,
    outgoing: Option<mpsc::UnboundedSender<WsMessage>>,
}

impl TestClient {
    fn send_text(&self, text: &str) {
        let sender = self.outgoing.as_ref().expect("client still connected");
        let _ = sender.send(WsMessage::Text(Utf8Bytes::from(text.to_owned())));
    }

    fn send(&self, message: WsMessage) {
        let _ = self.outgoing.as_ref().expect("connected").send(message);
    }

    /// Ends the client's half (the server sees the stream end).
    fn hang_up(&mut self) {
        self.outgoing = None;
    }

    /// The next frame the server wrote, or `None` once it closed the socket.
    async fn next(&self) -> Option<WsMessage> {
        std::future::poll_fn(|cx| {
            let mut wire = lock(&self.wire);
            if let Some(frame) = wire.delivered.pop_front() {
                if let Some(writer) = wire.writer.take() {
                    writer.wake();
                }
                return Poll::Ready(Some(frame));
            }
            if wire.closed {
                return Poll::Ready(None);
            }
            wire.reader = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The next text frame, as JSON (skipping pings).
    async fn next_json(&self) -> Value {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.next()).await {
                Ok(Some(WsMessage::Text(text))) => return serde_json::from_str(&text).unwrap(),
                Ok(Some(WsMessage::Ping(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Reads until the server's close frame and returns its code and reason.
    async fn close_code(&self) -> Option<(u16, String)> {
        loop {
            match self.next().await {
                Some(WsMessage::Close(frame)) => {
                    return frame.map(|f| (f.code, f.reason.as_str().to_owned()))
                }
                Some(_) => continue,
                None => return None,
            }
        }
    }

    fn writes(&self) -> Vec<usize> {
        lock(&self.wire).writes.clone()
    }
}

fn socket(capacity: usize) -> (TestSocket, TestClient) {
    let wire = Arc::new(Mutex::new(Wire {
        capacity,
        ..Wire::default()
    }));
    let (tx, rx) = mpsc::unbounded_channel();
    (
        TestSocket {
            wire: wire.clone(),
            incoming: rx,
        },
        TestClient {
            wire,
            outgoing: Some(tx),
        },
    )
}

/// A tiny app: joins `room`, tells the others, answers `ping`, broadcasts anything else.
struct Echo {
    room: Group,
}

fn text(value: &Value) -> Utf8Bytes {
    Utf8Bytes::from(value.to_string())
}

impl Consumer for Echo {
    type Outgoing = Value;
    type Settings = ();

    const ADDRESS: &'static str = "/ws/{room}";

    fn accept(_: &(), handshake: &Handshake<'_>) -> Result<Self, Refusal> {
        if handshake.path == "/refuse" {
            return Err(Refusal::new(StatusCode::FORBIDDEN, "test", "no"));
        }
        Ok(Self {
            room: Group::new("room").unwrap(),
        })
    }

    async fn on_connect(&self, conn: &mut Connection<Value>) -> Result<(), ConsumerError> {
        conn.group_add(&self.room).await?;
        conn.broadcast_to_others(&self.room, json!({"action": "joined"}))
            .await
    }

    async fn on_frame(&self, conn: &mut Connection<Value>, frame: &str) -> FrameOutcome {
        if frame == "ping" {
            return FrameOutcome::Handled {
                reply: Some(text(&json!({"action": "pong"}))),
            };
        }
        if frame == "bad" {
            return FrameOutcome::Rejected {
                error_frame: text(&json!({"action": "error"})),
            };
        }
        match conn
            .broadcast(&self.room, json!({"action": "said", "payload": frame}))
            .await
        {
            Ok(()) => FrameOutcome::Handled { reply: None },
            Err(e) => FrameOutcome::Failed {
                action: "say",
                error: e.to_string(),
                error_frame: text(&json!({"action": "error"})),
            },
        }
    }

    fn on_binary(&self, _: &mut Connection<Value>, _: &[u8]) -> FrameOutcome {
        FrameOutcome::Rejected {
            error_frame: text(&json!({"action": "error", "payload": "binary"})),
        }
    }

    async fn on_disconnect(&self, conn: &mut Connection<Value>) {
        let _ = conn
            .broadcast_to_others(&self.room, json!({"action": "left"}))
            .await;
    }

    fn limit_frame(detail: &str) -> Utf8Bytes {
        Utf8Bytes::from(json!({"action": "error", "payload": {"detail": detail}}).to_string())
    }

    fn completion_frames() -> (Value, Value) {
        (
            json!({"action": "complete"}),
            json!({"action": "group_complete"}),
        )
    }
}

/// One layer, one shutdown and one set of counters shared by the sessions of a test.
struct Harness {
    layer: Arc<dyn ChannelLayer>,
    settings: Arc<SessionSettings>,
    metrics: Arc<RuntimeMetrics>,
    shutdown: Shutdown,
}

impl Harness {
    fn new(settings: SessionSettings) -> Self {
        Self {
            layer: Arc::new(MemoryLayer::new(MemorySettings {
                capacity: 4096,
                ..MemorySettings::default()
            })),
            settings: Arc::new(settings),
            metrics: Arc::new(RuntimeMetrics::default()),
            shutdown: Shutdown::new(),
        }
    }

    /// Connects a client whose wire holds `capacity` frames; returns once it has joined.
    async fn connect(&self, capacity: usize) -> (TestClient, tokio::task::JoinHandle<()>) {
        let (socket, client) = socket(capacity);
        let handshake = Handshake {
            headers: &HeaderMap::new(),
            path: "/",
            query: None,
        };
        let consumer = Echo::accept(&(), &handshake).unwrap();
        let opened = self.metrics.connections_total();
        let task = tokio::spawn(self.shutdown.tracker().track_future(serve(
            socket,
            consumer,
            self.layer.clone(),
            self.settings.clone(),
            self.metrics.clone(),
            self.shutdown.clone(),
        )));
        // Joined once its own ping comes back: frames are handled in order, after on_connect.
        while self.metrics.connections_total() == opened {
            tokio::task::yield_now().await;
        }
        client.send_text("ping");
        assert_eq!(client.next_json().await["action"], "pong");
        (client, task)
    }
}

fn settings() -> SessionSettings {
    SessionSettings {
        close_linger: Duration::from_millis(200),
        // The scenarios that are about the rate limit set their own.
        inbound_rate: 0,
        ..SessionSettings::default()
    }
}

#[tokio::test]
async fn broadcasts_reach_the_room_and_replies_the_sender() {
    let h = Harness::new(settings());
    let (a, _) = h.connect(1000).await;
    let (b, _) = h.connect(1000).await;
    assert_eq!(
        a.next_json().await["action"],
        "joined",
        "a sees b join; b sees nothing"
    );
    b.send_text("hello");
    assert_eq!(
        b.next_json().await["payload"],
        "hello",
        "the sender gets its own message"
    );
    assert_eq!(a.next_json().await["payload"], "hello");
    b.send_text("bad");
    assert_eq!(b.next_json().await["action"], "error");
    b.send(WsMessage::Binary(bytes::Bytes::from_static(b"\x00")));
    assert_eq!(b.next_json().await["payload"], "binary");
    assert_eq!(h.metrics.frames_rejected_total(), 2);
    drop(b);
    assert_eq!(a.next_json().await["action"], "left");
}

#[tokio::test]
async fn frames_of_one_client_are_handled_in_order() {
    let h = Harness::new(settings());
    let (a, _) = h.connect(100_000).await;
    for i in 0..500 {
        a.send_text(&format!("m{i}"));
    }
    for i in 0..500 {
        assert_eq!(a.next_json().await["payload"], format!("m{i}"));
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_as_slow_consumer_once() {
    let h = Harness::new(SessionSettings {
        outbound_queue: 32,
        read_pause_frames: 8,
        ..settings()
    });
    let (sender, _) = h.connect(100_000).await;
    // The reader's wire takes 4 frames and then nothing more: a client that stopped reading.
    let (reader, reader_task) = h.connect(4).await;
    assert_eq!(sender.next_json().await["action"], "joined");
    for i in 0..200 {
        sender.send_text(&format!("m{i}"));
    }
    tokio::time::timeout(Duration::from_secs(5), reader_task)
        .await
        .expect("the slow reader's session ends without waiting for the write timeout")
        .unwrap();
    assert_eq!(h.metrics.closed_total(CloseReason::SlowConsumer), 1);
    assert_eq!(
        h.metrics.closed_total(CloseReason::WriteTimeout),
        0,
        "counted once"
    );
    // What it was sent is a gap-free prefix; the sender itself is unaffected.
    let first = reader.next_json().await;
    assert_eq!(first["payload"], "m0");
    let mut said = Vec::new();
    while said.len() < 200 {
        let frame = sender.next_json().await;
        if frame["action"] == "said" {
            said.push(frame["payload"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(said, (0..200).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert_eq!(h.metrics.connections_open(), 1);
}

#[tokio::test]
async fn a_flooding_client_that_reads_is_slowed_not_closed() {
    let h = Harness::new(SessionSettings {
        outbound_queue: 64,
        read_pause_frames: 16,
        ..settings()
    });
    // A wire of 8 frames: the client reads, but the server must wait for it.
    let (client, _) = h.connect(8).await;
    for _ in 0..5_000 {
        client.send_text("ping");
    }
    for _ in 0..5_000 {
        assert_eq!(client.next_json().await["action"], "pong");
    }
    assert_eq!(h.metrics.closed_total(CloseReason::SlowConsumer), 0);
    assert_eq!(h.metrics.connections_open(), 1);
}

#[tokio::test]
async fn a_burst_of_deliveries_leaves_in_few_writes() {
    let h = Harness::new(settings());
    let (client, _) = h.connect(100_000).await;
    let before = client.writes().len();
    // 200 broadcasts from the layer side, all queued before the session runs again.
    let room = Group::new("room").unwrap();
    let sender = Connection::<Value>::new(
        Arc::from("specific.inmemory!tester"),
        h.layer.clone(),
        16,
        h.metrics.clone(),
    );
    for i in 0..200 {
        sender.broadcast(&room, json!({"n": i})).await.unwrap();
    }
    for i in 0..200 {
        assert_eq!(client.next_json().await["n"], i);
    }
    let writes = client.writes()[before..].to_vec();
    let frames: usize = writes.iter().sum();
    assert_eq!(frames, 200);
    assert!(
        writes.len() <= 200 / 64 + 2,
        "200 queued deliveries should leave in a few batched writes, not {}: {writes:?}",
        writes.len()
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_with_1001_after_the_timeout() {
    let h = Harness::new(SessionSettings {
        idle_timeout: Duration::from_secs(60),
        ping_interval: Duration::from_secs(3600),
        ..settings()
    });
    let (client, task) = h.connect(1000).await;
    tokio::time::sleep(Duration::from_secs(50)).await;
    client.send_text("ping"); // heard from: the timeout starts again
    assert_eq!(client.next_json().await["action"], "pong");
    tokio::time::sleep(Duration::from_secs(50)).await;
    assert!(
        !task.is_finished(),
        "100 s after connecting, 50 s after the last frame"
    );
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(
        client.close_code().await,
        Some((close_code::GOING_AWAY, "idle timeout".into()))
    );
    assert_eq!(h.metrics.closed_total(CloseReason::Idle), 1);
}

#[tokio::test(start_paused = true)]
async fn the_server_waits_a_bounded_time_for_the_clients_close_frame() {
    let h = Harness::new(SessionSettings {
        idle_timeout: Duration::from_secs(10),
        close_linger: Duration::from_secs(2),
        ..settings()
    });
    // A client that never answers the close: the session lingers for close_linger, then ends.
    let (silent, silent_task) = h.connect(1000).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        silent.close_code().await.map(|c| c.0),
        Some(close_code::GOING_AWAY)
    );
    tokio::time::sleep(Duration::from_millis(1900)).await;
    assert!(
        !silent_task.is_finished(),
        "still waiting for the client's close frame"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(silent_task.is_finished());

    // A client that answers: the session ends at once.
    let (polite, polite_task) = h.connect(1000).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        polite.close_code().await.map(|c| c.0),
        Some(close_code::GOING_AWAY)
    );
    polite.send(WsMessage::Close(None));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(polite_task.is_finished());
}

#[tokio::test]
async fn shutdown_sends_leave_notices_then_closes_everyone_with_1001() {
    let h = Harness::new(settings());
    let (a, _) = h.connect(1000).await;
    let (b, _) = h.connect(1000).await;
    assert_eq!(a.next_json().await["action"], "joined");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let clean = h.shutdown.run(Duration::from_millis(300), deadline);
    let (clean, a_frames, b_frames) = tokio::join!(clean, read_all(&a), read_all(&b));
    assert!(clean, "every session finished within the deadline");
    // Each saw the other leave during the drain window, then the close frame.
    for frames in [&a_frames, &b_frames] {
        assert!(frames.iter().any(|f| f.contains("\"left\"")), "{frames:?}");
        assert_eq!(
            frames.last().map(String::as_str),
            Some("close 1001 server shutting down")
        );
    }
    assert_eq!(h.metrics.closed_total(CloseReason::Shutdown), 2);
    assert_eq!(h.metrics.connections_open(), 0);
}

#[tokio::test]
async fn a_client_that_leaves_is_not_counted_as_closed_by_the_server() {
    let h = Harness::new(settings());
    let (mut a, task) = h.connect(1000).await;
    a.hang_up();
    task.await.unwrap();
    for reason in CloseReason::ALL {
        assert_eq!(h.metrics.closed_total(reason), 0, "{reason:?}");
    }
    assert_eq!(h.metrics.connections_open(), 0);
    assert!(h.metrics.groups().is_empty(), "groups left");
}

/// Every frame until the server closes, as text (`close CODE REASON` for the close frame).
async fn read_all(client: &TestClient) -> Vec<String> {
    let mut frames = Vec::new();
    while let Some(frame) = client.next().await {
        match frame {
            WsMessage::Text(text) => frames.push(text.as_str().to_owned()),
            WsMessage::Close(Some(close)) => {
                frames.push(format!("close {} {}", close.code, close.reason));
            }
            _ => {}
        }
    }
    frames
}

#[tokio::test(start_paused = true)]
async fn a_client_over_its_rate_is_paced_told_once_and_closed_if_it_keeps_flooding() {
    let h = Harness::new(SessionSettings {
        inbound_rate: 10,
        inbound_burst: 5,
        flood_close_after: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(600),
        ping_interval: Duration::from_secs(600),
        ..settings()
    });
    let (client, task) = h.connect(100_000).await;
    let started = tokio::time::Instant::now();
    for _ in 0..1_000 {
        client.send_text("ping");
    }
    let frames = read_all(&client).await;
    let pongs = frames.iter().filter(|f| f.contains("pong")).count();
    let notices: Vec<&String> = frames.iter().filter(|f| f.contains("\"error\"")).collect();
    assert_eq!(notices.len(), 1, "told once: {notices:?}");
    assert!(notices[0].contains("at most 10 frames per second (bursts of 5)"));
    assert_eq!(
        frames.last().map(String::as_str),
        Some("close 1008 rate limit exceeded")
    );
    // The burst (less the join's ping), then about ten a second for the two seconds of flood:
    // far from the thousand it sent.
    assert!((20..=30).contains(&pongs), "{pongs} pongs: {frames:?}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    let _ = task.await;
    assert_eq!(h.metrics.throttled_total(), 1);
    assert_eq!(h.metrics.closed_total(CloseReason::RateLimited), 1);
}

#[tokio::test(start_paused = true)]
async fn a_backlog_within_the_flood_bound_is_only_slowed_down() {
    let h = Harness::new(SessionSettings {
        inbound_rate: 10,
        inbound_burst: 5,
        flood_close_after: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(600),
        ping_interval: Duration::from_secs(600),
        ..settings()
    });
    let (client, _) = h.connect(100_000).await;
    // Let the bucket refill after the join's ping.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = tokio::time::Instant::now();
    for i in 0..50 {
        client.send_text(&format!("m{i}"));
    }
    let mut said = Vec::new();
    let mut notices = 0;
    while said.len() < 50 {
        let frame = client.next_json().await;
        if frame["action"] == "error" {
            notices += 1;
        } else {
            said.push(frame["payload"].as_str().unwrap_or_default().to_owned());
        }
    }
    // Nothing lost, in order, paced at the rate: 45 frames past the burst take 4.5 s.
    assert_eq!(said, (0..50).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert_eq!(notices, 1);
    assert!(started.elapsed() >= Duration::from_millis(4400));
    assert_eq!(h.metrics.closed_total(CloseReason::RateLimited), 0);
    assert_eq!(h.metrics.connections_open(), 1);

    // A pause ends the episode: a later burst passes with no notice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..5 {
        client.send_text(&format!("again{i}"));
    }
    for i in 0..5 {
        assert_eq!(client.next_json().await["payload"], format!("again{i}"));
    }
    assert_eq!(h.metrics.throttled_total(), 1);
}
