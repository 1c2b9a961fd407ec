//! Faults caused for real, with worker processes sharing a store against a provider that
//! revokes the token family at the first reused refresh token. Each test counts what the
//! provider saw (every refresh token must be sent at most once) and checks that the set left
//! in the store is still a live one (no issued set was lost). RELIABILITY.md tabulates them.

use std::process::Command;
use std::time::{Duration, Instant};
use tokenkit::{FileStore, RedisStore, TokenStore};
use tokenkit_manager_tests::workers::{
    check_provider, check_stored_set_is_live, collect, errors_after, fleet, now_ms, recovery_ms,
    renewed,
};
use tokenkit_manager_tests::{Redis, RedisCluster, expired, scratch};

/// A `RedisStore` on `redis`, and the worker's argument for it.
async fn redis_store(redis: &Redis) -> (RedisStore, String) {
    let store = RedisStore::connect(&redis.url, "tokenkit-test")
        .await
        .unwrap();
    (store, format!("redis:{}", redis.url))
}

/// Redis killed (SIGKILL) in the middle of a run and started again on its append-only file:
/// the fleet serves or fails retryably meanwhile and is healthy within 2 s of Redis's return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_run_loses_nothing_and_heals_within_two_seconds() {
    let mut redis = Redis::start_persistent();
    let (store, arg) = redis_store(&redis).await;
    let (mock, store, children) = fleet(store, &arg, Duration::from_millis(2), 4, "7", &[]).await;
    renewed(&mock, 5).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.start_again();
    let back = now_ms();
    let reports = tokio::task::block_in_place(|| collect(children));
    check_provider(&mock, &reports, "redis restart");
    let recovery = recovery_ms(&reports, back);
    println!("redis restart: healthy {recovery} ms after Redis came back");
    assert!(
        recovery <= 2000,
        "errors went on {recovery} ms after Redis came back:\n{}",
        errors_after(&reports, back)
    );
    check_stored_set_is_live(store, &mock, "redis restart").await;
}

/// A 600 ms lease and at most 200 ms between retries: a token marked as in flight is given up
/// (re-authenticated) 1.4 s after it was marked.
const SHORT_GRACE: &[&str] = &["--lock-ttl-ms", "600", "--max-backoff-ms", "200"];

/// Redis restarted empty mid-run (no persistence): every process has seen a newer set than
/// the store holds (none), so nobody sends a stale token; a holder whose answer comes back
/// writes it back instead of dropping it, or the credential is re-authenticated once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_empty_mid_run_reuses_nothing() {
    let mut redis = Redis::start();
    let (store, arg) = redis_store(&redis).await;
    let (mock, store, children) =
        fleet(store, &arg, Duration::from_millis(20), 3, "5", SHORT_GRACE).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = mock.authority_stats();
    redis.kill();
    redis.start_again();
    let reports = tokio::task::block_in_place(|| collect(children));
    check_provider(&mock, &reports, "redis restarted empty");
    let after = mock.authority_stats();
    println!("redis restarted empty: before {before:?}, after {after:?}");
    assert!(
        after.refreshes + after.grants > before.refreshes + before.grants,
        "nothing was renewed after the restart"
    );
    check_stored_set_is_live(store, &mock, "redis restarted empty").await;
}

/// Redis restarted mid-run from an RDB snapshot taken a second earlier: the store goes back
/// to a set whose refresh token has been spent since, with no mark. Processes that have seen
/// a newer set never send its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restored_from_an_older_snapshot_reuses_nothing() {
    let mut redis = Redis::start_snapshotting();
    let (store, arg) = redis_store(&redis).await;
    let (mock, store, children) =
        fleet(store, &arg, Duration::from_millis(20), 3, "6", SHORT_GRACE).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.snapshot("older.rdb");
    let at_snapshot = mock.authority_stats();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = mock.authority_stats();
    assert!(
        before.refreshes > at_snapshot.refreshes,
        "no refresh between the snapshot and the restart: {before:?}"
    );
    redis.restart_from_snapshot("older.rdb");
    let reports = tokio::task::block_in_place(|| collect(children));
    check_provider(&mock, &reports, "redis restored from an older snapshot");
    let after = mock.authority_stats();
    println!(
        "redis restored from an older snapshot: at the snapshot {at_snapshot:?}, before the restart {before:?}, after {after:?}"
    );
    assert!(after.refreshes + after.grants > before.refreshes + before.grants);
    check_stored_set_is_live(store, &mock, "redis restored from an older snapshot").await;
}

/// Redis stalled longer than the lock's lifetime (DEBUG SLEEP, then CLIENT PAUSE) while
/// holders renew and write: leases expire, holders stop sending, fenced writes refuse the
/// holder that lost its lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stalled_longer_than_the_lock_never_lets_two_holders_send() {
    let redis = Redis::start_persistent();
    let (store, arg) = redis_store(&redis).await;
    let short_lease = ["--force", "--lock-ttl-ms", "600"];
    let (mock, store, children) =
        fleet(store, &arg, Duration::from_millis(50), 3, "8", &short_lease).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let slept = redis.cli(&["DEBUG", "SLEEP", "1.5"]);
    assert!(slept.contains("OK"), "{slept}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let paused = redis.cli(&["CLIENT", "PAUSE", "1500", "ALL"]);
    assert!(paused.contains("OK"), "{paused}");
    let reports = tokio::task::block_in_place(|| collect(children));
    check_provider(&mock, &reports, "redis stall");
    check_stored_set_is_live(store, &mock, "redis stall").await;
}

/// The process holding the lock is stopped (SIGSTOP) for longer than the lock's lifetime,
/// then continued: another takes over meanwhile, and the stopped one, unable to prove it
/// still holds the lock, sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_lock_holder_never_sends_after_it_continues() {
    let redis = Redis::start();
    let (store, arg) = redis_store(&redis).await;
    let short_lease = ["--force", "--lock-ttl-ms", "600"];
    let (mock, store, children) =
        fleet(store, &arg, Duration::from_millis(2), 3, "6", &short_lease).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The lock's value starts with its holder's process id.
    let deadline = Instant::now() + Duration::from_secs(3);
    let holder = loop {
        let value = redis.cli(&["GET", "tokenkit-test:{shared}:lock"]);
        if let Some(pid) = value
            .trim()
            .split('-')
            .next()
            .and_then(|p| p.parse::<u32>().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "nobody took the lock");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(children.iter().any(|c| c.id() == holder));
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([name, &holder.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    signal("-STOP");
    let during = mock.authority_stats();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let taken_over = mock.authority_stats().refreshes > during.refreshes;
    signal("-CONT");
    let reports = tokio::task::block_in_place(|| collect(children));
    check_provider(&mock, &reports, "holder stopped");
    assert!(taken_over, "nobody refreshed while the holder was stopped");
    check_stored_set_is_live(store, &mock, "holder stopped").await;
}

/// The FileStore's directory and its sets' files turn read-only (chattr +i, which binds root
/// too) mid-run: no new file, no write in place. Refreshed sets are served from memory and
/// stored once they are writable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_directory_drops_no_issued_set() {
    let dir = scratch("read-only");
    let arg = format!("file:{}", dir.display());
    let store = FileStore::new(&dir).unwrap();
    let set_file = store.path_of("shared");
    let (mock, store, children) = fleet(store, &arg, Duration::from_millis(2), 3, "6", &[]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let read_only = |on: bool| {
        let flag = if on { "+i" } else { "-i" };
        // The file first when locking, the directory first when unlocking.
        let mut order = [(&set_file, "400", "600"), (&dir, "500", "700")];
        if !on {
            order.reverse();
        }
        for (path, locked, open) in order {
            let chattr = Command::new("chattr").arg(flag).arg(path).status();
            if !matches!(chattr, Ok(s) if s.success()) {
                // Not root, or no chattr: permissions bind everyone else.
                let mode = if on { locked } else { open };
                let status = Command::new("chmod").arg(mode).arg(path).status().unwrap();
                assert!(status.success());
            }
        }
    };
    read_only(true);
    let refused = std::fs::write(dir.join("probe"), "x").is_err()
        && std::fs::OpenOptions::new()
            .write(true)
            .open(&set_file)
            .is_err();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    read_only(false);
    let reports = tokio::task::block_in_place(|| collect(children));
    assert!(
        refused,
        "the directory or the set's file did not turn read-only"
    );
    check_provider(&mock, &reports, "read-only directory");
    check_stored_set_is_live(store, &mock, "read-only directory").await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The store on a three-master Redis Cluster: processes share it as they share one server,
/// and a credential's keys live in one slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_redis_cluster_never_reuse_a_refresh_token() {
    let cluster = RedisCluster::start();
    let nodes: Vec<&str> = cluster.urls.iter().map(String::as_str).collect();
    let store = RedisStore::connect_cluster(&nodes, "tokenkit-test")
        .await
        .unwrap();
    let arg = format!("redis-cluster:{}", cluster.urls.join(","));
    let (mock, store, children) = fleet(store, &arg, Duration::from_millis(2), 3, "4", &[]).await;
    let reports = tokio::task::block_in_place(|| collect(children));
    check_provider(&mock, &reports, "redis cluster");
    for r in &reports {
        assert_eq!(r.errors, 0, "{r:?}");
    }
    assert_eq!(
        cluster.nodes_with_keys(),
        1,
        "a credential's keys share one slot"
    );
    let stored = store.load("shared").await.unwrap().unwrap();
    assert_eq!(stored.version, mock.authority_stats().refreshes + 1);
    check_stored_set_is_live(store, &mock, "redis cluster").await;
}

/// Redis drops the store's idle connections (`CLIENT KILL`, as a proxy or failover would): the
/// next command reconnects, with no process restart.
#[tokio::test]
async fn a_dropped_connection_heals_by_itself() {
    let redis = Redis::start();
    let store = RedisStore::connect(&redis.url, "tokenkit-test")
        .await
        .unwrap();
    store.save("k", &expired("rt-1"), None).await.unwrap();
    let killed = redis.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
    assert!(killed.trim().parse::<u32>().unwrap_or(0) >= 1, "{killed}");
    let started = Instant::now();
    let loaded = loop {
        match store.load("k").await {
            Ok(found) => break found,
            Err(_) if started.elapsed() < Duration::from_secs(2) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("not healed within 2 s: {e}"),
        }
    };
    assert_eq!(loaded.unwrap().version, 1);
    println!("dropped connection: healed in {:?}", started.elapsed());
}
