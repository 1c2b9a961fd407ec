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
//!
//! Each file holds one of the manager's jobs: `config` its settings, `error` what it
//! reports, `flight` the one refresh in flight and the cache, `lock` waiting for the store's
//! lock, `attempt` one refresh under it, `persist` writing what it brings, `reauth` getting a
//! set when no refresh token is usable.
//!
//! # A lock that expires during a request (Redis)
//!
//! ```text
//! t0   A takes the lock (ttl T), renews it every T/3
//! t1   A confirms the lock (PEXPIRE: held until t1+T), marks version v as sending, sends rt_v
//!      ... Redis stalls, or A is stopped; renewals fail ...
//! t1+T the lock expires. B takes it, loads v: marked sending -> B does not send rt_v.
//!      Within the grace (2T + max_backoff) B answers InFlight (retryable); after it, B
//!      re-authenticates (hook, else client credentials where the origin allows, else
//!      ManagerError::ReAuthenticate).
//! t2   A's answer arrives. A's fenced save fails (LockLost) or Redis is away: A serves the
//!      new set from memory and retries the write, taking the lock again first; the version
//!      compare-and-set decides against anything newer. Once written, B and everyone load it.
//! ```
//!
//! The window that remains is the request already on the wire at `t1`: it was sent while the
//! lock was provably held, and it cannot outlive the lock, because one attempt is bounded by
//! the HTTP timeout and by two thirds of `T` (a configuration where the timeout exceeds that is
//! refused). If the holder dies after `t1`, or its answer never comes, the issued set is lost
//! with it and the mark makes every other process re-authenticate instead of reusing rt_v: a
//! lost set costs a login, never a revoked family.

mod attempt;
mod config;
mod error;
mod flight;
mod lock;
mod persist;
mod reauth;
mod report;
mod revoke;

pub use config::{ClientCredentialsFallback, ManagerConfig};
pub use error::ManagerError;
pub use revoke::{Revocation, RevokeOutcome};

use crate::client::CodeExchange;
use crate::client::{BoxFuture, RefreshClient};
use crate::error::RefreshError;
use crate::events::{EventSink, TokenEvent};
use crate::secret::AccessToken;
use crate::store::{Saved, Stored, TokenStore};
use crate::token::{Origin, TokenSet};
use arc_swap::ArcSwapOption;
use flight::Flight;
use persist::Unsaved;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// Obtains a fresh token set when the refresh token is dead (a new login, say).
pub type ReAuthenticate =
    Arc<dyn Fn() -> BoxFuture<'static, Result<TokenSet, RefreshError>> + Send + Sync>;
/// A published token set and when it stops being served without a refresh.
struct Cached {
    tokens: TokenSet,
    version: u64,
    fresh_until: SystemTime,
    /// Got by this process (refreshed, granted, given), not read from the store.
    obtained: bool,
}

struct Inner<C, S> {
    client: C,
    store: S,
    key: String,
    /// The client's issuer, recorded with every set stored and checked on every set loaded
    /// (a pool's managers share one: working it out parses the base URL).
    issuer: Arc<str>,
    /// A pool's connection (a customer's credential): nothing stored is `NotConnected`, and
    /// the client-credentials grant fills it only where the pool says so.
    connection: Option<Connection>,
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
    /// Where events go: set by a pool for its connections, or made on the first subscription.
    events: std::sync::OnceLock<EventSink>,
    /// Failed refreshes in a row, for events.
    failures: AtomicU32,
    /// The last refresh forced by a rejected token: when, the token it replaced and the one it
    /// brought. Held while such a refresh runs, so every caller rejected with the same token
    /// waits for that one refresh.
    rejected_refresh: tokio::sync::Mutex<Option<(Instant, AccessToken, AccessToken)>>,
}

/// Runs `work` as a task of its own and waits for it: a caller that gives up (a dropped
/// future, a closed browser) never abandons a code exchange whose answer is the only copy of
/// a set, nor a removal half done (`replace`, `remove` and `seed_from_code` run so, like the
/// refresh).
async fn spawned<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, ManagerError>> + Send + 'static,
) -> Result<T, ManagerError> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Err(ManagerError::Interrupted);
    };
    runtime
        .spawn(work)
        .await
        .unwrap_or(Err(ManagerError::Interrupted))
}

/// How a pool's connection may be filled when nothing usable is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Connection {
    /// Only by what the application stores: the customer's own credential.
    Customer,
    /// Also by the client-credentials grant, as the manager's configuration says (the pool
    /// holds the application's own credentials).
    GrantFills,
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
        Self {
            fresh_until: fresh_until(&tokens, config, received),
            tokens,
            version,
            obtained: received.is_some(),
        }
    }

    fn is_fresh(&self, now: SystemTime) -> bool {
        now < self.fresh_until
    }

    /// Whether `stored`, read from the store, would be served fresh at `now` (without the
    /// copy of its tokens a `Cached` takes).
    fn would_be_fresh(stored: &Stored, config: &ManagerConfig, now: SystemTime) -> bool {
        now < fresh_until(&stored.tokens, config, None)
    }

    fn is_unexpired(&self, now: SystemTime) -> bool {
        self.tokens.expires_at.is_some_and(|at| now < at)
    }
}

/// Until when `tokens` are served without a refresh: the access token's expiry less the skew,
/// and before the refresh token dies less its margin; `received` when they were just got.
fn fresh_until(
    tokens: &TokenSet,
    config: &ManagerConfig,
    received: Option<SystemTime>,
) -> SystemTime {
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
    // Refresh before the refresh token itself dies, not only before the access token; one
    // received with less than twice the margin to live is refreshed halfway.
    match (tokens.refresh_expires_at, received) {
        (Some(dies), Some(received)) => {
            let life = dies.duration_since(received).unwrap_or_default();
            fresh_until.min(
                received
                    + life
                        .saturating_sub(config.refresh_token_margin)
                        .max(life / 2),
            )
        }
        (Some(dies), None) => fresh_until.min(
            dies.checked_sub(config.refresh_token_margin)
                .unwrap_or(dies),
        ),
        (None, _) => fresh_until,
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
        let issuer = Arc::from(client.issuer());
        Ok(Self::assemble(client, store, key.into(), config, issuer))
    }

    /// A pool's manager of one connection: `config` checked by the pool, `issuer` the pool's
    /// client's.
    pub(crate) fn for_pool(
        client: C,
        store: S,
        key: String,
        config: ManagerConfig,
        issuer: Arc<str>,
    ) -> Self {
        Self::assemble(client, store, key, config, issuer)
    }

    fn assemble(client: C, store: S, key: String, config: ManagerConfig, issuer: Arc<str>) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuer,
                connection: None,
                client,
                store,
                key,
                config,
                reauthenticate: Mutex::new(None),
                cache: ArcSwapOption::empty(),
                flight: Mutex::new(None),
                unsaved: Mutex::new(None),
                unsaved_pending: AtomicBool::new(false),
                high_water: AtomicU64::new(0),
                last_sent: Mutex::new(None),
                rejected: Mutex::new(None),
                events: std::sync::OnceLock::new(),
                failures: AtomicU32::new(0),
                rejected_refresh: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Makes this manager a pool's connection (see [`Connection`]); before it is shared.
    pub(crate) fn into_connection(mut self, kind: Connection) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.connection = Some(kind);
        }
        self
    }

    /// Sends this manager's events to `tx` under the connection name `connection` (a pool's
    /// connections share one channel).
    pub(crate) fn with_events(
        self,
        tx: tokio::sync::broadcast::Sender<TokenEvent>,
        connection: Arc<str>,
    ) -> Self {
        let _ = self.inner.events.set(EventSink { tx, connection });
        self
    }

    /// The credential's events from now on (see [`TokenEvent`]): each subscriber gets every
    /// event sent after it subscribed; one that falls more than 64 events behind loses the
    /// oldest (`RecvError::Lagged`). Clones of the manager share the channel.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<TokenEvent> {
        self.inner
            .events
            .get_or_init(|| EventSink {
                tx: EventSink::channel(64),
                connection: Arc::from(self.inner.key.as_str()),
            })
            .tx
            .subscribe()
    }

    /// Makes sure the stored set is fresh by the manager's rules (both margins), refreshing if
    /// not: what a keeper asks. Unlike [`TokenManager::token_set`], a failed refresh is an
    /// error even while the old access token still works.
    pub(crate) async fn renew(&self) -> Result<(), ManagerError> {
        Box::pin(self.current_or_unexpired(false, false, None, |_| ())).await
    }

    /// [`TokenManager::renew`] under `lock`, the store's lock the caller has just taken (the
    /// keeper's look): no second take, no wait. The lock is let go if nothing needs it.
    pub(crate) async fn renew_holding(
        &self,
        lock: crate::store::StoreLock,
    ) -> Result<(), ManagerError> {
        Box::pin(self.current_or_unexpired(false, false, Some(lock), |_| ())).await
    }

    /// The newest version this manager has seen, if any (a pool keeps it when it drops the
    /// manager from memory).
    pub(crate) fn seen_version(&self) -> Option<u64> {
        Some(self.inner.high_water.load(Ordering::Acquire)).filter(|v| *v > 0)
    }

    /// Remembers `version` as seen: a store that holds an older one went backwards.
    /// The values this manager's client was built with.
    pub(crate) fn client_values(&self) -> &crate::values::ConnectionValues {
        self.inner.client.values()
    }

    pub(crate) fn saw(&self, version: u64) {
        self.inner.high_water.fetch_max(version, Ordering::AcqRel);
    }

    /// Whether a set's write is being retried.
    pub(crate) fn has_unsaved(&self) -> bool {
        self.inner.unsaved_pending.load(Ordering::Acquire)
    }

    /// Whether a refresh is in flight or a write is being retried: a pool keeps such a
    /// manager however long it has been idle.
    pub(crate) fn is_busy(&self) -> bool {
        self.inner.unsaved_pending.load(Ordering::Acquire) || locked(&self.inner.flight).is_some()
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
        inner.stamp(&mut tokens);
        match inner.store.save(&inner.key, &tokens, None).await? {
            Saved::Written(_) => Ok(true),
            _ => {
                // What is stored may be no one's to keep: a set the client-credentials grant
                // made (the application's own token where a user's belongs) or one marked
                // dead. The seed replaces those, under the lock.
                let replaceable = inner.load().await?.is_some_and(|stored| {
                    stored.dead.is_some() || stored.tokens.origin == Some(Origin::ClientCredentials)
                });
                if replaceable {
                    self.replace(tokens).await?;
                }
                Ok(replaceable)
            }
        }
    }

    /// Stores `tokens` in place of whatever is stored (a new login after
    /// [`ManagerError::ReAuthenticate`], a user who consented again) and serves them from now
    /// on. Runs under the store's lock, after any refresh in flight; the set is stored before
    /// it is served, and a failed write keeps it in memory and retries, as for a refresh.
    pub async fn replace(&self, tokens: TokenSet) -> Result<(), ManagerError> {
        let inner = Arc::clone(&self.inner);
        spawned(async move { inner.replace(tokens).await.map(drop) }).await
    }

    /// Deletes the credential's set from the store (under its lock, after any refresh in
    /// flight) and forgets it here: the next call finds nothing stored and takes the
    /// re-authentication path.
    pub async fn remove(&self) -> Result<(), ManagerError> {
        let inner = Arc::clone(&self.inner);
        spawned(inner.remove()).await
    }

    /// Like [`TokenManager::remove`], revoking the stored set's refresh token and then its
    /// access token at the provider first (RFC 7009, where the spec maps `x-token-revoke`), so
    /// that a removed connection's tokens stop working at the provider too. The set is deleted
    /// whatever the provider answered; the answers are returned.
    pub async fn revoke_and_remove(&self) -> Result<Revocation, ManagerError> {
        let inner = Arc::clone(&self.inner);
        spawned(inner.remove_revoking()).await
    }

    /// Exchanges an authorization code (from the redirect after a user's consent) and stores
    /// the set it brings, replacing any stored one: the one call that seeds a credential from
    /// the authorization-code flow. It runs under the store's lock, and the set is stored
    /// before it is served. Fails with [`ManagerError::Config`] when the provider's spec offers
    /// no authorization-code grant.
    pub async fn seed_from_code(&self, exchange: &CodeExchange) -> Result<TokenSet, ManagerError> {
        let inner = Arc::clone(&self.inner);
        let exchange = exchange.clone();
        let cached = spawned(async move { inner.seed_from_code(&exchange).await }).await?;
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

    /// The cached access token if it is fresh and no write is pending: the pool's fast path.
    pub(crate) fn settled_access_token(&self) -> Option<AccessToken> {
        if self.inner.unsaved_pending.load(Ordering::Acquire) {
            return None;
        }
        self.cached_access_token()
    }

    /// The whole current token set (refreshed first if stale).
    pub async fn token_set(&self) -> Result<TokenSet, ManagerError> {
        Box::pin(self.current(false, |c| c.tokens.clone())).await
    }

    /// Refreshes now, whatever the expiry says. Concurrent callers share one refresh; a call
    /// that joined a refresh already in flight and got back the token it held before starts
    /// one more. For a token an API rejected, [`TokenManager::refresh_rejected`] is better:
    /// it refreshes once per rejected token and is throttled.
    pub async fn force_refresh(&self) -> Result<AccessToken, ManagerError> {
        let before = self.cached_access_token();
        let token = Box::pin(self.current(true, |c| c.tokens.access_token.clone())).await?;
        if before.as_ref() == Some(&token) {
            return Box::pin(self.current(true, |c| c.tokens.access_token.clone())).await;
        }
        Ok(token)
    }

    /// A token other than `rejected`, which an API just refused (401): the current one when
    /// it is already newer, else from one forced refresh shared by every caller rejected with
    /// the same token. At most one such refresh per
    /// [`ManagerConfig::rejection_interval`]; a rejection within it (the new token refused
    /// too) is [`ManagerError::TokenRejected`], as is a refresh that brought the same token.
    pub async fn refresh_rejected(
        &self,
        rejected: &AccessToken,
    ) -> Result<AccessToken, ManagerError> {
        // Already replaced (by another caller, process or refresh): no refresh needed.
        if let Some(current) = self.cached_access_token()
            && current != *rejected
        {
            return Ok(current);
        }
        let mut last = self.inner.rejected_refresh.lock().await;
        if let Some((at, replaced, brought)) = last.as_ref() {
            if replaced == rejected {
                // The refresh this rejection asked for has run: its token, or a newer one,
                // never the refused one (a refresh may bring the same token back).
                return self
                    .cached_access_token()
                    .filter(|t| t != rejected)
                    .or_else(|| Some(brought.clone()).filter(|t| t != rejected))
                    .ok_or(ManagerError::TokenRejected);
            }
            if at.elapsed() < self.inner.config.rejection_interval {
                return Err(ManagerError::TokenRejected);
            }
        }
        let token = Box::pin(self.current(true, |c| c.tokens.access_token.clone())).await?;
        *last = Some((Instant::now(), rejected.clone(), token.clone()));
        if token == *rejected {
            return Err(ManagerError::TokenRejected);
        }
        Ok(token)
    }
}

impl<C: RefreshClient + 'static, S: TokenStore> Inner<C, S> {
    /// The stored set, refused when another issuer made it (never sent, served or changed).
    pub(super) async fn load(&self) -> Result<Option<Stored>, ManagerError> {
        let stored = self.store.load(&self.key).await?;
        self.checked(stored)
    }

    /// The set a holder reads first: the one read with `lock`, else a load; refused as
    /// [`Inner::load`] refuses.
    pub(super) async fn load_under(
        &self,
        lock: &crate::store::StoreLock,
    ) -> Result<Option<Stored>, ManagerError> {
        match lock.take_set() {
            Some(stored) => self.checked(Some(stored)),
            None => self.load().await,
        }
    }

    /// Records who `tokens` belong to: the client's issuer and its connection values.
    pub(super) fn stamp(&self, tokens: &mut TokenSet) {
        tokens.issuer = Some(self.issuer.to_string());
        tokens.values.clone_from(self.client.values());
    }

    /// `stored`, refused when another issuer made it, or the same one for other values.
    fn checked(&self, stored: Option<Stored>) -> Result<Option<Stored>, ManagerError> {
        if let Some(other) = stored
            .as_ref()
            .and_then(|s| s.tokens.issuer.as_deref())
            .filter(|issuer| *issuer != &*self.issuer)
        {
            tracing::error!(credential = %self.key, stored = other, expected = %self.issuer, "the stored token set was issued by another provider or host; refusing it");
            return Err(ManagerError::OtherIssuer {
                stored: other.to_owned(),
            });
        }
        if stored
            .as_ref()
            .is_some_and(|s| s.tokens.values != *self.client.values())
        {
            tracing::error!(credential = %self.key, "the stored token set was made with other connection values than this client's; refusing it");
            return Err(ManagerError::OtherValues);
        }
        Ok(stored)
    }
}
