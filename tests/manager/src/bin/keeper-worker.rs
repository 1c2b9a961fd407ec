//! A replica of an application that keeps Fleetbank connections alive with a pool's keeper,
//! for the fleet tests: `keeper-worker <base-url> <file:DIR | redis:URL> <seconds> <margin-ms>`.
//! Prints `kept=N failed=N given_up=N reauth=N` when the time is up (a process killed before
//! prints nothing).

use std::time::Duration;
use tokenkit::{
    FileStore, KeeperConfig, ManagerConfig, PoolConfig, RedisStore, TokenEvent, TokenPool,
    TokenStore,
};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base_url, store, seconds, margin_ms] = args.as_slice() else {
        eprintln!("usage: keeper-worker <base-url> <file:DIR|redis:URL> <seconds> <margin-ms>");
        std::process::exit(2);
    };
    let seconds: f64 = seconds.parse().expect("seconds");
    let margin = Duration::from_millis(margin_ms.parse().expect("margin"));
    if let Some(dir) = store.strip_prefix("file:") {
        run(
            base_url,
            FileStore::new(dir).expect("file store"),
            seconds,
            margin,
        )
        .await;
    } else if let Some(url) = store.strip_prefix("redis:") {
        let store = RedisStore::connect(url, "fleet")
            .await
            .expect("redis store");
        run(base_url, store, seconds, margin).await;
    } else {
        eprintln!("unknown store {store}");
        std::process::exit(2);
    }
}

async fn run(base_url: &str, store: impl TokenStore, seconds: f64, margin: Duration) {
    // Short timeouts and a short lock: a killed replica's locks free up in 3 s.
    let client = tokenkit_fleetbank::Client::builder("fleet-client", "fleet-secret")
        .base_url(base_url)
        .http_config(tokenkit::HttpConfig {
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_millis(500),
            ..tokenkit::HttpConfig::default()
        })
        .build()
        .expect("client");
    let config = PoolConfig {
        manager: ManagerConfig {
            refresh_token_margin: margin,
            lock_poll: Duration::from_millis(10),
            lock_ttl: Duration::from_secs(3),
            max_backoff: Duration::from_secs(1),
            ..ManagerConfig::default()
        },
        idle_after: Duration::from_secs(2),
        ..PoolConfig::default()
    };
    let pool = TokenPool::new(client, store, config).expect("pool");
    let mut events = pool.subscribe();
    let keeper = pool.keep(KeeperConfig {
        interval: Duration::from_millis(200),
        jitter: Duration::from_millis(200),
        concurrency: 64,
        per_second: 5000,
        batch: 256,
        ..KeeperConfig::default()
    });
    let reauth = tokio::spawn(async move {
        let mut count = 0u64;
        loop {
            match events.recv().await {
                Ok(TokenEvent::ReauthenticationRequired { .. }) => count += 1,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return count,
            }
        }
    });
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let stats = keeper.stats();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let line = format!(
        "kept={} failed={} given_up={} active={}",
        load(&stats.kept),
        load(&stats.failed),
        load(&stats.given_up),
        pool.active_connections()
    );
    keeper.stop();
    drop(pool);
    let reauth = tokio::time::timeout(Duration::from_secs(1), reauth)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    println!("{line} reauth={reauth}");
}
