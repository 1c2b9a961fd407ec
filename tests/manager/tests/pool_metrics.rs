//! The metrics a pool reports through the `metrics` facade, read back from a recording
//! recorder (its own test binary: the recorder is process-wide).

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::time::Duration;
use tokenkit::{ManagerError, MemoryStore, Origin, PoolConfig, TokenPool};
use tokenkit_manager_tests::{client, expired, one_time_provider};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_by_outcome_latency_and_connections_are_recorded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this binary");

    let (mock, _) = one_time_provider(3600, Duration::from_millis(2)).await;
    let pool = TokenPool::new(
        client(&mock.base_url()),
        MemoryStore::new(),
        PoolConfig::default(),
    )
    .unwrap();
    for i in 0..20 {
        let mut set = expired(&mock.new_family().unwrap());
        set.origin = Some(Origin::Application);
        pool.seed(&format!("c{i}"), set).await.unwrap();
    }
    mock.revoke_family_of(&{
        let token = mock.new_family().unwrap();
        let mut set = expired(&token);
        set.origin = Some(Origin::Application);
        pool.seed("gone", set).await.unwrap();
        token
    });
    for i in 0..20 {
        pool.access_token(&format!("c{i}")).await.unwrap();
    }
    assert!(matches!(
        pool.access_token("gone").await,
        Err(ManagerError::ReAuthenticate { .. })
    ));

    let mut refreshes = std::collections::HashMap::new();
    let mut latencies = 0;
    let mut active = None;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (_, key) = key.into_parts();
        let labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        let label = |name: &str| {
            labels
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert!(
            labels
                .iter()
                .all(|(_, v)| !v.starts_with("rt-") && !v.starts_with("at-")),
            "a metric label holds a token: {labels:?}"
        );
        match (key.name(), value) {
            ("tokenkit_refreshes_total", DebugValue::Counter(n)) => {
                assert_eq!(label("provider").as_deref(), Some("easyship"));
                refreshes.insert(label("outcome").unwrap(), n);
            }
            ("tokenkit_refresh_duration_seconds", DebugValue::Histogram(samples)) => {
                latencies += samples.len();
            }
            ("tokenkit_connections", DebugValue::Gauge(n)) => active = Some(n.into_inner()),
            _ => {}
        }
    }
    assert_eq!(refreshes.get("ok"), Some(&20), "{refreshes:?}");
    assert_eq!(refreshes.get("reauthenticate"), Some(&1), "{refreshes:?}");
    assert_eq!(latencies, 21);
    assert_eq!(active, Some(21.0));
}
