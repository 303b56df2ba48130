//! Runs the generator on every fixture document in `../tests/fixtures/` and writes
//! `<fixture>.rs` to `OUT_DIR`, for `src/lib.rs` to include. A fixture the generator refuses
//! fails the build with the generator's message.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let fixtures = manifest_dir.join("../tests/fixtures");
    println!("cargo::rerun-if-changed={}", fixtures.display());
    let entries = match std::fs::read_dir(&fixtures) {
        Ok(entries) => entries,
        Err(e) => {
            println!("cargo::error=cannot list {}: {e}", fixtures.display());
            return ExitCode::FAILURE;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        println!("cargo::rerun-if-changed={}", path.display());
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let spec = match std::fs::read_to_string(&path) {
            Ok(spec) => spec,
            Err(e) => {
                println!("cargo::error=cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let files = match asyncapi_codegen::generate(&spec, asyncapi_codegen::Target::Rust) {
            Ok(files) => files,
            Err(e) => {
                println!("cargo::error={}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        for file in files {
            let target = out_dir.join(format!("{stem}.rs"));
            if let Err(e) = std::fs::write(&target, file.contents) {
                println!("cargo::error=cannot write {}: {e}", target.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
