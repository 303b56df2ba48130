//! The generated Rust and client for `asyncapi.yaml` and for every fixture document, and the HTML
//! docs of `asyncapi.yaml`, reviewed as insta snapshots: a change to the generator, its templates
//! or the spec shows up as a diff of the generated text in review. (That each Rust snapshot also
//! compiles is proved by the `asyncapi-codegen-fixtures` crate; that each client type-checks
//! under `tsc --strict`, by `make check`.)
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
    rust_for(&fixture_path(name))
}

fn fixture_path(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.yaml"))
}

fn spec_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../asyncapi.yaml")
}

/// Every file of `target`, one after the other under a `==> path <==` line.
fn files_for(path: &Path, target: Target) -> String {
    let spec = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let files = generate(&spec, target).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    files
        .iter()
        .map(|f| format!("==> {} <==\n{}", f.path, f.contents))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn room_chat_protocol() {
    let rust = rust_for(&spec_path());
    insta::assert_snapshot!("room_chat", rust);
}

#[test]
fn room_chat_docs() {
    insta::assert_snapshot!("room_chat_docs", files_for(&spec_path(), Target::Html));
}

#[test]
fn room_chat_client() {
    insta::assert_snapshot!("room_chat_client", files_for(&spec_path(), Target::Client));
}

/// The client target is generic: every fixture's client is reviewed too.
#[test]
fn fixture_clients() {
    for name in ["nested_types", "two_channels", "two_parameters", "unions"] {
        insta::assert_snapshot!(
            format!("{name}_client"),
            files_for(&fixture_path(name), Target::Client)
        );
    }
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
