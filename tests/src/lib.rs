//! Test support for the black-box suites in `tests/tests/`: the service started on
//! `127.0.0.1:0` and WebSocket clients speaking the room chat protocol.
#![allow(clippy::unwrap_used, clippy::expect_used)]
