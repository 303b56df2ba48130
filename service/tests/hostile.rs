//! The binary under hostile clients and a sick Redis, as an operator would run it: a flooder
//! next to fifty readers, a client that writes ten thousand frames in one go, and Redis killed
//! or frozen under a chat, with every message accounted for.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use room_chat_e2e::{http_get, metric_sum, Client, RedisServer};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The service binary, killed when dropped.
struct Service {
    child: Child,
    addr: SocketAddr,
}

impl Service {
    /// Starts the binary on a free port with `args` and `env`, and waits until it listens.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_room-chat"));
        command
            .args(["--port", "0"])
            .args(args)
            .env_remove("REDIS_URL")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // The log is kept under target/ for when a scenario fails.
        let log_path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("hostile-{}.log", std::process::id()));
        std::thread::spawn(move || {
            use std::io::Write as _;
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_path)
                .ok();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(log) = &mut log {
                    let _ = writeln!(log, "{line}");
                }
                // Keep draining after the address is known, so the log never blocks the
                // service.
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
                    return Self { child, addr };
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the service did not start");
    }

    fn room_url(&self, room: &str) -> String {
        format!("ws://{}/ws/room/{room}", self.addr)
    }

    async fn metrics(&self) -> String {
        http_get(self.addr, "/metrics").await.1
    }

    async fn join(&self, room: &str) -> Client {
        let mut client = Client::connect(&self.room_url(room)).await;
        client.sync().await;
        client
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chat_frame(text: &str) -> String {
    json!({"action": "room_chat", "payload": {"message": text}}).to_string()
}

/// The chat text of a notification frame, if it is one.
fn chat_text(frame: &str) -> Option<String> {
    let value: Value = serde_json::from_str(frame).ok()?;
    let message = value["payload"]["message"].as_str()?;
    message.strip_prefix("💬 ").map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooder_is_paced_told_and_closed_while_fifty_readers_keep_everything() {
    let service = Service::start(&["--flood-close-after", "3s"], &[]);
    let mut readers = Vec::new();
    for _ in 0..50 {
        readers.push(service.join("general").await);
    }
    let (ws, _) = tokio_tungstenite::connect_async(service.room_url("general"))
        .await
        .unwrap();
    let (mut write, mut read) = ws.split();
    // Writes small chat frames as fast as the socket takes them, until the server closes.
    let writer = tokio::spawn(async move {
        let mut sent = 0u64;
        while write
            .send(Message::text(chat_frame(&format!("flood {sent}"))))
            .await
            .is_ok()
        {
            sent += 1;
        }
        sent
    });
    let mut notices = Vec::new();
    let mut echoed = 0u64;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(20), read.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                if text.contains("\"error\"") {
                    notices.push(text.to_string());
                } else if chat_text(&text).is_some_and(|t| t.starts_with("flood ")) {
                    echoed += 1;
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => {}
            other => panic!("the flooder should get a close frame, got {other:?}"),
        }
    };
    let sent = writer.await.unwrap();
    let close = close.expect("a close frame with a code");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "rate limit exceeded");
    assert_eq!(notices.len(), 1, "told once: {notices:?}");
    assert!(notices[0].contains("at most 100 frames per second (bursts of 200)"));

    // Every reader is still connected and got every flood message the server took in.
    let mut marker = service.join("general").await;
    marker.chat("marker").await;
    let mut closed_readers = 0;
    for reader in &mut readers {
        let mut got = 0u64;
        loop {
            match reader.try_recv_text(Duration::from_secs(5)).await {
                Some(frame) => match chat_text(&frame).as_deref() {
                    Some("marker") => break,
                    Some(t) if t.starts_with("flood ") => got += 1,
                    _ => {}
                },
                None => {
                    closed_readers += 1;
                    break;
                }
            }
        }
        assert_eq!(got, echoed, "each reader gets what the sender's echo shows");
    }
    let metrics = service.metrics().await;
    println!(
        "flood: the flooder wrote {sent} frames, the server took in {echoed} in ~3 s; \
         readers closed: {closed_readers} of 50"
    );
    assert_eq!(closed_readers, 0);
    assert!((200..=200 + 100 * 5).contains(&echoed), "paced: {echoed}");
    assert_eq!(
        // A reason's line appears with its first close: none means none closed.
        metric_sum(
            &metrics,
            "room_chat_connections_closed_total{reason=\"slow_consumer\"}"
        )
        .unwrap_or(0),
        0,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "room_chat_connections_closed_total{reason=\"rate_limited\"}"
        ),
        Some(1),
        "{metrics}"
    );
    assert_eq!(
        metric_sum(&metrics, "room_chat_rate_limited_total"),
        Some(1),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_frames_in_one_go_are_answered_not_closed() {
    // With no rate limit the client's own answers are what push back; with one, the limiter
    // paces it too. Either way every ping is answered and the connection stays open.
    for rate in ["0", "2000"] {
        let service = Service::start(&["--inbound-rate", rate, "--inbound-burst", "1000"], &[]);
        let (ws, _) = tokio_tungstenite::connect_async(service.room_url("alone"))
            .await
            .unwrap();
        let (mut write, mut read) = ws.split();
        let writer = tokio::spawn(async move {
            for i in 0..10_000 {
                let ping = json!({"action": "ping", "ref": i.to_string()}).to_string();
                write.send(Message::text(ping)).await.unwrap();
            }
            write
        });
        let mut pongs = 0;
        let mut notices = 0;
        while pongs < 10_000 {
            match tokio::time::timeout(Duration::from_secs(20), read.next()).await {
                Ok(Some(Ok(Message::Text(text)))) if text.contains("\"pong\"") => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(value["ref"], pongs.to_string(), "answers in order");
                    pongs += 1;
                }
                Ok(Some(Ok(Message::Text(text)))) if text.contains("rate limit") => notices += 1,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                other => panic!("rate {rate}: after {pongs} pongs got {other:?}"),
            }
        }
        let _write = writer.await.unwrap();
        assert_eq!(notices, usize::from(rate != "0"), "rate {rate}");
        let metrics = service.metrics().await;
        assert_eq!(
            metric_sum(&metrics, "room_chat_connections_closed_total").unwrap_or(0),
            0,
            "rate {rate}: {metrics}"
        );
    }
}

/// What became of the chat messages of one sender while Redis failed under it.
#[derive(Debug)]
struct Ledger {
    sent: u64,
    delivered: u64,
    refused: u64,
    counted: u64,
    /// The longest a delivered message took from the sender to the receiver.
    latest: Duration,
}

impl Ledger {
    fn silent(&self) -> i64 {
        self.sent as i64 - (self.delivered + self.refused + self.counted) as i64
    }
}

/// A sender at 50 messages/s and a receiver in one room, for `duration`, while `fault` runs
/// beside them; then every message is accounted for.
async fn chat_through<F, Fut>(service: &Service, duration: Duration, fault: F) -> Ledger
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let before = service.metrics().await;
    let mut receiver = service.join("general").await;
    let (ws, _) = tokio_tungstenite::connect_async(service.room_url("general"))
        .await
        .unwrap();
    let (mut write, mut read) = ws.split();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        while start.elapsed() < duration {
            tick.tick().await;
            let at = start.elapsed().as_millis();
            write
                .send(Message::text(chat_frame(&format!("m{sent}@{at}"))))
                .await
                .unwrap();
            sent += 1;
        }
        (sent, write)
    });
    // The sender's side: error frames are the refusals (frames are answered in order).
    let sender_side = tokio::spawn(async move {
        let mut refused = 0u64;
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(8), read.next()).await
        {
            if let Message::Text(text) = message {
                if text.contains("\"error\"") {
                    refused += 1;
                }
            }
        }
        refused
    });
    // The receiver listens until well after the last message, however long the fault kept it
    // silent.
    let listen_until = start + duration + Duration::from_secs(5);
    let receiver_side = tokio::spawn(async move {
        let mut seen = BTreeSet::new();
        let mut latest = Duration::ZERO;
        while let Some(frame) = receiver
            .try_recv_text(listen_until.saturating_duration_since(Instant::now()))
            .await
        {
            let Some(text) = chat_text(&frame) else {
                continue;
            };
            let Some((id, at)) = text.split_once('@') else {
                continue;
            };
            let sent_at = Duration::from_millis(at.parse().unwrap());
            latest = latest.max(start.elapsed().saturating_sub(sent_at));
            assert!(seen.insert(id.to_owned()), "{id} delivered twice");
        }
        (seen.len() as u64, latest)
    });
    fault().await;
    let (sent, _write) = writer.await.unwrap();
    let refused = sender_side.await.unwrap();
    let (delivered, latest) = receiver_side.await.unwrap();
    let after = service.metrics().await;
    let dropped = "room_chat_layer_messages_total{alias=\"chat\",event=\"dropped\"";
    Ledger {
        sent,
        delivered,
        refused,
        counted: metric_sum(&after, dropped).expect("drop counters")
            - metric_sum(&before, dropped).expect("drop counters"),
        latest,
    }
}

/// Longest a delivered message may take while Redis fails: the Redis command timeout (what a
/// message may wait to be published before it is dropped as expired) plus a second of slack
/// for the reconnection and a loaded test machine.
const LATE_BOUND: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_and_a_redis_freeze_lose_nothing_silently() {
    let mut redis = RedisServer::start().await.unwrap();
    let url = redis.url();
    let service = Service::start(&[], &[("REDIS_URL", url.as_str())]);

    let restart = chat_through(&service, Duration::from_secs(8), || async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        redis.kill().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        // A newcomer during the outage is told before the upgrade.
        let refused = Client::try_connect(&service.room_url("general")).await;
        assert_eq!(
            refused.err(),
            Some((503, "channel layer unavailable".to_owned()))
        );
        tokio::time::sleep(Duration::from_millis(2500)).await;
        redis.restart().await.unwrap();
    })
    .await;
    println!(
        "redis kill -9 and restart after 3 s: sent {} delivered {} refused {} counted {} silent {} (latest delivery {:?})",
        restart.sent, restart.delivered, restart.refused, restart.counted, restart.silent(), restart.latest
    );
    assert_eq!(restart.silent(), 0, "{restart:?}");
    assert!(restart.refused > 0, "the outage was noticed: {restart:?}");
    assert!(restart.latest <= LATE_BOUND, "{restart:?}");

    // Healthy again before the next fault.
    let back = room_chat_e2e::eventually(Duration::from_secs(15), || async {
        http_get(service.addr, "/healthz").await.0 == 200
    })
    .await;
    assert!(back);
    let freeze = chat_through(&service, Duration::from_secs(14), || async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        redis.freeze().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        redis.thaw().await.unwrap();
    })
    .await;
    println!(
        "redis SIGSTOP for 10 s: sent {} delivered {} refused {} counted {} silent {} (latest delivery {:?})",
        freeze.sent, freeze.delivered, freeze.refused, freeze.counted, freeze.silent(), freeze.latest
    );
    assert_eq!(freeze.silent(), 0, "nothing vanished: {freeze:?}");
    assert!(freeze.refused > 0, "the freeze was noticed: {freeze:?}");
    assert!(freeze.latest <= LATE_BOUND, "no stale delivery: {freeze:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_holds_silent_sockets_foreign_pages_and_broken_frames() {
    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    let service = Service::start(&["--header-read-timeout", "1s"], &[]);
    // 200 TCP connections that never send a byte...
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(tokio::net::TcpStream::connect(service.addr).await.unwrap());
    }
    // ...do not keep a real client out.
    let mut a = service.join("general").await;
    a.chat("hello").await;
    assert_eq!(chat_text(&a.recv_text().await).as_deref(), Some("hello"));
    // Each is closed by the server once the header timeout passes.
    for socket in &mut silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut byte))
            .await
            .expect("closed within the header timeout and some slack");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }

    // A page on another site is refused; the service's own page gets in.
    let with_origin = |origin: &str| {
        let mut request = service.room_url("general").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
        request
    };
    match tokio_tungstenite::connect_async(with_origin("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("a foreign origin was not refused: {other:?}"),
    }
    let own = format!("http://{}", service.addr);
    let (mut page, _) = tokio_tungstenite::connect_async(with_origin(&own))
        .await
        .unwrap();
    page.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .unwrap();
    let pong = page.next().await.unwrap().unwrap();
    assert_eq!(
        pong.to_text().unwrap(),
        r#"{"action":"pong","payload":null}"#
    );

    // A text frame that is not UTF-8 closes that connection with 1007, and only that one.
    let mut bad = service.join("general").await;
    bad.send_raw(Frame::message(
        &b"{\"action\": \"room_chat\", \"payload\": {\"message\": \"\xff\"}}"[..],
        OpCode::Data(Data::Text),
        true,
    ))
    .await;
    let (_, closed) = bad.recv_until_closed(Duration::from_secs(5)).await;
    assert!(
        matches!(&closed, room_chat_e2e::Closed::Frame(1007, _)),
        "{closed:?}"
    );
    a.chat("still here").await;
    let mut heard = false;
    while let Some(frame) = a.try_recv_text(Duration::from_secs(5)).await {
        if chat_text(&frame).as_deref() == Some("still here") {
            heard = true;
            break;
        }
    }
    assert!(heard);
    let metrics = service.metrics().await;
    assert_eq!(
        metric_sum(
            &metrics,
            "room_chat_connections_closed_total{reason=\"invalid_utf8\"}"
        ),
        Some(1),
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "room_chat_handshakes_refused_total{reason=\"origin\"}"
        ),
        Some(1),
        "{metrics}"
    );
}
