//! The generator's output, reviewed as text: a change to the generator or to a document shows
//! up in review as a diff of what it generates.
//!
//! - The Rust of `asyncapi.yaml` and of every fixture in `tests/fixtures/` is checked in as
//!   `tests/output/src/<name>.rs`, where the `asyncapi-codegen-output` crate compiles it as it
//!   is. Fixtures are found by listing the directory, so a new fixture is one new YAML file.
//! - The HTML docs of `asyncapi.yaml` and the clients of every document are insta snapshots in
//!   `tests/snapshots/` (that each client type-checks under `tsc --strict` is `make check`'s).
//!
//! Refresh after an intended change: `make generate` (or `INSTA_UPDATE=always cargo test -p
//! asyncapi-codegen --test snapshots`).

use std::path::{Path, PathBuf};

use asyncapi_codegen::{generate, Target};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `(name, document)` for `asyncapi.yaml` (as `asyncapi`) and every fixture, by name.
fn documents() -> Vec<(String, PathBuf)> {
    let dir = manifest_dir().join("tests/fixtures");
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_stem()?.to_str()?.to_owned();
            (path.extension()? == "yaml").then_some((name, path))
        })
        .collect();
    out.sort();
    out.insert(
        0,
        ("asyncapi".into(), manifest_dir().join("../asyncapi.yaml")),
    );
    out
}

fn files_of(path: &Path, target: Target) -> Vec<asyncapi_codegen::GeneratedFile> {
    let spec = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    generate(&spec, target).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file of `target`, one after the other under a `==> path <==` line.
fn joined(path: &Path, target: Target) -> String {
    files_of(path, target)
        .iter()
        .map(|f| format!("==> {} <==\n{}", f.path, f.contents))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether the run asks for snapshots to be rewritten rather than compared.
fn updating() -> bool {
    matches!(std::env::var("INSTA_UPDATE").as_deref(), Ok("always" | "1"))
        || std::env::var_os("UPDATE_SNAPSHOTS").is_some()
}

#[test]
fn checked_in_rust_is_what_the_generator_writes() {
    let output = manifest_dir().join("tests/output/src");
    let mut stale = Vec::new();
    for (name, path) in documents() {
        let files = files_of(&path, Target::Rust);
        assert_eq!(files.len(), 1, "the Rust target writes one file");
        let fresh = &files[0].contents;
        let checked_in = output.join(format!("{name}.rs"));
        let current = std::fs::read_to_string(&checked_in).unwrap_or_default();
        if current == *fresh {
            continue;
        }
        if updating() {
            std::fs::write(&checked_in, fresh)
                .unwrap_or_else(|e| panic!("{}: {e}", checked_in.display()));
        } else {
            stale.push(checked_in.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "differs from the generator's output (review, then run `make generate`): {stale:?}"
    );
}

#[test]
fn every_checked_in_output_has_its_document() {
    let names: Vec<String> = documents().into_iter().map(|(name, _)| name).collect();
    let output = manifest_dir().join("tests/output/src");
    for entry in std::fs::read_dir(&output).unwrap_or_else(|e| panic!("{}: {e}", output.display()))
    {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        assert!(
            stem == "lib" || names.iter().any(|n| n == stem),
            "{} has no document; delete it with its fixture",
            path.display()
        );
    }
}

#[test]
fn room_chat_docs() {
    let spec = manifest_dir().join("../asyncapi.yaml");
    insta::assert_snapshot!("room_chat_docs", joined(&spec, Target::Html));
}

#[test]
fn clients() {
    for (name, path) in documents() {
        let snapshot = if name == "asyncapi" {
            "room_chat".to_owned()
        } else {
            name
        };
        insta::assert_snapshot!(format!("{snapshot}_client"), joined(&path, Target::Client));
    }
}
