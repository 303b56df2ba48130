//! A real Redis Sentinel group owned by a test: one master, one replica and three sentinels
//! (`redis-server --sentinel`, nothing else to install), on free ports, without persistence,
//! in a temporary directory, killed on drop.
//!
//! Ready in ~5 s on two cores, so a test binary starts one and runs its scenarios in order; a
//! failover swaps the roles of the two data servers, so scenarios ask
//! [`SentinelGroup::master_port`] instead of remembering ports.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use room_chat_layers::testing::sentinel::SentinelGroup;
//! let mut group = SentinelGroup::start().await?;
//! let url = group.url(); // "redis+sentinel://127.0.0.1:S1?sentinel_master_name=mymaster&addr=…"
//! let announced = group.switch_announced(1).await?; // +switch-master, seen by sentinel 1
//! group.failover().await?;                           // SENTINEL FAILOVER
//! let _when = announced.await;
//! group.wait_ready().await?;                          // replica synced, quorum, ready again
//! let master = group.master_port().await.expect("a master");
//! group.kill_server(master)?;                         // kill -9
//! group.restart_server(master)?;                      // back as an empty standalone master
//! # Ok(()) }
//! ```

use std::io;
use std::path::Path;
use std::time::Duration;

use std::time::Instant;
use tokio::task::JoinHandle;

use super::process::Process;
use super::{command, free_ports, redis_server_program, text, wait_until};

/// The name the sentinels monitor the master under.
pub const MASTER_NAME: &str = "mymaster";

/// `down-after-milliseconds`: how long the master may be unreachable before a sentinel
/// considers it down. 1 s keeps crash scenarios short (a promotion after `kill -9` came ~2 s
/// after the kill with it).
pub const DOWN_AFTER: Duration = Duration::from_secs(1);

/// `failover-timeout`: also the least time between two failovers of the master.
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(2);

/// How long [`SentinelGroup::start`] and the other waits give the group to reach a state.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// 1 master + 1 replica + 3 sentinels, killed on drop.
#[derive(Debug)]
pub struct SentinelGroup {
    /// The two data servers; which one is master changes as failovers happen.
    servers: Vec<Process>,
    sentinels: Vec<Process>,
    _dir: tempfile::TempDir,
}

fn server_args(port: u16, dir: &Path, replica_of: Option<u16>) -> io::Result<Vec<String>> {
    let dir = dir.join(format!("server-{port}"));
    std::fs::create_dir_all(&dir)?;
    let mut args = super::server_args(port, &dir);
    if let Some(master) = replica_of {
        args.extend([
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            master.to_string(),
        ]);
    }
    Ok(args)
}

impl SentinelGroup {
    /// Starts the five processes (`redis-server` from `PATH` or `$REDIS_SERVER`) and waits
    /// until the group is ready (see [`Self::wait_ready`]).
    pub async fn start() -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let program = redis_server_program();
        // Two data servers and three sentinels, all on distinct ports.
        let [master, replica, sentinel_ports @ ..] = free_ports::<5>()?;
        let servers = vec![
            Process::spawn(
                program.clone(),
                master,
                server_args(master, dir.path(), None)?,
            )?,
            Process::spawn(
                program.clone(),
                replica,
                server_args(replica, dir.path(), Some(master))?,
            )?,
        ];
        let mut sentinels = Vec::new();
        for port in sentinel_ports {
            let conf = dir.path().join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} {}\n\
                     sentinel failover-timeout {MASTER_NAME} {}\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n",
                    dir.path().display(),
                    DOWN_AFTER.as_millis(),
                    FAILOVER_TIMEOUT.as_millis(),
                ),
            )?;
            sentinels.push(Process::spawn(
                program.clone(),
                port,
                vec![conf.display().to_string(), "--sentinel".to_owned()],
            )?);
        }
        let group = Self {
            servers,
            sentinels,
            _dir: dir,
        };
        group.wait_ready().await?;
        Ok(group)
    }

    /// The `REDIS_URL` member naming all three sentinels:
    /// `redis+sentinel://127.0.0.1:S1?sentinel_master_name=mymaster&addr=127.0.0.1:S2&addr=…`.
    pub fn url(&self) -> String {
        let mut url = format!(
            "redis+sentinel://127.0.0.1:{}?sentinel_master_name={MASTER_NAME}",
            self.sentinels[0].port
        );
        for s in &self.sentinels[1..] {
            url.push_str(&format!("&addr=127.0.0.1:{}", s.port));
        }
        url
    }

    /// The sentinels' ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// Waits until every sentinel agrees on the master and sees a quorum, and the master has
    /// a replica in sync that the sentinels know (so a failover can happen).
    pub async fn wait_ready(&self) -> io::Result<()> {
        wait_until(READY_TIMEOUT, "the Sentinel group is ready", || {
            self.ready()
        })
        .await
    }

    /// After a failover: waits out Sentinel's spacing between two failovers of one master
    /// (twice `failover-timeout`; a failover asked for sooner is refused), by which time the
    /// demoted master has resynced as a replica, then [`Self::wait_ready`].
    pub async fn wait_ready_for_next_failover(&self) -> io::Result<()> {
        tokio::time::sleep(FAILOVER_TIMEOUT * 2).await;
        self.wait_ready().await
    }

    async fn ready(&self) -> bool {
        let Some(master) = self.master_port().await else {
            return false;
        };
        for port in self.sentinel_ports() {
            let quorum = command(port, &["SENTINEL", "CKQUORUM", MASTER_NAME]).await;
            if !matches!(
                quorum,
                Ok(redis::Value::Okay | redis::Value::SimpleString(_))
            ) {
                return false;
            }
            let replicas = command(port, &["SENTINEL", "REPLICAS", MASTER_NAME]).await;
            let listing = format!("{replicas:?}");
            if !listing.contains("slave")
                || listing.contains("s_down")
                || listing.contains("disconnected")
            {
                return false;
            }
        }
        let replication = text(command(master, &["INFO", "replication"]).await.ok());
        replication.contains("role:master")
            && replication.contains("connected_slaves:1")
            && replication.contains("state=online")
    }

    /// The master port all three sentinels agree on (none while they disagree).
    pub async fn master_port(&self) -> Option<u16> {
        let mut agreed = None;
        for port in self.sentinel_ports() {
            let reply = command(port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME])
                .await
                .ok()?;
            let redis::Value::Array(items) = reply else {
                return None;
            };
            let port: u16 = redis::from_redis_value(items.get(1)?.clone()).ok()?;
            if agreed.is_some_and(|p| p != port) {
                return None;
            }
            agreed = Some(port);
        }
        agreed
    }

    /// A manual failover: `SENTINEL FAILOVER` on the first sentinel. Returns once accepted;
    /// Sentinel announces the new master (`+switch-master`, see [`Self::switch_announced`])
    /// about a second later.
    pub async fn failover(&self) -> io::Result<()> {
        command(
            self.sentinels[0].port,
            &["SENTINEL", "FAILOVER", MASTER_NAME],
        )
        .await
        .map(drop)
    }

    /// Subscribes to `+switch-master` on sentinel `index` (0-2) and returns a task that ends
    /// when the next one arrives, with the time it did, or with an error if the sentinel's
    /// connection closed first (so no test times a failover by a dropped connection).
    /// Subscribe *before* causing the failover.
    pub async fn switch_announced(
        &self,
        index: usize,
    ) -> io::Result<JoinHandle<io::Result<Instant>>> {
        let port = self
            .sentinels
            .get(index)
            .map(|s| s.port)
            .ok_or_else(|| io::Error::other(format!("no sentinel {index}")))?;
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(io::Error::other)?;
        let mut pubsub = client.get_async_pubsub().await.map_err(io::Error::other)?;
        pubsub
            .subscribe("+switch-master")
            .await
            .map_err(io::Error::other)?;
        Ok(tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut stream = pubsub.into_on_message();
            match stream.next().await {
                Some(_) => Ok(Instant::now()),
                None => Err(io::Error::other(format!(
                    "sentinel on port {port} closed before announcing +switch-master"
                ))),
            }
        }))
    }

    /// `kill -9` of the data server on `port`.
    pub fn kill_server(&mut self, port: u16) -> io::Result<()> {
        self.server(port)?.kill();
        Ok(())
    }

    /// Starts the data server on `port` again with its original arguments: a killed master
    /// comes back as an empty standalone master until Sentinel converts it to a replica.
    pub fn restart_server(&mut self, port: u16) -> io::Result<()> {
        self.server(port)?.start()
    }

    fn server(&mut self, port: u16) -> io::Result<&mut Process> {
        self.servers
            .iter_mut()
            .find(|s| s.port == port)
            .ok_or_else(|| io::Error::other(format!("no data server on port {port}")))
    }
}

/// How long to wait for `+switch-master` after a failover was caused.
pub const SWITCH_TIMEOUT: Duration = Duration::from_secs(10);
