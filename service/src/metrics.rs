//! Prometheus metrics of the service, served at `/metrics`, through `prometheus-client`.
//!
//! Counters are atomics updated on the hot path (a relaxed increment per frame), and the
//! registry reads them when scraped, so observability costs nothing per message but an add.
//! Layer counters are not copied here: they are read from each layer's own
//! [`room_chat_layers::LayerStats`] at scrape time, so the two can never disagree. Every label
//! set is bounded (reasons, events and aliases are fixed sets; rooms are counted, not
//! labelled).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    prometheus_text, DescriptorEncoder, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use room_chat_layers::{DropReason, LayerHealth, LayerRegistry};
pub use room_chat_runtime::CloseReason;
use room_chat_runtime::RuntimeMetrics;

/// Why the server refused a handshake before the upgrade (the app's own refusals, such as a
/// room name, carry their label in their [`room_chat_runtime::Refusal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EdgeRefusal {
    /// The origin is not allowed (HTTP 403).
    Origin,
    /// The connection cap was reached (HTTP 503).
    Capacity,
    /// The server is shutting down (HTTP 503).
    ShuttingDown,
    /// The app's channel layer is down (HTTP 503).
    LayerDown,
}

impl EdgeRefusal {
    fn label(self) -> &'static str {
        match self {
            Self::Origin => "origin",
            Self::Capacity => "capacity",
            Self::ShuttingDown => "shutting_down",
            Self::LayerDown => "layer_unavailable",
        }
    }
}

/// The label of `room_chat_handshakes_refused_total`: a `&'static str` from a fixed set (the
/// server's [`EdgeRefusal`]s and the app's own labels), so the family stays bounded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Refused {
    reason: &'static str,
}

/// The service's metrics: the runtime's per-connection ones, the server's own, and the
/// layers' (read from each layer's own [`room_chat_layers::LayerStats`] at scrape time), all
/// in one `prometheus-client` registry.
#[derive(Debug)]
pub struct Metrics {
    runtime: Arc<RuntimeMetrics>,
    refused: Family<Refused, Counter>,
    registry: Registry,
}

impl Metrics {
    /// The registry of the service over `layers`.
    pub fn new(layers: Arc<LayerRegistry>) -> Self {
        let runtime = Arc::new(RuntimeMetrics::default());
        let refused = Family::<Refused, Counter>::default();
        let mut registry = Registry::default();
        runtime.register(&mut registry);
        registry.register(
            "room_chat_handshakes_refused",
            "Handshakes refused before the upgrade, by reason",
            refused.clone(),
        );
        registry.register_collector(Box::new(LayerCollector { layers }));
        Self {
            runtime,
            refused,
            registry,
        }
    }

    /// The runtime's counters, handed to every connection.
    pub fn runtime(&self) -> &Arc<RuntimeMetrics> {
        &self.runtime
    }

    /// Connections open now.
    pub fn connections_open(&self) -> u64 {
        self.runtime.connections_open()
    }

    /// A handshake was refused by the server.
    pub fn refused(&self, why: EdgeRefusal) {
        self.refused_as(why.label());
    }

    /// A handshake was refused, counted under `label`.
    pub fn refused_as(&self, label: &'static str) {
        self.refused.get_or_create(&Refused { reason: label }).inc();
    }

    /// How many times the server closed connections for `why`.
    pub fn closed_count(&self, why: CloseReason) -> u64 {
        self.runtime.closed_total(why)
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "could not encode the metrics");
        }
        out
    }
}

/// The layers' health and counters, read from the layers on each scrape (never copied, so
/// `/metrics` and the layers cannot disagree). Labels: the registered aliases (a fixed set),
/// the fixed events and the fixed drop reasons.
#[derive(Debug)]
struct LayerCollector {
    layers: Arc<LayerRegistry>,
}

impl Collector for LayerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut up = encoder.encode_descriptor(
            "room_chat_layer_up",
            "Whether the layer's backend is reachable (1) or not (0)",
            None,
            MetricType::Gauge,
        )?;
        for (alias, layer) in self.layers.iter() {
            let value = i64::from(matches!(*layer.health().borrow(), LayerHealth::Up));
            let labels = [("alias", alias), ("kind", layer.kind())];
            ConstGauge::new(value).encode(up.encode_family(&labels)?)?;
        }
        // Targets are the configured hosts, Sentinel masters or Cluster partitions: a fixed
        // set per process, so the label stays bounded.
        let mut target_up = encoder.encode_descriptor(
            "room_chat_layer_target_up",
            "Whether one target of a layer (Redis host, Sentinel master, Cluster partition) is reachable (1) or not (0)",
            None,
            MetricType::Gauge,
        )?;
        for (alias, layer) in self.layers.iter() {
            for target in layer.targets() {
                let labels = [("alias", alias), ("target", target.target.as_str())];
                ConstGauge::new(i64::from(target.health.is_up()))
                    .encode(target_up.encode_family(&labels)?)?;
            }
        }
        // One snapshot per layer per scrape, so the families below agree with each other.
        let snapshots: Vec<_> = self
            .layers
            .iter()
            .map(|(alias, layer)| (alias, layer.stats()))
            .collect();
        let mut messages = encoder.encode_descriptor(
            "room_chat_layer_messages",
            "Channel-layer message counts by event (and by reason for drops)",
            None,
            MetricType::Counter,
        )?;
        for (alias, stats) in &snapshots {
            for (event, value) in [
                ("sent", stats.sent),
                ("group_sent", stats.group_sent),
                ("delivered", stats.delivered),
            ] {
                let labels = [("alias", *alias), ("event", event)];
                ConstCounter::new(value).encode(messages.encode_family(&labels)?)?;
            }
            for reason in DropReason::ALL {
                let labels = [
                    ("alias", *alias),
                    ("event", "dropped"),
                    ("reason", reason.as_str()),
                ];
                ConstCounter::new(stats.dropped(reason))
                    .encode(messages.encode_family(&labels)?)?;
            }
        }
        for (name, help, value) in [
            (
                "room_chat_layer_outages",
                "Times a layer lost its backend",
                (|s: &room_chat_layers::LayerStats| s.outages) as fn(&_) -> u64,
            ),
            (
                "room_chat_layer_reconnects",
                "Times a layer re-established its backend connection",
                |s: &room_chat_layers::LayerStats| s.reconnects,
            ),
            (
                "room_chat_layer_resubscribes",
                "Subscribe commands a layer sent to restore subscriptions its backend dropped",
                |s: &room_chat_layers::LayerStats| s.resubscribes,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (alias, stats) in &snapshots {
                ConstCounter::new(value(stats))
                    .encode(family.encode_family(&[("alias", *alias)])?)?;
            }
        }
        Ok(())
    }
}
