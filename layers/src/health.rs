//! Live health of a layer: is every backend host reachable right now?
//!
//! Each Redis host has one background task that owns a long-lived connection to it (the pub/sub
//! subscriber, the queue reader or a pinger). That task is the only one that can tell promptly
//! that the host went away (its socket closes), so it reports here; the board folds the per-host
//! states into one [`LayerHealth`] and publishes it through a `watch` channel, which `/healthz`
//! reads without touching Redis.

use std::sync::Mutex;
use std::time::SystemTime;

use tokio::sync::watch;

use crate::message::lock;
use crate::stats::Counters;

/// Whether a layer can carry messages right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerHealth {
    /// Every backend host is connected (the in-memory layer is always up).
    Up,
    /// At least one backend host is unreachable; messages through it are being lost or refused.
    Down {
        /// When the (earliest current) outage began.
        since: SystemTime,
        /// What went wrong, naming the host(s).
        reason: String,
    },
}

impl LayerHealth {
    /// `true` for [`LayerHealth::Up`].
    pub fn is_up(&self) -> bool {
        matches!(self, LayerHealth::Up)
    }
}

/// The health of one target of a layer's transport: a Redis host of the ring (named by its URL
/// without credentials), a Sentinel-managed master, or a partition of a Cluster. `/healthz` and
/// `/metrics` show these so an operator sees *which* one is down, not only that one is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetHealth {
    /// The target's name (a URL without credentials, or `partition {N}`).
    pub target: String,
    /// Its state.
    pub health: LayerHealth,
}

/// Per-host states folded into one published [`LayerHealth`].
#[derive(Debug)]
pub(crate) struct HealthBoard {
    layer: &'static str,
    names: Vec<String>,
    hosts: Mutex<Vec<HostState>>,
    tx: watch::Sender<LayerHealth>,
}

#[derive(Debug, Clone)]
enum HostState {
    /// Not connected yet; counts as up until the first attempt fails, so a fresh layer does not
    /// flap red before it had a chance to connect.
    Starting,
    Up,
    Down {
        since: SystemTime,
        reason: String,
    },
}

impl HealthBoard {
    pub(crate) fn new(layer: &'static str, names: Vec<String>) -> Self {
        Self {
            layer,
            hosts: Mutex::new(vec![HostState::Starting; names.len()]),
            names,
            tx: watch::Sender::new(LayerHealth::Up),
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<LayerHealth> {
        self.tx.subscribe()
    }

    /// Each target's state (a target not connected yet counts as up, see `Starting`).
    pub(crate) fn targets(&self) -> Vec<TargetHealth> {
        let hosts = lock(&self.hosts);
        self.names
            .iter()
            .zip(hosts.iter())
            .map(|(name, state)| TargetHealth {
                target: name.clone(),
                health: match state {
                    HostState::Starting | HostState::Up => LayerHealth::Up,
                    HostState::Down { since, reason } => LayerHealth::Down {
                        since: *since,
                        reason: reason.clone(),
                    },
                },
            })
            .collect()
    }

    fn name(&self, host: usize) -> &str {
        self.names.get(host).map_or("?", String::as_str)
    }

    /// Marks a host reachable. Logs and counts a recovery if it was down.
    pub(crate) fn set_up(&self, host: usize, counters: &Counters) {
        let name = self.name(host);
        let mut hosts = lock(&self.hosts);
        let Some(slot) = hosts.get_mut(host) else {
            return;
        };
        if let HostState::Down { since, .. } = slot {
            let outage = since.elapsed().unwrap_or_default();
            counters
                .reconnects
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                layer = self.layer,
                host = name,
                ?outage,
                "channel layer reconnected to Redis"
            );
        }
        *slot = HostState::Up;
        self.publish(&hosts);
    }

    /// Marks a host unreachable. Logs and counts an outage on the transition only, so a
    /// reconnect loop that keeps failing does not count one outage per attempt.
    pub(crate) fn set_down(&self, host: usize, reason: &str, counters: &Counters) {
        let name = self.name(host);
        let mut hosts = lock(&self.hosts);
        let Some(slot) = hosts.get_mut(host) else {
            return;
        };
        if !matches!(slot, HostState::Down { .. }) {
            counters
                .outages
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(
                layer = self.layer,
                host = name,
                reason,
                "channel layer lost Redis; messages through this host are lost until it is back"
            );
            *slot = HostState::Down {
                since: SystemTime::now(),
                reason: format!("{name}: {reason}"),
            };
        }
        self.publish(&hosts);
    }

    fn publish(&self, hosts: &[HostState]) {
        let mut since: Option<SystemTime> = None;
        let mut reasons = Vec::new();
        for host in hosts {
            if let HostState::Down { since: s, reason } = host {
                since = Some(since.map_or(*s, |e| e.min(*s)));
                reasons.push(reason.as_str());
            }
        }
        let health = match since {
            None => LayerHealth::Up,
            Some(since) => LayerHealth::Down {
                since,
                reason: reasons.join("; "),
            },
        };
        self.tx.send_if_modified(|current| {
            if *current == health {
                false
            } else {
                *current = health;
                true
            }
        });
    }
}
