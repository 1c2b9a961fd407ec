//! The refresh's tracing span, in a test binary of its own: tracing's per-callsite interest
//! cache is global, so a thread-local subscriber set beside other tests' threads can miss
//! events that those threads saw first.

use std::sync::Arc;
use std::time::Duration;
use tokenkit::{MemoryStore, TokenManager};
use tokenkit_manager_tests::{RefreshOnly, client, expired, one_time_provider};

#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn refresh_spans_name_the_provider_and_outcome_but_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let manager = TokenManager::new(client(&mock.base_url()), MemoryStore::new(), "k").unwrap();
    manager.seed(expired(&first)).await.unwrap();
    let token = manager.access_token().await.unwrap();
    // Refresh-only, so a dead token ends in re-authentication rather than a grant.
    let dead = TokenManager::new(
        RefreshOnly(client(&mock.base_url())),
        MemoryStore::new(),
        "k2",
    )
    .unwrap();
    dead.seed(expired("rt-unknown-SNTL")).await.unwrap();
    assert!(dead.access_token().await.is_err());
    // Nothing stored: a client-credentials grant, traced the same way.
    let granted = TokenManager::new(client(&mock.base_url()), MemoryStore::new(), "k3").unwrap();
    let from_grant = granted.access_token().await.unwrap();

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("tokenkit.refresh"), "{log}");
    assert!(log.contains("provider=\"easyship\""), "{log}");
    assert!(log.contains("outcome=\"ok\""), "{log}");
    assert!(log.contains("outcome=\"reauthenticate\""), "{log}");
    assert!(log.contains("credential=k3"), "{log}");
    for secret in [
        first.as_str(),
        token.expose(),
        from_grant.expose(),
        "rt-unknown-SNTL",
        "cs_easyship_example",
    ] {
        assert!(!log.contains(secret), "{secret} in {log}");
    }
}
