//! How a [`RedisStore`](super::RedisStore) connects (options, TLS, replicas to wait for), and
//! one command interface over a single server or a cluster.

use super::*;

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
    pub(super) fn certificates(&self) -> Option<redis::TlsCertificates> {
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
    pub(super) fn check_wait(&self) -> Result<(), StoreError> {
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
    pub(super) fn check(&self, url: &str) -> Result<(), StoreError> {
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
pub(super) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// `WAIT replicas timeout` on the node that holds `key`: how many replicas acknowledged
    /// every write sent before it.
    pub(super) async fn wait(
        &mut self,
        key: &str,
        wait: WaitForReplicas,
    ) -> redis::RedisResult<i64> {
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
    pub(super) async fn scan(&mut self, pattern: &str) -> redis::RedisResult<Vec<String>> {
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
pub(super) fn glob_literal(text: &str) -> String {
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
