//! The token manager: a cached `access_token()` on one and two threads, and a stampede of
//! 10,000 callers at expiry against a mock that answers in 5 ms. Each is quoted against a
//! baseline measured in the same run.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};
use tokenkit::{AccessToken, MemoryStore, RefreshToken, TokenManager, TokenSet};
use tokenkit_mock::MockServer;

/// Polls a future once: the cached path of `access_token()` completes without waiting.
fn poll_once<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the cached path waited"),
    }
}

fn tokens(refresh: &str, expires_in: Duration) -> TokenSet {
    TokenSet {
        access_token: "at-cached-0123456789abcdef0123456789".into(),
        refresh_token: Some(RefreshToken::new(refresh)),
        expires_at: Some(SystemTime::now() + expires_in),
        token_type: Some("Bearer".into()),
        refresh_expires_at: None,
        extras: Default::default(),
        origin: None,
        issuer: None,
        values: Default::default(),
    }
}

fn easyship(base_url: &str) -> tokenkit_easyship::Client {
    tokenkit_easyship::Client::builder("cid", "secret")
        .base_url(base_url)
        .build()
        .unwrap()
}

async fn mock() -> MockServer {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/easyship.yaml");
    MockServer::start(tokenkit_mock::load(spec).unwrap())
        .await
        .unwrap()
}

fn cached(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let manager = runtime.block_on(async {
        let mock = mock().await;
        let manager =
            TokenManager::new(easyship(&mock.base_url()), MemoryStore::new(), "k").unwrap();
        manager
            .seed(tokens("rt", Duration::from_secs(3600)))
            .await
            .unwrap();
        manager.access_token().await.unwrap();
        std::mem::forget(mock);
        manager
    });
    // The same call through a pool: one connection, and one of 10,000 in memory.
    let (pool, names) = runtime.block_on(async {
        let mock = mock().await;
        let pool = tokenkit::TokenPool::new(
            easyship(&mock.base_url()),
            MemoryStore::new(),
            tokenkit::PoolConfig::default(),
        )
        .unwrap();
        let names: Vec<String> = (0..10_000).map(|i| format!("customer-{i:05}")).collect();
        for name in &names {
            pool.seed(name, tokens("rt", Duration::from_secs(3600)))
                .await
                .unwrap();
            pool.access_token(name).await.unwrap();
        }
        std::mem::forget(mock);
        (pool, names)
    });
    let held = AccessToken::new("at-cached-0123456789abcdef0123456789");
    let calls = |manager: &TokenManager<_, _>, n: u64| {
        for _ in 0..n {
            black_box(poll_once(manager.access_token()).unwrap());
        }
    };

    let mut group = c.benchmark_group("access_token_cached");
    group.bench_function("baseline_clone_token", |b| {
        b.iter(|| black_box(held.clone()))
    });
    group.bench_function("one_thread", |b| {
        b.iter(|| black_box(poll_once(manager.access_token()).unwrap()))
    });
    group.bench_function("pool_one_connection", |b| {
        b.iter(|| black_box(poll_once(pool.access_token(&names[0])).unwrap()))
    });
    let mut next = 0;
    group.bench_function("pool_of_10000", |b| {
        b.iter(|| {
            next = (next + 7919) % names.len();
            black_box(poll_once(pool.access_token(&names[next])).unwrap())
        })
    });
    // Two threads each make `iters` calls; the time reported is per call of the pair, so
    // one_thread / two_threads is the throughput gain.
    group.bench_function("two_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    scope.spawn(|| calls(&manager, iters));
                }
            });
            start.elapsed() / 2
        })
    });
    group.finish();
}

fn stampede(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mock = runtime.block_on(mock());
    mock.quiet();
    let mock = Arc::new(mock);

    // `callers` tasks wait at the gate; at the moment of expiry the gate opens and each asks
    // for a token. Measured: from the gate to the last caller holding the new token. Exactly
    // one upstream refresh.
    let run = |callers: usize| {
        let mock = Arc::clone(&mock);
        async move {
            let first = mock.enforce_rotation(3600, Duration::from_millis(5));
            let manager =
                TokenManager::new(easyship(&mock.base_url()), MemoryStore::new(), "k").unwrap();
            manager.seed(tokens(&first, Duration::ZERO)).await.unwrap();
            let (gate, _) = tokio::sync::broadcast::channel::<Instant>(1);
            let tasks: Vec<_> = (0..callers)
                .map(|_| {
                    let manager = manager.clone();
                    let mut opened = gate.subscribe();
                    tokio::spawn(async move {
                        let start = opened.recv().await.unwrap();
                        manager.access_token().await.unwrap();
                        start.elapsed()
                    })
                })
                .collect();
            tokio::task::yield_now().await;
            gate.send(Instant::now()).unwrap();
            let mut last = Duration::ZERO;
            for task in tasks {
                last = last.max(task.await.unwrap());
            }
            assert_eq!(
                mock.authority_stats().refreshes,
                1,
                "exactly one upstream refresh"
            );
            last
        }
    };

    // The floor for any single-flight design on this machine: the same gate and 10,000 tasks,
    // each waiting on one shared 5 ms timer instead of a refresh.
    let floor = |callers: usize| async move {
        let (gate, _) = tokio::sync::broadcast::channel::<Instant>(1);
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let mut opened = gate.subscribe();
                let mut done = done_rx.clone();
                tokio::spawn(async move {
                    let start = opened.recv().await.unwrap();
                    done.wait_for(|d| *d).await.unwrap();
                    start.elapsed()
                })
            })
            .collect();
        tokio::task::yield_now().await;
        gate.send(Instant::now()).unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            done_tx.send(true).unwrap();
        });
        let mut last = Duration::ZERO;
        for task in tasks {
            last = last.max(task.await.unwrap());
        }
        last
    };

    let mut group = c.benchmark_group("stampede_5ms_provider");
    group.sample_size(20);
    group.bench_function("floor_ten_thousand_waiters_on_a_5ms_timer", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += floor(10_000).await;
                }
                total
            })
        })
    });
    for (name, callers) in [
        ("baseline_one_caller", 1),
        ("thousand_callers", 1_000),
        ("ten_thousand_callers", 10_000),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += run(callers).await;
                    }
                    total
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, cached, stampede);
criterion_main!(benches);
