//! Shared pieces of the token manager tests: the mock provider, a real Redis server, scratch
//! directories.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use tokenkit::{ManagerConfig, RefreshToken, TokenSet};
use tokenkit_mock::MockServer;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Easyship's spec served by a mock that enforces one-time refresh tokens; returns the mock and
/// the family's first refresh token.
pub async fn one_time_provider(lifetime_secs: i64, delay: Duration) -> (MockServer, String) {
    let provider = tokenkit_mock::load(workspace().join("specs/easyship.yaml")).expect("spec");
    let mock = MockServer::start(provider).await.expect("mock");
    let first = mock.enforce_rotation(lifetime_secs, delay);
    (mock, first)
}

/// An Easyship client pointed at `base_url`.
pub fn client(base_url: &str) -> tokenkit_easyship::Client {
    client_with_timeout(base_url, Duration::from_secs(5))
}

/// An Easyship client pointed at `base_url`, whose requests time out after `timeout`.
pub fn client_with_timeout(base_url: &str, timeout: Duration) -> tokenkit_easyship::Client {
    tokenkit_easyship::Client::builder("cid_easyship_example", "cs_easyship_example")
        .base_url(base_url)
        .http_config(tokenkit::HttpConfig {
            timeout,
            connect_timeout: timeout.min(Duration::from_secs(2)),
            ..tokenkit::HttpConfig::default()
        })
        .build()
        .expect("client")
}

/// A client that forwards refreshes and hides its grants: a refresh-only provider, for the
/// tests of what happens when nothing but a hook can replace a dead refresh token.
pub struct RefreshOnly<C>(pub C);

impl<C: tokenkit::RefreshClient> tokenkit::RefreshClient for RefreshOnly<C> {
    fn provider(&self) -> &'static str {
        self.0.provider()
    }

    fn rotation(&self) -> tokenkit::Rotation {
        self.0.rotation()
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a RefreshToken,
    ) -> tokenkit::BoxFuture<'a, Result<TokenSet, tokenkit::RefreshError>> {
        self.0.refresh(refresh_token)
    }

    fn attempt_timeout(&self) -> Option<Duration> {
        self.0.attempt_timeout()
    }

    fn reuse_grace(&self) -> Option<Duration> {
        self.0.reuse_grace()
    }

    fn issuer(&self) -> String {
        self.0.issuer()
    }
}

/// A token set good for an hour, holding `refresh_token` if given.
pub fn fresh(access: &str, refresh: Option<&str>) -> TokenSet {
    TokenSet {
        access_token: access.into(),
        refresh_token: refresh.map(RefreshToken::new),
        expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
        token_type: None,
        refresh_expires_at: None,
        extras: Default::default(),
        origin: None,
        issuer: None,
    }
}

/// `set`, recorded as the application's own credential (from the client-credentials grant),
/// which that grant may replace when its refresh token dies.
pub fn own(mut set: TokenSet) -> TokenSet {
    set.origin = Some(tokenkit::Origin::ClientCredentials);
    set
}

/// A token set whose access token has expired, holding `refresh_token`.
pub fn expired(refresh_token: &str) -> TokenSet {
    TokenSet {
        access_token: "at-expired".into(),
        refresh_token: Some(RefreshToken::new(refresh_token)),
        expires_at: Some(SystemTime::now() - Duration::from_secs(1)),
        token_type: Some("Bearer".into()),
        refresh_expires_at: None,
        extras: Default::default(),
        origin: None,
        issuer: None,
    }
}

/// Settings for tokens that live a second: each is served for half of it, then refreshed.
/// The fleet tests seed a set with a refresh token and count on Easyship's client-credentials
/// grant where a credential must be re-authenticated: their credentials are the application's
/// own (`ClientCredentialsFallback::Always`).
pub fn fast_config() -> ManagerConfig {
    ManagerConfig {
        skew: Duration::from_millis(950),
        refresh_token_margin: Duration::from_millis(950),
        backoff: Duration::from_millis(10),
        lock_poll: Duration::from_millis(5),
        client_credentials_fallback: tokenkit::ClientCredentialsFallback::Always,
        ..ManagerConfig::default()
    }
}

/// A scratch directory, emptied, closed to other users (as `FileStore` requires).
pub fn scratch(name: &str) -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("tokenkit-manager-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .expect("scratch dir");
    dir
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not start on {port}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `redis-server` on a free port of 127.0.0.1, stopped when dropped. Persistent ones keep an
/// append-only file (fsync on every write) in their own directory, so a restart loses nothing
/// Redis acknowledged.
pub struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    /// `redis://127.0.0.1:<port>/`.
    pub url: String,
}

impl Redis {
    /// Starts one without persistence. `redis-server` must be on the PATH (`scripts/test`
    /// and `.ci/run` install it).
    pub fn start() -> Self {
        Self::start_with("plain", &["--save", "", "--appendonly", "no"])
    }

    /// Starts one with the append-only file on, fsynced on every write.
    pub fn start_persistent() -> Self {
        Self::start_with(
            "aof",
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--enable-debug-command",
                "local",
            ],
        )
    }

    fn start_with(name: &str, extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        Self::start_configured(name, |_, _| extra.clone())
    }

    /// Starts one with the arguments `configure` gives for its port and data directory (where
    /// it may write files first): TLS, ACL users, replication.
    pub fn start_configured(name: &str, configure: impl FnOnce(u16, &Path) -> Vec<String>) -> Self {
        let port = free_port();
        let dir = scratch(&format!("redis-{name}-{port}"));
        let extra = configure(port, &dir);
        let mut redis = Self {
            child: None,
            port,
            dir,
            extra,
            url: format!("redis://127.0.0.1:{port}/"),
        };
        redis.spawn();
        redis
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (SIGSTOP): it keeps its connections but answers nothing.
    pub fn stop(&self) {
        signal(self.pid(), "-STOP");
    }

    /// Lets a stopped server go on (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server); scripts/test installs it");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    /// Starts one that persists only by `SAVE` (an RDB snapshot, `dump.rdb`, loaded at start):
    /// no append-only file.
    pub fn start_snapshotting() -> Self {
        Self::start_with("rdb", &["--save", "", "--appendonly", "no"])
    }

    /// The server's data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes an RDB snapshot now and keeps a copy of it as `name`.
    pub fn snapshot(&self, name: &str) {
        let saved = self.cli(&["SAVE"]);
        assert!(saved.contains("OK"), "SAVE: {saved}");
        std::fs::copy(self.dir.join("dump.rdb"), self.dir.join(name)).expect("copy the snapshot");
    }

    /// Kills the server and starts it again on the snapshot kept as `name` (a restore from an
    /// older backup, or a replica promoted with older data).
    pub fn restart_from_snapshot(&mut self, name: &str) {
        self.kill();
        std::fs::copy(self.dir.join(name), self.dir.join("dump.rdb"))
            .expect("put the snapshot back");
        self.spawn();
    }

    /// Kills the server (SIGKILL, as a crash would), leaving its data directory.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Runs `redis-cli` against this server; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn signal(pid: u32, which: &str) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {which} {pid}");
}

/// A three-master Redis Cluster on 127.0.0.1, made with `redis-server --cluster-enabled yes`
/// and `redis-cli --cluster create`; stopped when dropped.
pub struct RedisCluster {
    nodes: Vec<Redis>,
    /// `redis://127.0.0.1:<port>/` of every node.
    pub urls: Vec<String>,
}

impl RedisCluster {
    /// Starts three nodes and joins them into a cluster with every slot covered.
    pub fn start() -> Self {
        let nodes: Vec<Redis> = (0..3)
            .map(|i| {
                let port = free_port();
                Redis::start_with(
                    &format!("cluster{i}"),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &format!("nodes-{port}.conf"),
                        "--cluster-node-timeout",
                        "2000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while !nodes[0]
            .cli(&["cluster", "info"])
            .contains("cluster_state:ok")
        {
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let urls = nodes.iter().map(|n| n.url.clone()).collect();
        Self { nodes, urls }
    }

    /// How many nodes hold at least one key.
    pub fn nodes_with_keys(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.cli(&["dbsize"]).trim().parse::<u64>().unwrap_or(0) > 0)
            .count()
    }
}

/// What the [`FaultyProxy`] does with the next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyFault {
    /// Forwards it to the provider, then answers the client with this status (a gateway's 502
    /// or 504, an origin that rotated the token and then failed): the provider has spent the
    /// token, the client cannot know.
    AfterForwarding(u16),
    /// Answers with this status without forwarding (a rate limiter's 429, a maintenance 503).
    BeforeForwarding(u16),
}

/// A forwarding HTTP/1.1 proxy on 127.0.0.1 in front of a provider that fails on purpose:
/// each queued [`ProxyFault`] applies to one request, in order; with none queued it forwards
/// the request and relays the answer.
pub struct FaultyProxy {
    addr: std::net::SocketAddr,
    /// The mock's base path (`/v2`, say), kept in the proxy's base URL.
    base_path: String,
    faults: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<ProxyFault>>>,
    forwarded: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    /// Starts one forwarding to `mock`.
    pub async fn start(mock: &MockServer) -> Self {
        let upstream = mock.addr();
        let base_path = mock
            .base_url()
            .trim_start_matches("http://")
            .split_once('/')
            .map(|(_, path)| format!("/{path}"))
            .unwrap_or_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let faults = std::sync::Arc::default();
        let forwarded = std::sync::Arc::default();
        let (queue, count) = (
            std::sync::Arc::clone(&faults),
            std::sync::Arc::clone(&forwarded),
        );
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (queue, count) = (std::sync::Arc::clone(&queue), std::sync::Arc::clone(&count));
                tokio::spawn(async move {
                    let _ = relay(client, upstream, &queue, &count).await;
                });
            }
        });
        Self {
            addr,
            base_path,
            faults,
            forwarded,
            task,
        }
    }

    /// `http://127.0.0.1:<port>` and the mock's base path.
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, self.base_path)
    }

    /// Queues a fault for the next request that has none.
    pub fn enqueue(&self, fault: ProxyFault) {
        self.faults.lock().expect("faults").push_back(fault);
    }

    /// How many requests reached the provider.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one client connection: each request is forwarded (or not) as the next fault says.
async fn relay(
    mut client: tokio::net::TcpStream,
    upstream: std::net::SocketAddr,
    faults: &std::sync::Mutex<std::collections::VecDeque<ProxyFault>>,
    forwarded: &std::sync::atomic::AtomicU64,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut buffer = Vec::new();
    while let Some(request) = read_message(&mut client, &mut buffer).await? {
        let fault = faults.lock().expect("faults").pop_front();
        let answer = match fault {
            Some(ProxyFault::BeforeForwarding(status)) => empty_answer(status),
            Some(ProxyFault::AfterForwarding(status)) => {
                forward(upstream, &request, forwarded).await?;
                empty_answer(status)
            }
            None => forward(upstream, &request, forwarded).await?,
        };
        client.write_all(&answer).await?;
        client.flush().await?;
    }
    Ok(())
}

fn empty_answer(status: u16) -> Vec<u8> {
    format!("HTTP/1.1 {status} Proxy Fault\r\ncontent-length: 0\r\n\r\n").into_bytes()
}

/// Sends `request` to the provider on a connection of its own and returns its whole answer.
async fn forward(
    upstream: std::net::SocketAddr,
    request: &[u8],
    forwarded: &std::sync::atomic::AtomicU64,
) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncWriteExt;
    let mut provider = tokio::net::TcpStream::connect(upstream).await?;
    provider.write_all(request).await?;
    forwarded.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut buffer = Vec::new();
    read_message(&mut provider, &mut buffer)
        .await?
        .ok_or_else(|| std::io::Error::other("the provider closed the connection"))
}

/// Reads one HTTP/1.1 message with a `Content-Length` body (or none), as raw bytes.
async fn read_message(
    stream: &mut tokio::net::TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed mid-message"));
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(buffer.drain(..head_end + length).collect()))
}

/// A store whose next `failures` writes fail, as a full disk or an unreachable Redis would.
#[derive(Clone)]
pub struct FailingWrites {
    /// The store underneath.
    pub inner: tokenkit::MemoryStore,
    /// How many writes are still to fail.
    pub failures: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FailingWrites {
    /// Whether this write fails (counting it down).
    fn fails(&self) -> bool {
        self.failures
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok()
    }
}

impl tokenkit::TokenStore for FailingWrites {
    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> tokenkit::BoxFuture<'a, Result<Option<Vec<String>>, tokenkit::StoreError>> {
        self.inner.list(prefix)
    }

    fn due<'a>(
        &'a self,
        prefix: &'a str,
        until: SystemTime,
        after: tokenkit::DueAfter<'a>,
        limit: usize,
    ) -> tokenkit::BoxFuture<'a, Result<Option<tokenkit::Due>, tokenkit::StoreError>> {
        self.inner.due(prefix, until, after, limit)
    }

    fn load<'a>(
        &'a self,
        key: &'a str,
    ) -> tokenkit::BoxFuture<'a, Result<Option<tokenkit::Stored>, tokenkit::StoreError>> {
        self.inner.load(key)
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
    ) -> tokenkit::BoxFuture<'a, Result<tokenkit::Saved, tokenkit::StoreError>> {
        if self.fails() {
            return Box::pin(async { Err(tokenkit::StoreError::new("disk full")) });
        }
        self.inner.save(key, tokens, expected)
    }

    fn restore<'a>(
        &'a self,
        key: &'a str,
        set: &'a tokenkit::Stored,
        lock: &'a tokenkit::StoreLock,
    ) -> tokenkit::BoxFuture<'a, Result<tokenkit::Saved, tokenkit::StoreError>> {
        if self.fails() {
            return Box::pin(async { Err(tokenkit::StoreError::new("disk full")) });
        }
        self.inner.restore(key, set, lock)
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        lock: &'a tokenkit::StoreLock,
    ) -> tokenkit::BoxFuture<'a, Result<tokenkit::Saved, tokenkit::StoreError>> {
        self.inner.delete(key, lock)
    }

    fn mark_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a tokenkit::StoreLock,
    ) -> tokenkit::BoxFuture<'a, Result<bool, tokenkit::StoreError>> {
        self.inner.mark_sending(key, version, lock)
    }

    fn clear_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a tokenkit::StoreLock,
    ) -> tokenkit::BoxFuture<'a, Result<(), tokenkit::StoreError>> {
        self.inner.clear_sending(key, version, lock)
    }

    fn mark_reported<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        what: tokenkit::Reported,
        lock: &'a tokenkit::StoreLock,
    ) -> tokenkit::BoxFuture<'a, Result<bool, tokenkit::StoreError>> {
        self.inner.mark_reported(key, version, what, lock)
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> tokenkit::BoxFuture<'a, Result<Option<tokenkit::StoreLock>, tokenkit::StoreError>> {
        self.inner.try_lock(key, ttl)
    }
}

/// Waits until `done` holds, looking every 20 ms; fails the test after `limit`: what a test
/// waits for is the event itself, never a fixed time (a busy machine is slow, not wrong).
pub async fn wait_for(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited {limit:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
