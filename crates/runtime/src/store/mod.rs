//! Where token sets live between refreshes, and the lock that lets one refresher at a time
//! spend a refresh token.
//!
//! Which store to pick:
//! - one process: [`MemoryStore`] (tokens are lost on restart; fine when a re-login is cheap);
//! - several processes on one host, or one process that must survive restarts: [`FileStore`]
//!   (two checksummed slots written in turn, in place; mode 0600; an OS file lock that dies with
//!   its process);
//! - several hosts or replicas: `RedisStore` (feature `redis`): a lock with expiry and a
//!   compare-and-set on a version, so a stale writer never overwrites a newer token set;
//!   or `PostgresStore` (feature `postgres`), the same promises on a database the service
//!   already runs.
//!
//! Any of them can be wrapped in [`EncryptedStore`], so that what is at rest yields no token;
//! [`copy_connections`] moves connections from one to another while a fleet runs.

mod copy;
mod encrypted;
mod file;
// Leases are the shared stores' locks; only the keeper's owner token is used without them.
#[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
pub(crate) mod lease;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod record;
#[cfg(feature = "redis")]
mod redis;
mod watch;

pub use copy::{Copied, copy_connections};
pub use encrypted::{EncryptedStore, EncryptionKey};
pub use file::FileStore;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
#[cfg(feature = "redis")]
pub use redis::{RedisOptions, RedisStore, WaitForReplicas};
pub use watch::ChangeWatch;

use crate::client::BoxFuture;
use crate::token::TokenSet;
use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// A token set as stored, with the version a compare-and-set checks.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// Incremented by every write; the first write is version 1.
    pub version: u64,
    /// The token set.
    pub tokens: TokenSet,
    /// When a refresh request with this set's refresh token was marked as sent
    /// ([`TokenStore::mark_sending`]) with no answer stored since: the token may be spent.
    pub sending: Option<SystemTime>,
    /// When this version was found to need re-authentication ([`Reported::Dead`]): its
    /// refresh token is dead or may be spent, and nothing could replace the set. No process
    /// sends its refresh token again, the keeper skips it, and one process reported it. The
    /// set stays, for inspection, until the application replaces or removes it.
    pub dead: Option<SystemTime>,
    /// When a keeper gave up renewing this version before its refresh token dies, and
    /// reported it ([`Reported::Expiring`]).
    pub expiring: Option<SystemTime>,
    /// When a process with a listener sent `ReauthenticationRequired` for this version
    /// ([`Reported::Announced`]): the report is claimed only where it can be delivered, so a
    /// replica nobody listens to marks the set dead but leaves the report to one that has a
    /// listener.
    pub announced: Option<SystemTime>,
    /// The store's own clock when this was read, where the store has one (Redis `TIME`):
    /// marks are stamped by the same clock, so a process whose clock is off judges their age
    /// by the store's, never by its own. `None`: the reader's clock (one host).
    pub read_at: Option<SystemTime>,
}

impl Stored {
    /// `tokens` stored as `version`, with no marks.
    pub fn unmarked(version: u64, tokens: TokenSet) -> Self {
        Self {
            version,
            tokens,
            sending: None,
            dead: None,
            expiring: None,
            announced: None,
            read_at: None,
        }
    }

    /// Where the keeper's due index puts this set: when its refresh token dies, unless that
    /// has no end or the set is marked dead (nobody renews it).
    pub(crate) fn dies(&self) -> Option<SystemTime> {
        self.tokens
            .refresh_expires_at
            .filter(|_| self.dead.is_none())
    }

    /// The mark `what` says.
    pub(crate) fn mark_mut(&mut self, what: Reported) -> &mut Option<SystemTime> {
        match what {
            Reported::Dead => &mut self.dead,
            Reported::Expiring => &mut self.expiring,
            Reported::Announced => &mut self.announced,
        }
    }
}

/// What a process found about a stored version and reports, recorded in the store
/// ([`TokenStore::mark_reported`]) so that a fleet reports it once, not once per replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reported {
    /// It needs re-authentication ([`Stored::dead`]); nobody sends its refresh token again.
    Dead,
    /// Its refresh token dies soon and a keeper could not renew it ([`Stored::expiring`]).
    Expiring,
    /// Its re-authentication was reported to a listener ([`Stored::announced`]).
    Announced,
}

impl Reported {
    /// Its name in a store (a file's extension, a Redis hash field).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dead => "dead",
            Self::Expiring => "expiring",
            Self::Announced => "announced",
        }
    }
}

/// The outcome of a compare-and-set write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    /// Written as this version.
    Written(u64),
    /// Not written: the stored version was not the expected one (`None`: nothing stored).
    Conflict(Option<u64>),
    /// Not written: the writer's lock has expired (another holder may have it).
    LockLost,
}

/// A store failed. Never contains a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    /// What failed.
    pub message: String,
}

impl StoreError {
    /// A store error saying `message` (never a token).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token store: {}", self.message)
    }
}

impl std::error::Error for StoreError {}

/// Proves a lease is still held, extending it: `true` while this holder owns it.
pub type Confirm = Box<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// A held refresh lock. Dropping it releases it too (a file lock at once, a Redis lock at its
/// expiry); [`StoreLock::release`] releases it now.
///
/// A lock that can expire under a live holder (a lease, as in Redis) carries a fencing token,
/// which fenced writes check, and a way to confirm it is still held before each attempt.
pub struct StoreLock {
    _held: Option<Box<dyn Any + Send + Sync>>,
    /// In a mutex only to make the lock `Sync` (it is taken once, by `release`).
    release: std::sync::Mutex<Option<BoxFuture<'static, ()>>>,
    fence: Option<String>,
    lost: Option<Arc<AtomicBool>>,
    confirm: Option<Confirm>,
    /// The set read in the same step as the lock was taken ([`TokenStore::try_lock_loading`]).
    set: std::sync::Mutex<Option<Box<Stored>>>,
    /// The store gave the lock up in a write ([`TokenStore::save_releasing`]).
    released: AtomicBool,
}

impl StoreLock {
    /// A lock held by owning `held` (a locked file, say); it cannot be lost while held.
    pub fn holding(held: impl Any + Send + Sync) -> Self {
        Self {
            _held: Some(Box::new(held)),
            release: std::sync::Mutex::new(None),
            fence: None,
            lost: None,
            confirm: None,
            set: std::sync::Mutex::new(None),
            released: AtomicBool::new(false),
        }
    }

    /// A lease: `fence` identifies this holder, `lost` turns true when renewal gave up,
    /// `confirm` proves (and extends) it, `release` gives it up.
    pub fn lease(
        fence: String,
        lost: Arc<AtomicBool>,
        confirm: Confirm,
        release: BoxFuture<'static, ()>,
    ) -> Self {
        Self {
            _held: None,
            release: std::sync::Mutex::new(Some(release)),
            fence: Some(fence),
            lost: Some(lost),
            confirm: Some(confirm),
            set: std::sync::Mutex::new(None),
            released: AtomicBool::new(false),
        }
    }

    /// This lock with `set`, the key's set as read under it in the same step as it was taken:
    /// the holder's first load is then saved. Only a set read after the lock was taken may be
    /// attached (a store that cannot promise so leaves it off); `None` attaches nothing.
    pub fn with_set(self, set: Option<Stored>) -> Self {
        *self.set.lock().unwrap_or_else(|p| p.into_inner()) = set.map(Box::new);
        self
    }

    /// Takes the set read with the lock, if any (once).
    pub fn take_set(&self) -> Option<Stored> {
        let set = self.set.lock().unwrap_or_else(|p| p.into_inner()).take();
        set.map(|set| *set)
    }

    /// Records that the store gave this lock up in the write that just landed
    /// ([`TokenStore::save_releasing`]): [`StoreLock::release`] then only stops its renewal.
    pub fn released_by_store(&self) {
        self.released.store(true, Ordering::Release);
    }

    /// The fencing token a fenced write checks; `None` for locks that cannot be lost.
    pub fn fence(&self) -> Option<&str> {
        self.fence.as_deref()
    }

    /// Whether this holder still holds the lock (extending a lease as it asks). A holder that
    /// cannot prove it must not send a refresh token.
    pub async fn confirm(&self) -> bool {
        if self
            .lost
            .as_ref()
            .is_some_and(|l| l.load(Ordering::Acquire))
        {
            return false;
        }
        match &self.confirm {
            Some(confirm) => confirm().await,
            None => true,
        }
    }

    /// Releases the lock.
    pub async fn release(self) {
        let release = self
            .release
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        // Already given up by the store: dropping the release stops the renewal.
        if let Some(release) = release
            && !self.released.load(Ordering::Acquire)
        {
            release.await;
        }
    }
}

impl fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreLock")
    }
}

/// Keys and when their refresh tokens die, earliest first ([`TokenStore::due`]).
pub type Due = Vec<(String, std::time::SystemTime)>;

/// Where a page of [`TokenStore::due`] starts: after this entry, in the order of (time, key).
pub type DueAfter<'a> = Option<(std::time::SystemTime, &'a str)>;

/// A keeper's claim on the due entries it is about to renew ([`TokenStore::claim_due`]): a
/// hint that keeps the other replicas' keepers off them for `lease`, never a lock (the
/// connection's lock and its set's version still decide every write).
#[derive(Clone, Copy, Debug)]
pub struct DueClaim<'a> {
    /// Who claims: one keeper, unique in the fleet (not a secret).
    pub owner: &'a str,
    /// How long the claim holds, at the store's clock; an owner may claim its own again.
    pub lease: Duration,
}

/// A page of the keeper's index walked under a claim ([`TokenStore::claim_due`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimedDue {
    /// The entries of the page now claimed by the caller, in the order of (time, key).
    pub claimed: Due,
    /// The page's last entry, claimed or not: where the next page starts. `None` when the
    /// page reached the end of the window.
    pub next: Option<(SystemTime, String)>,
}

/// Whether `(at, key)` comes after `after` in the order of the keeper's index.
pub fn due_after(after: DueAfter<'_>, at: SystemTime, key: &str) -> bool {
    after.is_none_or(|(t, k)| (at, key) > (t, k))
}

/// Persistence for token sets, keyed by credential.
pub trait TokenStore: Send + Sync + 'static {
    /// The stored token set of `key`, if any.
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>>;

    /// Writes `tokens` if the stored version is still `expected` (`None`: nothing stored yet;
    /// the set is numbered after a removed one). The write is atomic: a reader sees the old
    /// set or the new one, never a mix.
    fn save<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<Saved, StoreError>>;

    /// Like [`TokenStore::save`], and only while `lock` is held: a holder whose lease expired
    /// gets [`Saved::LockLost`] and writes nothing. Stores whose lock cannot be lost while its
    /// holder lives (a file lock, a memory lock) need not override it.
    fn save_fenced<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        let _ = lock;
        self.save(key, tokens, expected)
    }

    /// Records, while `lock` is held, that a refresh request with the refresh token of
    /// `version` is about to be sent, so that every process (and this one after a restart)
    /// loads the set with [`Stored::sending`] and never sends that token again unless an
    /// answer proved it unspent. A mark of the same version keeps its time (when the token was
    /// first sent). `false`: not recorded (the version changed, or the lock is lost); the
    /// token must not be sent.
    fn mark_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Writes `set` as it is (its version, and its marks if any), while `lock` is held,
    /// if nothing is stored (and nothing was removed: a tombstone answers `Conflict` with the
    /// removed version) or the stored version is older: how a lock holder puts back the
    /// newest set it knows after the store went backwards (restarted empty, restored from an
    /// older snapshot, flushed). `Conflict` with the stored version otherwise; `LockLost` as
    /// for [`TokenStore::save_fenced`].
    fn restore<'a>(
        &'a self,
        key: &'a str,
        set: &'a Stored,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>>;

    /// Deletes the set of `key` and its marks, while `lock` is held (a credential the
    /// application removes), keeping its last version as a tombstone: versions never repeat
    /// for a key (the next [`TokenStore::save`] over nothing is numbered after it) and
    /// [`TokenStore::restore`] never writes over a removal, so a process that saw the removed
    /// set cannot take a new one for a store gone backwards nor put the removed one back.
    /// `LockLost` as for [`TokenStore::save_fenced`], else `Written(0)`.
    fn delete<'a>(
        &'a self,
        key: &'a str,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>>;

    /// Records, while `lock` is held, that `what` was found about the set of `version` (the
    /// other marks stay). `true` only for the call that recorded it: the one process that
    /// reports it. `false`: already recorded, the version changed, or the lock is lost. A
    /// write of a new version clears it.
    fn mark_reported<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        what: Reported,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Clears the mark of `version` after an answer proved its refresh token unspent.
    fn clear_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Takes the refresh lock of `key` if it is free; `None` if another holder has it. `ttl`
    /// bounds how long a holder that dies keeps it, where the store cannot tell by itself.
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>>;

    /// [`TokenStore::try_lock`], with the key's set as read after the lock was taken attached
    /// ([`StoreLock::with_set`]) where the store reads both in one step (one round trip
    /// instead of two). The default attaches nothing and the holder loads: a store that wraps
    /// another and transforms its sets (as [`EncryptedStore`] does) must transform the
    /// attached one too, or leave this alone.
    fn try_lock_loading<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        self.try_lock(key, ttl)
    }

    /// [`TokenStore::save_fenced`], giving the lock up in the same step where it writes (and
    /// calling [`StoreLock::released_by_store`]): the holder's last step, so one round trip
    /// instead of two. Where it does not write the lock stays held. The default only saves;
    /// the holder's [`StoreLock::release`] then releases.
    fn save_releasing<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        self.save_fenced(key, tokens, expected, lock)
    }

    /// The keys under `prefix` whose refresh token dies at or before `until`, with when, in
    /// the order of (time, key), starting after `after` (a page's last entry), at most
    /// `limit`: what a pool's keeper must refresh (never a set marked dead, where the index
    /// knows; the keeper skips any it finds), page by page. Stores that keep an index of
    /// these times answer from it; `None` (the default) means the store keeps none, and the
    /// keeper reads every listed set instead. An index may name a key whose set has since
    /// been renewed or removed (it was written just before the set); the keeper looks.
    fn due<'a>(
        &'a self,
        prefix: &'a str,
        until: std::time::SystemTime,
        after: DueAfter<'a>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Due>, StoreError>> {
        let _ = (prefix, until, after, limit);
        Box::pin(async { Ok(None) })
    }

    /// [`TokenStore::due`]'s page of at most `limit` entries, where the store claims for
    /// `claim.owner` every entry of it that no other owner has claimed within its lease, and
    /// answers with those: so that replicas walking the same index split it instead of each
    /// visiting every due connection. The claim is a hint, never a guarantee (a lease runs out
    /// at the store's clock while its owner is slow; the keeper still takes the connection's
    /// lock). `None` (the default): the store keeps no claims, and the keeper reads
    /// [`TokenStore::due`] instead.
    fn claim_due<'a>(
        &'a self,
        prefix: &'a str,
        until: std::time::SystemTime,
        after: DueAfter<'a>,
        limit: usize,
        claim: DueClaim<'a>,
    ) -> BoxFuture<'a, Result<Option<ClaimedDue>, StoreError>> {
        let _ = (prefix, until, after, limit, claim);
        Box::pin(async { Ok(None) })
    }

    /// Gives up `owner`'s claims on `keys` (another owner's stay): a keeper that failed to
    /// renew a connection, or backs off from it, leaves it to the other replicas, which may
    /// reach the provider where it cannot. The default does nothing (no claims are kept).
    fn release_claims<'a>(
        &'a self,
        keys: &'a [String],
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = (keys, owner);
        Box::pin(async { Ok(()) })
    }

    /// Every key that holds a set and starts with `prefix`, in no particular order; `None`
    /// when this store cannot list its keys (the default).
    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, StoreError>> {
        let _ = prefix;
        Box::pin(async { Ok(None) })
    }

    /// A watch of `key`'s lock and set, made before a waiter looks at them: its
    /// [`ChangeWatch::wait`] ends when the store announces a release or a save of `key`, or
    /// after the waiter's poll interval. The default announces nothing (the waiter polls).
    fn watch(&self, key: &str) -> ChangeWatch {
        let _ = key;
        ChangeWatch::polling()
    }
}

impl<S: TokenStore + ?Sized> TokenStore for std::sync::Arc<S> {
    fn watch(&self, key: &str) -> ChangeWatch {
        (**self).watch(key)
    }

    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        (**self).load(key)
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        (**self).save(key, tokens, expected)
    }

    fn save_fenced<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        (**self).save_fenced(key, tokens, expected, lock)
    }

    fn mark_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        (**self).mark_sending(key, version, lock)
    }

    fn clear_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).clear_sending(key, version, lock)
    }

    fn mark_reported<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        what: Reported,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        (**self).mark_reported(key, version, what, lock)
    }

    fn restore<'a>(
        &'a self,
        key: &'a str,
        set: &'a Stored,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        (**self).restore(key, set, lock)
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        (**self).delete(key, lock)
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        (**self).try_lock(key, ttl)
    }

    fn try_lock_loading<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        (**self).try_lock_loading(key, ttl)
    }

    fn save_releasing<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        (**self).save_releasing(key, tokens, expected, lock)
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, StoreError>> {
        (**self).list(prefix)
    }

    fn due<'a>(
        &'a self,
        prefix: &'a str,
        until: std::time::SystemTime,
        after: DueAfter<'a>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Due>, StoreError>> {
        (**self).due(prefix, until, after, limit)
    }

    fn claim_due<'a>(
        &'a self,
        prefix: &'a str,
        until: std::time::SystemTime,
        after: DueAfter<'a>,
        limit: usize,
        claim: DueClaim<'a>,
    ) -> BoxFuture<'a, Result<Option<ClaimedDue>, StoreError>> {
        (**self).claim_due(prefix, until, after, limit, claim)
    }

    fn release_claims<'a>(
        &'a self,
        keys: &'a [String],
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).release_claims(keys, owner)
    }
}
