//! Token sets in Redis (one server, or a cluster), shared by every replica of a service.
//!
//! Connections heal themselves: a single server goes through the redis crate's connection
//! manager, a cluster through its cluster connection, both with the bounded timeouts below, so a
//! Redis restart, a failover or a dropped idle connection costs the calls made while Redis is
//! away (they fail with a retryable [`StoreError`]) and nothing after.

mod connection;
mod lease;
mod scripts;
mod token_store;

pub use connection::{RedisOptions, WaitForReplicas};

use super::Due;
use super::record::{decode, encode, from_millis, to_millis};
use super::{Reported, Saved, StoreError, StoreLock, Stored, TokenStore};
use crate::client::BoxFuture;
use crate::secret::Secret;
use crate::store::lease::lock_token;
use crate::token::TokenSet;
use connection::{Connection, glob_literal};
use lease::Lease;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use scripts::*;
use std::time::{Duration, SystemTime};

/// How long one command may take before it fails (and the connection is rebuilt).
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);
/// The longest `WAIT` allowed: it must answer before the command times out.
const MAX_WAIT: Duration = Duration::from_millis(800);
/// How often an index entry Redis did not take is tried again.
const INDEX_RETRY: Duration = Duration::from_millis(100);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// The longest pause between reconnection attempts: Redis back means the store back within
/// about this long.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// Token sets in Redis. Each credential has two keys that share one hash tag, so they live in
/// one cluster slot and one Lua script can touch both:
/// - `<prefix>:{<key>}:set`, a hash of `version`, `data`, `sending`/`sending_at` (the mark of
///   a refresh in flight), `dead`/`dead_at` and `expiring`/`expiring_at` (what was reported
///   of it), each mark naming the version it belongs to;
/// - `<prefix>:{<key>}:lock`, the refresh lock (`SET NX PX`, renewed while held).
///
/// `{`, `}` and `%` in the prefix and key are percent-encoded, so no credential's keys can be
/// another's. Writes are compare-and-set on the version, fenced by the writer's lock token, in
/// one Lua script: a replica holding a stale set, or a holder whose lock expired, can never
/// overwrite a newer set.
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    prefix: String,
    keys: std::sync::Arc<Keys>,
    wait: Option<WaitForReplicas>,
}

/// The names every call uses, made once per store rather than once per command.
struct Keys {
    /// The prefix, escaped.
    prefix: String,
    /// The keeper's index: every credential's refresh-token death, in milliseconds.
    due: String,
    /// The keepers' claims on the index (when each ends, and whose), on the index's slot (its
    /// name is their hash tag), under the prefix (an ACL of `~<prefix>:*` allows them).
    claims: String,
    claimers: String,
}

impl Keys {
    /// `<prefix>:{<key>}:<what>`: every key of a credential shares its hash tag.
    fn of(&self, key: &str, what: &str) -> String {
        format!("{}:{{{}}}:{what}", self.prefix, escape(key))
    }

    fn new(prefix: &str) -> std::sync::Arc<Self> {
        let prefix = escape(prefix);
        let due = format!("{prefix}:due");
        std::sync::Arc::new(Self {
            claims: format!("{prefix}:{{{due}}}:claims"),
            claimers: format!("{prefix}:{{{due}}}:claimers"),
            due,
            prefix,
        })
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn redis_error(what: &str, error: &redis::RedisError) -> StoreError {
    // Redis errors carry the server's message and kind, never our values (nor the URL, which
    // may hold a password).
    let kind = format!("{:?}", error.kind());
    let hint = if kind.contains("NoPerm") {
        ": the Redis user's ACL does not allow these keys or commands (allow `~<prefix>:*`, and the scripting, SET and WAIT commands)"
    } else if kind.contains("Auth") {
        ": the Redis user name or password was refused"
    } else {
        ""
    };
    StoreError::new(format!("{what}: {kind} ({}){hint}", error.category()))
}

/// Percent-encoded in keys: what would change a key's hash tag, `%` itself, and (as the
/// encoder always does) controls and non-ASCII bytes.
const KEY_PART: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(b'{').add(b'}').add(b'%');

fn escape(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, KEY_PART).to_string()
}

impl RedisStore {
    /// Connects to one server at `url` (`redis://127.0.0.1:6379/`, `rediss://user:pass@host/`
    /// for TLS and an ACL user); keys start with `prefix`. Commands time out after 1 s and
    /// connecting after 1 s; a lost connection is rebuilt, retrying at most 250 ms apart, so
    /// the store is back within about that of Redis.
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, StoreError> {
        Self::connect_with(url, prefix, &RedisOptions::default()).await
    }

    /// Like [`RedisStore::connect`], with certificates and replica acknowledgement.
    pub async fn connect_with(
        url: &str,
        prefix: impl Into<String>,
        options: &RedisOptions,
    ) -> Result<Self, StoreError> {
        options.check(url)?;
        options.check_wait()?;
        let prefix = prefix.into();
        let client = match options.certificates() {
            Some(certificates) => redis::Client::build_with_tls(url, certificates),
            None => redis::Client::open(url),
        }
        .map_err(|e| redis_error("invalid Redis URL or certificates", &e))?;
        // One attempt first, so that a wrong password, an untrusted certificate or a closed
        // port is an error now; the connection manager would retry it forever.
        let first = tokio::time::timeout(
            CONNECT_TIMEOUT + RESPONSE_TIMEOUT,
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| StoreError::new("cannot connect to Redis: no answer in time"))?;
        drop(first.map_err(|e| redis_error("cannot connect to Redis", &e))?);
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(MAX_RECONNECT_DELAY)
            .set_number_of_retries(usize::MAX);
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| redis_error("cannot connect to Redis", &e))?;
        Ok(Self {
            connection: Connection::Single(manager),
            keys: Keys::new(&prefix),
            prefix,
            wait: options.wait_for_replicas,
        })
    }

    /// Connects to a Redis Cluster through any of its `nodes` (`redis://127.0.0.1:7000/`).
    pub async fn connect_cluster(
        nodes: &[&str],
        prefix: impl Into<String>,
    ) -> Result<Self, StoreError> {
        Self::connect_cluster_with(nodes, prefix, &RedisOptions::default()).await
    }

    /// Like [`RedisStore::connect_cluster`], with certificates and replica acknowledgement.
    pub async fn connect_cluster_with(
        nodes: &[&str],
        prefix: impl Into<String>,
        options: &RedisOptions,
    ) -> Result<Self, StoreError> {
        let prefix = prefix.into();
        for node in nodes {
            options.check(node)?;
        }
        options.check_wait()?;
        let mut builder = redis::cluster::ClusterClient::builder(nodes.iter().copied())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(8)
            .max_retry_wait(u64::try_from(MAX_RECONNECT_DELAY.as_millis()).unwrap_or(250));
        if let Some(certificates) = options.certificates() {
            builder = builder.certs(certificates);
        }
        let client = builder
            .build()
            .map_err(|e| redis_error("invalid Redis Cluster nodes or certificates", &e))?;
        let connection = client
            .get_async_connection()
            .await
            .map_err(|e| redis_error("cannot connect to the Redis Cluster", &e))?;
        Ok(Self {
            connection: Connection::Cluster(connection),
            keys: Keys::new(&prefix),
            prefix,
            wait: options.wait_for_replicas,
        })
    }

    /// With [`RedisOptions::wait_for_replicas`]: an error unless enough replicas acknowledged
    /// the writes made so far (a mark or a set a failover could lose is not relied on).
    async fn replicated(&self, key: &str) -> Result<(), StoreError> {
        let Some(wait) = self.wait else {
            return Ok(());
        };
        let mut connection = self.connection.clone();
        let acknowledged = connection
            .wait(&self.set_key(key), wait)
            .await
            .map_err(|e| redis_error("cannot wait for the replicas", &e))?;
        if acknowledged < i64::from(wait.replicas) {
            return Err(StoreError::new(format!(
                "{acknowledged} of {} replicas acknowledged the write within {:?}: a failover could lose it",
                wait.replicas, wait.timeout
            )));
        }
        Ok(())
    }

    /// A write's outcome, once replicated where that is asked for.
    async fn durable(&self, key: &str, saved: Saved) -> Result<Saved, StoreError> {
        if matches!(saved, Saved::Written(_)) {
            self.replicated(key).await?;
        }
        Ok(saved)
    }

    /// The hash holding `key`'s token set.
    fn set_key(&self, key: &str) -> String {
        self.keys.of(key, "set")
    }

    /// The refresh lock of `key`.
    fn lock_key(&self, key: &str) -> String {
        self.keys.of(key, "lock")
    }

    /// The tombstone of `key`'s deleted set: its last version.
    fn gone_key(&self, key: &str) -> String {
        self.keys.of(key, "gone")
    }

    async fn mark(
        &self,
        key: &str,
        version: u64,
        lock: &StoreLock,
        sending: bool,
    ) -> Result<i64, StoreError> {
        let mut connection = self.connection.clone();
        script!(NOW_MS, FENCE, MARK)
            .key(self.set_key(key))
            .key(self.lock_key(key))
            .arg(lock.fence().unwrap_or_default())
            .arg(version)
            .arg(if sending { "1" } else { "" })
            .invoke_async(&mut connection)
            .await
            .map_err(|e| redis_error("cannot record the refresh in flight", &e))
    }
}

/// What a write script's code says: -1 written as `version`, -2 lock lost, 0 nothing
/// stored, else the stored version that won.
fn saved_of(code: i64, version: u64) -> Saved {
    match code {
        -1 => Saved::Written(version),
        -2 => Saved::LockLost,
        0 => Saved::Conflict(None),
        current => Saved::Conflict(u64::try_from(current).ok()),
    }
}

/// A mark's time as a script argument: milliseconds, or '' for none.
fn millis_or_empty(at: Option<SystemTime>) -> String {
    at.map(|at| to_millis(at).to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_credentials_never_meet() {
        let store_key = |prefix: &str, key: &str| {
            let keys = Keys::new(prefix);
            (keys.of(key, "set"), keys.of(key, "lock"))
        };
        let (x_set, x_lock) = store_key("p", "x");
        let (y_set, y_lock) = store_key("p", "x:lock");
        let all = [&x_set, &x_lock, &y_set, &y_lock];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // A key with braces cannot move the hash tag.
        let (set, lock) = store_key("p", "a}b{c");
        assert_eq!(set, "p:{a%7Db%7Bc}:set");
        assert_eq!(lock, "p:{a%7Db%7Bc}:lock");
        // Nor can a prefix with them, in the credential's keys or the index's.
        let keys = Keys::new("a{b}");
        assert_eq!(keys.of("k", "set"), "a%7Bb%7D:{k}:set");
        assert_eq!(keys.due, "a%7Bb%7D:due");
        assert_eq!(keys.claims, "a%7Bb%7D:{a%7Bb%7D:due}:claims");
    }
}
