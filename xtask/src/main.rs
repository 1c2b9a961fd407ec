//! `cargo xtask`: the project's automation.
//!
//! - `cargo xtask gen`: regenerate every client crate from `specs/*.yaml`.
//! - `cargo xtask gen --check`: fail, with a diff, when the checked-in files differ.
//! - `cargo xtask mock <provider>`: serve a provider's spec on 127.0.0.1.

mod gen_cmd;
mod mock_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  gen            regenerate crates/clients/* from specs/*.yaml
  gen --check    exit non-zero, with a diff, if the checked-in files differ from what gen writes
  mock <provider> [--port N] [--reply STATUS[/EXAMPLE]]
                 serve the provider's spec on 127.0.0.1, checking every request against it";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["gen"] => gen_cmd::run(&root(), false),
        ["gen", "--check"] => gen_cmd::run(&root(), true),
        ["mock", rest @ ..] => mock_cmd::run(&root(), rest),
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

/// The workspace root: xtask lives one level below it.
fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
