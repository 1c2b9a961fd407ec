//! A store whose writes fail on demand, around any store.

use super::*;

/// A store whose next `failures` writes fail, as a full disk or an unreachable Redis would.
#[derive(Clone)]
pub struct FailingWrites {
    /// The store underneath.
    pub inner: tokenkit::MemoryStore,
    /// How many writes are still to fail.
    pub failures: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// How many sending marks are still to land and then answer an error, each with the
    /// answer lost: a commit whose connection dropped before its answer came.
    pub lost_marks: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// How many clears of a sending mark are still to fail.
    pub failing_clears: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FailingWrites {
    /// Around `inner`, with the next `failures` writes failing.
    pub fn new(inner: tokenkit::MemoryStore, failures: usize) -> Self {
        Self {
            inner,
            failures: std::sync::Arc::new(failures.into()),
            lost_marks: std::sync::Arc::default(),
            failing_clears: std::sync::Arc::default(),
        }
    }

    /// Whether this write fails (counting it down).
    fn fails(&self) -> bool {
        count_down(&self.failures)
    }
}

/// Whether `count` was above zero (taking one off).
fn count_down(count: &std::sync::atomic::AtomicUsize) -> bool {
    count
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        )
        .is_ok()
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
        if count_down(&self.lost_marks) {
            return Box::pin(async move {
                self.inner.mark_sending(key, version, lock).await?;
                Err(tokenkit::StoreError::new("connection closed"))
            });
        }
        self.inner.mark_sending(key, version, lock)
    }

    fn clear_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a tokenkit::StoreLock,
    ) -> tokenkit::BoxFuture<'a, Result<(), tokenkit::StoreError>> {
        if count_down(&self.failing_clears) {
            return Box::pin(async { Err(tokenkit::StoreError::new("connection refused")) });
        }
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
