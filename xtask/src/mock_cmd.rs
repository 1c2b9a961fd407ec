//! `mock <provider> [--port N] [--reply STATUS[/EXAMPLE]] [--lenient]`: serve a provider's
//! spec on 127.0.0.1 so an application can be tested offline.

use std::path::Path;
use std::time::Duration;
use tokenkit_codegen::SOURCES;
use tokenkit_mock::{MockServer, Reply};

/// `cargo xtask mock --help`.
pub const USAGE: &str = "\
usage: cargo xtask mock <provider> [--port N] [--reply STATUS[/EXAMPLE]] [--lenient]

Serves the token operations (the refresh, and any grant operations) of specs/<provider>.yaml
(or tests/fixtures/specs) on 127.0.0.1,
answering with the spec's own examples and printing every request with the rules it breaks.
Where the spec has an authorization code flow it serves its authorization endpoint too: a
consent page that sends the customer back with a code bound to the client, the redirect URI
and the PKCE challenge, which the token endpoint then checks (once each).

options:
  --port N                 listen on port N (default: a free one, printed at start)
  --reply STATUS[/EXAMPLE] answer every request with that documented example
  --lenient                answer requests that break the spec anyway (default: 422 with an
                           application/problem+json body listing the violations)";

/// Parses the arguments after `mock` and serves until interrupted.
pub fn run(root: &Path, args: &[&str]) -> Result<(), String> {
    let (name, rest) = args.split_first().ok_or(USAGE)?;
    if name.starts_with('-') {
        return Err(format!("unknown option {name}\n\n{USAGE}"));
    }
    let mut port = 0u16;
    let mut reply = None;
    let mut lenient = false;
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        if *flag == "--lenient" {
            lenient = true;
            continue;
        }
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
            other => return Err(format!("unknown option {other}\n\n{USAGE}")),
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
    runtime.block_on(serve(provider, port, reply, lenient))
}

async fn serve(
    provider: tokenkit_codegen::Provider,
    port: u16,
    reply: Option<Reply>,
    lenient: bool,
) -> Result<(), String> {
    // The refresh operation, or a grant-only provider's first operation.
    let refresh = &provider.operations[0].operation;
    let op = format!("{} {}", refresh.method, refresh.path);
    let statuses: Vec<String> = refresh
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
    if lenient {
        mock.lenient();
    }
    println!("mock {} serving {op}", mock.provider().name);
    println!("base URL: {}", mock.base_url());
    if let Some(consent) = mock.serve_consent() {
        println!(
            "authorization endpoint (a consent page; codes checked at the token endpoint): {consent}"
        );
    }
    println!(
        "documented replies (--reply STATUS/EXAMPLE): {}",
        statuses.join("; ")
    );
    println!(
        "each request is checked against the spec ({}); Ctrl-C stops",
        if lenient {
            "lenient: answered anyway"
        } else {
            "one that breaks it gets 422"
        }
    );
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
