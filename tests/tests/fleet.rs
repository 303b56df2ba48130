//! Several service processes on one Redis, and Redis failing under them. Each test owns its
//! `redis-server` and kills it on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::time::Duration;

use room_chat_e2e::{
    chat, eventually, joined, left, metric_sum, tutorial_view, Client, Closed, Layer, RedisServer,
    TestServer,
};

/// Declares a test per Redis layer.
macro_rules! on_redis_layers {
    ($($scenario:ident),* $(,)?) => {
        mod redis_pubsub {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let redis = super::RedisServer::start().await.unwrap();
                    let url = redis.url();
                    super::$scenario(redis, move || super::Layer::PubSub(url.clone())).await;
                }
            )*
        }
        mod redis_queue {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let redis = super::RedisServer::start().await.unwrap();
                    let url = redis.url();
                    super::$scenario(redis, move || super::Layer::Queue(url.clone())).await;
                }
            )*
        }
    };
}

on_redis_layers!(
    two_processes_share_rooms_and_keep_them_isolated,
    redis_outage_turns_health_red_then_green_and_chat_resumes,
    shutting_down_one_process_notifies_members_on_the_other,
);

async fn two_processes_share_rooms_and_keep_them_isolated(
    _redis: RedisServer,
    layer: impl Fn() -> Layer,
) {
    let one = TestServer::start(layer()).await;
    let two = TestServer::start(layer()).await;
    let mut a1 = one.join_first("general").await;
    let mut b1 = two.join("general").await;
    assert_eq!(a1.recv_json().await, joined("general"));
    let mut a2 = one.join("general").await;
    assert_eq!(a1.recv_json().await, joined("general"));
    assert_eq!(b1.recv_json().await, joined("general"));
    let mut b2 = two.join("general").await;
    for c in [&mut a1, &mut b1, &mut a2] {
        assert_eq!(c.recv_json().await, joined("general"));
    }
    let mut private = two.join_first("private").await;

    a1.chat("from one").await;
    b2.chat("from two").await;
    for c in [&mut a1, &mut a2, &mut b1, &mut b2] {
        // Each sender's messages arrive in order; the two senders may interleave.
        let mut got = vec![c.recv_json().await, c.recv_json().await];
        got.sort_by_key(|v| v.to_string());
        let mut expected = vec![chat("from one", "general"), chat("from two", "general")];
        expected.sort_by_key(|v| v.to_string());
        assert_eq!(got, expected);
    }
    b2.close().await;
    for c in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(c.recv_json().await, left("general"));
    }
    private.chat("mine").await;
    assert_eq!(private.recv_json().await, chat("mine", "private"));
    assert_eq!(
        private.try_recv_text(Duration::from_millis(300)).await,
        None
    );
}

async fn redis_outage_turns_health_red_then_green_and_chat_resumes(
    mut redis: RedisServer,
    layer: impl Fn() -> Layer,
) {
    let server = TestServer::start(layer()).await;
    let mut a = server.join_first("general").await;
    let mut b = server.join("general").await;
    assert_eq!(a.recv_json().await, joined("general"));
    assert_eq!(server.get("/healthz").await.0, 200);

    redis.kill().await;
    let red = eventually(Duration::from_secs(3), || async {
        server.get("/healthz").await.0 == 503
    })
    .await;
    assert!(red, "health should turn red while Redis is down");
    // During the outage a chat message cannot be broadcast: the sender is told, and the
    // connection stays usable.
    a.chat("lost?").await;
    let answer = a.recv_json().await;
    assert_eq!(
        answer,
        serde_json::json!({"action": "error", "payload": {"detail": "Failed to process message for room_chat"}})
    );
    a.send_text(r#"{"action":"ping"}"#).await;
    assert_eq!(a.recv_text().await, r#"{"action":"pong","payload":null}"#);
    // A newcomer is told before the upgrade.
    let refused = Client::try_connect(&server.room_url("general")).await;
    assert_eq!(
        refused.err(),
        Some((503, "channel layer unavailable".to_owned()))
    );
    let alias = match layer() {
        Layer::Queue(_) => "queue",
        _ => "chat",
    };
    let up = format!("room_chat_layer_up{{alias=\"{alias}\"");
    let (_, metrics) = server.get("/metrics").await;
    assert_eq!(metric_sum(&metrics, &up), Some(0), "{metrics}");
    // Both say which host is down.
    let target = format!(
        "room_chat_layer_target_up{{alias=\"{alias}\",target=\"{}\"}}",
        redis.url()
    );
    assert_eq!(metric_sum(&metrics, &target), Some(0), "{metrics}");
    let (_, health) = server.get("/healthz").await;
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    let targets = &health["layers"][alias]["targets"];
    assert_eq!(targets[0]["target"], redis.url(), "{health}");
    assert_eq!(targets[0]["status"], "down", "{health}");

    redis.restart().await.unwrap();
    let green = eventually(Duration::from_secs(15), || async {
        server.get("/healthz").await.0 == 200
    })
    .await;
    assert!(green, "health should turn green once Redis is back");
    // Chat resumes: the layer resubscribed (pub/sub) or its reader reconnected (queue).
    let mut attempt = 0;
    let resumed = loop {
        attempt += 1;
        let text = format!("back {attempt}");
        a.chat(&text).await;
        match a.try_recv_text(Duration::from_secs(2)).await {
            Some(frame) if tutorial_view(&frame) == chat(&text, "general") => {
                break Some(text);
            }
            _ if attempt >= 5 => break None,
            _ => continue,
        }
    };
    let text = resumed.expect("chat should resume after Redis is back");
    // `b` gets the resumed message (possibly after earlier attempts that also got through).
    let mut seen = false;
    while let Some(frame) = b.try_recv_text(Duration::from_secs(2)).await {
        if tutorial_view(&frame) == chat(&text, "general") {
            seen = true;
            break;
        }
    }
    assert!(seen, "the other member should receive messages again");
    let (_, metrics) = server.get("/metrics").await;
    assert_eq!(metric_sum(&metrics, &up), Some(1), "{metrics}");
    let outages = metric_sum(
        &metrics,
        &format!("room_chat_layer_outages_total{{alias=\"{alias}\"}}"),
    );
    assert!(outages >= Some(1), "the outage is counted: {metrics}");
}

async fn shutting_down_one_process_notifies_members_on_the_other(
    _redis: RedisServer,
    layer: impl Fn() -> Layer,
) {
    let one = TestServer::start(layer()).await;
    let two = TestServer::start(layer()).await;
    let mut stays = two.join_first("general").await;
    let mut goes = one.join("general").await;
    assert_eq!(stays.recv_json().await, joined("general"));
    let stopping = tokio::spawn(async move { one.server.shutdown().await });
    let (_, closed) = goes.recv_until_closed(Duration::from_secs(5)).await;
    assert_eq!(closed, Closed::Frame(1001, "server shutting down".into()));
    assert_eq!(stays.recv_json().await, left("general"));
    assert!(stopping.await.unwrap());
    // The remaining process is unaffected.
    stays.chat("still here").await;
    assert_eq!(stays.recv_json().await, chat("still here", "general"));
}
