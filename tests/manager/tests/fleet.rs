//! Several replicas keep thousands of connections alive with their keepers, sharing a store:
//! real processes (the `keeper-worker` binary), a real redis-server, and a mock provider whose
//! one-time refresh tokens die 20 s after they are issued unless used (Fleetbank). Nobody
//! asks for a token: only the keepers keep the connections alive. One replica is killed with
//! SIGKILL mid-run.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use tokenkit::{FileStore, Origin, RedisStore, TokenStore};
use tokenkit_manager_tests::{Redis, expired, scratch, workspace};
use tokenkit_mock::MockServer;

/// One fleet at a time: each needs the machine's cores to itself.
static ONE_FLEET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Refresh this long before a refresh token dies (of its 20 s).
const MARGIN_MS: &str = "10000";

fn worker(base_url: &str, store: &str, seconds: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keeper-worker"))
        .args([base_url, store, &seconds.to_string(), MARGIN_MS])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("keeper-worker")
}

/// `key=value` counts of a worker's last line.
fn counts(output: &str) -> std::collections::HashMap<String, u64> {
    output
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

async fn fleetbank() -> MockServer {
    let spec = workspace().join("tests/fixtures/specs/fleetbank.yaml");
    let mock = MockServer::start(tokenkit_mock::load(spec).unwrap())
        .await
        .unwrap();
    mock.enforce_rotation(3600, Duration::ZERO);
    mock.quiet();
    mock
}

/// Seeds `n` connections, each its own family, whose refresh tokens die 20 s from now.
async fn seed(store: &(impl TokenStore + Clone), mock: &MockServer, n: usize) {
    let dies = SystemTime::now() + Duration::from_secs(20);
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let sets: Vec<(String, tokenkit::TokenSet)> = chunk
            .iter()
            .map(|i| {
                let mut set = expired(&mock.new_family().unwrap());
                set.expires_at = Some(SystemTime::now() + Duration::from_secs(3600));
                set.refresh_expires_at = Some(dies);
                set.origin = Some(Origin::Application);
                (format!("conn:c{i}"), set)
            })
            .collect();
        let store = store.clone();
        tasks.spawn(async move {
            for (key, set) in sets {
                store.save(&key, &set, None).await.unwrap();
            }
        });
    }
    tasks.join_all().await;
}

/// Runs three replicas for `seconds`, killing the first after `kill_after`; returns the
/// survivors' counts and when the kill happened.
async fn fleet(
    base_url: &str,
    store: &str,
    seconds: u64,
    kill_after: Duration,
) -> (Vec<std::collections::HashMap<String, u64>>, Instant) {
    let started = Instant::now();
    let mut workers: Vec<Child> = (0..3).map(|_| worker(base_url, store, seconds)).collect();
    tokio::time::sleep(kill_after).await;
    workers[0].kill().expect("SIGKILL");
    let killed = Instant::now();
    let _ = workers[0].wait();
    let mut survivors = Vec::new();
    for worker in workers.into_iter().skip(1) {
        let output = worker.wait_with_output().expect("worker output");
        assert!(output.status.success(), "a replica failed");
        survivors.push(counts(&String::from_utf8_lossy(&output.stdout)));
    }
    eprintln!("fleet ran {:?}", started.elapsed());
    (survivors, killed)
}

/// What every fleet run must show: nothing lost to an expired refresh token, no token sent
/// twice, each connection refreshed about once per 10 s period (never twice in one), and every
/// stored refresh token alive at the end, except connections whose refresh the kill cut off.
async fn check(store: &impl TokenStore, mock: &MockServer, n: usize, seconds: u64, reauth: u64) {
    let stats = mock.authority_stats();
    eprintln!("{n} connections over {seconds} s: {stats:?}, re-authentication required {reauth}");
    assert_eq!(
        stats.expired, 0,
        "connections lost to an expired refresh token: {stats:?}"
    );
    assert_eq!(
        stats.reuses, 0,
        "a one-time refresh token sent twice: {stats:?}"
    );
    let by_family = mock.refreshes_by_family();
    let most = by_family.iter().max().copied().unwrap_or_default();
    // A period is ~10 s (20 s tokens, 10 s margin): never more than one refresh per period.
    assert!(
        most <= seconds / 10 + 1,
        "a connection refreshed {most} times in {seconds} s"
    );
    let alive = {
        let now = SystemTime::now();
        let mut alive = 0;
        for i in 0..n {
            let stored = store.load(&format!("conn:c{i}")).await.unwrap().unwrap();
            if stored.tokens.refresh_expires_at.is_some_and(|at| at > now) {
                alive += 1;
            }
        }
        alive
    };
    // The replica killed mid-refresh may have had the provider rotate a token whose answer it
    // never stored: those connections must be re-authenticated (their one-time token may be
    // spent), and no more than it had refreshes in flight (64).
    let lost = n - alive;
    assert!(
        lost as u64 <= reauth.max(64),
        "{lost} connections not alive, {reauth} reported"
    );
    assert!(lost <= 64, "{lost} connections lost to the kill");
    eprintln!("alive at the end: {alive} of {n}; lost to the kill: {lost}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_keep_ten_thousand_connections_alive_in_redis() {
    let n: usize = std::env::var("FLEET_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let _one = ONE_FLEET.lock().await;
    let seconds = 25;
    let redis = Redis::start();
    let mock = fleetbank().await;
    let store = RedisStore::connect(&redis.url, "fleet").await.unwrap();
    seed(&store, &mock, n).await;
    let (survivors, killed) = fleet(
        &mock.base_url(),
        &format!("redis:{}", redis.url),
        seconds,
        Duration::from_secs(12),
    )
    .await;
    let reauth: u64 = survivors.iter().map(|c| c["reauth"]).sum();
    eprintln!(
        "survivors: {survivors:?}; killed at +12 s, {:?} ago",
        killed.elapsed()
    );
    check(&store, &mock, n, seconds, reauth).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_keep_connections_alive_in_one_directory() {
    let n: usize = std::env::var("FLEET_FILE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let _one = ONE_FLEET.lock().await;
    let seconds = 25;
    let dir = scratch("fleet-files");
    let mock = fleetbank().await;
    let store = FileStore::new(&dir).unwrap();
    seed(&store, &mock, n).await;
    let (survivors, _) = fleet(
        &mock.base_url(),
        &format!("file:{}", dir.display()),
        seconds,
        Duration::from_secs(12),
    )
    .await;
    let reauth: u64 = survivors.iter().map(|c| c["reauth"]).sum();
    check(&store, &mock, n, seconds, reauth).await;
    std::fs::remove_dir_all(&dir).unwrap();
}
