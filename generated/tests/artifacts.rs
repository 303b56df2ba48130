//! What the crate serves is what the generator makes of `asyncapi.yaml` as it is on disk now:
//! the spec text itself, the docs page, the client, and the Rust compiled into the crate (the
//! build script's `OUT_DIR` copy) as well as its reviewable, checked-in copy. A build that
//! missed a change to the document or to the generator fails here.

use std::path::Path;

use asyncapi_codegen::{generate, GeneratedFile, Target};

fn spec_on_disk() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../asyncapi.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fresh(target: Target) -> Vec<GeneratedFile> {
    generate(&spec_on_disk(), target).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_served_spec_is_the_file() {
    assert_eq!(room_chat_protocol::SPEC_YAML, spec_on_disk());
}

#[test]
fn docs_and_client_are_a_fresh_generation_of_the_file() {
    let html = fresh(Target::Html);
    assert_eq!(html[0].contents, room_chat_protocol::DOCS_HTML);
    let client = fresh(Target::Client);
    assert_eq!(client[0].path, "client.js");
    assert_eq!(client[0].contents, room_chat_protocol::CLIENT_JS);
    assert_eq!(client[1].path, "client.d.ts");
    assert_eq!(client[1].contents, room_chat_protocol::CLIENT_DTS);
}

#[test]
fn the_compiled_protocol_and_its_checked_in_copy_are_a_fresh_generation_of_the_file() {
    let rust = fresh(Target::Rust);
    let compiled = include_str!(concat!(env!("OUT_DIR"), "/protocol.rs"));
    assert_eq!(
        rust[0].contents, compiled,
        "the build script's output is stale"
    );
    let copy =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../codegen/tests/output/src/asyncapi.rs");
    let checked_in =
        std::fs::read_to_string(&copy).unwrap_or_else(|e| panic!("{}: {e}", copy.display()));
    assert!(
        rust[0].contents == checked_in,
        "{} differs from the generator's output: run `make generate`",
        copy.display()
    );
}

#[test]
fn the_docs_carry_the_server_slot() {
    assert_eq!(
        room_chat_protocol::DOCS_SERVER_SLOT,
        asyncapi_codegen::HTML_SERVER_SLOT
    );
    assert_eq!(
        room_chat_protocol::DOCS_HTML
            .matches(room_chat_protocol::DOCS_SERVER_SLOT)
            .count(),
        1
    );
}
