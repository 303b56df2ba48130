//! A client that stops reading, a silent client, and a server that shuts down: each is handled
//! with a documented close code, and nobody else notices.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::time::Duration;

use room_chat::metrics::CloseReason;
use room_chat_e2e::{chat, joined, left, tutorial_view, Client, Closed, Layer, TestServer};

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_1008_and_others_get_everything() {
    const MESSAGES: usize = 400;
    let server = TestServer::start_with(Layer::Memory, |c| {
        c.session.outbound_queue = 32;
        c.session.write_timeout = Duration::from_secs(30);
    })
    .await;
    let mut sender = server.join_first("general").await;
    let mut reader = server.join("general").await;
    assert_eq!(sender.recv_json().await, joined("general"));
    // The slow client connects and then never reads again.
    let slow = Client::connect(&server.room_url("general")).await;
    assert_eq!(sender.recv_json().await, joined("general"));
    assert_eq!(reader.recv_json().await, joined("general"));

    // 400 messages of 16 KiB: far more than loopback socket buffers plus 32 queued frames.
    let text = "z".repeat(16 * 1024);
    let left_notice = left("general");
    let mut saw_left = [false, false];
    for i in 0..MESSAGES {
        let message = format!("{i}:{text}");
        let expected = chat(&message, "general");
        sender.chat(&message).await;
        for (n, client) in [&mut sender, &mut reader].into_iter().enumerate() {
            let mut got = client.recv_json().await;
            // The slow client's leave notice comes whenever it is closed.
            if got == left_notice && !saw_left[n] {
                saw_left[n] = true;
                got = client.recv_json().await;
            }
            assert!(got == expected, "client {n} lost or reordered message {i}");
        }
    }
    assert_eq!(
        server
            .server
            .state()
            .metrics()
            .closed_count(CloseReason::SlowConsumer),
        1,
        "the slow client should have been closed as a slow consumer"
    );
    // The others were told the slow client left, like any leaver.
    for (n, client) in [&mut sender, &mut reader].into_iter().enumerate() {
        if !saw_left[n] {
            assert_eq!(client.recv_json().await, left_notice);
        }
    }

    // What the slow client finally reads: some of the messages, then close 1008.
    let mut slow = slow;
    let (frames, closed) = slow.recv_until_closed(Duration::from_secs(10)).await;
    assert!(
        frames.len() < MESSAGES,
        "the slow client cannot have received everything"
    );
    assert_eq!(closed, Closed::Frame(1008, "slow consumer".into()));
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains("room_chat_connections_closed_total{reason=\"slow_consumer\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(Layer::Memory, |c| {
        c.session.idle_timeout = Duration::from_secs(2);
        c.session.ping_interval = Duration::from_secs(1);
    })
    .await;
    let mut active = server.join_first("general").await;
    let silent = Client::connect(&server.room_url("general")).await;
    assert_eq!(active.recv_json().await, joined("general"));
    // `silent` does not read, so it answers no ping; `active` keeps reading, so its client
    // library answers the server's pings and it stays. It sees the other leave.
    let frame = active.try_recv_text(Duration::from_secs(5)).await;
    assert_eq!(frame.map(|f| tutorial_view(&f)), Some(left("general")));
    let mut silent = silent;
    let (_, closed) = silent.recv_until_closed(Duration::from_secs(5)).await;
    assert_eq!(closed, Closed::Frame(1001, "idle timeout".into()));
}

#[tokio::test]
async fn shutdown_sends_leave_notices_then_close_frames() {
    let server = TestServer::start(Layer::Memory).await;
    let mut a = server.join_first("general").await;
    let mut b = server.join("general").await;
    assert_eq!(a.recv_json().await, joined("general"));
    let clean = tokio::spawn(async move { server.server.shutdown().await });
    let (a_frames, a_closed) = a.recv_until_closed(Duration::from_secs(5)).await;
    let (b_frames, b_closed) = b.recv_until_closed(Duration::from_secs(5)).await;
    assert_eq!(a_closed, Closed::Frame(1001, "server shutting down".into()));
    assert_eq!(b_closed, Closed::Frame(1001, "server shutting down".into()));
    let view = |frames: Vec<String>| frames.iter().map(|f| tutorial_view(f)).collect::<Vec<_>>();
    assert_eq!(view(a_frames), vec![left("general")]);
    assert_eq!(view(b_frames), vec![left("general")]);
    assert!(
        clean.await.unwrap(),
        "every connection finished within the timeout"
    );
}

#[tokio::test]
async fn a_connection_open_longer_than_the_group_expiry_keeps_receiving_its_room() {
    // Memberships expire after 2 s here; connections renew theirs every second.
    let server = TestServer::start_with(Layer::Memory, |c| {
        c.layers.group_expiry = Duration::from_secs(2);
        c.session.group_refresh = Duration::from_secs(1);
    })
    .await;
    let mut a = server.join_first("general").await;
    let mut b = server.join("general").await;
    assert_eq!(a.recv_json().await, joined("general"));
    // Well past the expiry; both keep reading (nothing arrives).
    assert_eq!(a.try_recv_text(Duration::from_millis(3500)).await, None);
    a.chat("still there?").await;
    assert_eq!(b.recv_json().await, chat("still there?", "general"));
    assert_eq!(a.recv_json().await, chat("still there?", "general"));
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(
            "room_chat_layer_messages_total{alias=\"chat\",event=\"dropped\",reason=\"expired\"} 0"
        ),
        "no membership expired: {metrics}"
    );
}

/// Sockets that never send a request are closed after the header-read timeout, and at most
/// `max_pending_connections` of them hold a slot, while real clients keep connecting.
#[tokio::test]
async fn silent_tcp_connections_are_closed_after_the_header_timeout() {
    use tokio::io::AsyncReadExt;
    let server = TestServer::start_with(Layer::Memory, |c| {
        c.edge.header_read_timeout = Duration::from_millis(1000);
        c.edge.max_pending_connections = 300;
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(tokio::net::TcpStream::connect(server.addr()).await.unwrap());
    }
    // Real clients are not held up by them.
    let mut a = server.join_first("general").await;
    let mut b = server.join("general").await;
    assert_eq!(a.recv_json().await, joined("general"));
    b.chat("still here").await;
    assert_eq!(a.recv_json().await, chat("still here", "general"));
    assert_eq!(b.recv_json().await, chat("still here", "general"));
    // Every silent socket is closed by the server (EOF) once the timeout passes.
    let started = std::time::Instant::now();
    for socket in &mut silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut byte))
            .await
            .expect("closed within the header timeout and some slack");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // The WebSockets were upgraded, so the timeout does not touch them.
    a.chat("after").await;
    assert_eq!(b.recv_json().await, chat("after", "general"));
}

/// Beyond `max_pending_connections`, new TCP connections wait in the backlog and are served
/// as soon as a pending one ends.
#[tokio::test]
async fn connections_past_the_pending_cap_wait_for_a_slot() {
    let server = TestServer::start_with(Layer::Memory, |c| {
        c.edge.header_read_timeout = Duration::from_millis(1500);
        c.edge.max_pending_connections = 20;
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(tokio::net::TcpStream::connect(server.addr()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // All slots are held by silent sockets: a request waits for one of them to time out.
    let started = std::time::Instant::now();
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "served before a slot was free: {:?}",
        started.elapsed()
    );
    drop(silent);
}
