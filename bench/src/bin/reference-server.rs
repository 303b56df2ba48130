//! The reference broadcast server: the ceiling the service is compared against.
//!
//! ```text
//! cargo run --release -p room-chat-bench --bin reference-server -- --port 9000
//! cargo run --release -p room-chat-bench --bin loadgen -- --url ws://127.0.0.1:9000 fanout
//! ```
//!
//! See `room_chat_bench::reference` for what it does and does not do.

use std::net::{IpAddr, SocketAddr};

use clap::Parser;
use room_chat_bench::reference::{ReferenceServer, ReferenceSettings};

/// Minimal WebSocket broadcast server speaking enough of the room chat protocol for `loadgen`.
#[derive(Debug, Parser)]
#[command(name = "reference-server")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one; printed on stdout).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Frames queued per client before it is closed as a slow consumer.
    #[arg(long, default_value_t = 1024)]
    outbound_queue: usize,
    /// WebSocket read/write buffer per connection, bytes.
    #[arg(long, default_value_t = 4096)]
    buffer_bytes: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = room_chat_bench::client::raise_open_files(65_536);
    let settings = ReferenceSettings {
        outbound_queue: args.outbound_queue,
        buffer_bytes: args.buffer_bytes,
        ..ReferenceSettings::default()
    };
    let server = ReferenceServer::start(SocketAddr::new(args.host, args.port), settings).await?;
    println!("reference server listening on ws://{}", server.addr);
    tokio::signal::ctrl_c().await?;
    server.stop().await;
    Ok(())
}
