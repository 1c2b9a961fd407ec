//! Moving connections from one store to another (files to Redis, Redis to PostgreSQL, into an
//! [`EncryptedStore`](super::EncryptedStore)) while a fleet keeps running on the source.

use super::{Saved, StoreError, StoreLock, TokenStore};
use std::time::Duration;

/// What [`copy_connections`] did, connection by connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    /// Written to the target with their version and marks.
    pub copied: usize,
    /// The target already had this version or a newer one (a copy run before, or a fleet
    /// already writing there): left as it is.
    pub already_there: usize,
    /// Removed at the target: left removed.
    pub removed_at_target: usize,
    /// Listed by the source but gone before they were copied (removed meanwhile).
    pub gone: usize,
}

/// Copies every connection under `prefix` from `from` to `to`, each with its version and
/// marks, under the source's lock (so no refresh of the running fleet spends its refresh
/// token between the read and the write) and the target's. Never overwrites a newer set nor
/// a removal at the target, so it can be run again after an interruption: what was copied is
/// found there and skipped. `lock_ttl` bounds each lock (as the manager's `lock_ttl`); a
/// connection whose lock stays taken for that long is an error, to run again.
pub async fn copy_connections<F: TokenStore, T: TokenStore>(
    from: &F,
    to: &T,
    prefix: &str,
    lock_ttl: Duration,
) -> Result<Copied, StoreError> {
    let keys = from
        .list(prefix)
        .await?
        .ok_or_else(|| StoreError::new("the source store cannot list its connections"))?;
    let mut done = Copied::default();
    for key in keys {
        let source_lock = lock(from, &key, lock_ttl).await?;
        let result = copy_one(from, to, &key, &source_lock, lock_ttl).await;
        source_lock.release().await;
        match result? {
            Outcome::Copied => done.copied += 1,
            Outcome::AlreadyThere => done.already_there += 1,
            Outcome::RemovedAtTarget => done.removed_at_target += 1,
            Outcome::Gone => done.gone += 1,
        }
    }
    Ok(done)
}

enum Outcome {
    Copied,
    AlreadyThere,
    RemovedAtTarget,
    Gone,
}

async fn copy_one<F: TokenStore, T: TokenStore>(
    from: &F,
    to: &T,
    key: &str,
    source_lock: &StoreLock,
    lock_ttl: Duration,
) -> Result<Outcome, StoreError> {
    let Some(set) = from.load(key).await? else {
        return Ok(Outcome::Gone);
    };
    if !source_lock.confirm().await {
        return Err(StoreError::new(format!(
            "lost the source's lock of {key:?} while copying it: run the copy again"
        )));
    }
    let target_lock = lock(to, key, lock_ttl).await?;
    let written = to.restore(key, &set, &target_lock).await;
    target_lock.release().await;
    Ok(match written? {
        Saved::Written(_) => Outcome::Copied,
        Saved::Conflict(Some(version)) if version >= set.version => {
            if to.load(key).await?.is_some() {
                Outcome::AlreadyThere
            } else {
                Outcome::RemovedAtTarget
            }
        }
        Saved::Conflict(_) => Outcome::RemovedAtTarget,
        Saved::LockLost => {
            return Err(StoreError::new(format!(
                "lost the target's lock of {key:?} while copying it: run the copy again"
            )));
        }
    })
}

/// The lock of `key`, waiting (up to `ttl`) while a refresh holds it.
async fn lock<S: TokenStore>(store: &S, key: &str, ttl: Duration) -> Result<StoreLock, StoreError> {
    let deadline = tokio::time::Instant::now() + ttl;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(lock) = store.try_lock(key, ttl).await? {
            return Ok(lock);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::new(format!(
                "the lock of {key:?} stayed taken: run the copy again"
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
