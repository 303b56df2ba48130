//! The in-memory layer: channels and groups of a single process, no Redis.
//!
//! It is what the service runs without `REDIS_URL`, and the reference behaviour the Redis
//! layers are tested against. Same rules as the Python `InMemoryChannelLayer`: per-channel
//! `capacity` (a full channel refuses `send` with `ChannelFull`), message `expiry`, group
//! membership `group_expiry`, and the channel/group naming rules.
//!
//! It is the shared local core with no remote transport: a `send` is a push into the target's
//! inbox (refused with `ChannelFull` when full), a `group_send` is the core's fan-out (a full
//! member is a slow consumer, as on every layer).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::health::TargetHealth;
use crate::inbox::ChannelOwner;
use crate::local::LocalCore;
use crate::names::{random_hex32, validate_channel_name};
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
    /// that is evicted is counted as an [`Expired`](crate::DropReason::Expired) drop and logged.
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
    settings: MemorySettings,
    core: Arc<LocalCore>,
}

impl MemoryLayer {
    /// Builds a layer.
    pub fn new(settings: MemorySettings) -> Self {
        Self {
            core: Arc::new(LocalCore::new(
                KIND,
                Vec::new(),
                settings.capacity,
                Some(settings.group_expiry),
            )),
            settings,
        }
    }

    /// The layer's settings.
    pub fn settings(&self) -> &MemorySettings {
        &self.settings
    }

    fn expires_at(&self) -> Option<Instant> {
        Instant::now().checked_add(self.settings.expiry)
    }
}

impl Default for MemoryLayer {
    fn default() -> Self {
        Self::new(MemorySettings::default())
    }
}

#[async_trait::async_trait]
impl ChannelLayer for MemoryLayer {
    async fn new_channel(&self) -> Result<Inbox, LayerError> {
        self.core.lifecycle.check_open()?;
        let name: Arc<str> = Arc::from(format!("specific.inmemory!{}", random_hex32()));
        let owner: std::sync::Weak<LocalCore> = Arc::downgrade(&self.core);
        let owner: std::sync::Weak<dyn ChannelOwner> = owner;
        Ok(self.core.open(name, owner))
    }

    async fn send(&self, channel: &str, message: Message) -> Result<(), LayerError> {
        self.core.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        self.core.send(channel, message, self.expires_at())?;
        self.core.count_sent();
        Ok(())
    }

    async fn group_add(&self, group: &Group, channel: &str) -> Result<(), LayerError> {
        self.core.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        self.core.join_any(group, channel);
        Ok(())
    }

    async fn group_discard(&self, group: &Group, channel: &str) -> Result<(), LayerError> {
        self.core.lifecycle.check_open()?;
        validate_channel_name(channel)?;
        self.core.leave(group, channel);
        Ok(())
    }

    async fn group_send(&self, group: &Group, message: Message) -> Result<(), LayerError> {
        self.core.lifecycle.check_open()?;
        self.core
            .deliver_to_group(group, &message, self.expires_at())
            .await;
        self.core.count_group_sent();
        Ok(())
    }

    async fn flush(&self) -> Result<(), LayerError> {
        self.core.clear();
        Ok(())
    }

    async fn close(&self) -> Result<(), LayerError> {
        self.core.lifecycle.mark_closed();
        self.core.clear();
        Ok(())
    }

    fn health(&self) -> watch::Receiver<LayerHealth> {
        self.core.health()
    }

    fn targets(&self) -> Vec<TargetHealth> {
        self.core.targets()
    }

    fn stats(&self) -> LayerStats {
        self.core.stats()
    }

    fn kind(&self) -> &'static str {
        KIND
    }
}
