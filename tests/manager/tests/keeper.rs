//! The keeper keeps connections alive that nobody uses: Idlebank's one-time refresh tokens die
//! 6 s after they were issued unless used, and no test here asks for a token.

use std::time::{Duration, SystemTime};
use tokenkit::{
    FileStore, KeeperConfig, ManagerConfig, MemoryStore, Origin, PoolConfig, TokenEvent, TokenPool,
    TokenStore,
};
use tokenkit_manager_tests::{expired, scratch, wait_for, workspace};
use tokenkit_mock::MockServer;

async fn idle_provider() -> (MockServer, tokenkit_idlebank::Client) {
    let spec = workspace().join("tests/fixtures/specs/idlebank.yaml");
    let mock = MockServer::start(tokenkit_mock::load(spec).unwrap())
        .await
        .unwrap();
    mock.enforce_rotation(3600, Duration::from_millis(2));
    mock.quiet();
    let client = idlebank(&mock.base_url());
    (mock, client)
}

/// An Idlebank client sending to `base_url`.
fn idlebank(base_url: &str) -> tokenkit_idlebank::Client {
    tokenkit_idlebank::Client::builder("idle-client", "idle-secret")
        .base_url(base_url)
        .build()
        .unwrap()
}

/// A pool for the failure tests: connections whose refresh tokens have a few seconds left are
/// due at once (a 10 s margin), and each renewal is one request, unpaced, so failures come
/// quickly.
fn failing_pool(
    base_url: &str,
    store: MemoryStore,
) -> TokenPool<tokenkit_idlebank::Client, MemoryStore> {
    let mut config = pool_config();
    config.manager.refresh_token_margin = Duration::from_secs(10);
    config.manager.max_attempts = 1;
    config.manager.min_refresh_interval = Duration::ZERO;
    TokenPool::new(idlebank(base_url), store, config).unwrap()
}

fn pool_config() -> PoolConfig {
    PoolConfig {
        manager: ManagerConfig {
            refresh_token_margin: Duration::from_secs(3),
            lock_poll: Duration::from_millis(5),
            ..ManagerConfig::default()
        },
        ..PoolConfig::default()
    }
}

fn keeper_config() -> KeeperConfig {
    KeeperConfig {
        interval: Duration::from_millis(100),
        jitter: Duration::from_millis(100),
        concurrency: 64,
        per_second: 2000,
        ..KeeperConfig::default()
    }
}

/// A user's connection whose refresh token dies 6 s from now (as the provider issued it).
fn connection(token: &str) -> tokenkit::TokenSet {
    let mut set = expired(token);
    set.expires_at = Some(SystemTime::now() + Duration::from_secs(3600));
    set.refresh_expires_at = Some(SystemTime::now() + Duration::from_secs(6));
    set.origin = Some(Origin::Application);
    set
}

async fn keeps_alive<S: TokenStore + Clone>(store: S, connections: usize, what: &str) {
    let (mock, client) = idle_provider().await;
    let pool = TokenPool::new(client, store.clone(), pool_config()).unwrap();
    let mut names = Vec::new();
    for i in 0..connections {
        let name = format!("c{i}");
        pool.seed(&name, connection(&mock.new_family().unwrap()))
            .await
            .unwrap();
        names.push(name);
    }
    let keeper = pool.keep(keeper_config()).unwrap();
    // Three renewals of every connection (three idle lifetimes) with nobody asking for a token:
    // a count, so a slow machine takes longer instead of failing.
    let renewals = 3 * connections as u64;
    wait_for(
        "three renewals of each connection",
        Duration::from_secs(60),
        || mock.authority_stats().refreshes >= renewals,
    )
    .await;
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.expired, stats.reuses, stats.rejected),
        (0, 0, 0),
        "{what}: {stats:?}"
    );
    // Each refresh renews a 6 s token with a 3 s margin: at least one every ~3-4 s.
    assert!(
        stats.refreshes >= 3 * connections as u64,
        "{what}: {} refreshes for {connections} connections",
        stats.refreshes
    );
    for name in &names {
        let stored = store
            .load(&format!("conn:idlebank:{name}"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            stored.tokens.refresh_expires_at.unwrap() > SystemTime::now(),
            "{what}: {name}"
        );
    }
    // A revoked connection is reported once and left alone.
    let mut events = pool.subscribe();
    let revoked = &names[0];
    let token = store
        .load(&format!("conn:idlebank:{revoked}"))
        .await
        .unwrap()
        .unwrap();
    assert!(mock.revoke_family_of(token.tokens.refresh_token.unwrap().expose()));
    let given_up = || {
        keeper
            .stats()
            .given_up
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    wait_for(
        "the revoked connection given up",
        Duration::from_secs(30),
        || given_up() >= 1,
    )
    .await;
    // Another look or two past it: it is not sent again.
    let looked = mock.authority_stats().refreshes;
    wait_for(
        "more renewals of the others",
        Duration::from_secs(30),
        || mock.authority_stats().refreshes >= looked + connections as u64,
    )
    .await;
    let stats = mock.authority_stats();
    assert_eq!(
        stats.rejected, 1,
        "{what}: the dead token was sent once: {stats:?}"
    );
    assert_eq!(given_up(), 1);
    let mut reauth = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let TokenEvent::ReauthenticationRequired { connection, .. } = event {
            reauth.push(connection.to_string());
        }
    }
    assert_eq!(reauth, std::slice::from_ref(revoked), "{what}");
    assert!(
        mock.violations().is_empty(),
        "{what}: {:?}",
        mock.violations()
    );
    keeper.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keeper_keeps_idle_connections_alive_in_memory() {
    keeps_alive(MemoryStore::new(), 300, "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keeper_keeps_idle_connections_alive_in_files() {
    let dir = scratch("keeper-files");
    keeps_alive(FileStore::new(&dir).unwrap(), 100, "files").await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proactive_keeper_renews_connections_in_use_before_their_access_token_expires() {
    let spec = workspace().join("tests/fixtures/specs/idlebank.yaml");
    let mock = MockServer::start(tokenkit_mock::load(spec).unwrap())
        .await
        .unwrap();
    // Access tokens that live 2 s; refreshed 1 s before they expire.
    mock.enforce_rotation(2, Duration::from_millis(2));
    let client = tokenkit_idlebank::Client::builder("idle-client", "idle-secret")
        .base_url(mock.base_url())
        .build()
        .unwrap();
    let config = PoolConfig {
        manager: ManagerConfig {
            skew: Duration::from_secs(1),
            refresh_token_margin: Duration::from_secs(1),
            ..ManagerConfig::default()
        },
        ..PoolConfig::default()
    };
    let pool = TokenPool::new(client, MemoryStore::new(), config).unwrap();
    let mut set = connection(&mock.new_family().unwrap());
    set.expires_at = Some(SystemTime::now() + Duration::from_secs(2));
    pool.seed("in-use", set).await.unwrap();
    pool.access_token("in-use").await.unwrap();
    let after_first = mock.authority_stats().refreshes;
    let keeper = pool
        .keep(KeeperConfig {
            proactive: true,
            ..keeper_config()
        })
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let renewed = mock.authority_stats().refreshes - after_first;
    assert!(
        renewed >= 3,
        "{renewed} renewals of a 2 s access token in 5 s"
    );
    // A caller now finds a fresh token without waiting: the cached path answers.
    let started = std::time::Instant::now();
    pool.access_token("in-use").await.unwrap();
    assert_eq!(
        mock.authority_stats().refreshes - after_first,
        renewed,
        "the call refreshed"
    );
    assert!(started.elapsed() < Duration::from_millis(50));
    let stats = mock.authority_stats();
    assert_eq!((stats.reuses, stats.expired), (0, 0), "{stats:?}");
    keeper.shutdown().await;
}

/// Two replicas split the due connections by claims, and one of them cannot reach the
/// provider (its egress is broken): it fails each connection it claimed and gives the claim
/// up, so the replica that can reach the provider renews every connection before its refresh
/// token dies. (Were a failing replica to keep its claims, its share would die with it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_reach_the_provider_leaves_its_claims_to_the_others() {
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let (mock, client) = idle_provider().await;
    let store = MemoryStore::new();
    let healthy = TokenPool::new(client, store.clone(), pool_config()).unwrap();
    // Due at once for the cut-off replica (a 10-s margin of 6-s tokens): it claims first.
    let cut_off = failing_pool(&unreachable, store.clone());
    for i in 0..20 {
        healthy
            .seed(&format!("c{i}"), connection(&mock.new_family().unwrap()))
            .await
            .unwrap();
    }
    let broken = cut_off.keep(keeper_config()).unwrap();
    wait_for(
        "the cut-off replica's first failures",
        Duration::from_secs(30),
        || {
            broken
                .stats()
                .failed
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 20
        },
    )
    .await;
    let keeper = healthy.keep(keeper_config()).unwrap();
    // Every connection renewed (its stored version past the seed's): a count of the store's
    // state, not of the provider's refreshes (a slow machine renews some twice meanwhile).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for i in 0..20 {
        let key = healthy.key_of(&format!("c{i}"));
        while store.load(&key).await.unwrap().unwrap().version < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "c{i} was never renewed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let stats = mock.authority_stats();
    assert_eq!((stats.reuses, stats.expired), (0, 0), "{stats:?}");
    keeper.shutdown().await;
    broken.shutdown().await;
}

/// Two replicas' keepers on one store while the provider cannot be reached: each gives up on
/// every connection after `max_failures`, and each connection's `RefreshTokenExpiring` comes
/// once, from whichever replica marked it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_no_keeper_can_renew_is_reported_once_by_the_replicas() {
    // Nothing listens on the port a bound-then-dropped listener had.
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let store = MemoryStore::new();
    let replicas: Vec<_> = (0..2)
        .map(|_| failing_pool(&unreachable, store.clone()))
        .collect();
    let mut events: Vec<_> = replicas.iter().map(TokenPool::subscribe).collect();
    for i in 0..20 {
        replicas[0]
            .seed(&format!("c{i}"), connection(&format!("rt-{i}")))
            .await
            .unwrap();
    }
    let keepers: Vec<_> = replicas
        .iter()
        .map(|pool| {
            pool.keep(KeeperConfig {
                max_failures: 2,
                ..keeper_config()
            })
            .unwrap()
        })
        .collect();
    // Two failures 500 ms apart, in each replica.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for keeper in keepers {
        assert_eq!(
            keeper
                .stats()
                .given_up
                .load(std::sync::atomic::Ordering::Relaxed),
            20,
            "each replica gave up on every connection"
        );
        keeper.shutdown().await;
    }
    let mut reported = std::collections::HashMap::<String, usize>::new();
    for receiver in &mut events {
        while let Ok(event) = receiver.try_recv() {
            if let TokenEvent::RefreshTokenExpiring { connection, .. } = event {
                *reported.entry(connection.to_string()).or_default() += 1;
            }
        }
    }
    assert_eq!(reported.len(), 20, "{reported:?}");
    assert!(reported.values().all(|n| *n == 1), "{reported:?}");
    for i in 0..20 {
        let stored = store
            .load(&format!("conn:idlebank:c{i}"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            stored.expiring.is_some() && stored.dead.is_none(),
            "{stored:?}"
        );
    }
}

/// The keeper across a redis-server crash: SIGKILLed while the keeper renews, started again a
/// second later on its append-only file. Every connection stays alive, no token is sent twice,
/// and the keeper renews again once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keeper_keeps_connections_alive_across_a_redis_restart() {
    let mut redis = tokenkit_manager_tests::Redis::start_persistent();
    let store = tokenkit::RedisStore::connect(&redis.url, "keep")
        .await
        .unwrap();
    let (mock, client) = idle_provider().await;
    // A 4 s margin on 6 s tokens: a connection renewed every 2 s has 4 s of life when it falls
    // due, room for a 1 s outage, Redis's restart and reconnecting on a loaded machine (with
    // 3 s, one connection in three runs died waiting while two other keeper tests ran).
    let mut config = pool_config();
    config.manager.refresh_token_margin = Duration::from_secs(4);
    let pool = TokenPool::new(client, store.clone(), config).unwrap();
    let n = 1000;
    for i in 0..n {
        let family = mock.new_family().unwrap();
        pool.seed(&format!("c{i}"), connection(&family))
            .await
            .unwrap();
    }
    // 1,000 renewals a second: the first wave, from +2 s, takes 1 s; then 500 a second.
    let keeper = pool
        .keep(KeeperConfig {
            per_second: 1000,
            ..keeper_config()
        })
        .unwrap();
    // The kill comes amid the first wave, when a third of it is renewed (a count, not a
    // time: on a loaded machine the wave starts late and runs slow).
    let refreshes = || mock.authority_stats().refreshes;
    wait_for("a third of the first wave", Duration::from_secs(30), || {
        refreshes() >= n / 3
    })
    .await;
    let before = refreshes();
    redis.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.start_again();
    let back = refreshes();
    // Two whole waves after the restart: every connection renewed again twice over.
    wait_for(
        "two waves after the restart",
        Duration::from_secs(60),
        || refreshes() >= back + 2 * n,
    )
    .await;
    eprintln!("keeper: {:?}", keeper.stats());
    keeper.shutdown().await;

    let stats = mock.authority_stats();
    eprintln!(
        "{n} connections across a Redis restart: {stats:?}; {before} renewed when it was killed, {back} when it was back"
    );
    assert!(
        before > 0 && before < n,
        "the kill came amid the renewals: {before}"
    );
    assert_eq!(
        (stats.expired, stats.reuses, stats.rejected),
        (0, 0, 0),
        "{stats:?}"
    );
    assert!(stats.refreshes > back, "nothing renewed after the restart");
    let now = SystemTime::now();
    for i in 0..n {
        let stored = store
            .load(&format!("conn:idlebank:c{i}"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            stored.tokens.refresh_expires_at.is_some_and(|at| at > now) && stored.dead.is_none(),
            "c{i} is not alive: {stored:?}"
        );
    }
}

/// The provider fails the first four renewals of connections whose refresh tokens die 5 s from
/// now. The keeper's backoff (0.5, 1, 2, 4 s) would put the fifth try after their death; its
/// tries come closer together as death nears, and the fifth saves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_connection_is_tried_more_often_as_its_refresh_token_nears_death() {
    let (mock, _) = idle_provider().await;
    let proxy = tokenkit_manager_tests::FaultyProxy::start(&mock).await;
    let store = MemoryStore::new();
    let pool = failing_pool(&proxy.base_url(), store.clone());
    let mut set = connection(&mock.new_family().unwrap());
    set.refresh_expires_at = Some(SystemTime::now() + Duration::from_secs(5));
    pool.seed("c", set).await.unwrap();
    for _ in 0..4 {
        proxy.enqueue(tokenkit_manager_tests::ProxyFault::BeforeForwarding(429));
    }
    let keeper = pool.keep(keeper_config()).unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stats = keeper.stats();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let (failed, given_up) = (load(&stats.failed), load(&stats.given_up));
    keeper.shutdown().await;
    let authority = mock.authority_stats();
    assert_eq!((failed, given_up), (4, 0), "{authority:?}");
    assert_eq!(
        (authority.refreshes, authority.expired),
        (1, 0),
        "{authority:?}"
    );
    let stored = store.load("conn:idlebank:c").await.unwrap().unwrap();
    assert!(
        stored
            .tokens
            .refresh_expires_at
            .is_some_and(|at| at > SystemTime::now()),
        "{stored:?}"
    );
}

/// Two connections at the head of the due list that the keeper must skip (another replica
/// holds their locks) and a batch of two: the keeper walks past them to the third, instead of
/// fetching the same full batch again and again (it once spun on it without yielding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keeper_walks_past_connections_it_skips() {
    let (mock, _) = idle_provider().await;
    let store = MemoryStore::new();
    let pool = TokenPool::new(idlebank(&mock.base_url()), store.clone(), pool_config()).unwrap();
    let now = SystemTime::now();
    let mut held = Vec::new();
    for (name, dies) in [("a", 4), ("b", 4), ("healthy", 5)] {
        let mut set = connection(&mock.new_family().unwrap());
        set.refresh_expires_at = Some(now + Duration::from_secs(dies));
        pool.seed(name, set).await.unwrap();
        if name != "healthy" {
            let lock = store
                .try_lock(&pool.key_of(name), Duration::from_secs(60))
                .await
                .unwrap()
                .unwrap();
            held.push(lock);
        }
    }
    let keeper = pool
        .keep(KeeperConfig {
            batch: 2,
            ..keeper_config()
        })
        .unwrap();
    let key = pool.key_of("healthy");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store.load(&key).await.unwrap().unwrap().version < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the healthy connection was never renewed: {:?}",
            keeper.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One look per interval (100-200 ms), not a look per skipped batch.
    let looks = keeper
        .stats()
        .looks
        .load(std::sync::atomic::Ordering::Relaxed);
    keeper.shutdown().await;
    assert!(looks < 200, "{looks} looks");
    for lock in held {
        lock.release().await;
    }
    assert_eq!(mock.authority_stats().reuses, 0);
}

#[test]
fn a_keeper_config_that_cannot_work_is_refused() {
    for config in [
        KeeperConfig {
            batch: 0,
            ..KeeperConfig::default()
        },
        KeeperConfig {
            interval: Duration::MAX,
            ..KeeperConfig::default()
        },
        KeeperConfig {
            interval: Duration::ZERO,
            ..KeeperConfig::default()
        },
        KeeperConfig {
            jitter: Duration::MAX,
            ..KeeperConfig::default()
        },
        KeeperConfig {
            per_second: 0,
            ..KeeperConfig::default()
        },
        KeeperConfig {
            max_failures: 0,
            ..KeeperConfig::default()
        },
    ] {
        assert!(
            matches!(config.validate(), Err(tokenkit::ManagerError::Config(_))),
            "{config:?}"
        );
    }
    KeeperConfig::default().validate().unwrap();
    assert!(matches!(
        TokenPool::new(
            idlebank("http://127.0.0.1:9"),
            MemoryStore::new(),
            PoolConfig {
                idle_after: Duration::ZERO,
                ..pool_config()
            }
        ),
        Err(tokenkit::ManagerError::Config(_))
    ));
}

/// `Keeper::shutdown` waits for the sets whose write is being retried: a renewal whose answer
/// the store refused is served from memory and written in the background, and a service that
/// exited then would lose the newest set (its predecessor's refresh token is spent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_the_writes_being_retried() {
    use std::sync::atomic::Ordering;
    let (mock, client) = idle_provider().await;
    let store = tokenkit_manager_tests::FailingWrites::new(MemoryStore::new(), 0);
    let pool = TokenPool::new(client, store.clone(), pool_config()).unwrap();
    let mut set = connection(&mock.new_family().unwrap());
    set.refresh_expires_at = Some(SystemTime::now() + Duration::from_secs(3));
    pool.seed("c", set).await.unwrap();
    store.failures.store(1000, Ordering::SeqCst);
    let keeper = pool.keep(keeper_config()).unwrap();
    wait_for("the renewal", Duration::from_secs(20), || {
        mock.authority_stats().refreshes == 1
    })
    .await;
    let shutdown = tokio::spawn(keeper.shutdown());
    // The writer goes on retrying, and the shutdown waits for it.
    wait_for(
        "three more tries of the write",
        Duration::from_secs(20),
        || store.failures.load(Ordering::SeqCst) <= 997,
    )
    .await;
    assert!(!shutdown.is_finished(), "shut down with a set unwritten");
    store.failures.store(0, Ordering::SeqCst);
    shutdown.await.unwrap();
    let stored = store.inner.load(&pool.key_of("c")).await.unwrap().unwrap();
    assert_eq!(stored.version, 2, "{stored:?}");
    assert_eq!(mock.authority_stats().reuses, 0);
}

/// The keeper renews under the lock its look took; where it then finds nothing to do (a
/// caller's refresh already in flight, a set fresh in the cache) it lets the lock go. Callers
/// forcing refreshes of the same connections all along make those cases happen; afterwards
/// no lock is left taken (each is free long before its 60-s lease would run out), and no
/// token was sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keeper_leaves_no_lock_behind_beside_callers_refreshing() {
    let redis = tokenkit_manager_tests::Redis::start();
    let store = tokenkit::RedisStore::connect(&redis.url, "locks")
        .await
        .unwrap();
    let (mock, client) = idle_provider().await;
    let mut config = pool_config();
    // Every connection is always due: the keeper looks at each over and over.
    config.manager.refresh_token_margin = Duration::from_secs(3600);
    config.manager.lock_ttl = Duration::from_secs(60);
    config.manager.min_refresh_interval = Duration::ZERO;
    let pool = TokenPool::new(client, store.clone(), config).unwrap();
    let names: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
    for name in &names {
        pool.seed(name, connection(&mock.new_family().unwrap()))
            .await
            .unwrap();
    }
    let keeper = pool
        .keep(KeeperConfig {
            interval: Duration::from_millis(5),
            jitter: Duration::ZERO,
            ..keeper_config()
        })
        .unwrap();
    let mut callers = tokio::task::JoinSet::new();
    for name in names.clone() {
        let pool = pool.clone();
        callers.spawn(async move {
            for _ in 0..100 {
                pool.force_refresh(&name).await.unwrap();
                // Room between refreshes for the keeper's looks to find the lock free.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    callers.join_all().await;
    let looked = keeper
        .stats()
        .kept
        .load(std::sync::atomic::Ordering::Relaxed);
    keeper.shutdown().await;
    let stats = mock.authority_stats();
    println!("callers and keeper: {stats:?}, the keeper's looks that ended well: {looked}");
    assert_eq!((stats.reuses, stats.rejected), (0, 0), "{stats:?}");
    assert!(stats.refreshes >= 400, "{stats:?}");
    assert!(looked > 0, "the keeper never looked while the callers ran");
    for name in &names {
        let key = format!("conn:idlebank:{name}");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(lock) = store.try_lock(&key, Duration::from_secs(5)).await.unwrap() {
                lock.release().await;
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{key}'s lock is still taken: a lock was left behind"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A client that panics in a renewal: the renewal runs in the visit's own task, so the panic
/// ends that visit alone; the connection is not left marked busy (it would never be visited
/// again), and a later look renews it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_panics_in_a_renewal_leaves_the_connection_to_the_next_look() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use tokenkit_manager_tests::{Scripted, fresh};
    let mut scripted = Scripted::new(
        tokenkit::Rotation::Optional,
        vec![Ok(fresh("at-2", Some("rt-2")))],
    );
    scripted.before = Box::new(|n| assert!(n != 1, "the client panics on its first refresh"));
    let scripted = Arc::new(scripted);
    let pool = TokenPool::new(Arc::clone(&scripted), MemoryStore::new(), pool_config()).unwrap();
    let mut set = connection("rt-1");
    set.refresh_expires_at = Some(SystemTime::now() + Duration::from_secs(2));
    pool.seed("c", set).await.unwrap();
    let keeper = pool
        .keep(KeeperConfig {
            interval: Duration::from_millis(20),
            jitter: Duration::ZERO,
            ..keeper_config()
        })
        .unwrap();
    wait_for(
        "the renewal after the panic",
        Duration::from_secs(20),
        || keeper.stats().kept.load(Ordering::Relaxed) >= 1,
    )
    .await;
    assert_eq!(scripted.sent(), vec!["rt-1", "rt-1"]);
    assert_eq!(
        pool.access_token("c").await.unwrap().expose(),
        "at-2",
        "the renewed set is served"
    );
    keeper.stop();
}
