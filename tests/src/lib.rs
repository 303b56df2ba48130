//! Test support for the black-box suites in `tests/tests/`: the service started on
//! `127.0.0.1:0` over a chosen channel layer, and WebSocket clients speaking the room chat
//! protocol (real tokio-tungstenite clients over real TCP).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use room_chat::{Config, RunningServer};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use room_chat_layers::testing::RedisServer;

/// How long a test waits for a frame it expects before failing.
pub const FRAME_WAIT: Duration = Duration::from_secs(5);

/// Which layer serves the room chat.
#[derive(Debug, Clone)]
pub enum Layer {
    /// In-memory (no Redis).
    Memory,
    /// Redis pub/sub (`chat` alias) on the given URL.
    PubSub(String),
    /// Redis queue (`queue` alias) on the given URL.
    Queue(String),
}

/// A config for tests: a free port on loopback, quick shutdown.
pub fn test_config() -> Config {
    let mut config = Config {
        host: "127.0.0.1".parse().unwrap(),
        port: 0,
        redis_url: None,
        ..Config::default()
    };
    config.edge.shutdown_drain = Duration::from_millis(300);
    config.edge.shutdown_timeout = Duration::from_secs(5);
    // Scenarios that are not about the inbound rate limit send faster than a person types;
    // a limit far above them keeps the limiter on the path without pacing them.
    config.session.inbound_rate = 100_000;
    config.session.inbound_burst = 100_000;
    config
}

/// A running service.
pub struct TestServer {
    pub server: RunningServer,
}

impl TestServer {
    /// Starts the service with the room chat on `layer`.
    pub async fn start(layer: Layer) -> Self {
        Self::start_with(layer, |_| {}).await
    }

    /// Starts the service with the room chat on `layer`, after `tweak`ing the config.
    pub async fn start_with(layer: Layer, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config();
        let (url, alias) = match &layer {
            Layer::Memory => (None, "chat"),
            Layer::PubSub(url) => (Some(url.clone()), "chat"),
            Layer::Queue(url) => (Some(url.clone()), "queue"),
        };
        config.redis_url = url;
        config.chat_layer = alias.to_owned();
        tweak(&mut config);
        let layers = config.layer_registry().unwrap();
        let server = RunningServer::start(config, layers).await.unwrap();
        Self { server }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `ws://addr/ws/room/{segment}` (the segment as given: encode it yourself).
    pub fn room_url(&self, segment: &str) -> String {
        format!("ws://{}/ws/room/{segment}", self.addr())
    }

    /// Connects a client to `room` (percent-encoded here) and waits until the server has
    /// finished its connect hook (group joined, join notice published): frames are handled only
    /// after it, so the answer to a ping proves it.
    pub async fn join(&self, room: &str) -> Client {
        self.join_with(room, None).await
    }

    /// [`Self::join`] as the display name `name` (`?name=`, percent-encoded here), or
    /// anonymously for `None`.
    pub async fn join_with(&self, room: &str, name: Option<&str>) -> Client {
        let mut url = self.room_url(&encode(room));
        if let Some(name) = name {
            url = format!("{url}?name={}", encode(name));
        }
        let mut client = Client::connect(&url).await;
        client.sync().await;
        client
    }

    /// [`Self::join`] for the first member of a room, then waits until the member's own
    /// broadcasts have gone all the way through the layer (its join notice included), by sending
    /// a chat message and reading it back: one sender's broadcasts arrive in order. Later joiners
    /// therefore cannot see this member's join notice. Returns the client with the marker read.
    pub async fn join_first(&self, room: &str) -> Client {
        let mut client = self.join(room).await;
        client.chat("(settled)").await;
        let marker = chat("(settled)", room);
        assert_eq!(client.recv_json().await, marker, "first member's marker");
        client
    }

    /// GET a path; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr(), path).await
    }
}

/// The sum of the samples in `/metrics` text whose line starts with `prefix` (a metric name and
/// the first of its labels: `room_chat_layer_messages_total{alias="chat",event="dropped"`);
/// `None` when no line does, so a renamed metric fails a test instead of reading as 0.
pub fn metric_sum(text: &str, prefix: &str) -> Option<u64> {
    let samples: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}

/// The Redis key the service keeps `what` (`meta`, `log`, `presence`) of `room` under:
/// `room-chat:{<hex of the name>}:<what>`, as the README documents it.
pub fn room_key(room: &str, what: &str) -> String {
    let hex: String = room.bytes().map(|b| format!("{b:02x}")).collect();
    format!("room-chat:{{{hex}}}:{what}")
}

/// Percent-encodes a path segment.
pub fn encode(segment: &str) -> String {
    room_chat_protocol::runtime::encode_path_segment(segment)
}

/// An HTTP response as the tests see it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// The status line and headers, lower-cased (header names and values compare as text).
    pub head: String,
    /// The body, de-chunked.
    pub body: String,
    /// Whether the body came with chunked transfer encoding.
    pub chunked: bool,
}

/// Sends one raw HTTP/1.1 request (the whole head, ending in a blank line) and reads the
/// response to the end. Raw on purpose: tests can send headers an HTTP client would refuse,
/// and the suite needs no HTTP client crate.
pub async fn http_request(addr: SocketAddr, request: &str) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(FRAME_WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("HTTP response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let head = head.to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head.contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    HttpResponse {
        status,
        head,
        body,
        chunked,
    }
}

/// GET `path`; returns status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = http_get_full(addr, path).await;
    (response.status, response.body)
}

/// GET `path` with the headers kept.
pub async fn http_get_full(addr: SocketAddr, path: &str) -> HttpResponse {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    http_request(addr, &request).await
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// A WebSocket client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames read while waiting for something else (see [`Client::sync`]).
    pending: std::collections::VecDeque<String>,
}

/// How a connection ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// A close frame with this code and reason.
    Frame(u16, String),
    /// The stream ended without a close frame.
    Abrupt,
}

impl Client {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self::from_stream(ws)
    }

    /// A client over a connection already made (for example one a test split into its send and
    /// receive halves and put back together with `reunite`).
    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self {
            ws,
            pending: Default::default(),
        }
    }

    /// Pings with a ref and waits for its pong; frames that arrive first are kept for the next
    /// `recv_*` calls.
    pub async fn sync(&mut self) {
        self.send_text(r#"{"action":"ping","ref":"sync"}"#).await;
        // Recognised by its parsed value, so servers that format JSON their own way (Python's
        // `json.dumps` puts a space after `:` and `,`) are synchronised with too.
        let pong = json!({"action": "pong", "payload": null, "version": 1, "ref": "sync"});
        let mut early = Vec::new();
        loop {
            let text = self.read_text().await;
            if serde_json::from_str::<Value>(&text).ok().as_ref() == Some(&pong) {
                break;
            }
            early.push(text);
        }
        self.pending.extend(early);
    }

    /// Tries to connect; on an HTTP refusal returns its status and body.
    pub async fn try_connect(url: &str) -> Result<Self, (u16, String)> {
        match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => Ok(Self::from_stream(ws)),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err((status, body))
            }
            Err(e) => panic!("unexpected connect error: {e}"),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Sends one raw frame as it is (for frames a well-behaved client would never send).
    pub async fn send_raw(&mut self, frame: tungstenite::protocol::frame::Frame) {
        self.ws.send(Message::Frame(frame)).await.unwrap();
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.unwrap();
    }

    /// Sends a chat message.
    pub async fn chat(&mut self, text: &str) {
        self.send_json(json!({"action": "room_chat", "payload": {"message": text}}))
            .await;
    }

    /// The next text frame, as text (pings and pongs skipped). Panics on close or timeout.
    pub async fn recv_text(&mut self) -> String {
        if let Some(text) = self.pending.pop_front() {
            return text;
        }
        self.read_text().await
    }

    async fn read_text(&mut self) -> String {
        loop {
            let next = tokio::time::timeout(FRAME_WAIT, self.ws.next())
                .await
                .expect("a frame in time");
            match next {
                Some(Ok(Message::Text(text))) => return text.to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next text frame as JSON, as the tutorial's tests see it: a room notification's place
    /// in history (`offset`, `epoch`, which differ from run to run) is left out. History tests
    /// read it with [`Self::recv_frame`].
    pub async fn recv_json(&mut self) -> Value {
        tutorial_view(&self.recv_text().await)
    }

    /// The next text frame as JSON, whole.
    pub async fn recv_frame(&mut self) -> Value {
        serde_json::from_str(&self.recv_text().await).unwrap()
    }

    /// The next frame whose `action` is `action`, skipping others (notices that race with a
    /// request's answer).
    pub async fn recv_action(&mut self, action: &str) -> Value {
        loop {
            let frame = self.recv_frame().await;
            if frame["action"] == action {
                return frame;
            }
        }
    }

    /// The next frame, if one arrives within `wait` (pings and pongs skipped).
    pub async fn try_recv_text(&mut self, wait: Duration) -> Option<String> {
        if let Some(text) = self.pending.pop_front() {
            return Some(text);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Text(text)))) => return Some(text.to_string()),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected a text frame or silence, got {other:?}"),
            }
        }
    }

    /// Reads until the connection closes; returns the close frame (frames before it are
    /// returned too, so a test can check what was delivered first).
    pub async fn recv_until_closed(&mut self, wait: Duration) -> (Vec<String>, Closed) {
        let mut frames: Vec<String> = self.pending.drain(..).collect();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("connection not closed within {wait:?}; got {frames:?}"),
                Ok(Some(Ok(Message::Text(text)))) => frames.push(text.to_string()),
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    return (
                        frames,
                        Closed::Frame(u16::from(frame.code), frame.reason.to_string()),
                    )
                }
                Ok(Some(Ok(Message::Close(None)))) => {
                    return (
                        frames,
                        Closed::Frame(u16::from(CloseCode::Status), String::new()),
                    )
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => return (frames, Closed::Abrupt),
            }
        }
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        // Read until the server's close frame so the server has seen ours.
        let _ = tokio::time::timeout(FRAME_WAIT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// The underlying stream, for tests that misbehave on purpose.
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }
}

/// A frame's text as JSON, without a room notification's place in history (`offset`, `epoch`):
/// what [`Client::recv_json`] returns, for frames read as text.
pub fn tutorial_view(text: &str) -> Value {
    let mut frame: Value = serde_json::from_str(text).unwrap();
    if frame["action"] == "room_notification" {
        if let Some(payload) = frame["payload"].as_object_mut() {
            payload.remove("offset");
            payload.remove("epoch");
        }
    }
    frame
}

/// `{"action":"room_notification","payload":{"message":..,"room_name":..,"sender":null}}`, an
/// anonymous connection's notice as [`Client::recv_json`] shows it.
pub fn notification(message: &str, room: &str) -> Value {
    json!({"action": "room_notification", "payload": {"message": message, "room_name": room, "sender": null}})
}

/// The join notice others see.
pub fn joined(room: &str) -> Value {
    notification(&format!("🚪 Someone joined room '{room}'"), room)
}

/// The leave notice others see.
pub fn left(room: &str) -> Value {
    notification(&format!("👋 Someone left room '{room}'"), room)
}

/// A chat message as delivered.
pub fn chat(text: &str, room: &str) -> Value {
    notification(&format!("💬 {text}"), room)
}

/// Polls `check` every 50 ms until it holds or `wait` passes; returns whether it held.
pub async fn eventually<F, Fut>(wait: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The python of a virtualenv at `dir` holding exactly the packages pinned in the pip
/// requirements file `requirements` (see [`room_chat_layers::testing::python_venv`]: built once
/// under the target directory, rebuilt when the file's requirements change). Panics, failing
/// the test, if it cannot be built.
pub fn python_venv(dir: &std::path::Path, requirements: &std::path::Path) -> std::path::PathBuf {
    use room_chat_layers::testing::{python_venv, requirements_in};
    let wanted = requirements_in(requirements).unwrap_or_else(|e| panic!("{e}"));
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    python_venv(dir, &wanted).unwrap_or_else(|e| panic!("the virtualenv {}: {e}", dir.display()))
}
