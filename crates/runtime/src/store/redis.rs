//! Token sets in Redis, shared by every replica of a service.

use super::record::{decode, encode};
use super::{Saved, StoreError, StoreLock, Stored, TokenStore};
use crate::refresh::BoxFuture;
use crate::token::TokenSet;
use redis::aio::MultiplexedConnection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Writes `data` as version `new` only if the stored version is still `expected` ('' for none).
const COMPARE_AND_SET: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'data', ARGV[3])
  return -1
end
if current == false then return 0 end
return tonumber(current)
";

/// Extends the lock only if this holder still owns it.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Deletes the lock only if this holder still owns it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Token sets in Redis under `<prefix>:<key>` (a hash of `version` and `data`), with the
/// refresh lock at `<prefix>:<key>:lock` (`SET NX PX`, renewed while held: it expires only
/// when its holder dies).
/// Writes are compare-and-set on the version, in one Lua script, so a replica holding a stale
/// set can never overwrite a newer one.
#[derive(Clone)]
pub struct RedisStore {
    connection: MultiplexedConnection,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn redis_error(what: &str, error: &redis::RedisError) -> StoreError {
    // Redis errors carry the server's message and kind, never our values.
    StoreError::new(format!("{what}: {:?} ({})", error.kind(), error.category()))
}

impl RedisStore {
    /// Connects to `url` (`redis://127.0.0.1:6379/`); keys start with `prefix`.
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| redis_error("invalid Redis URL", &e))?;
        let connection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| redis_error("cannot connect to Redis", &e))?;
        Ok(Self {
            connection,
            prefix: prefix.into(),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }
}

/// A value no other holder has: process, time and a counter.
fn lock_token() -> String {
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

impl TokenStore for RedisStore {
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let data: Option<Vec<u8>> = redis::cmd("HGET")
                .arg(self.key(key))
                .arg("data")
                .query_async(&mut connection)
                .await
                .map_err(|e| redis_error("cannot read the token set", &e))?;
            data.map(|bytes| decode(&bytes)).transpose()
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let version = expected.unwrap_or(0) + 1;
            let outcome: i64 = redis::Script::new(COMPARE_AND_SET)
                .key(self.key(key))
                .arg(expected.map(|v| v.to_string()).unwrap_or_default())
                .arg(version)
                .arg(encode(version, tokens))
                .invoke_async(&mut connection)
                .await
                .map_err(|e| redis_error("cannot write the token set", &e))?;
            Ok(match outcome {
                -1 => Saved::Written(version),
                0 => Saved::Conflict(None),
                current => Saved::Conflict(u64::try_from(current).ok()),
            })
        })
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let lock_key = format!("{}:lock", self.key(key));
            let token = lock_token();
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let taken: Option<String> = redis::cmd("SET")
                .arg(&lock_key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(millis)
                .query_async(&mut connection)
                .await
                .map_err(|e| redis_error("cannot take the refresh lock", &e))?;
            Ok(taken.map(|_| {
                // While held, the lock is renewed every third of its ttl, so a refresh that
                // outlasts the ttl (retries, slow providers) keeps it; a holder that dies stops
                // renewing and the lock expires.
                let renewal = tokio::spawn(renew(
                    connection.clone(),
                    lock_key.clone(),
                    token.clone(),
                    millis,
                ));
                let stop = AbortOnDrop(renewal);
                StoreLock::releasing(Box::pin(async move {
                    drop(stop);
                    // If this fails the lock expires by itself after `ttl`.
                    let _: Result<i64, _> = redis::Script::new(RELEASE)
                        .key(lock_key)
                        .arg(token)
                        .invoke_async(&mut connection)
                        .await;
                }))
            }))
        })
    }
}

/// Keeps extending a held lock until the holder stops the task (or loses the lock).
async fn renew(
    mut connection: MultiplexedConnection,
    lock_key: String,
    token: String,
    millis: u64,
) {
    let period = Duration::from_millis((millis / 3).max(1));
    loop {
        tokio::time::sleep(period).await;
        let renewed: Result<i64, _> = redis::Script::new(RENEW)
            .key(&lock_key)
            .arg(&token)
            .arg(millis)
            .invoke_async(&mut connection)
            .await;
        if !matches!(renewed, Ok(1)) {
            return;
        }
    }
}

/// Stops the renewal task when the lock is released or dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
