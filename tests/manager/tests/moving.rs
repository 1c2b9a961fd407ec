//! Moving connections between stores: files → Redis → PostgreSQL → encrypted PostgreSQL, each
//! set with its version and marks, never over a newer set or a removal, and resumable.

use std::time::{Duration, SystemTime};
use tokenkit::{
    Copied, EncryptedStore, EncryptionKey, FileStore, KeeperConfig, ManagerConfig, Origin,
    PoolConfig, PostgresStore, RedisStore, Reported, Stored, TokenPool, TokenStore,
    copy_connections,
};
use tokenkit_manager_tests::workers::renewed;
use tokenkit_manager_tests::{Postgres, Redis, expired, fleetbank, scratch};
use tokenkit_mock::MockServer;

const TTL: Duration = Duration::from_secs(5);

/// A store's set of `key`, without the reader's clock.
async fn held(store: &impl TokenStore, key: &str) -> Option<Stored> {
    store.load(key).await.unwrap().map(|mut s| {
        s.read_at = None;
        s
    })
}

/// Whether every connection under `conn/` reads the same in both stores.
async fn same(a: &impl TokenStore, b: &impl TokenStore, keys: &[String], what: &str) {
    for key in keys {
        assert_eq!(held(a, key).await, held(b, key).await, "{what}: {key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_move_from_files_to_redis_to_postgres_to_encrypted_postgres() {
    let dir = scratch("moving");
    let files = FileStore::new(&dir).unwrap();
    let keys: Vec<String> = (0..40).map(|i| format!("conn/{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        files
            .save(key, &expired(&format!("rt-{i}")), None)
            .await
            .unwrap();
        if i % 3 == 0 {
            files
                .save(key, &expired(&format!("rt-{i}-b")), Some(1))
                .await
                .unwrap();
        }
    }
    // Marks travel with their sets: a refresh in flight, a dead set.
    let lock = files.try_lock("conn/1", TTL).await.unwrap().unwrap();
    assert!(files.mark_sending("conn/1", 1, &lock).await.unwrap());
    lock.release().await;
    let lock = files.try_lock("conn/2", TTL).await.unwrap().unwrap();
    assert!(
        files
            .mark_reported("conn/2", 1, Reported::Dead, &lock)
            .await
            .unwrap()
    );
    lock.release().await;
    files.save("other/x", &expired("rt"), None).await.unwrap();

    let redis_server = Redis::start();
    let redis = RedisStore::connect(&redis_server.url, "moved")
        .await
        .unwrap();
    let copied = copy_connections(&files, &redis, "conn/", TTL)
        .await
        .unwrap();
    assert_eq!(copied.copied, 40);
    same(&files, &redis, &keys, "files → redis").await;
    assert!(
        redis.load("other/x").await.unwrap().is_none(),
        "only the prefix moves"
    );
    assert!(held(&redis, "conn/1").await.unwrap().sending.is_some());
    assert!(held(&redis, "conn/2").await.unwrap().dead.is_some());

    // Run again (resumed after an interruption): nothing is written twice.
    let again = copy_connections(&files, &redis, "conn/", TTL)
        .await
        .unwrap();
    assert_eq!(
        again,
        Copied {
            already_there: 40,
            ..Copied::default()
        }
    );

    // The fleet moved on meanwhile: newer sets at the source are copied over older ones; a
    // set already newer at the target, and one removed there, stay as they are.
    files
        .save("conn/5", &expired("rt-5-new"), Some(1))
        .await
        .unwrap();
    redis
        .save("conn/7", &expired("rt-7-target"), Some(1))
        .await
        .unwrap();
    let lock = redis.try_lock("conn/8", TTL).await.unwrap().unwrap();
    redis.delete("conn/8", &lock).await.unwrap();
    lock.release().await;
    let caught_up = copy_connections(&files, &redis, "conn/", TTL)
        .await
        .unwrap();
    assert_eq!(caught_up.copied, 1, "{caught_up:?}");
    assert_eq!(caught_up.removed_at_target, 1, "{caught_up:?}");
    assert_eq!(held(&redis, "conn/5").await, held(&files, "conn/5").await);
    let kept = held(&redis, "conn/7").await.unwrap();
    assert_eq!(kept.version, 2);
    assert_eq!(kept.tokens.refresh_token.unwrap().expose(), "rt-7-target");
    assert!(
        redis.load("conn/8").await.unwrap().is_none(),
        "a removal stays"
    );

    let postgres_server = Postgres::start();
    let postgres = PostgresStore::connect(&postgres_server.url).await.unwrap();
    let moved = copy_connections(&redis, &postgres, "conn/", TTL)
        .await
        .unwrap();
    assert_eq!(moved.copied, 39);
    let left: Vec<String> = keys.iter().filter(|k| *k != "conn/8").cloned().collect();
    same(&redis, &postgres, &left, "redis → postgres").await;

    let sealed_db = PostgresStore::connect(&postgres_server.database("sealed"))
        .await
        .unwrap();
    let key = EncryptionKey::new("k1", &[4u8; 32]).unwrap();
    let sealed = EncryptedStore::new(sealed_db.clone(), key);
    let moved = copy_connections(&postgres, &sealed, "conn/", TTL)
        .await
        .unwrap();
    assert_eq!(moved.copied, 39);
    same(&postgres, &sealed, &left, "postgres → encrypted postgres").await;
    // What the encrypted store wrote holds no token; what the plain one wrote does.
    let dump = "SELECT string_agg(encode(data, 'escape'), '') FROM tokenkit_sets";
    assert!(
        postgres_server
            .psql_at("postgres", dump)
            .contains("rt-5-new")
    );
    let sealed_dump = postgres_server.psql_at("sealed", dump);
    assert!(!sealed_dump.is_empty());
    for i in 0..40 {
        let token = format!("rt-{i}\"");
        assert!(
            !sealed_dump.contains(&token),
            "the sealed rows hold no refresh token ({token}): {sealed_dump}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Connections of the keeper test, and where the pool keeps them.
const KEPT: usize = 30;
const PREFIX: &str = "conn:fleetbank:";

fn pool<S: TokenStore>(mock: &MockServer, store: S) -> TokenPool<tokenkit_fleetbank::Client, S> {
    let client = tokenkit_fleetbank::Client::builder("fleet-client", "fleet-secret")
        .base_url(mock.base_url())
        .http_config(tokenkit::HttpConfig {
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_millis(500),
            ..tokenkit::HttpConfig::default()
        })
        .build()
        .unwrap();
    let config = PoolConfig {
        manager: ManagerConfig {
            // Longer than a refresh token's life: every set is due again once renewed.
            refresh_token_margin: Duration::from_secs(3600),
            lock_poll: Duration::from_millis(10),
            lock_ttl: Duration::from_secs(3),
            ..ManagerConfig::default()
        },
        ..PoolConfig::default()
    };
    TokenPool::new(client, store, config).unwrap()
}

/// One move with a keeper renewing every connection of `from` all along: a copy while it
/// runs, more renewals at the source, the keeper stopped (the fleet switching over), a
/// second copy catching up; then both stores hold the same sets and the provider saw no
/// token twice.
async fn hop<F: TokenStore + Clone, T: TokenStore>(
    mock: &MockServer,
    from: &F,
    to: &T,
    what: &str,
) {
    let keys: Vec<String> = (0..KEPT).map(|i| format!("{PREFIX}c{i}")).collect();
    let pool = pool(mock, from.clone());
    let keeper = pool
        .keep(KeeperConfig {
            interval: Duration::from_millis(20),
            jitter: Duration::ZERO,
            concurrency: 8,
            per_second: 300,
            batch: 64,
            ..KeeperConfig::default()
        })
        .unwrap();
    // Copied amid the keeper's first wave (a third of it renewed), then its second wave.
    let start = mock.authority_stats().refreshes;
    renewed(mock, start + (KEPT / 3) as u64).await;
    let before = mock.authority_stats().refreshes;
    let bulk = copy_connections(from, to, PREFIX, TTL).await.unwrap();
    let during = mock.authority_stats().refreshes - before;
    assert_eq!(bulk.copied + bulk.already_there, KEPT, "{what}: {bulk:?}");
    renewed(mock, start + (KEPT + KEPT / 3) as u64).await;
    keeper.shutdown().await;
    drop(pool);
    let caught_up = copy_connections(from, to, PREFIX, TTL).await.unwrap();
    let stats = mock.authority_stats();
    println!(
        "{what}: {bulk:?} while kept ({during} renewals meanwhile), then {caught_up:?}; provider {stats:?}"
    );
    assert!(
        caught_up.copied > 0,
        "{what}: the source did not move on: {caught_up:?}"
    );
    assert_eq!(caught_up.copied + caught_up.already_there, KEPT, "{what}");
    same(from, to, &keys, what).await;
    assert_eq!(stats.reuses, 0, "{what}: a refresh token was sent twice");
    assert_eq!(stats.rejected, 0, "{what}: a spent token was sent");
}

/// Files → Redis → PostgreSQL → encrypted PostgreSQL, a keeper renewing every connection of
/// each hop's source while it is copied: nothing sent twice, nothing lost, and the last store
/// renews every connection at once (its sets hold the live refresh tokens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_move_while_a_keeper_renews_them_at_the_source() {
    let mock = fleetbank().await;
    let dir = scratch("moving-kept");
    let files = FileStore::new(&dir).unwrap();
    let now = SystemTime::now();
    for i in 0..KEPT {
        let mut set = expired(&mock.new_family().unwrap());
        set.expires_at = Some(now + Duration::from_secs(3600));
        set.refresh_expires_at = Some(now + Duration::from_secs(20));
        set.origin = Some(Origin::Application);
        files
            .save(&format!("{PREFIX}c{i}"), &set, None)
            .await
            .unwrap();
    }
    let redis_server = Redis::start();
    let redis = RedisStore::connect(&redis_server.url, "kept")
        .await
        .unwrap();
    hop(&mock, &files, &redis, "files → redis").await;
    let postgres_server = Postgres::start();
    let postgres = PostgresStore::connect(&postgres_server.url).await.unwrap();
    hop(&mock, &redis, &postgres, "redis → postgres").await;
    let sealed_db = PostgresStore::connect(&postgres_server.database("sealed"))
        .await
        .unwrap();
    let sealed = EncryptedStore::new(sealed_db, EncryptionKey::new("k1", &[9u8; 32]).unwrap());
    hop(&mock, &postgres, &sealed, "postgres → encrypted postgres").await;

    let before = mock.authority_stats();
    let last = pool(&mock, sealed);
    for i in 0..KEPT {
        last.force_refresh(&format!("c{i}")).await.unwrap();
    }
    let after = mock.authority_stats();
    assert_eq!(after.refreshes, before.refreshes + KEPT as u64);
    assert_eq!(after.reuses, 0);
    assert_eq!(after.rejected, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
