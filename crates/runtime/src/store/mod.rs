//! Where token sets live between refreshes, and the lock that lets one refresher at a time
//! spend a refresh token.
//!
//! Which store to pick:
//! - one process: [`MemoryStore`] (tokens are lost on restart; fine when a re-login is cheap);
//! - several processes on one host, or one process that must survive restarts: [`FileStore`]
//!   (atomic replace, mode 0600, an OS file lock that dies with its process);
//! - several hosts or replicas: `RedisStore` (feature `redis`): a lock with expiry and a
//!   compare-and-set on a version, so a stale writer never overwrites a newer token set.

mod file;
mod memory;
mod record;
#[cfg(feature = "redis")]
mod redis;

pub use file::FileStore;
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;

use crate::refresh::BoxFuture;
use crate::token::TokenSet;
use std::any::Any;
use std::fmt;
use std::time::Duration;

/// A token set as stored, with the version a compare-and-set checks.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// Incremented by every write; the first write is version 1.
    pub version: u64,
    /// The token set.
    pub tokens: TokenSet,
}

/// The outcome of a compare-and-set write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    /// Written as this version.
    Written(u64),
    /// Not written: the stored version was not the expected one (`None`: nothing stored).
    Conflict(Option<u64>),
}

/// A store failed. Never contains a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    /// What failed.
    pub message: String,
}

impl StoreError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
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

/// A held refresh lock. Dropping it releases it too (a file lock at once, a Redis lock at its
/// expiry); [`StoreLock::release`] releases it now.
pub struct StoreLock {
    _held: Option<Box<dyn Any + Send + Sync>>,
    release: Option<BoxFuture<'static, ()>>,
}

impl StoreLock {
    /// A lock held by owning `held` (a locked file, say).
    pub fn holding(held: impl Any + Send + Sync) -> Self {
        Self {
            _held: Some(Box::new(held)),
            release: None,
        }
    }

    /// A lock released by running `release`.
    pub fn releasing(release: BoxFuture<'static, ()>) -> Self {
        Self {
            _held: None,
            release: Some(release),
        }
    }

    /// Releases the lock.
    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            release.await;
        }
    }
}

impl fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreLock")
    }
}

/// Persistence for token sets, keyed by credential.
pub trait TokenStore: Send + Sync + 'static {
    /// The stored token set of `key`, if any.
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>>;

    /// Writes `tokens` if the stored version is still `expected` (`None`: nothing stored yet).
    /// The write is atomic: a reader sees the old set or the new one, never a mix.
    fn save<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<Saved, StoreError>>;

    /// Takes the refresh lock of `key` if it is free; `None` if another holder has it. `ttl`
    /// bounds how long a holder that dies keeps it, where the store cannot tell by itself.
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>>;
}

impl<S: TokenStore + ?Sized> TokenStore for std::sync::Arc<S> {
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

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        (**self).try_lock(key, ttl)
    }
}
