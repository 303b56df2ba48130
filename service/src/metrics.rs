//! Prometheus metrics of the service, served at `/metrics`.
//!
//! Counters are plain atomics updated on the hot path (a relaxed increment per frame), and the
//! Prometheus registry reads them when scraped, so observability costs nothing per message but
//! an add. Layer counters are not copied here: they are read from each layer's own
//! [`room_chat_layers::LayerStats`] at scrape time, so the two can never disagree.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use room_chat_layers::{DropReason, LayerHealth, LayerRegistry};
pub use room_chat_runtime::CloseReason;
use room_chat_runtime::RuntimeMetrics;

/// Why the server refused a handshake before the upgrade (the app's own refusals, such as a
/// room name, carry their label in their [`room_chat_runtime::Refusal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The origin is not allowed (HTTP 403).
    Origin,
    /// The connection cap was reached (HTTP 503).
    Capacity,
    /// The server is shutting down (HTTP 503).
    ShuttingDown,
    /// The app's channel layer is down (HTTP 503).
    LayerDown,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Self::Origin => "origin",
            Self::Capacity => "capacity",
            Self::ShuttingDown => "shutting_down",
            Self::LayerDown => "layer_unavailable",
        }
    }
}

/// The service's counters: the runtime's per-connection ones, and the server's own.
#[derive(Debug, Default)]
pub struct Metrics {
    runtime: Arc<RuntimeMetrics>,
    /// Refusals by label. Labels are `&'static str` from a fixed set (the server's and the
    /// app's), so the label set of the exported family stays bounded.
    refused: Mutex<HashMap<&'static str, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave a counter map inconsistent in a way that
    // matters, so a poisoned lock is simply taken over.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    /// The runtime's counters, handed to every connection.
    pub fn runtime(&self) -> &Arc<RuntimeMetrics> {
        &self.runtime
    }

    /// Connections open now.
    pub fn connections_open(&self) -> u64 {
        self.runtime.connections_open()
    }

    /// A handshake was refused by the server.
    pub fn refused(&self, why: Refusal) {
        self.refused_as(why.label());
    }

    /// A handshake was refused, counted under `label`.
    pub fn refused_as(&self, label: &'static str) {
        *lock(&self.refused).entry(label).or_default() += 1;
    }

    /// How many times the server closed connections for `why`.
    pub fn closed_count(&self, why: CloseReason) -> u64 {
        self.runtime.closed_total(why)
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
            self.runtime.groups().len() as u64,
        );
        let runtime = &self.runtime;
        let counters = [
            (
                "room_chat_connections_total",
                "WebSocket connections accepted.",
                runtime.connections_total(),
            ),
            (
                "room_chat_frames_in_total",
                "Text and binary frames received from clients.",
                runtime.frames_in_total(),
            ),
            (
                "room_chat_frames_out_total",
                "Frames queued for clients.",
                runtime.frames_out_total(),
            ),
            (
                "room_chat_frames_rejected_total",
                "Frames answered with a validation error.",
                runtime.frames_rejected_total(),
            ),
            (
                "room_chat_handler_errors_total",
                "Handlers that failed.",
                runtime.handler_errors_total(),
            ),
            (
                "room_chat_undeliverable_messages_total",
                "Layer messages a connection received but could not deliver (unknown type or malformed); drops inside the layers are room_chat_layer_messages_total{event=\"dropped\"}.",
                runtime.broadcasts_dropped_total(),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        labelled(
            &mut out,
            "room_chat_handshakes_refused_total",
            "Handshakes refused, by reason.",
            "reason",
            &lock(&self.refused),
        );
        let closed: HashMap<&'static str, u64> = CloseReason::ALL
            .into_iter()
            .map(|reason| (reason.label(), runtime.closed_total(reason)))
            .filter(|(_, n)| *n > 0)
            .collect();
        labelled(
            &mut out,
            "room_chat_connections_closed_total",
            "Connections closed by the server, by reason.",
            "reason",
            &closed,
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
        let _ = writeln!(out, "# HELP room_chat_layer_target_up Whether one target of a layer (Redis host, Sentinel master, Cluster partition) is reachable (1) or not (0).\n# TYPE room_chat_layer_target_up gauge");
        for (alias, layer) in layers.iter() {
            for target in layer.targets() {
                let name = target.target.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(
                    out,
                    "room_chat_layer_target_up{{alias=\"{alias}\",target=\"{name}\"}} {}",
                    u8::from(target.health.is_up())
                );
            }
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
