//! Waiting for the store's lock: one refresher at a time across processes, and whoever waits
//! keeps looking for the set another process stores meanwhile.

use super::config::after;
use super::{Cached, Inner, ManagerError, locked};
use crate::client::RefreshClient;
use crate::store::{StoreError, StoreLock, Stored, TokenStore};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// How waiting for the lock ended.
pub(super) enum Acquired {
    /// The lock is held.
    Lock(StoreLock),
    /// Another process stored a set the caller accepts.
    Found(Box<Stored>),
}

impl<C: RefreshClient + 'static, S: TokenStore> Inner<C, S> {
    /// Takes the store's lock, or finds the set another process refreshed while waiting.
    pub(super) async fn refresh_locked(
        self: Arc<Self>,
        force: bool,
        held: Option<StoreLock>,
    ) -> Result<Arc<Cached>, ManagerError> {
        // A set whose write is still being retried: it is newer than anything stored.
        if let Some(unsaved) = self.unsaved_set() {
            super::flight::let_go(held);
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
            super::flight::let_go(held);
            return Err(ManagerError::Refresh(error));
        }
        let seen = self.cache.load_full().map(|c| c.version);
        if let Some(lock) = held {
            // Taken by the caller: what waiting for it would find, the refresh under it reads.
            let held = self.refresh_holding_lock(force, seen, &lock).await;
            return self.settle(lock, held).await;
        }
        let acceptable = |stored: &Stored| {
            let newer = Some(stored.version) != seen;
            !self.regressed(Some(stored))
                && Cached::would_be_fresh(stored, &self.config, SystemTime::now())
                && (!force || newer)
        };
        match self.acquire(Some(&acceptable)).await? {
            Acquired::Found(stored) => Ok(Arc::new(Cached::new(*stored, &self.config, None))),
            Acquired::Lock(lock) => {
                let held = self.refresh_holding_lock(force, seen, &lock).await;
                self.settle(lock, held).await
            }
        }
    }

    /// Takes the store's lock, waiting up to `lock_wait`. While it waits, each stored set is
    /// offered to `accept` (when given): one it accepts ends the wait without the lock.
    pub(super) async fn acquire(
        &self,
        accept: Option<&(dyn Fn(&Stored) -> bool + Send + Sync)>,
    ) -> Result<Acquired, ManagerError> {
        let deadline = after(Instant::now(), self.config.lock_wait);
        // Made before the first look: a release between a look and the wait still wakes it.
        let mut watch = self.store.watch(&self.key);
        loop {
            if let Some(accept) = accept
                && let Some(stored) = self.load().await?
                && accept(&stored)
            {
                return Ok(Acquired::Found(Box::new(stored)));
            }
            if let Some(lock) = self
                .store
                .try_lock_loading(&self.key, self.config.lock_ttl)
                .await?
            {
                return Ok(Acquired::Lock(lock));
            }
            if Instant::now() >= deadline {
                return Err(ManagerError::LockTimeout);
            }
            watch.wait(self.config.lock_poll).await;
        }
    }

    /// Takes the store's lock, waiting up to `lock_wait`.
    pub(super) async fn wait_for_lock(&self) -> Result<StoreLock, ManagerError> {
        match self.acquire(None).await? {
            Acquired::Lock(lock) => Ok(lock),
            Acquired::Found(_) => Err(ManagerError::LockTimeout),
        }
    }
}
