//! A held lock: its row renewed in the background while held, confirmed before each attempt,
//! deleted at the end (and again, in the background, if the database did not answer).

use super::{PostgresStore, sql};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a release the database did not answer is tried again.
const RELEASE_RETRY: Duration = Duration::from_millis(100);

/// What renewing, confirming and releasing one lease need.
#[derive(Clone)]
pub(super) struct Lease {
    pub(super) store: PostgresStore,
    pub(super) key: String,
    pub(super) fence: String,
    pub(super) ttl: Duration,
}

impl Lease {
    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// Extends the lease: `Some(true)` while held, `Some(false)` once lost, `None` when the
    /// database did not answer.
    pub(super) async fn extend(&self) -> Option<bool> {
        let client = self.store.client().await.ok()?;
        let rows = client
            .query(sql::EXTEND, &[&self.key, &self.fence, &self.ttl_ms()])
            .await
            .ok()?;
        Some(!rows.is_empty())
    }

    /// Renews every third of the ttl while held; marks `lost` when it cannot any more.
    pub(super) async fn renew(self, lost: Arc<AtomicBool>) {
        let period = self.ttl / 3;
        let retry = (self.ttl / 20).max(Duration::from_millis(5));
        let mut held_until = Instant::now() + self.ttl;
        loop {
            tokio::time::sleep(period).await;
            loop {
                let asked = Instant::now();
                match self.extend().await {
                    Some(true) => {
                        held_until = asked + self.ttl;
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
    pub(super) async fn release(self) {
        if self.try_release().await {
            return;
        }
        let expires = Instant::now() + self.ttl;
        tokio::spawn(async move {
            while Instant::now() < expires {
                tokio::time::sleep(RELEASE_RETRY).await;
                if self.try_release().await {
                    return;
                }
            }
        });
    }

    async fn try_release(&self) -> bool {
        let Ok(client) = self.store.client().await else {
            return false;
        };
        client
            .execute(sql::RELEASE, &[&self.key, &self.fence])
            .await
            .is_ok()
    }
}

/// Stops the renewal task when the lock is released or dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
