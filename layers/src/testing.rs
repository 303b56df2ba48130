//! Test support: real `redis-server` processes owned by a test (feature `test-support`).
//!
//! Tests never share a Redis and never touch port 6379: each [`RedisServer`] runs on a free
//! port, without persistence, in its own temporary directory, and is killed when dropped. It
//! can be killed and restarted on the same port to simulate an outage.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use room_chat_layers::testing::RedisServer;
//! let mut redis = RedisServer::start().await?;
//! let url = redis.url(); // "redis://127.0.0.1:PORT/"
//! redis.freeze().await?; // like a hang: SIGSTOP, connections stay open
//! redis.thaw().await?;
//! redis.kill().await;     // like a crash: SIGKILL
//! redis.restart().await?; // same port, empty data
//! # Ok(()) }
//! ```
//!
//! Topologies for failover tests and benchmarks: [`cluster::RedisCluster`] (3 masters + 3
//! replicas) and [`sentinel::SentinelGroup`] (1 master + 1 replica + 3 sentinels). Every
//! fixture reports a missing tool or a topology that never gets ready as an `io::Error`, so a
//! test fails instead of skipping.

pub mod cluster;
mod process;
pub mod sentinel;

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The python of a virtualenv at `dir` holding exactly `requirements` (pinned pip requirement
/// specifiers, such as `fast-channels[redis]==1.1.0`): built on first use with
/// `python3 -m venv` and `pip install`, reused while the stamp it keeps lists the same
/// requirements, rebuilt otherwise. An error (never a skip) if `python3`, `venv` or pip is
/// missing or the install fails. Builds are serialised within the process: the tests of one
/// binary run in parallel and may share a venv.
///
/// `dir` is the caller's choice, typically under `$CARGO_TARGET_TMPDIR`, so the venv lives in
/// the target directory and the first run pays for it.
pub fn python_venv(dir: &Path, requirements: &[&str]) -> io::Result<PathBuf> {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let python = dir.join("bin").join("python");
    let stamp = dir.join("requirements.installed");
    let wanted = requirements.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    let run = |command: &mut std::process::Command, what: &str| -> io::Result<()> {
        let status = command
            .status()
            .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("{what} failed: {status}")))
        }
    };
    let _ = std::fs::remove_dir_all(dir);
    run(
        std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(dir),
        "python3 -m venv (install python3 and python3-venv)",
    )?;
    run(
        std::process::Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(requirements),
        &format!("pip install {}", requirements.join(" ")),
    )?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

/// The requirement specifiers of a pip requirements file: its lines without comments and
/// blanks (for [`python_venv`]).
pub fn requirements_in(file: &Path) -> io::Result<Vec<String>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
    Ok(text
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

/// `kill -SIGNAL pid` (`-STOP`, `-CONT`): what freezing and thawing a server process take.
pub(crate) async fn send_signal(pid: u32, signal: &str) -> io::Result<()> {
    let status = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .await?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "kill {signal} {pid} failed: {status}"
        )))
    }
}

/// How long to wait for a fresh `redis-server` to answer `PING`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` process on a free local port, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    /// The server binary (`redis-server`, or another server of the same protocol such as
    /// `valkey-server`).
    program: PathBuf,
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` (from `PATH`, or `$REDIS_SERVER`) on a free port and waits until
    /// it answers `PING`. Retries on another port if the chosen one was taken meanwhile.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(&redis_server_program()).await
    }

    /// Like [`start`](Self::start), with another server binary that speaks the Redis
    /// protocol and takes the same flags (`valkey-server`).
    pub async fn start_with(program: &Path) -> io::Result<Self> {
        let mut last_error = None;
        for _ in 0..5 {
            let mut server = Self {
                program: program.to_owned(),
                port: free_port()?,
                child: None,
                dir: tempfile::tempdir()?,
            };
            match server.spawn().await {
                Ok(()) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error
            .unwrap_or_else(|| io::Error::other(format!("{} did not start", program.display()))))
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the process is running (not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server abruptly (SIGKILL, like a crash) and waits for the process to exit.
    /// Clients see their connections drop.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Suspends the process (SIGSTOP): connections stay open but nothing answers, like a hung
    /// server or a silent network partition. Undo with [`RedisServer::thaw`].
    pub async fn freeze(&self) -> io::Result<()> {
        self.signal("-STOP").await
    }

    /// Resumes a frozen process (SIGCONT).
    pub async fn thaw(&self) -> io::Result<()> {
        self.signal("-CONT").await
    }

    async fn signal(&self, signal: &str) -> io::Result<()> {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .ok_or_else(|| io::Error::other("redis-server is not running"))?;
        send_signal(pid, signal).await
    }

    /// Starts the server again on the same port (empty: there is no persistence). Waits for
    /// `PING`. Kills the current process first if it is still running.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.kill().await;
        // The port may linger briefly after a kill; retry for a few seconds.
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            match self.spawn().await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "redis-server restart failed, retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one command (inline protocol) and returns the raw reply, for assertions such as
    /// `KEYS *` or `PUBSUB CHANNELS` without a client library. Reads until the reply stops
    /// growing for a moment; meant for small replies.
    pub async fn raw_command(&self, command: &str) -> io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .await?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Err(_) if !reply.is_empty() => break,
                Ok(Ok(0)) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no reply")),
                Ok(Ok(n)) => reply.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => return Err(e),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no reply"));
                }
                Err(_) => {}
            }
        }
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    async fn spawn(&mut self) -> io::Result<()> {
        let mut child = Command::new(&self.program)
            .args(server_args(self.port, self.dir.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "redis-server exited early: {status}"
                )));
            }
            if ping(self.port).await {
                self.child = Some(child);
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.start_kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "redis-server did not answer PING",
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill_now();
    }
}

async fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut buf)).await,
        Ok(Ok(_)) if &buf == b"+PONG\r\n"
    )
}

/// A port that was free a moment ago (bind to port 0, read it, release it).
fn free_port() -> io::Result<u16> {
    Ok(free_ports::<1>()?[0])
}

/// `N` distinct free ports. The listeners are held until all are chosen: a port asked for and
/// released at once may be handed out again by the next request, and a topology whose two
/// processes got the same port loses one of them at start-up.
fn free_ports<const N: usize>() -> io::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// The `redis-server` binary: `$REDIS_SERVER`, or `redis-server` from `PATH`.
fn redis_server_program() -> PathBuf {
    std::env::var_os("REDIS_SERVER").map_or_else(|| PathBuf::from("redis-server"), PathBuf::from)
}

/// How long [`command`] waits to connect, and then for the reply.
const COMMAND_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const COMMAND_REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// The arguments every fixture's `redis-server` starts with: `port` on the loopback only, no
/// persistence (nothing written but into `dir`), so a test's servers are private and leave
/// nothing behind. Topologies add their own (`--cluster-enabled`, `--replicaof`).
pub fn server_args(port: u16, dir: &Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.display().to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Sends one command to the server on `127.0.0.1:port` on a fresh connection (500 ms to
/// connect, 1 s for the reply): for topology checks and admin commands (`CLUSTER NODES`,
/// `SENTINEL …`, `PUBSUB SHARDCHANNELS`) that must not share a connection with the code under
/// test. Any failure, a Redis error reply included, is an `io::Error`.
pub async fn command(port: u16, args: &[&str]) -> io::Result<redis::Value> {
    let (name, rest) = args
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an empty command"))?;
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(io::Error::other)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_CONNECT_TIMEOUT))
        .set_response_timeout(Some(COMMAND_REPLY_TIMEOUT));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(io::Error::other)?;
    let mut cmd = redis::cmd(name);
    for arg in rest {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut conn).await.map_err(io::Error::other)
}

/// A reply as text (`INFO`, `CLUSTER NODES`), empty if it is none.
fn text(value: Option<redis::Value>) -> String {
    value
        .and_then(|v| redis::from_redis_value::<String>(v).ok())
        .unwrap_or_default()
}

/// Polls `check` every 100 ms until it holds; a `TimedOut` error naming `what` after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F) -> io::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        if tokio::time::Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after {limit:?} waiting until {what}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
