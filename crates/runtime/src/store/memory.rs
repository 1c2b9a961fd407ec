//! Token sets in process memory.

use super::{ClaimedDue, Due, DueAfter, DueClaim};
use super::{Reported, Saved, StoreError, StoreLock, Stored, TokenStore};
use crate::client::BoxFuture;
use crate::token::TokenSet;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

#[derive(Default)]
struct Inner {
    sets: HashMap<String, Stored>,
    /// The last version of each deleted key (a tombstone): the next set of that key is
    /// numbered after it, and nothing older is put back over the removal.
    removed: HashMap<String, u64>,
    locked: HashSet<String>,
    /// The keepers' claims on due keys: owner, and until when.
    claims: HashMap<String, (String, Instant)>,
    /// The keeper's index: (when its refresh token dies, key) of every set not marked dead
    /// whose refresh token has an end, in the order pages are read.
    index: BTreeSet<(SystemTime, String)>,
}

impl Inner {
    /// The keeper's page: keys of `prefix` whose refresh token dies by `until`, after `after`:
    /// a walk of the index from `after` (a page costs its own length and the other pools'
    /// keys between, not the whole store).
    fn due(&self, prefix: &str, until: SystemTime, after: DueAfter<'_>, limit: usize) -> Due {
        let start = match after {
            Some((at, key)) => Bound::Excluded((at, key.to_owned())),
            None => Bound::Unbounded,
        };
        self.index
            .range((start, Bound::Unbounded))
            .take_while(|(dies, _)| *dies <= until)
            .filter(|(_, key)| key.starts_with(prefix))
            .take(limit)
            .map(|(dies, key)| (key.clone(), *dies))
            .collect()
    }

    /// Stores `stored` as `key`'s set, keeping the index.
    fn put(&mut self, key: &str, stored: Stored) {
        let entry = stored.dies();
        if let Some(old) = self.sets.insert(key.to_owned(), stored) {
            self.unindex(key, &old);
        }
        if let Some(dies) = entry {
            self.index.insert((dies, key.to_owned()));
        }
    }

    /// Removes `key`'s set, keeping the index.
    fn take(&mut self, key: &str) -> Option<Stored> {
        let gone = self.sets.remove(key)?;
        self.unindex(key, &gone);
        Some(gone)
    }

    fn unindex(&mut self, key: &str, stored: &Stored) {
        if let Some(dies) = stored.dies() {
            self.index.remove(&(dies, key.to_owned()));
        }
    }

    /// Sets (keeping an earlier time) or clears the `sending` mark of `key` if its version is
    /// `version`.
    fn mark(&mut self, key: &str, version: u64, sending: Option<SystemTime>) -> bool {
        match self.sets.get_mut(key) {
            Some(stored) if stored.version == version => {
                stored.sending = sending.map(|at| stored.sending.unwrap_or(at));
                true
            }
            _ => false,
        }
    }
}

/// Token sets in memory, for one process. Clones share the same sets.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets every set and every removal (locks held stay held), as a restart would: what
    /// tests use to stand for a store that lost its data.
    pub fn clear(&self) {
        let mut inner = self.inner();
        inner.sets.clear();
        inner.removed.clear();
        inner.claims.clear();
        inner.index.clear();
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // The data stays consistent under a panic: every write is a single insert.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self.inner().sets.keys().cloned().collect();
        f.debug_struct("MemoryStore").field("keys", &keys).finish()
    }
}

impl TokenStore for MemoryStore {
    /// Read off the sets themselves (memory is its own index).
    fn due<'a>(
        &'a self,
        prefix: &'a str,
        until: SystemTime,
        after: DueAfter<'a>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Due>, StoreError>> {
        let due = self.inner().due(prefix, until, after, limit);
        Box::pin(async move { Ok(Some(due)) })
    }

    /// Claims kept beside the sets, for keepers of several pools sharing one store.
    fn claim_due<'a>(
        &'a self,
        prefix: &'a str,
        until: SystemTime,
        after: DueAfter<'a>,
        limit: usize,
        claim: DueClaim<'a>,
    ) -> BoxFuture<'a, Result<Option<ClaimedDue>, StoreError>> {
        let mut inner = self.inner();
        let page = inner.due(prefix, until, after, limit);
        let now = Instant::now();
        let next = page
            .last()
            .filter(|_| page.len() >= limit)
            .map(|(key, at)| (*at, key.clone()));
        let claimed = page
            .into_iter()
            .filter(|(key, _)| {
                let free = inner
                    .claims
                    .get(key)
                    .is_none_or(|(owner, until)| *until <= now || owner == claim.owner);
                if free {
                    let until = now + claim.lease;
                    inner
                        .claims
                        .insert(key.clone(), (claim.owner.to_owned(), until));
                }
                free
            })
            .collect();
        drop(inner);
        Box::pin(async move { Ok(Some(ClaimedDue { claimed, next })) })
    }

    fn release_claims<'a>(
        &'a self,
        keys: &'a [String],
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut inner = self.inner();
        for key in keys {
            if inner.claims.get(key).is_some_and(|(o, _)| o == owner) {
                inner.claims.remove(key);
            }
        }
        drop(inner);
        Box::pin(async { Ok(()) })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, StoreError>> {
        let keys = self
            .inner()
            .sets
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        Box::pin(async move { Ok(Some(keys)) })
    }

    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        let found = self.inner().sets.get(key).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        let saved = {
            let mut inner = self.inner();
            let current = inner.sets.get(key).map(|s| s.version);
            if current == expected {
                let base = current.or_else(|| inner.removed.remove(key));
                let version = base.unwrap_or(0) + 1;
                inner.put(key, Stored::unmarked(version, tokens.clone()));
                Saved::Written(version)
            } else {
                Saved::Conflict(current)
            }
        };
        Box::pin(async move { Ok(saved) })
    }

    fn restore<'a>(
        &'a self,
        key: &'a str,
        set: &'a Stored,
        _lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        let saved = {
            let mut inner = self.inner();
            let current = inner.sets.get(key).map(|s| s.version);
            match current.or_else(|| inner.removed.get(key).copied()) {
                // A removal is never undone by a put-back, whatever its version.
                Some(removed) if current.is_none() => Saved::Conflict(Some(removed)),
                Some(current) if current >= set.version => Saved::Conflict(Some(current)),
                _ => {
                    inner.put(key, set.clone());
                    Saved::Written(set.version)
                }
            }
        };
        Box::pin(async move { Ok(saved) })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        _lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        let mut inner = self.inner();
        if let Some(gone) = inner.take(key) {
            let last = inner.removed.entry(key.to_owned()).or_default();
            *last = (*last).max(gone.version);
        }
        inner.claims.remove(key);
        drop(inner);
        Box::pin(async move { Ok(Saved::Written(0)) })
    }

    fn mark_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        _lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let marked = self.inner().mark(key, version, Some(SystemTime::now()));
        Box::pin(async move { Ok(marked) })
    }

    fn mark_reported<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        what: Reported,
        _lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut inner = self.inner();
        let marked = match inner.sets.get_mut(key) {
            Some(stored) if stored.version == version => {
                let before = stored.dies();
                let mark = stored.mark_mut(what);
                let marked = mark.is_none() && mark.replace(SystemTime::now()).is_none();
                // A set marked dead leaves the index.
                if let (Some(dies), None) = (before, stored.dies()) {
                    inner.index.remove(&(dies, key.to_owned()));
                }
                marked
            }
            _ => false,
        };
        drop(inner);
        Box::pin(async move { Ok(marked) })
    }

    fn clear_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        _lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner().mark(key, version, None);
        Box::pin(async move { Ok(()) })
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        let taken = self.inner().locked.insert(key.to_owned());
        let lock = taken.then(|| {
            let inner = Arc::clone(&self.inner);
            let key = key.to_owned();
            StoreLock::holding(Unlock { inner, key })
        });
        Box::pin(async move { Ok(lock) })
    }
}

/// Releases a memory lock when dropped.
struct Unlock {
    inner: Arc<Mutex<Inner>>,
    key: String,
}

impl Drop for Unlock {
    fn drop(&mut self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.locked.remove(&self.key);
    }
}
