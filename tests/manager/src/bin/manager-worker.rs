//! A process that shares a token store with others and keeps asking its manager for access
//! tokens; the multi-process, crash and fault tests run several.
//!
//! `manager-worker <base-url> <file:DIR | redis:URL | redis-cluster:URL,URL,..> <seconds>
//!  [--force] [--tolerate] [--lock-ttl-ms N] [--max-backoff-ms N]`
//!
//! Prints `calls=N errors=N nonretryable=N last_error_ms=T` (T: Unix milliseconds of the last
//! error, 0 for none). Exits non-zero on any error, or with `--tolerate` on a non-retryable
//! one (faults make retryable errors expected). `--force` refreshes on every call (the crash
//! test kills it mid-refresh). `--lock-ttl-ms` shortens the lock (and the HTTP timeout with it)
//! for the tests that stall or stop a holder; `--max-backoff-ms` with it shortens the in-flight
//! grace (two lock lifetimes and the longest backoff).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokenkit::{FileStore, ManagerConfig, PostgresStore, RedisStore, TokenManager, TokenStore};
use tokenkit_manager_tests::{client_with_timeout, fast_config};

struct Options {
    seconds: f64,
    force: bool,
    tolerate: bool,
    config: ManagerConfig,
    http_timeout: Duration,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base_url, store, seconds, rest @ ..] = args.as_slice() else {
        eprintln!(
            "usage: manager-worker <base-url> <file:DIR|redis:URL|redis-cluster:URLS> <seconds> [--force] [--tolerate] [--lock-ttl-ms N]"
        );
        std::process::exit(2);
    };
    let mut options = Options {
        seconds: seconds.parse().expect("seconds"),
        force: rest.iter().any(|a| a == "--force"),
        tolerate: rest.iter().any(|a| a == "--tolerate"),
        config: fast_config(),
        http_timeout: Duration::from_secs(5),
    };
    if let Some(i) = rest.iter().position(|a| a == "--lock-ttl-ms") {
        let ms: u64 = rest[i + 1].parse().expect("milliseconds");
        options.config.lock_ttl = Duration::from_millis(ms);
        options.http_timeout = Duration::from_millis(ms / 2);
    }
    if let Some(i) = rest.iter().position(|a| a == "--max-backoff-ms") {
        let ms: u64 = rest[i + 1].parse().expect("milliseconds");
        options.config.max_backoff = Duration::from_millis(ms);
        options.config.backoff = options.config.backoff.min(options.config.max_backoff);
    }
    let code = if let Some(dir) = store.strip_prefix("file:") {
        run(base_url, FileStore::new(dir).expect("file store"), &options).await
    } else if let Some(url) = store.strip_prefix("redis:") {
        let store = RedisStore::connect(url, "tokenkit-test")
            .await
            .expect("redis store");
        run(base_url, store, &options).await
    } else if let Some(url) = store.strip_prefix("postgres:") {
        let store = PostgresStore::connect(url).await.expect("postgres store");
        run(base_url, store, &options).await
    } else if let Some(urls) = store.strip_prefix("redis-cluster:") {
        let nodes: Vec<&str> = urls.split(',').collect();
        let store = RedisStore::connect_cluster(&nodes, "tokenkit-test")
            .await
            .expect("redis cluster store");
        run(base_url, store, &options).await
    } else {
        eprintln!("unknown store {store}");
        2
    };
    std::process::exit(code);
}

async fn run(base_url: &str, store: impl TokenStore, options: &Options) -> i32 {
    let client = client_with_timeout(base_url, options.http_timeout);
    let manager = TokenManager::with_config(client, store, "shared", options.config.clone())
        .expect("manager config");
    let deadline = Instant::now() + Duration::from_secs_f64(options.seconds);
    let (mut calls, mut errors, mut nonretryable, mut last_error_ms) = (0u64, 0u64, 0u64, 0u128);
    while Instant::now() < deadline {
        let result = if options.force {
            manager.force_refresh().await
        } else {
            manager.access_token().await
        };
        calls += 1;
        if let Err(e) = result {
            errors += 1;
            if !e.is_retryable() {
                nonretryable += 1;
            }
            last_error_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            eprintln!("error at {last_error_ms}: {e}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!(
        "calls={calls} errors={errors} nonretryable={nonretryable} last_error_ms={last_error_ms}"
    );
    let failed = if options.tolerate {
        nonretryable > 0
    } else {
        errors > 0
    };
    i32::from(failed)
}
