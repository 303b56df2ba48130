//! A mixed fleet: a Python node running chanx's "Room Chat with Channel Layers" tutorial
//! (`tests/python/room_chat_tutorial`, chanx 2.13.0 + fast-channels 1.1.0 on FastAPI and
//! uvicorn) and a room-chat process on one Redis, with real WebSocket clients on both.
//!
//! The Python node runs in a virtualenv built from `tests/python/requirements.txt` (every
//! package pinned) under the Cargo target directory, once; a missing `python3`, venv or pip
//! fails the test. One fixture (one Redis, one node of each kind) serves every scenario, each
//! in rooms of its own; the scenarios run one after the other and print their wall times.
//!
//! What a mixed fleet offers, as checked here: join, chat and leave notices cross between the
//! nodes in both directions with the tutorial's texts; rooms stay isolated; `ping` works on
//! both. Notices a Python node sends carry only the tutorial's fields (no `sender`, `offset`,
//! `epoch`); ours carry them, and Python clients receive them as they are. `presence` and
//! `history` are ours: on a room-chat node, presence lists that node's (and any other
//! room-chat node's) members only, and history holds only the chat messages a room-chat node
//! stamped; a Python node answers both with an `error` frame. A room whose name is not a valid
//! group name (such as `café au lait`) is one room across both kinds. The generated TypeScript client
//! delivers notices without an offset as live ones, and they do not disturb its recovery after
//! a reconnect (`tests/tests/mixed_fleet/client_recovery.mjs`, run with `node`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use room_chat_e2e::{encode, python_venv, Client, Layer, RedisServer, TestServer};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// The pinned packages of the Python node.
const REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/requirements.txt");
/// Runs the tutorial app with uvicorn on a free port and says which.
const SERVE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/serve.py");
/// The generated client's part of the fleet, driven by `node`.
const CLIENT_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/mixed_fleet/client_recovery.mjs"
);
/// How long the Python node may take to start (imports, first run after the venv build).
const PYTHON_START: Duration = Duration::from_secs(60);

/// The tutorial app on uvicorn, as a child process (killed on drop).
struct PythonNode {
    _child: tokio::process::Child,
    port: u16,
    /// What it printed, for failure reports.
    log: Arc<Mutex<Vec<String>>>,
}

impl PythonNode {
    async fn start(redis_url: &str) -> Self {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("room-chat-tutorial-venv");
        let python =
            tokio::task::spawn_blocking(move || python_venv(&venv, Path::new(REQUIREMENTS)))
                .await
                .unwrap();
        let mut child = tokio::process::Command::new(python)
            .arg(SERVE)
            .env("REDIS_URL", redis_url)
            .env_remove("SEND_COMPLETION")
            // No __pycache__ in the source tree.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the venv's python starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = tokio::sync::oneshot::channel();
        collect(child.stdout.take().unwrap(), log.clone(), Some(port_tx));
        collect(child.stderr.take().unwrap(), log.clone(), None);
        let Ok(Ok(port)) = tokio::time::timeout(PYTHON_START, port_rx).await else {
            panic!(
                "the Python node did not start:\n{}",
                log.lock().unwrap().join("\n")
            )
        };
        Self {
            _child: child,
            port,
            log,
        }
    }

    fn room_url(&self, room: &str) -> String {
        format!("ws://127.0.0.1:{}/ws/room/{}", self.port, encode(room))
    }

    /// Connects to `room` and waits until the connection is served (its ping answered).
    async fn join(&self, room: &str) -> Client {
        let mut client = Client::connect(&self.room_url(room)).await;
        client.sync().await;
        client
    }

    /// [`Self::join`], then a chat message read back: the Python process's subscription to the
    /// room's Redis channel is in place (redis-py does not wait for `SUBSCRIBE` to be
    /// confirmed), so what others send from now on reaches this client.
    async fn join_settled(&self, room: &str) -> Client {
        let mut client = self.join(room).await;
        client.chat("(settled)").await;
        assert_eq!(
            client.recv_frame().await,
            tutorial("💬 (settled)", room),
            "{}",
            self.log()
        );
        client
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// Keeps reading `stream` (a full pipe would stall the child), line by line, into `log`; the
/// first `LISTENING <port>` line goes to `port`.
fn collect(
    stream: impl AsyncRead + Unpin + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
    mut port: Option<tokio::sync::oneshot::Sender<u16>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(p) = line.strip_prefix("LISTENING ") {
                if let (Some(tx), Ok(p)) = (port.take(), p.trim().parse()) {
                    let _ = tx.send(p);
                }
            }
            log.lock().unwrap().push(line);
        }
    });
}

/// A notice exactly as the tutorial's consumer sends it: `message` and `room_name`, nothing else.
fn tutorial(message: &str, room: &str) -> Value {
    json!({"action": "room_notification", "payload": {"message": message, "room_name": room}})
}

/// The tutorial's part of a frame (its action, and the payload's `message` and `room_name`).
fn tutorial_part(frame: &Value) -> Value {
    tutorial(
        frame["payload"]["message"].as_str().unwrap_or_default(),
        frame["payload"]["room_name"].as_str().unwrap_or_default(),
    )
}

/// Reads frames until one whose message is `message`; panics on anything else first.
async fn expect_notice(client: &mut Client, message: &str) -> Value {
    let frame = client.recv_frame().await;
    assert_eq!(frame["action"], "room_notification", "{frame}");
    assert_eq!(frame["payload"]["message"], message, "{frame}");
    frame
}

/// A notice that came from a room-chat node: the tutorial's fields plus ours.
fn assert_ours(frame: &Value, message: &str, room: &str, sender: Option<&str>, chat: bool) {
    assert_eq!(tutorial_part(frame), tutorial(message, room), "{frame}");
    assert_eq!(frame["payload"]["sender"], json!(sender), "{frame}");
    if chat {
        assert!(frame["payload"]["offset"].is_u64(), "{frame}");
        assert!(frame["payload"]["epoch"].is_string(), "{frame}");
    } else {
        // Join and leave notices have no place in history.
        assert_eq!(frame["payload"]["offset"], Value::Null, "{frame}");
        assert_eq!(frame["payload"]["epoch"], Value::Null, "{frame}");
    }
}

struct Fleet {
    _redis: RedisServer,
    rust: TestServer,
    python: PythonNode,
}

/// Every scenario on one fixture; each prints its wall time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_tutorial_node_and_a_rust_node_share_rooms() {
    let started = Instant::now();
    let redis = RedisServer::start().await.unwrap();
    let rust = TestServer::start(Layer::PubSub(redis.url())).await;
    let python = PythonNode::start(&redis.url()).await;
    let fleet = Fleet {
        _redis: redis,
        rust,
        python,
    };
    eprintln!(
        "fixture (Redis, both nodes, venv if cached): {:?}",
        started.elapsed()
    );
    timed(
        "notices cross both ways, rooms isolated",
        notices_cross_both_ways_and_rooms_stay_isolated(&fleet),
    )
    .await;
    timed("ping on both nodes", ping_works_on_both_nodes(&fleet)).await;
    timed(
        "presence and history on the Rust node",
        presence_and_history_stay_on_the_rust_side(&fleet),
    )
    .await;
    timed(
        "rooms named by any text are shared",
        rooms_named_by_any_text_are_shared(&fleet),
    )
    .await;
    timed(
        "generated client with offset-less notices",
        generated_client_copes_with_notices_without_offsets(&fleet),
    )
    .await;
    eprintln!("total: {:?}", started.elapsed());
}

/// Runs one scenario and prints how long it took.
async fn timed(name: &str, scenario: impl std::future::Future<Output = ()>) {
    let started = Instant::now();
    scenario.await;
    eprintln!("{name}: {:?}", started.elapsed());
}

/// Join, chat and leave notices between clients of both nodes, with the texts each side expects;
/// another room on both nodes hears none of it.
async fn notices_cross_both_ways_and_rooms_stay_isolated(fleet: &Fleet) {
    let room = "mixed";
    let Fleet { rust, python, .. } = fleet;
    // The other room, with a member on each node that hears the other (so its silence below
    // means isolation, not a broken room).
    let mut other_py = python.join_settled("elsewhere").await;
    let mut other_rust = rust.join_with("elsewhere", Some("eve")).await;
    let joined_other = expect_notice(&mut other_py, "🚪 Someone joined room 'elsewhere'").await;
    assert_ours(
        &joined_other,
        "🚪 Someone joined room 'elsewhere'",
        "elsewhere",
        Some("eve"),
        false,
    );

    let mut py1 = python.join_settled(room).await;
    let mut ada = rust.join_with(room, Some("ada")).await;
    // Ours reaches the Python client with the extra fields, the text the tutorial's.
    let joined = expect_notice(&mut py1, "🚪 Someone joined room 'mixed'").await;
    assert_ours(
        &joined,
        "🚪 Someone joined room 'mixed'",
        room,
        Some("ada"),
        false,
    );

    // The Python node's reaches ours exactly as the tutorial sent it.
    let mut py2 = python.join(room).await;
    assert_eq!(
        ada.recv_frame().await,
        tutorial("🚪 Someone joined room 'mixed'", room),
        "a Python node's notice has no sender, offset or epoch"
    );
    assert_eq!(
        py1.recv_frame().await,
        tutorial("🚪 Someone joined room 'mixed'", room)
    );

    ada.chat("from rust").await;
    let mine = expect_notice(&mut ada, "💬 from rust").await;
    assert_ours(&mine, "💬 from rust", room, Some("ada"), true);
    for py in [&mut py1, &mut py2] {
        let frame = expect_notice(py, "💬 from rust").await;
        // The same frame, with the place in history ours gave it.
        assert_eq!(frame, mine);
    }
    py2.chat("from python").await;
    for c in [&mut ada, &mut py1, &mut py2] {
        assert_eq!(c.recv_frame().await, tutorial("💬 from python", room));
    }
    // Non-ASCII text survives both serialisations (JSON on the sockets, msgpack in Redis).
    py1.chat("héllo 👋 «ok»").await;
    for c in [&mut ada, &mut py1, &mut py2] {
        assert_eq!(c.recv_frame().await, tutorial("💬 héllo 👋 «ok»", room));
    }

    py2.close().await;
    for c in [&mut ada, &mut py1] {
        assert_eq!(
            c.recv_frame().await,
            tutorial("👋 Someone left room 'mixed'", room)
        );
    }
    ada.close().await;
    let left = expect_notice(&mut py1, "👋 Someone left room 'mixed'").await;
    assert_ours(
        &left,
        "👋 Someone left room 'mixed'",
        room,
        Some("ada"),
        false,
    );

    // Nothing of `mixed` reached `elsewhere`, on either node, and it still works.
    for c in [&mut other_py, &mut other_rust] {
        assert_eq!(c.try_recv_text(Duration::from_millis(300)).await, None);
    }
    other_rust.chat("still apart").await;
    let apart = expect_notice(&mut other_py, "💬 still apart").await;
    assert_ours(&apart, "💬 still apart", "elsewhere", Some("eve"), true);
    expect_notice(&mut other_rust, "💬 still apart").await;
    assert_eq!(py1.try_recv_text(Duration::from_millis(300)).await, None);
}

/// `ping` → `pong` on both nodes, with and without `ref`; the two answer alike (as JSON).
async fn ping_works_on_both_nodes(fleet: &Fleet) {
    // A room each, so neither hears the other's join notice.
    let mut py = fleet.python.join("pings-python").await;
    let mut ours = fleet.rust.join_with("pings-rust", None).await;
    for c in [&mut py, &mut ours] {
        c.send_text(r#"{"action":"ping"}"#).await;
        assert_eq!(
            c.recv_frame().await,
            json!({"action": "pong", "payload": null})
        );
        c.send_text(r#"{"action":"ping","ref":"r1"}"#).await;
        assert_eq!(
            c.recv_frame().await,
            json!({"action": "pong", "payload": null, "version": 1, "ref": "r1"})
        );
    }
}

/// In a room with members on both nodes, `presence` and `history` on the Rust node: presence
/// lists the room-chat members only, history the messages a room-chat node stamped. The Python
/// node does not know either request.
async fn presence_and_history_stay_on_the_rust_side(fleet: &Fleet) {
    let room = "records";
    let Fleet { rust, python, .. } = fleet;
    let mut py = python.join_settled(room).await;
    let mut ada = rust.join_with(room, Some("ada")).await;
    expect_notice(&mut py, "🚪 Someone joined room 'records'").await;
    // Ada's own join notice has been through Redis before Bob joins, so Bob cannot see it.
    ada.chat("(settled)").await;
    expect_notice(&mut ada, "💬 (settled)").await;
    expect_notice(&mut py, "💬 (settled)").await;
    let mut bob = rust.join_with(room, Some("bob")).await;
    expect_notice(&mut py, "🚪 Someone joined room 'records'").await;
    expect_notice(&mut ada, "🚪 Someone joined room 'records'").await;

    ada.send_json(json!({"action": "presence", "ref": "p"}))
        .await;
    let presence = ada.recv_action("presence_result").await["payload"].clone();
    let names: Vec<&Value> = presence["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["name"])
        .collect();
    assert_eq!(names, [&json!("ada"), &json!("bob")], "{presence}");
    assert_eq!(
        presence["count"], 2,
        "the Python node's member is not counted"
    );

    // Interleaved senders: one at a time, each read back by everyone before the next.
    let mut stamped = vec![history_of(&mut ada).await["messages"][0].clone()];
    assert_eq!(stamped[0]["message"], "💬 (settled)");
    for (who, text) in [("ada", "r1"), ("py", "p1"), ("bob", "r2"), ("py", "p2")] {
        let sender = match who {
            "ada" => &mut ada,
            "bob" => &mut bob,
            _ => &mut py,
        };
        sender.chat(text).await;
        let message = format!("💬 {text}");
        let seen = expect_notice(&mut ada, &message).await;
        expect_notice(&mut bob, &message).await;
        expect_notice(&mut py, &message).await;
        if who == "py" {
            assert_eq!(seen, tutorial(&message, room), "not stamped");
        } else {
            stamped.push(seen["payload"].clone());
        }
    }
    let history = history_of(&mut bob).await;
    assert_eq!(history["messages"], json!(stamped), "{history}");
    assert_eq!(history["complete"], true);
    let offsets: Vec<u64> = stamped
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    let consecutive: Vec<u64> = (offsets[0]..offsets[0] + 3).collect();
    assert_eq!(offsets, consecutive, "the Python messages take no offset");

    // On the Python node both requests are unknown actions: an error frame, echoing `ref`.
    for action in ["presence", "history"] {
        py.send_json(
            json!({"action": action, "payload": {"since": null, "limit": 10}, "ref": action}),
        )
        .await;
        let frame = py.recv_frame().await;
        assert_eq!(frame["action"], "error", "{frame}");
        assert_eq!(frame["payload"][0]["type"], "union_tag_invalid", "{frame}");
        assert_eq!(frame["ref"], action, "{frame}");
    }
}

/// The room's history (its newest 10 messages), asked on `client`'s node.
async fn history_of(client: &mut Client) -> Value {
    client
        .send_json(
            json!({"action": "history", "payload": {"since": null, "limit": 10}, "ref": "h"}),
        )
        .await;
    client.recv_action("history_result").await["payload"].clone()
}

/// A room whose `room_<name>` is not a valid group name (non-ASCII, with spaces) is still one
/// room across both kinds: the Python pub/sub layer names its Redis channel after the raw group
/// text (`room_café au lait`), and room-chat's pub/sub layer uses that text for the channel too
/// (its local tables use the escaped, valid name).
async fn rooms_named_by_any_text_are_shared(fleet: &Fleet) {
    let room = "café au lait";
    let Fleet { rust, python, .. } = fleet;
    let mut py1 = python.join_settled(room).await;
    let mut ada = rust.join_with(room, Some("ada")).await;
    let joined = format!("🚪 Someone joined room '{room}'");
    let seen = expect_notice(&mut py1, &joined).await;
    assert_ours(&seen, &joined, room, Some("ada"), false);
    let mut py2 = python.join(room).await;
    for c in [&mut ada, &mut py1] {
        assert_eq!(c.recv_frame().await, tutorial(&joined, room));
    }
    py2.chat("de Python").await;
    for c in [&mut ada, &mut py1, &mut py2] {
        assert_eq!(c.recv_frame().await, tutorial("💬 de Python", room));
    }
    ada.chat("de Rust").await;
    let mine = expect_notice(&mut ada, "💬 de Rust").await;
    for py in [&mut py1, &mut py2] {
        assert_eq!(expect_notice(py, "💬 de Rust").await, mine);
    }
    for c in [&mut py1, &mut py2, &mut ada] {
        assert_eq!(c.try_recv_text(Duration::from_millis(300)).await, None);
    }
}

/// The generated TypeScript client, run by `node` against both nodes (see the script).
async fn generated_client_copes_with_notices_without_offsets(fleet: &Fleet) {
    let node_modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node_modules/ws");
    assert!(
        node_modules.is_dir(),
        "the Node packages are missing: run `make node-deps` (npm ci)"
    );
    let run = tokio::process::Command::new("node")
        .arg(CLIENT_SCRIPT)
        .arg(format!("http://{}", fleet.rust.addr()))
        .arg(format!("ws://127.0.0.1:{}", fleet.python.port))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    // Its own steps wait a few seconds at most; a hung script fails the test, killed.
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the client script finished within 2 minutes")
        .expect("node runs (install Node.js 20 or later)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{stdout}");
    assert!(
        output.status.success(),
        "the client script failed:\n{stdout}\n{stderr}\nPython node:\n{}",
        fleet.python.log()
    );
}
