//! A refresh round trip on 127.0.0.1: each generated client against a minimal hand-written
//! reqwest call to the same mock, with the same client settings, in the same run.
//! Target: generated / hand-written ≤ 1.05.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokenkit::{HttpConfig, RefreshClient, RefreshToken};
use tokenkit_mock::MockServer;

/// What the hand-written baseline needs to send the same request.
struct Baseline {
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    access_pointer: String,
}

/// A client, the body it sends, and the headers a hand-written call must add.
type Built = (Box<dyn RefreshClient>, Vec<u8>, Vec<(&'static str, String)>);

struct Subject {
    name: &'static str,
    client: Box<dyn RefreshClient>,
    baseline: Baseline,
    _mock: MockServer,
}

/// The reqwest client the generated clients build, settings and all.
fn baseline_http() -> tokenkit::reqwest::Client {
    let config = HttpConfig::default();
    tokenkit::reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.connect_timeout)
        .redirect(tokenkit::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn subjects() -> Vec<Subject> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let token = RefreshToken::new("rt-bench");
    let mut out = Vec::new();
    for name in ["byelabel", "easyship", "fredi", "hesabe", "vaultist"] {
        let provider = tokenkit_mock::load(root.join(format!("specs/{name}.yaml"))).unwrap();
        let refresh = provider
            .refresh_operation()
            .expect("a spec with a refresh operation");
        let access_pointer = refresh.success.access_token.pointer.clone();
        let path = refresh.operation.path.clone();
        let mock = MockServer::start(provider).await.unwrap();
        mock.quiet();
        let base = mock.base_url();
        let (client, body, headers): Built = match name {
            "byelabel" => {
                let c = tokenkit_byelabel::Client::builder("ws", "cid", "cs")
                    .base_url(&base)
                    .build()
                    .unwrap();
                let body = serde_json::to_vec(&c.refresh_request(&token)).unwrap();
                (Box::new(c), body, vec![("x-workspace-id", "ws".into())])
            }
            "easyship" => {
                let c = tokenkit_easyship::Client::builder("cid", "secret")
                    .base_url(&base)
                    .build()
                    .unwrap();
                let body = serde_json::to_vec(&c.refresh_request(&token)).unwrap();
                (Box::new(c), body, vec![])
            }
            "fredi" => {
                let c = tokenkit_fredi::Client::builder()
                    .base_url(&base)
                    .build()
                    .unwrap();
                let body = serde_json::to_vec(&c.refresh_request(&token)).unwrap();
                (Box::new(c), body, vec![])
            }
            "hesabe" => {
                let c = tokenkit_hesabe::Client::builder()
                    .base_url(&base)
                    .build()
                    .unwrap();
                let body = serde_json::to_vec(&c.refresh_request(&token)).unwrap();
                (Box::new(c), body, vec![])
            }
            _ => {
                let c = tokenkit_vaultist::Client::builder(1042)
                    .base_url(&base)
                    .build()
                    .unwrap();
                let body = serde_json::to_vec(&c.refresh_request(&token)).unwrap();
                (
                    Box::new(c),
                    body,
                    vec![
                        ("partnerid", "1042".into()),
                        ("granttype", "refresh_token".into()),
                    ],
                )
            }
        };
        out.push(Subject {
            name,
            client,
            baseline: Baseline {
                url: format!("{base}{path}"),
                headers,
                body,
                access_pointer,
            },
            _mock: mock,
        });
    }
    out
}

/// The least a hand-written client does: send, read, parse, pick the access token.
async fn handwritten(http: &tokenkit::reqwest::Client, b: &Baseline) -> String {
    let mut request = http
        .post(&b.url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(b.body.clone());
    for (name, value) in &b.headers {
        request = request.header(*name, value);
    }
    let bytes = request.send().await.unwrap().bytes().await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    body.pointer(&b.access_pointer)
        .and_then(Value::as_str)
        .unwrap()
        .to_owned()
}

fn roundtrip(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let subjects = runtime.block_on(subjects());
    let http = baseline_http();
    let token = RefreshToken::new("rt-bench");
    let mut group = c.benchmark_group("roundtrip");
    group.measurement_time(Duration::from_secs(4));
    for s in &subjects {
        group.bench_function(format!("{}/handwritten", s.name), |b| {
            b.to_async(&runtime)
                .iter(|| handwritten(&http, &s.baseline))
        });
        group.bench_function(format!("{}/generated", s.name), |b| {
            b.to_async(&runtime)
                .iter(|| async { s.client.refresh(&token).await.unwrap() })
        });
    }
    group.finish();
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
