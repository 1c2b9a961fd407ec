//! Several OS processes share one store and one credential, over many expiry cycles, against a
//! provider that revokes the family at the first reused refresh token; and processes killed
//! mid-refresh never leave a torn store.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokenkit::{FileStore, RedisStore, TokenStore};
use tokenkit_manager_tests::{Redis, expired, one_time_provider, scratch};
use tokenkit_mock::MockServer;

const WORKERS: usize = 4;
const SECONDS: &str = "4";

fn worker(base_url: &str, store: &str, seconds: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_manager-worker"));
    command
        .args([base_url, store, seconds])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `WORKERS` processes for `seconds` to the end and checks each one reported no error.
fn run_workers(mock: &MockServer, store: &str, seconds: &str) {
    let children: Vec<Child> = (0..WORKERS)
        .map(|_| {
            worker(&mock.base_url(), store, seconds, &[])
                .spawn()
                .expect("worker")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("worker output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a worker failed: {stdout} {stderr}");
        assert!(stdout.contains("errors=0"), "{stdout}");
    }
}

fn check_provider(mock: &MockServer) {
    let stats = mock.authority_stats();
    println!("provider saw {stats:?}");
    assert_eq!(stats.reuses, 0, "a refresh token was sent twice: {stats:?}");
    assert_eq!(stats.rejected, 0, "{stats:?}");
    // Tokens live 1 s and are refreshed every half second or so: many expiry cycles.
    assert!(
        stats.refreshes >= 5,
        "too few cycles to mean anything: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_file_store_never_reuse_a_refresh_token() {
    let dir = scratch("processes");
    let (mock, first) = one_time_provider(1, Duration::from_millis(2)).await;
    let store = FileStore::new(&dir).unwrap();
    store.save("shared", &expired(&first), None).await.unwrap();
    let store_arg = format!("file:{}", dir.display());
    let mock_ref = &mock;
    tokio::task::block_in_place(|| run_workers(mock_ref, &store_arg, SECONDS));
    check_provider(&mock);
    let stored = store.load("shared").await.unwrap().unwrap();
    assert_eq!(
        stored.version,
        mock.authority_stats().refreshes + 1,
        "every refresh was persisted once"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_redis_store_never_reuse_a_refresh_token() {
    let redis = Redis::start();
    let (mock, first) = one_time_provider(1, Duration::from_millis(2)).await;
    let store = RedisStore::connect(&redis.url, "tokenkit-test")
        .await
        .unwrap();
    store.save("shared", &expired(&first), None).await.unwrap();
    let store_arg = format!("redis:{}", redis.url);
    let mock_ref = &mock;
    tokio::task::block_in_place(|| run_workers(mock_ref, &store_arg, SECONDS));
    check_provider(&mock);
    let stored = store.load("shared").await.unwrap().unwrap();
    assert_eq!(
        stored.version,
        mock.authority_stats().refreshes + 1,
        "every refresh was persisted once"
    );
}

#[tokio::test]
async fn redis_compare_and_set_refuses_a_stale_writer() {
    let redis = Redis::start();
    let store = RedisStore::connect(&redis.url, "cas").await.unwrap();
    use tokenkit::Saved;
    assert_eq!(
        store.save("k", &expired("rt-1"), None).await.unwrap(),
        Saved::Written(1)
    );
    assert_eq!(
        store.save("k", &expired("rt-2"), Some(1)).await.unwrap(),
        Saved::Written(2)
    );
    // A replica that read version 1 tries to write: refused, the newer set stays.
    assert_eq!(
        store
            .save("k", &expired("rt-stale"), Some(1))
            .await
            .unwrap(),
        Saved::Conflict(Some(2))
    );
    assert_eq!(
        store.save("k", &expired("rt-stale"), None).await.unwrap(),
        Saved::Conflict(Some(2))
    );
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(stored.tokens.refresh_token.unwrap().expose(), "rt-2");

    let ttl = Duration::from_millis(600);
    let lock = store.try_lock("k", ttl).await.unwrap().expect("free");
    assert!(store.try_lock("k", ttl).await.unwrap().is_none(), "held");
    lock.release().await;
    // A live holder keeps the lock past its ttl: it is renewed while held.
    let long = store.try_lock("k", ttl).await.unwrap().expect("released");
    tokio::time::sleep(ttl * 3).await;
    assert!(
        store.try_lock("k", ttl).await.unwrap().is_none(),
        "renewed while held"
    );
    // A holder that dies (dropped without release: no renewal, no delete) loses it at expiry.
    drop(long);
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(
        store.try_lock("k", ttl).await.unwrap().is_some(),
        "a dead holder's lock expires"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_refresh_never_leaves_a_torn_store() {
    let dir = scratch("crash");
    // Any success example will do: this is about the file, not the provider.
    let provider =
        tokenkit_mock::load(tokenkit_manager_tests::workspace().join("specs/easyship.yaml"))
            .unwrap();
    let mock = MockServer::start(provider).await.unwrap();
    let store = FileStore::new(&dir).unwrap();
    store
        .save("shared", &expired("rt-seed"), None)
        .await
        .unwrap();
    let store_arg = format!("file:{}", dir.display());

    let mut last_version = 1;
    let mut kills = 0;
    let mut marked = 0;
    let started = Instant::now();
    for i in 0..30u64 {
        let mut child = worker(&mock.base_url(), &store_arg, "10", &["--force"])
            .spawn()
            .expect("worker");
        // A pseudo-random point in the refresh-and-persist loop: 40 to 240 ms in (a loaded CI
        // machine may take tens of ms just to start the process).
        let wait = 40 + (i * 37 + started.elapsed().subsec_micros() as u64) % 200;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        kills += 1;
        let stored = store
            .load("shared")
            .await
            .expect("the store is readable after a kill");
        let stored = stored.expect("the store still holds a set");
        assert!(stored.version >= last_version, "the version went back");
        assert!(!stored.tokens.access_token.expose().is_empty());
        assert!(
            stored.tokens.refresh_token.is_some(),
            "a set lost its refresh token"
        );
        last_version = stored.version;
        if stored.sending.is_some() {
            // Killed between sending and storing: the token may be spent, and every later
            // process would re-authenticate. Do what a login would: store a new set.
            marked += 1;
            let saved = store
                .save("shared", &expired("rt-after-login"), Some(stored.version))
                .await
                .unwrap();
            assert!(matches!(saved, tokenkit::Saved::Written(_)));
            last_version += 1;
        }
    }
    println!("{marked} kills left a refresh marked as in flight");
    assert_eq!(kills, 30);
    println!("30 kills; the store reached version {last_version}");
    assert!(
        last_version > 10,
        "the workers refreshed and persisted between kills ({last_version})"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `WORKERS` processes share `store` while the family of its refresh token is revoked: one of
/// them tries the token once, then one client-credentials grant serves them all.
async fn revoked_family_gets_one_grant_across_processes(store: impl TokenStore, store_arg: &str) {
    let (mock, first) = one_time_provider(3600, Duration::from_millis(5)).await;
    store.save("shared", &expired(&first), None).await.unwrap();
    mock.revoke_families();
    let mock_ref = &mock;
    tokio::task::block_in_place(|| run_workers(mock_ref, store_arg, "2"));
    let stats = mock.authority_stats();
    println!("provider saw {stats:?}");
    assert_eq!(
        stats.grants, 1,
        "exactly one grant across processes: {stats:?}"
    );
    assert_eq!(
        stats.rejected, 1,
        "the revoked token was tried once: {stats:?}"
    );
    assert_eq!((stats.refreshes, stats.reuses), (0, 0), "{stats:?}");
    let stored = store.load("shared").await.unwrap().unwrap();
    assert_eq!(stored.version, 2, "the grant's set was stored once");
    assert!(stored.tokens.refresh_token.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_file_store_make_one_grant_for_a_revoked_family() {
    let dir = scratch("grant-processes");
    let store = FileStore::new(&dir).unwrap();
    revoked_family_gets_one_grant_across_processes(store, &format!("file:{}", dir.display())).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_redis_store_make_one_grant_for_a_revoked_family() {
    let redis = Redis::start();
    let store = RedisStore::connect(&redis.url, "tokenkit-test")
        .await
        .unwrap();
    revoked_family_gets_one_grant_across_processes(store, &format!("redis:{}", redis.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_grant_costs_one_more_grant_and_nothing_else() {
    // Nothing stored: the first worker takes the lock and sends the client-credentials grant;
    // it is killed while the answer is on its way. Its lock dies with it; the next worker
    // grants again and stores that set. No refresh token was at stake, so nothing is reused.
    let dir = scratch("grant-crash");
    let (mock, _) = one_time_provider(3600, Duration::from_millis(400)).await;
    let store = FileStore::new(&dir).unwrap();
    let store_arg = format!("file:{}", dir.display());
    let mut first = worker(&mock.base_url(), &store_arg, "10", &[])
        .spawn()
        .expect("worker");
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.authority_stats().grants == 0 {
        assert!(
            Instant::now() < deadline,
            "the first worker never sent its grant"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    assert!(
        store.load("shared").await.unwrap().is_none(),
        "the killed worker stored nothing"
    );
    let mock_ref = &mock;
    tokio::task::block_in_place(|| {
        let out = worker(&mock_ref.base_url(), &store_arg, "1", &[])
            .output()
            .expect("worker");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("errors=0"), "{stdout}");
    });
    let stats = mock.authority_stats();
    assert_eq!(
        stats.grants, 2,
        "one lost with the killed worker, one stored: {stats:?}"
    );
    assert_eq!((stats.reuses, stats.rejected), (0, 0), "{stats:?}");
    let stored = store.load("shared").await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
