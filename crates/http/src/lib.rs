//! Calling the provider's API with tokenkit's tokens: every request gets the `Authorization`
//! header from a [`TokenManager`] or a [`TokenPool`], and a request the API refuses (401, or
//! whatever [`AuthConfig::rejected`] says) is healed once: the token it carried is replaced
//! (one refresh per refused token, however many requests carried it, and a throttle for an API
//! that refuses everything: [`TokenManager::refresh_rejected`]) and the request is sent again,
//! when its body can be sent again. Otherwise the API's answer comes back as it was.
//!
//! - [`AuthLayer`] (feature `tower`, on by default): a tower `Layer` for any
//!   `Service<http::Request<B>>` (hyper's client, tonic, tower stacks).
//! - `AuthMiddleware` (feature `reqwest-middleware`): the same for `reqwest` clients.
//!
//! With a pool, the request names its connection: [`Connection`] in its extensions.
//!
//! The token goes only to the hosts the application names ([`AuthConfig::allowed_hosts`],
//! `https://` unless the host is this machine): any other request fails with
//! [`HostNotAllowed`] before it is sent, so a wrong URL, a URL from request data or a host
//! of another service never gets it. Redirects: reqwest drops `Authorization` on a redirect
//! to another host but not a custom header; with [`AuthConfig::header`] set, build the
//! reqwest client with `redirect::Policy::none()`. In a tower stack, put a redirect-following
//! layer outside this one, so that each hop is checked.
//! No token appears in any error, log line or `Debug` output of this crate: header values are
//! marked sensitive, and errors are tokenkit's, which carry none.

use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use std::fmt;
use std::sync::Arc;
use tokenkit::client::BoxFuture;
use tokenkit::{AccessToken, ManagerError, RefreshClient, TokenManager, TokenPool, TokenStore};

#[cfg(feature = "tower")]
mod layer;
#[cfg(feature = "reqwest-middleware")]
mod middleware;

#[cfg(feature = "tower")]
pub use layer::{AuthLayer, AuthService, Error, ReplayBody};
#[cfg(feature = "reqwest-middleware")]
pub use middleware::AuthMiddleware;

/// The pool connection a request is for, as a request extension.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Connection(pub Arc<str>);

impl Connection {
    /// The connection named `name`.
    pub fn new(name: impl AsRef<str>) -> Self {
        Self(Arc::from(name.as_ref()))
    }
}

/// The hosts a token may go to: exact names (`api.example.com`, `api.example.com:8443`) or
/// wildcards of one or more labels (`*.example.com`, which matches `eu.api.example.com` but
/// not `example.com`). Matching ignores case; a pattern without a port matches the scheme's
/// default port only. Empty (the default): no host, every request refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    patterns: Vec<(String, Option<u16>)>,
}

impl AllowedHosts {
    /// The hosts `patterns` name. A pattern that names no host (`*`, a URL, one with `/`,
    /// `@` or a bad port) matches nothing.
    pub fn new(patterns: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        let patterns = patterns
            .into_iter()
            .filter_map(|p| {
                let p = p.as_ref().trim().to_ascii_lowercase();
                let (host, port) = match p.rsplit_once(':') {
                    Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
                        (host.to_owned(), Some(port.parse::<u16>().ok()?))
                    }
                    _ => (p, None),
                };
                let name = host.strip_prefix("*.").unwrap_or(&host);
                let bad = name.is_empty()
                    || name.contains(['/', '@', '*', '?', '#', ' '])
                    || name.starts_with('.');
                (!bad).then_some((host, port))
            })
            .collect();
        Self { patterns }
    }

    /// Whether a request to `host` (on `port`, or the scheme's default where `None`) may carry
    /// the token.
    pub fn allows(&self, host: &str, port: Option<u16>) -> bool {
        // Compared without allocating: this runs on every request. Patterns are lower case.
        let host = host.trim_end_matches('.').as_bytes();
        self.patterns.iter().any(|(pattern, want)| {
            let name_ok = match pattern.strip_prefix("*.") {
                Some(suffix) => {
                    let suffix = suffix.as_bytes();
                    host.len() > suffix.len() + 1
                        && host[host.len() - suffix.len() - 1] == b'.'
                        && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                }
                None => host.eq_ignore_ascii_case(pattern.as_bytes()),
            };
            name_ok && *want == port
        })
    }
}

/// A request the token must not go with: to a host not among [`AuthConfig::allowed_hosts`],
/// without a host at all, or over plain HTTP to a host other than this machine's. Nothing was
/// sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostNotAllowed {
    /// Where the request was going (scheme and host, never a path or query).
    pub target: String,
}

impl fmt::Display for HostNotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refusing to send an access token to {}: not among AuthConfig::allowed_hosts (or plain HTTP to a host that is not this machine); nothing was sent",
            self.target
        )
    }
}

impl std::error::Error for HostNotAllowed {}

/// Whether `host` is this machine (where plain HTTP cannot be read by anyone else).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A token for a request: its text and type (`Bearer` when the provider names none).
#[derive(Clone)]
pub struct Credential {
    /// The access token.
    pub token: AccessToken,
    /// The provider's `token_type`, if it gave one.
    pub token_type: Option<String>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("token", &self.token)
            .field("token_type", &self.token_type)
            .finish()
    }
}

/// Where the layer gets tokens: a [`TokenManager`] (one credential), or a [`TokenPool`] (the
/// request's [`Connection`]).
pub trait TokenSource: Send + Sync + 'static {
    /// A valid token for `connection`.
    fn credential<'a>(
        &'a self,
        connection: Option<&'a Connection>,
    ) -> BoxFuture<'a, Result<Credential, ManagerError>>;

    /// A token other than `rejected`, which the API refused, with its own type.
    fn rejected<'a>(
        &'a self,
        connection: Option<&'a Connection>,
        rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<Credential, ManagerError>>;
}

/// `token` with the type of the set it came from, where `set` is that set (a newer set
/// answers without its type: the scheme's default).
fn credential_of(token: AccessToken, set: Result<tokenkit::TokenSet, ManagerError>) -> Credential {
    let token_type = set
        .ok()
        .filter(|set| set.access_token == token)
        .and_then(|set| set.token_type);
    Credential { token, token_type }
}

impl<C: RefreshClient + 'static, S: TokenStore> TokenSource for TokenManager<C, S> {
    fn credential<'a>(
        &'a self,
        _connection: Option<&'a Connection>,
    ) -> BoxFuture<'a, Result<Credential, ManagerError>> {
        Box::pin(async move {
            let set = self.token_set().await?;
            Ok(Credential {
                token: set.access_token,
                token_type: set.token_type,
            })
        })
    }

    fn rejected<'a>(
        &'a self,
        _connection: Option<&'a Connection>,
        rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<Credential, ManagerError>> {
        Box::pin(async move {
            let token = self.refresh_rejected(rejected).await?;
            Ok(credential_of(token, self.token_set().await))
        })
    }
}

fn no_connection() -> ManagerError {
    ManagerError::Config(
        "the request names no connection: put a tokenkit_http::Connection in its extensions".into(),
    )
}

impl<C: RefreshClient + 'static, S: TokenStore> TokenSource for TokenPool<C, S> {
    fn credential<'a>(
        &'a self,
        connection: Option<&'a Connection>,
    ) -> BoxFuture<'a, Result<Credential, ManagerError>> {
        Box::pin(async move {
            let connection = connection.ok_or_else(no_connection)?;
            let set = self.token_set(&connection.0).await?;
            Ok(Credential {
                token: set.access_token,
                token_type: set.token_type,
            })
        })
    }

    fn rejected<'a>(
        &'a self,
        connection: Option<&'a Connection>,
        rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<Credential, ManagerError>> {
        Box::pin(async move {
            let connection = connection.ok_or_else(no_connection)?;
            let token = self.refresh_rejected(&connection.0, rejected).await?;
            Ok(credential_of(token, self.token_set(&connection.0).await))
        })
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Arc<T> {
    fn credential<'a>(
        &'a self,
        connection: Option<&'a Connection>,
    ) -> BoxFuture<'a, Result<Credential, ManagerError>> {
        (**self).credential(connection)
    }

    fn rejected<'a>(
        &'a self,
        connection: Option<&'a Connection>,
        rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<Credential, ManagerError>> {
        (**self).rejected(connection, rejected)
    }
}

/// How requests are authenticated and what counts as a refused token.
#[derive(Clone)]
pub struct AuthConfig {
    /// The header that carries the token. Default `Authorization`.
    pub header: HeaderName,
    /// What goes before the token: `None` (the default) is the provider's `token_type`, or
    /// `Bearer` when it gives none (a `bearer` in any case is written `Bearer`, RFC 6750);
    /// `Some("")` sends the bare token.
    pub scheme: Option<String>,
    /// Whether an answer (its status) means the API refused the token. Default: 401.
    pub rejected: Arc<dyn Fn(http::StatusCode) -> bool + Send + Sync>,
    /// The only hosts the token goes to; any other request fails with [`HostNotAllowed`]
    /// before anything is sent. Default: none (name the API's hosts).
    pub allowed_hosts: AllowedHosts,
    /// Lets the token go over plain `http://` to an allowed host that is not this machine
    /// (a private test network). Default `false`: `https://`, or loopback.
    pub allow_plain_http: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            header: AUTHORIZATION,
            scheme: None,
            rejected: Arc::new(|status| status == http::StatusCode::UNAUTHORIZED),
            allowed_hosts: AllowedHosts::default(),
            allow_plain_http: false,
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("header", &self.header)
            .field("scheme", &self.scheme)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    /// The default settings, the token going only to `hosts` (see [`AllowedHosts`]).
    pub fn for_hosts(hosts: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        Self {
            allowed_hosts: AllowedHosts::new(hosts),
            ..Self::default()
        }
    }

    /// Whether a request to `scheme://host:port` may carry the token: an allowed host, over
    /// `https` (or `http` to this machine, or where `allow_plain_http` says so).
    pub fn check(
        &self,
        scheme: Option<&str>,
        host: Option<&str>,
        port: Option<u16>,
    ) -> Result<(), HostNotAllowed> {
        let refused = || HostNotAllowed {
            target: format!(
                "{}://{}{}",
                scheme.unwrap_or("?"),
                host.unwrap_or("(no host)"),
                port.map(|p| format!(":{p}")).unwrap_or_default()
            ),
        };
        let host = host.ok_or_else(refused)?;
        let secure = match scheme {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => self.allow_plain_http || is_loopback(host),
            _ => false,
        };
        let default_port = match scheme {
            Some(s) if s.eq_ignore_ascii_case("https") => Some(443),
            Some(s) if s.eq_ignore_ascii_case("http") => Some(80),
            _ => None,
        };
        let port = port.filter(|p| Some(*p) != default_port);
        if secure && self.allowed_hosts.allows(host, port) {
            Ok(())
        } else {
            Err(refused())
        }
    }

    /// The header value for `token` of `token_type`, marked sensitive (never logged by http
    /// stacks that honour the mark, never in this crate's `Debug`).
    pub fn value(
        &self,
        token: &AccessToken,
        token_type: Option<&str>,
    ) -> Result<HeaderValue, ManagerError> {
        let scheme = match (&self.scheme, token_type) {
            (Some(scheme), _) => scheme.as_str(),
            (None, Some(t)) if !t.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => t,
            (None, _) => "Bearer",
        };
        let text = if scheme.is_empty() {
            token.expose().to_owned()
        } else {
            format!("{scheme} {}", token.expose())
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            ManagerError::Config("the access token cannot be written in an HTTP header".into())
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}
