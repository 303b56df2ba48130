//! Generates code from AsyncAPI 3.0 documents: a Rust protocol crate (payload types, direction
//! enums, a handler trait and a dispatcher), an HTML documentation page, and a typed client
//! module for browsers and Node (JavaScript with TypeScript declarations).
//!
//! The generator is a pure function: document text in, files out, the same bytes for the same
//! input, no I/O. The build script of the protocol crate and the `asyncapi-codegen` CLI are thin
//! front ends over [`generate`]. Its stages are visible in the modules:
//! [`model`] (parse) -> `lower` (resolve `$ref`s, name things, check rules) -> [`ir`] -> targets.
//!
//! ```
//! let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../asyncapi.yaml")).unwrap();
//! let files = asyncapi_codegen::generate(&spec, asyncapi_codegen::Target::Rust).unwrap();
//! assert!(files[0].contents.contains("pub trait Handler"));
//! ```

mod client;
pub mod error;
mod html;
pub mod ir;
mod lower;
pub mod model;
mod naming;
mod rust;

pub use error::GenerateError;
pub use html::SERVER_SLOT as HTML_SERVER_SLOT;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One Rust source file (`protocol.rs`) to `include!` in (or use as a module of) a crate
    /// that depends on serde, serde_json, schemars and `protocol-runtime`.
    Rust,
    /// One self-contained HTML documentation page (`docs.html`): no scripts, no external
    /// resources, Markdown rendered with raw HTML escaped.
    Html,
    /// A typed WebSocket client for browsers and Node: an ES module (`client.js`) and its
    /// TypeScript declarations (`client.d.ts`).
    Client,
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rust" => Ok(Self::Rust),
            "html" => Ok(Self::Html),
            "client" => Ok(Self::Client),
            other => Err(format!(
                "unknown target `{other}`; expected `rust`, `html` or `client`"
            )),
        }
    }
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Path relative to the output directory.
    pub path: String,
    /// The file's text.
    pub contents: String,
}

/// Parses a document into the typed model.
pub fn parse(spec: &str) -> Result<model::Document, GenerateError> {
    serde_yaml::from_str(spec).map_err(|e| GenerateError::Parse(e.to_string()))
}

/// Parses and lowers a document: what every target renders.
pub fn analyse(spec: &str) -> Result<ir::Api, GenerateError> {
    lower::lower(&parse(spec)?)
}

/// Generates the files of `target` for the document `spec`.
pub fn generate(spec: &str, target: Target) -> Result<Vec<GeneratedFile>, GenerateError> {
    let api = analyse(spec)?;
    match target {
        Target::Rust => Ok(vec![GeneratedFile {
            path: "protocol.rs".into(),
            contents: rust::render(&api)?,
        }]),
        Target::Html => Ok(vec![GeneratedFile {
            path: "docs.html".into(),
            contents: html::render(&api)?,
        }]),
        Target::Client => client::render(&api),
    }
}
