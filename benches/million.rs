//! A million connections in one shared store (`BENCH_SECTIONS=million`): what the store keeps
//! per connection, the time to seed and to list them all, the pool's own memory, and the
//! keeper's lag behind each connection's due time while the million come due spread over a
//! day (`MILLION=n` and `MILLION_SPREAD=seconds` change the count and the spread;
//! `MILLION_WINDOW=seconds` how long the keeper is watched).
//!
//! A connection is due when its refresh token has `margin` left to live. Connection `i` is due
//! at `first + i × spread / n`, so a window of the spread sees the renewals a day of the million
//! asks for at the rate a day asks for them, with the whole million in the store's index.

use super::{easyship, in_use, set};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokenkit::{KeeperConfig, ManagerConfig, PoolConfig, TokenEvent, TokenPool, TokenStore};
use tokenkit_mock::MockServer;

/// How long before its refresh token dies a connection is due.
const MARGIN: Duration = Duration::from_secs(600);

/// What one store did with the million.
pub struct Million {
    pub n: usize,
    pub seeded_per_second: f64,
    /// The store's own bytes per connection (its server's count, before and after seeding).
    pub store_bytes: f64,
    /// The pool's bytes in use once seeded and swept, and after the window (managers of the
    /// connections it renewed still in memory, and the in-process mock's new tokens), per
    /// connection of the million.
    pub pool_idle: f64,
    pub pool_after: f64,
    pub listed_in: Duration,
    /// Connections due before the keeper started (while seeding: a backlog, left out of the
    /// lag, that the rate bound drains first).
    pub backlog: usize,
    /// Connections due in the window, renewed, and the lag behind their due time (p50, p99,
    /// max, seconds).
    pub due: usize,
    pub renewed: usize,
    pub lag: (f64, f64, f64),
    /// Refreshes the provider refused (an unknown, expired or revoked refresh token).
    pub refused: u64,
}

/// The settings read from the environment, with a day's spread and a minute's window unless
/// told otherwise.
pub struct Shape {
    pub n: usize,
    pub spread: Duration,
    pub window: Duration,
}

impl Shape {
    pub fn from_env(full: bool) -> Self {
        let var = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(default)
        };
        if full {
            Shape {
                n: var("MILLION", 1_000_000) as usize,
                spread: Duration::from_secs(var("MILLION_SPREAD", 86_400)),
                window: Duration::from_secs(var("MILLION_WINDOW", 60)),
            }
        } else {
            Shape {
                n: 2_000,
                spread: Duration::from_secs(100),
                window: Duration::from_secs(2),
            }
        }
    }
}

/// Seeds `shape.n` connections into `store` (64 at a time), lists them, then keeps them for the
/// window. `footprint` reads the store server's bytes in use; `seed_rate` is a guess at the
/// seeding rate, so the first connection falls due near when the seeding ends (a guess too
/// low leaves the keeper idle until then; too high, the connections due while seeding are a
/// backlog, left out of the lag).
pub async fn run<S: TokenStore + Clone + 'static>(
    mock: &MockServer,
    store: S,
    shape: &Shape,
    seed_rate: f64,
    footprint: impl Fn() -> u64,
) -> Million {
    let n = shape.n;
    let config = PoolConfig {
        manager: ManagerConfig {
            refresh_token_margin: MARGIN,
            ..ManagerConfig::default()
        },
        ..PoolConfig::default()
    };
    let families: Vec<String> = (0..n).map(|_| mock.new_family().unwrap()).collect();
    let pool = TokenPool::new(easyship(&mock.base_url()), store, config).unwrap();
    let store_before = footprint();
    let pool_before = in_use();

    let started = SystemTime::now();
    let first = started + Duration::from_secs_f64(n as f64 / seed_rate);
    let step = shape.spread.as_secs_f64() / n as f64;
    let due_at = |i: usize| first + Duration::from_secs_f64(i as f64 * step);
    let clock = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    // The families stay alive to the end, so their bytes never count as the pool's.
    for (i, family) in families.iter().enumerate() {
        let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
        let seeding = pool.clone();
        let mut tokens = set(family, Duration::ZERO);
        tokens.refresh_expires_at = Some(due_at(i) + MARGIN);
        tasks.spawn(async move {
            seeding.seed(&format!("c{i:07}"), tokens).await.unwrap();
            drop(permit);
        });
        // Each seed leaves its manager in memory until a sweep; keep the peak small.
        if i % 65_536 == 65_535 {
            while tasks.try_join_next().is_some() {}
            pool.sweep_unused_for(Duration::ZERO);
        }
    }
    tasks.join_all().await;
    let seeded_per_second = n as f64 / clock.elapsed().as_secs_f64();
    pool.sweep_unused_for(Duration::ZERO);
    let store_bytes = footprint().saturating_sub(store_before) as f64 / n as f64;
    let pool_idle = (in_use() - pool_before) as f64 / n as f64;

    let clock = Instant::now();
    let listed = pool.connections().await.unwrap().unwrap_or_default();
    let listed_in = clock.elapsed();
    assert_eq!(listed.len(), n, "every connection listed");
    drop(listed);

    let mut events = pool.subscribe();
    let keeper_config = KeeperConfig {
        // The default rate bound (50/s) is a day's million four times over; a compressed
        // spread needs more.
        per_second: (2.0 * n as f64 / shape.spread.as_secs_f64()).max(50.0) as u32,
        ..KeeperConfig::default()
    };
    let keeper = pool.keep(keeper_config).expect("keeper");
    let started_keeping = SystemTime::now();
    let backlog = (0..n).filter(|&i| due_at(i) < started_keeping).count();
    let from = started_keeping.max(first);
    let until = from + shape.window;
    let in_window = |i: usize| (from..until).contains(&due_at(i));
    let due = (0..n).filter(|&i| in_window(i)).count();
    let mut renewed: HashMap<usize, SystemTime> = HashMap::new();
    // The window, and then as long again for the last of its connections to be renewed.
    let deadline = tokio::time::Instant::now()
        + until.duration_since(SystemTime::now()).unwrap_or_default()
        + shape.window;
    while renewed.len() < due {
        let event = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) => event,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(_)) | Err(_) => break,
        };
        if let TokenEvent::Refreshed { connection, .. } = event {
            let Some(i) = connection
                .strip_prefix('c')
                .and_then(|i| i.parse::<usize>().ok())
            else {
                continue;
            };
            if in_window(i) {
                renewed.entry(i).or_insert_with(SystemTime::now);
            }
        }
    }
    keeper.stop();
    let pool_after = (in_use() - pool_before) as f64 / n as f64;
    let mut lags: Vec<f64> = renewed
        .iter()
        .map(|(&i, at)| {
            at.duration_since(due_at(i))
                .unwrap_or_default()
                .as_secs_f64()
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    let at = |q: f64| {
        lags.get(((lags.len() as f64 * q) as usize).min(lags.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    drop(families);
    let stats = mock.authority_stats();
    assert_eq!(stats.reuses, 0, "no refresh token sent twice");
    Million {
        n,
        seeded_per_second,
        store_bytes,
        pool_idle,
        pool_after,
        listed_in,
        backlog,
        due,
        renewed: renewed.len(),
        lag: (at(0.5), at(0.99), lags.last().copied().unwrap_or(f64::NAN)),
        refused: stats.expired + stats.rejected,
    }
}

impl Million {
    pub fn print(&self, store: &str) {
        let (p50, p99, max) = self.lag;
        println!(
            "{store}, {} connections: seeded {:.0}/s, {:.0} B each in the store, listed in {:.2} s; the pool {:.1} B per connection idle, {:.1} B after the window; {} due before the keeper started, {} due in the window, {} renewed, lag p50 {p50:.2} s, p99 {p99:.2} s, max {max:.2} s; {} refused by the provider",
            self.n,
            self.seeded_per_second,
            self.store_bytes,
            self.listed_in.as_secs_f64(),
            self.pool_idle,
            self.pool_after,
            self.backlog,
            self.due,
            self.renewed,
            self.refused
        );
    }
}
