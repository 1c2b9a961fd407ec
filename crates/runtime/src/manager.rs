//! Keeps a valid access token available: cached, refreshed before expiry, refreshed once under
//! any concurrency, and never losing or reusing a rotated refresh token.
//!
//! The rules, each for correctness rather than speed (a provider that sees a refresh token
//! twice may revoke the whole token family, RFC 9700 §4.14.2):
//! - one refresh in flight per credential and process; every caller awaits that one;
//! - one refresher across processes and hosts, through the store's lock;
//! - persist before publish: the new set is in the store before any caller sees it;
//! - a dead refresh token first re-reads the store (another process may have rotated it);
//! - with no usable refresh token (none, dead, expired, maybe spent) a new set comes from the
//!   application's hook, else from the client-credentials grant where the spec offers one,
//!   under the same lock and persist-before-publish rules as a refresh;
//! - before a one-time or rotating token is sent, the store records that a request with it is
//!   in flight; until an answer proves it unspent, no process sends it again (they re-read the
//!   store, then re-authenticate);
//! - only a holder that can prove it holds the lock sends, and its writes are fenced by it;
//! - issued tokens are never dropped: when the write fails they are served from memory and the
//!   write is retried in the background, holding the lock;
//! - a panic or a runtime shutdown ends the flight with [`ManagerError::Interrupted`], and
//!   the next call starts a new one.

use crate::error::{ErrorKind, RefreshError};
use crate::grant::{CodeExchange, GrantType};
use crate::refresh::{BoxFuture, RefreshClient};
use crate::secret::AccessToken;
use crate::store::{Saved, StoreError, StoreLock, Stored, TokenStore};
use crate::token::{Origin, TokenSet};
use arc_swap::ArcSwapOption;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;
use tracing::Instrument;

/// Tuning for a [`TokenManager`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerConfig {
    /// Refresh this long before the access token expires.
    pub skew: Duration,
    /// The lifetime assumed for an access token whose provider gave no expiry; it is stored
    /// as the set's expiry, so every process sharing the store agrees on it.
    pub unknown_expiry: Duration,
    /// Attempts at a transient failure before giving up (the first included).
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles, with jitter, up to `max_backoff`.
    pub backoff: Duration,
    /// The longest delay between attempts.
    pub max_backoff: Duration,
    /// How long a store lock outlives a holder that died (where the store cannot tell).
    pub lock_ttl: Duration,
    /// How long to wait for another process's refresh before giving up.
    pub lock_wait: Duration,
    /// How often to look for another process's result while it holds the lock.
    pub lock_poll: Duration,
    /// The shortest time between two refresh requests for the credential from this process:
    /// bounds the rate when a provider answers with lifetimes of zero or in the past.
    pub min_refresh_interval: Duration,
    /// Which credentials the client-credentials grant may replace when their refresh token is
    /// unusable (where the spec offers the grant and no re-authentication hook is set).
    pub client_credentials_fallback: ClientCredentialsFallback,
}

/// Which credentials the token manager may replace by the client-credentials grant. That grant
/// returns the application's own token; a user's connection must never silently become it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientCredentialsFallback {
    /// A credential that grant created, or none stored yet. A set stored before origins were
    /// recorded counts as the grant's when it holds no refresh token (only that grant issues
    /// none), as a user's otherwise.
    #[default]
    OwnCredentials,
    /// Any credential: the application has said its credentials are all its own.
    Always,
    /// None: the hook, or [`ManagerError::ReAuthenticate`].
    Never,
}

/// The longest duration a setting may have: far beyond any sensible value, and small enough
/// that no clock arithmetic on it can overflow.
const MAX_SETTING: Duration = Duration::from_secs(365 * 24 * 3600);

impl ManagerConfig {
    /// Checks the settings against each other and against `attempt_timeout`, the longest one
    /// refresh request can take (the client's HTTP timeout). The lock must outlive any one
    /// attempt: a holder confirms its lock just before sending, so the request ends before the
    /// lock could expire even if no renewal got through.
    pub fn validate(&self, attempt_timeout: Option<Duration>) -> Result<(), ManagerError> {
        let bad = |why: String| Err(ManagerError::Config(why));
        let settings = [
            ("skew", self.skew),
            ("unknown_expiry", self.unknown_expiry),
            ("backoff", self.backoff),
            ("max_backoff", self.max_backoff),
            ("lock_ttl", self.lock_ttl),
            ("lock_wait", self.lock_wait),
            ("lock_poll", self.lock_poll),
            ("min_refresh_interval", self.min_refresh_interval),
        ];
        for (name, value) in settings {
            if value > MAX_SETTING {
                return bad(format!("{name} is {value:?}; at most a year is allowed"));
            }
        }
        if self.max_attempts == 0 {
            return bad("max_attempts must be at least 1".into());
        }
        if self.lock_poll.is_zero() || self.lock_ttl < Duration::from_millis(30) {
            return bad("lock_poll must be positive and lock_ttl at least 30 ms".into());
        }
        if self.backoff > self.max_backoff {
            return bad("backoff must not exceed max_backoff".into());
        }
        let attempt = self.attempt_limit();
        if let Some(timeout) = attempt_timeout
            && timeout > attempt
        {
            return bad(format!(
                "one refresh attempt may take {timeout:?} (the client's HTTP timeout), longer than two thirds of lock_ttl ({:?}): a lock could expire while its holder's request is on the wire; raise lock_ttl or lower the timeout",
                self.lock_ttl
            ));
        }
        Ok(())
    }

    /// How long a refresh marked as sent may still get its answer stored by its sender: a lock
    /// lifetime for the request, another for a new holder, and the longest write backoff.
    fn in_flight_grace(&self) -> Duration {
        self.lock_ttl
            .saturating_mul(2)
            .saturating_add(self.max_backoff)
    }

    /// The longest the manager lets one attempt run: two thirds of the lock's ttl, so an
    /// attempt started right after confirming the lock ends well before it could expire.
    fn attempt_limit(&self) -> Duration {
        self.lock_ttl * 2 / 3
    }
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            skew: Duration::from_secs(60),
            unknown_expiry: Duration::from_secs(300),
            max_attempts: 4,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            lock_ttl: Duration::from_secs(60),
            lock_wait: Duration::from_secs(90),
            lock_poll: Duration::from_millis(25),
            min_refresh_interval: Duration::from_secs(1),
            client_credentials_fallback: ClientCredentialsFallback::OwnCredentials,
        }
    }
}

/// Why no access token could be had. Never contains a token.
#[derive(Clone, PartialEq, Eq)]
pub enum ManagerError {
    /// The refresh token is dead and no re-authentication hook could replace it. The store is
    /// left as it was, for inspection.
    ReAuthenticate {
        /// The provider's answer, when a refresh was tried.
        cause: Option<RefreshError>,
    },
    /// The refresh failed for another reason (after the retries its kind allows).
    Refresh(RefreshError),
    /// The store failed.
    Store(StoreError),
    /// Another process held the refresh lock for longer than `lock_wait`.
    LockTimeout,
    /// The refresh task ended without an answer: it panicked, the runtime shut down, or the
    /// call was made outside a Tokio runtime. The next call starts a new refresh.
    Interrupted,
    /// The refresher lost the store's lock before it could send (or store) a refresh; nothing
    /// was sent with a token it could not prove it may send.
    LockLost,
    /// The configuration was refused; see [`ManagerConfig::validate`].
    Config(String),
    /// A refresh with the stored refresh token was sent (by this process or another) and its
    /// answer is not stored yet; the token is not sent again. Try again shortly: the sender
    /// stores the new set, or after a grace the credential needs re-authenticating.
    InFlight,
}

impl ManagerError {
    /// True when a later call may succeed without anyone's help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Refresh(e) => e.is_retryable(),
            Self::Store(_)
            | Self::LockTimeout
            | Self::Interrupted
            | Self::LockLost
            | Self::InFlight => true,
            Self::ReAuthenticate { .. } | Self::Config(_) => false,
        }
    }
}

impl fmt::Display for ManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReAuthenticate { cause: Some(e) } => write!(f, "re-authentication needed: {e}"),
            Self::ReAuthenticate { cause: None } => f.write_str(
                "re-authentication needed: no usable refresh token is stored (none at all, or one an unanswered request may have spent)",
            ),
            Self::Refresh(e) => write!(f, "refresh failed: {e}"),
            Self::Store(e) => write!(f, "{e}"),
            Self::LockTimeout => f.write_str("another refresher held the lock too long"),
            Self::Interrupted => f.write_str("the refresh was interrupted"),
            Self::LockLost => f.write_str("the refresh lock was lost; nothing was sent"),
            Self::Config(why) => write!(f, "invalid token manager configuration: {why}"),
            Self::InFlight => f.write_str(
                "a refresh with the stored refresh token is in flight and its answer not stored yet",
            ),
        }
    }
}

impl fmt::Debug for ManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManagerError({self})")
    }
}

impl std::error::Error for ManagerError {}

impl From<StoreError> for ManagerError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Obtains a fresh token set when the refresh token is dead (a new login, say).
pub type ReAuthenticate =
    Arc<dyn Fn() -> BoxFuture<'static, Result<TokenSet, RefreshError>> + Send + Sync>;

/// A published token set and when it stops being served without a refresh.
struct Cached {
    tokens: TokenSet,
    version: u64,
    fresh_until: SystemTime,
}

/// What a finished refresh hands its waiters (`None` while it runs).
type Answer = Option<Result<Arc<Cached>, ManagerError>>;
type Flight = watch::Receiver<Answer>;

struct Inner<C, S> {
    client: C,
    store: S,
    key: String,
    config: ManagerConfig,
    reauthenticate: Mutex<Option<ReAuthenticate>>,
    cache: ArcSwapOption<Cached>,
    flight: Mutex<Option<Flight>>,
    /// A refreshed set whose write failed; served from memory while a background task holding
    /// the lock retries the write. This process refreshes from it, never from the store.
    unsaved: Mutex<Option<Unsaved>>,
    /// Whether `unsaved` holds a set: read on the fast path, so that a call served from the
    /// cache still notices a writer that died.
    unsaved_pending: AtomicBool,
    /// The newest version this process has seen: a store holding an older one (or none) went
    /// backwards, and its refresh token may be spent.
    high_water: AtomicU64,
    /// When this process last sent a refresh request (rate bound).
    last_sent: Mutex<Option<Instant>>,
    /// After `Rejected` answers: until when to answer the same error without asking again,
    /// and how many came in a row.
    rejected: Mutex<Option<(Instant, u32, RefreshError)>>,
}

/// Clears the flight slot and answers its waiters however the refresh task ends: normally,
/// by a panic, or dropped with a runtime that shuts down.
struct FlightGuard<C, S> {
    inner: Arc<Inner<C, S>>,
    tx: Option<watch::Sender<Answer>>,
}

impl<C, S> Inner<C, S> {
    /// Serves `cached` from now on, and remembers its version as seen.
    fn publish(&self, cached: Arc<Cached>) {
        self.high_water.fetch_max(cached.version, Ordering::AcqRel);
        self.cache.store(Some(cached));
    }
}

impl<C, S> FlightGuard<C, S> {
    fn finish(mut self, result: Result<Arc<Cached>, ManagerError>) {
        if let Ok(cached) = &result {
            self.inner.publish(Arc::clone(cached));
        }
        self.end(result);
    }

    fn end(&mut self, result: Result<Arc<Cached>, ManagerError>) {
        if let Some(tx) = self.tx.take() {
            *locked(&self.inner.flight) = None;
            let _ = tx.send(Some(result));
        }
    }
}

impl<C, S> Drop for FlightGuard<C, S> {
    fn drop(&mut self) {
        self.end(Err(ManagerError::Interrupted));
    }
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every value behind these mutexes is replaced whole, so a panic leaves none half-written.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps one credential's access token valid. Cheap to clone; clones share everything.
/// Refreshes run as tasks on the Tokio runtime the manager is called from.
///
/// ```no_run
/// # async fn demo(client: impl tokenkit::RefreshClient + 'static) -> Result<(), Box<dyn std::error::Error>> {
/// use tokenkit::{FileStore, TokenManager};
/// let store = FileStore::new("/var/lib/my-service/tokens")?;
/// let manager = TokenManager::new(client, store, "production")?;
/// let token = manager.access_token().await?; // from any task, as often as needed
/// # Ok(())
/// # }
/// ```
pub struct TokenManager<C, S> {
    inner: Arc<Inner<C, S>>,
}

impl<C, S> Clone for TokenManager<C, S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C, S> fmt::Debug for TokenManager<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("key", &self.inner.key)
            .finish_non_exhaustive()
    }
}

impl Cached {
    fn new(stored: Stored, config: &ManagerConfig, received: Option<SystemTime>) -> Self {
        let Stored {
            version, tokens, ..
        } = stored;
        let fresh_until = match (tokens.expires_at, received) {
            (Some(at), Some(received)) => {
                // A lifetime shorter than the skew is served for half of it rather than never.
                let lifetime = at.duration_since(received).unwrap_or_default();
                received + lifetime.saturating_sub(config.skew).max(lifetime / 2)
            }
            (Some(at), None) => at.checked_sub(config.skew).unwrap_or(at),
            (None, Some(received)) => received + config.unknown_expiry.saturating_sub(config.skew),
            // Stored without an expiry: unknown age, so refresh on first use.
            (None, None) => SystemTime::UNIX_EPOCH,
        };
        // Refresh before the refresh token itself dies, not only before the access token.
        let fresh_until = match tokens.refresh_expires_at {
            Some(dies) => fresh_until.min(dies.checked_sub(config.skew).unwrap_or(dies)),
            None => fresh_until,
        };
        Self {
            tokens,
            version,
            fresh_until,
        }
    }

    fn is_fresh(&self, now: SystemTime) -> bool {
        now < self.fresh_until
    }

    fn is_unexpired(&self, now: SystemTime) -> bool {
        self.tokens.expires_at.is_some_and(|at| now < at)
    }
}

impl<C: RefreshClient + 'static, S: TokenStore> TokenManager<C, S> {
    /// A manager for the credential `key` of `store`, refreshed through `client`, with the
    /// default [`ManagerConfig`]. Fails when the client's HTTP timeout could outlive the lock.
    pub fn new(client: C, store: S, key: impl Into<String>) -> Result<Self, ManagerError> {
        Self::with_config(client, store, key, ManagerConfig::default())
    }

    /// Like [`TokenManager::new`], tuned; `config` is checked by [`ManagerConfig::validate`].
    pub fn with_config(
        client: C,
        store: S,
        key: impl Into<String>,
        config: ManagerConfig,
    ) -> Result<Self, ManagerError> {
        config.validate(client.attempt_timeout())?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                store,
                key: key.into(),
                config,
                reauthenticate: Mutex::new(None),
                cache: ArcSwapOption::empty(),
                flight: Mutex::new(None),
                unsaved: Mutex::new(None),
                unsaved_pending: AtomicBool::new(false),
                high_water: AtomicU64::new(0),
                last_sent: Mutex::new(None),
                rejected: Mutex::new(None),
            }),
        })
    }

    /// Calls `hook` for a new token set when no refresh token is usable (instead of the
    /// client-credentials grant where the provider offers one, or failing with
    /// [`ManagerError::ReAuthenticate`]). Clones of the manager share the hook.
    #[must_use]
    pub fn with_reauthenticate(self, hook: ReAuthenticate) -> Self {
        *locked(&self.inner.reauthenticate) = Some(hook);
        self
    }

    /// Stores a first token set (after a login) unless one is stored already, and returns
    /// whether it was stored: `false` means the stored set was kept. To put a new set in place
    /// of a stored one (after [`ManagerError::ReAuthenticate`], a user's new consent), use
    /// [`TokenManager::replace`].
    pub async fn seed(&self, mut tokens: TokenSet) -> Result<bool, ManagerError> {
        let inner = &self.inner;
        tokens.origin.get_or_insert(Origin::Application);
        Ok(matches!(
            inner.store.save(&inner.key, &tokens, None).await?,
            Saved::Written(_)
        ))
    }

    /// Stores `tokens` in place of whatever is stored (a new login after
    /// [`ManagerError::ReAuthenticate`], a user who consented again) and serves them from now
    /// on. Runs under the store's lock, after any refresh in flight; the set is stored before
    /// it is served, and a failed write keeps it in memory and retries, as for a refresh.
    pub async fn replace(&self, tokens: TokenSet) -> Result<(), ManagerError> {
        Arc::clone(&self.inner).replace(tokens).await?;
        Ok(())
    }

    /// Deletes the credential's set from the store (under its lock, after any refresh in
    /// flight) and forgets it here: the next call finds nothing stored and takes the
    /// re-authentication path.
    pub async fn remove(&self) -> Result<(), ManagerError> {
        Arc::clone(&self.inner).remove().await
    }

    /// Exchanges an authorization code (from the redirect after a user's consent) and stores
    /// the set it brings, replacing any stored one: the one call that seeds a credential from
    /// the authorization-code flow. It runs under the store's lock, and the set is stored
    /// before it is served. Fails with [`ManagerError::Config`] when the provider's spec offers
    /// no authorization-code grant.
    pub async fn seed_from_code(&self, exchange: &CodeExchange) -> Result<TokenSet, ManagerError> {
        let cached = Arc::clone(&self.inner).seed_from_code(exchange).await?;
        Ok(cached.tokens.clone())
    }

    /// A valid access token. The fast path reads the cache without a lock; a stale or missing
    /// token joins (or starts) the one refresh in flight.
    pub async fn access_token(&self) -> Result<AccessToken, ManagerError> {
        if self.inner.unsaved_pending.load(Ordering::Acquire) {
            // A set whose write failed: make sure a live task is still writing it.
            self.inner.unsaved_set();
        }
        if let Some(token) = self.cached_access_token() {
            return Ok(token);
        }
        // Boxed so that the fast path's future stays a few words, not the whole refresh.
        Box::pin(self.current(false, |c| c.tokens.access_token.clone())).await
    }

    /// The cached access token if it is fresh, without waiting or refreshing: for hot paths
    /// that can fall back to [`TokenManager::access_token`].
    pub fn cached_access_token(&self) -> Option<AccessToken> {
        let cache = self.inner.cache.load();
        let cached = cache.as_ref()?;
        cached
            .is_fresh(crate::clock::coarse_now())
            .then(|| cached.tokens.access_token.clone())
    }

    /// The whole current token set (refreshed first if stale).
    pub async fn token_set(&self) -> Result<TokenSet, ManagerError> {
        Box::pin(self.current(false, |c| c.tokens.clone())).await
    }

    /// Refreshes now, whatever the expiry says: for when an API rejected the access token.
    /// Concurrent callers still share one refresh.
    pub async fn force_refresh(&self) -> Result<AccessToken, ManagerError> {
        Box::pin(self.current(true, |c| c.tokens.access_token.clone())).await
    }

    /// Joins (or starts) the refresh in flight and reads its result through `read`.
    async fn current<T>(
        &self,
        force: bool,
        read: impl Fn(&Cached) -> T,
    ) -> Result<T, ManagerError> {
        let fresh = |now| {
            let cache = self.inner.cache.load();
            cache.as_ref().filter(|c| c.is_fresh(now)).map(|c| read(c))
        };
        let mut flight = {
            let mut slot = locked(&self.inner.flight);
            if !force && let Some(value) = fresh(SystemTime::now()) {
                return Ok(value);
            }
            match slot.as_ref() {
                Some(running) => running.clone(),
                None => {
                    // The refresh runs in its own task: a caller that gives up must not
                    // abandon a request that may already have spent the refresh token.
                    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                        return Err(ManagerError::Interrupted);
                    };
                    let (tx, rx) = watch::channel(None);
                    *slot = Some(rx.clone());
                    let guard = FlightGuard {
                        inner: Arc::clone(&self.inner),
                        tx: Some(tx),
                    };
                    runtime.spawn(async move {
                        let result = Arc::clone(&guard.inner).refresh(force).await;
                        guard.finish(result);
                    });
                    rx
                }
            }
        };
        loop {
            if let Some(result) = flight.borrow_and_update().as_ref() {
                return match result {
                    Ok(cached) => Ok(read(cached)),
                    // A failed early refresh still leaves a token that has not expired.
                    Err(e) => {
                        let cache = self.inner.cache.load();
                        match cache.as_ref() {
                            Some(c) if !force && c.is_unexpired(SystemTime::now()) => Ok(read(c)),
                            _ => Err(e.clone()),
                        }
                    }
                };
            }
            if flight.changed().await.is_err() {
                return Err(ManagerError::Interrupted);
            }
        }
    }
}

/// What a finished refresh was, for the tracing span.
fn outcome_name(result: &Result<Arc<Cached>, ManagerError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(ManagerError::ReAuthenticate { .. }) => "reauthenticate",
        Err(ManagerError::Refresh(_)) => "refresh_error",
        Err(ManagerError::Store(_)) => "store_error",
        Err(ManagerError::LockTimeout) => "lock_timeout",
        Err(ManagerError::Interrupted) => "interrupted",
        Err(ManagerError::LockLost) => "lock_lost",
        Err(ManagerError::Config(_)) => "config",
        Err(ManagerError::InFlight) => "in_flight",
    }
}

/// `base` doubled per attempt, capped, with up to 50 % jitter drawn from the clock.
fn backoff(config: &ManagerConfig, attempt: u32) -> Duration {
    let exponential = config
        .backoff
        .saturating_mul(1 << attempt.min(16))
        .min(config.max_backoff);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let jitter = exponential.mul_f64(f64::from(nanos % 1000) / 2000.0);
    exponential.saturating_sub(exponential / 4) + jitter
}

/// A set the store did not take, and the task retrying its write.
#[derive(Clone)]
struct Unsaved {
    cached: Arc<Cached>,
    tokens: TokenSet,
    /// The version the write expects to replace.
    expected: Option<u64>,
    /// The retrying task; finished without clearing the slot means it died (a panic, or its
    /// runtime shut down), and the next call takes the write over.
    writer: tokio::task::AbortHandle,
}

/// Whether a stored refresh token may be sent.
enum Usable {
    /// Send it.
    Yes(crate::secret::RefreshToken),
    /// Its request may still get an answer: retry shortly.
    InFlight,
    /// It is gone or may be spent: re-authenticate.
    No,
}

/// How one refresh under the lock ended.
enum Held {
    /// Done; release the lock.
    Done(Result<Arc<Cached>, ManagerError>),
    /// New tokens the store did not take: serve them, and keep the lock for the write retry
    /// (the version the write expects).
    Unsaved(Arc<Cached>, TokenSet, Option<u64>),
}

impl<C: RefreshClient + 'static, S: TokenStore> Inner<C, S> {
    async fn refresh(self: Arc<Self>, force: bool) -> Result<Arc<Cached>, ManagerError> {
        let span = tracing::info_span!(
            "tokenkit.refresh",
            provider = self.client.provider(),
            credential = %self.key,
            outcome = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = Arc::clone(&self)
            .refresh_locked(force)
            .instrument(span.clone())
            .await;
        let outcome = outcome_name(&result);
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        span.record("outcome", outcome);
        span.record("duration_ms", duration_ms);
        span.in_scope(|| match &result {
            Ok(_) => tracing::info!(outcome, duration_ms, "token refresh"),
            Err(e) => tracing::warn!(outcome, duration_ms, error = %e, "token refresh failed"),
        });
        result
    }

    /// Takes the store's lock, or finds the set another process refreshed while waiting.
    async fn refresh_locked(self: Arc<Self>, force: bool) -> Result<Arc<Cached>, ManagerError> {
        // A set whose write is still being retried: it is newer than anything stored.
        if let Some(unsaved) = self.unsaved_set() {
            return if unsaved.is_unexpired(SystemTime::now()) {
                Ok(unsaved)
            } else {
                Err(ManagerError::Store(StoreError::new(
                    "the last refreshed set is not stored yet; its write is being retried",
                )))
            };
        }
        if let Some((until, _, error)) = locked(&self.rejected).clone()
            && Instant::now() < until
        {
            return Err(ManagerError::Refresh(error));
        }
        let seen = self.cache.load_full().map(|c| c.version);
        let deadline = after(Instant::now(), self.config.lock_wait);
        loop {
            if let Some(stored) = self.store.load(&self.key).await?
                && !self.regressed(Some(&stored))
            {
                let newer = Some(stored.version) != seen;
                let cached = Cached::new(stored, &self.config, None);
                if cached.is_fresh(SystemTime::now()) && (!force || newer) {
                    return Ok(Arc::new(cached));
                }
            }
            if let Some(lock) = self.store.try_lock(&self.key, self.config.lock_ttl).await? {
                let held = self.refresh_holding_lock(force, seen, &lock).await;
                return self.settle(lock, held).await;
            }
            if Instant::now() >= deadline {
                return Err(ManagerError::LockTimeout);
            }
            tokio::time::sleep(self.config.lock_poll).await;
        }
    }

    /// Retries the write of a refreshed set with backoff, as a lock holder, until it lands or
    /// the store holds something newer. A lease that expired meanwhile (the store was away
    /// longer than its ttl), or no lock at all (the write taken over from a writer that died),
    /// is taken before writing. Meanwhile the set is served from memory, and its superseded
    /// refresh token stays marked as sent in the store, so nobody sends it again.
    async fn retry_write(
        self: Arc<Self>,
        mut lock: Option<StoreLock>,
        tokens: TokenSet,
        expected: Option<u64>,
    ) {
        let mut attempt = 0;
        loop {
            tokio::time::sleep(backoff(&self.config, attempt)).await;
            attempt = attempt.saturating_add(1);
            let held = match &lock {
                Some(held) => held.confirm().await,
                None => false,
            };
            if !held {
                match self.store.try_lock(&self.key, self.config.lock_ttl).await {
                    Ok(Some(again)) => {
                        if let Some(old) = lock.replace(again) {
                            old.release().await;
                        }
                    }
                    // Another holder, or the store still away: the version decides later.
                    Ok(None) | Err(_) => continue,
                }
            }
            let Some(held) = &lock else { continue };
            match self.write(&tokens, expected, held).await {
                Ok(Saved::Written(version)) => {
                    if let Some(unsaved) = self.take_unsaved() {
                        self.publish(Arc::new(Cached {
                            tokens: unsaved.cached.tokens.clone(),
                            version,
                            fresh_until: unsaved.cached.fresh_until,
                        }));
                    }
                    tracing::info!(credential = %self.key, attempt, "stored the refreshed set after a failed write");
                    break;
                }
                Ok(Saved::Conflict(_)) => {
                    tracing::error!(credential = %self.key, "the store holds a newer set than the one whose write failed; keeping the stored one");
                    self.take_unsaved();
                    break;
                }
                Ok(Saved::LockLost) => {}
                Err(e) => {
                    tracing::warn!(credential = %self.key, attempt, error = %e, "retrying the write of a refreshed set")
                }
            }
        }
        if let Some(lock) = lock {
            lock.release().await;
        }
    }

    /// Writes a set this process obtained (refreshed, granted, replaced) as the lock holder: a
    /// compare-and-set on `expected`; where the store went backwards (it holds nothing, or an
    /// older version than `expected` or than this process has seen: restarted empty, restored
    /// from an older snapshot, flushed), the set is put back as the next version after the
    /// newest seen. `Conflict` only when the store holds something newer.
    async fn write(
        &self,
        tokens: &TokenSet,
        expected: Option<u64>,
        lock: &StoreLock,
    ) -> Result<Saved, StoreError> {
        let seen = self.high_water.load(Ordering::Acquire);
        let saved = if seen > expected.unwrap_or(0) {
            Saved::Conflict(expected)
        } else {
            self.store
                .save_fenced(&self.key, tokens, expected, lock)
                .await?
        };
        let newest = expected.unwrap_or(0).max(seen);
        let behind = match saved {
            Saved::Conflict(None) => newest > 0,
            Saved::Conflict(Some(current)) => current < newest,
            _ => false,
        };
        if !behind {
            return Ok(saved);
        }
        tracing::error!(
            credential = %self.key,
            "the store went backwards (it holds an older token set than this process has seen, or none): writing the new set back"
        );
        let set = Stored {
            version: newest + 1,
            tokens: tokens.clone(),
            sending: None,
        };
        self.store.restore(&self.key, &set, lock).await
    }

    /// After the store went backwards (`stored` is older than the newest set this process has
    /// seen): the stored refresh token is spent, so it is never sent. The newest
    /// set this process knows is put back with a sending mark, since a holder whose lock the
    /// store forgot may have its token on the wire: that holder's answer lands on it (a
    /// compare-and-set on its version), and within the in-flight grace nobody sends it; after
    /// the grace, the re-authentication path. Returns what the store holds now.
    async fn put_back_newest(
        &self,
        stored: Option<Stored>,
        lock: &StoreLock,
    ) -> Result<Option<Stored>, ManagerError> {
        tracing::error!(
            credential = %self.key,
            stored = ?stored.as_ref().map(|s| s.version),
            seen = self.high_water.load(Ordering::Acquire),
            "the store holds an older token set than this process has seen: its refresh token is spent; putting back the newest set known here"
        );
        let Some(newest) = self.cache.load_full() else {
            return Ok(stored);
        };
        let set = Stored {
            version: newest.version,
            tokens: newest.tokens.clone(),
            sending: Some(SystemTime::now()),
        };
        if !lock.confirm().await {
            return Err(ManagerError::LockLost);
        }
        match self.store.restore(&self.key, &set, lock).await? {
            Saved::LockLost => Err(ManagerError::LockLost),
            _ => Ok(self.store.load(&self.key).await?),
        }
    }

    /// Whether `stored` is older than a set this process has seen: the store went backwards
    /// (restored from an older snapshot), and its refresh token is spent. (A store that holds
    /// nothing may have been emptied or the credential removed on purpose: that is the
    /// re-authentication path, never a set put back.)
    fn regressed(&self, stored: Option<&Stored>) -> bool {
        let seen = self.high_water.load(Ordering::Acquire);
        stored.is_some_and(|s| s.version < seen)
    }

    /// Empties the unsaved slot (its set was written, or something newer was).
    fn take_unsaved(&self) -> Option<Unsaved> {
        let mut slot = locked(&self.unsaved);
        self.unsaved_pending.store(false, Ordering::Release);
        slot.take()
    }

    /// The set whose write is being retried, if any. When its writer died (a panic, or its
    /// runtime shut down) without storing it, a new writer takes over on this runtime.
    fn unsaved_set(self: &Arc<Self>) -> Option<Arc<Cached>> {
        let mut slot = locked(&self.unsaved);
        let unsaved = slot.as_mut()?;
        if unsaved.writer.is_finished()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            tracing::warn!(credential = %self.key, "the writer of an unsaved set died; taking the write over");
            let writer = Arc::clone(self);
            let (tokens, expected) = (unsaved.tokens.clone(), unsaved.expected);
            unsaved.writer = runtime
                .spawn(async move { writer.retry_write(None, tokens, expected).await })
                .abort_handle();
        }
        Some(Arc::clone(&unsaved.cached))
    }

    async fn refresh_holding_lock(&self, force: bool, seen: Option<u64>, lock: &StoreLock) -> Held {
        self.try_refresh_holding_lock(force, seen, lock)
            .await
            .unwrap_or_else(|e| Held::Done(Err(e)))
    }

    /// The refresh under the lock; an error is the flight's answer.
    async fn try_refresh_holding_lock(
        &self,
        force: bool,
        seen: Option<u64>,
        lock: &StoreLock,
    ) -> Result<Held, ManagerError> {
        let mut current = self.store.load(&self.key).await?;
        let mut attempt = 0;
        let mut rereads = 0;
        let resend_safe = self.client.rotation().resend_is_safe();
        loop {
            if self.regressed(current.as_ref()) {
                if rereads < 3 {
                    rereads += 1;
                    current = self.put_back_newest(current, lock).await?;
                    continue;
                }
                // Nothing newer could be put back: never send the stale token.
                return Ok(self.reauthenticate(current.as_ref(), None, lock).await);
            }
            let Some(stored) = current.clone() else {
                return Ok(self.reauthenticate(None, None, lock).await);
            };
            let newer = Some(stored.version) != seen;
            let cached = Cached::new(stored.clone(), &self.config, None);
            if cached.is_fresh(SystemTime::now()) && (!force || newer) {
                return Ok(Held::Done(Ok(Arc::new(cached))));
            }
            let refresh_token = match self.usable_token(&stored, resend_safe) {
                Usable::Yes(token) => token,
                Usable::InFlight => return Err(ManagerError::InFlight),
                Usable::No => {
                    return Ok(self.reauthenticate(Some(&stored), None, lock).await);
                }
            };
            self.pace().await;
            if !lock.confirm().await {
                return Err(ManagerError::LockLost);
            }
            // When the token was first sent: an earlier mark of this version, or this one.
            let first_sent = stored.sending.unwrap_or_else(SystemTime::now);
            if !resend_safe {
                match self
                    .store
                    .mark_sending(&self.key, stored.version, lock)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) if rereads < 3 => {
                        // The set changed under us, or the lock is gone: look again.
                        rereads += 1;
                        current = self.store.load(&self.key).await?;
                        continue;
                    }
                    Ok(false) => return Err(ManagerError::LockLost),
                    Err(e) => {
                        // The mark may still land (a command Redis runs after a stall): undo
                        // it, so that nothing counts as sent that was not.
                        let _ = self
                            .store
                            .clear_sending(&self.key, stored.version, lock)
                            .await;
                        return Err(e.into());
                    }
                }
            }
            *locked(&self.last_sent) = Some(Instant::now());
            let sent = tokio::time::timeout(
                self.config.attempt_limit(),
                self.client.refresh(&refresh_token),
            )
            .await
            .unwrap_or(Err(RefreshError::Transport {
                kind: crate::error::TransportKind::Timeout,
                maybe_sent: true,
            }));
            let error = match sent {
                Ok(mut tokens) => {
                    *locked(&self.rejected) = None;
                    tokens.origin = tokens.origin.or(stored.tokens.origin);
                    // Without a new refresh token the old one stays valid only where the
                    // rotation says so; elsewhere the set is stored without one, and the
                    // next refresh re-authenticates instead of sending a spent token.
                    if resend_safe {
                        tokens.refresh_token.get_or_insert(refresh_token);
                    }
                    return Ok(self.persist(tokens, Some(stored.version), lock).await);
                }
                Err(error) => error,
            };
            let kind = error.kind();
            let dead = kind == ErrorKind::ReAuthenticate;
            // One rule for every answer (RefreshError::proves_unprocessed): only an answer that
            // proves the request unprocessed makes a one-time token sendable again; a 5xx, a
            // timeout or a bad body may come after the provider rotated it.
            let unprocessed = error.proves_unprocessed();
            if !resend_safe && unprocessed {
                // If the mark cannot be cleared, the token counts as spent: safe, not lost.
                if let Err(e) = self
                    .store
                    .clear_sending(&self.key, stored.version, lock)
                    .await
                {
                    tracing::warn!(error = %e, "could not clear the sending mark");
                }
            }
            let may_resend = resend_safe || unprocessed || self.within_reuse_grace(first_sent);
            if dead || !may_resend {
                // Another process may have rotated the token since it was read: only a newer
                // stored set may be tried, never the same token again.
                let latest = self.store.load(&self.key).await?;
                let changed = latest.as_ref().map(|s| s.version) != Some(stored.version);
                if changed && rereads < 3 {
                    rereads += 1;
                    current = latest;
                    continue;
                }
                if dead {
                    return Ok(self.reauthenticate(Some(&stored), Some(error), lock).await);
                }
                return Err(ManagerError::Refresh(error));
            }
            if kind == ErrorKind::Rejected {
                self.note_rejected(&error);
            }
            if !error.is_retryable() || attempt + 1 >= self.config.max_attempts {
                return Err(ManagerError::Refresh(error));
            }
            let delay = match error.retry_after() {
                Some(after) => after.min(self.config.max_backoff),
                None => backoff(&self.config, attempt),
            };
            attempt += 1;
            tracing::debug!(attempt, ?delay, error = %error, "retrying the refresh");
            tokio::time::sleep(delay).await;
            current = self.store.load(&self.key).await?;
        }
    }

    /// Whether the stored refresh token may be sent: not when there is none, when the provider
    /// said it is dead by now, or when a request with it may have reached the provider (marked
    /// by this process or another; a one-time or rotating token is never sent twice). Within
    /// the grace, a marked token's sender may still store the answer (a write being retried);
    /// after it, the sender is taken for dead and the credential needs re-authenticating.
    fn usable_token(&self, stored: &Stored, resend_safe: bool) -> Usable {
        let now = SystemTime::now();
        let Some(token) = stored.tokens.refresh_token.clone() else {
            return Usable::No;
        };
        if stored
            .tokens
            .refresh_expires_at
            .is_some_and(|dies| dies <= now)
        {
            return Usable::No;
        }
        match stored.sending {
            Some(marked) if !resend_safe => {
                let age = now.duration_since(marked).unwrap_or_default();
                if self.within_reuse_grace(marked) {
                    // The provider still accepts it (its documented reuse grace).
                    Usable::Yes(token)
                } else if age < self.config.in_flight_grace() {
                    Usable::InFlight
                } else {
                    Usable::No
                }
            }
            _ => Usable::Yes(token),
        }
    }

    /// Whether a one-time or rotating token first sent at `first_sent` may still be sent again:
    /// within the reuse grace the provider's spec declares (measured from our mark, which is
    /// before the provider could have rotated it), never where it declares none.
    fn within_reuse_grace(&self, first_sent: SystemTime) -> bool {
        self.client.reuse_grace().is_some_and(|grace| {
            SystemTime::now()
                .duration_since(first_sent)
                .is_ok_and(|age| age < grace)
        })
    }

    /// Waits until `min_refresh_interval` has passed since this process last sent a refresh.
    async fn pace(&self) {
        let last = *locked(&self.last_sent);
        if let Some(last) = last {
            let ready = after(last, self.config.min_refresh_interval);
            tokio::time::sleep_until(ready.into()).await;
        }
    }

    /// Answers `Rejected` again, without asking, for a backoff that doubles with each
    /// rejection in a row: a misconfigured client must not hammer the provider.
    fn note_rejected(&self, error: &RefreshError) {
        let mut rejected = locked(&self.rejected);
        let count = rejected.as_ref().map_or(0, |(_, n, _)| n.saturating_add(1));
        let until = after(Instant::now(), backoff(&self.config, count));
        *rejected = Some((until, count, error.clone()));
    }

    /// Persists a new set, then returns it for publishing; a write that fails keeps it.
    async fn persist(&self, mut tokens: TokenSet, expected: Option<u64>, lock: &StoreLock) -> Held {
        let received = SystemTime::now();
        tokens
            .expires_at
            .get_or_insert(received + self.config.unknown_expiry);
        let cached = |version| {
            Arc::new(Cached::new(
                Stored {
                    version,
                    tokens: tokens.clone(),
                    sending: None,
                },
                &self.config,
                Some(received),
            ))
        };
        match self.write(&tokens, expected, lock).await {
            Ok(Saved::Written(version)) => Held::Done(Ok(cached(version))),
            Ok(Saved::Conflict(_)) => {
                // Someone wrote despite the lock. Theirs is newer than what this refresh
                // started from; serve theirs, never overwrite it.
                tracing::warn!(
                    "the stored token set changed during a refresh; keeping the newer one"
                );
                Held::Done(match self.store.load(&self.key).await {
                    Ok(Some(s)) => Ok(Arc::new(Cached::new(s, &self.config, None))),
                    Ok(None) => Err(ManagerError::Store(StoreError::new(
                        "the token set vanished during a refresh",
                    ))),
                    Err(e) => Err(e.into()),
                })
            }
            // The store was away, or the lease expired under a live holder: these tokens are
            // the only valid ones. Serve them, and store them as a lock holder again.
            Ok(Saved::LockLost) | Err(_) => {
                tracing::warn!(
                    "the refreshed set could not be stored; serving it from memory and retrying the write"
                );
                Held::Unsaved(cached(expected.unwrap_or(0)), tokens, expected)
            }
        }
    }

    /// A new set when no refresh token is usable (none stored, dead, expired, or maybe spent):
    /// from the application's hook when it gave one, else by the client-credentials grant when
    /// the provider's spec offers it and the credential's origin allows it
    /// ([`ClientCredentialsFallback`]), stored like a refreshed set. Without either,
    /// [`ManagerError::ReAuthenticate`].
    async fn reauthenticate(
        &self,
        current: Option<&Stored>,
        cause: Option<RefreshError>,
        lock: &StoreLock,
    ) -> Held {
        let hook = locked(&self.reauthenticate).clone();
        let grant = self
            .client
            .grants()
            .and_then(|g| g.client_credentials())
            .filter(|_| self.may_grant_client_credentials(current.map(|s| &s.tokens)));
        let (fetched, origin) = if let Some(hook) = hook {
            (hook().await, Origin::Application)
        } else if let Some(grant) = grant {
            match self.send_grant(grant, lock).await {
                Ok(fetched) => (fetched, Origin::ClientCredentials),
                Err(e) => return Held::Done(Err(e)),
            }
        } else {
            return Held::Done(Err(ManagerError::ReAuthenticate { cause }));
        };
        match fetched {
            Ok(mut tokens) => {
                *locked(&self.rejected) = None;
                tokens.origin.get_or_insert(origin);
                self.persist(tokens, current.map(|s| s.version), lock).await
            }
            Err(e) => Held::Done(Err(self.grant_error(e))),
        }
    }

    /// Whether the client-credentials grant may replace `current` (nothing stored, or a set of
    /// that origin, unless the configuration says otherwise).
    fn may_grant_client_credentials(&self, current: Option<&TokenSet>) -> bool {
        let Some(current) = current else {
            return self.config.client_credentials_fallback != ClientCredentialsFallback::Never;
        };
        match self.config.client_credentials_fallback {
            ClientCredentialsFallback::Always => true,
            ClientCredentialsFallback::Never => false,
            ClientCredentialsFallback::OwnCredentials => match current.origin {
                Some(origin) => origin == Origin::ClientCredentials,
                // Stored before origins were recorded: only client credentials issue no
                // refresh token.
                None => current.refresh_token.is_none(),
            },
        }
    }

    /// Sends a grant as the lock holder: paced like a refresh, only while the lock is
    /// provably held, and bounded like one attempt.
    async fn send_grant(
        &self,
        grant: BoxFuture<'_, Result<TokenSet, RefreshError>>,
        lock: &StoreLock,
    ) -> Result<Result<TokenSet, RefreshError>, ManagerError> {
        self.pace().await;
        if !lock.confirm().await {
            return Err(ManagerError::LockLost);
        }
        *locked(&self.last_sent) = Some(Instant::now());
        Ok(tokio::time::timeout(self.config.attempt_limit(), grant)
            .await
            .unwrap_or(Err(RefreshError::Transport {
                kind: crate::error::TransportKind::Timeout,
                maybe_sent: true,
            })))
    }

    /// A failed grant as the manager reports it; a rejected one also backs off.
    fn grant_error(&self, error: RefreshError) -> ManagerError {
        match error.kind() {
            ErrorKind::ReAuthenticate => ManagerError::ReAuthenticate { cause: Some(error) },
            kind => {
                if kind == ErrorKind::Rejected {
                    self.note_rejected(&error);
                }
                ManagerError::Refresh(error)
            }
        }
    }

    /// Waits for the store's lock, up to `lock_wait`.
    async fn wait_for_lock(&self) -> Result<StoreLock, ManagerError> {
        let deadline = after(Instant::now(), self.config.lock_wait);
        loop {
            if let Some(lock) = self.store.try_lock(&self.key, self.config.lock_ttl).await? {
                return Ok(lock);
            }
            if Instant::now() >= deadline {
                return Err(ManagerError::LockTimeout);
            }
            tokio::time::sleep(self.config.lock_poll).await;
        }
    }

    /// Ends a piece of work done under `lock`: releases it, or, for a set the store did not
    /// take, serves the set from memory and hands the lock to a task that retries the write.
    async fn settle(
        self: &Arc<Self>,
        lock: StoreLock,
        held: Held,
    ) -> Result<Arc<Cached>, ManagerError> {
        match held {
            Held::Done(result) => {
                lock.release().await;
                result
            }
            Held::Unsaved(cached, tokens, expected) => {
                let mut slot = locked(&self.unsaved);
                let writer = Arc::clone(self);
                let retried = tokens.clone();
                let handle =
                    tokio::spawn(
                        async move { writer.retry_write(Some(lock), retried, expected).await },
                    );
                *slot = Some(Unsaved {
                    cached: Arc::clone(&cached),
                    tokens,
                    expected,
                    writer: handle.abort_handle(),
                });
                self.unsaved_pending.store(true, Ordering::Release);
                Ok(cached)
            }
        }
    }

    /// Stores `tokens` over whatever is stored, under the lock.
    async fn replace(self: Arc<Self>, mut tokens: TokenSet) -> Result<Arc<Cached>, ManagerError> {
        tokens.origin.get_or_insert(Origin::Application);
        let lock = self.wait_for_lock().await?;
        let held = match self.store.load(&self.key).await {
            Ok(stored) => {
                *locked(&self.rejected) = None;
                self.persist(tokens, stored.map(|s| s.version), &lock).await
            }
            Err(e) => Held::Done(Err(e.into())),
        };
        let cached = self.settle(lock, held).await?;
        self.publish(Arc::clone(&cached));
        Ok(cached)
    }

    /// Deletes the stored set under the lock and forgets what this process knew of it.
    async fn remove(self: Arc<Self>) -> Result<(), ManagerError> {
        let lock = self.wait_for_lock().await?;
        let deleted = self.store.delete(&self.key, &lock).await;
        lock.release().await;
        if deleted? == Saved::LockLost {
            return Err(ManagerError::LockLost);
        }
        self.cache.store(None);
        self.high_water.store(0, Ordering::Release);
        *locked(&self.rejected) = None;
        Ok(())
    }

    /// Exchanges an authorization code under the lock and stores the set over whatever is
    /// stored.
    async fn seed_from_code(
        self: Arc<Self>,
        exchange: &CodeExchange,
    ) -> Result<Arc<Cached>, ManagerError> {
        let unoffered = || {
            ManagerError::Config(format!(
                "the {} spec offers no authorization-code grant",
                self.client.provider()
            ))
        };
        let offered = self
            .client
            .grants()
            .is_some_and(|g| g.grant_types().contains(&GrantType::AuthorizationCode));
        if !offered {
            return Err(unoffered());
        }
        let lock = self.wait_for_lock().await?;
        let held = async {
            let expected = self.store.load(&self.key).await?.map(|s| s.version);
            let grant = self
                .client
                .grants()
                .and_then(|g| g.exchange_code(exchange))
                .ok_or_else(unoffered)?;
            match self.send_grant(grant, &lock).await? {
                Ok(mut tokens) => {
                    tokens.origin = Some(Origin::AuthorizationCode);
                    Ok(self.persist(tokens, expected, &lock).await)
                }
                Err(e) => Err(self.grant_error(e)),
            }
        }
        .await
        .unwrap_or_else(|e| Held::Done(Err(e)));
        let cached = self.settle(lock, held).await?;
        self.publish(Arc::clone(&cached));
        Ok(cached)
    }
}

/// `start + wait`, or far in the future where that does not fit an `Instant`.
fn after(start: Instant, wait: Duration) -> Instant {
    start
        .checked_add(wait)
        .or_else(|| start.checked_add(MAX_SETTING))
        .unwrap_or(start)
}
