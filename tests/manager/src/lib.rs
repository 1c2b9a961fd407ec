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
    tokenkit_easyship::Client::builder("cid_easyship_example", "cs_easyship_example")
        .base_url(base_url)
        .build()
        .expect("client")
}

/// A token set whose access token has expired, holding `refresh_token`.
pub fn expired(refresh_token: &str) -> TokenSet {
    TokenSet {
        access_token: "at-expired".into(),
        refresh_token: Some(RefreshToken::new(refresh_token)),
        expires_at: Some(SystemTime::now() - Duration::from_secs(1)),
        token_type: Some("Bearer".into()),
        extras: Default::default(),
    }
}

/// Settings for tokens that live a second: each is served for half of it, then refreshed.
pub fn fast_config() -> ManagerConfig {
    ManagerConfig {
        skew: Duration::from_millis(950),
        backoff: Duration::from_millis(10),
        lock_poll: Duration::from_millis(5),
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

/// A `redis-server` on a free port of 127.0.0.1, stopped when dropped.
pub struct Redis {
    child: Child,
    /// `redis://127.0.0.1:<port>/`.
    pub url: String,
}

impl Redis {
    /// Starts one. `redis-server` must be on the PATH (`.ci/run` installs it).
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server); .ci/run installs it");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
