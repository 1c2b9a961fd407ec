//! A held lock: renewed in the background while held, confirmed before a fenced write,
//! released (and retried when Redis did not answer) at the end.

use super::*;

/// A held lock: what renewing, confirming and releasing it need.
#[derive(Clone)]
pub(super) struct Lease {
    pub(super) connection: Connection,
    pub(super) lock_key: String,
    pub(super) token: String,
    pub(super) millis: u64,
}

impl Lease {
    /// Extends the lock to a full ttl: `Some(true)` held, `Some(false)` lost, `None` Redis
    /// did not answer.
    pub(super) async fn extend(&self) -> Option<bool> {
        let mut connection = self.connection.clone();
        let renewed: Result<i64, _> = redis::Script::new(RENEW)
            .key(&self.lock_key)
            .arg(&self.token)
            .arg(self.millis)
            .invoke_async(&mut connection)
            .await;
        renewed.ok().map(|n| n == 1)
    }

    /// Keeps extending the lock until the holder stops the task. A renewal Redis does not
    /// answer is retried until the lock would have expired; then, or when the lock is gone,
    /// `lost` is set and the holder can no longer prove it holds the lock.
    pub(super) async fn renew(self, lost: Arc<AtomicBool>) {
        let ttl = Duration::from_millis(self.millis);
        let period = ttl / 3;
        let retry = (ttl / 20).max(Duration::from_millis(5));
        let mut held_until = Instant::now() + ttl;
        loop {
            tokio::time::sleep(period).await;
            loop {
                let asked = Instant::now();
                match self.extend().await {
                    Some(true) => {
                        held_until = asked + ttl;
                        break;
                    }
                    Some(false) => {
                        lost.store(true, Ordering::Release);
                        return;
                    }
                    None if Instant::now() + retry >= held_until => {
                        lost.store(true, Ordering::Release);
                        return;
                    }
                    None => tokio::time::sleep(retry).await,
                }
            }
        }
    }

    /// Releases the lock. When Redis does not answer (down, restarting), a task keeps trying
    /// until the lock would have expired by itself: a server that comes back on its
    /// append-only file must find the lock free, not held for the rest of its ttl (a
    /// connection whose refresh token dies sooner would die waiting). Only this holder's own
    /// lock is ever deleted, however late.
    pub(super) async fn release(self) {
        if self.try_release().await {
            return;
        }
        let expires = Instant::now() + Duration::from_millis(self.millis);
        tokio::spawn(async move {
            while Instant::now() < expires {
                tokio::time::sleep(RELEASE_RETRY).await;
                if self.try_release().await {
                    return;
                }
            }
        });
    }

    /// One attempt to release the lock; `false` when Redis did not answer.
    pub(super) async fn try_release(&self) -> bool {
        let mut connection = self.connection.clone();
        let released: Result<i64, _> = redis::Script::new(RELEASE)
            .key(&self.lock_key)
            .arg(&self.token)
            .invoke_async(&mut connection)
            .await;
        released.is_ok()
    }
}

/// Stops the renewal task when the lock is released or dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
