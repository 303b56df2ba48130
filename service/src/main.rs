//! The room chat server.
//!
//! ```text
//! make run                                  # in-memory layers, http://127.0.0.1:8000
//! REDIS_URL=redis://127.0.0.1:6379 make run # Redis-backed layers, several processes can share
//! cargo run -p room-chat -- --help          # every flag and its environment variable
//! ```

use anyhow::Context as _;
use clap::Parser;
use room_chat::room_chat::RoomChatConsumer;
use room_chat::{Config, RunningServer};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Colours only for a person at a terminal: a log file or a collector should not get ANSI
    // escape codes in its lines.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_ansi(ansi)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = Config::parse();
    check_open_files(config.edge.max_connections + config.edge.max_pending_connections);
    let layers = config
        .layer_registry()
        .context("setting up the channel layers")?;
    let app = config
        .room_chat_settings()
        .context("setting up presence and history")?;
    let server = RunningServer::<RoomChatConsumer>::serve(config.clone(), layers, app)
        .await
        .context("starting the server")?;
    tracing::info!(
        "room chat listening on http://{0} (WebSocket ws://{0}/ws/room/<room>, docs /asyncapi)",
        server.addr
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    let clean = server.shutdown().await;
    tracing::info!(clean, "stopped");
    Ok(())
}

/// File descriptors the process needs beside its WebSocket connections: the listener, Redis
/// connections, logs, and handshakes in progress.
const SPARE_FILES: u64 = 256;

/// Raises the open-file limit to what the connection caps need (WebSockets plus connections
/// not yet upgraded), as far as the hard limit allows,
/// and warns when it stays below: past the limit `accept` fails, and the service (its health
/// endpoint included) becomes unreachable long before the connection cap refuses anyone.
fn check_open_files(connections: usize) {
    use rlimit::Resource;
    let needed = connections as u64 + SPARE_FILES;
    let limit = match rlimit::getrlimit(Resource::NOFILE) {
        Ok((soft, _)) if soft >= needed => return,
        Ok((soft, hard)) => match rlimit::setrlimit(Resource::NOFILE, needed.min(hard), hard) {
            Ok(()) => needed.min(hard),
            Err(_) => soft,
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit");
            return;
        }
    };
    if limit < needed {
        tracing::warn!(
            limit,
            needed,
            connections,
            "the open-file limit is below what --max-connections needs (with --max-pending-connections); raise it (ulimit -n) or lower the caps"
        );
    } else {
        tracing::info!(limit, "raised the open-file limit for --max-connections");
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
