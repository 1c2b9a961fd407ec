//! No token crosses a boundary: not from the application's own grant into a customer's
//! connection, not between two providers' (or two tenant hosts') pools on one store, not
//! between pools whose key prefixes overlap, and not from a removed credential into what the
//! customer connects next. Each boundary is tried with two pools or two managers on one store
//! (two processes' worth) against rotation-enforcing mocks, which count every token they see.

use std::time::{Duration, SystemTime};
use tokenkit::{
    FileStore, ManagerError, MemoryStore, Origin, PoolConfig, RedisStore, TokenManager, TokenPool,
    TokenStore,
};
use tokenkit_manager_tests::{
    Redis, client, expired, fast_config, one_time_provider, scratch, wait_for, workspace,
};
use tokenkit_mock::MockServer;

/// Idlebank (another provider) served by a rotation-enforcing mock; its client.
async fn idlebank() -> (MockServer, tokenkit_idlebank::Client) {
    let spec = workspace().join("tests/fixtures/specs/idlebank.yaml");
    let mock = MockServer::start(tokenkit_mock::load(spec).unwrap())
        .await
        .unwrap();
    mock.enforce_rotation(3600, Duration::ZERO);
    let client = tokenkit_idlebank::Client::builder("idle-client", "idle-secret")
        .base_url(mock.base_url())
        .build()
        .unwrap();
    (mock, client)
}

fn pool_config() -> PoolConfig {
    PoolConfig {
        manager: fast_config(),
        ..PoolConfig::default()
    }
}

/// A customer's set (as a consent brought it) with an expired access token.
fn consented(refresh_token: &str) -> tokenkit::TokenSet {
    let mut set = expired(refresh_token);
    set.origin = Some(Origin::AuthorizationCode);
    set
}

#[tokio::test]
async fn a_connection_nobody_connected_gets_no_token_not_even_the_applications_own() {
    // Easyship offers client credentials, and `fast_config` even says `Always`: a pool's
    // connections are customers' all the same unless the pool says otherwise.
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    let replicas: Vec<_> = (0..2)
        .map(|_| TokenPool::new(client(&mock.base_url()), store.clone(), pool_config()).unwrap())
        .collect();
    // A name from request data, never connected: a clear error, nothing sent, nothing stored.
    for hostile in [
        "customer-never-connected",
        "../../etc",
        "conn:x:y",
        "",
        "%3A",
    ] {
        assert_eq!(
            replicas[0].access_token(hostile).await,
            Err(ManagerError::NotConnected),
            "{hostile:?}"
        );
        assert_eq!(
            store.load(&replicas[0].key_of(hostile)).await.unwrap(),
            None
        );
    }
    assert_eq!(mock.authority_stats().grants, 0, "the application's token");
    // The customer connects: the seed is stored and used.
    let family = mock.new_family().unwrap();
    assert!(replicas[0].seed("acme", consented(&family)).await.unwrap());
    let token = replicas[1].access_token("acme").await.unwrap();
    assert_ne!(token.expose(), "at-expired");
    // Removed on one replica: the other has nothing to refresh from, and grants nothing.
    replicas[0].remove("acme").await.unwrap();
    assert_eq!(
        replicas[1].force_refresh("acme").await,
        Err(ManagerError::NotConnected)
    );
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.grants, stats.refreshes, stats.reuses),
        (0, 1, 0),
        "{stats:?}"
    );

    // Only a pool that says so fills its connections with the grant.
    let own = TokenPool::new(
        client(&mock.base_url()),
        store.clone(),
        PoolConfig {
            key_prefix: Some("app:".into()),
            grant_fills_connections: true,
            ..pool_config()
        },
    )
    .unwrap();
    own.access_token("service").await.unwrap();
    assert_eq!(mock.authority_stats().grants, 1);
    let granted = store.load(&own.key_of("service")).await.unwrap().unwrap();
    assert_eq!(granted.tokens.origin, Some(Origin::ClientCredentials));
    // A customer's seed over a set the grant made replaces it (and so over a dead one).
    let family = mock.new_family().unwrap();
    assert!(own.seed("service", consented(&family)).await.unwrap());
    let stored = store.load(&own.key_of("service")).await.unwrap().unwrap();
    assert_eq!(stored.tokens.origin, Some(Origin::AuthorizationCode));
    assert_eq!(
        stored.tokens.refresh_token.as_ref().map(|t| t.expose()),
        Some(family.as_str())
    );
}

#[tokio::test]
async fn a_seed_over_a_dead_connection_replaces_it() {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    let pool = TokenPool::new(client(&mock.base_url()), store.clone(), pool_config()).unwrap();
    // A listener: the process that can report it marks the set dead.
    let _events = pool.subscribe();
    let revoked = mock.new_family().unwrap();
    assert!(pool.seed("c", consented(&revoked)).await.unwrap());
    assert!(mock.revoke_family_of(&revoked));
    assert!(matches!(
        pool.access_token("c").await,
        Err(ManagerError::ReAuthenticate { .. })
    ));
    assert!(
        store
            .load(&pool.key_of("c"))
            .await
            .unwrap()
            .unwrap()
            .dead
            .is_some()
    );
    // A set that is alive is kept; a dead one is replaced.
    let again = mock.new_family().unwrap();
    assert!(pool.seed("c", consented(&again)).await.unwrap());
    assert!(!pool.seed("c", consented("rt-third")).await.unwrap());
    let stored = store.load(&pool.key_of("c")).await.unwrap().unwrap();
    assert_eq!(stored.dead, None);
    assert_eq!(
        stored.tokens.refresh_token.as_ref().map(|t| t.expose()),
        Some(again.as_str())
    );
    pool.access_token("c").await.unwrap();
    assert_eq!(mock.authority_stats().reuses, 0);
}

#[tokio::test]
async fn two_providers_pools_on_one_store_never_see_each_others_sets() {
    let (easy_mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let (idle_mock, idle) = idlebank().await;
    let store = MemoryStore::new();
    // The defaults scope keys by provider: one customer name, two connections.
    let easy = TokenPool::new(client(&easy_mock.base_url()), store.clone(), pool_config()).unwrap();
    let idle_pool = TokenPool::new(idle.clone(), store.clone(), pool_config()).unwrap();
    assert_ne!(easy.key_of("acme"), idle_pool.key_of("acme"));
    let idle_family = idle_mock.new_family().unwrap();
    idle_pool
        .seed("acme", consented(&idle_family))
        .await
        .unwrap();
    assert_eq!(
        easy.access_token("acme").await,
        Err(ManagerError::NotConnected)
    );
    assert_eq!(
        easy.connections().await.unwrap().unwrap(),
        Vec::<String>::new()
    );

    // A hostile configuration: both pools under one prefix. The set records its issuer, and
    // Easyship's pool refuses Idlebank's: nothing sent to Easyship, nothing marked or changed.
    let shared = || PoolConfig {
        key_prefix: Some("conn:".into()),
        ..pool_config()
    };
    let easy = TokenPool::new(client(&easy_mock.base_url()), store.clone(), shared()).unwrap();
    let idle_pool = TokenPool::new(idle, store.clone(), shared()).unwrap();
    idle_pool
        .seed("acme", consented(&idle_family))
        .await
        .unwrap();
    let before = store.load("conn:acme").await.unwrap().unwrap();
    for attempt in [
        easy.access_token("acme").await.map(drop),
        easy.force_refresh("acme").await.map(drop),
        easy.replace("acme", consented("rt-easy")).await,
        easy.remove("acme").await,
    ] {
        assert!(
            matches!(&attempt, Err(ManagerError::OtherIssuer { stored }) if stored.starts_with("idlebank ")),
            "{attempt:?}"
        );
    }
    let stats = easy_mock.authority_stats();
    assert_eq!(
        (stats.refreshes, stats.rejected, stats.grants),
        (0, 0, 0),
        "Idlebank's token went to Easyship: {stats:?}"
    );
    assert_eq!(store.load("conn:acme").await.unwrap(), Some(before));
    // Idlebank's own pool still uses it.
    idle_pool.access_token("acme").await.unwrap();
    assert_eq!(idle_mock.authority_stats().refreshes, 1);
}

#[tokio::test]
async fn two_tenant_hosts_of_one_provider_never_see_each_others_sets() {
    // Two Easyship hosts (a tenant each) writing the same key.
    let (first, _) = one_time_provider(3600, Duration::ZERO).await;
    let (second, _) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    let a = TokenManager::with_config(client(&first.base_url()), store.clone(), "k", fast_config())
        .unwrap();
    let b = TokenManager::with_config(
        client(&second.base_url()),
        store.clone(),
        "k",
        fast_config(),
    )
    .unwrap();
    a.seed(consented(&first.new_family().unwrap()))
        .await
        .unwrap();
    assert!(matches!(
        b.access_token().await,
        Err(ManagerError::OtherIssuer { .. })
    ));
    let stats = second.authority_stats();
    assert_eq!((stats.refreshes, stats.rejected, stats.grants), (0, 0, 0));
    a.access_token().await.unwrap();
}

#[tokio::test]
async fn pools_whose_prefixes_overlap_list_and_keep_only_their_own() {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    let pool = |prefix: &str| {
        TokenPool::new(
            client(&mock.base_url()),
            store.clone(),
            PoolConfig {
                key_prefix: Some(prefix.into()),
                ..pool_config()
            },
        )
        .unwrap()
    };
    let (outer, inner) = (pool("conn:"), pool("conn:x:"));
    let dies = SystemTime::now() + Duration::from_secs(30);
    for (p, names) in [(&outer, ["x:y", "a", "x"]), (&inner, ["y", "b", "x:y"])] {
        for name in names {
            let mut set = consented(&format!("rt-{name}"));
            set.refresh_expires_at = Some(dies);
            assert!(p.seed(name, set).await.unwrap(), "{name}");
        }
    }
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(outer.connections().await.unwrap().unwrap()),
        ["a", "x", "x:y"]
    );
    assert_eq!(
        sorted(inner.connections().await.unwrap().unwrap()),
        ["b", "x:y", "y"]
    );
    // Six keys, none shared.
    assert_eq!(store.list("conn:").await.unwrap().unwrap().len(), 6);
    // A prefix another pool's could start with is refused.
    assert!(matches!(
        TokenPool::new(
            client(&mock.base_url()),
            store.clone(),
            PoolConfig {
                key_prefix: Some("conn".into()),
                ..pool_config()
            }
        ),
        Err(ManagerError::Config(_))
    ));
}

/// Two managers (two processes) on `store`: one removes the credential and the customer
/// connects again; the other, which had seen a later version of the removed set, never puts
/// the removed set back and never serves it after its cache.
async fn a_removed_credential_stays_removed(store: impl TokenStore + Clone, what: &str) {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let manager = || {
        TokenManager::with_config(client(&mock.base_url()), store.clone(), "k", fast_config())
            .unwrap()
    };
    let (one, other) = (manager(), manager());
    one.seed(consented(&mock.new_family().unwrap()))
        .await
        .unwrap();
    // Both see version 2 of the first consent; the other makes version 3.
    one.force_refresh().await.unwrap();
    other.access_token().await.unwrap();
    let old = other.force_refresh().await.unwrap();
    assert_eq!(store.load("k").await.unwrap().unwrap().version, 3, "{what}");
    one.remove().await.unwrap();
    let second = mock.new_family().unwrap();
    assert!(one.seed(consented(&second)).await.unwrap(), "{what}");
    let seeded = store.load("k").await.unwrap().unwrap();
    assert!(
        seeded.version > 3,
        "{what}: version {} repeats",
        seeded.version
    );
    // The other process refreshes: from the new consent, not by restoring the removed set.
    let token = other.force_refresh().await.unwrap();
    assert_ne!(token, old, "{what}");
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(stored.version, seeded.version + 1, "{what}");
    assert_eq!(one.access_token().await.unwrap(), token, "{what}");
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.refreshes, stats.reuses, stats.rejected),
        (3, 0, 0),
        "{what}: {stats:?}"
    );
}

#[tokio::test]
async fn a_removed_credential_stays_removed_in_every_store() {
    a_removed_credential_stays_removed(MemoryStore::new(), "memory").await;
    let dir = scratch("boundaries-removed");
    a_removed_credential_stays_removed(FileStore::new(&dir).unwrap(), "files").await;
    std::fs::remove_dir_all(&dir).unwrap();
    let redis = Redis::start();
    let store = RedisStore::connect(&redis.url, "removed").await.unwrap();
    a_removed_credential_stays_removed(store, "redis").await;
}

/// A server whose variable is the whole host (`https://{domain}/…`) is generated only with the
/// hosts it may name (`x-host-pattern`), and the builder refuses any other: the refresh token
/// and the client secret never go where a tenant's value points.
#[test]
fn a_tenant_value_that_is_the_whole_host_stays_within_the_declared_hosts() {
    let build = |domain: &str| {
        tokenkit_domainbank::Client::builder(domain, "client", "secret")
            .build()
            .map(|c| c.base_url().to_owned())
    };
    assert_eq!(
        build("acme.domainbank.example").unwrap(),
        "https://acme.domainbank.example/eu/v2"
    );
    assert_eq!(
        build("eu.acme.DOMAINBANK.example").unwrap(),
        "https://eu.acme.DOMAINBANK.example/eu/v2"
    );
    build("login.domainbank.example").unwrap();
    for hostile in [
        "evil.example",
        "domainbank.example",
        "domainbank.example.evil.example",
        "evildomainbank.example",
        "login.domainbank.example.evil.example",
        "127.0.0.1",
    ] {
        let err = build(hostile).unwrap_err();
        assert!(
            err.to_string().contains("does not allow"),
            "{hostile}: {err}"
        );
    }
    // Characters that would change the URL's shape are refused before the host is looked at.
    for hostile in [
        "evil.example/x",
        "evil.example#",
        "a@evil.example",
        "evil.example:1",
    ] {
        assert!(build(hostile).is_err(), "{hostile}");
    }
}

/// A dead connection is claimed for reporting only where someone listens: a replica without a
/// subscriber finds it dead first and marks it so, but leaves the report; the replica with one
/// reports it, once, and
/// `dead_connections` lists it for a subscriber that fell behind. A name with nothing stored
/// is never reported.
#[tokio::test]
async fn a_report_reaches_a_listener_even_when_a_deaf_replica_finds_it_first() {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    let deaf = TokenPool::new(client(&mock.base_url()), store.clone(), pool_config()).unwrap();
    let listening = TokenPool::new(client(&mock.base_url()), store.clone(), pool_config()).unwrap();
    let mut events = listening.subscribe();
    let revoked = mock.new_family().unwrap();
    deaf.seed("c", consented(&revoked)).await.unwrap();
    assert!(mock.revoke_family_of(&revoked));
    assert!(matches!(
        deaf.access_token("c").await,
        Err(ManagerError::ReAuthenticate { .. })
    ));
    // Marked dead (nobody sends it again), not announced: nobody heard it there.
    let marked = store.load(&deaf.key_of("c")).await.unwrap().unwrap();
    assert!(
        marked.dead.is_some() && marked.announced.is_none(),
        "{marked:?}"
    );
    for _ in 0..3 {
        assert!(matches!(
            listening.access_token("c").await,
            Err(ManagerError::ReAuthenticate { .. })
        ));
        let _ = listening.access_token("never-connected").await;
    }
    let mut reports = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let tokenkit::TokenEvent::ReauthenticationRequired { connection, .. } = event {
            reports.push(connection.to_string());
        }
    }
    assert_eq!(reports, ["c"], "one report, for the stored connection only");
    assert_eq!(listening.dead_connections().await.unwrap().unwrap(), ["c"]);
    assert_eq!(mock.authority_stats().reuses, 0);
}

/// Two OAuth applications of one provider and host writing one key: the issuer names the
/// client id the client keeps, so the second application neither sends nor serves the first
/// one's set.
#[tokio::test]
async fn two_applications_of_one_provider_never_see_each_others_sets() {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    let other_app = tokenkit_easyship::Client::builder("another-application", "its-secret")
        .base_url(mock.base_url())
        .build()
        .unwrap();
    let first =
        TokenManager::with_config(client(&mock.base_url()), store.clone(), "k", fast_config())
            .unwrap();
    let second = TokenManager::with_config(other_app, store.clone(), "k", fast_config()).unwrap();
    first
        .seed(consented(&mock.new_family().unwrap()))
        .await
        .unwrap();
    let stored = store.load("k").await.unwrap().unwrap();
    assert!(
        stored
            .tokens
            .issuer
            .as_deref()
            .is_some_and(|i| i.ends_with(" client cid_easyship_example")),
        "{:?}",
        stored.tokens.issuer
    );
    assert!(matches!(
        second.access_token().await,
        Err(ManagerError::OtherIssuer { .. })
    ));
    let stats = mock.authority_stats();
    assert_eq!((stats.refreshes, stats.rejected, stats.grants), (0, 0, 0));
    first.access_token().await.unwrap();
}

/// A caller that gives up (a browser closed mid-callback) after the provider has the code
/// loses nothing: the exchange runs in a task of its own, and the set it brings is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_exchange_whose_caller_gives_up_still_stores_its_set() {
    let (mock, _) = one_time_provider(3600, Duration::from_millis(400)).await;
    let store = MemoryStore::new();
    let pool = TokenPool::new(client(&mock.base_url()), store.clone(), pool_config()).unwrap();
    let exchange = tokenkit::CodeExchange {
        code: "code-from-the-redirect".into(),
        redirect_uri: "https://app.example/callback".into(),
        verifier: None,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    tokio::select! {
        answer = pool.seed_from_code("c", &exchange) => {
            panic!("answered before the provider had the code: {answer:?}")
        }
        // The provider has the code (it answers 400 ms later).
        () = wait_for("the code to arrive", Duration::from_secs(20), || {
            mock.authority_stats().grants > 0
        }) => {}
    }
    // The caller's future is gone; the exchange goes on and stores what it brings.
    let key = pool.key_of("c");
    let stored = loop {
        if let Some(stored) = store.load(&key).await.unwrap() {
            break stored;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the code's set was lost with its caller"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stored.tokens.origin, Some(Origin::AuthorizationCode));
    pool.access_token("c").await.unwrap();
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.grants, stats.reuses, stats.rejected),
        (1, 0, 0),
        "{stats:?}"
    );
}

/// A keeper whose prefix another pool's starts with (`conn:` under `conn:x:`) walks past the
/// other pool's due entries, even a whole page of them, to its own; and renews none of theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_walks_past_another_pools_keys_under_its_prefix() {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    let pool = |prefix: &str| {
        let mut config = PoolConfig {
            key_prefix: Some(prefix.into()),
            ..pool_config()
        };
        config.manager.refresh_token_margin = Duration::from_secs(30);
        TokenPool::new(client(&mock.base_url()), store.clone(), config).unwrap()
    };
    let (outer, inner) = (pool("conn:"), pool("conn:x:"));
    let now = SystemTime::now();
    let seed = |dies: u64| {
        let mut set = consented(&mock.new_family().unwrap());
        set.refresh_expires_at = Some(now + Duration::from_secs(dies));
        set
    };
    for i in 0..6 {
        inner.seed(&format!("c{i}"), seed(10)).await.unwrap();
    }
    outer.seed("mine", seed(20)).await.unwrap();
    let keeper = outer
        .keep(tokenkit::KeeperConfig {
            interval: Duration::from_millis(100),
            jitter: Duration::from_millis(50),
            batch: 2,
            ..tokenkit::KeeperConfig::default()
        })
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store.load("conn:mine").await.unwrap().unwrap().version < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the keeper never reached its own connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    keeper.shutdown().await;
    for i in 0..6 {
        let theirs = store
            .load(&inner.key_of(&format!("c{i}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(theirs.version, 1, "another pool's connection was renewed");
    }
    assert_eq!(mock.authority_stats().refreshes, 1);
    // Now the inner pool's keeper too: the outer keeper's claims on the inner pool's keys
    // (they share its prefix's start) are given up at once, so the inner keeper renews its own.
    let outer_keeper = outer.keep(tokenkit::KeeperConfig {
        interval: Duration::from_millis(100),
        jitter: Duration::from_millis(50),
        ..tokenkit::KeeperConfig::default()
    });
    let inner_keeper = inner.keep(tokenkit::KeeperConfig {
        interval: Duration::from_millis(100),
        jitter: Duration::from_millis(50),
        ..tokenkit::KeeperConfig::default()
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for i in 0..6 {
        let key = inner.key_of(&format!("c{i}"));
        while store.load(&key).await.unwrap().unwrap().version < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the other pool's keeper kept c{i} from its own"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    outer_keeper.unwrap().shutdown().await;
    inner_keeper.unwrap().shutdown().await;
}
