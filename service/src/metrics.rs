//! Prometheus metrics of the service, served at `/metrics`.
//!
//! Counters are plain atomics updated on the hot path (a relaxed increment per frame), and the
//! Prometheus registry reads them when scraped, so observability costs nothing per message but
//! an add. Layer counters are not copied here: they are read from each layer's own
//! [`room_chat_layers::LayerStats`] at scrape time, so the two can never disagree.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use room_chat_layers::{DropReason, LayerHealth, LayerRegistry};

/// Why a frame or a connection was dropped or refused; each is its own labelled counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The room name broke the rule (HTTP 403).
    RoomName,
    /// The origin is not allowed (HTTP 403).
    Origin,
    /// The connection cap was reached (HTTP 503).
    Capacity,
    /// The consumer's `authenticate` hook refused it (HTTP 403).
    Unauthenticated,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Self::RoomName => "room_name",
            Self::Origin => "origin",
            Self::Capacity => "capacity",
            Self::Unauthenticated => "unauthenticated",
        }
    }
}

/// Why a connection was closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client fell too far behind (code 1008).
    SlowConsumer,
    /// A frame over the size limit (code 1009).
    FrameTooLarge,
    /// No traffic within the idle timeout (code 1001).
    Idle,
    /// The server is shutting down (code 1001).
    Shutdown,
    /// A write did not complete within the write timeout.
    WriteTimeout,
    /// The channel layer could not serve the connection (code 1011).
    LayerUnavailable,
}

impl CloseReason {
    fn label(self) -> &'static str {
        match self {
            Self::SlowConsumer => "slow_consumer",
            Self::FrameTooLarge => "frame_too_large",
            Self::Idle => "idle",
            Self::Shutdown => "shutdown",
            Self::WriteTimeout => "write_timeout",
            Self::LayerUnavailable => "layer_unavailable",
        }
    }
}

/// The service's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    frames_rejected: AtomicU64,
    handler_errors: AtomicU64,
    broadcasts_dropped: AtomicU64,
    refused: Mutex<HashMap<&'static str, u64>>,
    closed: Mutex<HashMap<&'static str, u64>>,
    groups: Mutex<HashMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave a counter map inconsistent in a
    // way that matters, so a poisoned lock is simply taken over.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection ended.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn connections_open(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// A text frame arrived.
    pub fn frame_in(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    /// A frame was queued for a client.
    pub fn frame_out(&self) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
    }

    /// A frame was answered with a validation error.
    pub fn frame_rejected(&self) {
        self.frames_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// A handler failed.
    pub fn handler_error(&self) {
        self.handler_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A message from a layer could not be delivered (malformed, or unknown type).
    pub fn broadcast_dropped(&self) {
        self.broadcasts_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// A handshake was refused.
    pub fn refused(&self, why: Refusal) {
        *lock(&self.refused).entry(why.label()).or_default() += 1;
    }

    /// The server closed a connection.
    pub fn closed(&self, why: CloseReason) {
        *lock(&self.closed).entry(why.label()).or_default() += 1;
    }

    /// How many times the server closed connections for `why`.
    pub fn closed_count(&self, why: CloseReason) -> u64 {
        lock(&self.closed).get(why.label()).copied().unwrap_or(0)
    }

    /// A local connection joined `group`.
    pub fn group_joined(&self, group: &str) {
        *lock(&self.groups).entry(group.to_owned()).or_default() += 1;
    }

    /// A local connection left `group`.
    pub fn group_left(&self, group: &str) {
        let mut groups = lock(&self.groups);
        if let Some(n) = groups.get_mut(group) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                groups.remove(group);
            }
        }
    }

    /// Groups (rooms) with at least one local member.
    pub fn groups_active(&self) -> usize {
        lock(&self.groups).len()
    }

    /// The Prometheus text exposition of the service's and the layers' metrics.
    pub fn render(&self, layers: &LayerRegistry) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            "room_chat_connections",
            "WebSocket connections open now.",
            self.connections_open(),
        );
        gauge(
            "room_chat_rooms",
            "Rooms (layer groups) with at least one member on this process.",
            self.groups_active() as u64,
        );
        let counters = [
            (
                "room_chat_connections_total",
                "WebSocket connections accepted.",
                &self.connections_total,
            ),
            (
                "room_chat_frames_in_total",
                "Text frames received from clients.",
                &self.frames_in,
            ),
            (
                "room_chat_frames_out_total",
                "Frames queued for clients.",
                &self.frames_out,
            ),
            (
                "room_chat_frames_rejected_total",
                "Frames answered with a validation error.",
                &self.frames_rejected,
            ),
            (
                "room_chat_handler_errors_total",
                "Handlers that failed.",
                &self.handler_errors,
            ),
            (
                "room_chat_undeliverable_messages_total",
                "Layer messages a connection received but could not deliver (unknown type or malformed); drops inside the layers are room_chat_layer_messages_total{event=\"dropped\"}.",
                &self.broadcasts_dropped,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        labelled(
            &mut out,
            "room_chat_handshakes_refused_total",
            "Handshakes refused, by reason.",
            "reason",
            &lock(&self.refused),
        );
        labelled(
            &mut out,
            "room_chat_connections_closed_total",
            "Connections closed by the server, by reason.",
            "reason",
            &lock(&self.closed),
        );

        let _ = writeln!(out, "# HELP room_chat_layer_up Whether the layer's backend is reachable (1) or not (0).\n# TYPE room_chat_layer_up gauge");
        for (alias, layer) in layers.iter() {
            let up = matches!(*layer.health().borrow(), LayerHealth::Up);
            let _ = writeln!(
                out,
                "room_chat_layer_up{{alias=\"{alias}\",kind=\"{}\"}} {}",
                layer.kind(),
                u8::from(up)
            );
        }
        // One snapshot per layer per scrape, so the families below agree with each other.
        let snapshots: Vec<_> = layers
            .iter()
            .map(|(alias, layer)| (alias, layer.stats()))
            .collect();
        let _ = writeln!(out, "# HELP room_chat_layer_messages_total Channel-layer message counts by event.\n# TYPE room_chat_layer_messages_total counter");
        for (alias, stats) in &snapshots {
            for (event, value) in [
                ("sent", stats.sent),
                ("group_sent", stats.group_sent),
                ("delivered", stats.delivered),
            ] {
                let _ = writeln!(
                    out,
                    "room_chat_layer_messages_total{{alias=\"{alias}\",event=\"{event}\"}} {value}"
                );
            }
            for reason in DropReason::ALL {
                let _ = writeln!(out, "room_chat_layer_messages_total{{alias=\"{alias}\",event=\"dropped\",reason=\"{}\"}} {}", reason.as_str(), stats.dropped(reason));
            }
        }
        let _ = writeln!(out, "# HELP room_chat_layer_outages_total Times a layer lost its backend.\n# TYPE room_chat_layer_outages_total counter");
        for (alias, stats) in &snapshots {
            let _ = writeln!(
                out,
                "room_chat_layer_outages_total{{alias=\"{alias}\"}} {}",
                stats.outages
            );
        }
        let _ = writeln!(out, "# HELP room_chat_layer_reconnects_total Times a layer re-established its backend connection.\n# TYPE room_chat_layer_reconnects_total counter");
        for (alias, stats) in &snapshots {
            let _ = writeln!(
                out,
                "room_chat_layer_reconnects_total{{alias=\"{alias}\"}} {}",
                stats.reconnects
            );
        }
        out
    }
}

fn labelled(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &HashMap<&'static str, u64>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    let mut sorted: Vec<_> = values.iter().collect();
    sorted.sort();
    for (value_label, n) in sorted {
        let _ = writeln!(out, "{name}{{{label}=\"{value_label}\"}} {n}");
    }
}
