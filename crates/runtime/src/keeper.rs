//! The keeper: a pool's background task that refreshes each connection before its refresh
//! token dies, used or not, so that connections nobody touches for weeks stay alive.
//!
//! Each look asks the store which connections are due ([`TokenStore::due`], or every listed set
//! where the store keeps no index) and refreshes them through the pool, under the same lock,
//! marks and versions as any refresh. Where several replicas run keepers on a store that keeps
//! claims ([`TokenStore::claim_due`]), each page is claimed for one keeper and the others walk
//! past it; elsewhere the first to take a connection's lock refreshes it and the others find
//! the new set stored. Claims only spread the work: the lock and versions still decide. Looks are spaced
//! with jitter, refreshes bounded in number and rate, and a connection that keeps failing is
//! reported ([`TokenEvent::RefreshTokenExpiring`](crate::TokenEvent), once across replicas) and
//! left alone until its set changes, never retried forever.

use crate::client::RefreshClient;
use crate::manager::ManagerError;
use crate::pool::TokenPool;
use crate::store::{Due, DueAfter, DueClaim, TokenStore, due_after};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;

/// How a keeper works.
#[derive(Clone, Debug)]
pub struct KeeperConfig {
    /// How often to look for due connections. Default 1 s.
    pub interval: Duration,
    /// Each look waits up to this much longer, at random, so that replicas started together
    /// (or after an outage) spread out. Default 500 ms.
    pub jitter: Duration,
    /// At most this many refreshes at once, in this process. Default 32.
    pub concurrency: usize,
    /// At most this many refreshes started per second, in this process (the provider's rate
    /// limit, shared by the replicas). Default 50.
    pub per_second: u32,
    /// After this many failed refreshes in a row a connection is reported and left alone
    /// until its set changes. Between tries it waits 500 ms, doubling, but never more than a
    /// quarter of what is left of its refresh token's life. Default 5.
    pub max_failures: u32,
    /// Also renew the connections in memory (in use lately) whose access token is due, so
    /// that their callers never wait for a refresh. Default false: they refresh on demand.
    pub proactive: bool,
    /// How many due connections one look takes at most; a full batch is followed by another
    /// look at once. Small batches keep replicas from visiting what another just renewed.
    /// Default 256.
    pub batch: usize,
    /// How long the entries of a page stay claimed by this keeper, where the store keeps
    /// claims ([`TokenStore::claim_due`]): replicas then split the due connections instead
    /// of each visiting them all, and a replica that dies leaves its share to the others
    /// after this. Never more than a quarter of the refresh margin; a page is at most what
    /// the rate bound starts in half of it. Zero: no claims. Default 30 s.
    pub claim: Duration,
}

impl Default for KeeperConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            jitter: Duration::from_millis(500),
            concurrency: 32,
            per_second: 50,
            max_failures: 5,
            proactive: false,
            batch: 256,
            claim: Duration::from_secs(30),
        }
    }
}

impl KeeperConfig {
    /// Checks the settings: every count at least 1, the interval positive, and the interval
    /// and the jitter at most a day (a keeper that looks less often cannot keep refresh
    /// tokens alive, and clock arithmetic on larger values would overflow).
    pub fn validate(&self) -> Result<(), ManagerError> {
        let bad = |why: &str| Err(ManagerError::Config(format!("keeper: {why}")));
        let day = Duration::from_secs(24 * 3600);
        if self.interval.is_zero() || self.interval > day || self.jitter > day || self.claim > day {
            return bad("interval must be positive, and interval, jitter and claim at most a day");
        }
        if self.batch == 0 || self.concurrency == 0 || self.per_second == 0 {
            return bad("batch, concurrency and per_second must be at least 1");
        }
        if self.max_failures == 0 {
            return bad("max_failures must be at least 1");
        }
        Ok(())
    }
}

/// What a keeper has done so far, in this process.
#[derive(Debug, Default)]
pub struct KeeperStats {
    /// Looks at the store.
    pub looks: AtomicU64,
    /// Connections it visited because they were due.
    pub visits: AtomicU64,
    /// Visits that ended with a live set (refreshed here, or found refreshed elsewhere).
    pub kept: AtomicU64,
    /// Visits that failed.
    pub failed: AtomicU64,
    /// Connections given up on (dead refresh token, or too many failures).
    pub given_up: AtomicU64,
}

/// A running keeper; dropping it (or [`Keeper::stop`]) stops it.
pub struct Keeper {
    task: tokio::task::JoinHandle<()>,
    stats: Arc<KeeperStats>,
    /// One permit per refresh it may run at once; all free when none runs.
    permits: Arc<Semaphore>,
    concurrency: u32,
    /// Whether no connection of the pool has a write being retried.
    settled: Box<dyn Fn() -> bool + Send + Sync>,
}

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keeper")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Keeper {
    /// What it has done so far.
    pub fn stats(&self) -> &KeeperStats {
        &self.stats
    }

    /// Stops it (refreshes in flight finish on their own).
    pub fn stop(self) {
        self.task.abort();
    }

    /// Stops it and waits for its refreshes in flight to end and for every set whose write
    /// is being retried to be stored (a process that exits first loses the newest set, whose
    /// predecessor's refresh token is spent): for a service that shuts down. A store that
    /// stays away keeps it waiting; bound it with `tokio::time::timeout` where that matters.
    pub async fn shutdown(self) {
        self.task.abort();
        // Every running refresh holds a permit until it ends.
        let _ = self.permits.acquire_many(self.concurrency).await;
        while !(self.settled)() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The "dies at" of a connection visited because it is in use and its access token is due
/// (proactive mode), not because its refresh token dies.
const IN_USE: SystemTime = SystemTime::UNIX_EPOCH;

/// How far the rate bound lets starts run ahead of it.
const BURST: Duration = Duration::from_millis(100);

/// A connection that failed: when to try again, and after how many failures.
#[derive(Clone, Copy)]
struct Failing {
    attempts: u32,
    next: Instant,
    /// Given up on while its refresh token was to die at this time: left alone while the
    /// index still says so (a new set has a new time).
    given_up: Option<SystemTime>,
}

/// A random duration up to `max` (from the clock's nanoseconds: spread, not secrecy).
fn up_to(max: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    max.mul_f64(f64::from(nanos % 10_000) / 10_000.0)
}

/// How long a connection that failed `attempts` times in a row waits before the next try:
/// doubling from 500 ms up to 5 minutes, but never past a quarter of what is left of its
/// refresh token's life, so tries come closer together as its death nears instead of one
/// landing after it.
fn retry_after(attempts: u32, dies: SystemTime) -> Duration {
    let backoff = Duration::from_millis(250)
        .saturating_mul(1 << attempts.min(10))
        .min(Duration::from_secs(300));
    match dies.duration_since(SystemTime::now()) {
        Ok(left) if dies != IN_USE => backoff.min(left / 4),
        _ => backoff,
    }
}

impl<C: RefreshClient + 'static, S: TokenStore> TokenPool<C, S> {
    /// Starts a keeper for this pool on the current Tokio runtime (see the `keeper` module).
    /// Its refresh margin is the pool's `manager.refresh_token_margin`. Must be called inside
    /// a runtime; fails when `config` is refused ([`KeeperConfig::validate`]).
    pub fn keep(&self, config: KeeperConfig) -> Result<Keeper, ManagerError> {
        config.validate()?;
        let stats = Arc::new(KeeperStats::default());
        let concurrency = u32::try_from(config.concurrency.clamp(1, 1 << 20)).unwrap_or(1);
        let permits = Arc::new(Semaphore::new(concurrency as usize));
        let task = tokio::spawn(run(
            self.clone(),
            config,
            Arc::clone(&stats),
            Arc::clone(&permits),
        ));
        let pool = self.clone();
        Ok(Keeper {
            task,
            stats,
            permits,
            concurrency,
            settled: Box::new(move || pool.unsaved_connections() == 0),
        })
    }

    /// A page of this pool's connections whose refresh token dies by `until`, after `after`
    /// in the order of (time, key), and where the next page starts (`None`: the walk is
    /// over): from the store's index, or (where it keeps none) all of them at once, by
    /// reading every listed set. Keys of other pools that share the prefix's start are left
    /// out, after the next page's start is taken from the whole page (a page of only their
    /// keys must not end the walk).
    ///
    /// Under a `claim`, from the store's claims where it keeps them: only the entries now
    /// claimed for this keeper, and `true`.
    async fn due(
        &self,
        until: SystemTime,
        after: DueAfter<'_>,
        limit: usize,
        claim: Option<DueClaim<'_>>,
    ) -> Result<(Due, Option<(SystemTime, String)>, bool), ManagerError> {
        let prefix = self.key_prefix();
        if let Some(claim) = claim
            && let Some(page) = self
                .store()
                .claim_due(prefix, until, after, limit, claim)
                .await?
        {
            // Another pool's keys under this prefix's start: claimed by the store, given up at
            // once (else that pool's keeper would walk past them for as long as this one looks).
            let (mine, theirs): (Due, Due) = page
                .claimed
                .into_iter()
                .partition(|(key, _)| self.connection_of(key).is_some());
            if !theirs.is_empty() {
                let keys: Vec<String> = theirs.into_iter().map(|(key, _)| key).collect();
                self.release_claims(&keys, claim.owner).await;
            }
            return Ok((mine, page.next, true));
        }
        if let Some(mut due) = self.store().due(prefix, until, after, limit).await? {
            let next = due
                .last()
                .filter(|_| due.len() >= limit)
                .map(|(key, at)| (*at, key.clone()));
            due.retain(|(key, _)| self.connection_of(key).is_some());
            return Ok((due, next, false));
        }
        let mut due = Vec::new();
        for key in self.store().list(prefix).await?.unwrap_or_default() {
            if self.connection_of(&key).is_some()
                && let Some(stored) = self.store().load(&key).await?
                && stored.dead.is_none()
                && let Some(dies) = stored.tokens.refresh_expires_at
                && dies <= until
                && due_after(after, dies, &key)
            {
                due.push((key, dies));
            }
        }
        due.sort_unstable_by(|(a, at), (b, bt)| (at, a).cmp(&(bt, b)));
        Ok((due, None, false))
    }
}

impl<C: RefreshClient + 'static, S: TokenStore> TokenPool<C, S> {
    /// Gives this keeper's claims on `keys` up; a store that does not answer lets them run
    /// out instead.
    async fn release_claims(&self, keys: &[String], owner: &str) {
        if let Err(e) = self.store().release_claims(keys, owner).await {
            tracing::debug!(error = %e, "the keeper's claims run out instead of being given up");
        }
    }
}

/// What the keeper's look at a connection's lock found.
enum Look {
    /// Taken: the renewal runs under it.
    Held(crate::store::StoreLock),
    /// Another holder has it.
    Elsewhere,
    /// The store did not answer.
    Unknown,
}

/// What one due entry is: a connection's key and when its refresh token dies (or
/// [`IN_USE`], for a connection in use whose access token is due).
type Entry = (String, SystemTime);

/// The keeper's task: walk the due connections, look after look, renewing each.
async fn run<C: RefreshClient + 'static, S: TokenStore>(
    pool: TokenPool<C, S>,
    config: KeeperConfig,
    stats: Arc<KeeperStats>,
    permits: Arc<Semaphore>,
) {
    let margin = pool.manager_config().refresh_token_margin;
    let lease = config.claim.min(margin / 4);
    let mut walk = Walk {
        gap: Duration::from_secs(1) / config.per_second.max(1),
        margin,
        owner: crate::store::lease::lock_token().into(),
        lease,
        // What the rate bound starts in half the lease: a claimed page is visited before
        // its claims run out.
        claim_batch: config
            .batch
            .min((f64::from(config.per_second) * lease.as_secs_f64() / 2.0) as usize)
            .max(1),
        claimed: false,
        started: Instant::now(),
        pool,
        config,
        stats,
        permits,
        failing: Arc::default(),
        busy: Arc::default(),
        next_start: Instant::now(),
        cursor: None,
        until: SystemTime::now(),
        walked: Default::default(),
    };
    loop {
        let Some(due) = walk.next_page().await else {
            continue;
        };
        // Claimed entries this keeper backs off from: left to the other replicas.
        let mut left = Vec::new();
        for (key, dies) in due {
            let Some(connection) = walk.pool.connection_of(&key) else {
                continue;
            };
            match walk.skips(&key, dies) {
                Skip::No => {}
                Skip::Busy => continue,
                Skip::Failing => {
                    left.push(key);
                    continue;
                }
            }
            let Ok(permit) = Arc::clone(&walk.permits).acquire_owned().await else {
                return;
            };
            walk.pace(dies).await;
            let visit = Visit {
                pool: walk.pool.clone(),
                stats: Arc::clone(&walk.stats),
                failing: Arc::clone(&walk.failing),
                busy: Arc::clone(&walk.busy),
                max_failures: walk.config.max_failures,
                claimed: walk.claimed,
                loading: !walk.lease.is_zero(),
                owner: Arc::clone(&walk.owner),
                key,
                dies,
            };
            tokio::spawn(async move {
                visit.run(&connection).await;
                drop(permit);
            });
        }
        if walk.claimed && !left.is_empty() {
            walk.pool.release_claims(&left, &walk.owner).await;
        }
    }
}

/// Whether the walk leaves an entry alone this time.
enum Skip {
    /// It visits it.
    No,
    /// This keeper is renewing it already.
    Busy,
    /// It failed lately: backing off, or given up on until its set changes.
    Failing,
}

/// The keeper's walk over the due connections, and what it remembers between pages.
struct Walk<C: RefreshClient, S: TokenStore> {
    pool: TokenPool<C, S>,
    config: KeeperConfig,
    stats: Arc<KeeperStats>,
    permits: Arc<Semaphore>,
    /// The connections that failed lately, and until when they are left alone.
    failing: Arc<Mutex<HashMap<String, Failing>>>,
    /// The connections being renewed now, by this keeper.
    busy: Arc<Mutex<std::collections::HashSet<String>>>,
    /// The average time between two starts (the rate bound).
    gap: Duration,
    /// How long before its refresh token dies a connection is due.
    margin: Duration,
    /// This keeper's name in the store's claims.
    owner: Arc<str>,
    /// How long its claims hold; zero: it claims nothing.
    lease: Duration,
    /// How many entries a claimed page has at most.
    claim_batch: usize,
    /// Whether the current page was claimed for this keeper.
    claimed: bool,
    /// When the current walk started.
    started: Instant,
    /// When the next renewal may start.
    next_start: Instant,
    /// Where the next page starts; `None`: the next page is a new look's first.
    cursor: Option<(SystemTime, String)>,
    /// The end of the due window of this look.
    until: SystemTime,
    /// The connections seen in the walk so far: what the failure map keeps after it.
    walked: std::collections::HashSet<String>,
}

impl<C: RefreshClient + 'static, S: TokenStore> Walk<C, S> {
    /// The next page of due entries, in the order they are visited; `None` when the store
    /// could not say (the walk starts over at the next look).
    ///
    /// Each look walks the whole due set, page by page (each after the last page's end), so
    /// that entries skipped (backing off, given up, locked elsewhere) never hold the rest
    /// back; then it waits for the next look.
    ///
    /// A walk over claimed pages starts over from the earliest entries once it is older than
    /// a lease: the claims it walked past may have run out since (their replica died), and
    /// those entries must not wait for the end of a long walk.
    async fn next_page(&mut self) -> Option<Vec<Entry>> {
        let first_page = self.cursor.is_none();
        if first_page {
            self.new_look().await;
        } else if self.claimed && self.started.elapsed() >= self.lease {
            self.cursor = None;
            self.started = Instant::now();
            self.until = SystemTime::now() + self.margin;
        } else {
            tokio::task::yield_now().await;
        }
        let after = self.cursor.as_ref().map(|(at, key)| (*at, key.as_str()));
        let claim = (!self.lease.is_zero()).then_some(DueClaim {
            owner: &self.owner,
            lease: self.lease,
        });
        let limit = if claim.is_some() {
            self.claim_batch
        } else {
            self.config.batch
        };
        let (mut due, next, claimed) = match self.pool.due(self.until, after, limit, claim).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "the keeper cannot read which connections are due");
                self.cursor = None;
                return None;
            }
        };
        self.cursor = next;
        self.claimed = claimed;
        if self.config.proactive && first_page {
            due.extend(self.in_use_and_due(&due));
        }
        self.walked.extend(due.iter().map(|(key, _)| key.clone()));
        // Replicas that read the same index unclaimed each start at their own random place
        // in the page, so that they spread over the due connections instead of queueing on
        // the same locks; a claimed page is this keeper's alone, earliest first.
        if !claimed && !due.is_empty() {
            let start = up_to(Duration::from_secs(1)).subsec_nanos() as usize % due.len();
            due.rotate_left(start);
        }
        Some(due)
    }

    /// The last walk is over: forget the failures of connections it no longer saw, wait for
    /// the next look, and set its window.
    async fn new_look(&mut self) {
        if !self.walked.is_empty() {
            let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
            failing.retain(|key, _| self.walked.contains(key));
            self.walked.clear();
        }
        tokio::time::sleep(self.config.interval + up_to(self.config.jitter)).await;
        self.stats.looks.fetch_add(1, Ordering::Relaxed);
        self.started = Instant::now();
        self.until = SystemTime::now() + self.margin;
    }

    /// Connections in use whose access token is due, not in `due` already; the renewal's
    /// own rules decide.
    fn in_use_and_due(&self, due: &[Entry]) -> Vec<Entry> {
        let known: std::collections::HashSet<&str> = due.iter().map(|(k, _)| k.as_str()).collect();
        self.pool
            .stale_connections()
            .into_iter()
            .map(|name| (self.pool.key_of(&name), IN_USE))
            .filter(|(key, _)| !known.contains(key.as_str()))
            .collect()
    }

    /// Whether `key` is left alone this time: given up on (until its set changes), backing
    /// off, or being renewed already; otherwise it is marked busy.
    fn skips(&self, key: &str, dies: SystemTime) -> Skip {
        {
            let failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(f) = failing.get(key)
                && (f.given_up == Some(dies)
                    || (dies == IN_USE && f.given_up.is_some())
                    || Instant::now() < f.next)
            {
                return Skip::Failing;
            }
        }
        let busy = !self
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned());
        if busy { Skip::Busy } else { Skip::No }
    }

    /// Waits for the rate bound, as a token bucket a tenth of a second deep: starts are
    /// `gap` apart on average, a burst of up to a tenth of the rate at once (a timer per start
    /// would cap the rate at the timer's millisecond). Counts the visit.
    async fn pace(&mut self, dies: SystemTime) {
        let now = Instant::now();
        if self.next_start > now {
            tokio::time::sleep_until(self.next_start.into()).await;
        }
        self.next_start = self.next_start.max(now.checked_sub(BURST).unwrap_or(now)) + self.gap;
        self.stats.visits.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        if dies != IN_USE {
            let due_at = dies.checked_sub(self.margin).unwrap_or(dies);
            let lag = SystemTime::now().duration_since(due_at).unwrap_or_default();
            metrics::histogram!("tokenkit_keeper_lag_seconds", "provider" => self.pool.provider())
                .record(lag.as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = dies;
    }
}

/// One renewal of one due connection, in a task of its own.
struct Visit<C: RefreshClient, S: TokenStore> {
    pool: TokenPool<C, S>,
    stats: Arc<KeeperStats>,
    failing: Arc<Mutex<HashMap<String, Failing>>>,
    busy: Arc<Mutex<std::collections::HashSet<String>>>,
    max_failures: u32,
    /// Whether its page was claimed for this keeper (another replica rarely has its lock).
    claimed: bool,
    /// Whether the lock's probe reads the set with it ([`Visit::lock`]).
    loading: bool,
    /// This keeper's name in the claims.
    owner: Arc<str>,
    key: String,
    dies: SystemTime,
}

impl<C: RefreshClient + 'static, S: TokenStore> Visit<C, S> {
    /// Renews the connection unless another replica holds its lock (a look later finds it
    /// renewed, or still due), then records how it went.
    ///
    /// The rare paths are boxed: every visit's task is as large as its largest path, and a
    /// small one is allocated and moved for less.
    async fn run(self, connection: &str) {
        let result = match self.lock().await {
            Look::Elsewhere => return,
            Look::Held(lock) => self.pool.renew_holding(connection, lock).await,
            // The store did not answer: the manager's own wait for the lock decides.
            Look::Unknown => Box::pin(self.pool.renew(connection)).await,
        };
        let failed = result.is_err();
        if self.record(result) {
            Box::pin(self.pool.report_expiring(connection, self.dies)).await;
        }
        if failed && self.claimed {
            self.pool
                .release_claims(std::slice::from_ref(&self.key), &self.owner)
                .await;
        }
    }

    /// The connection's lock, taken for the renewal, unless another holder has it right now
    /// (another replica is renewing it: a look later finds it renewed, or still due).
    ///
    /// The probe reads the set with the lock ([`TokenStore::try_lock_loading`]: one round
    /// trip fewer) on a claimed page, and where claims are asked for but the store keeps none
    /// (a directory, one process's memory: nothing to send, the set is read only once the
    /// lock is taken). A keeper that claims nothing walks the same index as its replicas and
    /// many of its probes find the lock taken, where a load sent with each would be wasted:
    /// its probe takes the lock alone ([`TokenStore::try_lock`]).
    async fn lock(&self) -> Look {
        let lock_ttl = self.pool.manager_config().lock_ttl;
        let store = self.pool.store();
        let probe = if self.loading {
            store.try_lock_loading(&self.key, lock_ttl).await
        } else {
            store.try_lock(&self.key, lock_ttl).await
        };
        match probe {
            Ok(Some(lock)) => Look::Held(lock),
            Ok(None) => Look::Elsewhere,
            Err(_) => Look::Unknown,
        }
    }

    /// Counts the renewal and keeps the failure map; true when the connection, given up on
    /// now, must be reported as expiring.
    fn record(&self, result: Result<(), ManagerError>) -> bool {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        let e = match result {
            Ok(()) => {
                self.stats.kept.fetch_add(1, Ordering::Relaxed);
                failing.remove(&self.key);
                return false;
            }
            Err(e) => e,
        };
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        let entry = failing.entry(self.key.clone()).or_insert(Failing {
            attempts: 0,
            next: Instant::now(),
            given_up: None,
        });
        entry.attempts += 1;
        // A dead one was reported where it was marked dead.
        let dead = matches!(e, ManagerError::ReAuthenticate { .. });
        if dead || entry.attempts >= self.max_failures {
            // Left alone until its set changes.
            entry.given_up = Some(self.dies);
            self.stats.given_up.fetch_add(1, Ordering::Relaxed);
            !dead && self.dies != IN_USE
        } else {
            entry.next = Instant::now() + retry_after(entry.attempts, self.dies);
            false
        }
    }
}

impl<C: RefreshClient, S: TokenStore> Drop for Visit<C, S> {
    /// No longer busy, however the visit ends (a client that panics in the renewal, which
    /// runs in the visit's task, included): the next look may visit it again.
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}
