//! The store contract on PostgreSQL: each operation one statement (or, to tell a conflict
//! from a lost lock, one more read), retried where the database reports a serialization
//! failure or a deadlock.

use super::lease::Lease;
use super::{PostgresStore, pg_error, retryable, sql};
use crate::client::BoxFuture;
use crate::store::lease::{self, lock_token};
use crate::store::record::{decode, encode, from_millis, to_millis};
use crate::store::{
    ClaimedDue, Due, DueAfter, DueClaim, Reported, Saved, StoreError, StoreLock, Stored, TokenStore,
};
use crate::token::TokenSet;
use std::time::{Duration, SystemTime};
use tokio_postgres::types::ToSql;

/// How often a statement that hit a serialization failure or deadlock is run again.
const RETRIES: usize = 3;

fn millis(at: Option<SystemTime>) -> Option<i64> {
    at.map(|t| i64::try_from(to_millis(t)).unwrap_or(i64::MAX))
}

fn time(ms: Option<i64>) -> Option<SystemTime> {
    ms.and_then(|ms| u64::try_from(ms).ok()).map(from_millis)
}

/// The set of the columns [`sql::LOAD`] reads, from column `at` of `row` on.
fn stored_of(row: &tokio_postgres::Row, at: usize) -> Result<Stored, StoreError> {
    let data: Vec<u8> = row.get(at + 1);
    let mut stored = decode(&data)?;
    stored.version = u64::try_from(row.get::<_, i64>(at)).unwrap_or(0);
    stored.sending = time(row.get(at + 2));
    stored.dead = time(row.get(at + 3));
    stored.expiring = time(row.get(at + 4));
    stored.announced = time(row.get(at + 5));
    stored.read_at = time(row.get(at + 6));
    Ok(stored)
}

/// When the set's refresh token dies, for the keeper's index (none for a dead set).
fn dies(tokens: &TokenSet) -> Option<i64> {
    millis(tokens.refresh_expires_at)
}

impl PostgresStore {
    /// Runs a page statement of the keeper's index: `$1`–`$5` the window's prefix, end, start
    /// (time and key) and limit, as [`sql::DUE`] reads them, then `extra`.
    async fn page(
        &self,
        what: &str,
        statement: &str,
        (prefix, until, after, limit): (&str, SystemTime, DueAfter<'_>, usize),
        extra: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let until = millis(Some(until));
        let after_at = after.and_then(|(at, _)| millis(Some(at)));
        let after_key = after.map(|(_, key)| key);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&prefix, &until, &after_at, &after_key, &limit];
        params.extend_from_slice(extra);
        self.rows(what, statement, &params).await
    }

    /// The rows `statement` returns, retried on a serialization failure or deadlock.
    async fn rows(
        &self,
        what: &str,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let mut attempt = 0;
        loop {
            match self.query(statement, params).await? {
                Ok(rows) => return Ok(rows),
                Err(e) if retryable(&e) && attempt < RETRIES => attempt += 1,
                Err(e) => return Err(pg_error(what, &e)),
            }
        }
    }

    /// A write that changed nothing: a lost lock, or the stored version that won.
    async fn not_written(&self, key: &str, fence: Option<&str>) -> Result<Saved, StoreError> {
        if let Some(fence) = fence {
            let holds = self
                .rows("cannot check the refresh lock", sql::HOLDS, &[&key, &fence])
                .await?;
            if !holds.first().is_some_and(|row| row.get::<_, bool>(0)) {
                return Ok(Saved::LockLost);
            }
        }
        let rows = self
            .rows("cannot read the stored version", sql::CURRENT, &[&key])
            .await?;
        Ok(match rows.first() {
            Some(row) => {
                let version: i64 = row.get(0);
                let removed: bool = row.get(1);
                let version = u64::try_from(version).ok();
                // Over a removal a save answers "nothing stored"; a restore, the removed one.
                Saved::Conflict(if removed { None } else { version })
            }
            None => Saved::Conflict(None),
        })
    }

    async fn write(
        &self,
        key: &str,
        tokens: &TokenSet,
        expected: Option<u64>,
        lock: Option<&StoreLock>,
        release: bool,
    ) -> Result<Saved, StoreError> {
        let what = "cannot save the token set";
        let fence = lock.and_then(StoreLock::fence);
        let rows = match expected {
            Some(version) => {
                let version = i64::try_from(version).unwrap_or(i64::MAX);
                let data = encode(u64::try_from(version + 1).unwrap_or(0), tokens);
                let params: [&(dyn ToSql + Sync); 5] =
                    [&key, &fence, &version, &data, &dies(tokens)];
                let statement = if release {
                    sql::SAVE_OVER_RELEASING
                } else {
                    sql::SAVE_OVER
                };
                self.rows(what, statement, &params).await?
            }
            None => {
                let data = encode(0, tokens);
                let params: [&(dyn ToSql + Sync); 4] = [&key, &fence, &data, &dies(tokens)];
                let statement = if release {
                    sql::SAVE_NEW_RELEASING
                } else {
                    sql::SAVE_NEW
                };
                self.rows(what, statement, &params).await?
            }
        };
        match rows.first() {
            Some(row) => {
                if release && let Some(lock) = lock {
                    lock.released_by_store();
                }
                Ok(Saved::Written(
                    u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
                ))
            }
            None => self.not_written(key, fence).await,
        }
    }

    /// Takes the lock of `key` for `ttl`, with its set where `loading` asks for it.
    async fn lock(
        &self,
        key: &str,
        ttl: Duration,
        loading: bool,
    ) -> Result<Option<StoreLock>, StoreError> {
        let lease = Lease {
            store: self.clone(),
            key: key.to_owned(),
            fence: lock_token(),
            ttl: ttl.max(Duration::from_millis(1)),
        };
        let params: [&(dyn ToSql + Sync); 3] = [&lease.key, &lease.fence, &lease.ttl_ms()];
        let what = "cannot take the refresh lock";
        let mut attempt = 0;
        let (rows, set) = loop {
            let (taken, loaded) = if loading {
                let key: [&(dyn ToSql + Sync); 1] = [&key];
                match self
                    .query_pair((sql::TRY_LOCK, &params), (sql::LOAD, &key))
                    .await?
                {
                    Ok((taken, loaded)) => (Ok(taken), Some(loaded)),
                    Err(e) => (Err(e), None),
                }
            } else {
                (self.query(sql::TRY_LOCK, &params).await?, None)
            };
            match taken {
                Ok(rows) => break (rows, loaded.and_then(Result::ok)),
                Err(e) if retryable(&e) && attempt < RETRIES => attempt += 1,
                Err(e) => {
                    // The answer was lost, not necessarily the statement: this fence is ours
                    // alone, so releasing it (until that lands) frees only such a lock.
                    tokio::spawn(lease::release(lease));
                    return Err(pg_error(what, &e));
                }
            }
        };
        if !rows.first().is_some_and(|row| row.get::<_, bool>(0)) {
            return Ok(None);
        }
        // Read after the lock was taken (the next statement on the same connection); where
        // it failed or does not decode, the holder's own load says why.
        let set = set
            .as_ref()
            .and_then(|rows| rows.first())
            .and_then(|row| stored_of(row, 0).ok());
        let fence = lease.fence.clone();
        Ok(Some(lease::held(lease, fence).with_set(set)))
    }

    /// Runs a fenced statement that answers a row when it changed something.
    async fn fenced(
        &self,
        what: &str,
        statement: &str,
        key: &str,
        lock: &StoreLock,
        version: u64,
    ) -> Result<bool, StoreError> {
        let version = i64::try_from(version).unwrap_or(i64::MAX);
        let fence = lock.fence();
        let rows = self
            .rows(what, statement, &[&key, &fence, &version])
            .await?;
        Ok(!rows.is_empty())
    }
}

impl TokenStore for PostgresStore {
    /// Woken by the `NOTIFY` of a release or a save of `key` whose lock a waiter found taken
    /// (see `listen` and `sql::TRY_LOCK`).
    fn watch(&self, key: &str) -> crate::store::ChangeWatch {
        match &self.listener {
            Some(listener) => listener.watch(key),
            None => crate::store::ChangeWatch::polling(),
        }
    }

    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .rows("cannot load the token set", sql::LOAD, &[&key])
                .await?;
            rows.first().map(|row| stored_of(row, 0)).transpose()
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(self.write(key, tokens, expected, None, false))
    }

    fn save_fenced<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(self.write(key, tokens, expected, Some(lock), false))
    }

    /// One statement: the write and, where it lands, the lease's release.
    fn save_releasing<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(self.write(key, tokens, expected, Some(lock), true))
    }

    fn mark_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let what = "cannot record the refresh in flight";
        Box::pin(self.fenced(what, sql::MARK_SENDING, key, lock, version))
    }

    fn restore<'a>(
        &'a self,
        key: &'a str,
        set: &'a Stored,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(async move {
            let version = i64::try_from(set.version).unwrap_or(i64::MAX);
            let data = encode(set.version, &set.tokens);
            let index = if set.dead.is_some() {
                None
            } else {
                dies(&set.tokens)
            };
            let (sending, dead) = (millis(set.sending), millis(set.dead));
            let (expiring, announced) = (millis(set.expiring), millis(set.announced));
            let fence = lock.fence();
            let params: [&(dyn ToSql + Sync); 9] = [
                &key, &fence, &version, &data, &sending, &dead, &expiring, &announced, &index,
            ];
            let rows = self
                .rows("cannot restore the token set", sql::RESTORE, &params)
                .await?;
            match rows.first() {
                Some(_) => Ok(Saved::Written(set.version)),
                None => match self.not_written(key, fence).await? {
                    // A removal answers with the removed version.
                    Saved::Conflict(None) => {
                        let rows = self
                            .rows("cannot read the stored version", sql::CURRENT, &[&key])
                            .await?;
                        let removed = rows.first().map(|r| r.get::<_, i64>(0));
                        Ok(Saved::Conflict(removed.and_then(|v| u64::try_from(v).ok())))
                    }
                    other => Ok(other),
                },
            }
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(async move {
            let fence = lock.fence();
            let rows = self
                .rows("cannot delete the token set", sql::DELETE, &[&key, &fence])
                .await?;
            if !rows.is_empty() {
                return Ok(Saved::Written(0));
            }
            Ok(match self.not_written(key, fence).await? {
                Saved::LockLost => Saved::LockLost,
                _ => Saved::Written(0),
            })
        })
    }

    fn mark_reported<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        what: Reported,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let statement = match what {
            Reported::Dead => sql::mark_reported("dead_ms", true),
            Reported::Expiring => sql::mark_reported("expiring_ms", false),
            Reported::Announced => sql::mark_reported("announced_ms", false),
        };
        Box::pin(async move {
            let what = "cannot record what was reported";
            self.fenced(what, &statement, key, lock, version).await
        })
    }

    fn clear_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let what = "cannot clear the refresh in flight";
        Box::pin(async move {
            self.fenced(what, sql::CLEAR_SENDING, key, lock, version)
                .await
                .map(|_| ())
        })
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        Box::pin(self.lock(key, ttl, false))
    }

    /// One round trip: the lock, and the set read right after it on the same connection.
    fn try_lock_loading<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        Box::pin(self.lock(key, ttl, true))
    }

    fn due<'a>(
        &'a self,
        prefix: &'a str,
        until: SystemTime,
        after: DueAfter<'a>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Due>, StoreError>> {
        Box::pin(async move {
            let window = (prefix, until, after, limit);
            let rows = self
                .page("cannot read the keeper's index", sql::DUE, window, &[])
                .await?;
            Ok(Some(
                rows.iter()
                    .filter_map(|row| Some((row.get(0), time(row.get(1))?)))
                    .collect(),
            ))
        })
    }

    /// One statement: the page read and its free entries claimed (`tokenkit_claims`).
    fn claim_due<'a>(
        &'a self,
        prefix: &'a str,
        until: SystemTime,
        after: DueAfter<'a>,
        limit: usize,
        claim: DueClaim<'a>,
    ) -> BoxFuture<'a, Result<Option<ClaimedDue>, StoreError>> {
        Box::pin(async move {
            let lease = i64::try_from(claim.lease.as_millis()).unwrap_or(i64::MAX);
            let window = (prefix, until, after, limit);
            let what = "cannot claim the keeper's due entries";
            let rows = self
                .page(what, sql::CLAIM_DUE, window, &[&claim.owner, &lease])
                .await?;
            let page: Vec<(String, SystemTime, bool)> = rows
                .iter()
                .filter_map(|row| Some((row.get(0), time(row.get(1))?, row.get(2))))
                .collect();
            let next = page
                .last()
                .filter(|_| rows.len() >= limit)
                .map(|(key, at, _)| (*at, key.clone()));
            let claimed = page
                .into_iter()
                .filter_map(|(key, at, mine)| mine.then_some((key, at)))
                .collect();
            Ok(Some(ClaimedDue { claimed, next }))
        })
    }

    fn release_claims<'a>(
        &'a self,
        keys: &'a [String],
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.rows(
                "cannot give the keeper's claims up",
                sql::RELEASE_CLAIMS,
                &[&keys, &owner],
            )
            .await
            .map(drop)
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .rows("cannot list the token sets", sql::LIST, &[&prefix])
                .await?;
            Ok(Some(rows.iter().map(|row| row.get(0)).collect()))
        })
    }
}
