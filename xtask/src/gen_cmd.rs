//! `gen` and `gen --check`: all or nothing, and idempotent.

use similar::TextDiff;
use std::path::{Path, PathBuf};
use tokenkit_codegen::{OutputFile, SOURCES};

/// Regenerates, or with `check` compares, every generated file.
pub fn run(root: &Path, check: bool) -> Result<(), String> {
    let files = tokenkit_codegen::generate(root).map_err(|errors| {
        format!("{errors}\n\ngen: no file was written; fix the specs above and run it again")
    })?;
    let stale = stale_crates(root, &files);
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
        for dir in &stale {
            report.push_str(&format!(
                "{} has no spec any more and would be removed\n",
                dir.display()
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
    for dir in &stale {
        std::fs::remove_dir_all(root.join(dir))
            .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
        println!("removed {} (its spec is gone)", dir.display());
    }
    println!(
        "gen: {} files from the specs, {} changed, {} removed",
        files.len(),
        changed.len(),
        stale.len()
    );
    Ok(())
}

/// Generated client crates whose spec is gone: folders under a clients folder with a generated
/// `Cargo.toml` that this run does not write.
fn stale_crates(root: &Path, files: &[OutputFile]) -> Vec<PathBuf> {
    let mut stale: Vec<PathBuf> = SOURCES
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
        .collect();
    stale.sort();
    stale
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
        std::fs::remove_dir_all(&root).unwrap();
    }
}
