//! What every store does with the writes the manager needs after a store went backwards, and
//! for a removed credential: the same checks on memory, files and a real redis-server.

use std::time::{Duration, SystemTime};
use tokenkit::{
    ClaimedDue, DueClaim, EncryptedStore, EncryptionKey, FileStore, MemoryStore, PostgresStore,
    RedisStore, Reported, Saved, Stored, TokenStore,
};
use tokenkit_manager_tests::{Postgres, Redis, RedisCluster, expired, scratch};

/// Saves `key`, retrying a store error for up to 5 s: a cluster just formed may drop a
/// connection or two while its nodes agree on the slots (the manager retries writes too).
async fn save_settled(store: &impl TokenStore, key: &str) {
    for _ in 0..50 {
        if store.save(key, &expired("rt"), None).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store took no write of {key:?} in 5 s");
}

/// Lists what `store` holds under a prefix: every key, however odd its characters, and only
/// those under the prefix.
async fn lists(store: impl TokenStore, what: &str) {
    save_settled(&store, "settle/first").await;
    let mut wanted = Vec::new();
    for i in 0..300 {
        let key = format!("conn/{i}");
        save_settled(&store, &key).await;
        wanted.push(key);
    }
    // Characters a file name, a key's hash tag or a SCAN pattern would take for syntax.
    for odd in ["conn/{a}", "conn/*", "conn/%41 b", "conn/ü?[x]\\"] {
        store.save(odd, &expired("rt"), None).await.unwrap();
        wanted.push(odd.to_owned());
    }
    store.save("other/1", &expired("rt"), None).await.unwrap();
    store.save("conn", &expired("rt"), None).await.unwrap();
    let mut listed = store.list("conn/").await.unwrap().expect("{what} lists");
    listed.sort();
    wanted.sort();
    assert_eq!(listed, wanted, "{what}");
    let all = store.list("").await.unwrap().unwrap();
    assert_eq!(all.len(), wanted.len() + 3, "{what}");
}

#[tokio::test]
async fn every_store_lists_its_keys() {
    lists(MemoryStore::new(), "memory").await;
    let dir = scratch("stores-list");
    lists(FileStore::new(&dir).unwrap(), "files").await;
    std::fs::remove_dir_all(&dir).unwrap();
    let redis = Redis::start();
    let store = RedisStore::connect(&redis.url, "list{x}*").await.unwrap();
    lists(store, "redis").await;
    lists(
        EncryptedStore::new(MemoryStore::new(), key("k1", 7)),
        "encrypted",
    )
    .await;
    let postgres = Postgres::start();
    lists(
        PostgresStore::connect(&postgres.url).await.unwrap(),
        "postgres",
    )
    .await;
}

#[tokio::test]
async fn a_redis_cluster_lists_the_keys_of_every_master_and_splits_its_index() {
    let cluster = RedisCluster::start();
    let nodes: Vec<&str> = cluster.urls.iter().map(String::as_str).collect();
    let store = RedisStore::connect_cluster(&nodes, "list").await.unwrap();
    lists(store, "redis cluster").await;
    // The index and its claims on one slot; the removal's claim ends in a command of its own.
    let store = RedisStore::connect_cluster(&nodes, "claims").await.unwrap();
    claims_split_the_due_index(store, "redis cluster").await;
}

async fn restore_and_delete(store: impl TokenStore, what: &str) {
    assert_eq!(
        store.save("k", &expired("rt-1"), None).await.unwrap(),
        Saved::Written(1)
    );
    assert_eq!(
        store.save("k", &expired("rt-2"), Some(1)).await.unwrap(),
        Saved::Written(2)
    );
    let lock = store
        .try_lock("k", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("free");
    let set = |version, token: &str, sending| Stored {
        sending,
        ..Stored::unmarked(version, expired(token))
    };
    // Never over the same version or a newer one.
    assert_eq!(
        store
            .restore("k", &set(2, "rt-old", None), &lock)
            .await
            .unwrap(),
        Saved::Conflict(Some(2)),
        "{what}"
    );
    // Over an older one, with its sending mark.
    let marked = SystemTime::now() - Duration::from_secs(7);
    assert_eq!(
        store
            .restore("k", &set(5, "rt-5", Some(marked)), &lock)
            .await
            .unwrap(),
        Saved::Written(5),
        "{what}"
    );
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(stored.version, 5, "{what}");
    assert_eq!(stored.tokens.refresh_token.unwrap().expose(), "rt-5");
    let at = stored.sending.expect("the mark was restored");
    // A second mark of the same version keeps the time the token was first sent.
    assert!(store.mark_sending("k", 5, &lock).await.unwrap(), "{what}");
    let again = store.load("k").await.unwrap().unwrap().sending.unwrap();
    assert_eq!(again, at, "{what}: the mark's time moved");
    assert!(
        SystemTime::now().duration_since(at).unwrap() >= Duration::from_secs(6),
        "{what}"
    );
    // A normal write after it clears the mark.
    let mut dying = expired("rt-6");
    dying.refresh_expires_at = Some(SystemTime::now() + Duration::from_secs(60));
    assert_eq!(
        store.save("k", &dying, Some(5)).await.unwrap(),
        Saved::Written(6)
    );
    assert_eq!(
        store.load("k").await.unwrap().unwrap().sending,
        None,
        "{what}"
    );
    // What was reported: for the current version only, recorded once (the one caller that
    // gets `true` reports it), beside the sending mark; a dead set leaves the keeper's index.
    let hour = SystemTime::now() + Duration::from_secs(3600);
    let indexed = |due: Option<tokenkit::Due>| due.map(|d| d.iter().any(|(k, _)| k == "k"));
    assert!(store.mark_sending("k", 6, &lock).await.unwrap(), "{what}");
    for report in [Reported::Announced, Reported::Expiring, Reported::Dead] {
        assert_ne!(
            indexed(store.due("", hour, None, 10).await.unwrap()),
            Some(false)
        );
        let mark = |report| store.mark_reported("k", 6, report, &lock);
        assert!(
            !store.mark_reported("k", 5, report, &lock).await.unwrap(),
            "{what}: old"
        );
        assert!(mark(report).await.unwrap(), "{what}: {report:?}");
        assert!(!mark(report).await.unwrap(), "{what}: {report:?} twice");
    }
    let dead = store.load("k").await.unwrap().unwrap();
    assert!(
        dead.dead.is_some()
            && dead.expiring.is_some()
            && dead.sending.is_some()
            && dead.announced.is_some(),
        "{what}: {dead:?}"
    );
    assert_ne!(
        indexed(store.due("", hour, None, 10).await.unwrap()),
        Some(true)
    );
    // Restored as it is, marks and all; a new version clears it.
    let mut back = dead.clone();
    back.version = 9;
    assert_eq!(
        store.restore("k", &back, &lock).await.unwrap(),
        Saved::Written(9)
    );
    let restored = store.load("k").await.unwrap().unwrap();
    assert_eq!(
        (
            restored.dead,
            restored.expiring,
            restored.sending,
            restored.announced
        ),
        (dead.dead, dead.expiring, dead.sending, dead.announced)
    );
    assert_eq!(
        store.save("k", &dying, Some(9)).await.unwrap(),
        Saved::Written(10)
    );
    let renewed = store.load("k").await.unwrap().unwrap();
    assert_eq!(
        (
            renewed.dead,
            renewed.expiring,
            renewed.sending,
            renewed.announced
        ),
        (None, None, None, None),
        "{what}"
    );
    // Deleted: nothing stored, and the removal stays: nothing is put back over it, whatever
    // its version, and the next set is numbered after the removed one (versions never repeat
    // for a key, so a process that saw version 10 never takes the new set for a store gone
    // backwards).
    assert!(matches!(
        store.delete("k", &lock).await.unwrap(),
        Saved::Written(_)
    ));
    assert_eq!(store.load("k").await.unwrap(), None, "{what}");
    for version in [3, 10, 11, 99] {
        assert_eq!(
            store
                .restore("k", &set(version, "rt-removed", None), &lock)
                .await
                .unwrap(),
            Saved::Conflict(Some(10)),
            "{what}: a removed set was put back as version {version}"
        );
    }
    assert_eq!(store.load("k").await.unwrap(), None, "{what}");
    assert_eq!(
        store.save("k", &expired("rt-new"), Some(10)).await.unwrap(),
        Saved::Conflict(None),
        "{what}: a removed version is not current"
    );
    // Numbered after the removed version (an EncryptedStore, which seals each set as its
    // version, may take one more to seal it as the number the store chose).
    let after = |saved: Saved, removed: u64| match saved {
        Saved::Written(v) if v > removed && v <= removed + 2 => v,
        other => panic!("{what}: a new set after removing version {removed}: {other:?}"),
    };
    let renewed = after(store.save("k", &expired("rt-new"), None).await.unwrap(), 10);
    assert_eq!(store.load("k").await.unwrap().unwrap().version, renewed);
    // Deleted again, then re-seeded: still counting up.
    store.delete("k", &lock).await.unwrap();
    after(
        store.save("k", &expired("rt-newer"), None).await.unwrap(),
        renewed,
    );
    // A key that never held a set takes a put-back (a store restarted empty).
    let fresh = store
        .try_lock("fresh", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("free");
    assert_eq!(
        store
            .restore("fresh", &set(3, "rt-3", None), &fresh)
            .await
            .unwrap(),
        Saved::Written(3),
        "{what}"
    );
    assert_eq!(
        store.load("fresh").await.unwrap().unwrap().sending,
        None,
        "{what}"
    );
    fresh.release().await;
    lock.release().await;
}

/// The holder's merged steps: the lock taken with its set (never a stale one, however many
/// holders take turns) and the last write giving the lock up; `merges` for stores that do
/// both in one round trip (the others keep the contract with their default steps).
async fn merged_steps(store: impl TokenStore + Clone, what: &str, merges: bool) {
    let ttl = Duration::from_secs(5);
    store.save("m", &expired("rt-1"), None).await.unwrap();
    let first = store
        .try_lock_loading("m", ttl)
        .await
        .unwrap()
        .expect("free");
    match first.take_set() {
        Some(set) => {
            let loaded = store.load("m").await.unwrap().unwrap();
            assert_eq!(
                (set.version, set.tokens),
                (loaded.version, loaded.tokens),
                "{what}"
            );
        }
        None => assert!(!merges, "{what}: the set comes with the lock"),
    }
    assert!(
        store.try_lock_loading("m", ttl).await.unwrap().is_none(),
        "{what}: held"
    );
    assert_eq!(
        store
            .save_releasing("m", &expired("rt-2"), Some(1), &first)
            .await
            .unwrap(),
        Saved::Written(2),
        "{what}"
    );
    if merges {
        let next = store
            .try_lock("m", ttl)
            .await
            .unwrap()
            .expect("the write gave the lock up");
        // The first holder's release has nothing left to do: it frees nobody else's lock.
        first.release().await;
        assert!(store.try_lock("m", ttl).await.unwrap().is_none(), "{what}");
        assert!(next.confirm().await, "{what}");
        next.release().await;
    } else {
        first.release().await;
    }
    // A write that does not land keeps the lock.
    let held = store.try_lock("m", ttl).await.unwrap().expect("free");
    assert_eq!(
        store
            .save_releasing("m", &expired("rt-x"), Some(1), &held)
            .await
            .unwrap(),
        Saved::Conflict(Some(2)),
        "{what}"
    );
    assert!(store.try_lock("m", ttl).await.unwrap().is_none(), "{what}");
    held.release().await;
    // Holders taking turns: each writes over the set its lock came with, and never conflicts
    // (a set read before the last holder's write would).
    let mut turns = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (store, what) = (store.clone(), what.to_owned());
        turns.spawn(async move {
            let mut written = 0;
            while written < 25 {
                let Some(lock) = store.try_lock_loading("m", ttl).await.unwrap() else {
                    tokio::task::yield_now().await;
                    continue;
                };
                let set = match lock.take_set() {
                    Some(set) => set,
                    None => store.load("m").await.unwrap().unwrap(),
                };
                let saved = store
                    .save_releasing("m", &expired("rt-n"), Some(set.version), &lock)
                    .await
                    .unwrap();
                assert_eq!(saved, Saved::Written(set.version + 1), "{what}");
                lock.release().await;
                written += 1;
            }
        });
    }
    turns.join_all().await;
    assert_eq!(
        store.load("m").await.unwrap().unwrap().version,
        102,
        "{what}"
    );
}

#[tokio::test]
async fn every_store_merges_the_holder_s_steps_safely() {
    merged_steps(MemoryStore::new(), "memory", false).await;
    let dir = scratch("merged");
    merged_steps(FileStore::new(&dir).unwrap(), "files", false).await;
    std::fs::remove_dir_all(&dir).unwrap();
    let redis = Redis::start();
    let store = RedisStore::connect(&redis.url, "merged").await.unwrap();
    merged_steps(store, "redis", true).await;
    let postgres = Postgres::start();
    let store = PostgresStore::connect(&postgres.url).await.unwrap();
    merged_steps(store, "postgres", true).await;
    let sealed = PostgresStore::connect(&postgres.database("sealed"))
        .await
        .unwrap();
    let sealed = std::sync::Arc::new(EncryptedStore::new(sealed, key("k1", 4)));
    merged_steps(sealed, "encrypted postgres", true).await;
}

#[tokio::test]
async fn memory() {
    restore_and_delete(MemoryStore::new(), "memory").await;
}

#[tokio::test]
async fn files() {
    let dir = scratch("stores");
    restore_and_delete(FileStore::new(&dir).unwrap(), "files").await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn redis() {
    let redis = Redis::start();
    let store = RedisStore::connect(&redis.url, "stores").await.unwrap();
    restore_and_delete(store.clone(), "redis").await;
    // A holder whose lease is gone writes nothing.
    let lock = store
        .try_lock("fenced", Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    redis.cli(&["DEL", "stores:{fenced}:lock"]);
    let set = Stored::unmarked(1, expired("rt"));
    assert_eq!(
        store.restore("fenced", &set, &lock).await.unwrap(),
        Saved::LockLost
    );
    assert_eq!(
        store.delete("fenced", &lock).await.unwrap(),
        Saved::LockLost
    );
}

#[tokio::test]
async fn postgres() {
    let postgres = Postgres::start();
    let store = PostgresStore::connect(&postgres.url).await.unwrap();
    restore_and_delete(store.clone(), "postgres").await;
    let sealed = PostgresStore::connect(&postgres.database("sealed"))
        .await
        .unwrap();
    restore_and_delete(
        EncryptedStore::new(sealed, key("k1", 3)),
        "encrypted postgres",
    )
    .await;
    // A holder whose lease is gone writes nothing, and one who took the lock after it does.
    let lock = store
        .try_lock("fenced", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    postgres.psql("DELETE FROM tokenkit_locks WHERE key = 'fenced'");
    let other = store
        .try_lock("fenced", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("the lock is free once its lease is gone");
    let set = Stored::unmarked(1, expired("rt"));
    assert_eq!(
        store.restore("fenced", &set, &lock).await.unwrap(),
        Saved::LockLost
    );
    assert_eq!(
        store
            .save_fenced("fenced", &expired("rt"), None, &lock)
            .await
            .unwrap(),
        Saved::LockLost
    );
    assert_eq!(
        store.delete("fenced", &lock).await.unwrap(),
        Saved::LockLost
    );
    assert!(!lock.confirm().await, "the lost lease cannot be confirmed");
    assert_eq!(
        store
            .save_fenced("fenced", &expired("rt"), None, &other)
            .await
            .unwrap(),
        Saved::Written(1),
        "the holder that took it over writes"
    );
}

fn key(id: &str, byte: u8) -> EncryptionKey {
    EncryptionKey::new(id, &[byte; 32]).unwrap()
}

/// A set whose every secret carries a sentinel, the extras (an ID token, say) included.
fn sentinel_set() -> tokenkit::TokenSet {
    let mut set = expired("rt-SENTINEL-refresh");
    set.access_token = "at-SENTINEL-access".into();
    set.expires_at = Some(std::time::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123));
    set.extras
        .insert("id_token".into(), "idt-SENTINEL-id".into());
    set
}

#[tokio::test]
async fn encrypted_memory() {
    restore_and_delete(
        EncryptedStore::new(MemoryStore::new(), key("k1", 1)),
        "encrypted",
    )
    .await;
}

#[tokio::test]
async fn encrypted_files_hold_no_token_and_survive_key_rotation() {
    let dir = scratch("encrypted");
    let files = FileStore::new(&dir).unwrap();
    let first = EncryptedStore::new(files.clone(), key("2026-05", 1));
    assert_eq!(
        first.save("k", &sentinel_set(), None).await.unwrap(),
        Saved::Written(1)
    );
    let at_rest = std::fs::read_to_string(files.path_of("k")).unwrap();
    assert!(!at_rest.contains("SENTINEL"), "{at_rest}");
    assert!(
        at_rest.contains("2026-05"),
        "the key id is stored with the set"
    );

    // Rotated: a new current key, the old one kept for reading.
    let rotated =
        EncryptedStore::new(files.clone(), key("2026-11", 2)).with_previous(key("2026-05", 1));
    let stored = rotated.load("k").await.unwrap().unwrap();
    assert_eq!(stored.tokens, sentinel_set());
    assert_eq!(
        rotated.save("k", &stored.tokens, Some(1)).await.unwrap(),
        Saved::Written(2)
    );
    let at_rest = std::fs::read_to_string(files.path_of("k")).unwrap();
    assert!(
        at_rest.contains("2026-11") && !at_rest.contains("SENTINEL"),
        "{at_rest}"
    );

    // Without the key, or with another key under the same id: a clear error, nothing lost.
    let before = std::fs::read(files.path_of("k")).unwrap();
    for wrong in [
        EncryptedStore::new(files.clone(), key("2026-05", 1)),
        EncryptedStore::new(files.clone(), key("2026-11", 3)),
    ] {
        let err = wrong.load("k").await.unwrap_err();
        assert!(
            err.message.contains("2026-11") && err.message.contains("nothing was changed"),
            "{err}"
        );
        assert!(!err.to_string().contains("SENTINEL"));
    }
    assert_eq!(std::fs::read(files.path_of("k")).unwrap(), before);
    assert_eq!(
        rotated.load("k").await.unwrap().unwrap().tokens,
        sentinel_set()
    );

    // A plaintext set is refused unless reading them is asked for (a migration).
    files.save("plain", &sentinel_set(), None).await.unwrap();
    assert!(
        rotated
            .load("plain")
            .await
            .unwrap_err()
            .message
            .contains("unencrypted")
    );
    let migrating = rotated.clone().read_plaintext(true);
    assert_eq!(
        migrating.load("plain").await.unwrap().unwrap().tokens,
        sentinel_set()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_encrypted_redis_dump_holds_no_token() {
    let redis = Redis::start_snapshotting();
    let store = EncryptedStore::new(
        RedisStore::connect(&redis.url, "sealed").await.unwrap(),
        key("k1", 9),
    );
    store.save("k", &sentinel_set(), None).await.unwrap();
    let lock = store
        .try_lock("k", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert!(store.mark_sending("k", 1, &lock).await.unwrap());
    lock.release().await;
    redis.snapshot("dump.copy");
    let dump = std::fs::read(redis.dir().join("dump.copy")).unwrap();
    assert!(
        !dump.windows(8).any(|w| w == b"SENTINEL"),
        "the RDB dump holds a token"
    );
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(stored.tokens, sentinel_set());
    assert!(stored.sending.is_some(), "marks pass through");
}

#[tokio::test]
async fn a_manager_over_an_encrypted_store_refreshes_and_leaves_nothing_readable() {
    let (mock, first) = tokenkit_manager_tests::one_time_provider(3600, Duration::ZERO).await;
    let dir = scratch("encrypted-manager");
    let files = FileStore::new(&dir).unwrap();
    let store = EncryptedStore::new(files.clone(), key("k1", 4));
    let manager =
        tokenkit::TokenManager::new(tokenkit_manager_tests::client(&mock.base_url()), store, "k")
            .unwrap();
    manager.seed(expired(&first)).await.unwrap();
    let token = manager.access_token().await.unwrap();
    manager.force_refresh().await.unwrap();
    let at_rest = std::fs::read_to_string(files.path_of("k")).unwrap();
    let refresh = manager.token_set().await.unwrap().refresh_token.unwrap();
    for secret in [token.expose(), refresh.expose(), first.as_str()] {
        assert!(!at_rest.contains(secret), "{secret} is readable at rest");
    }
    let stats = mock.authority_stats();
    assert_eq!((stats.refreshes, stats.reuses), (2, 0), "{stats:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What a keeper asks of a store: the keys whose refresh token dies by a time, earliest first.
async fn indexes_due_times(store: impl TokenStore, what: &str) {
    let now = SystemTime::now();
    let dying = |secs: u64| {
        let mut set = expired("rt");
        set.refresh_expires_at = Some(now + Duration::from_secs(secs));
        set
    };
    store.save("due/late", &dying(100), None).await.unwrap();
    store.save("due/b", &dying(5), None).await.unwrap();
    store.save("due/a", &dying(1), None).await.unwrap();
    store.save("due/never", &expired("rt"), None).await.unwrap();
    store.save("other/a", &dying(1), None).await.unwrap();
    let until = now + Duration::from_secs(10);
    let keys = |due: Vec<(String, SystemTime)>| due.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    let due = store
        .due("due/", until, None, 100)
        .await
        .unwrap()
        .expect(what);
    assert_eq!(keys(due), ["due/a", "due/b"], "{what}");
    // Renewed: its new time counts. Removed: gone.
    store.save("due/a", &dying(200), Some(1)).await.unwrap();
    let lock = store
        .try_lock("due/b", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    store.delete("due/b", &lock).await.unwrap();
    lock.release().await;
    assert!(
        keys(store.due("due/", until, None, 100).await.unwrap().unwrap()).is_empty(),
        "{what}"
    );
    let all = store
        .due("due/", now + Duration::from_secs(1000), None, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        keys(all.clone()),
        ["due/late"],
        "{what}: the earliest first, at most the limit"
    );
    let (key, at) = &all[0];
    let next = store
        .due("due/", now + Duration::from_secs(1000), Some((*at, key)), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(keys(next), ["due/a"], "{what}: the next page");
}

#[tokio::test]
async fn stores_index_when_refresh_tokens_die() {
    indexes_due_times(MemoryStore::new(), "memory").await;
    let redis = Redis::start();
    let store = RedisStore::connect(&redis.url, "due").await.unwrap();
    indexes_due_times(store, "redis").await;
    let store = RedisStore::connect(&redis.url, "due-sealed").await.unwrap();
    indexes_due_times(EncryptedStore::new(store, key("k1", 9)), "encrypted redis").await;
    let postgres = Postgres::start();
    let store = PostgresStore::connect(&postgres.url).await.unwrap();
    indexes_due_times(store, "postgres").await;
    let dir = scratch("stores-due");
    let files = FileStore::new(&dir).unwrap();
    indexes_due_times(files.clone(), "files").await;
    let sealed = FileStore::new(dir.join("sealed")).unwrap();
    indexes_due_times(EncryptedStore::new(sealed, key("k1", 9)), "encrypted files").await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A page claimed by `owner` for `lease`, keys only, and the next page's start.
async fn claim(
    store: &impl TokenStore,
    after: Option<&(SystemTime, String)>,
    limit: usize,
    owner: &str,
    lease: Duration,
) -> (Vec<String>, Option<(SystemTime, String)>) {
    let until = SystemTime::now() + Duration::from_secs(60);
    let after = after.map(|(at, key)| (*at, key.as_str()));
    let claim = DueClaim { owner, lease };
    let ClaimedDue { claimed, next } = store
        .claim_due("claim/", until, after, limit, claim)
        .await
        .unwrap()
        .expect("a store with an index keeps claims");
    (claimed.into_iter().map(|(k, _)| k).collect(), next)
}

/// What keepers on several replicas ask of a store with an index: pages of it claimed, each
/// free entry for one of them, its own again for the owner, anyone's once the lease ran out,
/// and the walk's cursor right across keys of other prefixes and equal times.
async fn claims_split_the_due_index(store: impl TokenStore, what: &str) {
    let now = SystemTime::now();
    let dying = |ms: u64| {
        let mut set = expired("rt");
        set.refresh_expires_at = Some(now + Duration::from_millis(ms));
        set
    };
    // Equal times (a fleet seeded at once), hostile characters, another prefix between.
    let keys = [
        ("claim/a", 1000),
        ("claim/b%_{x}", 2000),
        ("claim/c", 2000),
        ("claim0/other", 2000),
        ("claim/d", 2000),
        ("claim/e", 3000),
        ("claim/never", 0),
    ];
    for (key, ms) in keys {
        let set = if ms == 0 { expired("rt") } else { dying(ms) };
        store.save(key, &set, None).await.unwrap();
    }
    let long = Duration::from_secs(60);
    let (first, next) = claim(&store, None, 3, "A", long).await;
    assert_eq!(first, ["claim/a", "claim/b%_{x}", "claim/c"], "{what}");
    // B finds A's page claimed, and walks on past it.
    let (none, past) = claim(&store, None, 3, "B", long).await;
    assert!(none.is_empty(), "{what}: {none:?}");
    assert_eq!(past, next, "{what}: the page's last entry, claimed or not");
    let mut walked = Vec::new();
    let mut cursor = past;
    while let Some(at) = cursor {
        let (page, next) = claim(&store, Some(&at), 1, "B", long).await;
        walked.extend(page);
        cursor = next;
    }
    assert_eq!(
        walked,
        ["claim/d", "claim/e"],
        "{what}: the rest, once each, of the prefix only"
    );
    let (again, _) = claim(&store, None, 3, "A", long).await;
    assert_eq!(
        again, first,
        "{what}: the owner's own claims are its own again"
    );
    // A removed key leaves its claim with it: a new set under its name is free.
    let lock = store
        .try_lock("claim/a", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    store.delete("claim/a", &lock).await.unwrap();
    lock.release().await;
    store.save("claim/a", &dying(1000), None).await.unwrap();
    let (taken, _) = claim(&store, None, 1, "B", long).await;
    assert_eq!(taken, ["claim/a"], "{what}: a removal ends its claim");
    // Given up by its owner (not by anyone else), a claim is free at once.
    let b = ["claim/b%_{x}".to_owned()];
    store.release_claims(&b, "B").await.unwrap();
    let (still, _) = claim(&store, None, 3, "B", long).await;
    assert_eq!(
        still,
        ["claim/a"],
        "{what}: another owner's release frees nothing"
    );
    store.release_claims(&b, "A").await.unwrap();
    let (freed, _) = claim(&store, None, 3, "B", long).await;
    assert_eq!(freed, ["claim/a", "claim/b%_{x}"], "{what}: given up, free");
    // A short lease runs out at the store's clock: then anyone may claim the entry.
    let short = Duration::from_millis(300);
    let (mine, _) = claim(&store, Some(&(now, "claim/".into())), 10, "C", short).await;
    assert!(
        mine.is_empty(),
        "{what}: every entry is A's or B's: {mine:?}"
    );
    store.save("claim/f", &dying(500), None).await.unwrap();
    let claimed_at = std::time::Instant::now();
    let (f, _) = claim(&store, None, 10, "C", short).await;
    assert_eq!(f, ["claim/f"], "{what}");
    let deadline = claimed_at + Duration::from_secs(30);
    loop {
        let (got, _) = claim(&store, None, 10, "D", long).await;
        if got == ["claim/f"] {
            break;
        }
        assert!(got.is_empty(), "{what}: {got:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: the lease never ran out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        claimed_at.elapsed() >= short - Duration::from_millis(50),
        "{what}: taken over after {:?}, before the lease ran out",
        claimed_at.elapsed()
    );
}

#[tokio::test]
async fn stores_with_an_index_split_it_among_keepers_by_claims() {
    claims_split_the_due_index(MemoryStore::new(), "memory").await;
    let redis = Redis::start();
    let store = RedisStore::connect(&redis.url, "claims").await.unwrap();
    claims_split_the_due_index(store, "redis").await;
    let store = RedisStore::connect(&redis.url, "claims-sealed")
        .await
        .unwrap();
    claims_split_the_due_index(EncryptedStore::new(store, key("k1", 7)), "encrypted redis").await;
    let postgres = Postgres::start();
    let store = PostgresStore::connect(&postgres.url).await.unwrap();
    claims_split_the_due_index(store, "postgres").await;
    let dir = scratch("stores-claims");
    let files = FileStore::new(&dir).unwrap();
    let claim = DueClaim {
        owner: "A",
        lease: Duration::from_secs(1),
    };
    assert!(
        files
            .claim_due("", SystemTime::now(), None, 10, claim)
            .await
            .unwrap()
            .is_none(),
        "a directory keeps no index, nor claims"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A lock released while Redis is down (crashed, restarting) is released once it is back,
/// though the server kept it in its append-only file: held for the rest of its ttl instead, it
/// would shut out every refresh of that credential, past a short-lived refresh token's death.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_released_while_redis_is_down_is_free_once_it_is_back() {
    let mut redis = Redis::start_persistent();
    let store = RedisStore::connect(&redis.url, "release").await.unwrap();
    let ttl = Duration::from_secs(30);
    let lock = store.try_lock("k", ttl).await.unwrap().expect("free");
    redis.kill();
    lock.release().await;
    redis.start_again();
    let back = std::time::Instant::now();
    let freed = loop {
        if let Ok(Some(again)) = store.try_lock("k", ttl).await {
            again.release().await;
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "the lock is still held 5 s after Redis came back (its ttl is {ttl:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("the lock was free {freed:?} after Redis came back");
}
