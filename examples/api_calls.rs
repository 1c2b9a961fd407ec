//! Calling a provider's API through the request layer, against a local API and a local mock of
//! Easyship. Run it with `cargo run --example api_calls`.
//!
//! The API accepts any token it has not revoked. Requests go through `tokenkit_http::AuthLayer`
//! over hyper's client; halfway, the API revokes the token in use: the next requests are
//! refused once, the layer gets one new token for all of them and sends each again.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokenkit::{MemoryStore, Origin, RefreshToken, TokenManager, TokenSet};
use tokenkit_http::AuthLayer;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The provider: Easyship's spec served by its mock, rotating one-time refresh tokens.
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/easyship.yaml");
    let mock = tokenkit_mock::MockServer::start(tokenkit_mock::load(spec)?).await?;
    mock.enforce_rotation(3600, Duration::from_millis(20));
    mock.quiet();
    let client = tokenkit_easyship::Client::builder("my-client-id", "my-client-secret")
        .base_url(mock.base_url())
        .build()?;
    let manager = TokenManager::new(client, MemoryStore::new(), "easyship")?;
    manager
        .seed(TokenSet {
            access_token: "from-the-login".into(),
            refresh_token: Some(RefreshToken::new(mock.new_family().ok_or("rotation")?)),
            expires_at: Some(SystemTime::now()),
            token_type: Some("Bearer".into()),
            refresh_expires_at: None,
            extras: Default::default(),
            origin: Some(Origin::Application),
            issuer: None,
            values: Default::default(),
        })
        .await?;

    // The API: refuses the tokens in `revoked`.
    let revoked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let refused = Arc::clone(&revoked);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let refused = Arc::clone(&refused);
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let refused = Arc::clone(&refused);
                    async move {
                        let token = request
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Bearer "))
                            .unwrap_or_default()
                            .to_owned();
                        let ok = !token.is_empty() && !refused.lock().unwrap().contains(&token);
                        let status = if ok {
                            StatusCode::OK
                        } else {
                            StatusCode::UNAUTHORIZED
                        };
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });

    // Every request through the layer: the header is set, a refused token healed once.
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(manager.clone(), [addr.to_string()]))
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let call = |n: usize| {
        let service = service.clone();
        async move {
            let request = Request::get(format!("http://{addr}/v1/shipments?page={n}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            service.oneshot(request).await.map(|r| r.status())
        }
    };
    for n in 0..3 {
        let status = call(n).await.map_err(|e| e.to_string())?;
        println!("request {n}: {status}");
    }
    let current = manager.access_token().await?;
    revoked.lock().unwrap().insert(current.expose().to_owned());
    println!("the API revokes the token in use");
    let answers = futures_join(100, call).await;
    let ok = answers.iter().filter(|s| **s == StatusCode::OK).count();
    println!(
        "100 concurrent requests after the revocation: {ok} answered 200; {} refreshes at the provider in all",
        mock.authority_stats().refreshes
    );
    Ok(())
}

/// Runs `call(0..n)` concurrently and collects the statuses.
async fn futures_join<F, Fut>(n: usize, call: F) -> Vec<StatusCode>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<StatusCode, tokenkit_http::Error>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        tasks.spawn(call(i));
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(Ok(status)) = done {
            out.push(status);
        }
    }
    out
}
