//! What the service serves besides the WebSocket: the contract in its three forms, health and
//! metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use room_chat_e2e::{Layer, TestServer};

#[tokio::test]
async fn the_contract_is_served_as_yaml_and_json_with_the_same_content() {
    let server = TestServer::start(Layer::Memory).await;
    let (status, yaml) = server.get("/asyncapi.yaml").await;
    assert_eq!(status, 200);
    assert_eq!(yaml, room_chat_protocol::SPEC_YAML);
    let (status, json) = server.get("/asyncapi.json").await;
    assert_eq!(status, 200);
    let from_yaml: serde_json::Value = serde_yaml_from(&yaml);
    let from_json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(from_yaml, from_json);
    assert_eq!(from_json["asyncapi"], "3.0.0");
    assert_eq!(
        from_json["channels"]["room_chat"]["address"],
        "/ws/room/{room_name}"
    );
}

#[tokio::test]
async fn the_client_view_flips_every_operation_and_names_it_from_the_clients_side() {
    let server = TestServer::start(Layer::Memory).await;
    let (status, text) = server.get("/asyncapi.client.yaml").await;
    assert_eq!(status, 200);
    let client: serde_json::Value = serde_yaml_from(&text);
    let server_view: serde_json::Value = serde_yaml_from(room_chat_protocol::SPEC_YAML);
    let operations = server_view["operations"].as_object().unwrap();
    // Generators turn these ids into method names: the client *sends* with `send_ping`.
    let client_ids = [
        ("handle_ping", "send_ping"),
        ("handle_room_chat", "send_room_chat"),
        ("handle_presence", "send_presence"),
        ("handle_history", "send_history"),
        ("send_room_notification", "receive_room_notification"),
        ("send_error", "receive_error"),
        ("send_complete", "receive_complete"),
        ("send_group_complete", "receive_group_complete"),
    ];
    assert_eq!(operations.len(), client_ids.len());
    assert_eq!(
        client["operations"].as_object().unwrap().len(),
        client_ids.len()
    );
    for (server_id, client_id) in client_ids {
        let operation = &operations[server_id];
        let flipped = match operation["action"].as_str().unwrap() {
            "receive" => "send",
            _ => "receive",
        };
        assert_eq!(
            client["operations"][client_id]["action"], flipped,
            "operation {server_id} as {client_id}"
        );
        assert_eq!(
            client["operations"][client_id]["reply"], operation["reply"],
            "operation {server_id} as {client_id}"
        );
        assert_eq!(
            client["operations"][client_id]["messages"], operation["messages"],
            "operation {server_id} as {client_id}"
        );
    }
    assert_eq!(client["channels"], server_view["channels"]);
    // A document of its own, whose title generators can turn into a class name.
    assert_eq!(client["id"], "urn:room-chat:client");
    assert_ne!(client["id"], server_view["id"]);
    assert_eq!(client["info"]["title"], "Room Chat Client");
}

#[test]
fn client_view_ids_keep_the_servers_when_the_clients_would_clash() {
    // `handle_ping` would become `send_ping`, which the document already has: both stay as
    // they are rather than one silently replacing the other. An id without a verb prefix gets
    // the client's verb in front.
    let spec = "operations:\n  handle_ping:\n    action: receive\n  send_ping:\n    action: send\n  notices:\n    action: send\n";
    let client: serde_json::Value = serde_yaml_from(&room_chat::server::client_view(spec).unwrap());
    let ids: Vec<&str> = client["operations"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(ids, ["handle_ping", "receive_ping", "receive_notices"]);
    assert_eq!(client["operations"]["handle_ping"]["action"], "send");
}

#[tokio::test]
async fn health_and_metrics_describe_the_running_service() {
    let server = TestServer::start(Layer::Memory).await;
    let _client = server.join("general").await;
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["connections"], 1);
    assert_eq!(health["layers"]["chat"]["kind"], "memory");
    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "room_chat_connections 1",
        "room_chat_rooms 1",
        "room_chat_frames_in_total 1",
        "room_chat_layer_up{alias=\"chat\",kind=\"memory\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
}

fn serde_yaml_from(text: &str) -> serde_json::Value {
    // The served YAML is the spec text; parse it through the same YAML parser the service uses.
    serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(text).unwrap()).unwrap()
}
