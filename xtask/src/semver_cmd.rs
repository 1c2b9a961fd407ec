//! `semver`: whether a spec change breaks a generated crate's public API for its dependents.
//!
//! For each generated client crate that differs from the base revision, runs
//! `cargo semver-checks` against that revision's version of the crate and reports, per crate,
//! whether dependents may need a major version. New crates have nothing to compare with; a
//! removed crate breaks its dependents.

use std::path::Path;
use std::process::Command;
use tokenkit_codegen::SOURCES;

/// The usage of the command.
pub const USAGE: &str = "usage: cargo xtask semver [--base <git revision>]\n\nFor each generated client crate that differs from the base revision (default: origin/main,\nelse main), runs cargo-semver-checks against the base's crate and says whether the change\nbreaks its public API. Needs cargo-semver-checks (cargo install cargo-semver-checks --locked).\nExits non-zero when a change breaks a crate's API.";

/// What the check says of one crate.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The crate's files are the base's.
    Unchanged,
    /// The crate is new: nothing to compare with.
    New,
    /// The crate is gone: its dependents break.
    Removed,
    /// cargo-semver-checks found no breaking change.
    Compatible,
    /// cargo-semver-checks found breaking changes (its report).
    Breaking(String),
}

/// Runs the check; `args` are the command's arguments.
pub fn run(root: &Path, args: &[&str]) -> Result<(), String> {
    let base = match args {
        [] => default_base(root)?,
        ["--base", base] => (*base).to_owned(),
        _ => return Err(USAGE.to_owned()),
    };
    let tool = Command::new(env!("CARGO"))
        .args(["semver-checks", "--version"])
        .output();
    if !tool.is_ok_and(|o| o.status.success()) {
        return Err(
            "cargo-semver-checks is not installed: cargo install cargo-semver-checks --locked"
                .to_owned(),
        );
    }
    let mut breaking = 0;
    println!("semver: generated crates against {base}");
    for dir in crate_dirs(root, &base)? {
        let verdict = check(root, &base, &dir)?;
        let line = match &verdict {
            Verdict::Unchanged => continue,
            Verdict::New => "new: nothing to compare with".to_owned(),
            Verdict::Removed => "removed: breaks every dependent".to_owned(),
            Verdict::Compatible => "changed, public API compatible".to_owned(),
            Verdict::Breaking(report) => format!("BREAKING for dependents\n{report}"),
        };
        if matches!(verdict, Verdict::Removed | Verdict::Breaking(_)) {
            breaking += 1;
        }
        println!("- {dir}: {line}");
    }
    if breaking > 0 {
        return Err(format!(
            "semver: {breaking} crate(s) break their public API"
        ));
    }
    println!("semver: no generated crate breaks its public API");
    Ok(())
}

/// `origin/main` where the clone has it, else `main`.
fn default_base(root: &Path) -> Result<String, String> {
    for candidate in ["origin/main", "main"] {
        if git(root, &["rev-parse", "--verify", "--quiet", candidate]).is_ok() {
            return Ok(candidate.to_owned());
        }
    }
    Err("no base revision: pass --base <git revision>".to_owned())
}

/// The generated crates' folders, here or at `base`.
fn crate_dirs(root: &Path, base: &str) -> Result<Vec<String>, String> {
    let mut dirs = Vec::new();
    for source in SOURCES {
        let here = std::fs::read_dir(root.join(source.clients))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().join("Cargo.toml").exists())
                    .map(|e| format!("{}/{}", source.clients, e.file_name().to_string_lossy()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let there = git(
            root,
            &[
                "ls-tree",
                "--name-only",
                base,
                &format!("{}/", source.clients),
            ],
        )
        .unwrap_or_default();
        dirs.extend(here);
        dirs.extend(there.lines().map(str::to_owned));
    }
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

/// The verdict for the crate in `dir`.
fn check(root: &Path, base: &str, dir: &str) -> Result<Verdict, String> {
    let manifest = format!("{dir}/Cargo.toml");
    let in_base = git(root, &["cat-file", "-e", &format!("{base}:{manifest}")]).is_ok();
    let here = root.join(&manifest).exists();
    match (in_base, here) {
        (false, _) => return Ok(Verdict::New),
        (true, false) => return Ok(Verdict::Removed),
        (true, true) => {}
    }
    let unchanged = Command::new("git")
        .args(["diff", "--quiet", base, "--", dir])
        .current_dir(root)
        .status()
        .map_err(|e| e.to_string())?
        .success();
    if unchanged {
        return Ok(Verdict::Unchanged);
    }
    let package = package_name(&root.join(&manifest))?;
    let output = Command::new(env!("CARGO"))
        .args([
            "semver-checks",
            "check-release",
            "-p",
            &package,
            "--baseline-rev",
            base,
        ])
        .current_dir(root)
        .output()
        .map_err(|e| e.to_string())?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(if output.status.success() {
        Verdict::Compatible
    } else {
        Verdict::Breaking(report)
    })
}

/// The `name` of a crate's manifest.
fn package_name(manifest: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(manifest).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("name = ")
                .map(|n| n.trim_matches('"').to_owned())
        })
        .ok_or_else(|| format!("{} names no package", manifest.display()))
}

fn git(root: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}
