//! Issued tokens are never lost to the store: failed writes retried, a retry taken over or
//! cancelled, a store that lost the set, an older stored set than one seen.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokenkit::{
    FileStore, ManagerConfig, ManagerError, MemoryStore, RefreshClient, Rotation, TokenManager,
    TokenStore,
};
use tokenkit_manager_tests::{
    FailingWrites, RefreshOnly, Scripted, client, client_with_timeout, expired, fresh,
    one_time_provider, own, quick, scratch, workspace,
};

/// A manager of `k` over a memory store whose writes fail on demand (none yet), seeded with an
/// expired set of a one-time provider's family: the provider, the store underneath, the
/// failing store and the manager.
async fn seeded_over_failing_writes() -> (
    tokenkit_mock::MockServer,
    MemoryStore,
    FailingWrites,
    TokenManager<tokenkit_easyship::Client, FailingWrites>,
) {
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let memory = MemoryStore::new();
    let store = FailingWrites::new(memory.clone(), 0);
    let manager =
        TokenManager::with_config(client(&mock.base_url()), store.clone(), "k", quick()).unwrap();
    manager.seed(expired(&first)).await.unwrap();
    (mock, memory, store, manager)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_tokens_survive_failed_writes() {
    let (mock, memory, store, manager) = seeded_over_failing_writes().await;
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

/// A sending mark that landed but whose answer was lost, with the store away for the clears
/// that follow (a database gone mid-commit): nothing is sent, and once the store answers the
/// holder clears the mark, so another process refreshes at once instead of taking the token
/// for in flight until the grace (two lock lifetimes, minutes) runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_whose_answer_was_lost_is_cleared_once_the_store_answers() {
    let (mock, memory, store, manager) = seeded_over_failing_writes().await;
    store.lost_marks.store(1, Ordering::SeqCst);
    store.failing_clears.store(3, Ordering::SeqCst);
    let error = manager.access_token().await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert_eq!(mock.authority_stats().refreshes, 0, "sent without a mark");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while memory.load("k").await.unwrap().unwrap().sending.is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the mark was never cleared ({} clears still to fail)",
            store.failing_clears.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.failing_clears.load(Ordering::SeqCst), 0);
    // Another process on the same store: the token is sendable, and sent once.
    let other = TokenManager::with_config(client(&mock.base_url()), memory, "k", quick()).unwrap();
    let token = other.access_token().await.unwrap();
    assert_ne!(token.expose(), "at-expired");
    let stats = mock.authority_stats();
    assert_eq!((stats.refreshes, stats.reuses), (1, 0), "{stats:?}");
}

/// The control for the test above: a mark that was already there (a request sent within the
/// provider's declared reuse grace) stands for a token that may be spent, so a resend whose
/// own mark fails leaves it in place, never clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_resend_mark_never_clears_the_first_mark() {
    let provider =
        tokenkit_mock::load(workspace().join("tests/fixtures/specs/headerbank.yaml")).unwrap();
    let mock = tokenkit_mock::MockServer::start(provider).await.unwrap();
    let first = mock.enforce_rotation(3600, Duration::ZERO);
    let headerbank = tokenkit_headerbank::Client::builder("kiosk-12")
        .base_url(mock.base_url())
        .build()
        .unwrap();
    assert!(headerbank.reuse_grace().is_some());
    let memory = MemoryStore::new();
    let store = FailingWrites::new(memory.clone(), 0);
    let manager = TokenManager::with_config(headerbank, store.clone(), "k", quick()).unwrap();
    manager.seed(expired(&first)).await.unwrap();
    // Another process sent the token a moment ago, and its answer is not stored yet.
    let lock = memory
        .try_lock("k", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert!(memory.mark_sending("k", 1, &lock).await.unwrap());
    lock.release().await;
    let marked = memory.load("k").await.unwrap().unwrap().sending;
    assert!(marked.is_some());
    store.lost_marks.store(1, Ordering::SeqCst);
    let error = manager.access_token().await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert_eq!(memory.load("k").await.unwrap().unwrap().sending, marked);
    assert_eq!(mock.authority_stats().refreshes, 0);
}

/// A removal, or a replacement, while the write of a refreshed set is being retried: the
/// writer holds the lock, yet the removal goes through at once (it cancels the retry), and
/// the removed set never comes back once the store takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_or_replacement_cancels_the_write_being_retried() {
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let memory = MemoryStore::new();
    let store = FailingWrites::new(memory.clone(), 0);
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
async fn a_hook_s_tokens_survive_a_failed_write_too() {
    let memory = MemoryStore::new();
    let store = FailingWrites::new(memory.clone(), 0);
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
    let store = FailingWrites::new(memory.clone(), 2);
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
    let store = FailingWrites::new(memory.clone(), 0);
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
