//! The manager in one process, against a mock that enforces one-time refresh tokens.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};
use tokenkit::{
    BoxFuture, ErrorKind, FileStore, ManagerConfig, ManagerError, MemoryStore, RefreshClient,
    RefreshError, RefreshToken, Rotation, TokenManager, TokenSet, TokenStore, TransportKind,
};
use tokenkit_manager_tests::{
    FailingWrites, RefreshOnly, client, client_with_timeout, expired, fast_config, fresh,
    one_time_provider, own, scratch,
};
use tokenkit_mock::Reply;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_at_expiry_cause_one_refresh() {
    let (mock, first) = one_time_provider(3600, Duration::from_millis(5)).await;
    let store = MemoryStore::new();
    let manager = TokenManager::new(client(&mock.base_url()), store.clone(), "k").unwrap();
    assert!(manager.seed(expired(&first)).await.unwrap());

    let callers: Vec<_> = (0..10_000)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.access_token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(caller.await.unwrap().unwrap().expose().to_owned());
    }

    let stats = mock.authority_stats();
    assert_eq!(stats.refreshes, 1, "{stats:?}");
    assert_eq!(stats.reuses, 0);
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "every caller gets the one new token"
    );
    assert_ne!(tokens[0], "at-expired");
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(
        stored.tokens.access_token.expose(),
        tokens[0],
        "persisted before published"
    );
    assert_eq!(stored.version, 2);
}

#[tokio::test]
async fn a_valid_token_is_served_from_the_cache() {
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let manager = TokenManager::new(client(&mock.base_url()), MemoryStore::new(), "k").unwrap();
    manager.seed(expired(&first)).await.unwrap();
    let a = manager.access_token().await.unwrap();
    for _ in 0..100 {
        assert_eq!(manager.access_token().await.unwrap(), a);
    }
    assert_eq!(mock.authority_stats().refreshes, 1);
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    let (mock, first) = one_time_provider(1, Duration::ZERO).await;
    let manager = TokenManager::with_config(
        client(&mock.base_url()),
        MemoryStore::new(),
        "k",
        fast_config(),
    )
    .unwrap();
    manager.seed(expired(&first)).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let token = manager.access_token().await.unwrap();
        let set = manager.token_set().await.unwrap();
        assert!(
            set.expires_at.unwrap() > SystemTime::now(),
            "served an expired token"
        );
        seen.push(token);
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    seen.dedup();
    assert_eq!(seen.len(), 4, "a new token each half-lifetime");
    let stats = mock.authority_stats();
    assert_eq!((stats.refreshes, stats.reuses, stats.rejected), (4, 0, 0));
}

/// Snapshot of the store file, byte for byte.
fn file_bytes(store: &FileStore) -> Vec<u8> {
    std::fs::read(store.path_of("k")).unwrap()
}

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
    let before = file_bytes(&store);

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
            file_bytes(&store),
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

/// A scripted client, for the decisions that depend on exactly what failed.
struct Scripted {
    rotation: Rotation,
    answers: std::sync::Mutex<Vec<Result<TokenSet, RefreshError>>>,
    sent: std::sync::Mutex<Vec<String>>,
    /// Runs before answering: lets a test play "another process".
    before: Box<dyn Fn(usize) + Send + Sync>,
    /// The provider's reuse grace (the spec's `reuse-grace`), if any.
    grace: Option<Duration>,
}

impl Scripted {
    fn new(rotation: Rotation, mut answers: Vec<Result<TokenSet, RefreshError>>) -> Self {
        answers.reverse();
        Self {
            rotation,
            answers: answers.into(),
            sent: Vec::new().into(),
            before: Box::new(|_| {}),
            grace: None,
        }
    }

    fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

impl RefreshClient for Scripted {
    fn provider(&self) -> &'static str {
        "scripted"
    }

    fn rotation(&self) -> Rotation {
        self.rotation
    }

    fn reuse_grace(&self) -> Option<Duration> {
        self.grace
    }

    fn refresh<'a>(
        &'a self,
        token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<TokenSet, RefreshError>> {
        let n = {
            let mut sent = self.sent.lock().unwrap();
            sent.push(token.expose().to_owned());
            sent.len()
        };
        (self.before)(n);
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop()
            .expect("a scripted answer");
        Box::pin(async move { answer })
    }
}

fn timeout() -> RefreshError {
    RefreshError::Transport {
        kind: TransportKind::Timeout,
        maybe_sent: true,
    }
}

fn quick() -> ManagerConfig {
    ManagerConfig {
        backoff: Duration::from_millis(1),
        ..ManagerConfig::default()
    }
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
async fn a_cancelled_caller_does_not_abandon_the_refresh() {
    let (mock, first) = one_time_provider(3600, Duration::from_millis(200)).await;
    let store = MemoryStore::new();
    let manager = TokenManager::new(client(&mock.base_url()), store.clone(), "k").unwrap();
    manager.seed(expired(&first)).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(20), manager.access_token()).await;
    // The caller gave up after 20 ms; the refresh (a 200 ms provider) still finishes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let stored = loop {
        let stored = store.load("k").await.unwrap().unwrap();
        if stored.version == 2 || std::time::Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stored.version, 2, "the refresh finished and was persisted");
    assert_eq!(
        manager.access_token().await.unwrap(),
        stored.tokens.access_token
    );
    assert_eq!(mock.authority_stats().refreshes, 1);
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

/// A writer that keeps what the tracing subscriber prints.
#[tokio::test]
async fn an_unknown_expiry_is_stored_so_every_process_agrees() {
    let mut no_expiry = fresh("at-2", Some("rt-2"));
    no_expiry.expires_at = None;
    let scripted = Arc::new(Scripted::new(Rotation::OneTime, vec![Ok(no_expiry)]));
    let store = MemoryStore::new();
    let config = ManagerConfig {
        unknown_expiry: Duration::from_secs(600),
        ..quick()
    };
    let manager =
        TokenManager::with_config(Arc::clone(&scripted), store.clone(), "k", config).unwrap();
    manager.seed(expired("rt-1")).await.unwrap();
    manager.access_token().await.unwrap();
    let stored = store.load("k").await.unwrap().unwrap();
    let left = stored
        .tokens
        .expires_at
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(
        left > Duration::from_secs(590) && left <= Duration::from_secs(600),
        "{left:?}"
    );
    // A second manager on the same store (another process) serves it without refreshing.
    let other = TokenManager::with_config(Arc::clone(&scripted), store, "k", quick()).unwrap();
    assert_eq!(other.access_token().await.unwrap().expose(), "at-2");
    assert_eq!(scripted.sent(), vec!["rt-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_tokens_survive_failed_writes() {
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let memory = MemoryStore::new();
    let store = FailingWrites {
        inner: memory.clone(),
        failures: Arc::new(AtomicUsize::new(0)),
    };
    let manager =
        TokenManager::with_config(client(&mock.base_url()), store.clone(), "k", quick()).unwrap();
    manager.seed(expired(&first)).await.unwrap();
    // The refresh succeeds; the next three writes of its result fail.
    store.failures.store(3, Ordering::SeqCst);
    let token = manager.access_token().await.unwrap();
    assert_ne!(token.expose(), "at-expired");
    // Served from memory meanwhile, never refreshed again with the spent token.
    for _ in 0..50 {
        assert_eq!(manager.access_token().await.unwrap(), token);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stored = memory.load("k").await.unwrap().unwrap();
        if stored.version == 2 {
            assert_eq!(stored.tokens.access_token.expose(), token.expose());
            assert!(stored.sending.is_none());
            break;
        }
        // Until the write lands, the old token is marked as sent for every process.
        assert!(stored.sending.is_some());
        assert!(
            std::time::Instant::now() < deadline,
            "the write never landed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = mock.authority_stats();
    assert_eq!((stats.refreshes, stats.reuses), (1, 0), "{stats:?}");
    // The stored set is the live one: the next refresh works.
    let other = TokenManager::new(client(&mock.base_url()), memory, "k").unwrap();
    other.force_refresh().await.unwrap();
    assert_eq!(mock.authority_stats().reuses, 0);
}

/// A removal, or a replacement, while the write of a refreshed set is being retried: the
/// writer holds the lock, yet the removal goes through at once (it cancels the retry), and
/// the removed set never comes back once the store takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_or_replacement_cancels_the_write_being_retried() {
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let memory = MemoryStore::new();
    let store = FailingWrites {
        inner: memory.clone(),
        failures: Arc::new(AtomicUsize::new(0)),
    };
    // A waiter that outwaits a writer holding the lock would fail with LockTimeout.
    let config = ManagerConfig {
        lock_wait: Duration::from_millis(500),
        ..quick()
    };
    let manager =
        TokenManager::with_config(client(&mock.base_url()), store.clone(), "k", config).unwrap();
    manager.seed(expired(&first)).await.unwrap();
    store.failures.store(usize::MAX, Ordering::SeqCst);
    let refreshed = manager.access_token().await.unwrap();
    assert_ne!(refreshed.expose(), "at-expired");
    manager.remove().await.unwrap();
    store.failures.store(0, Ordering::SeqCst);
    assert_eq!(memory.load("k").await.unwrap(), None);
    // The customer connects again; the set is theirs, whatever the old writer had.
    let second = mock.new_family().unwrap();
    assert!(manager.seed(expired(&second)).await.unwrap());
    let token = manager.access_token().await.unwrap();
    assert_ne!(token, refreshed);
    // Numbered after the removed version 1; the refresh made it 3.
    assert_eq!(memory.load("k").await.unwrap().unwrap().version, 3);

    // The same for a replacement: a refreshed set whose write fails, then the customer's new
    // consent is put in place and stays.
    store.failures.store(usize::MAX, Ordering::SeqCst);
    manager.force_refresh().await.unwrap();
    let third = mock.new_family().unwrap();
    store.failures.store(0, Ordering::SeqCst);
    manager.replace(expired(&third)).await.unwrap();
    let stored = memory.load("k").await.unwrap().unwrap();
    assert_eq!(
        stored.tokens.refresh_token.as_ref().map(|t| t.expose()),
        Some(third.as_str())
    );
    manager.access_token().await.unwrap();
    let stats = mock.authority_stats();
    assert_eq!((stats.reuses, stats.rejected), (0, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_client_ends_the_flight_and_the_next_call_starts_anew() {
    let mut scripted = Scripted::new(Rotation::Optional, vec![Ok(fresh("at-2", Some("rt-2")))]);
    scripted.before = Box::new(|n| assert!(n != 1, "the client panics on its first refresh"));
    let scripted = Arc::new(scripted);
    let manager =
        TokenManager::with_config(Arc::clone(&scripted), MemoryStore::new(), "k", quick()).unwrap();
    manager.seed(expired("rt-1")).await.unwrap();
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.access_token().await })
        })
        .collect();
    for caller in callers {
        let err = caller.await.unwrap().unwrap_err();
        assert!(matches!(err, ManagerError::Interrupted), "{err:?}");
        assert!(err.is_retryable());
    }
    // The flight was cleared: the next call refreshes (a rotation that allows a resend).
    assert_eq!(manager.access_token().await.unwrap().expose(), "at-2");
    assert_eq!(scripted.sent().len(), 2);
}

#[test]
fn a_call_outside_a_runtime_is_an_error_not_a_panic() {
    let manager = {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let m = TokenManager::new(
                Arc::new(Scripted::new(Rotation::OneTime, vec![])),
                MemoryStore::new(),
                "k",
            )
            .unwrap();
            m.seed(expired("rt-1")).await.unwrap();
            m
        })
    };
    // A future polled by another executor: no Tokio runtime to spawn the refresh on.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut call = std::pin::pin!(manager.access_token());
    match call.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(ManagerError::Interrupted)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn configurations_that_could_overflow_or_outlive_the_lock_are_refused() {
    let scripted = || Arc::new(Scripted::new(Rotation::OneTime, vec![]));
    for config in [
        ManagerConfig {
            lock_wait: Duration::MAX,
            ..ManagerConfig::default()
        },
        ManagerConfig {
            skew: Duration::MAX,
            ..ManagerConfig::default()
        },
        ManagerConfig {
            max_attempts: 0,
            ..ManagerConfig::default()
        },
        ManagerConfig {
            lock_poll: Duration::ZERO,
            ..ManagerConfig::default()
        },
        ManagerConfig {
            refresh_token_margin: Duration::ZERO,
            ..ManagerConfig::default()
        },
        ManagerConfig {
            lock_wait: Duration::from_millis(1),
            lock_poll: Duration::from_millis(25),
            ..ManagerConfig::default()
        },
        ManagerConfig {
            clock_skew: Duration::MAX,
            ..ManagerConfig::default()
        },
    ] {
        let err =
            TokenManager::with_config(scripted(), MemoryStore::new(), "k", config).unwrap_err();
        assert!(matches!(err, ManagerError::Config(_)), "{err:?}");
    }
    // The defaults leave room for a replica that died holding the lock when a connection fell
    // due: its lease expires, a waiter takes over and renews, all before the refresh token
    // dies (they did not: the margin was the lock's ttl, 60 s, and waiters waited 90 s).
    let defaults = ManagerConfig::default();
    assert!(
        defaults.refresh_token_margin
            > defaults.lock_ttl + defaults.lock_wait + defaults.max_backoff * 2,
        "{defaults:?}"
    );
    // The generated client's 30 s HTTP timeout against a 10 s lock: one attempt could
    // outlive the lock.
    let err = TokenManager::with_config(
        tokenkit_easyship::Client::builder("id", "secret")
            .build()
            .unwrap(),
        MemoryStore::new(),
        "k",
        ManagerConfig {
            lock_ttl: Duration::from_secs(10),
            ..ManagerConfig::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("lock_ttl"), "{err}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_lifetime_is_refreshed_at_a_bounded_rate() {
    // The provider answers `expires_in: 0`: every token is stale at once.
    let (mock, first) = one_time_provider(0, Duration::ZERO).await;
    let config = ManagerConfig {
        min_refresh_interval: Duration::from_millis(200),
        ..quick()
    };
    let manager =
        TokenManager::with_config(client(&mock.base_url()), MemoryStore::new(), "k", config)
            .unwrap();
    manager.seed(expired(&first)).await.unwrap();
    let started = std::time::Instant::now();
    let mut calls = 0;
    while started.elapsed() < Duration::from_secs(1) {
        manager.access_token().await.unwrap();
        calls += 1;
    }
    let stats = mock.authority_stats();
    println!("{calls} calls, {stats:?}");
    assert_eq!(stats.reuses, 0);
    // One refresh at once, then at most one per 200 ms.
    assert!(stats.refreshes <= 7, "{stats:?}");
    assert!(stats.refreshes >= 3, "{stats:?}");
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

#[test]
fn a_runtime_shut_down_mid_refresh_leaves_no_dead_flight() {
    // The provider answers after 500 ms; the runtime goes away while the request is out.
    let first = tokio::runtime::Runtime::new().unwrap();
    let (mock, manager) = first.block_on(async {
        let (mock, token) = one_time_provider(3600, Duration::from_millis(500)).await;
        let m =
            TokenManager::with_config(client(&mock.base_url()), MemoryStore::new(), "k", quick())
                .unwrap();
        m.seed(expired(&token)).await.unwrap();
        let caller = m.clone();
        tokio::spawn(async move { caller.access_token().await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        (mock, m)
    });
    first.shutdown_timeout(Duration::from_millis(10));
    // Another runtime: the dropped task cleared its flight, so a call gets an answer at once
    // instead of waiting on a dead one. The token went out and may be spent: it is not sent
    // again (InFlight within the grace).
    let second = tokio::runtime::Runtime::new().unwrap();
    let result = second.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), manager.access_token()).await
    });
    let err = result.expect("stuck on a dead flight").unwrap_err();
    assert!(matches!(err, ManagerError::InFlight), "{err:?}");
    drop(mock);
}

#[tokio::test]
async fn the_refresh_token_s_own_lifetime_is_respected() {
    // An access token good for an hour, a refresh token that dies in 300 ms: the manager
    // refreshes before the refresh token dies, not when the access token would.
    let mut short = fresh("at-2", Some("rt-2"));
    short.refresh_expires_at = Some(SystemTime::now() + Duration::from_millis(300));
    let scripted = Arc::new(Scripted::new(
        Rotation::OneTime,
        vec![Ok(short), Ok(fresh("at-3", Some("rt-3")))],
    ));
    let config = ManagerConfig {
        skew: Duration::from_millis(100),
        min_refresh_interval: Duration::ZERO,
        ..quick()
    };
    let manager = TokenManager::with_config(
        Arc::clone(&scripted),
        MemoryStore::new(),
        "k",
        config.clone(),
    )
    .unwrap();
    manager.seed(expired("rt-1")).await.unwrap();
    assert_eq!(manager.access_token().await.unwrap().expose(), "at-2");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(manager.access_token().await.unwrap().expose(), "at-3");
    assert_eq!(scripted.sent(), vec!["rt-1", "rt-2"]);

    // A stored refresh token already past its lifetime is not sent: re-authenticate.
    let mut dead = expired("rt-dead");
    dead.refresh_expires_at = Some(SystemTime::now() - Duration::from_secs(1));
    let scripted = Arc::new(Scripted::new(Rotation::OneTime, vec![]));
    let manager =
        TokenManager::with_config(Arc::clone(&scripted), MemoryStore::new(), "k", config).unwrap();
    manager.seed(dead).await.unwrap();
    let err = manager.access_token().await.unwrap_err();
    assert!(
        matches!(err, ManagerError::ReAuthenticate { .. }),
        "{err:?}"
    );
    assert!(scripted.sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_s_tokens_survive_a_failed_write_too() {
    let memory = MemoryStore::new();
    let store = FailingWrites {
        inner: memory.clone(),
        failures: Arc::new(AtomicUsize::new(0)),
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let hook: tokenkit::ReAuthenticate = Arc::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(fresh("at-login", Some("rt-login"))) })
    });
    let scripted = Arc::new(Scripted::new(Rotation::OneTime, vec![]));
    let manager = TokenManager::with_config(Arc::clone(&scripted), store.clone(), "k", quick())
        .unwrap()
        .with_reauthenticate(hook);
    // Nothing stored: the hook logs in; its set's first two writes fail.
    store.failures.store(2, Ordering::SeqCst);
    assert_eq!(manager.access_token().await.unwrap().expose(), "at-login");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while memory.load("k").await.unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the write never landed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored = memory.load("k").await.unwrap().unwrap();
    assert_eq!(stored.tokens.refresh_token.unwrap().expose(), "rt-login");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one login");
    assert!(scripted.sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_credentials_set_survives_a_failed_write() {
    // The grant's set goes the way a refreshed one does: served from memory at once, stored by
    // the retrying writer; the provider is asked once.
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let memory = MemoryStore::new();
    let store = FailingWrites {
        inner: memory.clone(),
        failures: Arc::new(AtomicUsize::new(2)),
    };
    let manager =
        TokenManager::with_config(client(&mock.base_url()), store.clone(), "k", quick()).unwrap();
    let token = manager.access_token().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while memory.load("k").await.unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the write never landed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored = memory.load("k").await.unwrap().unwrap();
    assert_eq!(stored.tokens.access_token, token);
    assert_eq!(manager.access_token().await.unwrap(), token);
    assert_eq!(mock.authority_stats().grants, 1);
    assert_eq!(
        store.failures.load(Ordering::SeqCst),
        0,
        "both failures happened"
    );
}

#[test]
fn a_write_retry_that_died_with_its_runtime_is_taken_over() {
    // The provider lives on a runtime of its own for the whole test.
    let provider_runtime = tokio::runtime::Runtime::new().unwrap();
    let (mock, first) =
        provider_runtime.block_on(async { one_time_provider(3600, Duration::ZERO).await });
    let memory = MemoryStore::new();
    let store = FailingWrites {
        inner: memory.clone(),
        failures: Arc::new(AtomicUsize::new(0)),
    };
    let manager =
        TokenManager::with_config(client(&mock.base_url()), store.clone(), "k", quick()).unwrap();
    // The refresh succeeds on a throwaway runtime, and every write of its set fails there.
    let throwaway = tokio::runtime::Runtime::new().unwrap();
    let token = throwaway.block_on(async {
        manager.seed(expired(&first)).await.unwrap();
        store.failures.store(usize::MAX, Ordering::SeqCst);
        let token = manager.access_token().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        token
    });
    throwaway.shutdown_timeout(Duration::from_millis(10));
    // The store heals; a later call on another runtime gets the token, and the write that
    // died with the first runtime is taken over and lands.
    store.failures.store(0, Ordering::SeqCst);
    let later = tokio::runtime::Runtime::new().unwrap();
    later.block_on(async {
        assert_eq!(manager.access_token().await.unwrap(), token);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let stored = memory.load("k").await.unwrap().unwrap();
            if stored.version == 2 {
                assert_eq!(stored.tokens.access_token.expose(), token.expose());
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the write was never taken over"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The manager is not wedged: a forced refresh uses the stored set's token once.
        manager.force_refresh().await.unwrap();
    });
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.refreshes, stats.reuses, stats.rejected),
        (2, 0, 0),
        "{stats:?}"
    );
    drop(mock);
}

#[tokio::test]
async fn a_store_that_lost_the_set_gets_the_newest_one_written_back() {
    // A refresh whose store was emptied (a Redis restart without persistence, FLUSHALL)
    // between reading the set and writing the answer: the answer is written back, above every
    // version this process saw, instead of being dropped as "someone wrote something newer".
    let (mock, first) = one_time_provider(3600, Duration::from_millis(200)).await;
    let store = MemoryStore::new();
    let manager =
        TokenManager::with_config(client(&mock.base_url()), store.clone(), "k", quick()).unwrap();
    manager.seed(expired(&first)).await.unwrap();
    let refreshing = tokio::spawn({
        let manager = manager.clone();
        async move { manager.access_token().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The provider has the request; the store forgets everything.
    store.clear();
    let token = refreshing.await.unwrap().unwrap();
    let stored = store.load("k").await.unwrap().expect("written back");
    assert_eq!(stored.tokens.access_token.expose(), token.expose());
    assert_eq!(stored.version, 2);
    // It is the live set: the next refresh uses its token once.
    manager.force_refresh().await.unwrap();
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.refreshes, stats.reuses, stats.rejected, stats.grants),
        (2, 0, 0, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn an_older_stored_set_than_one_seen_is_never_refreshed_with() {
    // The store goes back to a set whose refresh token was spent (a restore from an older
    // snapshot). Its token is never sent: the newest set this process knows is put back,
    // marked as maybe in flight (a holder the store forgot may be sending it), and after the
    // grace the credential is re-authenticated (Easyship: client credentials).
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    // A 600 ms lock: the grace is 2 x 600 + 50 ms, and a request may take 300 ms.
    let config = ManagerConfig {
        lock_ttl: Duration::from_millis(600),
        max_backoff: Duration::from_millis(50),
        backoff: Duration::from_millis(1),
        min_refresh_interval: Duration::ZERO,
        ..ManagerConfig::default()
    };
    let manager = TokenManager::with_config(
        client_with_timeout(&mock.base_url(), Duration::from_millis(300)),
        store.clone(),
        "k",
        config,
    )
    .unwrap();
    manager.seed(own(expired(&first))).await.unwrap();
    let snapshot = store.load("k").await.unwrap().unwrap();
    manager.force_refresh().await.unwrap();
    let newest = manager.force_refresh().await.unwrap();
    assert_eq!(store.load("k").await.unwrap().unwrap().version, 3);
    // Back to version 1: `first`, spent two refreshes ago.
    let lock = store
        .try_lock("k", Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    store.clear();
    store.restore("k", &snapshot, &lock).await.unwrap();
    lock.release().await;

    assert_eq!(manager.force_refresh().await, Err(ManagerError::InFlight));
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(stored.version, 3, "the newest set known here was put back");
    assert_eq!(stored.tokens.access_token, newest);
    assert!(
        stored.sending.is_some(),
        "marked: its token may be in flight"
    );
    tokio::time::sleep(Duration::from_millis(1400)).await;
    manager.force_refresh().await.unwrap();
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.reuses, stats.rejected),
        (0, 0),
        "a spent token was sent: {stats:?}"
    );
    assert_eq!((stats.refreshes, stats.grants), (2, 1), "{stats:?}");
    assert_eq!(store.load("k").await.unwrap().unwrap().version, 4);
}

#[tokio::test]
async fn after_re_authentication_a_new_login_replaces_the_set_and_remove_forgets_it() {
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let dir = scratch("replace");
    let store = FileStore::new(&dir).unwrap();
    let manager = TokenManager::with_config(
        RefreshOnly(client(&mock.base_url())),
        store.clone(),
        "k",
        quick(),
    )
    .unwrap();
    manager.seed(expired(&first)).await.unwrap();
    mock.revoke_families();
    let err = manager.access_token().await.unwrap_err();
    assert!(matches!(err, ManagerError::ReAuthenticate { .. }), "{err}");
    // The user logs in again: a seed replaces the dead set (as `replace` would), and a seed
    // over a live set keeps it.
    let login = fresh("at-login", Some("rt-login"));
    assert!(manager.seed(login.clone()).await.unwrap());
    assert!(
        !manager
            .seed(fresh("at-other", Some("rt-other")))
            .await
            .unwrap()
    );
    assert_eq!(manager.access_token().await.unwrap().expose(), "at-login");
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(stored.tokens.access_token.expose(), "at-login");
    assert_eq!(stored.version, 2);
    manager.replace(login).await.unwrap();
    assert_eq!(store.load("k").await.unwrap().unwrap().version, 3);
    // Removed: gone from the store and from this process.
    manager.remove().await.unwrap();
    assert_eq!(store.load("k").await.unwrap(), None);
    assert!(!store.path_of("k").exists());
    let err = manager.access_token().await.unwrap_err();
    assert!(
        matches!(err, ManagerError::ReAuthenticate { cause: None }),
        "{err}"
    );
    // A second manager on the same store (another process) sees nothing either.
    let other =
        TokenManager::with_config(RefreshOnly(client(&mock.base_url())), store, "k", quick())
            .unwrap();
    assert!(other.token_set().await.is_err());
    std::fs::remove_dir_all(&dir).unwrap();
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
