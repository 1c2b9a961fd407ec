//! A customer connects their account in the browser, over tokenkit's pools.
//!
//! The application makes a **connect link** for a (provider, connection, return URL) and sends
//! the customer to it. The link is single-use, short-lived and not guessable. Opening it:
//! - starts a consent (a fresh `state` with a PKCE verifier, where the client sends one);
//! - binds that consent to this browser with a cookie;
//! - redirects to the provider's consent page.
//!
//! The provider sends the customer back to the callback. The callback checks, once and in
//! constant time:
//! - the state, and the cookie of the browser that opened the link (a forged, replayed or
//!   stolen callback fails);
//! - the `iss` the provider sent (RFC 9207: a mix-up between providers fails).
//!
//! Then it exchanges the code through the pool, in a task of its own, so a browser that
//! closes mid-exchange loses nothing. Last it redirects to the return URL, which must be on
//! the application's allow-list and never carries a code or a token. A link for a connection
//! the store already holds is a reconnect: its set is replaced in place.
//! [`Connect::disconnect`] revokes a connection's tokens at the provider (where its spec maps
//! `x-token-revoke`) and removes it.
//!
//! A provider on a per-customer host takes a connection's own values (its tenant, its region:
//! the spec's server variables): [`Connect::link_with`] carries them, or
//! [`ConnectBuilder::ask_for`] makes the link ask the customer on a page of its own. They are
//! checked as the client's builder checks its own and stored with the connection; a
//! reconnect keeps them.
//!
//! ```no_run
//! # async fn demo(pool: tokenkit::TokenPool<tokenkit_easyship::Client, tokenkit::MemoryStore>) -> Result<(), tokenkit_connect::ConnectError> {
//! use tokenkit_connect::{Connect, ConnectConfig};
//! let connect = Connect::builder(ConnectConfig::new(
//!     "https://app.example/connect",
//!     ["https://app.example/settings"],
//! ))
//! .provider("easyship", pool, &["public.shipment:read"])
//! .build()?;
//! let link = connect.link("easyship", "customer-42", "https://app.example/settings")?;
//! // Send the customer to `link`; serve `connect.router()` at /connect.
//! # Ok(()) }
//! ```

mod flow;
#[cfg(feature = "axum")]
mod router;

pub use flow::{CallbackParams, Finished, Opened, Opening, ValuesForm};

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokenkit::{
    BoxFuture, CodeExchange, ConnectionValues, ConsentRequest, ManagerError, RefreshClient,
    TokenPool, Variable,
};
use tokio::sync::broadcast;

/// Where the router is served and where customers may be sent back.
#[derive(Clone, Debug)]
pub struct ConnectConfig {
    /// The router's URL as the browser sees it (`https://app.example/connect`): links are
    /// `<base_url>/link/<id>`, and the provider sends customers back to
    /// `<base_url>/callback` (register that redirect URI with each provider).
    pub base_url: String,
    /// Where a link may send the customer back: URLs whose scheme, host and port are equal
    /// and whose path starts with an entry's path (`https://app.example/settings` allows
    /// `https://app.example/settings/integrations`, not `https://app.example/settings-evil`).
    pub allowed_return_urls: Vec<String>,
    /// How long a link may wait to be opened (10 minutes).
    pub link_lifetime: Duration,
    /// How long a customer may take at the provider's consent page (10 minutes).
    pub consent_lifetime: Duration,
}

impl ConnectConfig {
    /// `base_url` and the allowed return URLs, with the default lifetimes.
    pub fn new(
        base_url: impl Into<String>,
        allowed_return_urls: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            allowed_return_urls: allowed_return_urls.into_iter().map(Into::into).collect(),
            link_lifetime: Duration::from_secs(600),
            consent_lifetime: Duration::from_secs(600),
        }
    }
}

/// What happened to a connection, for the application's listeners. Never carries a code, a
/// state or a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectEvent {
    /// A new connection was stored.
    Connected {
        /// The provider's name, as registered.
        provider: String,
        /// The connection.
        connection: String,
    },
    /// A connection the store held got a new set (the customer consented again).
    Reconnected {
        /// The provider's name, as registered.
        provider: String,
        /// The connection.
        connection: String,
    },
    /// A connection was removed, its tokens revoked at the provider first where its spec maps
    /// a revocation operation.
    Disconnected {
        /// The provider's name, as registered.
        provider: String,
        /// The connection.
        connection: String,
        /// What the provider answered each revocation.
        revocation: tokenkit::Revocation,
    },
    /// A connect did not end with a stored set.
    Failed {
        /// The provider's name, as registered.
        provider: String,
        /// The connection.
        connection: String,
        /// Why.
        reason: FailReason,
    },
}

/// Why a connect failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The provider sent the customer back with an error (`access_denied` when the customer
    /// denied); its code as sent, where it is a plain `[a-z_]` word, else `invalid`.
    Provider(String),
    /// The redirect's `iss` named another issuer than this provider's (RFC 9207).
    WrongIssuer,
    /// The redirect brought neither a code nor an error.
    NoCode,
    /// The code exchange failed: its error, as the pool reported it (no secret in it).
    Exchange(String),
}

/// What went wrong, for the application or the browser. No message quotes a link id, state,
/// code, cookie or token.
#[derive(Debug)]
pub enum ConnectError {
    /// No provider of that name was registered.
    UnknownProvider,
    /// The provider's spec has no authorization code flow (no consent URL).
    NoConsentFlow,
    /// The return URL is not on the allow-list.
    ReturnUrlNotAllowed,
    /// The configuration is not usable (a base URL that is not absolute, say).
    Config(String),
    /// The link is unknown, used or expired.
    Link,
    /// The callback's state is unknown or was used (forged or replayed), or the browser is not
    /// the one that opened the link, or the consent took too long.
    Callback,
    /// The consent URL could not be built.
    Consent(tokenkit::BuildError),
    /// The connection's values are refused: the provider's spec does not take them (a name it
    /// does not declare, a value that would change the host), or the connection is stored
    /// with other ones.
    Values(String),
    /// The pool failed.
    Pool(ManagerError),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownProvider => f.write_str("no provider of that name is registered"),
            Self::NoConsentFlow => {
                f.write_str("the provider's spec has no authorization code flow")
            }
            Self::ReturnUrlNotAllowed => f.write_str("the return URL is not on the allow-list"),
            Self::Config(why) => write!(f, "the connect configuration is not usable: {why}"),
            Self::Link => f.write_str("the connect link is unknown, used or expired"),
            Self::Callback => f.write_str(
                "the callback does not belong to a consent this browser started (unknown, used or expired)",
            ),
            Self::Consent(e) => write!(f, "cannot build the consent URL: {e}"),
            Self::Values(why) => write!(f, "the connection's values are refused: {why}"),
            Self::Pool(e) => write!(f, "the pool failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// What the connect flow asks of a pool, whatever its client and store.
trait Connector: Send + Sync {
    fn consent_url(
        &self,
        values: &ConnectionValues,
        request: &ConsentRequest<'_>,
    ) -> Result<String, ConnectError>;
    fn sends_pkce_verifier(&self) -> bool;
    /// The server variables a connection may set.
    fn variables(&self) -> &'static [Variable];
    /// Refuses values the client's spec does not take.
    fn check_values(&self, values: &ConnectionValues) -> Result<(), ConnectError>;
    fn stored_values(
        &self,
        connection: String,
    ) -> BoxFuture<'static, Result<Option<ConnectionValues>, ManagerError>>;
    fn is_stored(&self, connection: String) -> BoxFuture<'static, Result<bool, ManagerError>>;
    fn exchange(
        &self,
        connection: String,
        values: ConnectionValues,
        exchange: CodeExchange,
    ) -> BoxFuture<'static, Result<(), ManagerError>>;
    fn remove(
        &self,
        connection: String,
    ) -> BoxFuture<'static, Result<tokenkit::Revocation, ManagerError>>;
}

impl<C, S> Connector for TokenPool<C, S>
where
    C: RefreshClient + 'static,
    S: tokenkit::TokenStore + 'static,
{
    fn consent_url(
        &self,
        values: &ConnectionValues,
        request: &ConsentRequest<'_>,
    ) -> Result<String, ConnectError> {
        let client = self.client_with(values).map_err(values_refused)?;
        let grants = client.grants().ok_or(ConnectError::NoConsentFlow)?;
        grants
            .consent_url(request)
            .ok_or(ConnectError::NoConsentFlow)?
            .map_err(ConnectError::Consent)
    }

    fn variables(&self) -> &'static [Variable] {
        self.client().variables()
    }

    fn check_values(&self, values: &ConnectionValues) -> Result<(), ConnectError> {
        self.client_with(values).map(drop).map_err(values_refused)
    }

    fn stored_values(
        &self,
        connection: String,
    ) -> BoxFuture<'static, Result<Option<ConnectionValues>, ManagerError>> {
        let pool = self.clone();
        Box::pin(async move { pool.stored_values(&connection).await })
    }

    fn sends_pkce_verifier(&self) -> bool {
        self.client()
            .grants()
            .is_some_and(|g| g.sends_pkce_verifier())
    }

    fn is_stored(&self, connection: String) -> BoxFuture<'static, Result<bool, ManagerError>> {
        let pool = self.clone();
        Box::pin(async move { pool.is_stored(&connection).await })
    }

    fn exchange(
        &self,
        connection: String,
        values: ConnectionValues,
        exchange: CodeExchange,
    ) -> BoxFuture<'static, Result<(), ManagerError>> {
        let pool = self.clone();
        Box::pin(async move {
            if values.is_empty() {
                pool.seed_from_code(&connection, &exchange).await.map(drop)
            } else {
                pool.seed_from_code_with(&connection, &values, &exchange)
                    .await
                    .map(drop)
            }
        })
    }

    fn remove(
        &self,
        connection: String,
    ) -> BoxFuture<'static, Result<tokenkit::Revocation, ManagerError>> {
        let pool = self.clone();
        Box::pin(async move { pool.revoke_and_remove(&connection).await })
    }
}

/// The reason a pool gave for refusing values.
fn values_refused(e: ManagerError) -> ConnectError {
    match e {
        ManagerError::Values(e) => ConnectError::Values(e.reason),
        other => ConnectError::Pool(other),
    }
}

/// One registered provider.
struct Provider {
    pool: Arc<dyn Connector>,
    scopes: Vec<String>,
    /// The issuer a redirect's `iss` must name; `None`: the consent URL's origin.
    issuer: Option<String>,
    /// The server variables the connect page asks the customer for, where a link did not
    /// carry them (names, as [`ConnectBuilder::ask_for`] got them; checked by `build`).
    asks: Vec<String>,
}

/// The connect flow over one or more pools (see the crate docs). Cheap to clone; clones share
/// their links and consents.
#[derive(Clone)]
pub struct Connect {
    inner: Arc<Inner>,
}

struct Inner {
    config: ConnectConfig,
    /// `base_url`, parsed.
    base: url::Url,
    allowed: Vec<url::Url>,
    providers: HashMap<String, Provider>,
    pending: Mutex<flow::Pending>,
    events: broadcast::Sender<ConnectEvent>,
}

impl fmt::Debug for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut providers: Vec<&str> = self.inner.providers.keys().map(String::as_str).collect();
        providers.sort_unstable();
        f.debug_struct("Connect")
            .field("base_url", &self.inner.config.base_url)
            .field("providers", &providers)
            .finish_non_exhaustive()
    }
}

/// Registers the providers of a [`Connect`] (see [`Connect::builder`]).
pub struct ConnectBuilder {
    config: ConnectConfig,
    providers: HashMap<String, Provider>,
}

impl ConnectBuilder {
    /// Registers `pool` as provider `name`, asking for `scopes`. A redirect's `iss`, where the
    /// provider sends one, must be the consent URL's origin unless [`ConnectBuilder::issuer`]
    /// says otherwise.
    pub fn provider<C, S>(mut self, name: &str, pool: TokenPool<C, S>, scopes: &[&str]) -> Self
    where
        C: RefreshClient + 'static,
        S: tokenkit::TokenStore + 'static,
    {
        let provider = Provider {
            pool: Arc::new(pool),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            issuer: None,
            asks: Vec::new(),
        };
        self.providers.insert(name.to_owned(), provider);
        self
    }

    /// Sets the issuer identifier provider `name`'s redirects carry in `iss` (RFC 9207; its
    /// authorization server metadata's `issuer`), where it is not the consent URL's origin.
    pub fn issuer(mut self, name: &str, issuer: &str) -> Self {
        if let Some(provider) = self.providers.get_mut(name) {
            provider.issuer = Some(issuer.to_owned());
        }
        self
    }

    /// Makes the connect page ask the customer for provider `name`'s server `variables` (a
    /// tenant's subdomain, a region: names as the spec's server URL writes them) where a link
    /// does not carry them, for a pool that serves many tenants. The answers are checked as
    /// the client's builder checks its own and stored with the connection; a reconnect uses
    /// the stored ones and asks nothing.
    pub fn ask_for(mut self, name: &str, variables: &[&str]) -> Self {
        if let Some(provider) = self.providers.get_mut(name) {
            provider.asks = variables.iter().map(|v| (*v).to_owned()).collect();
        }
        self
    }

    /// The flow; the base URL and every allowed return URL must be absolute `https://` URLs
    /// (`http://` only on loopback, for development), and every variable
    /// [`ConnectBuilder::ask_for`] names must be one the provider's spec declares.
    pub fn build(self) -> Result<Connect, ConnectError> {
        for (name, provider) in &self.providers {
            let declared = provider.pool.variables();
            if let Some(unknown) = provider
                .asks
                .iter()
                .find(|a| !declared.iter().any(|v| v.name == a.as_str()))
            {
                return Err(ConnectError::Config(format!(
                    "{name}'s spec declares no server variable {unknown:?} to ask for"
                )));
            }
        }
        let base = absolute(&self.config.base_url)?;
        let allowed = self
            .config
            .allowed_return_urls
            .iter()
            .map(|u| absolute(u))
            .collect::<Result<_, _>>()?;
        if self.config.link_lifetime.is_zero() || self.config.consent_lifetime.is_zero() {
            return Err(ConnectError::Config("a lifetime of zero".into()));
        }
        Ok(Connect {
            inner: Arc::new(Inner {
                base,
                allowed,
                config: self.config,
                providers: self.providers,
                pending: Mutex::new(flow::Pending::default()),
                events: broadcast::channel(1024).0,
            }),
        })
    }
}

impl Connect {
    /// A connect flow served at `config.base_url`; register its providers, then `build`.
    pub fn builder(config: ConnectConfig) -> ConnectBuilder {
        ConnectBuilder {
            config,
            providers: HashMap::new(),
        }
    }

    /// The redirect URI to register with each provider: `<base_url>/callback`.
    pub fn redirect_uri(&self) -> String {
        self.inner.endpoint("callback")
    }

    /// Every connect's events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ConnectEvent> {
        self.inner.events.subscribe()
    }

    /// Removes `connection` of provider `name`: revokes its refresh token and access token at
    /// the provider where its spec maps a revocation operation (RFC 7009), then deletes it
    /// from its pool's store (under its lock, whatever the provider answered). Answers what the
    /// provider said.
    pub async fn disconnect(
        &self,
        name: &str,
        connection: &str,
    ) -> Result<tokenkit::Revocation, ConnectError> {
        let provider = self.inner.provider(name)?;
        let revocation = provider
            .pool
            .remove(connection.to_owned())
            .await
            .map_err(ConnectError::Pool)?;
        self.inner.emit(ConnectEvent::Disconnected {
            provider: name.to_owned(),
            connection: connection.to_owned(),
            revocation,
        });
        Ok(revocation)
    }
}

impl Inner {
    fn provider(&self, name: &str) -> Result<&Provider, ConnectError> {
        self.providers
            .get(name)
            .ok_or(ConnectError::UnknownProvider)
    }

    /// `<base_url>/<path>`.
    fn endpoint(&self, path: &str) -> String {
        format!("{}/{path}", self.base.as_str().trim_end_matches('/'))
    }

    fn emit(&self, event: ConnectEvent) {
        let _ = self.events.send(event);
    }
}

/// `text` as an absolute URL a browser may be sent to: `https`, or `http` on loopback.
fn absolute(text: &str) -> Result<url::Url, ConnectError> {
    let url = url::Url::parse(text)
        .map_err(|_| ConnectError::Config(format!("{text:?} is not an absolute URL")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(ConnectError::Config(format!(
            "{text:?} must be https (http only on loopback)"
        ))),
    }
}
