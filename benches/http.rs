//! A request through the request layer against the same request with the header set by hand,
//! both to an API on 127.0.0.1, for tower (over hyper's client) and for reqwest-middleware.
//! Each pair is measured in the same run; the ratio is the layer's cost.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokenkit::{MemoryStore, RefreshToken, TokenManager, TokenSet};
use tokenkit_http::{AuthLayer, AuthMiddleware};
use tower::{Service, ServiceBuilder, ServiceExt};

/// An API that answers 200 to any bearer token, 401 otherwise.
async fn api() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |request: Request<hyper::body::Incoming>| async move {
                        let ok = request
                            .headers()
                            .get("authorization")
                            .is_some_and(|v| v.as_bytes().starts_with(b"Bearer "));
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
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn request_layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (addr, manager) = runtime.block_on(async {
        let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/easyship.yaml");
        let mock = tokenkit_mock::MockServer::start(tokenkit_mock::load(spec).unwrap())
            .await
            .unwrap();
        let client = tokenkit_easyship::Client::builder("cid", "secret")
            .base_url(mock.base_url())
            .build()
            .unwrap();
        let manager = TokenManager::new(client, MemoryStore::new(), "k").unwrap();
        manager
            .seed(TokenSet {
                access_token: "at-bench-0123456789abcdef0123456789".into(),
                refresh_token: Some(RefreshToken::new("rt")),
                expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
                token_type: Some("Bearer".into()),
                refresh_expires_at: None,
                extras: Default::default(),
                origin: None,
                issuer: None,
                values: Default::default(),
            })
            .await
            .unwrap();
        std::mem::forget(mock);
        (api().await, manager)
    });
    let url = format!("http://{addr}/v1/shipments");
    let token = runtime.block_on(manager.access_token()).unwrap();
    let by_hand = format!("Bearer {}", token.expose());

    let hyper = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let layered = ServiceBuilder::new()
        .layer(AuthLayer::new(manager.clone(), [addr.to_string()]))
        .service(hyper.clone());
    let mut group = c.benchmark_group("request_layer");
    group.bench_function("tower_header_by_hand", |b| {
        b.to_async(&runtime).iter(|| {
            let (mut hyper, url, by_hand) = (hyper.clone(), url.clone(), by_hand.clone());
            async move {
                let request = Request::get(url)
                    .header("authorization", by_hand)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let response = hyper.ready().await.unwrap().call(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.into_body().collect().await.unwrap();
            }
        })
    });
    group.bench_function("tower_through_the_layer", |b| {
        b.to_async(&runtime).iter(|| {
            let (layered, url) = (layered.clone(), url.clone());
            async move {
                let request = Request::get(url).body(Full::new(Bytes::new())).unwrap();
                let response = layered.oneshot(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.into_body().collect().await.unwrap();
            }
        })
    });
    let reqwest = tokenkit::reqwest::Client::new();
    let middleware = reqwest_middleware::ClientBuilder::new(reqwest.clone())
        .with(AuthMiddleware::new(manager.clone(), [addr.to_string()]))
        .build();
    group.bench_function("reqwest_header_by_hand", |b| {
        b.to_async(&runtime).iter(|| {
            let (reqwest, url, by_hand) = (reqwest.clone(), url.clone(), by_hand.clone());
            async move {
                let response = reqwest
                    .get(url)
                    .header("authorization", by_hand)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.bytes().await.unwrap();
            }
        })
    });
    group.bench_function("reqwest_through_the_middleware", |b| {
        b.to_async(&runtime).iter(|| {
            let (middleware, url) = (middleware.clone(), url.clone());
            async move {
                let response = middleware.get(url).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.bytes().await.unwrap();
            }
        })
    });
    // The layer's own cost, without the network: an inner service that answers at once.
    let instant = tower::service_fn(|request: Request<Full<Bytes>>| async move {
        let status = if request.headers().contains_key("authorization") {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        Ok::<_, Infallible>(http::Response::builder().status(status).body(()).unwrap())
    });
    let instant_layered = ServiceBuilder::new()
        .layer(AuthLayer::new(manager.clone(), ["api.example"]))
        .service(instant);
    group.bench_function("no_network_header_by_hand", |b| {
        b.to_async(&runtime).iter(|| {
            let (service, by_hand) = (instant, by_hand.clone());
            async move {
                let request = Request::get("https://api.example/")
                    .header("authorization", by_hand)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let response = service.oneshot(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
            }
        })
    });
    group.bench_function("no_network_through_the_layer", |b| {
        b.to_async(&runtime).iter(|| {
            let service = instant_layered.clone();
            async move {
                let request = Request::get("https://api.example/")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let response = service.oneshot(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, request_layer);
criterion_main!(benches);
