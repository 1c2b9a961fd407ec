//! A replica whose clock runs minutes fast (a real process under `faketime`, sharing a real
//! redis-server) must not take live connections for dead: marks are stamped and judged by
//! Redis's clock, and a refresh token's stated death gets `clock_skew` of room.

use std::process::Command;
use std::time::{Duration, SystemTime};
use tokenkit::{Origin, RedisStore, TokenStore};
use tokenkit_manager_tests::{Redis, expired, one_time_provider};

/// Runs the clock worker with its clock `offset` ahead ("+5m"), or as it is; what it printed.
fn run_worker(offset: Option<&str>, base_url: &str, redis: &str, key: &str) -> String {
    let worker = env!("CARGO_BIN_EXE_clock-worker");
    let mut command = match offset {
        Some(offset) => {
            let mut c = Command::new("faketime");
            // Wall clock only: timers and timeouts run on the monotonic clock as they are.
            c.env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .args(["-f", offset, worker]);
            c
        }
        None => Command::new(worker),
    };
    let output = command
        .args([base_url, redis, key])
        .output()
        .expect("faketime (scripts/test installs it) and the clock worker");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_clock_runs_fast_takes_no_live_connection_for_dead() {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let redis = Redis::start();
    let store = RedisStore::connect(&redis.url, "clock").await.unwrap();
    let connection = |family: &str, dies_in: u64| {
        let mut set = expired(family);
        set.origin = Some(Origin::AuthorizationCode);
        set.refresh_expires_at = Some(SystemTime::now() + Duration::from_secs(dies_in));
        set
    };
    // The worker's clock must really run five minutes fast.
    let skewed = Command::new("faketime")
        .args(["-f", "+5m", "date", "+%s"])
        .output()
        .expect("faketime");
    let fast: u64 = String::from_utf8_lossy(&skewed.stdout)
        .trim()
        .parse()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(fast >= now + 290, "faketime did not move the clock");

    // A refresh token that lives two more minutes: a clock five minutes fast would call it
    // dead by its stated time; the store's clock says it lives.
    store
        .save("live", &connection(&mock.new_family().unwrap(), 120), None)
        .await
        .unwrap();
    assert_eq!(
        run_worker(Some("+5m"), &mock.base_url(), &redis.url, "live"),
        "ok"
    );
    let live = store.load("live").await.unwrap().unwrap();
    assert_eq!((live.version, live.dead), (2, None), "{live:?}");

    // A refresh marked as sent a moment ago (its sender's answer may still come): a clock
    // five minutes fast would take the mark for past the in-flight grace and the connection
    // for dead, fleet-wide. It waits instead, as every replica does.
    let family = mock.new_family().unwrap();
    store
        .save("sending", &connection(&family, 3600), None)
        .await
        .unwrap();
    let lock = store
        .try_lock("sending", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert!(store.mark_sending("sending", 1, &lock).await.unwrap());
    lock.release().await;
    for offset in [None, Some("+5m")] {
        assert_eq!(
            run_worker(offset, &mock.base_url(), &redis.url, "sending"),
            "in_flight",
            "{offset:?}"
        );
    }
    let sending = store.load("sending").await.unwrap().unwrap();
    assert_eq!(
        sending.dead, None,
        "a fast clock marked a live connection dead"
    );
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.refreshes, stats.reuses, stats.rejected),
        (1, 0, 0),
        "{stats:?}"
    );
}
