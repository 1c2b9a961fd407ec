//! Turns hand-written OpenAPI specs of token endpoints into typed Rust clients.
//!
//! Data flows one way: [`read`] (YAML → `openapiv3`) → [`model::build`], the pipeline of
//! stages (normalize → locate → resolve → map → plan) that makes a small resolved model, checked
//! for everything generation needs → [`lint`] (the examples) → [`emit`] (tokens → `syn::File` →
//! prettyplease → text). Nothing here panics on a bad spec: every problem is a [`SpecError`]
//! with the file and the JSON pointer.

pub mod emit;
pub mod error;
pub mod extension;
pub mod lint;
mod locate;
mod map;
pub mod model;
pub mod names;
mod normalize;
mod plan;
pub mod pointer;
pub mod read;
mod resolve;
pub mod types;
pub mod validate;

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

/// A folder of specs and the folder their client crates go to, relative to the workspace root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// Where the specs are.
    pub specs: &'static str,
    /// Where their crates go, one folder each.
    pub clients: &'static str,
}

/// The product's providers, and the made-up ones the conformance suite also runs.
pub const SOURCES: [Source; 2] = [
    Source {
        specs: "specs",
        clients: "crates/clients",
    },
    Source {
        specs: "tests/fixtures/specs",
        clients: "tests/fixtures/clients",
    },
];

/// The generated crate that runs the conformance suite against every client.
pub const SUITE_DIR: &str = "tests/suite";

/// Where the insta snapshots of the generator's tests live. The whole-client ones
/// (`snapshots__client_<provider>.snap`) are written by `cargo xtask gen` with the crates, so
/// the two never drift; the focused excerpts and error messages are accepted through insta.
pub const SNAPSHOT_DIR: &str = "crates/codegen/tests/snapshots";

/// The whole-client snapshot file of `provider`, relative to the workspace root.
pub fn client_snapshot_path(provider: &str) -> PathBuf {
    Path::new(SNAPSHOT_DIR).join(format!("snapshots__client_{provider}.snap"))
}

/// The whole-client snapshot of a generated `client.rs`, as insta writes it for
/// `tests/snapshots.rs`'s `every_spec_generates_its_client`.
fn client_snapshot(client_rs: &str) -> String {
    format!(
        "---\nsource: crates/codegen/tests/snapshots.rs\nexpression: client_rs(&relative)\n---\n{client_rs}"
    )
}

/// The `.yaml` files of a folder, sorted by name.
pub fn spec_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads, models and lints one spec; `display` is how errors name the file.
pub fn load_provider(path: &Path, display: &str) -> Result<Provider, SpecErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SpecError::new(display, "", format!("cannot read the file: {e}")))?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("."));
    let spec = read::parse_in(name, display, &text, dir)?;
    let provider = model::build(&spec)?;
    SpecErrors(lint::lint(&provider)).into_result(provider)
}

/// The client crate of one provider: its `Cargo.toml`, `src/lib.rs` and `src/client.rs`.
pub fn render_client(provider: &Provider, clients_dir: &str) -> Result<Vec<OutputFile>, SpecError> {
    let dir = Path::new(clients_dir).join(&provider.name);
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

/// Loads every spec of every source, reporting every problem of every spec. Provider names
/// must be unique across sources.
pub fn load_all(root: &Path) -> Result<Vec<(Source, Provider)>, SpecErrors> {
    let mut errors = SpecErrors::default();
    let mut providers: Vec<(Source, Provider)> = Vec::new();
    for source in SOURCES {
        let dir = root.join(source.specs);
        let files = match spec_files(&dir) {
            Ok(files) => files,
            Err(_) if source != SOURCES[0] => continue,
            Err(e) => {
                errors.push(SpecError::new(
                    source.specs,
                    "",
                    format!("cannot list the specs folder: {e}"),
                ));
                continue;
            }
        };
        for path in files {
            let display = format!(
                "{}/{}",
                source.specs,
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            match load_provider(&path, &display) {
                Ok(p) if providers.iter().any(|(_, q)| q.name == p.name) => errors.push(
                    SpecError::new(
                        &display,
                        "",
                        format!("another spec already names a provider {:?}", p.name),
                    )
                    .hint("provider names come from file names and must be unique"),
                ),
                Ok(p) => providers.push((source, p)),
                Err(e) => errors.0.extend(e.0),
            }
        }
    }
    if providers.is_empty() && errors.0.is_empty() {
        errors.push(SpecError::new(SOURCES[0].specs, "", "no .yaml spec found"));
    }
    errors.into_result(providers)
}

/// What `cargo xtask gen` writes, with what it should say.
#[derive(Debug)]
pub struct Generated {
    /// Each client crate, its whole-client snapshot, and the suite crate.
    pub files: Vec<OutputFile>,
    /// Every spec's notes ([`Provider::notes`]), in spec order.
    pub notes: Vec<SpecError>,
}

/// Every file `cargo xtask gen` writes, or every problem found. All or nothing: when any spec
/// fails, nothing is returned to write.
pub fn generate(root: &Path) -> Result<Generated, SpecErrors> {
    let providers = load_all(root)?;
    let mut errors = SpecErrors::default();
    let mut files = Vec::new();
    for (source, provider) in &providers {
        match render_client(provider, source.clients) {
            Ok(f) => {
                let client = f.iter().find(|f| f.path.ends_with("src/client.rs"));
                if let Some(client) = client {
                    files.push(OutputFile {
                        path: client_snapshot_path(&provider.name),
                        contents: client_snapshot(&client.contents),
                    });
                }
                files.extend(f);
            }
            Err(e) => errors.push(e),
        }
    }
    match emit::suite::files(&providers) {
        Ok(f) => files.extend(f),
        Err(e) => errors.push(SpecError::new(SUITE_DIR, "", e)),
    }
    let notes = providers
        .iter()
        .flat_map(|(_, p)| p.notes.clone())
        .collect();
    errors.into_result(Generated { files, notes })
}
