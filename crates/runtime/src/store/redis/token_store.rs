//! The store contract on Redis: loads, fenced compare-and-set writes, restores, deletes,
//! marks, the keeper's index and the lock, each one script where it touches several keys.

use super::*;

/// A mark's field: the version it names, or its time (ms).
type Mark = Option<u64>;
/// The set's fields as [`LOAD`] reads them: the data, then each mark's version and time.
type Fields = (
    Option<Vec<u8>>,
    Mark,
    Mark,
    Mark,
    Mark,
    Mark,
    Mark,
    Mark,
    Mark,
);

/// The set of `fields`, read at Redis's `now` (ms).
fn stored_of(fields: Fields, now: u64) -> Result<Option<Stored>, StoreError> {
    let (data, sending, sending_at, dead, dead_at, expiring, expiring_at, announced, announced_at) =
        fields;
    let Some(bytes) = data else { return Ok(None) };
    let mut stored = decode(&bytes)?;
    // A mark names its version: one of another version is stale.
    let of_this = |version: Mark, at: Mark| {
        at.filter(|_| version == Some(stored.version))
            .map(from_millis)
    };
    stored.sending = of_this(sending, sending_at);
    stored.dead = of_this(dead, dead_at);
    stored.expiring = of_this(expiring, expiring_at);
    stored.announced = of_this(announced, announced_at);
    stored.read_at = Some(from_millis(now));
    Ok(Some(stored))
}

impl TokenStore for RedisStore {
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let (fields, now): (Fields, u64) = script!(NOW_MS, LOAD)
                .key(self.set_key(key))
                .invoke_async(&mut connection)
                .await
                .map_err(|e| redis_error("cannot read the token set", &e))?;
            stored_of(fields, now)
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(self.save_with_fence(key, tokens, expected, None, false))
    }

    fn save_fenced<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(self.save_with_fence(key, tokens, expected, Some(lock), false))
    }

    /// One script: the write and, where it lands, the lock's release; unless the write must
    /// reach replicas first (`WAIT`), where the lock is kept until they have it.
    fn save_releasing<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        let release = self.wait.is_none();
        Box::pin(self.save_with_fence(key, tokens, expected, Some(lock), release))
    }

    fn restore<'a>(
        &'a self,
        key: &'a str,
        set: &'a Stored,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(async move {
            let script = script!(INDEX, FENCE, RESTORE);
            let mut invocation = script.prepare_invoke();
            let indexed = Some(&set.tokens).filter(|_| set.dead.is_none());
            invocation
                .key(self.set_key(key))
                .key(self.lock_key(key))
                .key(self.gone_key(key))
                .arg(lock.fence().unwrap_or_default())
                .arg(set.version)
                .arg(encode(set.version, &set.tokens))
                .arg(millis_or_empty(set.sending))
                .arg(millis_or_empty(set.dead))
                .arg(millis_or_empty(set.expiring))
                .arg(millis_or_empty(set.announced))
                .arg(millis_or_empty(indexed.and_then(|t| t.refresh_expires_at)))
                .arg(key);
            self.due_in_script(&mut invocation);
            let saved = self
                .write(key, invocation, "cannot restore the token set", set.version)
                .await?;
            if matches!(saved, Saved::Written(_)) {
                self.index(key, indexed).await;
            }
            Ok(saved)
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(async move {
            let script = script!(INDEX, FENCE, DELETE);
            let mut invocation = script.prepare_invoke();
            invocation
                .key(self.set_key(key))
                .key(self.lock_key(key))
                .key(self.gone_key(key))
                .arg(lock.fence().unwrap_or_default())
                .arg(key);
            self.due_in_script(&mut invocation);
            let saved = self
                .write(key, invocation, "cannot delete the token set", 0)
                .await?;
            if matches!(saved, Saved::Written(_)) {
                self.index(key, None).await;
            }
            Ok(saved)
        })
    }

    /// From the `<prefix>:due` sorted set the writes keep (its members of one score are in
    /// byte order, as keys compare).
    fn due<'a>(
        &'a self,
        prefix: &'a str,
        until: std::time::SystemTime,
        after: crate::store::DueAfter<'a>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Due>, StoreError>> {
        Box::pin(async move {
            // One index for the whole store: page through it from the cursor's time until
            // `limit` keys of `prefix` after the cursor.
            let page = limit.clamp(1, 1000);
            let after = after.map(|(at, key)| (to_millis(at), key));
            let min = after.map_or_else(|| "-inf".to_owned(), |(ms, _)| ms.to_string());
            let mut out = Vec::new();
            let mut offset = 0;
            let mut connection = self.connection.clone();
            while out.len() < limit {
                let mut cmd = redis::cmd("ZRANGEBYSCORE");
                cmd.arg(&self.keys.due)
                    .arg(&min)
                    .arg(to_millis(until))
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(offset)
                    .arg(page);
                let found: Vec<(String, u64)> = cmd
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| redis_error("cannot read the keeper's index", &e))?;
                let exhausted = found.len() < page;
                offset += found.len();
                out.extend(
                    found
                        .into_iter()
                        .filter(|(k, ms)| {
                            k.starts_with(prefix)
                                && after.is_none_or(|(t, key)| (*ms, k.as_str()) > (t, key))
                        })
                        .map(|(k, ms)| (k, from_millis(ms))),
                );
                if exhausted {
                    break;
                }
            }
            out.truncate(limit);
            Ok(Some(out))
        })
    }

    /// One script on the index's slot: the page read and its free entries claimed.
    fn claim_due<'a>(
        &'a self,
        prefix: &'a str,
        until: std::time::SystemTime,
        after: crate::store::DueAfter<'a>,
        limit: usize,
        claim: crate::store::DueClaim<'a>,
    ) -> BoxFuture<'a, Result<Option<crate::store::ClaimedDue>, StoreError>> {
        Box::pin(async move {
            let after = after.map(|(at, key)| (to_millis(at), key));
            let lease = u64::try_from(claim.lease.as_millis()).unwrap_or(u64::MAX);
            let (next_key, next_ms, claimed): (String, String, Vec<(String, u64)>) =
                script!(NOW_MS, CLAIM_DUE)
                    .key(&self.keys.due)
                    .key(&self.keys.claims)
                    .key(&self.keys.claimers)
                    .arg(prefix)
                    .arg(to_millis(until))
                    .arg(after.map_or_else(String::new, |(ms, _)| ms.to_string()))
                    .arg(after.map_or("", |(_, key)| key))
                    .arg(limit.clamp(1, 1000))
                    .arg(claim.owner)
                    .arg(lease.max(1))
                    .invoke_async(&mut self.connection.clone())
                    .await
                    .map_err(|e| redis_error("cannot claim the keeper's due entries", &e))?;
            let next = next_ms.parse().ok().map(|ms| (from_millis(ms), next_key));
            Ok(Some(crate::store::ClaimedDue {
                claimed: claimed
                    .into_iter()
                    .map(|(key, ms)| (key, from_millis(ms)))
                    .collect(),
                next,
            }))
        })
    }

    fn release_claims<'a>(
        &'a self,
        keys: &'a [String],
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(());
            }
            script!(RELEASE_CLAIMS)
                .key(&self.keys.claims)
                .key(&self.keys.claimers)
                .arg(owner)
                .arg(keys)
                .invoke_async::<Value>(&mut self.connection.clone())
                .await
                .map(drop)
                .map_err(|e| redis_error("cannot give the keeper's claims up", &e))
        })
    }

    fn mark_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let marked = self.mark(key, version, lock, true).await? == 1;
            if marked {
                self.replicated(key).await?;
            }
            Ok(marked)
        })
    }

    /// A dead set also leaves the keeper's index: nobody is to renew it.
    fn mark_reported<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        what: Reported,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let script = script!(INDEX, NOW_MS, FENCE, MARK_REPORTED);
            let mut invocation = script.prepare_invoke();
            invocation
                .key(self.set_key(key))
                .key(self.lock_key(key))
                .arg(lock.fence().unwrap_or_default())
                .arg(version)
                .arg(to_millis(SystemTime::now()))
                .arg(what.as_str())
                .arg(key);
            self.due_in_script(&mut invocation);
            let marked: i64 = invocation
                .invoke_async(&mut connection)
                .await
                .map_err(|e| redis_error("cannot mark what was reported of the token set", &e))?;
            if marked != 1 {
                return Ok(false);
            }
            if what == Reported::Dead {
                self.index(key, None).await;
            }
            self.replicated(key).await?;
            Ok(true)
        })
    }

    fn clear_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.mark(key, version, lock, false).await?;
            Ok(())
        })
    }

    /// The keys of the `<prefix>:{<key>}:set` hashes, by `SCAN` on the server or on every
    /// master of a cluster.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, StoreError>> {
        Box::pin(async move {
            let head = format!("{}:{{", self.keys.prefix);
            let pattern = format!(
                "{}{}*}}:set",
                glob_literal(&head),
                glob_literal(&escape(prefix))
            );
            let mut connection = self.connection.clone();
            let found = connection
                .scan(&pattern)
                .await
                .map_err(|e| redis_error("cannot list the stored sets", &e))?;
            let keys = found
                .iter()
                .filter_map(|k| k.strip_prefix(&head)?.strip_suffix("}:set"))
                .filter_map(|k| percent_encoding::percent_decode_str(k).decode_utf8().ok())
                .map(|k| k.into_owned())
                .filter(|k| k.starts_with(prefix))
                .collect();
            Ok(Some(keys))
        })
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        Box::pin(self.lock(key, ttl, false))
    }

    /// One script: the lock and, where it is taken, the set.
    fn try_lock_loading<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        Box::pin(self.lock(key, ttl, true))
    }
}

impl RedisStore {
    /// Takes the lock of `key` for `ttl` (`SET NX PX`), with its set where `loading` asks.
    async fn lock(
        &self,
        key: &str,
        ttl: Duration,
        loading: bool,
    ) -> Result<Option<StoreLock>, StoreError> {
        let mut connection = self.connection.clone();
        let lock_key = self.lock_key(key);
        let token = lock_token();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let taken: Result<Option<Option<(Fields, u64)>>, _> = if loading {
            script!(NOW_MS, LOCK_LOADING)
                .key(&lock_key)
                .key(self.set_key(key))
                .arg(&token)
                .arg(millis)
                .invoke_async(&mut connection)
                .await
                .map(|read: Option<(Fields, u64)>| read.map(Some))
        } else {
            redis::cmd("SET")
                .arg(&lock_key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(millis)
                .query_async(&mut connection)
                .await
                .map(|ok: Option<String>| ok.map(|_| None))
        };
        let lease = Lease {
            connection,
            lock_key,
            token: token.clone(),
            millis,
        };
        let read = match taken {
            Ok(Some(read)) => read,
            Ok(None) => return Ok(None),
            Err(e) => {
                // The answer was lost, not necessarily the command: Redis may have taken
                // the lock for us (and kept it in its append-only file across a crash),
                // and nobody would release it for its whole ttl. This token is ours
                // alone, so releasing it (until it lands) frees only such a lock.
                tokio::spawn(crate::store::lease::release(lease));
                return Err(redis_error("cannot take the refresh lock", &e));
            }
        };
        // Where the set does not decode, the holder's own load says why.
        let set = read.and_then(|(fields, now)| stored_of(fields, now).ok().flatten());
        Ok(Some(crate::store::lease::held(lease, token).with_set(set)))
    }

    /// Runs a fenced write script: -1 written (as `version`, and replicated where that is
    /// asked for), -2 lock lost, 0 nothing stored, else the stored version that won.
    async fn write(
        &self,
        key: &str,
        invocation: redis::ScriptInvocation<'_>,
        what: &str,
        version: u64,
    ) -> Result<Saved, StoreError> {
        let outcome = self.run_write(invocation, what).await?;
        self.durable(key, saved_of(outcome, version)).await
    }

    /// Runs a write script and returns its code.
    async fn run_write(
        &self,
        invocation: redis::ScriptInvocation<'_>,
        what: &str,
    ) -> Result<i64, StoreError> {
        let mut connection = self.connection.clone();
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|e| redis_error(what, &e))
    }

    async fn save_with_fence(
        &self,
        key: &str,
        tokens: &TokenSet,
        expected: Option<u64>,
        lock: Option<&StoreLock>,
        release: bool,
    ) -> Result<Saved, StoreError> {
        let fence = lock.and_then(StoreLock::fence);
        let release = release && fence.is_some();
        let mut version = expected.unwrap_or(0) + 1;
        let script = script!(INDEX, FENCE, COMPARE_AND_SET);
        let saved = loop {
            let mut invocation = script.prepare_invoke();
            invocation
                .key(self.set_key(key))
                .key(self.lock_key(key))
                .key(self.gone_key(key))
                .arg(fence.unwrap_or_default())
                .arg(expected.map(|v| v.to_string()).unwrap_or_default())
                .arg(version)
                .arg(encode(version, tokens))
                .arg(millis_or_empty(tokens.refresh_expires_at))
                .arg(key)
                .arg(if release { "1" } else { "" });
            self.due_in_script(&mut invocation);
            match self
                .run_write(invocation, "cannot write the token set")
                .await?
            {
                // A first set over a removal: numbered after the removed one.
                -3 => {
                    let mut connection = self.connection.clone();
                    let gone: Option<u64> = redis::cmd("GET")
                        .arg(self.gone_key(key))
                        .query_async(&mut connection)
                        .await
                        .map_err(|e| redis_error("cannot read the removal of the token set", &e))?;
                    version = version.max(gone.unwrap_or(0) + 1);
                }
                code => break self.durable(key, saved_of(code, version)).await?,
            }
        };
        if matches!(saved, Saved::Written(_)) {
            if release && let Some(lock) = lock {
                lock.released_by_store();
            }
            self.index(key, Some(tokens)).await;
        }
        Ok(saved)
    }

    /// On a single server the write scripts keep the index themselves: the due key and its
    /// claims' go last.
    fn due_in_script(&self, invocation: &mut redis::ScriptInvocation<'_>) {
        if matches!(self.connection, Connection::Single(_)) {
            self.index_keys(invocation);
        }
    }

    /// The keeper's index and its claims' keys, in the order [`INDEX`] reads them.
    fn index_keys(&self, invocation: &mut redis::ScriptInvocation<'_>) {
        invocation
            .key(&self.keys.due)
            .key(&self.keys.claims)
            .key(&self.keys.claimers);
    }

    /// In a cluster (where the index is on another slot than the set), records when `key`'s
    /// refresh token dies (or that it has none to keep alive) after its set was written, as a
    /// command of its own; an entry Redis does not take is retried in the background for a
    /// minute (a first set whose entry never landed would be invisible to the keeper). A crash
    /// between the two leaves the older, earlier time, which only makes the keeper look
    /// sooner. On a single server the write's own script did it.
    async fn index(&self, key: &str, tokens: Option<&TokenSet>) {
        if matches!(self.connection, Connection::Single(_)) {
            return;
        }
        let dies = tokens.and_then(|t| t.refresh_expires_at);
        let mut connection = self.connection.clone();
        let Some(at) = dies else {
            // Out of the index, and its claim with it (on the index's slot).
            let mut invocation = script!(INDEX, REINDEX).prepare_invoke();
            self.index_keys(&mut invocation);
            let removed = invocation
                .arg("")
                .arg(key)
                .invoke_async::<Value>(&mut connection)
                .await;
            // Not retried: a late removal could take a newer set's entry away, while a stale
            // entry costs the keeper one look.
            if let Err(e) = removed {
                tracing::warn!(error = %redis_error("cannot take the credential out of the keeper's index", &e), "the keeper may look at it once more");
            }
            return;
        };
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(&self.keys.due).arg(to_millis(at)).arg(key);
        if let Err(e) = cmd.query_async::<Value>(&mut connection).await {
            tracing::warn!(error = %redis_error("cannot index the refresh token's expiry", &e), "the keeper may find this credential late");
            tokio::spawn(async move {
                for _ in 0..600 {
                    tokio::time::sleep(INDEX_RETRY).await;
                    if cmd.query_async::<Value>(&mut connection).await.is_ok() {
                        return;
                    }
                }
                tracing::error!(
                    "the keeper's index never took this credential's expiry; it is found by its next write"
                );
            });
        }
    }
}
