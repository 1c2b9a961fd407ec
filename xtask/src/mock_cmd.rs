//! `mock <provider> [--port N] [--reply STATUS[/EXAMPLE]]`: serve a provider's spec on
//! 127.0.0.1 so an application can be tested offline.

use std::path::Path;
use std::time::Duration;
use tokenkit_codegen::SOURCES;
use tokenkit_mock::{MockServer, Reply};

/// Parses the arguments after `mock` and serves until interrupted.
pub fn run(root: &Path, args: &[&str]) -> Result<(), String> {
    let (name, rest) = args
        .split_first()
        .ok_or("usage: cargo xtask mock <provider> [--port N] [--reply STATUS[/EXAMPLE]]")?;
    let mut port = 0u16;
    let mut reply = None;
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match *flag {
            "--port" => {
                port = value
                    .parse()
                    .map_err(|_| format!("--port {value:?} is not a port number"))?
            }
            "--reply" => {
                let (status, example) = value
                    .split_once('/')
                    .map_or((*value, None), |(s, e)| (s, Some(e.to_owned())));
                let status = status
                    .parse()
                    .map_err(|_| format!("--reply {value:?}: the status must be a number"))?;
                reply = Some(Reply::Example {
                    status,
                    name: example,
                });
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    let spec = SOURCES
        .iter()
        .map(|s| root.join(s.specs).join(format!("{name}.yaml")))
        .find(|p| p.exists())
        .ok_or_else(|| {
            format!(
                "no spec named {name}.yaml in {}",
                SOURCES.map(|s| s.specs).join(" or ")
            )
        })?;
    let provider = tokenkit_mock::load(&spec).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(serve(provider, port, reply))
}

async fn serve(
    provider: tokenkit_codegen::Provider,
    port: u16,
    reply: Option<Reply>,
) -> Result<(), String> {
    let op = format!("{} {}", provider.operation.method, provider.operation.path);
    let statuses: Vec<String> = provider
        .operation
        .responses
        .iter()
        .map(|r| {
            let names: Vec<&str> = r.examples.iter().map(|(n, _)| n.as_str()).collect();
            format!("{} [{}]", r.status, names.join(", "))
        })
        .collect();
    let mock = MockServer::bind(provider, port)
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    if let Some(reply) = reply {
        mock.set_default(reply);
    }
    println!("mock {} serving {op}", mock.provider().name);
    println!("base URL: {}", mock.base_url());
    println!(
        "documented replies (--reply STATUS/EXAMPLE): {}",
        statuses.join("; ")
    );
    println!("each request is checked against the spec; Ctrl-C stops");
    let mut seen = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let requests = mock.requests();
        for recorded in &requests[seen..] {
            let r = &recorded.request;
            if recorded.violations.is_empty() {
                println!("{} {}: conforms", r.method, r.path);
            } else {
                println!(
                    "{} {}: {} violation(s)",
                    r.method,
                    r.path,
                    recorded.violations.len()
                );
                for v in &recorded.violations {
                    println!("  - {v}");
                }
            }
        }
        seen = requests.len();
    }
}
