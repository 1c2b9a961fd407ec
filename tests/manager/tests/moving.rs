//! Moving connections between stores: files → Redis → PostgreSQL → encrypted PostgreSQL, each
//! set with its version and marks, never over a newer set or a removal, and resumable.

use std::time::Duration;
use tokenkit::{
    Copied, EncryptedStore, EncryptionKey, FileStore, PostgresStore, RedisStore, Reported, Stored,
    TokenStore, copy_connections,
};
use tokenkit_manager_tests::{Postgres, Redis, expired, scratch};

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
