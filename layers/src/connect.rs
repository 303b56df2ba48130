//! How a Redis layer connects, waits and reconnects: the settings every Redis connection of
//! the layers (and of anything kept beside them in the same Redis) is made with.

use std::time::Duration;

/// How a Redis layer connects, waits and reconnects.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    /// Give up a connection attempt after this long (default 1 s). A healthy Redis on the
    /// network answers in milliseconds; a longer wait only delays reporting an outage.
    pub connect_timeout: Duration,
    /// Give up waiting for a command's reply after this long (default 2 s), so a wedged Redis
    /// turns into an `Unavailable` error instead of a consumer stuck forever.
    pub command_timeout: Duration,
    /// First delay before reconnecting after a failed attempt (default 100 ms). The first retry
    /// after a lost connection is immediate: a restarted Redis is usually back at once.
    pub reconnect_min: Duration,
    /// Longest delay between reconnect attempts (default 2 s): doubling stops here, so recovery
    /// is noticed within two seconds of Redis coming back, while a long outage costs one
    /// connection attempt every two seconds per host.
    pub reconnect_max: Duration,
    /// How often an otherwise idle long-lived connection is checked (default 500 ms): the queue
    /// layer's pinger sends `PING`; the pub/sub layer publishes a liveness probe through its
    /// publish path and expects it back on its subscription within `command_timeout`. A killed
    /// Redis closes our sockets and is noticed at once; a hung one, a silent network partition
    /// or a publish path that delivers nothing only shows as an unanswered check, so this bounds
    /// how long such an outage goes unreported (interval + `command_timeout`). Cost: two PINGs
    /// or two probe `PUBLISH`es a second per host.
    pub keepalive_interval: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(2),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(2),
            keepalive_interval: Duration::from_millis(500),
        }
    }
}
