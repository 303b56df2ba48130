//! Channel layer throughput, per layer, as a report (not a test; no thresholds).
//!
//! Run: `cargo bench -p room-chat-layers --bench layers` (starts its own `redis-server` on a
//! free port; needs `redis-server` on `PATH`).
//!
//! For each layer it measures, with receivers draining concurrently:
//! - **group_send**: one sender broadcasting sequentially to a one-member group: messages/s
//!   end to end (sent and received);
//! - **fan-out**: one sender broadcasting to a 1,000-member group: broadcasts/s and
//!   deliveries/s.
//!
//! Figures are also given as a ratio to the in-memory layer of the same run, the only
//! comparison that survives a change of machine.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use room_chat_layers::memory::{MemoryLayer, MemorySettings};
use room_chat_layers::pubsub::{PubSubSettings, RedisPubSubLayer};
use room_chat_layers::queue::{QueueSettings, RedisQueueLayer};
use room_chat_layers::testing::RedisServer;
use room_chat_layers::{ChannelLayer, Message};
use serde_json::json;

const GROUP_SENDS: usize = 20_000;
const FAN_OUT_MEMBERS: usize = 1_000;
const FAN_OUT_SENDS: usize = 200;

struct Figures {
    layer: &'static str,
    group_send_per_s: f64,
    fan_out_sends_per_s: f64,
    fan_out_deliveries_per_s: f64,
    dropped: u64,
}

fn message(i: usize) -> Message {
    Message::from_value(json!({
        "type": "handle_group_message",
        "message": {"action": "room_notification", "payload": {"message": format!("💬 message {i}"), "room_name": "bench"}},
        "exclude_current": false,
        "from_channel": "specific.bench!x",
    }))
    .unwrap()
}

async fn measure(layer: Arc<dyn ChannelLayer>) -> Figures {
    // group_send, one member.
    let mut inbox = layer.new_channel().await.unwrap();
    layer
        .group_add(&group("bench-one"), inbox.name())
        .await
        .unwrap();
    let receiver = tokio::spawn(async move {
        for _ in 0..GROUP_SENDS {
            inbox.receive().await.unwrap();
        }
        inbox
    });
    let start = Instant::now();
    for i in 0..GROUP_SENDS {
        layer
            .group_send(&group("bench-one"), message(i))
            .await
            .unwrap();
    }
    drop(receiver.await.unwrap());
    let group_send_per_s = GROUP_SENDS as f64 / start.elapsed().as_secs_f64();

    // Fan-out to 1,000 members.
    let mut receivers = Vec::new();
    for _ in 0..FAN_OUT_MEMBERS {
        let mut inbox = layer.new_channel().await.unwrap();
        layer
            .group_add(&group("bench-many"), inbox.name())
            .await
            .unwrap();
        receivers.push(tokio::spawn(async move {
            for _ in 0..FAN_OUT_SENDS {
                inbox.receive().await.unwrap();
            }
        }));
    }
    let start = Instant::now();
    for i in 0..FAN_OUT_SENDS {
        layer
            .group_send(&group("bench-many"), message(i))
            .await
            .unwrap();
    }
    for r in receivers {
        r.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let figures = Figures {
        layer: layer.kind(),
        group_send_per_s,
        fan_out_sends_per_s: FAN_OUT_SENDS as f64 / elapsed,
        fan_out_deliveries_per_s: (FAN_OUT_SENDS * FAN_OUT_MEMBERS) as f64 / elapsed,
        dropped: layer.stats().dropped_total(),
    };
    layer.close().await.unwrap();
    figures
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let redis = RedisServer::start().await.expect("redis-server starts");
        let memory = MemoryLayer::new(MemorySettings {
            capacity: 100_000,
            ..MemorySettings::default()
        });
        let mut pubsub = PubSubSettings::new(vec![redis.url()]).with_prefix("bench");
        pubsub.local_queue_bound = 100_000;
        // Sends no longer wait for Redis, so a burst reaches the dispatcher at Redis's pace:
        // give it room for the whole run rather than count overflow.
        pubsub.dispatch_queue = 100_000;
        let mut queue = QueueSettings::new(vec![redis.url()]).with_prefix("bench");
        queue.capacity = 100_000;
        queue.local_queue_bound = 100_000;
        let layers: Vec<Arc<dyn ChannelLayer>> = vec![
            Arc::new(memory),
            Arc::new(RedisPubSubLayer::new(pubsub).unwrap()),
            Arc::new(RedisQueueLayer::new(queue).unwrap()),
        ];
        let mut results = Vec::new();
        for layer in layers {
            results.push(measure(layer).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reference = &results[0];
        println!(
            "{GROUP_SENDS} sequential group_sends to 1 member; {FAN_OUT_SENDS} group_sends to {FAN_OUT_MEMBERS} members; {} worker threads",
            std::thread::available_parallelism().map_or(1, usize::from)
        );
        println!(
            "{:<14} {:>16} {:>8} {:>18} {:>20} {:>8} {:>8}",
            "layer", "group_send msg/s", "x mem", "fan-out sends/s", "fan-out deliveries/s", "x mem", "dropped"
        );
        for r in &results {
            println!(
                "{:<14} {:>16.0} {:>8.3} {:>18.0} {:>20.0} {:>8.3} {:>8}",
                r.layer,
                r.group_send_per_s,
                r.group_send_per_s / reference.group_send_per_s,
                r.fan_out_sends_per_s,
                r.fan_out_deliveries_per_s,
                r.fan_out_deliveries_per_s / reference.fan_out_deliveries_per_s,
                r.dropped
            );
        }
    });
}

fn group(name: &str) -> room_chat_layers::Group {
    room_chat_layers::Group::new(name).unwrap()
}
