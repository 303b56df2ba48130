//! The room chat service: the room chat app on the generated protocol, and the axum server
//! around it.
//!
//! Layering, top to bottom: [`server`] (HTTP, handshake checks, shutdown) → [`room_chat`] (the
//! app, one small file) → `room_chat_runtime` (the consumer runtime: one task per connection,
//! dispatch, broadcasts, backpressure; knows no rooms) → `room_chat_layers` (channel layers)
//! and `room_chat_protocol` (generated from `asyncapi.yaml`).

pub mod config;
pub mod docs;
pub mod metrics;
pub mod room_chat;
pub mod rooms;
pub mod server;
pub mod web;

pub use config::Config;
pub use server::{AppState, RunningServer};
