//! Load generator for the room chat service (and the reference server).
//!
//! ```text
//! # 10 rooms of 100 members, 2 senders each, 20,000 messages/s in total, for 10 s:
//! loadgen --url ws://127.0.0.1:8000 fanout --rooms 10 --members 100 --senders 2 --rate 20000 --duration 10
//! # saturation (each sender keeps 16 messages in flight):
//! loadgen --url ws://127.0.0.1:8000 fanout --members 100 --senders 4 --rate 0
//! # server CPU µs per delivery at 10,000 deliveries/s (see `sending` in the summary):
//! loadgen --url ws://127.0.0.1:8000 fanout --members 100 --senders 4 --rate 100 --server-pid $(pgrep -n room-chat)
//! # two service processes on one Redis: members of each room spread over both
//! loadgen --url ws://127.0.0.1:8000 --url ws://127.0.0.1:8001 fanout --members 100
//! # 10,000 idle connections, server memory per connection:
//! loadgen --url ws://127.0.0.1:8000 idle --connections 10000 --server-pid $(pgrep -n room-chat)
//! # 200 connect/join/leave per second for 5 s:
//! loadgen --url ws://127.0.0.1:8000 churn --rate 200 --duration 5
//! ```
//!
//! Prints one JSON summary on stdout; progress goes to stderr. It raises its open-file limit
//! at startup (to 65,536 as root, else to the hard limit); for more than ~28,000 connections
//! to one server port, spread source addresses with `--source-ips` (127.0.0.1 to 127.0.0.N).

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use room_chat_bench::client::{raise_open_files, Endpoints};
use room_chat_bench::{churn, fanout, idle};

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for the room chat WebSocket service"
)]
struct Args {
    /// Server base URL; repeat to spread clients over several processes.
    #[arg(long = "url", default_value = "ws://127.0.0.1:8000", global = true)]
    urls: Vec<String>,
    /// Spread client source addresses over 127.0.0.1..=127.0.0.N (more ephemeral ports).
    #[arg(long, default_value_t = 1, global = true)]
    source_ips: u8,
    /// No progress bar.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Rooms × members; some members send; every delivery is checked and timed.
    Fanout {
        /// Rooms.
        #[arg(long, default_value_t = 1)]
        rooms: usize,
        /// Members (connections) per room.
        #[arg(long, default_value_t = 100)]
        members: usize,
        /// Senders per room.
        #[arg(long, default_value_t = 1)]
        senders: usize,
        /// Messages per second across all senders; 0 = saturation (closed loop).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Messages in flight per sender at saturation.
        #[arg(long, default_value_t = 16)]
        window: usize,
        /// Measured seconds.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Warm-up seconds before measuring.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Server process(es) whose CPU time over the sending window is charged to its
        /// deliveries; repeat for several.
        #[arg(long = "server-pid")]
        server_pids: Vec<u32>,
        /// The Redis behind the servers, whose CPU is reported apart.
        #[arg(long)]
        redis_pid: Option<u32>,
    },
    /// Hold N quiet connections; report server RSS per connection.
    Idle {
        /// Connections.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Members per room (1: no join notices).
        #[arg(long, default_value_t = 1)]
        room_size: usize,
        /// Seconds to hold them before checking they are still served.
        #[arg(long, default_value_t = 2.0)]
        hold: f64,
        /// Server process(es) to read VmRSS from; repeat for several.
        #[arg(long = "server-pid")]
        server_pids: Vec<u32>,
    },
    /// Connect, join, leave at a steady rate; observers count the notices.
    Churn {
        /// Connections per second.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Seconds.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Rooms (one observer each).
        #[arg(long, default_value_t = 4)]
        rooms: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let limit = raise_open_files(65_536).context("raising the open-file limit")?;
    let endpoints = Endpoints {
        urls: args.urls.clone(),
        source_ips: args.source_ips,
    };
    let json = match args.scenario {
        Scenario::Fanout {
            rooms,
            members,
            senders,
            rate,
            window,
            duration,
            warmup,
            server_pids,
            redis_pid,
        } => {
            anyhow::ensure!(
                rooms * members + 64 < limit as usize,
                "{} connections need more than the open-file limit of {limit}",
                rooms * members
            );
            let options = fanout::FanoutOptions {
                endpoints,
                rooms,
                members,
                senders,
                rate,
                window,
                duration: Duration::from_secs_f64(duration),
                warmup: Duration::from_secs_f64(warmup),
                progress: !args.quiet,
                cpu_watch: fanout::CpuWatch {
                    server: server_pids,
                    redis: redis_pid.into_iter().collect(),
                },
                ..fanout::FanoutOptions::new(args.urls)
            };
            serde_json::to_string_pretty(&fanout::run(&options).await?)?
        }
        Scenario::Idle {
            connections,
            room_size,
            hold,
            server_pids,
        } => {
            let options = idle::IdleOptions {
                endpoints,
                room_size,
                hold: Duration::from_secs_f64(hold),
                server_pids,
                progress: !args.quiet,
                ..idle::IdleOptions::new(args.urls, connections)
            };
            serde_json::to_string_pretty(&idle::run(&options).await)?
        }
        Scenario::Churn {
            rate,
            duration,
            rooms,
        } => {
            let options = churn::ChurnOptions {
                endpoints,
                duration: Duration::from_secs_f64(duration),
                rooms,
                progress: !args.quiet,
                ..churn::ChurnOptions::new(args.urls, rate)
            };
            serde_json::to_string_pretty(&churn::run(&options).await?)?
        }
    };
    println!("{json}");
    Ok(())
}
