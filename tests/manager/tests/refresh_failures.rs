//! What the manager does with each way a refresh fails: the stored set never changed by a
//! failure, one-time tokens never resent after an ambiguous answer, retries and backoff, dead
//! tokens and re-authentication.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};
use tokenkit::{
    ErrorKind, FileStore, ManagerConfig, ManagerError, MemoryStore, RefreshError, Rotation,
    TokenManager, TokenSet, TokenStore,
};
use tokenkit_manager_tests::{
    RefreshOnly, Scripted, client, expired, fresh, one_time_provider, quick, scratch, stored_set,
    timeout,
};
use tokenkit_mock::Reply;

#[tokio::test]
async fn a_failing_refresh_never_changes_the_stored_set() {
    let dir = scratch("failures");
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let store = FileStore::new(&dir).unwrap();
    let config = ManagerConfig {
        max_attempts: 2,
        backoff: Duration::from_millis(1),
        ..ManagerConfig::default()
    };
    let manager =
        TokenManager::with_config(client(&mock.base_url()), store.clone(), "k", config.clone())
            .unwrap();
    manager.seed(expired(&first)).await.unwrap();
    let before = stored_set(&store).await;

    let replies = [
        Reply::Example {
            status: 400,
            name: None,
        },
        Reply::Example {
            status: 401,
            name: None,
        },
        Reply::Raw {
            status: 503,
            content_type: None,
            body: b"down".to_vec(),
        },
        Reply::Raw {
            status: 200,
            content_type: Some("application/json".into()),
            body: b"{\"access".to_vec(),
        },
        Reply::Raw {
            status: 418,
            content_type: None,
            body: Vec::new(),
        },
        Reply::Close,
    ];
    for reply in replies {
        let what = format!("{reply:?}");
        // Each reply twice: once for the attempt, once for a retry if the error allows one.
        mock.enqueue(reply.clone());
        mock.enqueue(reply);
        // A fresh manager each time, so no "maybe spent" memory carries over.
        let manager =
            TokenManager::with_config(client(&mock.base_url()), store.clone(), "k", config.clone())
                .unwrap();
        let err = manager.access_token().await.expect_err(&what);
        assert_eq!(
            stored_set(&store).await,
            before,
            "{what} changed the store ({err})"
        );
    }
    drop(manager);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_dead_refresh_token_needs_reauthentication_and_leaves_the_store() {
    // Without a grant to fall back on (a refresh-only provider) and without a hook.
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    let manager =
        TokenManager::new(RefreshOnly(client(&mock.base_url())), store.clone(), "k").unwrap();
    manager.seed(expired("rt-unknown")).await.unwrap();
    let err = manager.access_token().await.unwrap_err();
    assert!(
        matches!(err, ManagerError::ReAuthenticate { cause: Some(ref e) } if e.kind() == ErrorKind::ReAuthenticate),
        "{err:?}"
    );
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(stored.tokens.refresh_token.unwrap().expose(), "rt-unknown");
}

#[tokio::test]
async fn the_reauthentication_hook_replaces_a_dead_token() {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let hook: tokenkit::ReAuthenticate = Arc::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            Ok(TokenSet {
                access_token: "at-from-login".into(),
                refresh_token: Some("rt-from-login".into()),
                expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
                token_type: None,
                refresh_expires_at: None,
                extras: Default::default(),
                origin: None,
                issuer: None,
                values: Default::default(),
            })
        })
    });
    let manager = TokenManager::new(client(&mock.base_url()), store.clone(), "k")
        .unwrap()
        .with_reauthenticate(hook);
    manager.seed(expired("rt-unknown")).await.unwrap();
    assert_eq!(
        manager.access_token().await.unwrap().expose(),
        "at-from-login"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(
        stored.tokens.refresh_token.unwrap().expose(),
        "rt-from-login"
    );
}

#[tokio::test]
async fn an_ambiguous_failure_never_resends_a_one_time_token() {
    let scripted = Arc::new(Scripted::new(Rotation::OneTime, vec![Err(timeout())]));
    let config = ManagerConfig {
        lock_ttl: Duration::from_millis(100),
        max_backoff: Duration::from_millis(10),
        ..quick()
    };
    let store = MemoryStore::new();
    let manager =
        TokenManager::with_config(Arc::clone(&scripted), store.clone(), "k", config.clone())
            .unwrap();
    manager.seed(expired("rt-1")).await.unwrap();
    let err = manager.access_token().await.unwrap_err();
    assert!(
        matches!(err, ManagerError::Refresh(RefreshError::Transport { .. })),
        "{err:?}"
    );
    // The next call must not send rt-1 again: it may be spent. The store says so, for every
    // process: within the grace its sender may still store an answer (retryable)...
    assert!(store.load("k").await.unwrap().unwrap().sending.is_some());
    let err = manager.access_token().await.unwrap_err();
    assert!(matches!(err, ManagerError::InFlight), "{err:?}");
    // ...another manager (another process, or this one restarted) agrees...
    let restarted =
        TokenManager::with_config(Arc::clone(&scripted), store.clone(), "k", config).unwrap();
    let err = restarted.access_token().await.unwrap_err();
    assert!(matches!(err, ManagerError::InFlight), "{err:?}");
    // ...and after the grace the credential needs re-authenticating.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let err = manager.access_token().await.unwrap_err();
    assert!(
        matches!(err, ManagerError::ReAuthenticate { .. }),
        "{err:?}"
    );
    assert_eq!(scripted.sent(), vec!["rt-1"]);
}

#[tokio::test]
async fn an_ambiguous_failure_resends_where_the_spec_allows() {
    let scripted = Arc::new(Scripted::new(
        Rotation::Optional,
        vec![Err(timeout()), Ok(fresh("at-2", None))],
    ));
    let store = MemoryStore::new();
    let manager =
        TokenManager::with_config(Arc::clone(&scripted), store.clone(), "k", quick()).unwrap();
    manager.seed(expired("rt-1")).await.unwrap();
    assert_eq!(manager.access_token().await.unwrap().expose(), "at-2");
    assert_eq!(scripted.sent(), vec!["rt-1", "rt-1"]);
    // No new refresh token came back: the old one is kept.
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(stored.tokens.refresh_token.unwrap().expose(), "rt-1");
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff_then_reported() {
    let later = || RefreshError::documented(ErrorKind::RetryLater, 429, Default::default(), None);
    let scripted = Arc::new(Scripted::new(
        Rotation::OneTime,
        vec![Err(later()), Err(later()), Ok(fresh("at-2", Some("rt-2")))],
    ));
    let manager =
        TokenManager::with_config(Arc::clone(&scripted), MemoryStore::new(), "k", quick()).unwrap();
    manager.seed(expired("rt-1")).await.unwrap();
    assert_eq!(manager.access_token().await.unwrap().expose(), "at-2");
    assert_eq!(scripted.sent().len(), 3);

    let scripted = Arc::new(Scripted::new(
        Rotation::OneTime,
        (0..4).map(|_| Err(later())).collect(),
    ));
    let manager =
        TokenManager::with_config(Arc::clone(&scripted), MemoryStore::new(), "k", quick()).unwrap();
    manager.seed(expired("rt-1")).await.unwrap();
    let err = manager.access_token().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(scripted.sent().len(), 4, "max_attempts");
}

#[tokio::test]
async fn invalid_grant_rereads_the_store_and_uses_the_newer_token() {
    let store = MemoryStore::new();
    let dead = RefreshError::documented(ErrorKind::ReAuthenticate, 400, Default::default(), None);
    let mut scripted = Scripted::new(
        Rotation::OneTime,
        vec![Err(dead), Ok(fresh("at-3", Some("rt-3")))],
    );
    // Between this process's read and its request, "another process" rotated the token.
    let other = store.clone();
    scripted.before = Box::new(move |n| {
        if n == 1 {
            let other = other.clone();
            std::thread::spawn(move || {
                tokio::runtime::Runtime::new().unwrap().block_on(async {
                    other.save("k", &expired("rt-2"), Some(1)).await.unwrap();
                })
            })
            .join()
            .unwrap();
        }
    });
    let scripted = Arc::new(scripted);
    let manager =
        TokenManager::with_config(Arc::clone(&scripted), store.clone(), "k", quick()).unwrap();
    manager.seed(expired("rt-1")).await.unwrap();
    assert_eq!(manager.access_token().await.unwrap().expose(), "at-3");
    assert_eq!(scripted.sent(), vec!["rt-1", "rt-2"]);
}

#[tokio::test]
async fn no_secret_in_manager_errors_or_debug() {
    let sentinel = "SNTL-mgr-9d8c";
    let dead = RefreshError::documented(ErrorKind::ReAuthenticate, 400, Default::default(), None);
    let scripted = Arc::new(Scripted::new(Rotation::OneTime, vec![Err(dead)]));
    let manager =
        TokenManager::with_config(Arc::clone(&scripted), MemoryStore::new(), "k", quick()).unwrap();
    manager.seed(expired(sentinel)).await.unwrap();
    let err = manager.access_token().await.unwrap_err();
    let shown = format!("{err} {err:?} {manager:?} {:?}", manager.token_set().await);
    assert!(!shown.contains(sentinel), "{shown}");
}

#[tokio::test]
async fn a_429_with_retry_after_is_honoured() {
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    mock.enqueue(Reply::RetryAfter {
        status: 429,
        retry_after: "1".into(),
    });
    let config = ManagerConfig {
        backoff: Duration::from_millis(1),
        max_backoff: Duration::from_secs(5),
        ..ManagerConfig::default()
    };
    let manager =
        TokenManager::with_config(client(&mock.base_url()), MemoryStore::new(), "k", config)
            .unwrap();
    manager.seed(expired(&first)).await.unwrap();
    let started = std::time::Instant::now();
    manager.access_token().await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}, not after the 1 s the provider asked for"
    );
    let stats = mock.authority_stats();
    assert_eq!((stats.refreshes, stats.reuses), (1, 0), "{stats:?}");
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn repeated_rejections_back_off() {
    let rejected = || RefreshError::documented(ErrorKind::Rejected, 401, Default::default(), None);
    let scripted = Arc::new(Scripted::new(
        Rotation::OneTime,
        (0..10).map(|_| Err(rejected())).collect(),
    ));
    let config = ManagerConfig {
        backoff: Duration::from_millis(200),
        ..quick()
    };
    let manager =
        TokenManager::with_config(Arc::clone(&scripted), MemoryStore::new(), "k", config).unwrap();
    manager.seed(expired("rt-1")).await.unwrap();
    for _ in 0..20 {
        let err = manager.access_token().await.unwrap_err();
        assert_eq!(
            err,
            ManagerError::Refresh(rejected()),
            "the same answer, without asking again"
        );
    }
    assert_eq!(scripted.sent().len(), 1, "asked once during the backoff");
    tokio::time::sleep(Duration::from_millis(400)).await;
    manager.access_token().await.unwrap_err();
    assert_eq!(scripted.sent().len(), 2, "asked again after it");
}

/// A provider whose refresh brings the same access token back (some do): an API that refused
/// it gets `TokenRejected` every time, never the refused token handed back as a new one.
#[tokio::test]
async fn a_refused_token_is_never_handed_back_as_a_new_one() {
    let scripted = Arc::new(Scripted::new(
        Rotation::Optional,
        vec![
            Ok(fresh("at-same", Some("rt-1"))),
            Ok(fresh("at-same", Some("rt-1"))),
        ],
    ));
    let manager =
        TokenManager::with_config(Arc::clone(&scripted), MemoryStore::new(), "k", quick()).unwrap();
    manager.seed(fresh("at-same", Some("rt-1"))).await.unwrap();
    let refused = manager.access_token().await.unwrap();
    for _ in 0..3 {
        assert_eq!(
            manager.refresh_rejected(&refused).await,
            Err(ManagerError::TokenRejected)
        );
    }
    assert_eq!(scripted.sent().len(), 1, "one refresh per refused token");
}

/// A set put back after the store went backwards is marked as maybe sent, and that mark never
/// opens the provider's reuse grace: the put-back token may have been spent long before (by a
/// holder whose lock the store forgot), so it waits (`InFlight`), then re-authenticates; it is
/// never sent again within the grace as if its first sending were just now.
#[tokio::test]
async fn a_put_back_set_never_opens_the_reuse_grace() {
    let mut scripted = Scripted::new(
        Rotation::OneTime,
        vec![
            Ok(fresh("at-2", Some("rt-2"))),
            Ok(fresh("at-3", Some("rt-3"))),
        ],
    );
    scripted.grace = Some(Duration::from_secs(30));
    let scripted = Arc::new(scripted);
    let store = MemoryStore::new();
    let manager =
        TokenManager::with_config(Arc::clone(&scripted), store.clone(), "k", quick()).unwrap();
    manager.seed(expired("rt-1")).await.unwrap();
    let snapshot = store.load("k").await.unwrap().unwrap();
    assert_eq!(manager.access_token().await.unwrap().expose(), "at-2");
    // The store goes back to version 1 (a restore from an older snapshot).
    store.clear();
    let lock = store
        .try_lock("k", Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    store.restore("k", &snapshot, &lock).await.unwrap();
    lock.release().await;
    assert_eq!(manager.force_refresh().await, Err(ManagerError::InFlight));
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(stored.version, 2, "the newest set known here was put back");
    assert!(stored.sending.is_some());
    assert_eq!(
        scripted.sent(),
        vec!["rt-1"],
        "a put-back token was sent again"
    );
}
