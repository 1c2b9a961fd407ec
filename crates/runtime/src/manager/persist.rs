//! Persist before publish: writing a new set as the lock holder, putting it back where the
//! store went backwards, and serving it from memory while a failed write is retried.

use super::config::{after, backoff};
use super::{Cached, Inner, ManagerError, locked};
use crate::client::RefreshClient;
use crate::store::{Saved, StoreError, StoreLock, Stored, TokenStore};
use crate::token::TokenSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

/// A set the store did not take, and the task retrying its write.
#[derive(Clone)]
pub(super) struct Unsaved {
    cached: Arc<Cached>,
    tokens: TokenSet,
    /// The version the write expects to replace.
    expected: Option<u64>,
    /// The retrying task; finished without clearing the slot means it died (a panic, or its
    /// runtime shut down), and the next call takes the write over.
    writer: tokio::task::AbortHandle,
    /// Tells the writer to give up: the application replaced or removed the set, so this
    /// one must never land over what it put in place.
    cancel: Arc<tokio::sync::Notify>,
}

/// How one refresh under the lock ended.
pub(super) enum Held {
    /// Done; release the lock.
    Done(Result<Arc<Cached>, ManagerError>),
    /// New tokens the store did not take: serve them, and keep the lock for the write retry
    /// (the version the write expects).
    Unsaved(Arc<Cached>, TokenSet, Option<u64>),
    /// Nothing was sent, but the store did not answer the sending mark of this version, nor
    /// its clearing: answer the error, and keep the lock to clear the mark once it answers.
    Unmarked(ManagerError, u64),
}

impl<C: RefreshClient + 'static, S: TokenStore> Inner<C, S> {
    /// Persists a new set, then returns it for publishing; a write that fails keeps it.
    pub(super) async fn persist(
        &self,
        mut tokens: TokenSet,
        expected: Option<u64>,
        lock: &StoreLock,
    ) -> Held {
        let received = SystemTime::now();
        tokens
            .expires_at
            .get_or_insert(received + self.config.unknown_expiry);
        self.stamp(&mut tokens);
        let cached = |version, tokens| {
            Arc::new(Cached::new(
                Stored::unmarked(version, tokens),
                &self.config,
                Some(received),
            ))
        };
        match self.write(&tokens, expected, lock).await {
            Ok(Saved::Written(version)) => {
                let cached = cached(version, tokens);
                self.note_stored(&cached);
                Held::Done(Ok(cached))
            }
            Ok(Saved::Conflict(_)) => {
                // Someone wrote despite the lock. Theirs is newer than what this refresh
                // started from; serve theirs, never overwrite it.
                tracing::warn!(
                    "the stored token set changed during a refresh; keeping the newer one"
                );
                Held::Done(match self.load().await {
                    Ok(Some(s)) => Ok(Arc::new(Cached::new(s, &self.config, None))),
                    Ok(None) => Err(ManagerError::Store(StoreError::new(
                        "the token set vanished during a refresh",
                    ))),
                    Err(e) => Err(e),
                })
            }
            // The store was away, or the lease expired under a live holder: these tokens are
            // the only valid ones. Serve them, and store them as a lock holder again.
            Ok(Saved::LockLost) | Err(_) => {
                tracing::warn!(
                    "the refreshed set could not be stored; serving it from memory and retrying the write"
                );
                Held::Unsaved(
                    cached(expected.unwrap_or(0), tokens.clone()),
                    tokens,
                    expected,
                )
            }
        }
    }

    /// Writes a set this process obtained (refreshed, granted, replaced) as the lock holder: a
    /// compare-and-set on `expected`; where the store went backwards (it holds nothing, or an
    /// older version than `expected` or than this process has seen: restarted empty, restored
    /// from an older snapshot, flushed), the set is put back as the next version after the
    /// newest seen. `Conflict` only when the store holds something newer. A write that lands
    /// is the holder's last step under `lock` (the store may release it with the write).
    pub(super) async fn write(
        &self,
        tokens: &TokenSet,
        expected: Option<u64>,
        lock: &StoreLock,
    ) -> Result<Saved, StoreError> {
        let seen = self.high_water.load(Ordering::Acquire);
        let newest = expected.unwrap_or(0).max(seen);
        // Where this process has seen nothing newer than what it expects, the ordinary write.
        if seen <= expected.unwrap_or(0) {
            // The holder's last write: it may give the lock up in the same step.
            let saved = self
                .store
                .save_releasing(&self.key, tokens, expected, lock)
                .await?;
            let behind = match saved {
                Saved::Conflict(None) => newest > 0,
                Saved::Conflict(Some(current)) => current < newest,
                _ => false,
            };
            if !behind {
                return Ok(saved);
            }
        }
        tracing::error!(
            credential = %self.key,
            "the store went backwards (it holds an older token set than this process has seen, or none): writing the new set back"
        );
        let set = Stored::unmarked(newest + 1, tokens.clone());
        self.store.restore(&self.key, &set, lock).await
    }

    /// Ends a piece of work done under `lock`: releases it, or, for a set the store did not
    /// take, serves the set from memory and hands the lock to a task that retries the write.
    pub(super) async fn settle(
        self: &Arc<Self>,
        lock: StoreLock,
        held: Held,
    ) -> Result<Arc<Cached>, ManagerError> {
        match held {
            Held::Done(result) => {
                lock.release().await;
                result
            }
            Held::Unmarked(error, version) => {
                tokio::spawn(Arc::clone(self).clear_mark(lock, version));
                Err(error)
            }
            Held::Unsaved(cached, tokens, expected) => {
                let mut slot = locked(&self.unsaved);
                let writer = Arc::clone(self);
                let retried = tokens.clone();
                let cancel = Arc::new(tokio::sync::Notify::new());
                let cancelled = Arc::clone(&cancel);
                let handle = tokio::spawn(async move {
                    writer
                        .retry_write(Some(lock), retried, expected, cancelled)
                        .await
                });
                *slot = Some(Unsaved {
                    cached: Arc::clone(&cached),
                    tokens,
                    expected,
                    writer: handle.abort_handle(),
                    cancel,
                });
                self.unsaved_pending.store(true, Ordering::Release);
                Ok(cached)
            }
        }
    }

    /// Retries the write of a refreshed set with backoff, as a lock holder, until it lands or
    /// the store holds something newer. A lease that expired meanwhile (the store was away
    /// longer than its ttl), or no lock at all (the write taken over from a writer that died),
    /// is taken before writing. Meanwhile the set is served from memory, and its superseded
    /// refresh token stays marked as sent in the store, so nobody sends it again.
    pub(super) async fn retry_write(
        self: Arc<Self>,
        mut lock: Option<StoreLock>,
        tokens: TokenSet,
        expected: Option<u64>,
        cancel: Arc<tokio::sync::Notify>,
    ) {
        let mut attempt = 0;
        loop {
            tokio::select! {
                () = tokio::time::sleep(backoff(&self.config, attempt)) => {}
                () = cancel.notified() => {
                    tracing::info!(credential = %self.key, "the set whose write was retried was replaced or removed; dropping it");
                    break;
                }
            }
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
                        let cached = Arc::new(Cached {
                            tokens: unsaved.cached.tokens.clone(),
                            version,
                            fresh_until: unsaved.cached.fresh_until,
                            obtained: true,
                        });
                        self.note_stored(&cached);
                        self.publish(cached);
                    }
                    tracing::info!(credential = %self.key, attempt, "stored the refreshed set after a failed write");
                    break;
                }
                Ok(Saved::Conflict(_)) => {
                    tracing::error!(credential = %self.key, "the store holds a newer set than the one whose write failed, or the credential was removed; keeping the store's");
                    // Served no longer: the next call reads the store.
                    if let Some(unsaved) = self.take_unsaved() {
                        let cache = self.cache.load();
                        if cache
                            .as_ref()
                            .is_some_and(|c| Arc::ptr_eq(c, &unsaved.cached))
                        {
                            self.cache.compare_and_swap(&cache, None);
                        }
                    }
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

    /// Clears the sending mark of `version` that this holder may have left (its write failed,
    /// nothing was sent), retrying as a lease's release does (every process takes the token
    /// for in flight until it lands) for as long as the lease can last without an answer;
    /// then releases the lock. Fenced by the lock: a mark nobody clears is given up only
    /// after the in-flight grace.
    async fn clear_mark(self: Arc<Self>, lock: StoreLock, version: u64) {
        let until = after(Instant::now(), self.config.lock_ttl);
        let mut attempt = 0;
        while Instant::now() < until {
            let wait = backoff(&self.config, attempt).min(crate::store::lease::RELEASE_RETRY);
            tokio::time::sleep(wait).await;
            attempt = attempt.saturating_add(1);
            match self.store.clear_sending(&self.key, version, &lock).await {
                Ok(()) => {
                    tracing::info!(credential = %self.key, attempt, "cleared the sending mark of a refresh that was never sent");
                    break;
                }
                Err(e) => {
                    tracing::warn!(credential = %self.key, attempt, error = %e, "retrying to clear the sending mark of a refresh that was never sent")
                }
            }
        }
        lock.release().await;
    }

    /// Stops retrying the write of an unsaved set (the application puts another set in place,
    /// or removes the credential): its writer releases the lock and the set is never written.
    pub(super) fn cancel_unsaved(&self) {
        if let Some(unsaved) = self.take_unsaved() {
            unsaved.cancel.notify_one();
        }
    }

    /// Empties the unsaved slot (its set was written, or something newer was).
    pub(super) fn take_unsaved(&self) -> Option<Unsaved> {
        let mut slot = locked(&self.unsaved);
        self.unsaved_pending.store(false, Ordering::Release);
        slot.take()
    }

    /// The set whose write is being retried, if any. When its writer died (a panic, or its
    /// runtime shut down) without storing it, a new writer takes over on this runtime.
    pub(super) fn unsaved_set(self: &Arc<Self>) -> Option<Arc<Cached>> {
        let mut slot = locked(&self.unsaved);
        let unsaved = slot.as_mut()?;
        if unsaved.writer.is_finished()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            tracing::warn!(credential = %self.key, "the writer of an unsaved set died; taking the write over");
            let writer = Arc::clone(self);
            let (tokens, expected) = (unsaved.tokens.clone(), unsaved.expected);
            let cancel = Arc::clone(&unsaved.cancel);
            unsaved.writer = runtime
                .spawn(async move { writer.retry_write(None, tokens, expected, cancel).await })
                .abort_handle();
        }
        Some(Arc::clone(&unsaved.cached))
    }
}
