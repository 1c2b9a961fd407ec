//! A replica of an application that keeps Fleetbank connections alive with a pool's keeper,
//! for the fleet tests: `keeper-worker <base-url> <file:DIR | redis:URL | postgres:URL> <seconds> <margin-ms>`.
//!
//! Prints a line per event as it happens (`refreshed <connection>`, `reauth <connection>`,
//! `expiring <connection>`), so that a replica killed mid-run leaves what it reported; then,
//! when the time is up, `kept=N failed=N given_up=N active=N` and the counters its metrics
//! recorder holds (`metric:<name>:<outcome>=N`).

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::time::Duration;
use tokenkit::{
    FileStore, KeeperConfig, ManagerConfig, PoolConfig, PostgresStore, RedisStore, TokenEvent,
    TokenPool, TokenStore,
};

#[tokio::main]
async fn main() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the process's only recorder");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base_url, store, seconds, margin_ms] = args.as_slice() else {
        eprintln!(
            "usage: keeper-worker <base-url> <file:DIR|redis:URL|postgres:URL> <seconds> <margin-ms>"
        );
        std::process::exit(2);
    };
    let seconds: f64 = seconds.parse().expect("seconds");
    let margin = Duration::from_millis(margin_ms.parse().expect("margin"));
    if let Some(dir) = store.strip_prefix("file:") {
        let store = FileStore::new(dir).expect("file store");
        run(base_url, store, seconds, margin).await;
    } else if let Some(url) = store.strip_prefix("redis:") {
        let store = RedisStore::connect(url, "fleet")
            .await
            .expect("redis store");
        run(base_url, store, seconds, margin).await;
    } else if let Some(url) = store.strip_prefix("postgres:") {
        let store = PostgresStore::connect(url).await.expect("postgres store");
        run(base_url, store, seconds, margin).await;
    } else {
        eprintln!("unknown store {store}");
        std::process::exit(2);
    }
    println!("{}", counters(&snapshotter));
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
        // Room for every event of a run: a lagging receiver would miss some.
        event_capacity: 1 << 16,
        ..PoolConfig::default()
    };
    let pool = TokenPool::new(client, store, config).expect("pool");
    let mut events = pool.subscribe();
    let keeper = pool
        .keep(KeeperConfig {
            interval: Duration::from_millis(200),
            jitter: Duration::from_millis(200),
            concurrency: 64,
            per_second: 5000,
            batch: 256,
            ..KeeperConfig::default()
        })
        .expect("keeper");
    let printer = tokio::spawn(async move {
        loop {
            let line = match events.recv().await {
                Ok(TokenEvent::Refreshed { connection, .. }) => format!("refreshed {connection}"),
                Ok(TokenEvent::ReauthenticationRequired { connection, .. }) => {
                    format!("reauth {connection}")
                }
                Ok(TokenEvent::RefreshTokenExpiring { connection, .. }) => {
                    format!("expiring {connection}")
                }
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => format!("lagged {n}"),
                Err(_) => return,
            };
            // A line at a time (stdout is line-buffered): a kill loses at most the one being
            // written.
            println!("{line}");
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
    keeper.shutdown().await;
    drop(pool);
    let _ = tokio::time::timeout(Duration::from_secs(1), printer).await;
    println!("{line}");
}

/// The recorder's counters, as `metric:<name>:<outcome>=N` (labels other than the outcome are
/// the provider's, the same for all).
fn counters(snapshotter: &Snapshotter) -> String {
    let mut out = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let DebugValue::Counter(n) = value {
            let (_, key) = key.into_parts();
            let outcome = key
                .labels()
                .find(|l| l.key() == "outcome")
                .map_or("", |l| l.value());
            out.push(format!("metric:{}:{outcome}={n}", key.name()));
        }
    }
    out.join(" ")
}
