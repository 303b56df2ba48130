//! Display names, presence and history: on the in-memory layer in one process, and on Redis
//! shared by two processes (history written through one is read through the other; flushing
//! Redis starts a new epoch).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use room_chat_e2e::{room_key, Client, Layer, RedisServer, TestServer};
use room_chat_layers::testing::command;
use serde_json::{json, Value};

/// Connects to `room` as `name` and waits until the connect hook has run.
async fn named(server: &TestServer, room: &str, name: &str) -> Client {
    server.join_with(room, Some(name)).await
}

/// Asks for presence; returns the payload.
async fn presence(client: &mut Client) -> Value {
    client
        .send_json(json!({"action": "presence", "ref": "p"}))
        .await;
    let frame = client.recv_action("presence_result").await;
    assert_eq!(frame["ref"], "p");
    frame["payload"].clone()
}

/// The listed names, sorted as JSON text: names first (`"…` sorts before `null`), then the
/// anonymous.
fn names(presence: &Value) -> Vec<Value> {
    let mut names: Vec<Value> = presence["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].clone())
        .collect();
    names.sort_by_key(Value::to_string);
    names
}

/// Asks for history; returns the payload.
async fn history(client: &mut Client, since: Value, limit: i64) -> Value {
    client
        .send_json(
            json!({"action": "history", "payload": {"since": since, "limit": limit}, "ref": "h"}),
        )
        .await;
    let frame = client.recv_action("history_result").await;
    assert_eq!(frame["ref"], "h");
    frame["payload"].clone()
}

fn texts(history: &Value) -> Vec<String> {
    history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap().to_owned())
        .collect()
}

/// Sends a chat message and reads it back; returns the delivered payload.
async fn say(client: &mut Client, text: &str) -> Value {
    client.chat(text).await;
    say_seen(client, text).await
}

/// Waits for the chat message `text` and returns its payload.
async fn say_seen(client: &mut Client, text: &str) -> Value {
    loop {
        let frame = client.recv_frame().await;
        if frame["action"] == "room_notification"
            && frame["payload"]["message"] == format!("💬 {text}")
        {
            return frame["payload"].clone();
        }
    }
}

/// Two service processes on `redis`, with `ada` on the first and `bob` on the second in `room`.
async fn fleet_of_two(redis: &RedisServer, room: &str) -> (TestServer, TestServer, Client, Client) {
    let one = TestServer::start(Layer::PubSub(redis.url())).await;
    let two = TestServer::start(Layer::PubSub(redis.url())).await;
    let ada = named(&one, room, "ada").await;
    let bob = named(&two, room, "bob").await;
    (one, two, ada, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_the_sender_of_notices_and_broken_names_are_refused() {
    let server = TestServer::start(Layer::Memory).await;
    let mut ada = named(&server, "names", "ada").await;
    let mut bob = named(&server, "names", "Bób").await;
    // The notice text is the tutorial's; who it is about is `sender`.
    let joined = ada.recv_json().await;
    assert_eq!(
        joined,
        json!({"action": "room_notification", "payload": {
            "message": "🚪 Someone joined room 'names'", "room_name": "names", "sender": "Bób"}})
    );
    let said = say(&mut bob, "hi").await;
    assert_eq!(said["sender"], "Bób");
    assert_eq!(said["message"], "💬 hi");
    assert!(
        said["offset"].is_u64() && said["epoch"].is_string(),
        "{said}"
    );
    assert_eq!(say(&mut ada, "hello").await["sender"], "ada");
    // Anonymous connections (the tutorial's) send null.
    let mut anon = server.join("names").await;
    anon.chat("psst").await;
    assert_eq!(anon.recv_frame().await["payload"]["sender"], Value::Null);
    bob.close().await;
    let left = loop {
        let frame = ada.recv_action("room_notification").await;
        if frame["payload"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("👋"))
        {
            break frame;
        }
    };
    assert_eq!(left["payload"]["message"], "👋 Someone left room 'names'");
    assert_eq!(left["payload"]["sender"], "Bób");

    let url = |query: &str| format!("{}?{query}", server.room_url("names"));
    for (query, status, reason) in [
        (
            "name=a%E2%80%AEb",
            403,
            "display name must not contain invisible formatting characters (such as U+202E)",
        ),
        (
            "name=%20ada",
            403,
            "display name must not start or end with whitespace",
        ),
        (
            "name=a%07",
            403,
            "display name must not contain control characters",
        ),
        (
            &format!("name={}", "x".repeat(33)),
            403,
            "display name is longer than 32 characters",
        ),
        (
            "name=%FF",
            400,
            "query parameter `name`: `%FF` is not percent-encoded UTF-8",
        ),
    ] {
        let (got, body) = Client::try_connect(&url(query)).await.err().unwrap();
        assert_eq!((got, body.as_str()), (status, reason), "{query}");
    }
    // NFC: a combining accent is the same name; `+` is a space, as forms write it; `/` is fine.
    let mut nfd = Client::connect(&url("name=Be%CC%81a+B/C")).await;
    nfd.sync().await;
    let p = presence(&mut nfd).await;
    assert!(names(&p).contains(&json!("Béa B/C")), "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_history_in_one_process() {
    let server = TestServer::start_with(Layer::Memory, |c| c.room_chat.history_size = 3).await;
    let mut ada = named(&server, "hist", "ada").await;
    let mut bob = named(&server, "hist", "bob").await;
    let _anon = server.join("hist").await;
    let p = presence(&mut ada).await;
    assert_eq!(p["room_name"], "hist");
    assert_eq!(p["count"], 3);
    assert_eq!(p["truncated"], false);
    assert_eq!(names(&p), vec![json!("ada"), json!("bob"), Value::Null]);
    assert!(p["members"][0]["joined_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    // Other rooms are other rooms.
    let mut elsewhere = server.join("other").await;
    assert_eq!(presence(&mut elsewhere).await["count"], 1);

    let mut offsets = Vec::new();
    for text in ["one", "two", "three", "four"] {
        offsets.push(say(&mut ada, text).await["offset"].as_u64().unwrap());
    }
    assert!(offsets.windows(2).all(|w| w[1] > w[0]), "{offsets:?}");
    let all = history(&mut bob, Value::Null, 100).await;
    // Three kept: the oldest is gone, so the history is not complete.
    assert_eq!(texts(&all), ["💬 two", "💬 three", "💬 four"]);
    assert_eq!(all["complete"], false);
    assert_eq!(all["messages"][0]["sender"], "ada");
    let epoch = all["epoch"].clone();
    assert_eq!(all["messages"][2]["epoch"], epoch);
    let since = history(&mut bob, json!(offsets[1]), 100).await;
    assert_eq!(texts(&since), ["💬 three", "💬 four"]);
    assert_eq!(since["complete"], true);
    let cut = history(&mut bob, json!(offsets[1]), 1).await;
    assert_eq!(
        (texts(&cut), cut["complete"].clone()),
        (vec!["💬 three".to_owned()], json!(false))
    );
    let up_to_date = history(&mut bob, json!(offsets[3]), 100).await;
    assert_eq!(
        (texts(&up_to_date).len(), up_to_date["complete"].clone()),
        (0, json!(true))
    );

    // Leaving takes a member out of the list.
    bob.close().await;
    let p = presence(&mut ada).await;
    assert_eq!(names(&p), vec![json!("ada"), Value::Null]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_lists_at_most_its_cap() {
    let server =
        TestServer::start_with(Layer::Memory, |c| c.room_chat.max_presence_members = 2).await;
    let mut clients = Vec::new();
    for name in ["a", "b", "c"] {
        clients.push(named(&server, "cap", name).await);
    }
    let p = presence(&mut clients[0]).await;
    assert_eq!(
        (p["count"].clone(), p["truncated"].clone()),
        (json!(3), json!(true))
    );
    assert_eq!(names(&p), vec![json!("a"), json!("b")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_error_frames_and_the_connection_stays_open() {
    let server = TestServer::start_with(Layer::Memory, |c| {
        c.room_chat.room_query_rate = 1;
        c.room_chat.room_query_burst = 3;
    })
    .await;
    let mut c = server.join("bad").await;
    let cases = [
        (json!({"since": "x", "limit": 5}), "since"),
        (json!({"since": 1.5}), "since"),
        (json!({"since": null, "limit": -1}), "limit"),
        (json!({"since": -3, "limit": 1}), "since"),
        (json!({"limit": 101}), "limit"),
    ];
    for (payload, field) in cases {
        c.send_json(json!({"action": "history", "payload": payload}))
            .await;
        let frame = c.recv_frame().await;
        assert_eq!(frame["action"], "error", "{payload}: {frame}");
        let item = &frame["payload"][0];
        assert_eq!(item["loc"], json!(["history", "payload", field]), "{frame}");
    }
    // Limits on the rate: three at once, then an error frame naming the limit.
    for _ in 0..3 {
        presence(&mut c).await;
    }
    c.send_json(json!({"action": "presence"})).await;
    let frame = c.recv_frame().await;
    assert_eq!(frame["action"], "error");
    assert_eq!(frame["payload"][0]["type"], "rate_limited", "{frame}");
    // Still open, and the bucket refills.
    c.sync().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    presence(&mut c).await;
}

/// Presence and history shared by two processes on one Redis, and a new epoch once Redis
/// forgets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_presence_and_history_and_a_flush_changes_the_epoch() {
    let redis = RedisServer::start().await.unwrap();
    let (_one, _two, mut ada, mut bob) = fleet_of_two(&redis, "fleet").await;
    for c in [&mut ada, &mut bob] {
        let p = presence(c).await;
        assert_eq!(names(&p), vec![json!("ada"), json!("bob")], "{p}");
        assert_eq!(p["count"], 2);
    }
    let first = say(&mut ada, "from one").await;
    let second = say(&mut ada, "again").await;
    assert_eq!(
        second["offset"].as_u64().unwrap(),
        first["offset"].as_u64().unwrap() + 1
    );
    let h = history(&mut bob, Value::Null, 10).await;
    assert_eq!(texts(&h), ["💬 from one", "💬 again"]);
    assert_eq!(h["complete"], true);
    assert_eq!(h["epoch"], first["epoch"]);
    assert_eq!(h["messages"][1], second);
    // Bob, on the other process, continues the same sequence.
    let third = say(&mut bob, "from two").await;
    assert_eq!(
        third["offset"].as_u64().unwrap(),
        first["offset"].as_u64().unwrap() + 2
    );
    assert_eq!(third["epoch"], first["epoch"]);

    redis.raw_command("FLUSHALL").await.unwrap();
    let after = history(&mut ada, json!(third["offset"]), 10).await;
    assert_ne!(
        after["epoch"], first["epoch"],
        "a flushed history has a new epoch"
    );
    assert_eq!(texts(&after).len(), 0);
    let fresh = say(&mut ada, "after the flush").await;
    assert_eq!(fresh["epoch"], after["epoch"]);
    assert_eq!(fresh["offset"], 1);
    // Presence comes back with the next heartbeat of each process.
    bob.close().await;
    let gone = presence(&mut ada).await;
    assert!(!names(&gone).contains(&json!("bob")), "{gone}");
}

/// `HISTORY_SIZE=0` turns history off on both kinds of store: chat messages carry no offset or
/// epoch (nothing is written per message), `history` gets an error frame naming why and the
/// connection stays open, and presence still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_history_off_messages_carry_no_offset_and_history_says_so() {
    let redis = RedisServer::start().await.unwrap();
    for layer in [Layer::Memory, Layer::PubSub(redis.url())] {
        let redis_backed = matches!(layer, Layer::PubSub(_));
        let server = TestServer::start_with(layer, |c| c.room_chat.history_size = 0).await;
        let mut ada = named(&server, "quiet", "ada").await;
        let said = say(&mut ada, "not kept").await;
        assert_eq!(said["message"], "💬 not kept");
        assert_eq!(said["sender"], "ada");
        assert_eq!(
            (said["offset"].clone(), said["epoch"].clone()),
            (Value::Null, Value::Null)
        );
        ada.send_json(json!({"action": "history", "payload": {"since": null}, "ref": "h"}))
            .await;
        let error = ada.recv_action("error").await;
        // It answers the request: a client waiting on `h` fails at once, not at its timeout.
        assert_eq!(
            (error["ref"].clone(), error["version"].clone()),
            (json!("h"), json!(1))
        );
        assert_eq!(error["payload"][0]["type"], "history_off");
        assert_eq!(
            error["payload"][0]["msg"],
            "this server keeps no history (HISTORY_SIZE=0)"
        );
        assert_eq!(presence(&mut ada).await["count"], 1);
        if redis_backed {
            // Of the room, only its presence is in Redis: no history was written.
            let keys = command(redis.port(), &["KEYS", "room-chat:*"])
                .await
                .unwrap();
            assert_eq!(
                redis::from_redis_value::<Vec<String>>(keys).unwrap(),
                [room_key("quiet", "presence")]
            );
        }
    }
}

/// Calls of one command so far, from Redis's `INFO commandstats` (0 if never called).
async fn calls(redis: &RedisServer, command: &str) -> u64 {
    let info = redis.raw_command("INFO commandstats").await.unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// On one Redis, a chat message is appended and published by one command (the stamp is written
/// into the broadcast inside Redis), so every member still sees consecutive offsets; a Redis that
/// forgot the script (restart, `SCRIPT FLUSH`) is sent its source once and nothing is missed; and
/// a room whose history keys hold something else still chats: its messages arrive without an
/// offset, `history` there answers with an error frame, and other rooms keep their history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_command_per_chat_message_and_a_broken_history_still_chats() {
    let redis = RedisServer::start().await.unwrap();
    let (one, two, mut ada, mut bob) = fleet_of_two(&redis, "stamped").await;
    let (evals, evalshas) = (calls(&redis, "eval").await, calls(&redis, "evalsha").await);
    let mut offsets = Vec::new();
    for i in 0..5 {
        let sent = say(&mut ada, &format!("n{i}")).await;
        let seen = say_seen(&mut bob, &format!("n{i}")).await;
        assert_eq!(
            sent, seen,
            "both processes deliver the same stamped payload"
        );
        assert_eq!(sent["sender"], "ada");
        assert!(
            sent["epoch"].as_str().is_some_and(|e| e.len() == 16),
            "{sent}"
        );
        offsets.push(sent["offset"].as_u64().unwrap());
    }
    assert_eq!(offsets, [1, 2, 3, 4, 5]);
    // Each message is one EVALSHA; only the first, which found no script in this fresh Redis,
    // was sent again as an EVAL (a separate append would have loaded its script instead).
    assert_eq!(calls(&redis, "evalsha").await - evalshas, 5);
    assert_eq!(calls(&redis, "eval").await - evals, 1);
    redis.raw_command("SCRIPT FLUSH").await.unwrap();
    let sixth = say(&mut ada, "after the flush").await;
    assert_eq!(sixth["offset"], 6, "{sixth}");
    assert_eq!(say_seen(&mut bob, "after the flush").await, sixth);
    assert_eq!(calls(&redis, "eval").await - evals, 2);
    let h = history(&mut bob, Value::Null, 10).await;
    assert_eq!(texts(&h).len(), 6);
    assert_eq!(h["messages"][5], sixth);

    // The room "broken" has a string where its history's hash should be.
    let meta = room_key("broken", "meta");
    redis.raw_command(&format!("SET {meta} x")).await.unwrap();
    let mut cy = named(&one, "broken", "cy").await;
    let mut dee = named(&two, "broken", "dee").await;
    let delivered = say(&mut cy, "still here").await;
    assert_eq!(delivered["offset"], Value::Null, "{delivered}");
    assert_eq!(delivered["epoch"], Value::Null);
    assert_eq!(delivered["sender"], "cy");
    assert_eq!(say_seen(&mut dee, "still here").await, delivered);
    dee.send_json(json!({"action": "history", "payload": {"since": null, "limit": 5}, "ref": "b"}))
        .await;
    assert_eq!(
        dee.recv_action("error").await,
        json!({"action": "error", "payload": {"detail": "Failed to process message for history"},
               "ref": "b", "version": 1})
    );
    // The other room is untouched.
    let next = say(&mut ada, "n6").await;
    assert_eq!(next["offset"], 7);
}

/// While Redis is down, `presence` and `history` are answered at once with an error frame that
/// echoes their `ref` (a client waiting on them fails instead of timing out) and the connection
/// stays open; once Redis is back both answer again: presence lists the member (its process
/// re-adds it), and history has started a new epoch, since Redis lost the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_history_fail_clearly_while_redis_is_down_and_come_back() {
    let mut redis = RedisServer::start().await.unwrap();
    let server = TestServer::start_with(Layer::PubSub(redis.url()), |c| {
        c.room_chat.presence_expiry = std::time::Duration::from_millis(900);
        // The test polls presence until Redis is back; the request rate is not under test.
        c.room_chat.room_query_rate = 0;
    })
    .await;
    let mut ada = named(&server, "outage", "ada").await;
    let before = say(&mut ada, "before").await;

    redis.kill().await;
    for (action, request) in [
        ("presence", json!({"action": "presence", "ref": "down"})),
        (
            "history",
            json!({"action": "history", "payload": {"since": null, "limit": 5}, "ref": "down"}),
        ),
    ] {
        ada.send_json(request).await;
        assert_eq!(
            ada.recv_action("error").await,
            json!({"action": "error",
                   "payload": {"detail": format!("Failed to process message for {action}")},
                   "ref": "down", "version": 1})
        );
    }
    ada.send_json(json!({"action": "ping", "ref": "alive"}))
        .await;
    assert_eq!(ada.recv_action("pong").await["ref"], "alive");

    redis.restart().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        ada.send_json(json!({"action": "presence", "ref": "p"}))
            .await;
        let frame = ada.recv_frame().await;
        if frame["action"] == "presence_result" && names(&frame["payload"]) == [json!("ada")] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "presence never answered again: {frame}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let after = history(&mut ada, Value::Null, 5).await;
    assert_ne!(after["epoch"], before["epoch"], "{after}");
    assert_eq!(texts(&after).len(), 0);
}
