//! Bad input, end to end: every row of the protocol's error table gets its exact error frame,
//! the connection stays open and the room keeps working; frames over the size limit, refused
//! room names, origins and the connection cap get clear codes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::time::Duration;

use room_chat_e2e::{chat, joined, Client, Closed, Layer, TestServer};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// (what is sent, the exact error frame expected).
const ERROR_TABLE: &[(&str, &str)] = &[
    (
        "not json",
        r#"{"action":"error","payload":[{"type":"json_invalid","loc":[],"msg":"Invalid JSON: expected ident at line 1 column 2"}]}"#,
    ),
    (
        "",
        r#"{"action":"error","payload":[{"type":"json_invalid","loc":[],"msg":"Invalid JSON: EOF while parsing a value at line 1 column 0"}]}"#,
    ),
    (
        "[1, 2]",
        r#"{"action":"error","payload":[{"type":"model_type","loc":[],"msg":"Input should be an object"}]}"#,
    ),
    (
        r#"{"payload": {"message": "hi"}}"#,
        r#"{"action":"error","payload":[{"type":"union_tag_not_found","loc":[],"msg":"Unable to extract tag using discriminator 'action'"}]}"#,
    ),
    (
        r#"{"action": "shout"}"#,
        r#"{"action":"error","payload":[{"type":"union_tag_invalid","loc":[],"msg":"Input tag 'shout' found using 'action' does not match any of the expected tags: 'history', 'ping', 'presence', 'room_chat'"}]}"#,
    ),
    (
        r#"{"action": "room_chat"}"#,
        r#"{"action":"error","payload":[{"type":"missing","loc":["room_chat","payload"],"msg":"Field required"}]}"#,
    ),
    (
        r#"{"action": "room_chat", "payload": {}}"#,
        r#"{"action":"error","payload":[{"type":"missing","loc":["room_chat","payload","message"],"msg":"Field required"}]}"#,
    ),
    (
        r#"{"action": "room_chat", "payload": {"message": 42}}"#,
        r#"{"action":"error","payload":[{"type":"string_type","loc":["room_chat","payload","message"],"msg":"Input should be a valid string"}]}"#,
    ),
    (
        r#"{"action": "ping", "payload": {"x": 1}}"#,
        r#"{"action":"error","payload":[{"type":"none_required","loc":["ping","payload"],"msg":"Input should be None"}]}"#,
    ),
];

#[tokio::test]
async fn every_error_row_gets_its_frame_and_the_connection_and_room_keep_working() {
    let server = TestServer::start(Layer::Memory).await;
    let mut peer = server.join_first("general").await;
    let mut client = server.join("general").await;
    assert_eq!(peer.recv_json().await, joined("general"));
    for (sent, expected) in ERROR_TABLE {
        client.send_text(sent).await;
        let got = client.recv_text().await;
        // The JSON parser's wording is its own; the type and location are the contract.
        if expected.contains("json_invalid") {
            let got: serde_json::Value = serde_json::from_str(&got).unwrap();
            assert_eq!(got["payload"][0]["type"], "json_invalid", "for {sent:?}");
            assert_eq!(
                got["payload"][0]["loc"],
                serde_json::json!([]),
                "for {sent:?}"
            );
            assert!(got["payload"][0]["msg"]
                .as_str()
                .unwrap()
                .starts_with("Invalid JSON"));
        } else {
            assert_eq!(&got, expected, "for {sent:?}");
        }
        // Still connected, still in the room.
        client.chat("still here").await;
        assert_eq!(client.recv_json().await, chat("still here", "general"));
        assert_eq!(peer.recv_json().await, chat("still here", "general"));
    }
    // The peer never saw any error frame.
    assert_eq!(peer.try_recv_text(Duration::from_millis(200)).await, None);
}

#[tokio::test]
async fn binary_frames_are_json_invalid() {
    let server = TestServer::start(Layer::Memory).await;
    let mut client = server.join("general").await;
    client.send_binary(vec![0xff, 0x00, 0x01]).await;
    let got = client.recv_json().await;
    assert_eq!(got["action"], "error");
    assert_eq!(got["payload"][0]["type"], "json_invalid");
    assert_eq!(got["payload"][0]["loc"], serde_json::json!([]));
    client.send_text(r#"{"action":"ping"}"#).await;
    assert_eq!(
        client.recv_text().await,
        r#"{"action":"pong","payload":null}"#
    );
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009_and_others_are_unaffected() {
    let server = TestServer::start_with(Layer::Memory, |c| c.session.max_frame_bytes = 1024).await;
    let mut peer = server.join_first("general").await;
    let mut big = server.join("general").await;
    assert_eq!(peer.recv_json().await, joined("general"));
    big.chat(&"x".repeat(2000)).await;
    let (_, closed) = big.recv_until_closed(Duration::from_secs(5)).await;
    assert!(
        matches!(&closed, Closed::Frame(1009, _)),
        "expected close 1009, got {closed:?}"
    );
    assert_eq!(peer.recv_json().await, room_chat_e2e::left("general"));
    // A message just under the limit still goes through.
    peer.chat(&"y".repeat(900)).await;
    assert_eq!(peer.recv_json().await, chat(&"y".repeat(900), "general"));
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007_and_protocol_violations_with_1002() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let server = TestServer::start(Layer::Memory).await;
    let mut peer = server.join_first("general").await;
    let text = |bytes: &'static [u8]| Frame::message(bytes, OpCode::Data(Data::Text), true);
    let with_rsv1 = {
        let mut frame = text(b"{}");
        frame.header_mut().rsv1 = true; // no extension was negotiated
        frame
    };
    let reserved_opcode = Frame::message(&b"x"[..], OpCode::Data(Data::Reserved(3)), true);
    let cases = [
        (
            text(b"{\"action\": \"room_chat\", \"payload\": {\"message\": \"\xff\"}}"),
            1007,
        ),
        (with_rsv1, 1002),
        (reserved_opcode, 1002),
    ];
    for (frame, code) in cases {
        let mut bad = server.join("general").await;
        assert_eq!(peer.recv_json().await, joined("general"));
        bad.send_raw(frame).await;
        let (_, closed) = bad.recv_until_closed(Duration::from_secs(5)).await;
        assert!(
            matches!(&closed, Closed::Frame(c, _) if *c == code),
            "expected close {code}, got {closed:?}"
        );
        assert_eq!(peer.recv_json().await, room_chat_e2e::left("general"));
    }
    // Every closure is counted once, under its reason.
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(r#"room_chat_connections_closed_total{reason="invalid_utf8"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"room_chat_connections_closed_total{reason="protocol_violation"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_name_in_nfd_and_in_nfc_is_one_room() {
    let server = TestServer::start(Layer::Memory).await;
    let mut composed = Client::connect(&server.room_url("caf%C3%A9")).await;
    composed.sync().await;
    let mut decomposed = Client::connect(&server.room_url("cafe%CC%81")).await;
    assert_eq!(composed.recv_json().await, joined("café"));
    decomposed.chat("same room?").await;
    assert_eq!(decomposed.recv_json().await, chat("same room?", "café"));
    assert_eq!(composed.recv_json().await, chat("same room?", "café"));
}

#[tokio::test]
async fn refused_room_names_get_403_with_a_reason() {
    let server = TestServer::start(Layer::Memory).await;
    let long = "a".repeat(101);
    let cases = [
        ("a%2Fb", "room name must not contain '/'"),
        ("%07bell", "room name must not contain control characters"),
        (
            "%20padded",
            "room name must not start or end with whitespace",
        ),
        (long.as_str(), "room name is longer than 100 characters"),
        (
            "a%E2%80%AEb",
            "room name must not contain invisible formatting characters (such as U+202E)",
        ),
        (
            "%EF%BB%BFroom",
            "room name must not contain invisible formatting characters (such as U+FEFF)",
        ),
        (
            "a%E2%80%A8b",
            "room name must not contain line or paragraph separators",
        ),
    ];
    for (segment, reason) in cases {
        let refused = Client::try_connect(&server.room_url(segment)).await;
        assert_eq!(
            refused.err(),
            Some((403, reason.to_owned())),
            "for {segment:?}"
        );
    }
    for segment in ["a/b", "general/"] {
        let refused = Client::try_connect(&server.room_url(segment)).await;
        assert_eq!(
            refused.err(),
            Some((403, "room name must not contain '/'".to_owned())),
            "for {segment:?}"
        );
    }
    let empty = Client::try_connect(&format!("ws://{}/ws/room/", server.addr())).await;
    assert_eq!(
        empty.err(),
        Some((403, "room name must not be empty".to_owned()))
    );
    // Not UTF-8 after percent-decoding: refused by the generated path parser, with the reason.
    let invalid = Client::try_connect(&server.room_url("%FF")).await;
    assert_eq!(
        invalid.err(),
        Some((
            400,
            "parameter `room_name`: `%FF` is not percent-encoded UTF-8".to_owned()
        ))
    );
    // The refusals are counted.
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains("room_chat_handshakes_refused_total{reason=\"room_name\"} 11"),
        "{metrics}"
    );
}

#[tokio::test]
async fn origins_outside_the_allowed_list_are_refused() {
    use futures_util::{SinkExt, StreamExt};
    let server = TestServer::start_with(Layer::Memory, |c| {
        c.edge.allowed_origins = vec!["https://chat.example".into()];
    })
    .await;
    let with_origin = |origin: &str| {
        let mut request = server.room_url("general").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
        request
    };
    // A page elsewhere cannot use the service from a visitor's browser.
    for foreign in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        match tokio_tungstenite::connect_async(with_origin(foreign)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{foreign}");
            }
            other => panic!("{foreign} was not refused: {other:?}"),
        }
    }
    // The listed origin, the service's own page, and clients that send no Origin get in.
    let own = format!("http://{}", server.server.addr);
    for request in [
        with_origin("https://chat.example"),
        with_origin(&own),
        server.room_url("general").into_client_request().unwrap(),
    ] {
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        ws.send(r#"{"action":"ping"}"#.into()).await.unwrap();
        let pong = ws.next().await.unwrap().unwrap();
        assert_eq!(
            pong.to_text().unwrap(),
            r#"{"action":"pong","payload":null}"#
        );
    }
}

#[tokio::test]
async fn every_origin_is_allowed_only_when_asked_for() {
    let request = |server: &TestServer| {
        let mut request = server.room_url("general").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Origin", "https://evil.example".parse().unwrap());
        request
    };
    let by_default = TestServer::start(Layer::Memory).await;
    assert!(tokio_tungstenite::connect_async(request(&by_default))
        .await
        .is_err());
    let open =
        TestServer::start_with(Layer::Memory, |c| c.edge.allowed_origins = vec!["*".into()]).await;
    assert!(tokio_tungstenite::connect_async(request(&open))
        .await
        .is_ok());
}

#[tokio::test]
async fn the_connection_cap_refuses_with_503_and_frees_slots_on_close() {
    let server = TestServer::start_with(Layer::Memory, |c| c.edge.max_connections = 2).await;
    let a = server.join("general").await;
    let _b = server.join("general").await;
    let refused = Client::try_connect(&server.room_url("general")).await;
    assert_eq!(
        refused.err(),
        Some((503, "too many connections".to_owned()))
    );
    a.close().await;
    // The slot is released once the server has finished with the connection.
    let admitted = room_chat_e2e::eventually(Duration::from_secs(5), || async {
        Client::try_connect(&server.room_url("general"))
            .await
            .is_ok()
    })
    .await;
    assert!(admitted, "a slot should free up after a client leaves");
}

#[tokio::test]
async fn a_full_room_refuses_with_503_and_other_rooms_stay_open() {
    let server = TestServer::start_with(Layer::Memory, |c| c.room_chat.max_room_members = 2).await;
    let a = server.join("general").await;
    let _b = server.join("general").await;
    let refused = Client::try_connect(&server.room_url("general")).await;
    assert_eq!(
        refused.err(),
        Some((503, "room is full (2 members on this server)".to_owned()))
    );
    // The cap is per room: another room still takes members.
    let _elsewhere = server.join("elsewhere").await;
    a.close().await;
    let admitted = room_chat_e2e::eventually(Duration::from_secs(5), || async {
        Client::try_connect(&server.room_url("general"))
            .await
            .is_ok()
    })
    .await;
    assert!(admitted, "a seat frees up when a member leaves");
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(r#"room_chat_handshakes_refused_total{reason="room_full"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn completion_frames_follow_handled_frames_and_delivered_broadcasts() {
    let server = TestServer::start_with(Layer::Memory, |c| c.session.send_completion = true).await;
    let complete = r#"{"action":"complete","payload":null}"#;
    let group_complete = r#"{"action":"group_complete","payload":null}"#;
    let mut a = server.join("general").await;
    // `join` pinged: the pong is followed by `complete`.
    assert_eq!(a.recv_text().await, complete);
    let mut b = Client::connect(&server.room_url("general")).await;
    assert_eq!(a.recv_json().await, joined("general"));
    assert_eq!(a.recv_text().await, group_complete);
    b.chat("done?").await;
    let mut at_b = vec![
        b.recv_json().await,
        b.recv_json().await,
        b.recv_json().await,
    ];
    at_b.sort_by_key(|v| v.to_string());
    let mut expected = vec![
        chat("done?", "general"),
        serde_json::from_str(complete).unwrap(),
        serde_json::from_str(group_complete).unwrap(),
    ];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(at_b, expected);
    assert_eq!(a.recv_json().await, chat("done?", "general"));
    assert_eq!(a.recv_text().await, group_complete);
    // Errors are handled frames too.
    a.send_text("nope").await;
    assert_eq!(a.recv_json().await["action"], "error");
    assert_eq!(a.recv_text().await, complete);
}
