//! `weight`: lines of each generated client crate and its incremental build time, for
//! BENCHMARKS.md, so that growth of the generated code shows up in review.

use std::path::Path;
use std::process::Command;
use std::time::Instant;
use tokenkit_codegen::SOURCES;

/// Prints a Markdown table: crate, lines, incremental `cargo build` time.
pub fn run(root: &Path) -> Result<(), String> {
    let clients = root.join(SOURCES[0].clients);
    let mut names: Vec<String> = std::fs::read_dir(&clients)
        .map_err(|e| format!("cannot list {}: {e}", clients.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    let build = |package: &str| -> Result<f64, String> {
        let start = Instant::now();
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", package])
            .current_dir(root)
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("cargo build -p {package} failed"));
        }
        Ok(start.elapsed().as_secs_f64())
    };
    println!("| crate | lines (lib.rs + client.rs) | incremental build after touching client.rs |");
    println!("|---|---|---|");
    for name in names {
        let package = format!("tokenkit-{name}");
        let src = clients.join(&name).join("src");
        let lines: usize = ["lib.rs", "client.rs"]
            .iter()
            .map(|f| {
                std::fs::read_to_string(src.join(f))
                    .map(|t| t.lines().count())
                    .unwrap_or(0)
            })
            .sum();
        build(&package)?;
        let client = src.join("client.rs");
        let text = std::fs::read(&client).map_err(|e| e.to_string())?;
        // Rewriting the file bumps its mtime, so cargo rebuilds just this crate.
        std::fs::write(&client, &text).map_err(|e| e.to_string())?;
        let seconds = build(&package)?;
        println!("| {package} | {lines} | {seconds:.2} s |");
    }
    Ok(())
}
