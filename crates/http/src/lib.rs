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

    /// A token other than `rejected`, which the API refused.
    fn rejected<'a>(
        &'a self,
        connection: Option<&'a Connection>,
        rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<AccessToken, ManagerError>>;
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
    ) -> BoxFuture<'a, Result<AccessToken, ManagerError>> {
        Box::pin(self.refresh_rejected(rejected))
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
    ) -> BoxFuture<'a, Result<AccessToken, ManagerError>> {
        Box::pin(async move {
            let connection = connection.ok_or_else(no_connection)?;
            self.refresh_rejected(&connection.0, rejected).await
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
    ) -> BoxFuture<'a, Result<AccessToken, ManagerError>> {
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
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            header: AUTHORIZATION,
            scheme: None,
            rejected: Arc::new(|status| status == http::StatusCode::UNAUTHORIZED),
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("header", &self.header)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
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
