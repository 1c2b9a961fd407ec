//! A lease lock, for stores whose lock can expire under a live holder (Redis, PostgreSQL):
//! renewed in the background every third of its ttl while held, confirmed before each
//! attempt, released at the end (and again in the background, until it lands or would have
//! expired, when the store did not answer). Each store says only how to extend and release.

use super::{Confirm, StoreLock};
use crate::client::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often a release (or a holder's last small write) the store did not answer is tried
/// again: often, so that a store that is back is seen within a tenth of a second.
pub(crate) const RELEASE_RETRY: Duration = Duration::from_millis(100);

/// One held lease, as its store extends and releases it.
pub(crate) trait Lease: Clone + Send + Sync + 'static {
    /// How long the lease lasts unless extended.
    fn ttl(&self) -> Duration;
    /// Extends it: `Some(true)` while held, `Some(false)` once lost, `None` without an answer.
    fn extend(&self) -> BoxFuture<'_, Option<bool>>;
    /// Gives it up; `false` without an answer.
    fn try_release(&self) -> BoxFuture<'_, bool>;
}

/// A value no other holder has: process, time and a counter.
pub(crate) fn lock_token() -> String {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    )
}

/// The lock of a lease just taken with `fence`: renewed while held, confirmed on demand.
pub(crate) fn held<L: Lease>(lease: L, fence: String) -> StoreLock {
    let lost = Arc::new(AtomicBool::new(false));
    let renewal = AbortOnDrop(tokio::spawn(renew(lease.clone(), Arc::clone(&lost))));
    let confirming = lease.clone();
    let confirm: Confirm = Box::new(move || {
        let lease = confirming.clone();
        Box::pin(async move { lease.extend().await == Some(true) })
    });
    let release: BoxFuture<'static, ()> = Box::pin(async move {
        drop(renewal);
        release(lease).await;
    });
    StoreLock::lease(fence, lost, confirm, release)
}

/// Renews every third of the ttl; marks `lost` once the lease is gone, or once no answer
/// came before it would have expired.
async fn renew<L: Lease>(lease: L, lost: Arc<AtomicBool>) {
    let ttl = lease.ttl();
    let period = ttl / 3;
    let retry = (ttl / 20).max(Duration::from_millis(5));
    let mut held_until = Instant::now() + ttl;
    loop {
        tokio::time::sleep(period).await;
        loop {
            let asked = Instant::now();
            match lease.extend().await {
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

/// Gives the lease up, retrying in the background until it lands or would have expired.
pub(crate) async fn release<L: Lease>(lease: L) {
    if lease.try_release().await {
        return;
    }
    let expires = Instant::now() + lease.ttl();
    tokio::spawn(async move {
        while Instant::now() < expires {
            tokio::time::sleep(RELEASE_RETRY).await;
            if lease.try_release().await {
                return;
            }
        }
    });
}

/// Stops the renewal task when the lock is released or dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
