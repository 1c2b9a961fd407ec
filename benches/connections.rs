//! Many connections: memory per connection (idle and active) at 1,000 / 10,000 / 100,000, and
//! the keeper refreshing due connections against a plain client making the same requests at
//! the same concurrency, in the same run. A bench binary of its own (no criterion: these are
//! one-shot measurements), printing a table; `cargo test --bench connections` runs it small.
//!
//! Memory is counted by an instrumented global allocator (`stats_alloc`) that keeps the bytes
//! in use: exact, and free of the allocator's and the OS's rounding.

mod million;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use std::alloc::System;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokenkit::{
    FileStore, KeeperConfig, ManagerConfig, MemoryStore, PoolConfig, PostgresStore, RedisStore,
    RefreshClient, RefreshToken, TokenPool, TokenSet, TokenStore,
};
use tokenkit_mock::MockServer;

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes in use now: allocated, less freed. (`stats_alloc` already counts a reallocation's
/// growth in `bytes_allocated` and its shrinking in `bytes_deallocated`; adding
/// `bytes_reallocated` too counted each growth twice, which read as 12 B per idle connection.)
fn in_use() -> isize {
    let s = ALLOCATOR.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

fn set(refresh: &str, dies_in: Duration) -> TokenSet {
    TokenSet {
        access_token: "at-bench-0123456789abcdef0123456789".into(),
        refresh_token: Some(RefreshToken::new(refresh)),
        expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
        token_type: Some("Bearer".into()),
        refresh_expires_at: Some(SystemTime::now() + dies_in),
        extras: Default::default(),
        origin: Some(tokenkit::Origin::Application),
        issuer: None,
        values: Default::default(),
    }
}

async fn mock() -> MockServer {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/easyship.yaml");
    let mock = MockServer::start(tokenkit_mock::load(spec).unwrap())
        .await
        .unwrap();
    mock.enforce_rotation(3600, Duration::ZERO);
    mock.quiet();
    mock
}

fn easyship(base_url: &str) -> tokenkit_easyship::Client {
    tokenkit_easyship::Client::builder("cid", "secret")
        .base_url(base_url)
        .build()
        .unwrap()
}

/// Bytes per connection: in memory while active (beyond the store), and once swept idle.
async fn memory(n: usize) -> (f64, f64, f64) {
    let mock = mock().await;
    let store = MemoryStore::new();
    let config = PoolConfig {
        idle_after: Duration::from_secs(3600),
        ..PoolConfig::default()
    };
    let pool = TokenPool::new(easyship(&mock.base_url()), store.clone(), config).unwrap();
    let names: Vec<String> = (0..n).map(|i| format!("customer-{i:06}")).collect();
    for name in &names {
        pool.seed(name, set("rt-bench", Duration::from_secs(86_400)))
            .await
            .unwrap();
    }
    pool.sweep_unused_for(Duration::ZERO);
    let seeded = in_use();
    for name in &names {
        pool.access_token(name).await.unwrap();
    }
    let active = in_use();
    // The part of that which is the connection's own copy of its token set.
    let one = set("rt-bench", Duration::from_secs(86_400));
    let before = in_use();
    let copy = one.clone();
    let token_set = in_use() - before;
    drop(copy);
    pool.sweep_unused_for(Duration::ZERO);
    let idle = in_use();
    let per = |bytes: isize| bytes as f64 / n as f64;
    (
        per(active - seeded),
        per(token_set * n as isize),
        per(idle - seeded),
    )
}

/// Refreshes per second of a plain client sending `n` refreshes, `concurrency` at a time.
async fn plain_rate(mock: &MockServer, n: usize, concurrency: usize) -> f64 {
    plain_rate_with(mock, n, concurrency, None).await
}

/// [`plain_rate`], each refresh after `trips` round trips to Redis that carry nothing
/// (`PING`, one after another, on one multiplexed connection as the store's): the floor of a
/// keeper that needs that many.
async fn plain_rate_with(
    mock: &MockServer,
    n: usize,
    concurrency: usize,
    redis: Option<(redis::aio::ConnectionManager, usize)>,
) -> f64 {
    let client = Arc::new(easyship(&mock.base_url()));
    let tokens: Vec<String> = (0..n).map(|_| mock.new_family().unwrap()).collect();
    let started = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for token in tokens {
        let client = Arc::clone(&client);
        let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
        let redis = redis.clone();
        tasks.spawn(async move {
            if let Some((mut connection, trips)) = redis {
                for _ in 0..trips {
                    let _: String = redis::cmd("PING")
                        .query_async(&mut connection)
                        .await
                        .unwrap();
                }
            }
            client.refresh(&RefreshToken::new(token)).await.unwrap();
            drop(permit);
        });
    }
    tasks.join_all().await;
    n as f64 / started.elapsed().as_secs_f64()
}

/// Renewals per second of a keeper over `store` with `n` due connections. `seeded` runs once
/// they are seeded, `renewed` once all are renewed (before the keeper stops and the pool with
/// its `n` managers is dropped, which is no renewal's cost).
async fn keeper_rate<S: TokenStore>(
    mock: &MockServer,
    store: S,
    n: usize,
    concurrency: usize,
    seeded: impl FnOnce(),
    renewed: impl FnOnce(),
) -> f64 {
    let config = PoolConfig {
        manager: ManagerConfig {
            refresh_token_margin: Duration::from_secs(600),
            ..ManagerConfig::default()
        },
        ..PoolConfig::default()
    };
    let pool = TokenPool::new(easyship(&mock.base_url()), store, config).unwrap();
    for i in 0..n {
        let family = mock.new_family().unwrap();
        pool.seed(&format!("c{i}"), set(&family, Duration::from_secs(300)))
            .await
            .unwrap();
    }
    seeded();
    let before = mock.authority_stats().refreshes;
    let started = Instant::now();
    let keeper = pool
        .keep(KeeperConfig {
            interval: Duration::from_millis(1),
            jitter: Duration::ZERO,
            concurrency,
            per_second: 1_000_000,
            batch: 1024,
            ..KeeperConfig::default()
        })
        .expect("keeper");
    while mock.authority_stats().refreshes - before < n as u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    renewed();
    keeper.stop();
    assert_eq!(mock.authority_stats().reuses, 0);
    rate
}

/// What a renewal on `store` costs without the keeper, pool and manager: the store calls a
/// keeper's renewal makes (the lock with the set read under it, the sending mark, the
/// compare-and-set that gives the lock up) around a plain refresh, `concurrency` at a time,
/// over `n` sets seeded first (`seeded` runs then, `renewed` once all are renewed). The
/// baseline that says which part of the keeper's distance from the plain client is the
/// store's and which is the keeper's own.
async fn store_floor_rate<S: TokenStore>(
    mock: &MockServer,
    store: S,
    n: usize,
    concurrency: usize,
    seeded: impl FnOnce(),
    renewed: impl FnOnce(),
) -> f64 {
    let (client, store) = (Arc::new(easyship(&mock.base_url())), Arc::new(store));
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let (key, family) = (format!("floor-{i}"), mock.new_family().unwrap());
        let set = set(&family, Duration::from_secs(300));
        store.save(&key, &set, None).await.unwrap();
        keys.push(key);
    }
    seeded();
    let started = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for key in keys {
        let (client, store) = (Arc::clone(&client), Arc::clone(&store));
        let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
        tasks.spawn(async move {
            let ttl = Duration::from_secs(30);
            let lock = store.try_lock_loading(&key, ttl).await.unwrap().unwrap();
            let stored = match lock.take_set() {
                Some(stored) => stored,
                None => store.load(&key).await.unwrap().unwrap(),
            };
            assert!(
                store
                    .mark_sending(&key, stored.version, &lock)
                    .await
                    .unwrap()
            );
            let sent = stored.tokens.refresh_token.as_ref().unwrap();
            let tokens = client.refresh(sent).await.unwrap();
            let saved = store.save_releasing(&key, &tokens, Some(stored.version), &lock);
            assert!(matches!(saved.await.unwrap(), tokenkit::Saved::Written(_)));
            lock.release().await;
            drop(permit);
        });
    }
    tasks.join_all().await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    renewed();
    rate
}

/// One process waiting for another's refresh on PostgreSQL, `rounds` times: the waiter's lag
/// behind the holder's finished refresh (median, ms) and the statements the waiter sent per
/// wait (pg_stat_statements, by its own role), polling every `poll`, woken by NOTIFY or not.
async fn waiting(
    server: &tokenkit_manager_tests::Postgres,
    listen: bool,
    poll: Duration,
    rounds: usize,
) -> (f64, f64) {
    use tokenkit_manager_tests::{client, expired, one_time_provider};
    let (mock, _) = one_time_provider(3600, Duration::from_millis(200)).await;
    let holder_store = PostgresStore::connect(&server.url).await.unwrap();
    let options = tokenkit::PostgresOptions {
        listen,
        ..tokenkit::PostgresOptions::default()
    };
    let waiter_url = server.url.replace("tokenkit@", "waiter@");
    let waiter_store = PostgresStore::connect_with(&waiter_url, &options)
        .await
        .unwrap();
    // The listener connects in the background.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.psql("SELECT pg_stat_statements_reset()");
    let config = ManagerConfig {
        lock_poll: poll,
        lock_wait: Duration::from_secs(30),
        ..ManagerConfig::default()
    };
    let mut lags = Vec::new();
    for round in 0..rounds {
        let key = format!("wait-{listen}-{}-{round}", poll.as_millis());
        let family = mock.new_family().unwrap();
        holder_store
            .save(&key, &expired(&family), None)
            .await
            .unwrap();
        let manager = |store: &PostgresStore| {
            let client = client(&mock.base_url());
            tokenkit::TokenManager::with_config(client, store.clone(), key.clone(), config.clone())
                .unwrap()
        };
        let (holder, waiter) = (manager(&holder_store), manager(&waiter_store));
        let holding = tokio::spawn(async move {
            holder.force_refresh().await.unwrap();
            Instant::now()
        });
        // The waiter comes while the holder's request is out (its sending mark is stored).
        while holder_store
            .load(&key)
            .await
            .unwrap()
            .is_none_or(|s| s.sending.is_none())
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        waiter.access_token().await.unwrap();
        let woke = Instant::now();
        let held = holding.await.unwrap();
        lags.push(woke.saturating_duration_since(held).as_secs_f64() * 1000.0);
    }
    lags.sort_by(f64::total_cmp);
    let sent = server.psql(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid \
         WHERE r.rolname = 'waiter' AND query NOT LIKE '%pg_stat_statements%'",
    );
    let per_wait = sent.trim().parse::<f64>().unwrap_or(0.0) / rounds as f64;
    (lags[lags.len() / 2], per_wait)
}

/// A redis-server on a free port of 127.0.0.1, when one is installed.
fn redis_server() -> Option<(std::process::Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((child, format!("redis://127.0.0.1:{port}/")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Every command Redis has run so far (`INFO commandstats`), the scripts' inner calls
/// included: by name, its calls and the server's microseconds in it (a script's own
/// include its inner calls').
fn redis_commands(url: &str) -> std::collections::BTreeMap<String, (u64, u64)> {
    let field = |rest: &str, name: &str| {
        rest.split(name)
            .nth(1)
            .and_then(|c| c.split(',').next())
            .and_then(|c| c.parse::<u64>().ok())
            .unwrap_or(0)
    };
    redis_info(url, "commandstats")
        .lines()
        .filter_map(|line| line.strip_prefix("cmdstat_")?.split_once(':'))
        .map(|(name, rest)| {
            (
                name.to_owned(),
                (field(rest, "calls="), field(rest, "usec=")),
            )
        })
        .collect()
}

/// What Redis ran between `before` and `after`, per renewal of `n`: every command, and the
/// commands by server time, most first.
fn redis_commands_between(
    before: &std::collections::BTreeMap<String, (u64, u64)>,
    after: &std::collections::BTreeMap<String, (u64, u64)>,
    n: usize,
) -> (f64, Vec<(String, f64, f64)>) {
    let mut by_time: Vec<(String, f64, f64)> = after
        .iter()
        .map(|(name, (calls, usec))| {
            let (was_calls, was_usec) = before.get(name).copied().unwrap_or((0, 0));
            let per = |now: u64, was: u64| (now - was) as f64 / n as f64;
            (name.clone(), per(*calls, was_calls), per(*usec, was_usec))
        })
        .filter(|(_, calls, _)| *calls > 0.0)
        .collect();
    by_time.sort_by(|a, b| b.2.total_cmp(&a.2));
    (by_time.iter().map(|(_, calls, _)| calls).sum(), by_time)
}

/// The port of `redis://127.0.0.1:<port>/`.
fn redis_port(url: &str) -> &str {
    url.rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
}

/// What `redis-cli` prints for `args` at the redis-server at `url` (`redis://127.0.0.1:<port>/`).
fn redis_cli(url: &str, args: &[&str]) -> String {
    std::process::Command::new("redis-cli")
        .args(["-p", redis_port(url)])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// `INFO <section>` of the redis-server at `url`.
fn redis_info(url: &str, section: &str) -> String {
    redis_cli(url, &["INFO", section])
}

/// The bytes Redis has in use (`INFO memory`'s `used_memory`).
fn redis_used_memory(url: &str) -> u64 {
    info_field(&redis_info(url, "memory"), "used_memory") as u64
}

/// The number `name:<number>` of an `INFO` answer (0 when absent).
fn info_field(info: &str, name: &str) -> f64 {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Every command the Redis server at `url` runs while it watches, by origin: sent by a client
/// (each a round trip of its own, where nothing is pipelined) or called by a script. From
/// `MONITOR`, which tags a script's calls `[0 lua]`; it slows the server, so the rates are
/// measured in runs without it.
struct Monitor {
    child: std::process::Child,
    counts: Arc<std::sync::Mutex<(u64, u64)>>,
}

impl Monitor {
    fn start(url: &str) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new("redis-cli")
            .args(["-p", redis_port(url), "MONITOR"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let counts = Arc::new(std::sync::Mutex::new((0, 0)));
        let (ready, started) = std::sync::mpsc::channel();
        let counting = Arc::clone(&counts);
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if line == "OK" {
                    let _ = ready.send(());
                    continue;
                }
                let mut counts = counting.lock().unwrap();
                if line.contains(" [0 lua] ") {
                    counts.1 += 1;
                } else {
                    counts.0 += 1;
                }
            }
        });
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        Monitor { child, counts }
    }

    /// Sent by clients, and called by scripts, since the last reset.
    fn take(&self) -> (u64, u64) {
        std::mem::take(&mut *self.counts.lock().unwrap())
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seconds of CPU this process has spent, user and system.
fn process_cpu() -> f64 {
    // /proc/self/stat: utime and stime are the 14th and 15th fields, in clock ticks (USER_HZ,
    // 100 on Linux), counted after the command's closing parenthesis.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    (fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0)) / 100.0
}

/// On a FileStore in `dir`, `n` due connections renewed `concurrency` at a time by the keeper
/// (or, `alone`, by the store's calls without it: [`store_floor_rate`]): renewals per second,
/// and this process's CPU per renewal (µs) while they ran.
async fn files_rate(dir: &Path, n: usize, concurrency: usize, alone: bool) -> (f64, f64) {
    let (store, mock) = (FileStore::new(dir).unwrap(), mock().await);
    let (started, ended) = (std::cell::Cell::new(0.0), std::cell::Cell::new(0.0));
    let (start, end) = (|| started.set(process_cpu()), || ended.set(process_cpu()));
    let rate = if alone {
        store_floor_rate(&mock, store, n, concurrency, start, end).await
    } else {
        keeper_rate(&mock, store, n, concurrency, start, end).await
    };
    (rate, (ended.get() - started.get()) * 1e6 / n as f64)
}

/// A keeper's look at a FileStore of `n` sets, none due (a walk of [`TokenStore::due`]):
/// milliseconds of wall time, the median of five store handles, for each handle's first look,
/// which reads every file, its second, which finds every file as the first remembered it, and
/// the directory's listing alone (the floor of any look).
async fn files_look(dir: &Path, n: usize) -> [f64; 3] {
    let seeding = FileStore::new(dir).unwrap();
    for i in 0..n {
        let set = set("r", Duration::from_secs(7200));
        seeding.save(&format!("c{i}"), &set, None).await.unwrap();
    }
    // A scan remembers a file once it has been still for five seconds (racy writes).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let until = SystemTime::now() + Duration::from_secs(3600);
    let look = |store: FileStore| async move {
        let started = Instant::now();
        let page = store.due("", until, None, 1024).await.unwrap().unwrap();
        assert!(page.is_empty(), "none is due: the walk is its first page");
        started.elapsed().as_secs_f64() * 1e3
    };
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..5 {
        let store = FileStore::new(dir).unwrap();
        times[0].push(look(store.clone()).await);
        times[1].push(look(store.clone()).await);
        let started = Instant::now();
        assert_eq!(
            store.list("").await.unwrap().map(|keys| keys.len()),
            Some(n)
        );
        times[2].push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    })
}

/// CPU seconds used so far by this process (the client, the mock, the keeper) and by a
/// redis-server, for the cost of each refresh where the two share the machine's cores.
#[derive(Clone, Copy)]
struct Cpu {
    process: f64,
    redis: f64,
}

impl Cpu {
    fn now(url: &str) -> Self {
        let info = redis_info(url, "cpu");
        Cpu {
            process: process_cpu(),
            redis: info_field(&info, "used_cpu_sys") + info_field(&info, "used_cpu_user"),
        }
    }

    /// Microseconds of each side's CPU per refresh since `self`, over `n` refreshes.
    fn spent(self, url: &str, n: usize) -> Cpu {
        let now = Cpu::now(url);
        let per = |a: f64, b: f64| (a - b) * 1e6 / n as f64;
        Cpu {
            process: per(now.process, self.process),
            redis: per(now.redis, self.redis),
        }
    }
}

/// What the disk allows: writes of a small file made durable the way the FileStore does one
/// (write, fsync, rename, fsync of the directory), one after another, for a second.
fn durable_writes_per_second(dir: &Path) -> f64 {
    use std::io::Write;
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        let temp = dir.join(format!("probe.tmp.{n}"));
        let mut file = std::fs::File::create(&temp).unwrap();
        file.write_all(&[b'x'; 300]).unwrap();
        file.sync_all().unwrap();
        std::fs::rename(&temp, dir.join("probe.json")).unwrap();
        std::fs::File::open(dir).unwrap().sync_all().unwrap();
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// What the disk allows at its simplest: a small file's write and `fsync`, one after another,
/// for a second (the floor every durable write pays once).
fn fsyncs_per_second(dir: &Path) -> f64 {
    use std::io::Write;
    let mut file = std::fs::File::create(dir.join("probe.fsync")).unwrap();
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        file.write_all(&[b'x'; 300]).unwrap();
        file.sync_all().unwrap();
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Refreshes per second, and this process's CPU per refresh (µs, the mock's share included):
/// a plain client sending `n` refreshes (its families' creation counted), the memory store's
/// calls around the same refreshes ([`store_floor_rate`]), and the keeper on the memory store
/// renewing `n` due connections, each `concurrency` at a time. CPU holds
/// steadier than rates on a shared VM.
async fn throughput(n: usize, concurrency: usize) -> [(f64, f64); 3] {
    let mock = mock().await;
    let per = |since: f64| (process_cpu() - since) * 1e6 / n as f64;
    let start = process_cpu();
    let plain = plain_rate(&mock, n, concurrency).await;
    let plain = (plain, per(start));
    let (seeded, renewed) = (std::cell::Cell::new(0.0), std::cell::Cell::new(0.0));
    let (seed, renew) = (|| seeded.set(process_cpu()), || renewed.set(process_cpu()));
    let floor = store_floor_rate(&mock, MemoryStore::new(), n, concurrency, seed, renew).await;
    let floor = (floor, (renewed.get() - seeded.get()) * 1e6 / n as f64);
    let kept = keeper_rate(&mock, MemoryStore::new(), n, concurrency, seed, renew).await;
    let kept = (kept, (renewed.get() - seeded.get()) * 1e6 / n as f64);
    [plain, floor, kept]
}

/// The memory section's line for [`throughput`]'s answer.
fn throughput_line(n: usize, [plain, floor, kept]: [(f64, f64); 3]) {
    println!(
        "refreshes/s, {n} due, 64 at a time: plain client {:.0} ({:.0} µs of CPU each), the store's calls around it {:.0} ({:.0} µs), keeper (memory store) {:.0} ({:.0} µs): {:.2}x of the plain client (CPU {:.2}x), {:.2}x of the store's floor",
        plain.0,
        plain.1,
        floor.0,
        floor.1,
        kept.0,
        kept.1,
        kept.0 / plain.0,
        kept.1 / plain.1,
        kept.0 / floor.0
    );
}

/// Whether the run includes `section`: all of them, unless `BENCH_SECTIONS` lists some
/// (`memory,redis,postgres,waiters,files`).
fn wants(section: &str) -> bool {
    std::env::var("BENCH_SECTIONS").is_err() || named(section)
}

/// Whether `BENCH_SECTIONS` names `section` (`million` runs only then).
fn named(section: &str) -> bool {
    std::env::var("BENCH_SECTIONS").is_ok_and(|list| list.split(',').any(|s| s == section))
}

fn main() {
    // `cargo test --bench connections` (CI) passes no `--bench`: run it small.
    let full = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sizes: &[usize] = if full {
        &[1_000, 10_000, 100_000]
    } else {
        &[200]
    };
    // `PROFILE_KEEPER=n`: only the keeper on the memory store against the plain client, at n
    // due, long enough for a profiler (`perf record --call-graph dwarf`) to see its overhead.
    if let Some(n) = std::env::var("PROFILE_KEEPER")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        throughput_line(n, runtime.block_on(throughput(n, 64)));
        return;
    }
    // `PROFILE_FILES=n`: only the keeper on a FileStore at n due, 16 at a time (or
    // `PROFILE_AT_ONCE`), no disk probes; with `PROFILE_FLOOR`, the store's calls alone.
    if let Some(n) = std::env::var("PROFILE_FILES")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        let dir = std::env::temp_dir().join(format!("tokenkit-profile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let at_once = std::env::var("PROFILE_AT_ONCE")
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(16);
        let alone = std::env::var("PROFILE_FLOOR").is_ok();
        let (kept, cpu) = runtime.block_on(files_rate(&dir, n, at_once, alone));
        let what = if alone {
            "the store's calls alone"
        } else {
            "keeper"
        };
        println!(
            "refreshes/s, {n} due, {at_once} at a time: {what} (FileStore) {kept:.0}, {cpu:.0} µs of CPU each ({:.2} cores)",
            cpu * kept / 1e6
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    if wants("memory") {
        println!("memory per connection (bytes beyond the store)");
        println!(
            "{:>9} {:>10} {:>14} {:>8}",
            "n", "active", "of it, the set", "idle"
        );
        for &n in sizes {
            let (active, set, idle) = runtime.block_on(memory(n));
            println!("{n:>9} {active:>10.0} {set:>14.0} {idle:>8.1}");
        }
        let n = if full { 20_000 } else { 300 };
        throughput_line(n, runtime.block_on(throughput(n, 64)));
    }
    // A million connections: only when asked for by name (minutes, and gigabytes of memory);
    // small in CI's test run, on Redis.
    if named("million") || !full {
        let shape = million::Shape::from_env(full);
        if let Some((mut server, url)) = redis_server() {
            let outcome = runtime.block_on(async {
                let mock = mock().await;
                let store = RedisStore::connect(&url, "bench").await.unwrap();
                million::run(&mock, store, &shape, 20_000.0, || redis_used_memory(&url)).await
            });
            outcome.print("redis");
            let index = redis_cli(&url, &["MEMORY", "USAGE", "bench:due"]);
            let index = index.trim().parse::<f64>().unwrap_or(0.0) / shape.n as f64;
            println!("  of it, the due index (one sorted set, on one slot): {index:.0} B each");
            let _ = server.kill();
        }
        if full {
            let server = tokenkit_manager_tests::Postgres::start();
            let size = || {
                server
                    .psql("SELECT pg_database_size(current_database())")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0)
            };
            let outcome = runtime.block_on(async {
                let mock = mock().await;
                let store = PostgresStore::connect(&server.url).await.unwrap();
                million::run(&mock, store, &shape, 2_500.0, size).await
            });
            outcome.print("postgres");
        }
    }
    if !full {
        return;
    }
    // Redis: the same, and the commands each renewal costs.
    if let Some((mut server, url)) = wants("redis").then(redis_server).flatten() {
        let n = 10_000;
        let (plain, floor, stored, kept, all, trips) = runtime.block_on(async {
            let mock = mock().await;
            // The round trips first, on a prefix of their own (MONITOR slows the server).
            let count = 1_000;
            let store = RedisStore::connect(&url, "count").await.unwrap();
            let monitor = std::cell::OnceCell::new();
            keeper_rate(
                &mock,
                store,
                count,
                64,
                || {
                    let _ = monitor.set(Monitor::start(&url));
                },
                || (),
            )
            .await;
            let (sent, _) = monitor.get().unwrap().take();
            drop(monitor);
            let trips = sent as f64 / count as f64;
            let start = Cpu::now(&url);
            let plain = (plain_rate(&mock, n, 64).await, start.spent(&url, n));
            let connection = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection_manager()
                .await
                .unwrap();
            let start = Cpu::now(&url);
            let floor = plain_rate_with(&mock, n, 64, Some((connection, trips.round() as usize)));
            let floor = (floor.await, start.spent(&url, n));
            let store = RedisStore::connect(&url, "floor").await.unwrap();
            let (seeded, spent) = (std::cell::Cell::new(None), std::cell::Cell::new(None));
            let seed = || seeded.set(Some(Cpu::now(&url)));
            let renew = || spent.set(seeded.get().map(|cpu| cpu.spent(&url, n)));
            let stored = store_floor_rate(&mock, store, n, 64, seed, renew).await;
            let stored = (stored, spent.get().expect("renewed"));
            let store = RedisStore::connect(&url, "bench").await.unwrap();
            let before = std::cell::RefCell::new((Default::default(), Cpu::now(&url)));
            let spent = std::cell::Cell::new(None);
            let kept = keeper_rate(
                &mock,
                store,
                n,
                64,
                || *before.borrow_mut() = (redis_commands(&url), Cpu::now(&url)),
                || spent.set(Some(before.borrow().1.spent(&url, n))),
            )
            .await;
            let (commands, _) = before.into_inner();
            let kept = (kept, spent.get().expect("renewed"));
            let (all, by_time) = redis_commands_between(&commands, &redis_commands(&url), n);
            (plain, floor, stored, kept, (all, by_time), trips)
        });
        let (all, by_time) = all;
        println!(
            "refreshes/s, {n} due, 64 at a time: plain client {:.0}, with {:.0} empty Redis round trips each {:.0} ({:.2}x), keeper (redis) {:.0}: {:.2}x of the plain client, {:.2}x of the round trips' floor; per renewal (the keeper's only) {all:.1} Redis commands (scripts' calls included) in {trips:.2} round trips",
            plain.0,
            trips.round(),
            floor.0,
            floor.0 / plain.0,
            kept.0,
            kept.0 / plain.0,
            kept.0 / floor.0
        );
        println!(
            "  the store's calls around a plain refresh, no keeper: {:.0}/s ({:.2}x of the plain client); the keeper {:.2}x of them",
            stored.0,
            stored.0 / plain.0,
            kept.0 / stored.0
        );
        println!("  the server's time per renewal by command (a script's includes its calls'):");
        for (name, calls, usec) in by_time.iter().take(8) {
            println!("    {name:<16} {calls:>6.2} calls {usec:>7.1} us");
        }
        for (what, (_, cpu)) in [
            ("plain client", plain),
            ("floor", floor),
            ("the store's calls", stored),
            ("keeper", kept),
        ] {
            println!(
                "  CPU per refresh, {what}: {:.1} us in the bench's process (client, mock, keeper), {:.1} us in redis-server",
                cpu.process, cpu.redis
            );
        }
        let _ = server.kill();
    }
    // PostgreSQL: the same, and the statements each renewal costs (pg_stat_statements).
    if wants("postgres") {
        let n = 5_000;
        let server = tokenkit_manager_tests::Postgres::start_with(&[
            "shared_preload_libraries=pg_stat_statements",
        ]);
        server.psql("CREATE EXTENSION pg_stat_statements");
        let (plain, stored, kept) = runtime.block_on(async {
            let mock = mock().await;
            let plain = plain_rate(&mock, n, 64).await;
            let store = PostgresStore::connect(&server.url).await.unwrap();
            let stored = store_floor_rate(&mock, store.clone(), n, 64, || (), || ()).await;
            let kept = keeper_rate(
                &mock,
                store,
                n,
                64,
                || {
                    server.psql("SELECT pg_stat_statements_reset()");
                },
                || (),
            )
            .await;
            (plain, stored, kept)
        });
        println!(
            "refreshes/s, {n} due, 64 at a time: plain client {plain:.0}, the store's calls around it {stored:.0} ({:.2}x), keeper (postgres) {kept:.0}: {:.2}x of the plain client, {:.2}x of the store's calls; statements per renewal (the keeper's only):",
            stored / plain,
            kept / plain,
            kept / stored
        );
        let calls = server.psql(
            "SELECT calls, round(mean_exec_time::numeric, 3) || ' ms ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 60) FROM pg_stat_statements \
             WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC",
        );
        let mut total = 0.0;
        for line in calls.lines().filter(|l| !l.trim().is_empty()) {
            let (count, query) = line.split_once('|').unwrap_or((line, ""));
            let per = count.trim().parse::<f64>().unwrap_or(0.0) / n as f64;
            total += per;
            println!("  {per:>6.2}  {}", query.trim());
        }
        println!("  {total:>6.2}  in all, each one round trip");
        drop(server);
    }
    // PostgreSQL: a process waiting for another's refresh, polling or woken by NOTIFY.
    if wants("waiters") {
        let server = tokenkit_manager_tests::Postgres::start_with(&[
            "shared_preload_libraries=pg_stat_statements",
        ]);
        server.psql("CREATE EXTENSION pg_stat_statements");
        server.psql("CREATE ROLE waiter LOGIN SUPERUSER");
        println!("a waiter behind another process's refresh (200 ms at the provider), 20 rounds:");
        for (listen, poll) in [
            (false, Duration::from_millis(25)),
            (true, Duration::from_millis(25)),
            (true, Duration::from_secs(1)),
        ] {
            let (lag, per_wait) = runtime.block_on(waiting(&server, listen, poll, 20));
            let how = if listen {
                "NOTIFY, polling every"
            } else {
                "polling every"
            };
            println!(
                "  {how} {poll:?}: {lag:.1} ms behind the holder (median), {per_wait:.1} statements per wait"
            );
        }
    }
    // Files: the keeper against what the disk's durable writes allow.
    if wants("files") {
        let dir = std::env::temp_dir().join(format!("tokenkit-bench-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let n = 5_000;
        for concurrency in [16, 64] {
            std::fs::create_dir_all(&dir).unwrap();
            // This VM's disk changes speed from minute to minute (3x seen): it is measured
            // right before and right after the keeper, and the keeper judged against the mean.
            let before = (fsyncs_per_second(&dir), durable_writes_per_second(&dir));
            let (kept, cpu) =
                runtime.block_on(files_rate(&dir.join("store"), n, concurrency, false));
            let floor = runtime.block_on(files_rate(&dir.join("floor"), n, concurrency, true));
            let after = (fsyncs_per_second(&dir), durable_writes_per_second(&dir));
            let fsyncs = (before.0 + after.0) / 2.0;
            let durable = (before.1 + after.1) / 2.0;
            // A renewal makes two writes durable (the sending mark, the new set): in place, one
            // fdatasync each; serialized through new files, two writes and four fsyncs.
            println!(
                "files, {concurrency} at once: the disk makes {:.0}/{:.0} fsyncs (before/after) and {:.0}/{:.0} writes durable through a new file per second one after another; the keeper renewed {kept:.0}/s ({cpu:.0} µs of this process's CPU each): {:.2}x of the fsync rate, {:.2}x of two serialized durable writes; the store's calls without the keeper {:.0}/s ({:.0} µs): the keeper {:.2}x of them, they {:.2}x of the fsync rate",
                before.0,
                after.0,
                before.1,
                after.1,
                kept / fsyncs,
                kept / (durable / 2.0),
                floor.0,
                floor.1,
                kept / floor.0,
                floor.0 / fsyncs
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    // Files: what a keeper's look costs when nothing changed.
    if wants("look") {
        let dir = std::env::temp_dir().join(format!("tokenkit-bench-look-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let n = if full { 10_000 } else { 200 };
        let [reading, remembered, listing] = runtime.block_on(files_look(&dir, n));
        println!(
            "files, a look at {n} sets none due: {reading:.1} ms reading every file, {remembered:.1} ms finding them as the last scan read them ({:.2}x); the listing alone {listing:.1} ms",
            remembered / reading
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
