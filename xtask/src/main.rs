//! `cargo xtask`: the project's automation.
//!
//! - `cargo xtask gen`: regenerate every client crate (and its whole-client snapshot) from
//!   `specs/*.yaml`.
//! - `cargo xtask gen --check`: fail, with a diff, when the checked-in files differ (a plain
//!   `cargo test` checks the same).
//! - `cargo xtask gen --accept`: `gen`, then accept every changed snapshot of the generator.
//! - `cargo xtask lint`: every problem of every spec, with file, JSON pointer and fix hint.
//! - `cargo xtask mock <provider>`: serve a provider's spec on 127.0.0.1.
//! - `cargo xtask weight`: lines and incremental build time of each generated client.
//! - `cargo xtask semver`: whether the generated crates' public APIs break against a base
//!   revision (cargo-semver-checks), for reviewing a spec change.

mod gen_cmd;
mod mock_cmd;
mod semver_cmd;
mod weight_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  gen            regenerate the clients from specs/*.yaml (and tests/fixtures/specs)
  gen --check    exit non-zero, with a diff, if the checked-in files differ from what gen writes
  gen --accept   gen, then accept the generator's changed excerpt and error snapshots (insta)
  lint           report every problem of every spec (gen runs it too)
  mock <provider> [--port N] [--reply STATUS[/EXAMPLE]] [--lenient]
                 serve the provider's spec on 127.0.0.1, checking every request against it
                 (a request that breaks it gets 422; see `cargo xtask mock --help`)

`cargo xtask <command> --help` describes one command.
  weight         lines and incremental build time of each generated client (BENCHMARKS.md)
  semver [--base REV]
                 whether each changed generated crate breaks its public API against REV";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if let [command, rest @ ..] = args.as_slice()
        && rest.iter().any(|a| matches!(*a, "--help" | "-h"))
    {
        println!("{}", help(command));
        return ExitCode::SUCCESS;
    }
    let result = match args.as_slice() {
        ["gen"] => gen_cmd::run(&root(), false),
        ["gen", "--check"] => gen_cmd::run(&root(), true),
        ["gen", "--accept"] => {
            gen_cmd::run(&root(), false).and_then(|()| gen_cmd::accept_snapshots(&root()))
        }
        ["lint"] => lint(&root()),
        ["mock", rest @ ..] => mock_cmd::run(&root(), rest),
        ["weight"] => weight_cmd::run(&root()),
        ["semver", rest @ ..] => semver_cmd::run(&root(), rest),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// The usage of one command.
fn help(command: &str) -> &'static str {
    match command {
        "gen" => {
            "usage: cargo xtask gen [--check | --accept]\n\nRegenerates crates/clients/* (and tests/fixtures/clients/*, tests/suite) from\nspecs/*.yaml and tests/fixtures/specs/*.yaml, with each client's whole-file snapshot in\ncrates/codegen/tests/snapshots; writes nothing unless every spec passes.\n  --check   write nothing; fail with a diff if a checked-in file differs\n  --accept  after writing, accept the generator's changed excerpt and error snapshots"
        }
        "lint" => {
            "usage: cargo xtask lint\n\nReports every problem of every spec at once, with the file, the JSON pointer and a hint."
        }
        "mock" => mock_cmd::USAGE,
        "semver" => semver_cmd::USAGE,
        "weight" => {
            "usage: cargo xtask weight\n\nPrints the lines and the incremental build time of each generated client."
        }
        _ => USAGE,
    }
}

/// Reports every problem of every spec; succeeds when there is none.
fn lint(root: &std::path::Path) -> Result<(), String> {
    let providers = tokenkit_codegen::load_all(root).map_err(|errors| {
        let count = errors.0.len();
        format!("{errors}\n\nlint: {count} problem(s)")
    })?;
    let notes: Vec<_> = providers
        .iter()
        .flat_map(|(_, p)| p.notes.clone())
        .collect();
    // No error, but a choice the maintainer should know of.
    for note in &notes {
        eprintln!("note: {note}");
    }
    println!(
        "lint: {} specs, no problems, {} note(s)",
        providers.len(),
        notes.len()
    );
    Ok(())
}

/// The workspace root: xtask lives one level below it.
///
/// `cargo run` sets `CARGO_MANIFEST_DIR` for the process it starts, so the checkout that ran
/// `cargo xtask` wins over the one this binary was compiled in: two checkouts sharing one
/// `CARGO_TARGET_DIR` run the same binary, and each must act on its own specs.
fn root() -> PathBuf {
    root_from(std::env::var_os("CARGO_MANIFEST_DIR"))
}

fn root_from(run_time: Option<std::ffi::OsString>) -> PathBuf {
    let manifest = run_time
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
