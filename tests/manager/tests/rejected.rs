//! An API refused the access token (401): the manager gets a different one, with one refresh
//! per rejected token however many requests were refused with it, and a throttle for an API
//! that refuses everything. Against Easyship's spec served by the rotation-enforcing mock.

use std::time::Duration;
use tokenkit::{ManagerConfig, ManagerError, MemoryStore, TokenManager};
use tokenkit_manager_tests::{client, expired, one_time_provider, own};

fn config() -> ManagerConfig {
    ManagerConfig {
        rejection_interval: Duration::from_millis(400),
        ..tokenkit_manager_tests::fast_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_rejected_with_one_token_cause_one_refresh() {
    let (mock, first) = one_time_provider(3600, Duration::from_millis(20)).await;
    let manager =
        TokenManager::with_config(client(&mock.base_url()), MemoryStore::new(), "k", config())
            .unwrap();
    manager.seed(own(expired(&first))).await.unwrap();
    let rejected = manager.access_token().await.unwrap();
    assert_eq!(mock.authority_stats().refreshes, 1);

    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (manager, rejected) = (manager.clone(), rejected.clone());
            tokio::spawn(async move { manager.refresh_rejected(&rejected).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap().unwrap());
    }
    assert_eq!(
        mock.authority_stats().refreshes,
        2,
        "one refresh for the rejected token"
    );
    assert!(tokens.iter().all(|t| *t == tokens[0] && *t != rejected));

    // The new token is refused too, at once: the API refuses everything. Passed through.
    let err = manager.refresh_rejected(&tokens[0]).await.unwrap_err();
    assert!(matches!(err, ManagerError::TokenRejected), "{err:?}");
    assert_eq!(mock.authority_stats().refreshes, 2, "throttled: no refresh");
    // After the interval, one more.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let third = manager.refresh_rejected(&tokens[0]).await.unwrap();
    assert_ne!(third, tokens[0]);
    let stats = mock.authority_stats();
    assert_eq!((stats.refreshes, stats.reuses), (3, 0), "{stats:?}");
}

#[tokio::test]
async fn a_token_already_replaced_is_not_refreshed_again() {
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let manager =
        TokenManager::with_config(client(&mock.base_url()), MemoryStore::new(), "k", config())
            .unwrap();
    manager.seed(own(expired(&first))).await.unwrap();
    let old = manager.access_token().await.unwrap();
    let new = manager.force_refresh().await.unwrap();
    assert_ne!(new, old, "a forced refresh brings another token");
    // A request still holding the old token was refused: the current one, no refresh.
    assert_eq!(manager.refresh_rejected(&old).await.unwrap(), new);
    assert_eq!(mock.authority_stats().refreshes, 2);
}
