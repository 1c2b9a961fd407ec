//! The xtask acts on the checkout that ran it, not the one its binary was built in: two
//! checkouts sharing one `CARGO_TARGET_DIR` run the same binary.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_run_time_manifest_dir_picks_the_workspace() {
    let other = std::env::temp_dir().join(format!("tokenkit-xtask-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&other);
    std::fs::create_dir_all(other.join("specs")).unwrap();
    std::fs::create_dir_all(other.join("xtask")).unwrap();
    // A spec that only this other checkout has, broken so that lint names it.
    std::fs::write(other.join("specs/only-here.yaml"), "openapi: 3.0.3\n").unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("lint")
        .env("CARGO_MANIFEST_DIR", other.join("xtask"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "lint passed on the wrong workspace"
    );
    assert!(
        stderr.contains("only-here.yaml"),
        "lint did not read the run-time workspace: {stderr}"
    );

    // Without the variable, the compile-time workspace (this checkout) is used, and it is clean.
    let own = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("lint")
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    assert!(
        own.status.success(),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    let _ = std::fs::remove_dir_all(PathBuf::from(&other));
}

#[test]
fn every_command_has_help() {
    for command in ["gen", "lint", "mock", "weight"] {
        for flag in ["--help", "-h"] {
            let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
                .args([command, flag])
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "{command} {flag}");
            assert!(
                stdout.starts_with(&format!("usage: cargo xtask {command}")),
                "{command} {flag}: {stdout}"
            );
        }
    }
    // Not a spec named `--help`, and not a panic either.
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["mock", "--lenient"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage: cargo xtask mock"));
}
