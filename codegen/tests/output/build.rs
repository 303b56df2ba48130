//! Declares one module per checked-in output file in `src/` (every `.rs` file but `lib.rs`),
//! so that a new fixture needs no edit here: `make generate` writes its output, and the next
//! build compiles it.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let src = manifest_dir.join("src");
    println!("cargo::rerun-if-changed={}", src.display());
    let entries = match std::fs::read_dir(&src) {
        Ok(entries) => entries,
        Err(e) => {
            println!("cargo::error=cannot list {}: {e}", src.display());
            return ExitCode::FAILURE;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter(|p| p.file_stem().is_some_and(|s| s != "lib"))
        .collect();
    paths.sort();
    let mut modules = String::new();
    for path in paths {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let _ = writeln!(
            modules,
            "#[doc = \"The generator's output for `{stem}`.\"]\n#[path = {:?}]\npub mod {stem};",
            path.display().to_string()
        );
    }
    let target = out_dir.join("modules.rs");
    if let Err(e) = std::fs::write(&target, modules) {
        println!("cargo::error=cannot write {}: {e}", target.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
