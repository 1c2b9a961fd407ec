//! What every store does with the writes the manager needs after a store went backwards, and
//! for a removed credential: the same checks on memory, files and a real redis-server.

use std::time::{Duration, SystemTime};
use tokenkit::{FileStore, MemoryStore, RedisStore, Saved, Stored, TokenStore};
use tokenkit_manager_tests::{Redis, expired, scratch};

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
        version,
        tokens: expired(token),
        sending,
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
    assert_eq!(
        store.save("k", &expired("rt-6"), Some(5)).await.unwrap(),
        Saved::Written(6)
    );
    assert_eq!(
        store.load("k").await.unwrap().unwrap().sending,
        None,
        "{what}"
    );
    // Deleted: nothing stored; a restore writes into the empty key.
    assert!(matches!(
        store.delete("k", &lock).await.unwrap(),
        Saved::Written(_)
    ));
    assert_eq!(store.load("k").await.unwrap(), None, "{what}");
    assert_eq!(
        store
            .restore("k", &set(3, "rt-3", None), &lock)
            .await
            .unwrap(),
        Saved::Written(3),
        "{what}"
    );
    assert_eq!(
        store.load("k").await.unwrap().unwrap().sending,
        None,
        "{what}"
    );
    lock.release().await;
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
    let set = Stored {
        version: 1,
        tokens: expired("rt"),
        sending: None,
    };
    assert_eq!(
        store.restore("fenced", &set, &lock).await.unwrap(),
        Saved::LockLost
    );
    assert_eq!(
        store.delete("fenced", &lock).await.unwrap(),
        Saved::LockLost
    );
}
