//! A store whose writes fail on demand, around any store.

use super::*;

/// A store whose next `failures` writes fail, as a full disk or an unreachable Redis would.
#[derive(Clone)]
pub struct FailingWrites {
    /// The store underneath.
    pub inner: tokenkit::MemoryStore,
    /// How many writes are still to fail.
    pub failures: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FailingWrites {
    /// Whether this write fails (counting it down).
    fn fails(&self) -> bool {
        self.failures
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok()
    }
}

impl tokenkit::TokenStore for FailingWrites {
    fn watch(&self, key: &str) -> tokenkit::ChangeWatch {
        self.inner.watch(key)
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> tokenkit::BoxFuture<'a, Result<Option<Vec<String>>, tokenkit::StoreError>> {
        self.inner.list(prefix)
    }

    fn due<'a>(
        &'a self,
        prefix: &'a str,
        until: SystemTime,
        after: tokenkit::DueAfter<'a>,
        limit: usize,
    ) -> tokenkit::BoxFuture<'a, Result<Option<tokenkit::Due>, tokenkit::StoreError>> {
        self.inner.due(prefix, until, after, limit)
    }

    fn load<'a>(
        &'a self,
        key: &'a str,
    ) -> tokenkit::BoxFuture<'a, Result<Option<tokenkit::Stored>, tokenkit::StoreError>> {
        self.inner.load(key)
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
    ) -> tokenkit::BoxFuture<'a, Result<tokenkit::Saved, tokenkit::StoreError>> {
        if self.fails() {
            return Box::pin(async { Err(tokenkit::StoreError::new("disk full")) });
        }
        self.inner.save(key, tokens, expected)
    }

    fn restore<'a>(
        &'a self,
        key: &'a str,
        set: &'a tokenkit::Stored,
        lock: &'a tokenkit::StoreLock,
    ) -> tokenkit::BoxFuture<'a, Result<tokenkit::Saved, tokenkit::StoreError>> {
        if self.fails() {
            return Box::pin(async { Err(tokenkit::StoreError::new("disk full")) });
        }
        self.inner.restore(key, set, lock)
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        lock: &'a tokenkit::StoreLock,
    ) -> tokenkit::BoxFuture<'a, Result<tokenkit::Saved, tokenkit::StoreError>> {
        self.inner.delete(key, lock)
    }

    fn mark_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a tokenkit::StoreLock,
    ) -> tokenkit::BoxFuture<'a, Result<bool, tokenkit::StoreError>> {
        self.inner.mark_sending(key, version, lock)
    }

    fn clear_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a tokenkit::StoreLock,
    ) -> tokenkit::BoxFuture<'a, Result<(), tokenkit::StoreError>> {
        self.inner.clear_sending(key, version, lock)
    }

    fn mark_reported<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        what: tokenkit::Reported,
        lock: &'a tokenkit::StoreLock,
    ) -> tokenkit::BoxFuture<'a, Result<bool, tokenkit::StoreError>> {
        self.inner.mark_reported(key, version, what, lock)
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> tokenkit::BoxFuture<'a, Result<Option<tokenkit::StoreLock>, tokenkit::StoreError>> {
        self.inner.try_lock(key, ttl)
    }
}
