//! A process that shares a token store with others and keeps asking its manager for access
//! tokens; the multi-process and crash tests run several.
//!
//! `manager-worker <base-url> <file:DIR | redis:URL> <seconds> [--force]`
//! prints `calls=N errors=N` and exits non-zero on any error. `--force` refreshes on every call
//! (the crash test kills it mid-refresh).

use std::time::{Duration, Instant};
use tokenkit::{FileStore, RedisStore, TokenManager, TokenStore};
use tokenkit_manager_tests::{client, fast_config};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base_url, store, seconds, rest @ ..] = args.as_slice() else {
        eprintln!("usage: manager-worker <base-url> <file:DIR|redis:URL> <seconds> [--force]");
        std::process::exit(2);
    };
    let seconds: f64 = seconds.parse().expect("seconds");
    let force = rest.iter().any(|a| a == "--force");
    let code = if let Some(dir) = store.strip_prefix("file:") {
        run(
            base_url,
            FileStore::new(dir).expect("file store"),
            seconds,
            force,
        )
        .await
    } else if let Some(url) = store.strip_prefix("redis:") {
        let store = RedisStore::connect(url, "tokenkit-test")
            .await
            .expect("redis store");
        run(base_url, store, seconds, force).await
    } else {
        eprintln!("unknown store {store}");
        2
    };
    std::process::exit(code);
}

async fn run(base_url: &str, store: impl TokenStore, seconds: f64, force: bool) -> i32 {
    let manager = TokenManager::with_config(client(base_url), store, "shared", fast_config())
        .expect("manager config");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let (mut calls, mut errors) = (0u64, 0u64);
    while Instant::now() < deadline {
        let result = if force {
            manager.force_refresh().await
        } else {
            manager.access_token().await
        };
        calls += 1;
        if let Err(e) = result {
            errors += 1;
            eprintln!("error: {e}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!("calls={calls} errors={errors}");
    i32::from(errors > 0)
}
