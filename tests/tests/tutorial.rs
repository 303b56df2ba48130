//! The tutorial, step by step, on every layer the room chat can run on: in memory, Redis
//! pub/sub and Redis queue (each Redis test owns its own `redis-server`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::time::Duration;

use room_chat_e2e::{chat, joined, left, Layer, RedisServer, TestServer};
use serde_json::json;

/// Declares one `#[tokio::test]` per scenario and layer.
macro_rules! on_every_layer {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Layer::Memory).await;
                }
            )*
        }
        mod redis_pubsub {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let redis = super::RedisServer::start().await.unwrap();
                    super::$scenario(super::Layer::PubSub(redis.url())).await;
                }
            )*
        }
        mod redis_queue {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let redis = super::RedisServer::start().await.unwrap();
                    super::$scenario(super::Layer::Queue(redis.url())).await;
                }
            )*
        }
    };
}

on_every_layer!(
    joiner_gets_nothing_and_others_get_the_join_notice,
    chat_reaches_everyone_in_the_room_including_the_sender,
    rooms_are_isolated,
    others_get_the_leave_notice,
    ping_gets_pong_and_echoes_ref,
    one_clients_frames_are_handled_in_order,
    room_name_comes_from_the_url,
    non_ascii_and_spaced_room_names_work,
);

async fn joiner_gets_nothing_and_others_get_the_join_notice(layer: Layer) {
    let server = TestServer::start(layer).await;
    let mut alice = server.join_first("general").await;
    let mut bob = server.join("general").await;
    assert_eq!(alice.recv_json().await, joined("general"));
    // Bob's own notice would come before his message (one sender's messages stay in order),
    // so his first frame being his message shows he was not told about himself.
    bob.chat("hi").await;
    assert_eq!(bob.recv_json().await, chat("hi", "general"));
    assert_eq!(alice.recv_json().await, chat("hi", "general"));
}

async fn chat_reaches_everyone_in_the_room_including_the_sender(layer: Layer) {
    let server = TestServer::start(layer).await;
    let mut a = server.join_first("general").await;
    let mut b = server.join("general").await;
    assert_eq!(a.recv_json().await, joined("general"));
    let mut c = server.join("general").await;
    assert_eq!(a.recv_json().await, joined("general"));
    assert_eq!(b.recv_json().await, joined("general"));

    a.chat("hello everyone").await;
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(client.recv_json().await, chat("hello everyone", "general"));
    }
}

async fn rooms_are_isolated(layer: Layer) {
    let server = TestServer::start(layer).await;
    let mut private = server.join_first("private").await;
    let mut a = server.join_first("general").await;
    let mut b = server.join("general").await;
    assert_eq!(a.recv_json().await, joined("general"));
    a.chat("secret").await;
    assert_eq!(a.recv_json().await, chat("secret", "general"));
    assert_eq!(b.recv_json().await, chat("secret", "general"));
    b.close().await;
    assert_eq!(a.recv_json().await, left("general"));

    // Everything of `general` has been published by now; `private` saw none of it.
    private.chat("own").await;
    assert_eq!(private.recv_json().await, chat("own", "private"));
    assert_eq!(
        private.try_recv_text(Duration::from_millis(300)).await,
        None
    );
}

async fn others_get_the_leave_notice(layer: Layer) {
    let server = TestServer::start(layer).await;
    let mut a = server.join_first("general").await;
    let b = server.join("general").await;
    assert_eq!(a.recv_json().await, joined("general"));
    b.close().await;
    assert_eq!(a.recv_json().await, left("general"));
    // The one who left is gone from the group: a message now reaches only `a`, once.
    a.chat("anyone?").await;
    assert_eq!(a.recv_json().await, chat("anyone?", "general"));
    assert_eq!(a.try_recv_text(Duration::from_millis(200)).await, None);
}

async fn ping_gets_pong_and_echoes_ref(layer: Layer) {
    let server = TestServer::start(layer).await;
    let mut a = server.join("general").await;
    a.send_text(r#"{"action":"ping"}"#).await;
    assert_eq!(a.recv_text().await, r#"{"action":"pong","payload":null}"#);
    a.send_text(r#"{"action":"ping","payload":null,"ref":"r1"}"#)
        .await;
    assert_eq!(
        a.recv_text().await,
        r#"{"action":"pong","payload":null,"version":1,"ref":"r1"}"#
    );
    // Broadcasts carry no ref even when the request had one.
    a.send_json(json!({"action": "room_chat", "payload": {"message": "x"}, "ref": "r2"}))
        .await;
    assert_eq!(a.recv_json().await, chat("x", "general"));
}

async fn one_clients_frames_are_handled_in_order(layer: Layer) {
    let server = TestServer::start(layer).await;
    let mut a = server.join_first("general").await;
    let mut b = server.join("general").await;
    assert_eq!(a.recv_json().await, joined("general"));
    for i in 0..200 {
        a.chat(&format!("m{i}")).await;
    }
    for i in 0..200 {
        let expected = chat(&format!("m{i}"), "general");
        assert_eq!(a.recv_json().await, expected);
        assert_eq!(b.recv_json().await, expected);
    }
}

async fn room_name_comes_from_the_url(layer: Layer) {
    let server = TestServer::start(layer).await;
    let mut a = server.join("general").await;
    a.send_json(json!({"action": "room_chat", "payload": {"message": "hi", "room_name": "elsewhere"}, "extra": 1}))
        .await;
    assert_eq!(a.recv_json().await, chat("hi", "general"));
}

async fn non_ascii_and_spaced_room_names_work(layer: Layer) {
    let server = TestServer::start(layer).await;
    // Percent-encoded in the URL, decoded in the notices.
    let mut a = room_chat_e2e::Client::connect(&server.room_url("caf%C3%A9")).await;
    a.sync().await;
    a.chat("(settled)").await;
    assert_eq!(a.recv_json().await, chat("(settled)", "café"));
    let mut b = server.join("café").await;
    assert_eq!(a.recv_json().await, joined("café"));
    b.chat("☕").await;
    assert_eq!(a.recv_json().await, chat("☕", "café"));
    assert_eq!(b.recv_json().await, chat("☕", "café"));

    let mut spaced = room_chat_e2e::Client::connect(&server.room_url("a%20b")).await;
    spaced.chat("x").await;
    assert_eq!(spaced.recv_json().await, chat("x", "a b"));

    // The longest allowed name, all non-ASCII, still maps to a group every layer accepts.
    let long: String = "é".repeat(100);
    let mut l1 = server.join_first(&long).await;
    let mut l2 = server.join(&long).await;
    assert_eq!(l1.recv_json().await, joined(&long));
    l2.chat("long").await;
    assert_eq!(l1.recv_json().await, chat("long", &long));
    // Nothing of the other rooms reached `café`.
    assert_eq!(b.try_recv_text(Duration::from_millis(200)).await, None);
}
