//! The runtime's counters: what the connections did, registered into the service's
//! Prometheus registry.
//!
//! They are `prometheus-client` counters and gauges, which are relaxed atomics behind an
//! `Arc`: the per-frame path pays one add, no lock and no allocation, and the registry reads
//! them only when `/metrics` is scraped. Every label set is bounded: close reasons are a fixed
//! enum, and the room count is one gauge, not one series per room (a label per room name
//! would let clients create series at will). The per-group map behind the room count changes
//! when a connection joins or leaves a group, never per message.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::close::CloseReason;

impl EncodeLabelValue for CloseReason {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.label())
    }
}

/// The label of `room_chat_connections_closed_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Closed {
    reason: CloseReason,
}

/// Counters and gauges of every connection the runtime served.
#[derive(Debug, Default)]
pub struct RuntimeMetrics {
    connections_open: Gauge,
    connections_total: Counter,
    frames_in: Counter,
    frames_out: Counter,
    frames_rejected: Counter,
    handler_errors: Counter,
    broadcasts_dropped: Counter,
    throttled: Counter,
    closed: Family<Closed, Counter>,
    rooms: Gauge,
    /// Members per group joined through the runtime (a room's size in this process).
    groups: Mutex<HashMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the gauge map inconsistent in a way that
    // matters, so a poisoned lock is taken over.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RuntimeMetrics {
    /// Registers every metric under `registry` (names prefixed `room_chat_`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "room_chat_connections",
            "WebSocket connections open now",
            self.connections_open.clone(),
        );
        registry.register(
            "room_chat_rooms",
            "Rooms (layer groups) with at least one member on this process",
            self.rooms.clone(),
        );
        registry.register(
            "room_chat_connections",
            "WebSocket connections accepted",
            self.connections_total.clone(),
        );
        registry.register(
            "room_chat_frames_in",
            "Text and binary frames received from clients",
            self.frames_in.clone(),
        );
        registry.register(
            "room_chat_frames_out",
            "Frames written to clients (replies, error frames, deliveries)",
            self.frames_out.clone(),
        );
        registry.register(
            "room_chat_frames_rejected",
            "Client frames answered with a validation error",
            self.frames_rejected.clone(),
        );
        registry.register(
            "room_chat_handler_errors",
            "Handlers that failed (the client got an error frame)",
            self.handler_errors.clone(),
        );
        registry.register(
            "room_chat_undeliverable_messages",
            "Layer messages a connection received but could not deliver (unknown type or \
             malformed); drops inside the layers are room_chat_layer_messages_total{event=\"dropped\"}",
            self.broadcasts_dropped.clone(),
        );
        registry.register(
            "room_chat_rate_limited",
            "Episodes in which a client sent faster than the inbound rate limit: its reading was \
             paced and it was told with an error frame",
            self.throttled.clone(),
        );
        registry.register(
            "room_chat_connections_closed",
            "Connections closed by the server, by reason (each counted once)",
            self.closed.clone(),
        );
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_open.inc();
        self.connections_total.inc();
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.dec();
    }

    pub(crate) fn frame_in(&self) {
        self.frames_in.inc();
    }

    pub(crate) fn frames_out(&self, frames: u64) {
        if frames > 0 {
            self.frames_out.inc_by(frames);
        }
    }

    pub(crate) fn frame_rejected(&self) {
        self.frames_rejected.inc();
    }

    pub(crate) fn handler_error(&self) {
        self.handler_errors.inc();
    }

    pub(crate) fn broadcast_dropped(&self) {
        self.broadcasts_dropped.inc();
    }

    pub(crate) fn throttled(&self) {
        self.throttled.inc();
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        self.closed.get_or_create(&Closed { reason }).inc();
    }

    pub(crate) fn group_joined(&self, group: &str) {
        let mut groups = lock(&self.groups);
        *groups.entry(group.to_owned()).or_default() += 1;
        self.rooms
            .set(i64::try_from(groups.len()).unwrap_or(i64::MAX));
    }

    pub(crate) fn group_left(&self, group: &str) {
        let mut groups = lock(&self.groups);
        if let Some(count) = groups.get_mut(group) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                groups.remove(group);
            }
        }
        self.rooms
            .set(i64::try_from(groups.len()).unwrap_or(i64::MAX));
    }

    /// Connections open now.
    pub fn connections_open(&self) -> u64 {
        u64::try_from(self.connections_open.get()).unwrap_or(0)
    }

    /// Connections served since start.
    pub fn connections_total(&self) -> u64 {
        self.connections_total.get()
    }

    /// Text and binary frames received from clients.
    pub fn frames_in_total(&self) -> u64 {
        self.frames_in.get()
    }

    /// Frames written to clients (replies, error frames, deliveries).
    pub fn frames_out_total(&self) -> u64 {
        self.frames_out.get()
    }

    /// Client frames answered with a validation error.
    pub fn frames_rejected_total(&self) -> u64 {
        self.frames_rejected.get()
    }

    /// Client frames whose handler failed.
    pub fn handler_errors_total(&self) -> u64 {
        self.handler_errors.get()
    }

    /// Layer messages a connection could not turn into a frame (unknown type, undecodable).
    pub fn broadcasts_dropped_total(&self) -> u64 {
        self.broadcasts_dropped.get()
    }

    /// Episodes in which a client sent faster than the inbound rate limit and was paced (and
    /// told so).
    pub fn throttled_total(&self) -> u64 {
        self.throttled.get()
    }

    /// Connections the server closed for `reason`.
    pub fn closed_total(&self, reason: CloseReason) -> u64 {
        self.closed.get_or_create(&Closed { reason }).get()
    }

    /// Groups with at least one member in this process, and their member counts.
    pub fn groups(&self) -> Vec<(String, u64)> {
        let mut groups: Vec<(String, u64)> = lock(&self.groups)
            .iter()
            .map(|(group, count)| (group.clone(), *count))
            .collect();
        groups.sort();
        groups
    }
}
