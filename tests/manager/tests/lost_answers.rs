//! Answers that do not prove a one-time refresh token unspent: a forwarding proxy in front of
//! the rotation-enforcing mock lets a refresh through and then fails the client (502, 503,
//! 504, 500: Envoy and Istio answer 503 "upstream reset before headers" after forwarding), or
//! fails it before forwarding (429). Counts what the provider saw.

use std::time::Duration;
use tokenkit::{FileStore, ManagerConfig, ManagerError, RefreshClient, TokenManager, TokenStore};
use tokenkit_manager_tests::{
    FaultyProxy, ProxyFault, expired, one_time_provider, own, scratch, workspace,
};
use tokenkit_mock::MockServer;

/// A short lock, so that the in-flight grace (two locks and the longest backoff) is short,
/// yet long enough for a loaded CI machine to answer well within an attempt.
fn config() -> ManagerConfig {
    ManagerConfig {
        lock_ttl: Duration::from_millis(900),
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        lock_poll: Duration::from_millis(5),
        min_refresh_interval: Duration::ZERO,
        ..ManagerConfig::default()
    }
}

fn grace() -> Duration {
    Duration::from_millis(2 * 900 + 50)
}

/// The HTTP timeout: half the lock, as `TokenManager::new` requires at most two thirds.
const TIMEOUT: Duration = Duration::from_millis(450);

fn easyship(base_url: &str) -> tokenkit_easyship::Client {
    tokenkit_manager_tests::client_with_timeout(base_url, TIMEOUT)
}

#[tokio::test]
async fn a_refresh_lost_behind_a_failing_gateway_is_never_resent() {
    for status in [502, 503, 504, 500] {
        let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
        let proxy = FaultyProxy::start(&mock).await;
        proxy.enqueue(ProxyFault::AfterForwarding(status));
        let dir = scratch(&format!("lost-{status}"));
        let store = FileStore::new(&dir).unwrap();
        let manager =
            TokenManager::with_config(easyship(&proxy.base_url()), store.clone(), "k", config())
                .unwrap();
        manager.seed(own(expired(&first))).await.unwrap();

        let err = manager.access_token().await.unwrap_err();
        assert!(
            matches!(&err, ManagerError::Refresh(e) if e.status() == Some(status)),
            "{status}: {err}"
        );
        // The provider spent the token; within the grace its sender might still have stored
        // the answer, so nobody sends it: not this process, not one sharing the store.
        let other =
            TokenManager::with_config(easyship(&proxy.base_url()), store.clone(), "k", config())
                .unwrap();
        for manager in [&manager, &other] {
            assert_eq!(manager.access_token().await, Err(ManagerError::InFlight));
        }
        assert_eq!(
            proxy.forwarded(),
            1,
            "{status}: the spent token went out again"
        );
        // After it, the credential is re-authenticated (Easyship offers client credentials).
        tokio::time::sleep(grace()).await;
        manager.access_token().await.unwrap();
        other.access_token().await.unwrap();

        let stats = mock.authority_stats();
        assert_eq!(stats.refreshes, 1, "{status}: {stats:?}");
        assert_eq!(stats.reuses, 0, "{status}: a revoked family: {stats:?}");
        assert_eq!(stats.rejected, 0, "{status}: {stats:?}");
        assert_eq!(stats.grants, 1, "{status}: {stats:?}");
        let stored = store.load("k").await.unwrap().unwrap();
        assert_eq!(stored.sending, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[tokio::test]
async fn a_timeout_after_the_provider_answered_is_never_resent() {
    // The provider takes longer than the client's timeout: it rotated, the answer is lost.
    let (mock, first) = one_time_provider(3600, TIMEOUT + Duration::from_millis(300)).await;
    let manager = TokenManager::with_config(
        easyship(&mock.base_url()),
        tokenkit::MemoryStore::new(),
        "k",
        config(),
    )
    .unwrap();
    manager.seed(expired(&first)).await.unwrap();
    let err = manager.access_token().await.unwrap_err();
    assert!(matches!(err, ManagerError::Refresh(_)), "{err}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mock.authority_stats().refreshes, 1);
    assert_eq!(manager.access_token().await, Err(ManagerError::InFlight));
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.refreshes, stats.reuses, stats.rejected),
        (1, 0, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_rate_limiter_before_the_provider_is_retried() {
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let proxy = FaultyProxy::start(&mock).await;
    proxy.enqueue(ProxyFault::BeforeForwarding(429));
    proxy.enqueue(ProxyFault::BeforeForwarding(429));
    let manager = TokenManager::with_config(
        easyship(&proxy.base_url()),
        tokenkit::MemoryStore::new(),
        "k",
        config(),
    )
    .unwrap();
    manager.seed(expired(&first)).await.unwrap();
    let token = manager.access_token().await.unwrap();
    assert_ne!(token.expose(), "at-expired");
    assert_eq!(proxy.forwarded(), 1);
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.refreshes, stats.reuses, stats.rejected, stats.grants),
        (1, 0, 0, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn within_a_declared_reuse_grace_the_lost_refresh_is_resent() {
    // Headerbank's spec declares `reuse-grace: 30`; the mock honours it.
    let provider =
        tokenkit_mock::load(workspace().join("tests/fixtures/specs/headerbank.yaml")).unwrap();
    let mock = MockServer::start(provider).await.unwrap();
    let first = mock.enforce_rotation(3600, Duration::ZERO);
    let proxy = FaultyProxy::start(&mock).await;
    proxy.enqueue(ProxyFault::AfterForwarding(502));
    proxy.enqueue(ProxyFault::AfterForwarding(504));
    let headerbank = tokenkit_headerbank::Client::builder("kiosk-12")
        .base_url(proxy.base_url())
        .http_config(tokenkit::HttpConfig {
            timeout: TIMEOUT,
            ..tokenkit::HttpConfig::default()
        })
        .build()
        .unwrap();
    assert_eq!(headerbank.reuse_grace(), Some(Duration::from_secs(30)));
    let manager =
        TokenManager::with_config(headerbank, tokenkit::MemoryStore::new(), "k", config()).unwrap();
    manager.seed(expired(&first)).await.unwrap();

    let token = manager.access_token().await.unwrap();
    assert_ne!(token.expose(), "at-expired");
    assert_eq!(proxy.forwarded(), 3);
    let stats = mock.authority_stats();
    assert_eq!(stats.reuses, 0, "{stats:?}");
    assert_eq!(stats.grace_resends, 2, "{stats:?}");
    // The set from the third answer works: the next refresh uses its token once.
    manager.force_refresh().await.unwrap();
    let stats = mock.authority_stats();
    assert_eq!((stats.reuses, stats.rejected), (0, 0), "{stats:?}");
}

#[tokio::test]
async fn without_a_reuse_grace_the_same_client_never_resends() {
    // The control for the test above: Easyship declares no grace.
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let proxy = FaultyProxy::start(&mock).await;
    proxy.enqueue(ProxyFault::AfterForwarding(502));
    let easyship = easyship(&proxy.base_url());
    assert_eq!(easyship.reuse_grace(), None);
    let manager =
        TokenManager::with_config(easyship, tokenkit::MemoryStore::new(), "k", config()).unwrap();
    manager.seed(expired(&first)).await.unwrap();
    assert!(manager.access_token().await.is_err());
    assert_eq!(proxy.forwarded(), 1);
    assert_eq!(mock.authority_stats().reuses, 0);
}
