//! One server process of a topology fixture (a cluster node, a Sentinel data server or a
//! sentinel): started from its argument list, restartable with the same arguments, killed on
//! drop.

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A `redis-server` process started with fixed arguments on a known port.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) port: u16,
    program: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Process {
    /// Starts `program` with `args` (which name `port` themselves).
    pub(crate) fn spawn(program: PathBuf, port: u16, args: Vec<String>) -> io::Result<Self> {
        let mut process = Self {
            port,
            program,
            args,
            child: None,
        };
        process.start()?;
        Ok(process)
    }

    /// Starts the process again with the same arguments (a no-op while it runs).
    pub(crate) fn start(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("{} does not run: {e}", self.program.display()),
                )
            })?;
        self.child = Some(child);
        Ok(())
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `kill -9`, then reaps the process (a killed process exits at once, so the wait is short
    /// even on an async thread).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`) with `kill(1)`.
    pub(crate) async fn signal(&self, signal: &str) -> io::Result<()> {
        let pid = self.pid().ok_or_else(|| {
            io::Error::other(format!("server on port {} is not running", self.port))
        })?;
        super::send_signal(pid, signal).await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A frozen process ignores nothing but SIGKILL, which is what `kill` sends.
        self.kill();
    }
}
