//! Keeps a valid access token available: cached, refreshed before expiry, refreshed once under
//! any concurrency, and never losing or reusing a rotated refresh token.
//!
//! The rules, each for correctness rather than speed (a provider that sees a refresh token
//! twice may revoke the whole token family, RFC 9700 §4.14.2):
//! - one refresh in flight per credential and process; every caller awaits that one;
//! - one refresher across processes and hosts, through the store's lock;
//! - persist before publish: the new set is in the store before any caller sees it;
//! - a dead refresh token first re-reads the store (another process may have rotated it);
//! - after a request that may have reached the provider, a one-time token is not sent again.

use crate::error::{ErrorKind, RefreshError};
use crate::refresh::{BoxFuture, RefreshClient};
use crate::secret::AccessToken;
use crate::store::{Saved, StoreError, Stored, TokenStore};
use crate::token::TokenSet;
use arc_swap::ArcSwapOption;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
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
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            skew: Duration::from_secs(60),
            unknown_expiry: Duration::from_secs(300),
            max_attempts: 4,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            lock_ttl: Duration::from_secs(30),
            lock_wait: Duration::from_secs(60),
            lock_poll: Duration::from_millis(25),
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
    /// The refresh task ended without an answer (it panicked, or the runtime shut down).
    Interrupted,
}

impl ManagerError {
    /// True when a later call may succeed without anyone's help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Refresh(e) => e.is_retryable(),
            Self::Store(_) | Self::LockTimeout | Self::Interrupted => true,
            Self::ReAuthenticate { .. } => false,
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

type Flight = watch::Receiver<Option<Result<Arc<Cached>, ManagerError>>>;

struct Inner<C, S> {
    client: C,
    store: S,
    key: String,
    config: ManagerConfig,
    reauthenticate: Mutex<Option<ReAuthenticate>>,
    cache: ArcSwapOption<Cached>,
    flight: Mutex<Option<Flight>>,
    /// The stored version whose refresh token a request may have spent (0: none). Kept in
    /// memory only: a restarted process will try that token once more.
    maybe_spent: AtomicU64,
}

/// Keeps one credential's access token valid. Cheap to clone; clones share everything.
/// Refreshes run as tasks on the Tokio runtime the manager is called from.
///
/// ```no_run
/// # async fn demo(client: impl tokenkit::RefreshClient + 'static) -> Result<(), Box<dyn std::error::Error>> {
/// use tokenkit::{FileStore, TokenManager};
/// let store = FileStore::new("/var/lib/my-service/tokens")?;
/// let manager = TokenManager::new(client, store, "production");
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
        let Stored { version, tokens } = stored;
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
    /// A manager for the credential `key` of `store`, refreshed through `client`.
    pub fn new(client: C, store: S, key: impl Into<String>) -> Self {
        Self::with_config(client, store, key, ManagerConfig::default())
    }

    /// Like [`TokenManager::new`], tuned.
    pub fn with_config(client: C, store: S, key: impl Into<String>, config: ManagerConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                store,
                key: key.into(),
                config,
                reauthenticate: Mutex::new(None),
                cache: ArcSwapOption::empty(),
                flight: Mutex::new(None),
                maybe_spent: AtomicU64::new(0),
            }),
        }
    }

    /// Calls `hook` for a new token set when the refresh token is dead (instead of failing with
    /// [`ManagerError::ReAuthenticate`]). Clones of the manager share the hook.
    #[must_use]
    pub fn with_reauthenticate(self, hook: ReAuthenticate) -> Self {
        *self
            .inner
            .reauthenticate
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(hook);
        self
    }

    /// Stores a first token set (after a login) unless one is stored already.
    /// Returns whether it was stored.
    pub async fn seed(&self, tokens: TokenSet) -> Result<bool, ManagerError> {
        let inner = &self.inner;
        Ok(matches!(
            inner.store.save(&inner.key, &tokens, None).await?,
            Saved::Written(_)
        ))
    }

    /// A valid access token. The fast path reads the cache without a lock; a stale or missing
    /// token joins (or starts) the one refresh in flight.
    pub async fn access_token(&self) -> Result<AccessToken, ManagerError> {
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
            let mut slot = self.inner.flight.lock().unwrap_or_else(|p| p.into_inner());
            if !force && let Some(value) = fresh(SystemTime::now()) {
                return Ok(value);
            }
            match slot.as_ref() {
                Some(running) => running.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    *slot = Some(rx.clone());
                    // The refresh runs in its own task: a caller that gives up must not
                    // abandon a request that may already have spent the refresh token.
                    let inner = Arc::clone(&self.inner);
                    tokio::spawn(async move {
                        let result = inner.refresh(force).await;
                        if let Ok(cached) = &result {
                            inner.cache.store(Some(Arc::clone(cached)));
                        }
                        *inner.flight.lock().unwrap_or_else(|p| p.into_inner()) = None;
                        let _ = tx.send(Some(result));
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

impl<C: RefreshClient, S: TokenStore> Inner<C, S> {
    async fn refresh(&self, force: bool) -> Result<Arc<Cached>, ManagerError> {
        let span = tracing::info_span!(
            "tokenkit.refresh",
            provider = self.client.provider(),
            credential = %self.key,
            outcome = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self.refresh_locked(force).instrument(span.clone()).await;
        let outcome = outcome_name(&result);
        let duration_ms = started.elapsed().as_millis() as u64;
        span.record("outcome", outcome);
        span.record("duration_ms", duration_ms);
        span.in_scope(|| match &result {
            Ok(_) => tracing::info!(outcome, duration_ms, "token refresh"),
            Err(e) => tracing::warn!(outcome, duration_ms, error = %e, "token refresh failed"),
        });
        result
    }

    /// Takes the store's lock, or finds the set another process refreshed while waiting.
    async fn refresh_locked(&self, force: bool) -> Result<Arc<Cached>, ManagerError> {
        let seen = self.cache.load_full().map(|c| c.version);
        let deadline = Instant::now() + self.config.lock_wait;
        loop {
            if let Some(stored) = self.store.load(&self.key).await? {
                let newer = Some(stored.version) != seen;
                let cached = Cached::new(stored, &self.config, None);
                if cached.is_fresh(SystemTime::now()) && (!force || newer) {
                    return Ok(Arc::new(cached));
                }
            }
            if let Some(lock) = self.store.try_lock(&self.key, self.config.lock_ttl).await? {
                let result = self.refresh_holding_lock(force, seen).await;
                lock.release().await;
                return result;
            }
            if Instant::now() >= deadline {
                return Err(ManagerError::LockTimeout);
            }
            tokio::time::sleep(self.config.lock_poll).await;
        }
    }

    async fn refresh_holding_lock(
        &self,
        force: bool,
        seen: Option<u64>,
    ) -> Result<Arc<Cached>, ManagerError> {
        let mut current = self.store.load(&self.key).await?;
        let mut attempt = 0;
        let mut rereads = 0;
        loop {
            let Some(stored) = current.clone() else {
                return self.reauthenticate(None, None).await;
            };
            let newer = Some(stored.version) != seen;
            let cached = Cached::new(stored.clone(), &self.config, None);
            if cached.is_fresh(SystemTime::now()) && (!force || newer) {
                return Ok(Arc::new(cached));
            }
            let Some(refresh_token) = stored.tokens.refresh_token.clone() else {
                return self.reauthenticate(Some(stored.version), None).await;
            };
            if self.maybe_spent.load(Ordering::Acquire) == stored.version {
                // An earlier request with this token may have reached the provider, and the
                // spec says resending it is not safe.
                return self.reauthenticate(Some(stored.version), None).await;
            }
            let error = match self.client.refresh(&refresh_token).await {
                Ok(mut tokens) => {
                    // A response without a new refresh token leaves the old one valid.
                    tokens.refresh_token.get_or_insert(refresh_token);
                    return self.persist(tokens, stored.version).await;
                }
                Err(error) => error,
            };
            let kind = error.kind();
            let reached = kind == ErrorKind::BadResponse
                || matches!(
                    error,
                    RefreshError::Transport {
                        maybe_sent: true,
                        ..
                    }
                );
            let dead = kind == ErrorKind::ReAuthenticate;
            if dead || (reached && !self.client.rotation().resend_is_safe()) {
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
                    return self.reauthenticate(Some(stored.version), Some(error)).await;
                }
                self.maybe_spent.store(stored.version, Ordering::Release);
                return Err(ManagerError::Refresh(error));
            }
            if !error.is_retryable() || attempt + 1 >= self.config.max_attempts {
                return Err(ManagerError::Refresh(error));
            }
            let delay = match &error {
                RefreshError::Transient {
                    retry_after: Some(after),
                    ..
                } => (*after).min(self.config.max_backoff),
                _ => backoff(&self.config, attempt),
            };
            attempt += 1;
            tracing::debug!(attempt, ?delay, error = %error, "retrying the refresh");
            tokio::time::sleep(delay).await;
        }
    }

    /// Persists a new set, then returns it for publishing.
    async fn persist(
        &self,
        mut tokens: TokenSet,
        expected: u64,
    ) -> Result<Arc<Cached>, ManagerError> {
        let received = SystemTime::now();
        tokens
            .expires_at
            .get_or_insert(received + self.config.unknown_expiry);
        match self.store.save(&self.key, &tokens, Some(expected)).await? {
            Saved::Written(version) => Ok(Arc::new(Cached::new(
                Stored { version, tokens },
                &self.config,
                Some(received),
            ))),
            Saved::Conflict(_) => {
                // Someone wrote despite the lock (it expired under us). Theirs is newer than
                // what this refresh started from; serve theirs, never overwrite it.
                tracing::warn!(
                    "the stored token set changed during a refresh; keeping the newer one"
                );
                let latest = self.store.load(&self.key).await?;
                latest
                    .map(|s| Arc::new(Cached::new(s, &self.config, None)))
                    .ok_or(ManagerError::Store(StoreError::new(
                        "the token set vanished during a refresh",
                    )))
            }
        }
    }

    async fn reauthenticate(
        &self,
        expected: Option<u64>,
        cause: Option<RefreshError>,
    ) -> Result<Arc<Cached>, ManagerError> {
        let hook = self
            .reauthenticate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(hook) = hook else {
            return Err(ManagerError::ReAuthenticate { cause });
        };
        let tokens = hook().await.map_err(|e| {
            if e.kind() == ErrorKind::ReAuthenticate {
                ManagerError::ReAuthenticate { cause: Some(e) }
            } else {
                ManagerError::Refresh(e)
            }
        })?;
        match expected {
            Some(version) => self.persist(tokens, version).await,
            None => {
                let received = SystemTime::now();
                let mut tokens = tokens;
                tokens
                    .expires_at
                    .get_or_insert(received + self.config.unknown_expiry);
                match self.store.save(&self.key, &tokens, None).await? {
                    Saved::Written(version) => Ok(Arc::new(Cached::new(
                        Stored { version, tokens },
                        &self.config,
                        Some(received),
                    ))),
                    Saved::Conflict(_) => self
                        .store
                        .load(&self.key)
                        .await?
                        .map(|s| Arc::new(Cached::new(s, &self.config, None)))
                        .ok_or(ManagerError::ReAuthenticate { cause: None }),
                }
            }
        }
    }
}
