//! What an application holds or implements: the traits every generated client implements
//! ([`RefreshClient`], and [`GrantClient`] for the grants besides the refresh), the values they
//! take, and [`Rotation`], the provider's refresh-token policy.

use crate::authorization::{ConsentRequest, PkceVerifier};
use crate::error::{BuildError, RefreshError};
use crate::secret::{RefreshToken, Secret};
use crate::token::TokenSet;
use crate::values::{ConnectionValues, Variable};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future that can move between threads. Boxing keeps [`RefreshClient`] usable as
/// `dyn RefreshClient`; one allocation is nothing next to an HTTP round trip.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a provider does with refresh tokens, as its spec declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rotation {
    /// Each refresh token works once; sending it again may revoke the whole token family.
    OneTime,
    /// Every refresh returns a new refresh token; the old one may stop working.
    Rotating,
    /// A new refresh token may come back; when none does, the old one stays valid.
    Optional,
}

impl Rotation {
    /// Whether a refresh token whose request may have reached the provider can be sent again.
    pub fn resend_is_safe(self) -> bool {
        self == Self::Optional
    }
}

/// What a provider's refresh request sends to get a new set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefreshWith {
    /// The refresh token (RFC 6749 §6): the common case.
    RefreshToken,
    /// The current access token, while it is valid: providers that exchange a long-lived
    /// access token for a new one and issue no refresh token.
    AccessToken,
}

/// Gets a new [`TokenSet`] for a provider: by a refresh where its spec has a refresh operation,
/// by its grants ([`RefreshClient::grants`]) otherwise. Every generated client implements it;
/// it is what the token manager holds.
pub trait RefreshClient: Send + Sync {
    /// The provider's name, as its spec file is named.
    fn provider(&self) -> &'static str;

    /// The provider's rotation policy. A provider that issues no refresh tokens answers
    /// `Optional`: nothing it sends can be spent by sending it twice.
    fn rotation(&self) -> Rotation;

    /// What [`RefreshClient::refresh`] sends: the refresh token (the default), the current
    /// access token, or nothing at all (`None`) for a provider whose spec has only grants, whose
    /// `refresh` sends no request and fails; the token manager then gets each new set by the
    /// client-credentials grant.
    fn refresh_with(&self) -> Option<RefreshWith> {
        Some(RefreshWith::RefreshToken)
    }

    /// Sends one refresh request with `refresh_token` (the access token, where
    /// [`RefreshClient::refresh_with`] says so). A response without a new refresh token yields
    /// the one that was sent where the rotation is `optional`, and is a bad response otherwise;
    /// no error or log line contains either token.
    fn refresh<'a>(
        &'a self,
        refresh_token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<TokenSet, RefreshError>>;

    /// The longest one refresh request can take (the HTTP timeout), when the client knows it:
    /// the token manager refuses a lock that one attempt could outlive.
    fn attempt_timeout(&self) -> Option<Duration> {
        None
    }

    /// The grants besides the refresh that the provider's spec offers (client credentials,
    /// an authorization-code exchange, a password login), when it offers any: the token
    /// manager gets a new set through them when no refresh token is usable.
    fn grants(&self) -> Option<&dyn GrantClient> {
        None
    }

    /// How long the provider still accepts a one-time or rotating refresh token after it was
    /// first sent (the spec's `reuse-grace`), so that a refresh whose answer was lost may be
    /// sent again within it. `None`: never (the default; resending trips reuse detection).
    fn reuse_grace(&self) -> Option<Duration> {
        None
    }

    /// Who issues this client's tokens: its provider and, for generated clients, the origin
    /// (scheme, host and port) of its base URL, where its refresh tokens are sent. The token
    /// manager records it with each stored set and never sends a stored refresh token (nor
    /// serves an access token) that another issuer made: one store can hold many providers
    /// and many tenant hosts without a token crossing between them.
    fn issuer(&self) -> String {
        self.provider().to_owned()
    }

    /// Revokes `token` at the provider (RFC 7009), where the spec maps a revocation operation
    /// (`x-token-revoke`); `None` where it maps none. A removal calls it
    /// ([`TokenPool::revoke_and_remove`](crate::TokenPool::revoke_and_remove)).
    fn revoke<'a>(
        &'a self,
        token: &'a Secret,
        hint: TokenTypeHint,
    ) -> Option<BoxFuture<'a, Result<(), RefreshError>>> {
        let _ = (token, hint);
        None
    }

    /// The server variables a connection may set with its own values (a customer's tenant,
    /// its region), as the spec declares them; empty where the provider lives on one host.
    fn variables(&self) -> &'static [Variable] {
        &[]
    }

    /// The connection values this client was built with ([`RefreshClient::with_values`]);
    /// none for a client configured once. The token manager records them with every set it
    /// stores and refuses a stored set made with other values.
    fn values(&self) -> &ConnectionValues {
        ConnectionValues::none()
    }

    /// This client for a connection with its own `values`: each replaces the builder's value
    /// of that server variable and is checked as the builder checks its own (a value that would
    /// change the host or the path, a name the spec does not declare, a value off a variable's
    /// list: refused). A pool calls it for every connection that carries values. Clients
    /// without server variables, and `Arc` or `Box` around a client, refuse every value.
    fn with_values(&self, values: &ConnectionValues) -> Result<Self, BuildError>
    where
        Self: Sized,
    {
        Err(match values.iter().next() {
            Some((name, _)) => crate::support::unknown_variable(name, self.variables()),
            None => BuildError {
                reason: "this client cannot be rebuilt for a connection's values".into(),
            },
        })
    }
}

macro_rules! forward_refresh_client {
    ($($wrapper:ident),*) => {$(
        impl<T: RefreshClient + ?Sized> RefreshClient for $wrapper<T> {
            fn provider(&self) -> &'static str {
                (**self).provider()
            }

            fn rotation(&self) -> Rotation {
                (**self).rotation()
            }

            fn refresh_with(&self) -> Option<RefreshWith> {
                (**self).refresh_with()
            }

            fn refresh<'a>(
                &'a self,
                refresh_token: &'a RefreshToken,
            ) -> BoxFuture<'a, Result<TokenSet, RefreshError>> {
                (**self).refresh(refresh_token)
            }

            fn attempt_timeout(&self) -> Option<Duration> {
                (**self).attempt_timeout()
            }

            fn grants(&self) -> Option<&dyn GrantClient> {
                (**self).grants()
            }

            fn reuse_grace(&self) -> Option<Duration> {
                (**self).reuse_grace()
            }

            fn issuer(&self) -> String {
                (**self).issuer()
            }

            fn revoke<'a>(
                &'a self,
                token: &'a Secret,
                hint: TokenTypeHint,
            ) -> Option<BoxFuture<'a, Result<(), RefreshError>>> {
                (**self).revoke(token, hint)
            }

            fn variables(&self) -> &'static [Variable] {
                (**self).variables()
            }

            fn values(&self) -> &ConnectionValues {
                (**self).values()
            }

            fn with_values(&self, _values: &ConnectionValues) -> Result<Self, BuildError>
            where
                Self: Sized,
            {
                Err(BuildError {
                    reason: "a client behind an Arc or a Box cannot be rebuilt for a connection's values: give the pool the client itself".into(),
                })
            }
        }
    )*};
}

forward_refresh_client!(Box, Arc);

/// What kind of token a revocation revokes (RFC 7009 §2.1 `token_type_hint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenTypeHint {
    /// A refresh token: the provider revokes its grant, and the access tokens of it where it
    /// can (RFC 7009 §2.1).
    RefreshToken,
    /// An access token.
    AccessToken,
}

impl TokenTypeHint {
    /// As RFC 7009 writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefreshToken => "refresh_token",
            Self::AccessToken => "access_token",
        }
    }
}

/// A grant a spec can offer besides the refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// The client's own credentials (RFC 6749 §4.4): no user, no refresh token needed.
    ClientCredentials,
    /// An authorization code from a user's consent (RFC 6749 §4.1), optionally with PKCE.
    AuthorizationCode,
    /// A user's name and password (RFC 6749 §4.3), or a provider's login call.
    Password,
    /// A signed JWT as the grant (RFC 7523 §2.1): service accounts, token exchange.
    JwtBearer,
}

/// What an authorization-code exchange sends besides the client's own values.
#[derive(Clone, Debug)]
pub struct CodeExchange {
    /// The code from the redirect.
    pub code: Secret,
    /// The redirect URI the code was issued for (sent where the spec maps it).
    pub redirect_uri: String,
    /// The PKCE verifier whose challenge went into the authorization URL (sent where the spec
    /// maps it).
    pub verifier: Option<PkceVerifier>,
}

/// A user's credentials for a password (or login) grant.
#[derive(Clone, Debug)]
pub struct PasswordLogin {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
}

/// The grants a generated client offers besides the refresh, for code that holds any provider
/// (the token manager re-authenticates through it). Each method answers `None` when the
/// provider's spec does not offer that grant; the generated clients also have typed methods
/// for exactly the grants their spec maps.
pub trait GrantClient: Send + Sync {
    /// The grants the spec maps, in its order.
    fn grant_types(&self) -> &'static [GrantType];

    /// A new token set for the client itself (client credentials).
    fn client_credentials(&self) -> Option<BoxFuture<'_, Result<TokenSet, RefreshError>>> {
        None
    }

    /// A token set for an authorization code.
    fn exchange_code<'a>(
        &'a self,
        exchange: &'a CodeExchange,
    ) -> Option<BoxFuture<'a, Result<TokenSet, RefreshError>>> {
        let _ = exchange;
        None
    }

    /// A token set for a user's credentials.
    fn password<'a>(
        &'a self,
        login: &'a PasswordLogin,
    ) -> Option<BoxFuture<'a, Result<TokenSet, RefreshError>>> {
        let _ = login;
        None
    }

    /// A token set for a signed assertion (the JWT-bearer grant; sign one with
    /// [`AssertionClaims::sign`](crate::AssertionClaims::sign)).
    fn jwt_bearer<'a>(
        &'a self,
        assertion: &'a Secret,
    ) -> Option<BoxFuture<'a, Result<TokenSet, RefreshError>>> {
        let _ = assertion;
        None
    }

    /// The URL to send a customer to for consent (the spec's authorization code flow, or the
    /// builder's `authorization_endpoint`), with this client's id; `None` where the spec has
    /// no such flow.
    fn consent_url(&self, request: &ConsentRequest<'_>) -> Option<Result<String, BuildError>> {
        let _ = request;
        None
    }

    /// Whether the code exchange sends a PKCE verifier (where the spec maps one): a connect
    /// flow then makes one and puts its challenge in the consent URL.
    fn sends_pkce_verifier(&self) -> bool {
        false
    }
}
