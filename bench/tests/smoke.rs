//! Smoke test of the load generator: tiny runs against the service (in-memory layer and Redis
//! pub/sub, in process) and the reference server, checking behaviour only: every message
//! arrives once, in order, in its own room. Speed is never asserted; `make bench` reports it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use room_chat::{Config, RunningServer};
use room_chat_bench::fanout::{self, FanoutOptions, FanoutReport};
use room_chat_bench::reference::{ReferenceServer, ReferenceSettings};
use room_chat_bench::{churn, idle};
use room_chat_layers::testing::RedisServer;

async fn service(redis_url: Option<String>) -> RunningServer {
    let mut config = Config {
        host: "127.0.0.1".parse().unwrap(),
        port: 0,
        redis_url,
        ..Config::default()
    };
    config.edge.shutdown_drain = std::time::Duration::from_millis(50);
    config.edge.shutdown_timeout = std::time::Duration::from_secs(2);
    // Saturation runs measure the delivery path, as the reference server (which has no limit)
    // does: the inbound rate limit would only pace the senders.
    config.session.inbound_rate = 0;
    let layers = config.layer_registry().unwrap();
    RunningServer::start(config, layers).await.unwrap()
}

/// Two rooms of three, two senders each: a fixed-rate run, then a short saturation run.
async fn fanout_is_clean(url: String) {
    for rate in [200.0, 0.0] {
        let options = FanoutOptions {
            rooms: 2,
            members: 3,
            senders: 2,
            rate,
            window: 4,
            duration: Duration::from_millis(500),
            warmup: Duration::from_millis(100),
            progress: false,
            ..FanoutOptions::new(vec![url.clone()])
        };
        let report: FanoutReport = fanout::run(&options).await.unwrap();
        assert!(report.sent > 0, "{report:?}");
        assert_eq!(report.expected_deliveries, report.sent * 3, "{report:?}");
        assert_eq!(report.delivered, report.expected_deliveries, "{report:?}");
        assert_eq!(
            (
                report.lost,
                report.duplicates,
                report.inversions,
                report.leaks,
                report.closed_by_server
            ),
            (0, 0, 0, 0, 0),
            "{report:?}"
        );
        assert!(report.latency.count > 0, "{report:?}");
    }
}

/// The cost cell in miniature: one room of ten at 10,000 deliveries/s for half a second, with
/// the CPU time of `pid` read at the edges of the sending window. Here the server runs inside
/// the test process, so the figure also carries the load generator's work: what is checked is
/// that the window is sampled and turned into a finite, positive cost, never its size.
async fn cost_per_delivery(url: String, pid: u32) -> f64 {
    let options = FanoutOptions {
        rooms: 1,
        members: 10,
        senders: 2,
        rate: 1000.0,
        duration: Duration::from_millis(500),
        warmup: Duration::from_millis(100),
        progress: false,
        cpu_watch: fanout::CpuWatch {
            server: vec![pid],
            redis: Vec::new(),
        },
        ..FanoutOptions::new(vec![url])
    };
    let report = fanout::run(&options).await.unwrap();
    let window = &report.sending;
    assert!(report.sent > 0 && window.deliveries > 0, "{report:?}");
    assert!(
        window.deliveries <= report.delivered + report.duplicates,
        "{report:?}"
    );
    assert_eq!(report.leaks, 0, "{report:?}");
    assert!(window.server_cpu_s.is_some_and(|s| s > 0.0), "{window:?}");
    assert_eq!(window.redis_cpu_s, None, "{window:?}");
    let us = window.server_us_per_delivery.unwrap();
    assert!(us.is_finite() && us > 0.0, "{window:?}");
    us
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_cell_gives_a_cpu_figure_per_delivery_for_service_and_reference() {
    let pid = std::process::id();
    let server = service(None).await;
    cost_per_delivery(format!("ws://{}", server.addr), pid).await;
    server.shutdown().await;

    let reference =
        ReferenceServer::start("127.0.0.1:0".parse().unwrap(), ReferenceSettings::default())
            .await
            .unwrap();
    cost_per_delivery(format!("ws://{}", reference.addr), pid).await;
    reference.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_sees_a_clean_service_on_memory() {
    let server = service(None).await;
    let url = format!("ws://{}", server.addr);
    fanout_is_clean(url.clone()).await;

    let idle = idle::run(&idle::IdleOptions {
        hold: Duration::from_millis(100),
        server_pids: vec![std::process::id()],
        progress: false,
        ..idle::IdleOptions::new(vec![url.clone()], 20)
    })
    .await;
    assert_eq!(
        (idle.connected, idle.alive_after_hold),
        (20, 20),
        "{idle:?}"
    );
    assert!(idle.kib_per_connection.is_some(), "{idle:?}");

    let churn = churn::run(&churn::ChurnOptions {
        duration: Duration::from_millis(300),
        rooms: 2,
        progress: false,
        ..churn::ChurnOptions::new(vec![url], 50.0)
    })
    .await
    .unwrap();
    assert!(churn.completed > 0, "{churn:?}");
    assert_eq!(churn.failed, 0, "{churn:?}");
    assert_eq!(
        (churn.join_notices, churn.leave_notices),
        (churn.completed, churn.completed),
        "{churn:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_sees_a_clean_service_on_redis_pubsub() {
    let redis = RedisServer::start().await.unwrap();
    let server = service(Some(redis.url())).await;
    fanout_is_clean(format!("ws://{}", server.addr)).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_sees_a_clean_reference_server() {
    let server =
        ReferenceServer::start("127.0.0.1:0".parse().unwrap(), ReferenceSettings::default())
            .await
            .unwrap();
    let url = format!("ws://{}", server.addr);
    fanout_is_clean(url.clone()).await;
    let churn = churn::run(&churn::ChurnOptions {
        duration: Duration::from_millis(300),
        rooms: 2,
        progress: false,
        ..churn::ChurnOptions::new(vec![url], 50.0)
    })
    .await
    .unwrap();
    assert_eq!(churn.failed, 0, "{churn:?}");
    assert_eq!(churn.leave_notices, churn.completed, "{churn:?}");
    server.stop().await;
}
