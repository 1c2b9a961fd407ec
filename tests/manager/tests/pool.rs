//! A pool of connections over one client and one store: every connection its own token family
//! at a rotation-enforcing mock, refreshed once however many callers, dropped from memory when
//! idle, listed, replaced and removed; events per connection.

use std::time::Duration;
use tokenkit::{
    ErrorKind, ManagerError, MemoryStore, PoolConfig, TokenEvent, TokenPool, TokenStore,
};
use tokenkit_manager_tests::{client, expired, one_time_provider};

fn config() -> PoolConfig {
    PoolConfig {
        manager: tokenkit_manager_tests::fast_config(),
        ..PoolConfig::default()
    }
}

/// Seeds `n` connections, each with a family of its own (an expired access token, so the
/// first use refreshes).
async fn seeded<C: tokenkit::RefreshClient + 'static, S: TokenStore>(
    pool: &TokenPool<C, S>,
    mock: &tokenkit_mock::MockServer,
    n: usize,
) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..n {
        let name = format!("customer-{i}");
        let family = mock.new_family().expect("rotation enforced");
        assert!(pool.seed(&name, expired(&family)).await.unwrap());
        names.push(name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_is_refreshed_once_however_many_callers() {
    let (mock, _) = one_time_provider(3600, Duration::from_millis(2)).await;
    let store = MemoryStore::new();
    let pool = TokenPool::new(client(&mock.base_url()), store.clone(), config()).unwrap();
    let names = seeded(&pool, &mock, 200).await;
    let mut tasks = Vec::new();
    for name in &names {
        for _ in 0..10 {
            let (pool, name) = (pool.clone(), name.clone());
            tasks.push(tokio::spawn(async move {
                (name.clone(), pool.access_token(&name).await)
            }));
        }
    }
    let mut tokens = std::collections::HashMap::new();
    for task in tasks {
        let (name, token) = task.await.unwrap();
        let token = token.unwrap().expose().to_owned();
        let first = tokens.entry(name).or_insert_with(|| token.clone());
        assert_eq!(*first, token, "one token per connection");
    }
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.refreshes, stats.reuses, stats.rejected),
        (200, 0, 0),
        "{stats:?}"
    );
    let distinct: std::collections::HashSet<_> = tokens.values().collect();
    assert_eq!(distinct.len(), 200, "connections never share a token");
    let mut listed = pool.connections().await.unwrap().unwrap();
    listed.sort();
    let mut wanted = names.clone();
    wanted.sort();
    assert_eq!(listed, wanted);
    assert_eq!(pool.active_connections(), 200);
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());
}

#[tokio::test]
async fn an_idle_connection_leaves_memory_and_comes_back_from_the_store() {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let config = PoolConfig {
        idle_after: Duration::from_millis(200),
        ..config()
    };
    let pool = TokenPool::new(client(&mock.base_url()), MemoryStore::new(), config).unwrap();
    let names = seeded(&pool, &mock, 50).await;
    let mut first = Vec::new();
    for name in &names {
        first.push(pool.access_token(name).await.unwrap().expose().to_owned());
    }
    assert_eq!(pool.active_connections(), 50);
    tokio::time::sleep(Duration::from_millis(300)).await;
    pool.sweep();
    assert_eq!(
        pool.active_connections(),
        0,
        "idle connections cost no memory"
    );
    // Back from the store, fresh: no refresh.
    for (name, token) in names.iter().zip(&first) {
        assert_eq!(pool.access_token(name).await.unwrap().expose(), token);
    }
    assert_eq!(mock.authority_stats().refreshes, 50);
}

#[tokio::test]
async fn a_connection_is_replaced_and_removed() {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let pool = TokenPool::new(client(&mock.base_url()), MemoryStore::new(), config()).unwrap();
    seeded(&pool, &mock, 3).await;
    let again = mock.new_family().unwrap();
    pool.replace("customer-1", expired(&again)).await.unwrap();
    pool.access_token("customer-1").await.unwrap();
    pool.remove("customer-2").await.unwrap();
    let mut listed = pool.connections().await.unwrap().unwrap();
    listed.sort();
    assert_eq!(listed, ["customer-0", "customer-1"]);
    // Nothing stored and the application's own credentials may not stand in: re-authenticate.
    let pool_default = TokenPool::new(
        client(&mock.base_url()),
        MemoryStore::new(),
        PoolConfig::default(),
    )
    .unwrap();
    let mut set = expired("rt-unknown");
    set.refresh_token = None;
    set.origin = Some(tokenkit::Origin::Application);
    pool_default.seed("customer-9", set).await.unwrap();
    let err = pool_default.access_token("customer-9").await.unwrap_err();
    assert!(
        matches!(err, ManagerError::ReAuthenticate { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn events_name_the_connection_and_carry_no_token() {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let pool = TokenPool::new(
        client(&mock.base_url()),
        MemoryStore::new(),
        PoolConfig::default(),
    )
    .unwrap();
    let mut events = pool.subscribe();
    let live = mock.new_family().unwrap();
    let revoked = mock.new_family().unwrap();
    let user = |token: &str| {
        let mut set = expired(token);
        set.origin = Some(tokenkit::Origin::Application);
        set
    };
    pool.seed("live", user(&live)).await.unwrap();
    pool.seed("revoked", user(&revoked)).await.unwrap();
    assert!(mock.revoke_family_of(&revoked));
    let token = pool.access_token("live").await.unwrap();
    let err = pool.access_token("revoked").await.unwrap_err();
    assert!(
        matches!(err, ManagerError::ReAuthenticate { .. }),
        "{err:?}"
    );

    let mut seen = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await
    {
        seen.push(event);
    }
    let refreshed: Vec<&TokenEvent> = seen
        .iter()
        .filter(|e| matches!(e, TokenEvent::Refreshed { .. }))
        .collect();
    assert_eq!(refreshed.len(), 1, "{seen:?}");
    assert_eq!(refreshed[0].connection(), "live");
    let reauth: Vec<&TokenEvent> = seen
        .iter()
        .filter(|e| matches!(e, TokenEvent::ReauthenticationRequired { .. }))
        .collect();
    assert_eq!(reauth.len(), 1, "one per revoked connection: {seen:?}");
    assert_eq!(reauth[0].connection(), "revoked");
    if let TokenEvent::ReauthenticationRequired { cause, .. } = reauth[0] {
        assert_eq!(
            cause.as_ref().map(|c| c.kind()),
            Some(ErrorKind::ReAuthenticate)
        );
    }
    // No event shows a token: neither the access token served nor either refresh token.
    let printed = format!("{seen:?}");
    for secret in [token.expose(), live.as_str(), revoked.as_str()] {
        assert!(
            !printed.contains(secret),
            "an event shows a token: {printed}"
        );
    }
}

/// Two pools on one store stand for two replicas: a revoked connection, asked for by both many
/// times, is sent to the provider once, reported once, and stays dead (marked, never resent)
/// until the customer's new consent replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_connection_is_reported_once_by_replicas_sharing_a_store() {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    // Without the fallback to the application's own client credentials: a dead connection.
    let config = || PoolConfig {
        manager: tokenkit::ManagerConfig {
            client_credentials_fallback: tokenkit::ClientCredentialsFallback::Never,
            ..tokenkit_manager_tests::fast_config()
        },
        ..PoolConfig::default()
    };
    let replicas: Vec<_> = (0..2)
        .map(|_| TokenPool::new(client(&mock.base_url()), store.clone(), config()).unwrap())
        .collect();
    let mut events: Vec<_> = replicas.iter().map(TokenPool::subscribe).collect();
    let revoked = mock.new_family().unwrap();
    let mut set = expired(&revoked);
    set.origin = Some(tokenkit::Origin::Application);
    replicas[0].seed("gone", set).await.unwrap();
    assert!(mock.revoke_family_of(&revoked));

    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..50 {
        let pool = replicas[round % 2].clone();
        tasks.spawn(async move { pool.access_token("gone").await });
    }
    for result in tasks.join_all().await {
        assert!(
            matches!(result, Err(ManagerError::ReAuthenticate { .. })),
            "{result:?}"
        );
    }
    let stored = store
        .load(&replicas[0].key_of("gone"))
        .await
        .unwrap()
        .unwrap();
    assert!(stored.dead.is_some(), "the set is marked dead: {stored:?}");
    assert_eq!(
        stored.tokens.refresh_token.as_ref().map(|t| t.expose()),
        Some(revoked.as_str()),
        "kept for inspection"
    );
    let mut reports = 0;
    for receiver in &mut events {
        while let Ok(event) = receiver.try_recv() {
            reports += usize::from(matches!(event, TokenEvent::ReauthenticationRequired { .. }));
        }
    }
    assert_eq!(reports, 1, "one report across the replicas");
    assert_eq!(
        mock.authority_stats().rejected,
        1,
        "the dead token was sent once"
    );

    // The customer consents again: the new set clears the mark and works everywhere.
    let again = mock.new_family().unwrap();
    replicas[1].replace("gone", expired(&again)).await.unwrap();
    for pool in &replicas {
        pool.access_token("gone").await.unwrap();
    }
    assert_eq!(
        store
            .load(&replicas[0].key_of("gone"))
            .await
            .unwrap()
            .unwrap()
            .dead,
        None
    );
    assert_eq!(mock.authority_stats().refreshes, 1);
}

/// A connection swept from memory still knows the newest version it saw: when the store goes
/// back to an older set (restored from a snapshot), its spent refresh token is never sent.
#[tokio::test]
async fn a_swept_connection_still_knows_a_store_gone_backwards() {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    let pool = TokenPool::new(client(&mock.base_url()), store.clone(), config()).unwrap();
    let family = mock.new_family().unwrap();
    pool.seed("c", expired(&family)).await.unwrap();
    let key = pool.key_of("c");
    let snapshot = store.load(&key).await.unwrap().unwrap();
    pool.access_token("c").await.unwrap();
    assert_eq!(store.load(&key).await.unwrap().unwrap().version, 2);
    pool.sweep_unused_for(Duration::ZERO);
    assert_eq!(pool.active_connections(), 0);
    // Back to version 1, whose refresh token was spent.
    store.clear();
    let lock = store
        .try_lock(&key, Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    store.restore(&key, &snapshot, &lock).await.unwrap();
    lock.release().await;
    let _ = pool.force_refresh("c").await;
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.reuses, stats.rejected),
        (0, 0),
        "the spent token was sent: {stats:?}"
    );
}
