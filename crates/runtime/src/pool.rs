//! Many connections over one client and one store: one OAuth application, one credential per
//! customer account, thousands of them, in one process or several.
//!
//! Each connection is a [`TokenManager`] made on first use and dropped from memory when idle
//! (its set stays in the store), so memory follows the connections in use, not the ones
//! stored. Every guarantee of the manager holds per connection unchanged: one refresh in
//! flight, the store's lock and fencing, sending marks, persist before publish.

use crate::client::{CodeExchange, RefreshClient};
use crate::events::TokenEvent;
use crate::manager::{ManagerConfig, ManagerError, TokenManager};
use crate::secret::AccessToken;
use crate::store::TokenStore;
use crate::token::TokenSet;
use crate::values::ConnectionValues;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// How a pool keeps its connections.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Every connection's manager settings.
    pub manager: ManagerConfig,
    /// Put before a connection's name to make its store key, so that one store can hold
    /// several pools (or other credentials) apart. Must end with `:`; a name's own `:` and
    /// `%` are percent-encoded in the key, so no pool sees another's keys however their
    /// prefixes overlap (`conn:` never lists `conn:x:`'s). Default (`None`):
    /// `conn:<provider>:`, so that pools of different providers never share a key.
    pub key_prefix: Option<String>,
    /// Whether the client-credentials grant may fill this pool's connections (an unknown
    /// connection, or one whose refresh token is unusable, as `manager`'s
    /// `client_credentials_fallback` says): only for a pool whose connections are all the
    /// application's own credentials. Default `false`: a connection holds only what the
    /// application stored for it, and one with nothing stored is
    /// [`ManagerError::NotConnected`].
    pub grant_fills_connections: bool,
    /// A connection unused this long leaves memory (not the store). Default 5 minutes.
    pub idle_after: Duration,
    /// How many events a slow subscriber may fall behind before it loses the oldest.
    /// Default 1024.
    pub event_capacity: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            manager: ManagerConfig::default(),
            key_prefix: None,
            grant_fills_connections: false,
            idle_after: Duration::from_secs(300),
            event_capacity: 1024,
        }
    }
}

/// Percent-encoded in a connection's part of a store key: `:` (which ends prefixes) and `%`.
const NAME: &percent_encoding::AsciiSet = &percent_encoding::AsciiSet::EMPTY.add(b':').add(b'%');

/// Shards of the map of live connections: lookups of different connections rarely meet.
const SHARDS: usize = 16;

type Manager<C, S> = TokenManager<Arc<C>, Arc<S>>;

/// One shard of the live connections, by name.
type Shard<C, S> = RwLock<HashMap<Arc<str>, Live<C, S>, foldhash::fast::RandomState>>;

/// A connection in memory, and when it was last used (coarse milliseconds since the epoch).
struct Live<C, S> {
    manager: Manager<C, S>,
    used: AtomicU64,
}

struct Inner<C, S> {
    client: Arc<C>,
    /// The client's issuer, worked out once for every connection's manager.
    issuer: Arc<str>,
    /// Whether the client declares server variables: a connection may then carry its own
    /// values, and a manager made for it first reads them from the store.
    per_connection: bool,
    store: Arc<S>,
    config: PoolConfig,
    /// The key prefix in force (the configured one, or `conn:<provider>:`).
    prefix: String,
    shards: Vec<Shard<C, S>>,
    /// The newest version each swept connection had seen, so that a connection made again
    /// still knows a store gone backwards.
    seen: Seen,
    events: broadcast::Sender<TokenEvent>,
    /// When the idle connections were last dropped (coarse milliseconds).
    swept: AtomicU64,
}

/// Token sets for many connections of one provider (see the module docs). Cheap to clone;
/// clones share everything.
pub struct TokenPool<C, S> {
    inner: Arc<Inner<C, S>>,
}

impl<C, S> Clone for TokenPool<C, S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C, S> fmt::Debug for TokenPool<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPool")
            .field("key_prefix", &self.inner.prefix)
            .field("active", &self.active_connections())
            .finish_non_exhaustive()
    }
}

fn now_millis() -> u64 {
    crate::clock::coarse_now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Which shard holds `connection`: FNV-1a over its bytes, cheap on the hot path (the map inside
/// the shard keeps a randomly seeded hash, so no name can be chosen to crowd one bucket).
fn shard_of(connection: &str) -> usize {
    let hash = connection.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    usize::try_from(hash % SHARDS as u64).unwrap_or(0)
}

/// The newest version each connection swept from memory had seen, by a 64-bit hash of its
/// name keyed for this pool (16 bytes a connection, not its name: a pool of a million
/// remembers them all). Two names with one hash would share an entry: at most a false
/// "the store went backwards" for one of them, at a chance near n²/2⁶⁵, and no hostile name
/// can aim for it without the key.
#[derive(Default)]
struct Seen {
    key: foldhash::fast::RandomState,
    shards: [RwLock<HashMap<u64, u64, foldhash::fast::RandomState>>; SHARDS],
}

impl Seen {
    fn hash(&self, connection: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.key, connection)
    }

    fn shard(&self, hash: u64) -> &RwLock<HashMap<u64, u64, foldhash::fast::RandomState>> {
        &self.shards[usize::try_from(hash % SHARDS as u64).unwrap_or(0)]
    }

    /// Takes what `connection` had seen, if it was swept.
    fn take(&self, connection: &str) -> Option<u64> {
        let hash = self.hash(connection);
        let mut shard = self.shard(hash).write().unwrap_or_else(|p| p.into_inner());
        let version = shard.remove(&hash);
        give_back_room(&mut shard);
        version
    }

    /// Keeps the newest version each connection had seen.
    fn keep<'a>(&self, seen: impl IntoIterator<Item = (&'a str, u64)>) {
        for (connection, version) in seen {
            let hash = self.hash(connection);
            let mut shard = self.shard(hash).write().unwrap_or_else(|p| p.into_inner());
            let entry = shard.entry(hash).or_insert(version);
            *entry = (*entry).max(version);
        }
    }
}

/// Gives back a map's room once most of it stands empty.
fn give_back_room<K: Eq + std::hash::Hash, V, H: std::hash::BuildHasher>(
    map: &mut HashMap<K, V, H>,
) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to_fit();
    }
}

impl<C, S> TokenPool<C, S> {
    /// The client every connection refreshes through (for its consent URL, say).
    pub fn client(&self) -> &C {
        &self.inner.client
    }

    /// The prefix of the store keys of this pool's connections.
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The connection a store key of this pool stands for; `None` for a key of another pool
    /// (another prefix, or a longer one that starts with this one).
    pub fn connection_of(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(self.inner.prefix.as_str())?;
        if rest.contains(':') {
            return None;
        }
        percent_encoding::percent_decode_str(rest)
            .decode_utf8()
            .ok()
            .map(|name| name.into_owned())
    }

    /// The store.
    pub(crate) fn store(&self) -> &S {
        &self.inner.store
    }

    /// The connections' manager settings.
    pub(crate) fn manager_config(&self) -> &ManagerConfig {
        &self.inner.config.manager
    }

    /// How many connections are in memory now.
    pub fn active_connections(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

impl<C: RefreshClient + 'static, S: TokenStore> TokenPool<C, S> {
    /// The provider's name.
    pub fn provider(&self) -> &'static str {
        self.inner.client.provider()
    }

    /// A pool of `client`'s connections in `store`. Fails when `config.manager` is refused (see
    /// [`ManagerConfig::validate`]).
    pub fn new(client: C, store: S, config: PoolConfig) -> Result<Self, ManagerError> {
        config.manager.validate(client.attempt_timeout())?;
        let prefix = config
            .key_prefix
            .clone()
            .unwrap_or_else(|| format!("conn:{}:", client.provider()));
        if !prefix.ends_with(':') {
            return Err(ManagerError::Config(format!(
                "the pool's key_prefix {prefix:?} must end with ':' (so that no other pool's keys start with it)"
            )));
        }
        if config.idle_after.is_zero() {
            return Err(ManagerError::Config(
                "the pool's idle_after must be positive".into(),
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                issuer: Arc::from(client.issuer()),
                per_connection: !client.variables().is_empty(),
                client: Arc::new(client),
                store: Arc::new(store),
                events: crate::events::EventSink::channel(config.event_capacity),
                config,
                prefix,
                shards: (0..SHARDS)
                    .map(|_| RwLock::new(HashMap::default()))
                    .collect(),
                seen: Seen::default(),
                swept: AtomicU64::new(now_millis()),
            }),
        })
    }

    /// The store key of `connection`.
    pub fn key_of(&self, connection: &str) -> String {
        let name = percent_encoding::utf8_percent_encode(connection, NAME);
        format!("{}{name}", self.inner.prefix)
    }

    /// `connection`'s manager if it is in memory, marked used at `now`.
    fn live(&self, connection: &str, now: u64) -> Option<Manager<C, S>> {
        let live = self.inner.shards[shard_of(connection)]
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let entry = live.get(connection)?;
        entry.used.store(now, Ordering::Relaxed);
        Some(entry.manager.clone())
    }

    /// The manager of `connection`, made if it is not in memory: with the client of the values
    /// stored with it, where the client declares server variables (one store read first).
    async fn manager(&self, connection: &str) -> Result<Manager<C, S>, ManagerError> {
        let now = now_millis();
        self.sweep_if_due(now);
        if let Some(manager) = self.live(connection, now) {
            return Ok(manager);
        }
        let values = if self.inner.per_connection {
            let key = self.key_of(connection);
            self.inner.store.load(&key).await?.map(|s| s.tokens.values)
        } else {
            None
        };
        let made = self.make(connection, values.as_ref())?;
        Ok(self.install(connection, made, false))
    }

    /// A manager of `connection` for a client with `values` (the pool's own client where
    /// there are none), not yet in memory.
    fn make(
        &self,
        connection: &str,
        values: Option<&ConnectionValues>,
    ) -> Result<Manager<C, S>, ManagerError> {
        let client = self.client_with(values.unwrap_or(ConnectionValues::none()))?;
        let issuer = if Arc::ptr_eq(&client, &self.inner.client) {
            Arc::clone(&self.inner.issuer)
        } else {
            Arc::from(client.issuer())
        };
        let kind = if self.inner.config.grant_fills_connections {
            crate::manager::Connection::GrantFills
        } else {
            crate::manager::Connection::Customer
        };
        Ok(TokenManager::for_pool(
            client,
            Arc::clone(&self.inner.store),
            self.key_of(connection),
            self.inner.config.manager.clone(),
            issuer,
        )
        .into_connection(kind)
        .with_events(self.inner.events.clone(), Arc::from(connection)))
    }

    /// Puts `manager` in memory as `connection`'s and answers the one in memory: `manager`, or,
    /// unless `replace`, one another caller put there first. It learns the newest version the
    /// connection had seen here.
    fn install(&self, connection: &str, manager: Manager<C, S>, replace: bool) -> Manager<C, S> {
        let now = now_millis();
        let shard = shard_of(connection);
        let mut live = self.inner.shards[shard]
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = live.get(connection) {
            entry.used.store(now, Ordering::Relaxed);
            if !replace {
                return entry.manager.clone();
            }
            if let Some(version) = entry.manager.seen_version() {
                manager.saw(version);
            }
        }
        if let Some(version) = self.inner.seen.take(connection) {
            manager.saw(version);
        }
        live.insert(
            Arc::from(connection),
            Live {
                manager: manager.clone(),
                used: AtomicU64::new(now),
            },
        );
        drop(live);
        self.record_active();
        manager
    }

    /// Drops `connection`'s manager from memory (not the store), keeping the newest version
    /// it had seen, so that the next call makes it again from what is stored.
    fn evict(&self, connection: &str) {
        let shard = shard_of(connection);
        let removed = self.inner.shards[shard]
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(connection);
        if let Some(version) = removed.and_then(|e| e.manager.seen_version()) {
            self.inner.seen.keep([(connection, version)]);
        }
        self.record_active();
    }

    /// Whether `result` says that `connection`'s manager in memory was made for other values
    /// than those stored now (another process disconnected it and connected it again with
    /// others): it is then dropped, to be made again from the store.
    fn stale(&self, connection: &str, result: &Result<impl Sized, ManagerError>) -> bool {
        let stale = self.inner.per_connection
            && matches!(
                result,
                Err(ManagerError::OtherValues | ManagerError::OtherIssuer { .. })
            );
        if stale {
            self.evict(connection);
        }
        stale
    }

    /// Runs `op` on `connection`'s manager; where that manager was made for values no longer
    /// stored ([`TokenPool::stale`]), once more on one made from the store.
    async fn with_manager<T, F, Fut>(&self, connection: &str, op: F) -> Result<T, ManagerError>
    where
        F: Fn(Manager<C, S>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ManagerError>>,
    {
        let result = op(self.manager(connection).await?).await;
        if self.stale(connection, &result) {
            return op(self.manager(connection).await?).await;
        }
        result
    }

    /// A manager of `connection` for a client with `values`: the one in memory where it was
    /// made for them, else a new one (put in memory by the caller once it has stored a set).
    fn manager_for(
        &self,
        connection: &str,
        values: &ConnectionValues,
    ) -> Result<(Manager<C, S>, bool), ManagerError> {
        match self.live(connection, now_millis()) {
            Some(live) if live.client_values() == values => Ok((live, false)),
            _ => Ok((self.make(connection, Some(values))?, true)),
        }
    }

    /// A valid access token for `connection`: from memory under a shard's read lock when it
    /// is fresh, else from the store or a refresh, as [`TokenManager::access_token`].
    pub async fn access_token(&self, connection: &str) -> Result<AccessToken, ManagerError> {
        let now = now_millis();
        self.sweep_if_due(now);
        {
            let live = self.inner.shards[shard_of(connection)]
                .read()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = live.get(connection) {
                entry.used.store(now, Ordering::Relaxed);
                if let Some(token) = entry.manager.settled_access_token() {
                    return Ok(token);
                }
            }
        }
        self.with_manager(connection, |m| async move { m.access_token().await })
            .await
    }

    /// Renews `connection` if it is due (what the keeper does); a failed refresh is an error.
    pub(crate) async fn renew(&self, connection: &str) -> Result<(), ManagerError> {
        self.with_manager(connection, |m| async move { m.renew().await })
            .await
    }

    /// [`TokenPool::renew`] under `lock`, the connection's store lock the keeper has taken.
    pub(crate) async fn renew_holding(
        &self,
        connection: &str,
        lock: crate::store::StoreLock,
    ) -> Result<(), ManagerError> {
        match self.manager(connection).await {
            Ok(manager) => {
                let result = manager.renew_holding(lock).await;
                // The lock went with the attempt: a stale manager is made again next visit.
                self.stale(connection, &result);
                result
            }
            Err(e) => {
                lock.release().await;
                Err(e)
            }
        }
    }

    /// Reports, once fleet-wide, that the keeper could not renew `connection`, whose refresh
    /// token dies at `dies`.
    pub(crate) async fn report_expiring(&self, connection: &str, dies: SystemTime) {
        match self.manager(connection).await {
            Ok(manager) => manager.report_expiring(dies).await,
            Err(e) => tracing::warn!(error = %e, "cannot report an expiring connection"),
        }
    }

    /// The whole current set of `connection` (refreshed first if stale).
    pub async fn token_set(&self, connection: &str) -> Result<TokenSet, ManagerError> {
        self.with_manager(connection, |m| async move { m.token_set().await })
            .await
    }

    /// Refreshes `connection` now (an API rejected its token), as
    /// [`TokenManager::force_refresh`].
    pub async fn force_refresh(&self, connection: &str) -> Result<AccessToken, ManagerError> {
        self.with_manager(connection, |m| async move { m.force_refresh().await })
            .await
    }

    /// A token for `connection` other than `rejected`, which an API refused; see
    /// [`TokenManager::refresh_rejected`].
    pub async fn refresh_rejected(
        &self,
        connection: &str,
        rejected: &AccessToken,
    ) -> Result<AccessToken, ManagerError> {
        self.with_manager(
            connection,
            |m| async move { m.refresh_rejected(rejected).await },
        )
        .await
    }

    /// Stores a first set for `connection` unless one is stored; see [`TokenManager::seed`].
    /// Where the client declares server variables, a stored connection keeps its values.
    pub async fn seed(&self, connection: &str, tokens: TokenSet) -> Result<bool, ManagerError> {
        self.with_manager(connection, |m| {
            let tokens = tokens.clone();
            async move { m.seed(tokens).await }
        })
        .await
    }

    /// Puts `tokens` in place of `connection`'s set (the customer consented again); see
    /// [`TokenManager::replace`]. A stored connection keeps its values.
    pub async fn replace(&self, connection: &str, tokens: TokenSet) -> Result<(), ManagerError> {
        self.with_manager(connection, |m| {
            let tokens = tokens.clone();
            async move { m.replace(tokens).await }
        })
        .await
    }

    /// Exchanges an authorization code for `connection`'s first (or new) set; see
    /// [`TokenManager::seed_from_code`]. A stored connection keeps its values.
    pub async fn seed_from_code(
        &self,
        connection: &str,
        exchange: &CodeExchange,
    ) -> Result<TokenSet, ManagerError> {
        self.with_manager(
            connection,
            |m| async move { m.seed_from_code(exchange).await },
        )
        .await
    }

    /// [`TokenPool::seed`] for a connection with its own `values` (the customer's tenant, its
    /// region: see [`RefreshClient::variables`]), stored with its set: its requests go where
    /// they say, checked as the client's builder checks its own. Refused
    /// ([`ManagerError::Values`]) before anything is sent or stored where the spec does not
    /// take them. A connection's values are fixed while it is stored: a stored set made with
    /// other values is refused ([`ManagerError::OtherIssuer`], or
    /// [`ManagerError::OtherValues`] on the same host), so a connection moves to another
    /// tenant only by a removal and a new connect.
    pub async fn seed_with(
        &self,
        connection: &str,
        values: &ConnectionValues,
        tokens: TokenSet,
    ) -> Result<bool, ManagerError> {
        let (manager, made) = self.manager_for(connection, values)?;
        let seeded = manager.seed(tokens).await?;
        if made && seeded {
            self.install(connection, manager, true);
        }
        Ok(seeded)
    }

    /// [`TokenPool::replace`] for a connection with its own `values`, as
    /// [`TokenPool::seed_with`] takes them.
    pub async fn replace_with(
        &self,
        connection: &str,
        values: &ConnectionValues,
        tokens: TokenSet,
    ) -> Result<(), ManagerError> {
        let (manager, made) = self.manager_for(connection, values)?;
        manager.replace(tokens).await?;
        if made {
            self.install(connection, manager, true);
        }
        Ok(())
    }

    /// [`TokenPool::seed_from_code`] for a connection with its own `values`, as
    /// [`TokenPool::seed_with`] takes them: the code is exchanged at the host they make.
    pub async fn seed_from_code_with(
        &self,
        connection: &str,
        values: &ConnectionValues,
        exchange: &CodeExchange,
    ) -> Result<TokenSet, ManagerError> {
        let (manager, made) = self.manager_for(connection, values)?;
        let tokens = manager.seed_from_code(exchange).await?;
        if made {
            self.install(connection, manager, true);
        }
        Ok(tokens)
    }

    /// This pool's client for a connection with `values`, as its requests would go (for its
    /// consent URL, say): refused as [`TokenPool::seed_with`] refuses them.
    pub fn client_with(&self, values: &ConnectionValues) -> Result<Arc<C>, ManagerError> {
        if values.is_empty() {
            return Ok(Arc::clone(&self.inner.client));
        }
        C::with_values(&self.inner.client, values)
            .map(Arc::new)
            .map_err(ManagerError::Values)
    }

    /// The values stored with `connection` (empty for one without), or `None` when nothing
    /// is stored for it.
    pub async fn stored_values(
        &self,
        connection: &str,
    ) -> Result<Option<ConnectionValues>, ManagerError> {
        let key = self.key_of(connection);
        Ok(self.inner.store.load(&key).await?.map(|s| s.tokens.values))
    }

    /// Like [`TokenPool::remove`], revoking the connection's refresh token and access token
    /// at the provider first, where its spec maps a revocation operation (see
    /// [`TokenManager::revoke_and_remove`]); the connection is removed whatever the provider
    /// answered, and the answers are returned.
    pub async fn revoke_and_remove(
        &self,
        connection: &str,
    ) -> Result<crate::manager::Revocation, ManagerError> {
        let revocation = self
            .with_manager(connection, |m| async move { m.revoke_and_remove().await })
            .await?;
        self.forget(connection);
        Ok(revocation)
    }

    /// Whether the store holds a set for `connection` (a removed one is not held).
    pub async fn is_stored(&self, connection: &str) -> Result<bool, ManagerError> {
        let key = self.key_of(connection);
        Ok(self.inner.store.load(&key).await?.is_some())
    }

    /// Deletes `connection` from the store (under its lock) and from memory.
    pub async fn remove(&self, connection: &str) -> Result<(), ManagerError> {
        self.with_manager(connection, |m| async move { m.remove().await })
            .await?;
        self.forget(connection);
        Ok(())
    }

    /// Drops `connection` from memory, once it is removed from the store.
    fn forget(&self, connection: &str) {
        let shard = shard_of(connection);
        self.inner.shards[shard]
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(connection);
        self.inner.seen.take(connection);
        self.record_active();
    }

    /// The connections the store holds for this pool (by its key prefix), or `None` when the
    /// store cannot list its keys.
    pub async fn connections(&self) -> Result<Option<Vec<String>>, ManagerError> {
        let keys = self.inner.store.list(&self.inner.prefix).await?;
        Ok(keys.map(|keys| keys.iter().filter_map(|k| self.connection_of(k)).collect()))
    }

    /// The connections marked dead in the store (`ReauthenticationRequired` was reported, or
    /// is to be, by a process with a listener): what a subscriber that fell behind
    /// (`RecvError::Lagged`) or started late reads to catch up. `None` when the store cannot
    /// list its keys. The mark stays until the connection is replaced or removed.
    pub async fn dead_connections(&self) -> Result<Option<Vec<String>>, ManagerError> {
        let Some(keys) = self.inner.store.list(&self.inner.prefix).await? else {
            return Ok(None);
        };
        let mut dead = Vec::new();
        for key in keys {
            let Some(name) = self.connection_of(&key) else {
                continue;
            };
            if self
                .inner
                .store
                .load(&key)
                .await?
                .is_some_and(|stored| stored.dead.is_some())
            {
                dead.push(name);
            }
        }
        Ok(Some(dead))
    }

    /// Every connection's events from now on (see [`TokenEvent`] and
    /// [`TokenManager::subscribe`]).
    pub fn subscribe(&self) -> broadcast::Receiver<TokenEvent> {
        self.inner.events.subscribe()
    }

    /// Drops from memory every connection unused for `idle_after` that has no refresh in
    /// flight and no write being retried. Runs by itself every quarter of `idle_after`.
    pub fn sweep(&self) {
        self.sweep_unused_for(self.inner.config.idle_after);
    }

    /// Like [`TokenPool::sweep`], for connections unused for `idle` (zero: every connection
    /// not busy).
    pub fn sweep_unused_for(&self, idle: Duration) {
        let now = now_millis();
        self.inner.swept.store(now, Ordering::Relaxed);
        let idle = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        for shard in &self.inner.shards {
            let mut live = shard.write().unwrap_or_else(|p| p.into_inner());
            let mut swept = Vec::new();
            live.retain(|name, entry| {
                let keep = now.saturating_sub(entry.used.load(Ordering::Relaxed)) < idle
                    || entry.manager.is_busy();
                if !keep && let Some(version) = entry.manager.seen_version() {
                    swept.push((Arc::clone(name), version));
                }
                keep
            });
            self.inner
                .seen
                .keep(swept.iter().map(|(name, version)| (&**name, *version)));
            give_back_room(&mut live);
        }
        self.record_active();
    }

    /// Sweeps when a quarter of `idle_after` has passed since the last sweep (one caller does).
    fn sweep_if_due(&self, now: u64) {
        let last = self.inner.swept.load(Ordering::Relaxed);
        let every = u64::try_from(self.inner.config.idle_after.as_millis() / 4).unwrap_or(u64::MAX);
        if now.saturating_sub(last) >= every
            && self
                .inner
                .swept
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.sweep();
        }
    }

    fn record_active(&self) {
        #[cfg(feature = "metrics")]
        metrics::gauge!(
            "tokenkit_connections",
            "provider" => self.inner.client.provider(),
            "state" => "active"
        )
        .set(self.active_connections() as f64);
    }
}

impl<C: RefreshClient + 'static, S: TokenStore> TokenPool<C, S> {
    /// How many connections in memory have a set whose write is being retried.
    pub(crate) fn unsaved_connections(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| {
                let live = shard.read().unwrap_or_else(|p| p.into_inner());
                live.values().filter(|e| e.manager.has_unsaved()).count()
            })
            .sum()
    }

    /// The connections in memory whose cached access token is no longer fresh (the keeper's
    /// proactive mode renews them before anyone waits).
    pub(crate) fn stale_connections(&self) -> Vec<String> {
        let mut out = Vec::new();
        for shard in &self.inner.shards {
            let live = shard.read().unwrap_or_else(|p| p.into_inner());
            out.extend(
                live.iter()
                    .filter(|(_, e)| e.manager.cached_access_token().is_none())
                    .map(|(name, _)| name.to_string()),
            );
        }
        out
    }
}
