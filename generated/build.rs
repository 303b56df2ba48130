//! Generates the protocol, the HTML docs and the typed client from `../asyncapi.yaml` on every
//! build where the document (or the generator) changed, so editing the spec and running
//! `cargo build` is all it takes.
//!
//! A document the generator refuses fails the build with the generator's message, which names
//! the JSON pointer of the problem.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let spec_path = manifest_dir.join("../asyncapi.yaml");
    println!("cargo::rerun-if-changed={}", spec_path.display());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let spec = match std::fs::read_to_string(&spec_path) {
        Ok(spec) => spec,
        Err(e) => {
            println!("cargo::error=cannot read {}: {e}", spec_path.display());
            return ExitCode::FAILURE;
        }
    };
    use asyncapi_codegen::Target;
    let mut files = Vec::new();
    for target in [Target::Rust, Target::Html, Target::Client] {
        match asyncapi_codegen::generate(&spec, target) {
            Ok(generated) => files.extend(generated),
            Err(e) => {
                println!("cargo::error=asyncapi.yaml: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    for file in files {
        let path = out_dir.join(&file.path);
        if let Err(e) = std::fs::write(&path, file.contents) {
            println!("cargo::error=cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
