//! A real Redis Cluster owned by a test or a benchmark: 3 masters + 3 replicas of
//! `redis-server --cluster-enabled yes` on free ports (client and bus port each), joined with
//! `redis-cli --cluster create`, without persistence, in a temporary directory, killed on drop.
//!
//! Starting one takes ~2-3 s on two cores, so a test binary starts one and runs its scenarios
//! in order against it; each failover changes which node owns what, so scenarios ask the
//! cluster ([`RedisCluster::owner`]) instead of remembering ports.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use room_chat_layers::cluster::slot_of_tag;
//! use room_chat_layers::testing::cluster::RedisCluster;
//! let mut cluster = RedisCluster::start().await?;
//! let url = cluster.url(); // "redis+cluster://127.0.0.1:P1?addr=127.0.0.1:P2&…"
//! let slot = slot_of_tag("p0.0");
//! let (old, new) = cluster.failover(slot).await?; // CLUSTER FAILOVER on the owner's replica
//! cluster.settle(&old).await?;                     // ready for the next failover
//! let victim = cluster.owner(slot).await.expect("an owner");
//! cluster.kill(victim.port)?;                       // kill -9; its replica takes over
//! cluster.wait_owner_changed(slot, &victim).await?;
//! # Ok(()) }
//! ```

use std::io;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::process::Process;
use super::{command, free_ports, redis_server_program, text, wait_until};

/// `cluster-node-timeout` of every node: how long a master may be unreachable before the
/// others fail it over. 2 s (the Redis default is 15 s) keeps crash scenarios short; a
/// promotion after `kill -9` took ~3-4 s with it.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// Masters (each with one replica).
pub const MASTERS: usize = 3;

/// How long [`RedisCluster::start`] and the other waits give the cluster to reach a state.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One line of `CLUSTER NODES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node ID.
    pub id: String,
    /// Its client port on 127.0.0.1.
    pub port: u16,
    /// Whether it is a master (`master` flag).
    pub master: bool,
    /// Whether the cluster considers it failed (`fail` or `fail?` flag).
    pub failed: bool,
    /// The master a replica follows (`None` for a master).
    pub master_id: Option<String>,
    /// The slot ranges it serves (migrating/importing entries left out).
    pub slots: Vec<RangeInclusive<u16>>,
}

impl ClusterNode {
    /// Whether this node serves `slot`.
    pub fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|range| range.contains(&slot))
    }

    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split(' ').collect();
        let port = fields
            .get(1)?
            .split('@')
            .next()?
            .rsplit(':')
            .next()?
            .parse()
            .ok()?;
        let flags = fields.get(2)?;
        let master_id = fields.get(3)?;
        let slots = fields
            .iter()
            .skip(8)
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some(a.parse().ok()?..=b.parse().ok()?),
                None => s.parse().ok().map(|x| x..=x),
            })
            .collect();
        Some(Self {
            id: (*fields.first()?).to_owned(),
            port,
            master: flags.contains("master"),
            failed: flags.contains("fail"),
            master_id: (*master_id != "-").then(|| (*master_id).to_owned()),
            slots,
        })
    }
}

/// 3 masters + 3 replicas on free ports, killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Process>,
    // Dropped after the processes (fields drop in order), so no node outlives its directory.
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts six nodes (`redis-server` from `PATH` or `$REDIS_SERVER`), creates the cluster
    /// with `redis-cli --cluster create … --cluster-replicas 1` and waits until it is healthy
    /// (see [`Self::wait_healthy`]). A missing `redis-server` or
    /// `redis-cli` is an error.
    pub async fn start() -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let program = redis_server_program();
        let mut nodes = Vec::new();
        // A client port and a cluster-bus port per node, all distinct.
        let ports = free_ports::<{ MASTERS * 4 }>()?;
        for pair in ports.chunks(2) {
            let (port, bus) = (pair[0], pair[1]);
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir_all(&node_dir)?;
            let mut args = super::server_args(port, &node_dir);
            args.extend(
                [
                    "--cluster-port",
                    &bus.to_string(),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    &NODE_TIMEOUT.as_millis().to_string(),
                ]
                .map(str::to_owned),
            );
            nodes.push(Process::spawn(program.clone(), port, args)?);
        }
        for node in &nodes {
            let port = node.port;
            wait_until(
                Duration::from_secs(10),
                "a cluster node answers PING",
                || async move { command(port, &["PING"]).await.is_ok() },
            )
            .await?;
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let output = tokio::process::Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("redis-cli does not run: {e}")))?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&output.stdout)
            )));
        }
        let cluster = Self { nodes, _dir: dir };
        cluster.wait_healthy().await?;
        Ok(cluster)
    }

    /// Waits until every running node says `cluster_state:ok`, three live masters serve slots,
    /// at least two live replicas follow them (after a crash the killed node's shard has none)
    /// and every live replica is in sync (`master_link_status:up`: a manual failover waits for
    /// its replica to catch up, and times out if it never does).
    pub async fn wait_healthy(&self) -> io::Result<()> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let Some(problem) = self.unhealthy().await else {
                return Ok(());
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the cluster is not healthy after {READY_TIMEOUT:?}: {problem}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What keeps the cluster from being healthy (see [`Self::wait_healthy`]), if anything.
    async fn unhealthy(&self) -> Option<String> {
        for port in self.ports() {
            let info = text(command(port, &["CLUSTER", "INFO"]).await.ok());
            if !info.contains("cluster_state:ok") {
                return Some(format!("node {port} does not say cluster_state:ok"));
            }
        }
        let nodes = self.nodes().await;
        let masters = nodes
            .iter()
            .filter(|n| n.master && !n.failed && !n.slots.is_empty())
            .count();
        let replicas: Vec<&ClusterNode> = nodes.iter().filter(|n| !n.master && !n.failed).collect();
        if masters != MASTERS || replicas.len() < MASTERS - 1 {
            return Some(format!(
                "{masters} live masters serve slots, {} live replicas: {nodes:?}",
                replicas.len()
            ));
        }
        for replica in replicas {
            // A replica left behind by a crashed master it no longer reaches is not waited for.
            let master_dead = nodes
                .iter()
                .any(|m| m.failed && replica.master_id.as_deref() == Some(m.id.as_str()));
            let info = text(command(replica.port, &["INFO", "replication"]).await.ok());
            if !master_dead && !info.contains("master_link_status:up") {
                return Some(format!("replica {} is not in sync", replica.port));
            }
        }
        None
    }

    /// The client ports of the running nodes.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.port)
            .collect()
    }

    /// The process IDs of the running nodes (for CPU accounting in benchmarks).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(Process::pid).collect()
    }

    /// `redis://127.0.0.1:PORT/` of every running node: seeds for
    /// [`ClusterPubSubSettings`](crate::cluster::ClusterPubSubSettings).
    pub fn seeds(&self) -> Vec<String> {
        self.ports()
            .into_iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect()
    }

    /// The `REDIS_URL` naming every running node: `redis+cluster://127.0.0.1:P1?addr=…`.
    pub fn url(&self) -> String {
        let ports = self.ports();
        let mut url = String::from(crate::cluster::SCHEME);
        for (i, port) in ports.iter().enumerate() {
            url.push_str(match i {
                0 => "",
                1 => "?addr=",
                _ => "&addr=",
            });
            url.push_str(&format!("127.0.0.1:{port}"));
        }
        url
    }

    /// `CLUSTER NODES` as the first running node that answers sees it (empty if none does).
    pub async fn nodes(&self) -> Vec<ClusterNode> {
        for port in self.ports() {
            let listing = text(command(port, &["CLUSTER", "NODES"]).await.ok());
            if !listing.is_empty() {
                return listing.lines().filter_map(ClusterNode::parse).collect();
            }
        }
        Vec::new()
    }

    /// The live master that serves `slot` (none while a failed owner is not replaced yet).
    pub async fn owner(&self, slot: u16) -> Option<ClusterNode> {
        self.nodes()
            .await
            .into_iter()
            .find(|n| n.master && !n.failed && n.owns(slot))
    }

    /// The live replica of `master`.
    pub async fn replica_of(&self, master: &ClusterNode) -> Option<ClusterNode> {
        self.nodes()
            .await
            .into_iter()
            .find(|n| !n.master && !n.failed && n.master_id.as_deref() == Some(master.id.as_str()))
    }

    /// A manual failover of `slot`'s owner: `CLUSTER FAILOVER` on its replica, then waits until
    /// the replica serves the slot. Returns (old owner, new owner).
    pub async fn failover(&self, slot: u16) -> io::Result<(ClusterNode, ClusterNode)> {
        let owner = self
            .owner(slot)
            .await
            .ok_or_else(|| io::Error::other(format!("no live master serves slot {slot}")))?;
        let replica = self
            .replica_of(&owner)
            .await
            .ok_or_else(|| io::Error::other(format!("master {} has no replica", owner.port)))?;
        command(replica.port, &["CLUSTER", "FAILOVER"]).await?;
        self.wait_owner_changed(slot, &owner).await?;
        Ok((owner, replica))
    }

    /// Waits until a live master other than `old` serves `slot` (after a failover or a kill).
    pub async fn wait_owner_changed(&self, slot: u16, old: &ClusterNode) -> io::Result<()> {
        wait_until(READY_TIMEOUT, "another master serves the slot", || async {
            self.owner(slot)
                .await
                .is_some_and(|owner| owner.id != old.id)
        })
        .await
    }

    /// After a manual failover, makes the cluster ready for the next one: healthy, the demoted
    /// master a synced replica (`master_link_status:up`), and twice [`NODE_TIMEOUT`] passed,
    /// because masters only vote again for a failover of the same shard after that long.
    pub async fn settle(&self, demoted: &ClusterNode) -> io::Result<()> {
        self.wait_healthy().await?;
        let port = demoted.port;
        wait_until(
            READY_TIMEOUT,
            "the demoted master is a synced replica",
            || async move {
                text(command(port, &["INFO", "replication"]).await.ok())
                    .contains("master_link_status:up")
            },
        )
        .await?;
        tokio::time::sleep(NODE_TIMEOUT * 2).await;
        Ok(())
    }

    /// Moves `slot` and its keys to master `to`, as `redis-cli --cluster reshard` does
    /// (`CLUSTER SETSLOT … IMPORTING/MIGRATING`, `MIGRATE` of its keys, then `… NODE` on every
    /// master, new owner first, and a new config epoch for it).
    pub async fn migrate(&self, slot: u16, to: &ClusterNode) -> io::Result<()> {
        let from = self
            .owner(slot)
            .await
            .ok_or_else(|| io::Error::other(format!("no live master serves slot {slot}")))?;
        let slot_text = slot.to_string();
        command(
            to.port,
            &["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &from.id],
        )
        .await?;
        command(
            from.port,
            &["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &to.id],
        )
        .await?;
        // The slot's keys move as `redis-cli --cluster reshard` moves them: MIGRATE in batches
        // until the old owner has none left.
        let to_port = to.port.to_string();
        loop {
            let keys: Vec<String> = redis::from_redis_value(
                command(from.port, &["CLUSTER", "GETKEYSINSLOT", &slot_text, "100"]).await?,
            )
            .map_err(io::Error::other)?;
            if keys.is_empty() {
                break;
            }
            let mut args = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
            args.extend(keys.iter().map(String::as_str));
            command(from.port, &args).await?;
        }
        let mut masters: Vec<ClusterNode> = self
            .nodes()
            .await
            .into_iter()
            .filter(|n| n.master && !n.failed)
            .collect();
        masters.sort_by_key(|n| (n.id != to.id, n.id != from.id));
        for node in &masters {
            // A node that already learnt the move by gossip may refuse; the owner check below
            // is what counts.
            let _ = command(
                node.port,
                &["CLUSTER", "SETSLOT", &slot_text, "NODE", &to.id],
            )
            .await;
        }
        // A new config epoch for the new owner, so the move wins over any stale view.
        let _ = command(to.port, &["CLUSTER", "BUMPEPOCH"]).await;
        wait_until(READY_TIMEOUT, "the slot moved", || async {
            self.owner(slot)
                .await
                .is_some_and(|owner| owner.id == to.id)
        })
        .await
    }

    /// `kill -9` of the node on `port` (it stays down; its replica, if it was a master, is
    /// promoted after [`NODE_TIMEOUT`] plus an election).
    pub fn kill(&mut self, port: u16) -> io::Result<()> {
        self.process(port)?.kill();
        Ok(())
    }

    /// SIGSTOP of the node on `port`: its sockets stay open, nothing answers (a hung node or a
    /// silent partition). Undo with [`Self::thaw`].
    pub async fn freeze(&mut self, port: u16) -> io::Result<()> {
        self.process(port)?.signal("-STOP").await
    }

    /// SIGCONT of a frozen node.
    pub async fn thaw(&mut self, port: u16) -> io::Result<()> {
        self.process(port)?.signal("-CONT").await
    }

    fn process(&mut self, port: u16) -> io::Result<&mut Process> {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .ok_or_else(|| io::Error::other(format!("no cluster node on port {port}")))
    }
}

#[cfg(test)]
mod tests {
    use super::ClusterNode;

    #[test]
    fn cluster_nodes_lines_parse_as_redis_writes_them() {
        let master = ClusterNode::parse(
            "07c3 127.0.0.1:30004@40004 myself,master - 0 0 1 connected 0-5460 5470 [5461->-e7d1]",
        )
        .unwrap();
        assert_eq!(master.port, 30004);
        assert!(master.master && !master.failed);
        assert_eq!(master.master_id, None);
        // The migrating entry is not a slot this node serves.
        assert_eq!(master.slots, vec![0..=5460, 5470..=5470]);
        assert!(master.owns(5470) && !master.owns(5461));

        let replica = ClusterNode::parse(
            "e7d1 127.0.0.1:30005@40005 slave,fail? 07c3 1700000000000 0 2 disconnected",
        )
        .unwrap();
        assert!(!replica.master && replica.failed);
        assert_eq!(replica.master_id.as_deref(), Some("07c3"));
        assert!(replica.slots.is_empty());

        assert_eq!(ClusterNode::parse("garbage"), None);
    }
}
