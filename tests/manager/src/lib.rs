//! Shared pieces of the token manager tests: the mock provider, a real Redis server, scratch
//! directories.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use tokenkit::{ManagerConfig, RefreshToken, TokenSet};
use tokenkit_mock::MockServer;

mod failing;
mod postgres;
mod proxy;
mod redis;
mod scripted;
pub mod webdriver;
pub mod workers;

pub use failing::*;
pub use postgres::*;
pub use proxy::*;
pub use redis::*;
pub use scripted::*;

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

/// Fleetbank's mock: one-time refresh tokens that die 20 s after issue unless used, a reused
/// one revoking its family; quiet (the fleet tests send thousands of requests).
pub async fn fleetbank() -> MockServer {
    let spec = workspace().join("tests/fixtures/specs/fleetbank.yaml");
    let mock = MockServer::start(tokenkit_mock::load(spec).expect("spec"))
        .await
        .expect("mock");
    mock.enforce_rotation(3600, Duration::ZERO);
    mock.quiet();
    mock
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

/// A Tenantbank client for a pool of many tenants: each connection's `tenant` picks its host,
/// `{tenant}.auth.tenantbank.example`, and each of `hosts`' names resolves to its mock (plain
/// http, on 127.0.0.1). The builder's own tenant is never used.
pub fn many_tenants(hosts: &[(&str, &MockServer)]) -> tokenkit_tenantbank::ClientBuilder {
    let http = hosts.iter().fold(
        tokenkit::reqwest::Client::builder(),
        |http, (tenant, mock)| {
            http.resolve(&format!("{tenant}.auth.tenantbank.example"), mock.addr())
        },
    );
    tokenkit_tenantbank::Client::builder("unset", "tenant-client", "tenant-secret")
        .base_url("http://{tenant}.auth.tenantbank.example/{region}/{version}")
        .http_config(tokenkit::HttpConfig {
            allow_plain_http: true,
            ..tokenkit::HttpConfig::default()
        })
        .http_client(http)
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
        values: Default::default(),
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
        values: Default::default(),
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
