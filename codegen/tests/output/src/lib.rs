//! The generator's output for `asyncapi.yaml` (`asyncapi.rs`) and for every fixture document
//! of `codegen/tests/fixtures/` (`<fixture>.rs`), checked in and compiled as they are: each file
//! is a module of this crate. `codegen/tests/snapshots.rs` fails when a file differs from what
//! the generator makes of its document today (`make generate` refreshes them), and
//! `tests/exercise.rs` uses the fixtures' code as an application would.

include!(concat!(env!("OUT_DIR"), "/modules.rs"));
