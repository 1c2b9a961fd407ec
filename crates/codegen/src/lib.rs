//! Turns hand-written OpenAPI 3.0 specs of token-refresh endpoints into typed Rust clients.
//!
//! Data flows one way: [`spec::load`] (YAML → `openapiv3`) → [`model::build`] (a small resolved
//! model, where all validation lives) → [`emit`] (tokens → `syn::File` → prettyplease → text).
//! Nothing here panics on a bad spec: every problem is a [`SpecError`] with the file and the
//! JSON pointer.

pub mod emit;
pub mod error;
pub mod extension;
pub mod model;
pub mod names;
pub mod pointer;
pub mod spec;
pub mod types;

pub use error::{SpecError, SpecErrors};
pub use model::Provider;

use std::path::{Path, PathBuf};

/// A file the generator writes, relative to the workspace root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    /// Where, relative to the workspace root.
    pub path: PathBuf,
    /// What.
    pub contents: String,
}

/// The folder of the specs, relative to the workspace root.
pub const SPECS_DIR: &str = "specs";

/// The folder of the generated client crates, relative to the workspace root.
pub const CLIENTS_DIR: &str = "crates/clients";

/// The `.yaml` files of a folder, sorted by name.
pub fn spec_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads and checks one spec; `display` is how errors name the file.
pub fn load_provider(path: &Path, display: &str) -> Result<Provider, SpecErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SpecError::new(display, "", format!("cannot read the file: {e}")))?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let spec = spec::parse(name, display, &text)?;
    model::build(&spec)
}

/// The client crate of one provider: its `Cargo.toml` and `src/lib.rs`.
pub fn render_client(provider: &Provider) -> Result<Vec<OutputFile>, SpecError> {
    let dir = Path::new(CLIENTS_DIR).join(&provider.name);
    let render = |f: fn(&Provider) -> Result<String, String>| {
        f(provider).map_err(|e| SpecError::new(&provider.file, "", e))
    };
    Ok(vec![
        OutputFile {
            path: dir.join("Cargo.toml"),
            contents: emit::cargo_toml(provider),
        },
        OutputFile {
            path: dir.join("src/lib.rs"),
            contents: render(emit::lib_rs)?,
        },
        OutputFile {
            path: dir.join("src/client.rs"),
            contents: render(emit::client_rs)?,
        },
    ])
}

/// Loads every spec under `root/specs`, reporting every problem of every spec.
pub fn load_all(root: &Path) -> Result<Vec<Provider>, SpecErrors> {
    let dir = root.join(SPECS_DIR);
    let files = spec_files(&dir)
        .map_err(|e| SpecError::new(SPECS_DIR, "", format!("cannot list the specs folder: {e}")))?;
    let mut errors = SpecErrors::default();
    let mut providers = Vec::new();
    for path in files {
        let display = format!(
            "{SPECS_DIR}/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        match load_provider(&path, &display) {
            Ok(p) => providers.push(p),
            Err(e) => errors.0.extend(e.0),
        }
    }
    if providers.is_empty() && errors.0.is_empty() {
        errors.push(SpecError::new(SPECS_DIR, "", "no .yaml spec found"));
    }
    errors.into_result(providers)
}

/// Every file `cargo xtask gen` writes, or every problem found. All or nothing: when any spec
/// fails, nothing is returned to write.
pub fn generate(root: &Path) -> Result<Vec<OutputFile>, SpecErrors> {
    let providers = load_all(root)?;
    let mut errors = SpecErrors::default();
    let mut files = Vec::new();
    for provider in &providers {
        match render_client(provider) {
            Ok(f) => files.extend(f),
            Err(e) => errors.push(e),
        }
    }
    errors.into_result(files)
}
