//! The runtime's counters: what a connection did, read by the service's `/metrics`.
//!
//! Plain relaxed atomics updated on the per-frame path (an add each, no lock, no allocation);
//! the service renders them when scraped. The per-group gauge is the one map: it changes when a
//! connection joins or leaves a group, never per message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::close::CloseReason;

/// Counters and gauges of every connection the runtime served.
#[derive(Debug, Default)]
pub struct RuntimeMetrics {
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    frames_rejected: AtomicU64,
    handler_errors: AtomicU64,
    broadcasts_dropped: AtomicU64,
    throttled: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
    /// Members per group joined through the runtime (a room's size in this process).
    groups: Mutex<HashMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the gauge map inconsistent in a way that
    // matters, so a poisoned lock is taken over.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RuntimeMetrics {
    pub(crate) fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }

    pub(crate) fn frame_in(&self) {
        self.frames_in.fetch_add(1, Relaxed);
    }

    pub(crate) fn frames_out(&self, frames: u64) {
        self.frames_out.fetch_add(frames, Relaxed);
    }

    pub(crate) fn frame_rejected(&self) {
        self.frames_rejected.fetch_add(1, Relaxed);
    }

    pub(crate) fn handler_error(&self) {
        self.handler_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn broadcast_dropped(&self) {
        self.broadcasts_dropped.fetch_add(1, Relaxed);
    }

    pub(crate) fn throttled(&self) {
        self.throttled.fetch_add(1, Relaxed);
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        self.closed[reason.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn group_joined(&self, group: &str) {
        *lock(&self.groups).entry(group.to_owned()).or_default() += 1;
    }

    pub(crate) fn group_left(&self, group: &str) {
        let mut groups = lock(&self.groups);
        if let Some(count) = groups.get_mut(group) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                groups.remove(group);
            }
        }
    }

    /// Connections open now.
    pub fn connections_open(&self) -> u64 {
        self.connections_open.load(Relaxed)
    }

    /// Connections served since start.
    pub fn connections_total(&self) -> u64 {
        self.connections_total.load(Relaxed)
    }

    /// Text and binary frames received from clients.
    pub fn frames_in_total(&self) -> u64 {
        self.frames_in.load(Relaxed)
    }

    /// Frames written to clients (replies, error frames, deliveries).
    pub fn frames_out_total(&self) -> u64 {
        self.frames_out.load(Relaxed)
    }

    /// Client frames answered with a validation error.
    pub fn frames_rejected_total(&self) -> u64 {
        self.frames_rejected.load(Relaxed)
    }

    /// Client frames whose handler failed.
    pub fn handler_errors_total(&self) -> u64 {
        self.handler_errors.load(Relaxed)
    }

    /// Layer messages a connection could not turn into a frame (unknown type, undecodable).
    pub fn broadcasts_dropped_total(&self) -> u64 {
        self.broadcasts_dropped.load(Relaxed)
    }

    /// Episodes in which a client sent faster than the inbound rate limit and was paced (and
    /// told so).
    pub fn throttled_total(&self) -> u64 {
        self.throttled.load(Relaxed)
    }

    /// Connections the server closed for `reason`.
    pub fn closed_total(&self, reason: CloseReason) -> u64 {
        self.closed[reason.index()].load(Relaxed)
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
