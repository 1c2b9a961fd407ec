//! The Redis store over TLS (a real `redis-server --tls-port` with a certificate made here),
//! as an ACL user that may touch only its prefix's keys, and waiting for a replica to
//! acknowledge marks and writes.

use std::path::Path;
use std::time::{Duration, Instant};
use tokenkit::{RedisOptions, RedisStore, Saved, TokenManager, TokenStore, WaitForReplicas};
use tokenkit_manager_tests::{Redis, client, expired, one_time_provider};

/// A CA, and a certificate it signed for 127.0.0.1 and localhost, written to `dir`; returns
/// the CA's PEM.
fn certificates(dir: &Path) -> Vec<u8> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("server.crt"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.crt"), issuer.pem()).unwrap();
    issuer.pem().into_bytes()
}

/// A redis-server that speaks only TLS, with the default user off and one ACL user, `app`,
/// who may touch only keys under `tokenkit-acl:`.
fn tls_redis() -> (Redis, Vec<u8>) {
    let mut ca = Vec::new();
    let redis = Redis::start_configured("tls", |port, dir| {
        ca = certificates(dir);
        let file = |name: &str| dir.join(name).display().to_string();
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            file("server.crt"),
            "--tls-key-file".into(),
            file("server.key"),
            "--tls-ca-cert-file".into(),
            file("ca.crt"),
            "--tls-auth-clients".into(),
            "no".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            // Each word its own argument: redis-server quotes an argument with spaces.
            "--user".into(),
            "default".into(),
            "off".into(),
            "--user".into(),
            "app".into(),
            "on".into(),
            ">app-password".into(),
            "~tokenkit-acl:*".into(),
            "+@all".into(),
        ]
    });
    (redis, ca)
}

fn options(ca: &[u8]) -> RedisOptions {
    RedisOptions {
        root_certificate: Some(ca.to_vec()),
        ..RedisOptions::default()
    }
}

#[tokio::test]
async fn over_tls_as_an_acl_user_the_manager_refreshes() {
    let (redis, ca) = tls_redis();
    let url = format!("rediss://app:app-password@127.0.0.1:{}/", redis.port());
    let store = RedisStore::connect_with(&url, "tokenkit-acl", &options(&ca))
        .await
        .unwrap();
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let manager = TokenManager::new(client(&mock.base_url()), store.clone(), "k").unwrap();
    manager.seed(expired(&first)).await.unwrap();
    manager.access_token().await.unwrap();
    manager.force_refresh().await.unwrap();
    assert_eq!(store.load("k").await.unwrap().unwrap().version, 3);
    let stats = mock.authority_stats();
    assert_eq!((stats.refreshes, stats.reuses), (2, 0), "{stats:?}");
}

#[tokio::test]
async fn what_tls_and_acls_refuse_is_said() {
    let (redis, ca) = tls_redis();
    let port = redis.port();
    let url = format!("rediss://app:app-password@127.0.0.1:{port}/");

    // Keys outside the user's pattern: the server refuses, and the error says so.
    let other = RedisStore::connect_with(&url, "other-prefix", &options(&ca))
        .await
        .unwrap();
    let err = other
        .save("k", &expired("rt-SENTINEL"), None)
        .await
        .unwrap_err();
    assert!(
        err.message.contains("NoPerm") && err.message.contains("ACL"),
        "{err}"
    );
    assert!(!err.to_string().contains("SENTINEL") && !err.to_string().contains("app-password"));

    // A wrong password, or no TLS trust in the server's CA: no store, a clear error, and
    // neither the password nor the URL in it.
    let wrong = format!("rediss://app:wrong-password@127.0.0.1:{port}/");
    let err = RedisStore::connect_with(&wrong, "tokenkit-acl", &options(&ca))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("wrong-password"), "{err}");
    let err = RedisStore::connect(&url, "tokenkit-acl").await.unwrap_err();
    assert!(!err.to_string().contains("app-password"), "{err}");

    // Plain redis:// to the TLS port does not get through either.
    let plain = format!("redis://app:app-password@127.0.0.1:{port}/");
    assert!(RedisStore::connect(&plain, "tokenkit-acl").await.is_err());
    // Certificates for a plain URL are refused, not ignored.
    let err = RedisStore::connect_with(&plain, "tokenkit-acl", &options(&ca))
        .await
        .unwrap_err();
    assert!(err.message.contains("rediss://"), "{err}");
}

#[tokio::test]
async fn with_a_replica_required_a_write_it_did_not_acknowledge_fails() {
    let master = Redis::start();
    let replica = Redis::start_configured("replica", |_, _| {
        vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.port().to_string(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
        ]
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !master
        .cli(&["INFO", "replication"])
        .contains("state=online")
        || master.cli(&["WAIT", "1", "200"]).trim() != "1"
    {
        assert!(Instant::now() < deadline, "the replica did not come online");
        std::thread::sleep(Duration::from_millis(20));
    }
    let wait = WaitForReplicas {
        replicas: 1,
        timeout: Duration::from_millis(800),
    };
    let options = RedisOptions {
        wait_for_replicas: Some(wait),
        ..RedisOptions::default()
    };
    let store = RedisStore::connect_with(&master.url, "wait", &options)
        .await
        .unwrap();
    // Until the replica acknowledges a first write (it may still be settling after its sync).
    let mut warm = 0;
    while store
        .save(&format!("warm-{warm}"), &expired("rt"), None)
        .await
        .is_err()
    {
        warm += 1;
        assert!(
            Instant::now() < deadline,
            "the replica never acknowledged a write"
        );
    }
    assert_eq!(
        store.save("k", &expired("rt-1"), None).await.unwrap(),
        Saved::Written(1)
    );
    let lock = store
        .try_lock("k", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert!(store.mark_sending("k", 1, &lock).await.unwrap());

    // The replica stops answering: a mark or a write it has not acknowledged is an error, so
    // the manager never sends a token whose mark a failover could lose.
    replica.stop();
    let err = store.mark_sending("k", 1, &lock).await.unwrap_err();
    assert!(err.message.contains("0 of 1 replicas"), "{err}");
    let err = store
        .save_fenced("k", &expired("rt-2"), Some(1), &lock)
        .await
        .unwrap_err();
    assert!(err.message.contains("0 of 1 replicas"), "{err}");
    replica.resume();
    lock.release().await;

    // Through the manager: with the replica stopped, nothing is sent.
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let manager = TokenManager::new(client(&mock.base_url()), store.clone(), "m").unwrap();
    manager.seed(expired(&first)).await.unwrap();
    replica.stop();
    let err = manager.access_token().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        mock.authority_stats().refreshes,
        0,
        "a token went out with an unreplicated mark"
    );
    replica.resume();
    manager.access_token().await.unwrap();
    assert_eq!(mock.authority_stats().refreshes, 1);
}
