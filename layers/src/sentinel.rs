//! Redis Sentinel: one ring member that is "whichever server the sentinels say is master".
//!
//! A host entry `redis+sentinel://h1:26379?sentinel_master_name=mymaster&addr=h2:26379` names a
//! group of sentinels and the master they watch, as a Python `hosts` entry
//! `{"sentinels": [...], "master_name": ...}` does. Key and channel names do not change, and the
//! ring hashes over entries, so Rust and Python nodes with the same list agree on placement.
//!
//! **Why not redis-rs's own Sentinel support.** It resolves the master when a client is built,
//! but nothing listens to `+switch-master`, and its `ConnectionManager` always reconnects to the
//! same address: after a failover it keeps talking to the old master, and a restarted old master
//! answers as an empty standalone master for seconds before Sentinel converts it, a silent split
//! brain. So here:
//! - the master is **resolved on every (re)connection** (`SENTINEL get-master-addr-by-name`,
//!   asking each sentinel in turn) and **confirmed with `ROLE`** on the server itself: a stale
//!   sentinel answer, or an old master that came back, is refused rather than used;
//! - one watcher task per entry stays subscribed to `+switch-master` on a sentinel (the next one
//!   when it loses it) and bumps a **change epoch** when our master moves; everything that holds
//!   a connection to the master (the subscriber, the queue reader, the command connection)
//!   watches the epoch and reconnects at once, so a failover is followed within about the time
//!   Sentinel takes to announce it, not after a reconnect backoff;
//! - the shared command connection ([`FollowingConnection`]) drops its connection on an epoch
//!   change, on a connection error and on `READONLY` (it reached a demoted master), and the next
//!   command resolves again.

use std::sync::Arc;

use futures_util::StreamExt;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, RedisFuture, Value};
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::connect::ConnectionSettings;
use crate::LayerError;

/// The URL scheme of a Sentinel host entry.
pub(crate) const SCHEME: &str = "redis+sentinel://";

/// A master watched by a group of sentinels.
#[derive(Debug)]
pub(crate) struct SentinelMaster {
    /// `sentinel_master_name`.
    master_name: String,
    /// The sentinels, in the order given.
    sentinels: Vec<(String, u16)>,
    /// The database on the master (`/N` after the first sentinel, default 0).
    db: i64,
    settings: ConnectionSettings,
    /// Bumped whenever the master moves (`+switch-master`): holders of a master connection
    /// reconnect, and so re-resolve.
    epoch: watch::Sender<u64>,
}

impl SentinelMaster {
    /// Parses `redis+sentinel://h1:26379[/db]?sentinel_master_name=NAME&addr=h2:26379…`.
    pub(crate) fn parse(url: &str, settings: &ConnectionSettings) -> Result<Self, LayerError> {
        let invalid =
            |why: &str| LayerError::Config(format!("invalid Sentinel URL {url:?}: {why}"));
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| invalid("it must start with redis+sentinel://"))?;
        let (first, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (first, db) = match first.split_once('/') {
            Some((addr, "")) => (addr, 0),
            Some((addr, db)) => (
                addr,
                db.parse()
                    .map_err(|_| invalid("the database after '/' must be a number"))?,
            ),
            None => (first, 0),
        };
        let mut sentinels = vec![parse_addr(first).ok_or_else(|| invalid("bad host:port"))?];
        let mut master_name = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sentinel_master_name", name)) if !name.is_empty() => {
                    master_name = Some(name.to_owned());
                }
                Some(("addr", addr)) => {
                    sentinels.push(parse_addr(addr).ok_or_else(|| invalid("bad addr host:port"))?);
                }
                _ => return Err(invalid(&format!("unknown parameter {pair:?}"))),
            }
        }
        Ok(Self {
            master_name: master_name.ok_or_else(|| invalid("sentinel_master_name is required"))?,
            sentinels,
            db,
            settings: settings.clone(),
            epoch: watch::Sender::new(0),
        })
    }

    /// A name for logs and health: the sentinels and the master name.
    pub(crate) fn display_name(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect();
        format!("{SCHEME}{}/{}", hosts.join(","), self.master_name)
    }

    /// Notified when the master moves.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// The current change epoch.
    fn epoch(&self) -> u64 {
        *self.epoch.borrow()
    }

    /// Asks the sentinels, in turn, where the master is, and confirms with `ROLE` on that
    /// server that it is a master. Returns a client for it (TCP_NODELAY, the entry's db).
    pub(crate) async fn resolve(&self) -> Result<redis::Client, String> {
        let mut reasons = Vec::new();
        for (host, port) in &self.sentinels {
            match self.ask(host, *port).await {
                Ok((master_host, master_port)) => {
                    match self.confirm(&master_host, master_port).await {
                        Ok(client) => return Ok(client),
                        Err(e) => reasons.push(format!("{master_host}:{master_port}: {e}")),
                    }
                }
                Err(e) => reasons.push(format!("sentinel {host}:{port}: {e}")),
            }
        }
        Err(format!(
            "no confirmed master {:?}: {}",
            self.master_name,
            reasons.join("; ")
        ))
    }

    async fn connect(
        &self,
        host: &str,
        port: u16,
        db: i64,
    ) -> Result<(redis::Client, MultiplexedConnection), String> {
        let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
            host.to_owned(),
            port,
        ))
        .map_err(|e| e.to_string())?
        .set_redis_settings(redis::RedisConnectionInfo::default().set_db(db))
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(self.settings.command_timeout));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        Ok((client, conn))
    }

    async fn ask(&self, host: &str, port: u16) -> Result<(String, u16), String> {
        let (_, mut conn) = self.connect(host, port, 0).await?;
        let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.master_name)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        reply.ok_or_else(|| format!("does not know master {:?}", self.master_name))
    }

    async fn confirm(&self, host: &str, port: u16) -> Result<redis::Client, String> {
        let (client, mut conn) = self.connect(host, port, self.db).await?;
        let role: Value = redis::cmd("ROLE")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        match role {
            Value::Array(items) => match items.first() {
                Some(Value::BulkString(role)) if role.as_slice() == b"master" => Ok(client),
                Some(Value::SimpleString(role)) if role == "master" => Ok(client),
                other => Err(format!("ROLE says {other:?}, not master")),
            },
            other => Err(format!("unexpected ROLE reply {other:?}")),
        }
    }

    /// Stays subscribed to `+switch-master` on one sentinel after another until shutdown, and
    /// bumps the change epoch whenever our master moves. A lost sentinel connection is replaced
    /// by the next sentinel's after `reconnect_min`; while none is reachable the layer still
    /// follows failovers, only later (on the first connection error against the old master).
    pub(crate) async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let mut next = 0usize;
        loop {
            let (host, port) = self.sentinels[next % self.sentinels.len()].clone();
            next += 1;
            let subscribed = async {
                let (client, _) = self.connect(&host, port, 0).await?;
                let mut pubsub = timeout(self.settings.connect_timeout, client.get_async_pubsub())
                    .await
                    .map_err(|_| "connect timed out".to_owned())?
                    .map_err(|e| e.to_string())?;
                pubsub
                    .subscribe("+switch-master")
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(pubsub)
            };
            let pubsub = tokio::select! {
                () = shutdown.cancelled() => return,
                r = subscribed => r,
            };
            match pubsub {
                Ok(pubsub) => {
                    tracing::debug!(sentinel = %format!("{host}:{port}"), master = self.master_name, "watching +switch-master");
                    let mut stream = pubsub.into_on_message();
                    loop {
                        let msg = tokio::select! {
                            () = shutdown.cancelled() => return,
                            msg = stream.next() => msg,
                        };
                        let Some(msg) = msg else { break };
                        // "<master name> <old ip> <old port> <new ip> <new port>"
                        let payload = String::from_utf8_lossy(msg.get_payload_bytes()).into_owned();
                        if payload.split(' ').next() == Some(self.master_name.as_str()) {
                            tracing::warn!(
                                master = self.master_name,
                                switch = payload,
                                "Sentinel switched master; reconnecting to the new one"
                            );
                            self.epoch.send_modify(|e| *e += 1);
                        }
                    }
                    tracing::debug!(sentinel = %format!("{host}:{port}"), "lost the sentinel; watching the next one");
                }
                Err(e) => {
                    tracing::debug!(sentinel = %format!("{host}:{port}"), error = e, "cannot watch this sentinel");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.settings.reconnect_min) => {}
            }
        }
    }
}

fn parse_addr(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    if host.is_empty() {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

/// The shared command connection to a Sentinel-managed master: one multiplexed connection,
/// made on first use by resolving the master, and dropped (so the next command resolves again)
/// when the master moves, when the connection fails, or when the server answers `READONLY`
/// (it is a demoted master). Cheap to clone: clones share the connection.
#[derive(Clone, Debug)]
pub(crate) struct FollowingConnection {
    master: Arc<SentinelMaster>,
    /// The connection and the change epoch it was made in.
    current: Arc<tokio::sync::Mutex<Option<(u64, MultiplexedConnection)>>>,
}

impl FollowingConnection {
    pub(crate) fn new(master: Arc<SentinelMaster>) -> Self {
        Self {
            master,
            current: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// The connection to use now, resolving the master if there is none for this epoch. The
    /// lock is held across the resolution on purpose: concurrent commands wait for the one
    /// new connection instead of each resolving and connecting (a failover would otherwise
    /// open one connection per in-flight command).
    async fn connection(&self) -> redis::RedisResult<(u64, MultiplexedConnection)> {
        let mut current = self.current.lock().await;
        let epoch = self.master.epoch();
        if let Some((made_in, conn)) = current.as_ref() {
            if *made_in == epoch {
                return Ok((*made_in, conn.clone()));
            }
        }
        *current = None;
        let client = self.master.resolve().await.map_err(|reason| {
            redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                reason,
            ))
        })?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.master.settings.connect_timeout))
            .set_response_timeout(Some(self.master.settings.command_timeout));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *current = Some((epoch, conn.clone()));
        Ok((epoch, conn))
    }

    /// Drops the connection made in `epoch` after an error that says it is no longer usable.
    async fn after_error(&self, epoch: u64, error: &redis::RedisError) {
        let unusable = error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_io_error()
            || error.is_timeout()
            || error.code() == Some("READONLY");
        if unusable {
            let mut current = self.current.lock().await;
            if current
                .as_ref()
                .is_some_and(|(made_in, _)| *made_in == epoch)
            {
                *current = None;
            }
        }
    }
}

impl ConnectionLike for FollowingConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (epoch, mut conn) = self.connection().await?;
            let result = conn.req_packed_command(cmd).await;
            if let Err(e) = &result {
                self.after_error(epoch, e).await;
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (epoch, mut conn) = self.connection().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &result {
                self.after_error(epoch, e).await;
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.master.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sentinel_entries() {
        let s = ConnectionSettings::default();
        let m = SentinelMaster::parse(
            "redis+sentinel://h1:26379?sentinel_master_name=mymaster&addr=h2:26380&addr=h3:26381",
            &s,
        )
        .unwrap();
        assert_eq!(m.master_name, "mymaster");
        assert_eq!(
            m.sentinels,
            [
                ("h1".to_owned(), 26379),
                ("h2".to_owned(), 26380),
                ("h3".to_owned(), 26381)
            ]
        );
        assert_eq!(m.db, 0);
        assert_eq!(
            m.display_name(),
            "redis+sentinel://h1:26379,h2:26380,h3:26381/mymaster"
        );
        let db =
            SentinelMaster::parse("redis+sentinel://h:1/3?sentinel_master_name=m", &s).unwrap();
        assert_eq!(db.db, 3);
        for bad in [
            "redis+sentinel://h1:26379",
            "redis+sentinel://h1?sentinel_master_name=m",
            "redis+sentinel://h1:1?sentinel_master_name=m&bogus=1",
            "redis+sentinel://h1:1?sentinel_master_name=m&addr=nope",
        ] {
            assert!(
                matches!(SentinelMaster::parse(bad, &s), Err(LayerError::Config(_))),
                "{bad}"
            );
        }
    }
}
