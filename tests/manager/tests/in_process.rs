//! The manager in one process, against a mock that enforces one-time refresh tokens: the
//! cache, the schedule and the single flight.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokenkit::{ManagerConfig, ManagerError, MemoryStore, Rotation, TokenManager, TokenStore};
use tokenkit_manager_tests::{
    Scripted, client, expired, fast_config, fresh, one_time_provider, quick,
};

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
