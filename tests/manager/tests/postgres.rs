//! What only the PostgreSQL store has: its schema's migrations, its connection string's
//! password kept out of every error and `Debug`, and waiters woken by `NOTIFY` (the store
//! contract is checked in stores.rs, faults in postgres_faults.rs).

use std::time::Duration;
use tokenkit::{PostgresStore, TokenStore};
use tokenkit_manager_tests::{Postgres, expired};

#[tokio::test]
async fn no_postgres_error_or_debug_shows_the_password() {
    let postgres = Postgres::start();
    let port = postgres
        .url
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    for url in [
        // A refused login (trust is per user: this one does not exist).
        format!("postgres://nobody:SENTINEL-PW-1@127.0.0.1:{port}"),
        // Nothing listening.
        "postgres://u:SENTINEL-PW-2@127.0.0.1:1/db".to_owned(),
        // Not a connection string at all.
        "postgres://u:SENTINEL-PW-3@[::1/db?sslmode=".to_owned(),
    ] {
        let err = PostgresStore::connect(&url).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("SENTINEL"), "{shown}");
    }
    let url = postgres.url.replace("tokenkit@", "tokenkit:SENTINEL-PW-4@");
    let store = PostgresStore::connect(&url).await.unwrap();
    assert!(!format!("{store:?}").contains("SENTINEL"));
}

#[tokio::test]
async fn the_postgres_store_migrates_its_schema_and_refuses_a_newer_one() {
    let postgres = Postgres::start();
    let store = PostgresStore::connect(&postgres.url).await.unwrap();
    store.save("kept", &expired("rt"), None).await.unwrap();
    // Connecting again (another replica, a restart) finds the schema current and keeps the data.
    let again = PostgresStore::connect(&postgres.url).await.unwrap();
    assert_eq!(again.load("kept").await.unwrap().unwrap().version, 1);
    assert_eq!(
        postgres.psql("SELECT schema_version FROM tokenkit_meta"),
        "4"
    );
    // A database an older tokenkit made (version 1: its leases logged without the waiters'
    // mark, no keepers' claims) is upgraded in place.
    postgres.psql("ALTER TABLE tokenkit_locks SET LOGGED");
    postgres.psql("ALTER TABLE tokenkit_locks DROP COLUMN waited");
    postgres.psql("DROP TABLE tokenkit_claims");
    postgres.psql("UPDATE tokenkit_meta SET schema_version = 1");
    let upgraded = PostgresStore::connect(&postgres.url).await.unwrap();
    assert_eq!(upgraded.load("kept").await.unwrap().unwrap().version, 1);
    assert_eq!(
        postgres.psql(
            "SELECT schema_version || ' ' || string_agg(relname || '=' || relpersistence::text, ' ' \
             ORDER BY relname) FROM tokenkit_meta, pg_class \
             WHERE relname IN ('tokenkit_locks', 'tokenkit_claims') GROUP BY schema_version"
        ),
        "4 tokenkit_claims=u tokenkit_locks=u"
    );
    postgres.psql("UPDATE tokenkit_meta SET schema_version = 99");
    let err = PostgresStore::connect(&postgres.url).await.unwrap_err();
    assert!(err.message.contains("newer"), "{err}");
}

/// Waits until `waiter`'s listener hears `other`'s saves (it connects in the background).
async fn listening(waiter: &PostgresStore, other: &PostgresStore) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for i in 0.. {
        let key = format!("warm-{i}");
        let mut watch = waiter.watch(&key);
        other
            .save(&key, &expired(&format!("rt-{i}")), None)
            .await
            .unwrap();
        let heard = tokio::time::timeout(
            Duration::from_millis(500),
            watch.wait(Duration::from_secs(60)),
        );
        if heard.await.is_ok() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no notification ever came"
        );
    }
}

/// A watch of a key ends at the save of that key by another store (another process's pool),
/// long before its poll interval; a save of another key does not end it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_elsewhere_wakes_a_watch_at_once() {
    let postgres = Postgres::start();
    let waiter = PostgresStore::connect(&postgres.url).await.unwrap();
    let other = PostgresStore::connect(&postgres.url).await.unwrap();
    let set = |i: usize| expired(&format!("rt-{i}"));
    listening(&waiter, &other).await;
    // A poll interval of a minute: only a notification ends these waits within 20 s.
    let poll = Duration::from_secs(60);
    let mut version = None;
    for round in 0..10 {
        let mut watch = waiter.watch("k");
        let saved = other.save("k", &set(round), version).await.unwrap();
        let tokenkit::Saved::Written(v) = saved else {
            panic!("round {round}: {saved:?}");
        };
        version = Some(v);
        let woke = tokio::time::timeout(Duration::from_secs(20), watch.wait(poll)).await;
        assert!(
            woke.is_ok(),
            "round {round}: the save did not wake the watch"
        );
    }
    // Another key's save wakes nothing: the watch waits out its poll (a key of its own: a
    // late notification of "k" would end it early).
    let mut watch = waiter.watch("quiet");
    other.save("another", &set(0), None).await.unwrap();
    let started = std::time::Instant::now();
    watch.wait(Duration::from_millis(300)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// A process that found the lock taken is woken by the holder's save and by its release
/// alone, at once; a lease nobody waited for is saved and released without a notification
/// (a notifying commit holds the server's one notification lock until it is durable, which
/// serialized every renewal's commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_notifies_only_the_processes_that_wait_for_its_lock() {
    let postgres = Postgres::start();
    let waiter = PostgresStore::connect(&postgres.url).await.unwrap();
    let holder = PostgresStore::connect(&postgres.url).await.unwrap();
    listening(&waiter, &holder).await;
    let (ttl, poll) = (Duration::from_secs(30), Duration::from_secs(60));
    let tokenkit::Saved::Written(mut version) =
        holder.save("k", &expired("rt-0"), None).await.unwrap()
    else {
        panic!("the first save did not land");
    };
    for round in 1..=6 {
        let lock = holder.try_lock("k", ttl).await.unwrap().expect("the lock");
        let mut watch = waiter.watch("k");
        let waits = round % 3 != 0;
        if waits {
            assert!(waiter.try_lock("k", ttl).await.unwrap().is_none());
        }
        let set = expired(&format!("rt-{round}"));
        // Rounds 1 and 4 save and release in one statement, 2 and 5 release alone; in
        // rounds 3 and 6 nobody waits.
        if round % 3 == 2 {
            lock.release().await;
        } else {
            let saved = holder
                .save_releasing("k", &set, Some(version), &lock)
                .await
                .unwrap();
            let tokenkit::Saved::Written(v) = saved else {
                panic!("round {round}: {saved:?}");
            };
            version = v;
            lock.release().await;
        }
        if waits {
            let woke = tokio::time::timeout(Duration::from_secs(20), watch.wait(poll)).await;
            assert!(woke.is_ok(), "round {round}: the waiter was not woken");
            // The lock is free for it now (and taking it leaves no mark for the next round).
            let mine = waiter.try_lock("k", ttl).await.unwrap();
            mine.expect("the released lock").release().await;
        } else {
            let quiet = tokio::time::timeout(Duration::from_millis(500), watch.wait(poll)).await;
            assert!(
                quiet.is_err(),
                "round {round}: a lease nobody waited for notified"
            );
        }
    }
}
