//! `asyncapi-codegen`: writes (or checks) the generated files for an AsyncAPI document.
//!
//! ```text
//! asyncapi-codegen --spec asyncapi.yaml --target rust --out generated/snapshot
//! asyncapi-codegen --spec asyncapi.yaml --target rust --out generated/snapshot --check
//! ```
//! `--check` writes nothing and exits 1 when a file in `--out` differs from what would be
//! generated, so CI can refuse a stale checked-in copy.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use asyncapi_codegen::{generate, Target};
use clap::Parser;

/// Generates code from an AsyncAPI 3.0 document.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The AsyncAPI document (YAML or JSON).
    #[arg(long)]
    spec: PathBuf,
    /// What to generate.
    #[arg(long, default_value = "rust")]
    target: Target,
    /// Where the files go.
    #[arg(long)]
    out: PathBuf,
    /// Only compare with the files in `--out`; exit 1 if any differs.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<bool> {
    let spec = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("reading {}", args.spec.display()))?;
    let files = generate(&spec, args.target)
        .with_context(|| format!("generating from {}", args.spec.display()))?;
    let mut fresh = true;
    for file in files {
        let path = args.out.join(&file.path);
        if args.check {
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current != file.contents {
                eprintln!("stale: {} (run `make generate`)", path.display());
                fresh = false;
            }
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&path, &file.contents)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(fresh)
}
