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
use room_chat_layers::LayerRegistry;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = Config::parse();
    let layers = LayerRegistry::standard_with(config.redis_url.as_deref(), &config.layer_limits())
        .context("setting up the channel layers")?;
    let app = config.room_chat_settings();
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
