//! `gen`, `gen --check` and `gen --accept`: all or nothing, and idempotent.

use similar::TextDiff;
use std::path::{Path, PathBuf};
use tokenkit_codegen::{OutputFile, SNAPSHOT_DIR, SOURCES};

/// Regenerates, or with `check` compares, every generated file.
pub fn run(root: &Path, check: bool) -> Result<(), String> {
    let generated = tokenkit_codegen::generate(root).map_err(|errors| {
        format!("{errors}\n\ngen: no file was written; fix the specs above and run it again")
    })?;
    if !generated.notes.is_empty() {
        eprintln!(
            "gen: the specs have {} note(s): `cargo xtask lint` shows them",
            generated.notes.len()
        );
    }
    let files = generated.files;
    let stale = stale_files(root, &files);
    let changed: Vec<&OutputFile> = files
        .iter()
        .filter(|f| {
            std::fs::read_to_string(root.join(&f.path)).ok().as_deref() != Some(&f.contents)
        })
        .collect();

    if check {
        if changed.is_empty() && stale.is_empty() {
            println!(
                "gen --check: {} generated files are up to date",
                files.len()
            );
            return Ok(());
        }
        let mut report = String::new();
        for file in &changed {
            let old = std::fs::read_to_string(root.join(&file.path)).unwrap_or_default();
            let path = file.path.display().to_string();
            let diff = TextDiff::from_lines(&old, &file.contents);
            report.push_str(
                &diff
                    .unified_diff()
                    .context_radius(3)
                    .header(
                        &format!("a/{path} (checked in)"),
                        &format!("b/{path} (from the specs)"),
                    )
                    .to_string(),
            );
        }
        for path in &stale {
            report.push_str(&format!(
                "{} has no spec any more and would be removed\n",
                path.display()
            ));
        }
        return Err(format!(
            "{report}\ngen --check: {} file(s) differ from what the specs produce; run `cargo xtask gen` \
             (generated files are never edited by hand)",
            changed.len() + stale.len()
        ));
    }

    for file in &changed {
        let path = root.join(&file.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(&path, &file.contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", file.path.display());
    }
    for path in &stale {
        let full = root.join(path);
        let removed = if full.is_dir() {
            std::fs::remove_dir_all(&full)
        } else {
            std::fs::remove_file(&full)
        };
        removed.map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        println!("removed {} (its spec is gone)", path.display());
    }
    println!(
        "gen: {} files from the specs, {} changed, {} removed",
        files.len(),
        changed.len(),
        stale.len()
    );
    Ok(())
}

/// Generated files whose spec is gone: client crates (folders under a clients folder with a
/// generated `Cargo.toml`) and whole-client snapshots that this run does not write.
fn stale_files(root: &Path, files: &[OutputFile]) -> Vec<PathBuf> {
    let mut stale = stale_client_dirs(root, files);
    if let Ok(entries) = std::fs::read_dir(root.join(SNAPSHOT_DIR)) {
        stale.extend(
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("snapshots__client_") && n.ends_with(".snap"))
                .map(|n| Path::new(SNAPSHOT_DIR).join(n))
                .filter(|p| !files.iter().any(|f| &f.path == p)),
        );
    }
    stale.sort();
    stale
}

/// Client crate folders whose spec is gone.
fn stale_client_dirs(root: &Path, files: &[OutputFile]) -> Vec<PathBuf> {
    SOURCES
        .iter()
        .filter_map(|source| {
            let entries = std::fs::read_dir(root.join(source.clients)).ok()?;
            Some(
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| Path::new(source.clients).join(e.file_name())),
            )
        })
        .flatten()
        .filter(|dir| !files.iter().any(|f| f.path.starts_with(dir)))
        .filter(|dir| {
            std::fs::read_to_string(root.join(dir).join("Cargo.toml"))
                .is_ok_and(|text| text.contains("@generated"))
        })
        .collect()
}

/// `gen --accept`: after writing, runs the generator's snapshot tests with `INSTA_UPDATE=always`,
/// so the focused excerpts and error messages are accepted too. Review them in the diff.
pub fn accept_snapshots(root: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(root)
        .args([
            "test",
            "--quiet",
            "-p",
            "tokenkit-codegen",
            "--test",
            "snapshots",
        ])
        .env("INSTA_UPDATE", "always")
        .status()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    if !status.success() {
        return Err("gen --accept: the snapshot tests failed for another reason than a changed snapshot; see above".into());
    }
    println!(
        "gen --accept: snapshots accepted; review them in the diff (`git diff {SNAPSHOT_DIR}`)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch workspace root holding copies of some of the real specs.
    fn scratch(name: &str, specs: &[&str]) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("tokenkit-xtask-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("specs")).unwrap();
        let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
        for spec in specs {
            std::fs::copy(real.join(spec), root.join("specs").join(spec)).unwrap();
        }
        root
    }

    /// What a plain `cargo test` checks, as rust-analyzer's codegen tests do: every checked-in
    /// generated file (client crates, their whole-client snapshots, the suite crate) is what
    /// the specs produce now. On failure, the diff and the command that fixes it.
    #[test]
    fn the_checked_in_generated_files_are_what_the_specs_produce() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        if let Err(report) = run(&root, true) {
            panic!("{report}");
        }
    }

    #[test]
    fn gen_is_idempotent_and_check_catches_drift() {
        let root = scratch("drift", &["fredi.yaml"]);
        run(&root, false).unwrap();
        let lib = root.join("crates/clients/fredi/src/client.rs");
        let generated = std::fs::read_to_string(&lib).unwrap();
        assert!(generated.starts_with("// @generated"));
        run(&root, true).unwrap();
        run(&root, false).unwrap();
        assert_eq!(std::fs::read_to_string(&lib).unwrap(), generated);

        std::fs::write(&lib, generated.replace("pub struct", "pub  struct")).unwrap();
        let report = run(&root, true).unwrap_err();
        assert!(
            report.contains("crates/clients/fredi/src/client.rs"),
            "{report}"
        );
        assert!(
            report.contains("-pub  struct") && report.contains("+pub struct"),
            "{report}"
        );

        run(&root, false).unwrap();
        run(&root, true).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_broken_spec_writes_nothing() {
        let root = scratch("broken", &["fredi.yaml", "hesabe.yaml"]);
        let hesabe = root.join("specs/hesabe.yaml");
        let text = std::fs::read_to_string(&hesabe).unwrap();
        std::fs::write(
            &hesabe,
            text.replace(
                "access-token: /response/token/access_token",
                "access-token: /nope",
            ),
        )
        .unwrap();
        let report = run(&root, false).unwrap_err();
        assert!(report.contains("specs/hesabe.yaml#/paths/~1v1~1token-refresh/post/x-token-refresh/success/access-token"), "{report}");
        assert!(!root.join("crates").exists(), "a failed gen wrote files");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_removed_spec_removes_its_crate() {
        let root = scratch("stale", &["fredi.yaml", "hesabe.yaml"]);
        run(&root, false).unwrap();
        std::fs::remove_file(root.join("specs/hesabe.yaml")).unwrap();
        assert!(
            run(&root, true)
                .unwrap_err()
                .contains("crates/clients/hesabe")
        );
        run(&root, false).unwrap();
        assert!(!root.join("crates/clients/hesabe").exists());
        assert!(root.join("crates/clients/fredi").exists());
        let snapshots = root.join(SNAPSHOT_DIR);
        assert!(!snapshots.join("snapshots__client_hesabe.snap").exists());
        assert!(snapshots.join("snapshots__client_fredi.snap").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
