//! The in-memory layer: channels and groups of a single process, no Redis.
//!
//! It is what the service runs without `REDIS_URL`, and the reference behaviour the Redis
//! layers are tested against. Same rules as the Python `InMemoryChannelLayer`: per-channel
//! `capacity` (a full channel refuses `send` with `ChannelFull`), message `expiry`, group
//! membership `group_expiry`, and the channel/group naming rules.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::health::HealthBoard;
use crate::inbox::{push, ChannelOwner, Envelope, Push};
use crate::lifecycle::Lifecycle;
use crate::message::lock;
use crate::names::{random_hex32, validate_channel_name};
use crate::stats::{Counters, DropReason};
use crate::{ChannelLayer, Group, Inbox, LayerError, LayerHealth, LayerStats, Message};

const KIND: &str = "memory";

/// Settings of the in-memory layer. Defaults are the Python layer's.
#[derive(Clone, Debug)]
pub struct MemorySettings {
    /// Messages a channel holds before `send` fails with `ChannelFull` (default 100). The queue
    /// is the inbox itself, so this is also the most memory one stalled consumer can pin: 100
    /// shared `Arc`s, a few KiB.
    pub capacity: usize,
    /// A message not received within this time is dropped (default 60 s): a consumer that
    /// catches up after a minute should not replay a minute-old chat as if it were live.
    pub expiry: Duration,
    /// A group membership older than this is forgotten (default 86 400 s, one day), so channels
    /// of consumers that died without `group_discard` do not accumulate forever. A live
    /// consumer that stays longer must `group_add` again (that refreshes its join time); one
    /// that is evicted is counted as an [`Expired`](DropReason::Expired) drop and logged.
    pub group_expiry: Duration,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self {
            capacity: 100,
            expiry: Duration::from_secs(60),
            group_expiry: Duration::from_secs(86_400),
        }
    }
}

/// The in-memory channel layer.
#[derive(Debug)]
pub struct MemoryLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    settings: MemorySettings,
    state: Mutex<State>,
    counters: Arc<Counters>,
    health: HealthBoard,
    lifecycle: Lifecycle,
}

#[derive(Debug, Default)]
struct State {
    channels: HashMap<Arc<str>, mpsc::Sender<Envelope>>,
    /// group -> member -> join time.
    groups: HashMap<Group, HashMap<Arc<str>, Instant>>,
    /// channel -> groups it joined, so dropping an inbox can leave them without a scan.
    memberships: HashMap<Arc<str>, HashSet<Group>>,
}

impl MemoryLayer {
    /// Builds a layer.
    pub fn new(settings: MemorySettings) -> Self {
        Self {
            shared: Arc::new(Shared {
                settings,
                state: Mutex::new(State::default()),
                counters: Arc::new(Counters::default()),
                health: HealthBoard::new(KIND, 0),
                lifecycle: Lifecycle::default(),
            }),
        }
    }

    /// The layer's settings.
    pub fn settings(&self) -> &MemorySettings {
        &self.shared.settings
    }

    fn envelope(&self, message: Message) -> Envelope {
        Envelope {
            message,
            expires_at: Instant::now().checked_add(self.shared.settings.expiry),
        }
    }
}

impl Default for MemoryLayer {
    fn default() -> Self {
        Self::new(MemorySettings::default())
    }
}

impl ChannelOwner for Shared {
    fn release(self: Arc<Self>, channel: &str) {
        let mut state = lock(&self.state);
        state.channels.remove(channel);
        if let Some(groups) = state.memberships.remove(channel) {
            for group in groups {
                if let Some(members) = state.groups.get_mut(&group) {
                    members.remove(channel);
                    if members.is_empty() {
                        state.groups.remove(&group);
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl ChannelLayer for MemoryLayer {
    async fn new_channel(&self) -> Result<Inbox, LayerError> {
        self.shared.lifecycle.check_open()?;
        let name: Arc<str> = Arc::from(format!("specific.inmemory!{}", random_hex32()));
        let (tx, rx) = mpsc::channel(self.shared.settings.capacity.max(1));
        lock(&self.shared.state).channels.insert(name.clone(), tx);
        let owner: std::sync::Weak<Shared> = Arc::downgrade(&self.shared);
        Ok(Inbox::new(
            name,
            rx,
            self.shared.counters.clone(),
            KIND,
            owner,
        ))
    }

    async fn send(&self, channel: &str, message: Message) -> Result<(), LayerError> {
        self.shared.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        let tx = lock(&self.shared.state).channels.get(channel).cloned();
        let Some(tx) = tx else {
            self.shared
                .counters
                .dropped(KIND, DropReason::NoSuchChannel, channel, 1);
            return Ok(());
        };
        match push(&tx, self.envelope(message)) {
            Push::Queued => {
                self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Push::Full => {
                self.shared
                    .counters
                    .dropped(KIND, DropReason::ChannelFull, channel, 1);
                Err(LayerError::ChannelFull {
                    channel: channel.to_owned(),
                })
            }
            Push::Gone => {
                self.shared
                    .counters
                    .dropped(KIND, DropReason::NoSuchChannel, channel, 1);
                Ok(())
            }
        }
    }

    async fn group_add(&self, group: &Group, channel: &str) -> Result<(), LayerError> {
        self.shared.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        let mut state = lock(&self.shared.state);
        let channel: Arc<str> = state
            .channels
            .get_key_value(channel)
            .map_or_else(|| Arc::from(channel), |(k, _)| k.clone());
        // `insert` replaces the join time of an existing member: re-adding refreshes it.
        state
            .groups
            .entry(group.clone())
            .or_default()
            .insert(channel.clone(), Instant::now());
        state
            .memberships
            .entry(channel)
            .or_default()
            .insert(group.clone());
        Ok(())
    }

    async fn group_discard(&self, group: &Group, channel: &str) -> Result<(), LayerError> {
        self.shared.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        let mut state = lock(&self.shared.state);
        if let Some(members) = state.groups.get_mut(group.as_str()) {
            members.remove(channel);
            if members.is_empty() {
                state.groups.remove(group.as_str());
            }
        }
        if let Some(groups) = state.memberships.get_mut(channel) {
            groups.remove(group.as_str());
            if groups.is_empty() {
                state.memberships.remove(channel);
            }
        }
        Ok(())
    }

    async fn group_send(&self, group: &Group, message: Message) -> Result<(), LayerError> {
        self.shared.lifecycle.check_open()?;
        let now = Instant::now();
        let group_expiry = self.shared.settings.group_expiry;
        // Snapshot the members' senders under the lock, deliver outside it: the lock is never
        // held across an await, and a big group does not block other groups' sends.
        let (targets, missing, evicted) = {
            let mut state = lock(&self.shared.state);
            let State {
                channels,
                groups,
                memberships,
            } = &mut *state;
            let Some(members) = groups.get_mut(group.as_str()) else {
                self.shared
                    .counters
                    .group_sent
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(());
            };
            // Members that joined longer than `group_expiry` ago are evicted, and would have
            // received this message: count each as an expired delivery, so an eviction of a
            // consumer that is still alive (one that forgot to re-add itself) is never silent.
            let mut evicted = 0u64;
            members.retain(|name, joined| {
                let keep = now.saturating_duration_since(*joined) < group_expiry;
                if !keep {
                    evicted += 1;
                    if let Some(joined_groups) = memberships.get_mut(name) {
                        joined_groups.remove(group.as_str());
                        if joined_groups.is_empty() {
                            memberships.remove(name);
                        }
                    }
                }
                keep
            });
            let mut missing = 0u64;
            let targets: Vec<(Arc<str>, mpsc::Sender<Envelope>)> = members
                .keys()
                .filter_map(|name| match channels.get(name) {
                    Some(tx) => Some((name.clone(), tx.clone())),
                    None => {
                        missing += 1;
                        None
                    }
                })
                .collect();
            if members.is_empty() {
                groups.remove(group.as_str());
            }
            (targets, missing, evicted)
        };
        if evicted > 0 {
            tracing::info!(
                layer = KIND,
                group = group.as_str(),
                evicted,
                ?group_expiry,
                "group memberships expired; their channels no longer receive this group"
            );
            self.shared
                .counters
                .dropped(KIND, DropReason::Expired, group.as_str(), evicted);
        }
        self.shared
            .counters
            .dropped(KIND, DropReason::NoSuchChannel, group.as_str(), missing);
        let expires_at = self.envelope(message.clone()).expires_at;
        for (pushed, (name, tx)) in targets.into_iter().enumerate() {
            // Every receiver shares the same Arc'd message: no per-receiver copy.
            let envelope = Envelope {
                message: message.clone(),
                expires_at,
            };
            match push(&tx, envelope) {
                Push::Queued => {}
                Push::Full => self
                    .shared
                    .counters
                    .dropped(KIND, DropReason::ChannelFull, &name, 1),
                Push::Gone => {
                    self.shared
                        .counters
                        .dropped(KIND, DropReason::NoSuchChannel, &name, 1);
                }
            }
            crate::inbox::fan_out_yield(pushed).await;
        }
        self.shared
            .counters
            .group_sent
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn flush(&self) -> Result<(), LayerError> {
        // Dropping the senders ends every inbox with `Closed`.
        *lock(&self.shared.state) = State::default();
        Ok(())
    }

    async fn close(&self) -> Result<(), LayerError> {
        self.shared.lifecycle.mark_closed();
        *lock(&self.shared.state) = State::default();
        Ok(())
    }

    fn health(&self) -> watch::Receiver<LayerHealth> {
        self.shared.health.subscribe()
    }

    fn stats(&self) -> LayerStats {
        self.shared.counters.snapshot()
    }

    fn kind(&self) -> &'static str {
        KIND
    }
}
