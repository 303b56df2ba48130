//! Presence on Redis outlives no process: the binary is killed with SIGKILL (no leave, no
//! cleanup), and its members disappear from another process's `presence` within the expiry.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use room_chat_e2e::{Client, Layer, RedisServer, TestServer};
use serde_json::{json, Value};

const EXPIRY: Duration = Duration::from_secs(2);

/// Starts the binary on Redis with a short presence expiry; returns it and its address.
fn start_binary(redis_url: &str) -> (std::process::Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_room-chat"))
        .args([
            "--port",
            "0",
            "--redis-url",
            redis_url,
            "--presence-expiry",
            "2s",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
                return (child, addr);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the service did not start");
}

async fn listed(client: &mut Client) -> Vec<Value> {
    client.send_json(json!({"action": "presence"})).await;
    let frame = client.recv_action("presence_result").await;
    let mut names: Vec<Value> = frame["payload"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].clone())
        .collect();
    names.sort_by_key(Value::to_string);
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_leaves_presence_within_the_expiry() {
    let redis = RedisServer::start().await.unwrap();
    let (mut binary, addr) = start_binary(&redis.url());
    let here = TestServer::start_with(Layer::PubSub(redis.url()), |c| {
        c.room_chat.presence_expiry = EXPIRY;
        c.room_chat.room_query_rate = 0;
    })
    .await;
    let mut doomed = Client::connect(&format!("ws://{addr}/ws/room/crash?name=doomed")).await;
    doomed.sync().await;
    let mut watcher = Client::connect(&format!("{}?name=watcher", here.room_url("crash"))).await;
    watcher.sync().await;
    assert_eq!(
        listed(&mut watcher).await,
        [json!("doomed"), json!("watcher")]
    );
    // Past one expiry, the heartbeats keep both listed.
    tokio::time::sleep(EXPIRY + Duration::from_millis(500)).await;
    assert_eq!(
        listed(&mut watcher).await,
        [json!("doomed"), json!("watcher")]
    );

    binary.kill().unwrap(); // SIGKILL: no leave notice, no ZREM
    binary.wait().unwrap();
    let killed = Instant::now();
    loop {
        let names = listed(&mut watcher).await;
        if names == [json!("watcher")] {
            break;
        }
        assert!(
            killed.elapsed() < EXPIRY + Duration::from_secs(1),
            "still listed {:?} after the kill: {names:?}",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(doomed);
}
