//! The generated Rust for `asyncapi.yaml` and for every fixture document, reviewed as insta
//! snapshots: a change to the generator, its templates or the spec shows up as a diff of the
//! generated text in review. (That each snapshot also compiles is proved by the
//! `asyncapi-codegen-fixtures` crate.)
//!
//! Update after an intended change: `INSTA_UPDATE=always cargo test -p asyncapi-codegen --test
//! snapshots` (or `cargo insta review`).

use std::path::Path;

use asyncapi_codegen::{generate, Target};

fn rust_for(path: &Path) -> String {
    let spec = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let files = generate(&spec, Target::Rust).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(files.len(), 1, "the Rust target writes one file");
    assert_eq!(files[0].path, "protocol.rs");
    files
        .into_iter()
        .next()
        .map(|f| f.contents)
        .unwrap_or_default()
}

fn fixture(name: &str) -> String {
    rust_for(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.yaml")))
}

#[test]
fn room_chat_protocol() {
    let rust = rust_for(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../asyncapi.yaml"));
    insta::assert_snapshot!("room_chat", rust);
}

#[test]
fn two_channels() {
    insta::assert_snapshot!("two_channels", fixture("two_channels"));
}

#[test]
fn nested_types() {
    insta::assert_snapshot!("nested_types", fixture("nested_types"));
}

#[test]
fn unions() {
    insta::assert_snapshot!("unions", fixture("unions"));
}

#[test]
fn two_parameters() {
    insta::assert_snapshot!("two_parameters", fixture("two_parameters"));
}

/// Every fixture has a snapshot test above, so a new fixture cannot be added unreviewed.
#[test]
fn every_fixture_has_a_snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "yaml").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["nested_types", "two_channels", "two_parameters", "unions"],
        "add a snapshot test (and a module in codegen/fixtures-compile) for each fixture"
    );
}
