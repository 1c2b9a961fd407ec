//! The tower layer against a real HTTP API on 127.0.0.1 (hyper) that accepts only tokens it
//! has not revoked, and a provider mock that rotates them (Easyship's spec, one-time refresh
//! tokens).

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokenkit::{
    ManagerConfig, MemoryStore, Origin, PoolConfig, RefreshToken, TokenManager, TokenPool, TokenSet,
};
use tokenkit_http::{AuthLayer, Connection};
use tokenkit_mock::MockServer;
use tower::{Service, ServiceBuilder, ServiceExt};

/// The API: refuses a revoked token, or every token while `refuse_all` is set.
#[derive(Default)]
struct Api {
    revoked: Mutex<HashSet<String>>,
    refuse_all: AtomicBool,
    answered: AtomicU64,
    seen: Mutex<Vec<String>>,
}

impl Api {
    /// Refuses `token` from now on (it was revoked, or another system rotated it).
    fn revoke(&self, token: &tokenkit::AccessToken) {
        self.revoked
            .lock()
            .unwrap()
            .insert(token.expose().to_owned());
    }
}

async fn api() -> (SocketAddr, Arc<Api>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(Api::default());
    let shared = Arc::clone(&state);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let state = Arc::clone(&shared);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let state = Arc::clone(&state);
                        async move {
                            state.answered.fetch_add(1, Ordering::Relaxed);
                            let token = request
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.strip_prefix("Bearer "))
                                .map(str::to_owned);
                            let _ = request.into_body().collect().await;
                            let ok = token.as_ref().is_some_and(|t| {
                                state.seen.lock().unwrap().push(t.clone());
                                !state.refuse_all.load(Ordering::Relaxed)
                                    && !state.revoked.lock().unwrap().contains(t)
                            });
                            let status = if ok {
                                StatusCode::OK
                            } else {
                                StatusCode::UNAUTHORIZED
                            };
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(b"{}")))
                                    .unwrap(),
                            )
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (addr, state)
}

async fn provider() -> MockServer {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs/easyship.yaml");
    let mock = MockServer::start(tokenkit_mock::load(spec).unwrap())
        .await
        .unwrap();
    mock.enforce_rotation(3600, Duration::from_millis(5));
    mock.quiet();
    mock
}

fn easyship(mock: &MockServer) -> tokenkit_easyship::Client {
    tokenkit_easyship::Client::builder("cid", "secret")
        .base_url(mock.base_url())
        .build()
        .unwrap()
}

fn user_set(refresh_token: &str) -> TokenSet {
    TokenSet {
        access_token: "at-expired".into(),
        refresh_token: Some(RefreshToken::new(refresh_token)),
        expires_at: Some(SystemTime::now()),
        token_type: Some("bearer".into()),
        refresh_expires_at: None,
        extras: Default::default(),
        origin: Some(Origin::Application),
        issuer: None,
        values: Default::default(),
    }
}

fn config() -> ManagerConfig {
    ManagerConfig {
        rejection_interval: Duration::from_millis(500),
        min_refresh_interval: Duration::ZERO,
        ..ManagerConfig::default()
    }
}

/// A manager signed in at `mock` (its first refresh done), and the token it holds.
async fn signed_in(
    mock: &MockServer,
    config: ManagerConfig,
) -> (
    TokenManager<tokenkit_easyship::Client, MemoryStore>,
    tokenkit::AccessToken,
) {
    let manager =
        TokenManager::with_config(easyship(mock), MemoryStore::new(), "k", config).unwrap();
    manager
        .seed(user_set(&mock.new_family().unwrap()))
        .await
        .unwrap();
    let token = manager.access_token().await.unwrap();
    (manager, token)
}

fn get(addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}/v1/shipments"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_with_a_revoked_token_all_succeed_after_one_refresh() {
    let (addr, api) = api().await;
    let mock = provider().await;
    let (manager, first) = signed_in(&mock, config()).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(manager.clone(), [addr.to_string()]))
        .service(client);
    api.revoke(&first);

    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { service.oneshot(get(addr)).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let response = task.await.unwrap().expect("no failed request");
        assert_eq!(response.status(), StatusCode::OK);
        ok += 1;
    }
    assert_eq!(ok, 1000);
    // The seed's refresh, then exactly one for the revoked token.
    assert_eq!(
        mock.authority_stats().refreshes,
        2,
        "{:?}",
        mock.authority_stats()
    );
    assert_eq!(mock.authority_stats().reuses, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_refuses_everything_gets_its_401s_back_and_few_refreshes() {
    let (addr, api) = api().await;
    let mock = provider().await;
    let config = ManagerConfig {
        rejection_interval: Duration::from_secs(1),
        ..config()
    };
    let (manager, _) = signed_in(&mock, config).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut service = ServiceBuilder::new()
        .layer(AuthLayer::new(manager.clone(), [addr.to_string()]))
        .service(client);
    api.refuse_all.store(true, Ordering::Relaxed);
    let storm = Duration::from_secs(5);
    let started = std::time::Instant::now();
    let mut requests = 0;
    while started.elapsed() < storm {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(get(addr))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "the API's answer, passed on"
        );
        requests += 1;
    }
    let refreshes = mock.authority_stats().refreshes - 1;
    eprintln!("{requests} refused requests in 5 s, {refreshes} refreshes");
    // One per 1 s interval at most: 5 s allows 6; the first refusal is healed once.
    assert!(
        (1..=6).contains(&refreshes),
        "{refreshes} refreshes for {requests} refused requests"
    );
    assert!(requests > 20, "{requests}");
}

#[tokio::test]
async fn a_streaming_body_is_not_replayed_and_the_401_comes_back() {
    let (addr, api) = api().await;
    let mock = provider().await;
    let (manager, first) = signed_in(&mock, config()).await;
    api.revoke(&first);
    let client = Client::builder(TokioExecutor::new()).build_http::<BoxBody<Bytes, Infallible>>();
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(manager.clone(), [addr.to_string()]))
        .service(client);
    let body = BoxBody::new(Full::new(Bytes::from_static(b"streamed")));
    let request = Request::post(format!("http://{addr}/v1/shipments"))
        .body(body)
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.answered.load(Ordering::Relaxed), 1, "not retried");
    assert_eq!(
        mock.authority_stats().refreshes,
        1,
        "no refresh for a request it cannot resend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_pool_only_the_revoked_connection_refreshes() {
    let (addr, api) = api().await;
    let mock = provider().await;
    let pool = TokenPool::new(
        easyship(&mock),
        MemoryStore::new(),
        PoolConfig {
            manager: config(),
            ..PoolConfig::default()
        },
    )
    .unwrap();
    for name in ["alice", "bob"] {
        pool.seed(name, user_set(&mock.new_family().unwrap()))
            .await
            .unwrap();
    }
    let alice = pool.access_token("alice").await.unwrap();
    let bob = pool.access_token("bob").await.unwrap();
    api.revoke(&alice);
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(pool.clone(), [addr.to_string()]))
        .service(client);
    for name in ["alice", "bob", "alice", "bob"] {
        let mut request = get(addr);
        request.extensions_mut().insert(Connection::new(name));
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}");
    }
    assert_eq!(
        mock.authority_stats().refreshes,
        3,
        "two seeds' refreshes, then alice's"
    );
    assert_eq!(
        pool.access_token("bob").await.unwrap(),
        bob,
        "bob kept his token"
    );
    assert_ne!(pool.access_token("alice").await.unwrap(), alice);
}

#[tokio::test]
async fn no_token_in_errors_or_debug_output() {
    let mock = provider().await;
    let (manager, token) = signed_in(&mock, config()).await;
    let layer = AuthLayer::new(manager.clone(), ["api.example.com"]);
    let config = tokenkit_http::AuthConfig::default();
    let value = config.value(&token, Some("bearer")).unwrap();
    assert!(value.is_sensitive());
    let printed = format!("{layer:?} {config:?} {value:?}");
    assert!(!printed.contains(token.expose()), "{printed}");
    // A pool request without a connection: an error that names the problem, not a token.
    let pool = TokenPool::new(easyship(&mock), MemoryStore::new(), PoolConfig::default()).unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(pool, ["127.0.0.1:9"]))
        .service(client);
    let err = service
        .oneshot(get("127.0.0.1:9".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("names no connection"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reqwest_middleware_heals_a_revoked_token_with_one_refresh() {
    use tokenkit_http::AuthMiddleware;
    let (addr, api) = api().await;
    let mock = provider().await;
    let (manager, first) = signed_in(&mock, config()).await;
    api.revoke(&first);
    let client = reqwest_middleware::ClientBuilder::new(tokenkit::reqwest::Client::new())
        .with(AuthMiddleware::new(manager.clone(), [addr.to_string()]))
        .build();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .get(format!("http://{addr}/v1/shipments"))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), StatusCode::OK);
    }
    assert_eq!(
        mock.authority_stats().refreshes,
        2,
        "{:?}",
        mock.authority_stats()
    );
    // The API refuses everything: its 401 comes back, throttled refreshes.
    api.refuse_all.store(true, Ordering::Relaxed);
    let status = client
        .get(format!("http://{addr}/v1/shipments"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The token goes only to the hosts the application named: a request to any other host, over
/// plain HTTP to a host that is not this machine, or without a host fails before anything is
/// sent, through the tower layer and the reqwest middleware alike.
#[tokio::test]
async fn the_token_goes_only_to_the_hosts_named() {
    let mock = provider().await;
    let (addr, api) = api().await;
    let (manager, _) = signed_in(&mock, config()).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(manager.clone(), ["api.example.com"]))
        .service(client);
    for uri in [
        format!("http://{addr}/v1/shipments"),
        "/v1/shipments".to_owned(),
        "http://api.example.com/v1".to_owned(),
    ] {
        let request = Request::get(uri.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let err = service.clone().oneshot(request).await.unwrap_err();
        assert!(err.is::<tokenkit_http::HostNotAllowed>(), "{uri}: {err}");
    }
    let reqwest = reqwest_middleware::ClientBuilder::new(tokenkit::reqwest::Client::new())
        .with(tokenkit_http::AuthMiddleware::new(
            manager.clone(),
            ["api.example.com"],
        ))
        .build();
    let err = reqwest
        .get(format!("http://{addr}/v1/shipments"))
        .send()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refusing to send"), "{err}");
    assert_eq!(
        api.answered.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a request reached the API"
    );

    // The rule itself: names, ports, wildcards, schemes.
    let config = tokenkit_http::AuthConfig::for_hosts([
        "api.example.com",
        "*.eu.example.com",
        "127.0.0.1:8080",
    ]);
    let allowed = |scheme: &str, host: &str, port: Option<u16>| {
        config.check(Some(scheme), Some(host), port).is_ok()
    };
    assert!(allowed("https", "api.example.com", None));
    assert!(allowed("https", "API.Example.com", Some(443)));
    assert!(!allowed("https", "api.example.com", Some(8443)));
    assert!(
        !allowed("http", "api.example.com", None),
        "plain HTTP off loopback"
    );
    assert!(!allowed("https", "api.example.com.evil.test", None));
    assert!(!allowed("https", "evilapi.example.com", None));
    assert!(allowed("https", "a.b.eu.example.com", None));
    assert!(!allowed("https", "eu.example.com", None));
    assert!(!allowed("https", "x.eu.example.com.evil.test", None));
    assert!(allowed("http", "127.0.0.1", Some(8080)));
    assert!(!allowed("http", "127.0.0.1", Some(8081)));
    assert!(!allowed("ftp", "api.example.com", None));
    assert!(
        tokenkit_http::AuthConfig::default()
            .check(Some("https"), Some("api.example.com"), None)
            .is_err()
    );
}
