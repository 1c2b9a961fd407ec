//! Token sets in Redis (one server, or a cluster), shared by every replica of a service.
//!
//! Connections heal themselves: a single server goes through the redis crate's connection
//! manager, a cluster through its cluster connection, both with the bounded timeouts below, so a
//! Redis restart, a failover or a dropped idle connection costs the calls made while Redis is
//! away (they fail with a retryable [`StoreError`]) and nothing after.

use super::Due;
use super::record::{decode, encode, from_millis, to_millis};
use super::{Reported, Saved, StoreError, StoreLock, Stored, TokenStore};
use crate::client::BoxFuture;
use crate::secret::Secret;
use crate::token::TokenSet;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long one command may take before it fails (and the connection is rebuilt).
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);
/// The longest `WAIT` allowed: it must answer before the command times out.
const MAX_WAIT: Duration = Duration::from_millis(800);
/// How often a release Redis did not answer is tried again.
const RELEASE_RETRY: Duration = Duration::from_millis(100);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// The longest pause between reconnection attempts: Redis back means the store back within
/// about this long.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// Fails with -2 unless the lock (KEYS[2]) holds the fence (ARGV[1]; '' for unfenced).
const FENCE: &str = r"
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return -2 end
";

/// Writes `data` (ARGV[4]) as version ARGV[3] only if the stored version is still ARGV[2] (''
/// for none); a new version has no marks; the index gets ARGV[5] for ARGV[6]. Over a removal (the tombstone KEYS[3]) the version must
/// be past the removed one: -3 asks the writer to number it so.
const COMPARE_AND_SET: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
if (current == false and ARGV[2] == '') or current == ARGV[2] then
  if current == false then
    local gone = redis.call('GET', KEYS[3])
    if gone and tonumber(gone) >= tonumber(ARGV[3]) then return -3 end
    redis.call('DEL', KEYS[3])
  end
  redis.call('HSET', KEYS[1], 'version', ARGV[3], 'data', ARGV[4])
  redis.call('HDEL', KEYS[1], 'sending', 'sending_at', 'dead', 'dead_at', 'expiring', 'expiring_at', 'announced', 'announced_at')
  index(KEYS[4], ARGV[5], ARGV[6])
  return -1
end
if current == false then return 0 end
return tonumber(current)
";

/// Writes `data` (ARGV[3]) as version ARGV[2] if no version is stored or an older one, with a
/// sending mark at ARGV[4] (ms), a dead mark at ARGV[5], an expiring one at ARGV[6] and an
/// announced one at ARGV[7], each unless it is ''. Never over a removal (the tombstone KEYS[3]): that answers its version.
const RESTORE: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
local gone = redis.call('GET', KEYS[3])
if current == false and gone then return tonumber(gone) end
if current == false or tonumber(current) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'data', ARGV[3])
  redis.call('HDEL', KEYS[1], 'sending', 'sending_at', 'dead', 'dead_at', 'expiring', 'expiring_at', 'announced', 'announced_at')
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], 'sending', ARGV[2], 'sending_at', ARGV[4])
  end
  if ARGV[5] ~= '' then
    redis.call('HSET', KEYS[1], 'dead', ARGV[2], 'dead_at', ARGV[5])
  end
  if ARGV[6] ~= '' then
    redis.call('HSET', KEYS[1], 'expiring', ARGV[2], 'expiring_at', ARGV[6])
  end
  if ARGV[7] ~= '' then
    redis.call('HSET', KEYS[1], 'announced', ARGV[2], 'announced_at', ARGV[7])
  end
  index(KEYS[4], ARGV[8], ARGV[9])
  return -1
end
return tonumber(current)
";

/// Deletes the set, leaving its last version as a tombstone (KEYS[3]) so that versions never
/// repeat for the key.
const DELETE: &str = r"
local version = redis.call('HGET', KEYS[1], 'version')
if version then
  local gone = redis.call('GET', KEYS[3])
  if gone == false or tonumber(gone) < tonumber(version) then
    redis.call('SET', KEYS[3], version)
  end
end
redis.call('DEL', KEYS[1])
index(KEYS[4], '', ARGV[2])
return -1
";

/// Keeps the keeper's index in the same script as the write, on a single server (a cluster
/// keeps the index on another slot, so there `due` is nil and the write is a command of its
/// own): `dies` in ms, or '' to leave the index.
const INDEX: &str = r"
local function index(due, dies, member)
  if due == nil then return end
  if dies == '' then
    redis.call('ZREM', due, member)
  else
    redis.call('ZADD', due, dies, member)
  end
end
";

/// Redis's own clock, in milliseconds: marks are stamped with it, and loads read it, so that
/// no replica's clock decides how old a mark is.
const NOW_MS: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
";

/// The set's fields and Redis's clock (ms), in one call.
const LOAD: &str = r"
return {redis.call('HMGET', KEYS[1], 'data', 'sending', 'sending_at', 'dead', 'dead_at', 'expiring', 'expiring_at', 'announced', 'announced_at'), now_ms()}
";

/// Marks (ARGV[3] = '1', at Redis's time) or clears (ARGV[3] = '') the sending mark of
/// version ARGV[2], if it is current. An existing mark of that version keeps its time: when
/// the token was first sent.
const MARK: &str = r"
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[2] then return 0 end
if ARGV[3] ~= '' then
  if redis.call('HGET', KEYS[1], 'sending') ~= ARGV[2] then
    redis.call('HSET', KEYS[1], 'sending', ARGV[2], 'sending_at', now_ms())
  end
elseif redis.call('HGET', KEYS[1], 'sending') == ARGV[2] then
  redis.call('HDEL', KEYS[1], 'sending', 'sending_at')
end
return 1
";

/// Gives version ARGV[2] the mark named ARGV[4] (`dead`, `expiring`), made now (Redis's
/// clock), if it is current and not marked so yet: 1 for the one call that marks it.
const MARK_REPORTED: &str = r"
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[1], ARGV[4]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[4], ARGV[2], ARGV[4] .. '_at', now_ms())
if ARGV[4] == 'dead' then index(KEYS[3], '', ARGV[5]) end
return 1
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

/// How a [`RedisStore`] connects, and how durable its writes must be before they count.
///
/// Credentials go in the URL (`rediss://user:password@host:6380/`, an ACL user); TLS is
/// `rediss://`, verified against the system's roots unless `root_certificate` is given.
#[derive(Clone, Default)]
pub struct RedisOptions {
    /// The PEM certificate of the CA that signed the server's certificate (a private CA).
    pub root_certificate: Option<Vec<u8>>,
    /// A PEM client certificate and its PEM key, for servers that require mutual TLS.
    pub client_certificate: Option<(Vec<u8>, Secret)>,
    /// Wait for replicas to acknowledge every sending mark and every write (`WAIT`): a mark
    /// or a set a failover could lose is an error instead of a promise.
    pub wait_for_replicas: Option<WaitForReplicas>,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("root_certificate", &self.root_certificate.is_some())
            .field("client_certificate", &self.client_certificate.is_some())
            .field("wait_for_replicas", &self.wait_for_replicas)
            .finish()
    }
}

/// How many replicas must acknowledge a mark or a write, and how long to wait for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitForReplicas {
    /// Replicas that must have it (`WAIT numreplicas`).
    pub replicas: u32,
    /// How long to wait before the write counts as failed: at most 800 ms, so that `WAIT`
    /// answers before the command's own 1 s timeout.
    pub timeout: Duration,
}

impl RedisOptions {
    /// The certificates for the redis crate, when any are given.
    fn certificates(&self) -> Option<redis::TlsCertificates> {
        if self.root_certificate.is_none() && self.client_certificate.is_none() {
            return None;
        }
        Some(redis::TlsCertificates {
            client_tls: self.client_certificate.as_ref().map(|(cert, key)| {
                redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.expose().as_bytes().to_vec(),
                }
            }),
            root_cert: self.root_certificate.clone(),
        })
    }

    /// `WAIT` must answer within the command timeout.
    fn check_wait(&self) -> Result<(), StoreError> {
        match self.wait_for_replicas {
            Some(wait)
                if wait.replicas == 0 || wait.timeout.is_zero() || wait.timeout > MAX_WAIT =>
            {
                Err(StoreError::new(format!(
                    "wait_for_replicas needs at least one replica and a timeout between 1 ms and {MAX_WAIT:?} (commands time out after {RESPONSE_TIMEOUT:?})"
                )))
            }
            _ => Ok(()),
        }
    }

    /// Refuses certificates given for a plain `redis://` URL rather than ignoring them.
    fn check(&self, url: &str) -> Result<(), StoreError> {
        if self.certificates().is_some() && !url.starts_with("rediss://") {
            return Err(StoreError::new(
                "TLS certificates were given for a URL that is not rediss://; use rediss:// to connect over TLS",
            ));
        }
        Ok(())
    }
}

/// A single server or a cluster, behind one command interface.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// `WAIT replicas timeout` on the node that holds `key`: how many replicas acknowledged
    /// every write sent before it.
    async fn wait(&mut self, key: &str, wait: WaitForReplicas) -> redis::RedisResult<i64> {
        let millis = u64::try_from(wait.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(wait.replicas).arg(millis);
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                let value = c
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                Ok(redis::from_redis_value(value)?)
            }
        }
    }
}

impl Connection {
    /// Every key matching `pattern`, by `SCAN` (never `KEYS`, which blocks the server): on the
    /// one server, or on every master of a cluster.
    async fn scan(&mut self, pattern: &str) -> redis::RedisResult<Vec<String>> {
        let mut found = Vec::new();
        match self {
            Self::Single(c) => {
                scan_node(pattern, &mut found, |cmd| {
                    let mut c = c.clone();
                    async move { cmd.query_async::<Value>(&mut c).await }
                })
                .await?
            }
            Self::Cluster(c) => {
                use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                let nodes: String = redis::from_redis_value(
                    c.route_command(
                        redis::cmd("CLUSTER").arg("NODES").to_owned(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                    )
                    .await?,
                )?;
                for (host, port) in masters(&nodes) {
                    scan_node(pattern, &mut found, |cmd| {
                        let mut c = c.clone();
                        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port,
                        });
                        async move { c.route_command(cmd, route).await }
                    })
                    .await?;
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }
}

/// Runs a `SCAN` to its end through `send`, adding the keys matching `pattern` to `found`.
async fn scan_node<F, Fut>(
    pattern: &str,
    found: &mut Vec<String>,
    send: F,
) -> redis::RedisResult<()>
where
    F: Fn(Cmd) -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<Value>>,
{
    let mut cursor = 0u64;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000);
        let (next, keys): (u64, Vec<String>) = redis::from_redis_value(send(cmd).await?)?;
        found.extend(keys);
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The addresses of the live masters in `CLUSTER NODES` output.
fn masters(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                return None;
            }
            let address = fields.get(1)?.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?))
        })
        .collect()
}

/// `text` with the glob characters of a `SCAN MATCH` pattern escaped.
fn glob_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

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
    wait: Option<WaitForReplicas>,
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
            prefix: prefix.into(),
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
            prefix: prefix.into(),
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
        format!("{}:{{{}}}:set", escape(&self.prefix), escape(key))
    }

    /// The refresh lock of `key`.
    fn lock_key(&self, key: &str) -> String {
        format!("{}:{{{}}}:lock", escape(&self.prefix), escape(key))
    }

    /// The tombstone of `key`'s deleted set: its last version.
    fn gone_key(&self, key: &str) -> String {
        format!("{}:{{{}}}:gone", escape(&self.prefix), escape(key))
    }

    async fn mark(
        &self,
        key: &str,
        version: u64,
        lock: &StoreLock,
        sending: bool,
    ) -> Result<i64, StoreError> {
        let mut connection = self.connection.clone();
        redis::Script::new(&format!("{NOW_MS}{FENCE}{MARK}"))
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
            type Mark = Option<u64>;
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
            let (
                (
                    data,
                    sending,
                    sending_at,
                    dead,
                    dead_at,
                    expiring,
                    expiring_at,
                    announced,
                    announced_at,
                ),
                now,
            ): (Fields, u64) = redis::Script::new(&format!("{NOW_MS}{LOAD}"))
                .key(self.set_key(key))
                .invoke_async(&mut connection)
                .await
                .map_err(|e| redis_error("cannot read the token set", &e))?;
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
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(self.save_with_fence(key, tokens, expected, None))
    }

    fn save_fenced<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(self.save_with_fence(key, tokens, expected, lock.fence()))
    }

    fn restore<'a>(
        &'a self,
        key: &'a str,
        set: &'a Stored,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(async move {
            let script = redis::Script::new(&format!("{INDEX}{FENCE}{RESTORE}"));
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
            let script = redis::Script::new(&format!("{INDEX}{FENCE}{DELETE}"));
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
        after: super::DueAfter<'a>,
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
                cmd.arg(self.due_key())
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
            let script = redis::Script::new(&format!("{INDEX}{NOW_MS}{FENCE}{MARK_REPORTED}"));
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
            let head = format!("{}:{{", escape(&self.prefix));
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
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let lock_key = self.lock_key(key);
            let token = lock_token();
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let taken: Result<Option<String>, _> = redis::cmd("SET")
                .arg(&lock_key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(millis)
                .query_async(&mut connection)
                .await;
            let lease = Lease {
                connection,
                lock_key,
                token: token.clone(),
                millis,
            };
            let taken = match taken {
                Ok(taken) => taken,
                Err(e) => {
                    // The answer was lost, not necessarily the command: Redis may have taken
                    // the lock for us (and kept it in its append-only file across a crash),
                    // and nobody would release it for its whole ttl. This token is ours
                    // alone, so releasing it (until it lands) frees only such a lock.
                    tokio::spawn(lease.release());
                    return Err(redis_error("cannot take the refresh lock", &e));
                }
            };
            if taken.is_none() {
                return Ok(None);
            }
            let lost = Arc::new(AtomicBool::new(false));
            // Renewed every third of its ttl while held, so a long refresh keeps it; a holder
            // that dies stops renewing and the lock expires.
            let renewal = AbortOnDrop(tokio::spawn(lease.clone().renew(Arc::clone(&lost))));
            let confirming = lease.clone();
            let confirm: super::Confirm = Box::new(move || {
                let lease = confirming.clone();
                Box::pin(async move { lease.extend().await == Some(true) })
            });
            let release: BoxFuture<'static, ()> = Box::pin(async move {
                drop(renewal);
                lease.release().await;
            });
            Ok(Some(StoreLock::lease(token, lost, confirm, release)))
        })
    }
}

impl RedisStore {
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
        fence: Option<&str>,
    ) -> Result<Saved, StoreError> {
        let mut version = expected.unwrap_or(0) + 1;
        let script = redis::Script::new(&format!("{INDEX}{FENCE}{COMPARE_AND_SET}"));
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
                .arg(key);
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
            self.index(key, Some(tokens)).await;
        }
        Ok(saved)
    }

    /// The sorted set of every credential's refresh-token death, in milliseconds.
    fn due_key(&self) -> String {
        format!("{}:due", escape(&self.prefix))
    }

    /// On a single server the write scripts keep the index themselves: the due key goes last.
    fn due_in_script(&self, invocation: &mut redis::ScriptInvocation<'_>) {
        if matches!(self.connection, Connection::Single(_)) {
            invocation.key(self.due_key());
        }
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
        let cmd = match dies {
            Some(at) => {
                let mut c = redis::cmd("ZADD");
                c.arg(self.due_key()).arg(to_millis(at)).arg(key);
                c
            }
            None => {
                let mut c = redis::cmd("ZREM");
                c.arg(self.due_key()).arg(key);
                c
            }
        };
        let mut connection = self.connection.clone();
        if let Err(e) = cmd.query_async::<Value>(&mut connection).await {
            tracing::warn!(error = %redis_error("cannot index the refresh token's expiry", &e), "the keeper may find this credential late");
            // Only an entry is retried: a late removal could take a newer set's entry away,
            // while a stale entry costs the keeper one look.
            if dies.is_none() {
                return;
            }
            tokio::spawn(async move {
                for _ in 0..600 {
                    tokio::time::sleep(RELEASE_RETRY).await;
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

/// A held lock: what renewing, confirming and releasing it need.
#[derive(Clone)]
struct Lease {
    connection: Connection,
    lock_key: String,
    token: String,
    millis: u64,
}

impl Lease {
    /// Extends the lock to a full ttl: `Some(true)` held, `Some(false)` lost, `None` Redis
    /// did not answer.
    async fn extend(&self) -> Option<bool> {
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
    async fn renew(self, lost: Arc<AtomicBool>) {
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
    async fn release(self) {
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
    async fn try_release(&self) -> bool {
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
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_credentials_never_meet() {
        let store_key = |prefix: &str, key: &str| {
            (
                format!("{}:{{{}}}:set", escape(prefix), escape(key)),
                format!("{}:{{{}}}:lock", escape(prefix), escape(key)),
            )
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
    }
}
