//! What generated clients expand and call by name: the builder setters, the `RefreshClient`
//! and `GrantClient` implementations, the issuer, and the errors of requests a client cannot
//! send.

use crate::error::{BuildError, RefreshError};
use crate::values::Variable;

/// The builder settings every generated client shares (`base_url`, `http_config`,
/// `http_client`), as inherent methods of a builder with a `connection: tokenkit::Connection`
/// field. Generated crates invoke it inside `impl ClientBuilder`.
#[macro_export]
macro_rules! connection_setters {
    () => {
        /// Sends requests to `base_url` instead of the spec's first server: another server of
        /// `SERVERS`, a customer-specific host, or a mock. Plain `http://` is refused except on
        /// loopback (see [`tokenkit::HttpConfig::allow_plain_http`]).
        pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
            self.connection.base_url = base_url.into();
            self
        }

        /// Sends customers for consent to `url` instead of the spec's `authorizationUrl` (a
        /// mock, a provider's regional host); its `{variables}` are filled as the spec's are.
        /// It must be `https://` (plain `http://` only on loopback): the code comes back over it.
        pub fn authorization_endpoint(mut self, url: impl Into<String>) -> Self {
            self.connection.authorization_endpoint = Some(url.into());
            self
        }

        /// Timeouts and the response body cap; see [`tokenkit::HttpConfig`] for the defaults.
        pub fn http_config(mut self, http_config: $crate::HttpConfig) -> Self {
            self.connection.http_config = http_config;
            self
        }

        /// Sends through an HTTP client built from `builder` (a proxy, say). Its timeouts are
        /// then the application's; the body cap still applies, and redirects are turned off
        /// whatever the builder says (a redirected token request would carry the secrets to
        /// another host).
        pub fn http_client(mut self, builder: $crate::reqwest::ClientBuilder) -> Self {
            self.connection.use_http_client(builder);
            self
        }
    };
}

/// Implements [`RefreshClient`](crate::RefreshClient) and `base_url` for a generated client:
/// `refresh_client!(Client, PROVIDER, ROTATION, Outcome)` for a struct with an
/// `endpoint: tokenkit::Endpoint` field and a `refresh_request` method, whose outcome enum has
/// `token_set` (decode, then apply the mapping). Optional, in this order: `reuse_grace = 30`
/// (seconds), `sends = AccessToken` (a provider that exchanges its access token), `client =
/// client_id` (the field holding the client id, part of the client's issuer), `revoke =
/// revoke_token` (its method that revokes a token, where the spec maps `x-token-revoke`),
/// `variables = VARIABLES` (the spec's server variables: the client's inherent `values` and
/// `with_values` then serve a pool's connections with their own values), and `grants`, which makes `RefreshClient::grants` answer the client's own
/// [`GrantClient`](crate::GrantClient) implementation.
#[macro_export]
macro_rules! refresh_client {
    ($client:ty, $provider:expr, $rotation:expr, $outcome:ty $(, reuse_grace = $grace:literal)? $(, sends = $sends:ident)? $(, client = $id:ident)? $(, revoke = $revoke:ident)? $(, variables = $vars:ident)?, grants) => {
        $crate::refresh_client!(@impl $client, $provider, $rotation, $outcome, [$($grace)?], [$($sends)?], [$($id)?], [$($revoke)?], [$($vars)?],
            fn grants(&self) -> Option<&dyn $crate::GrantClient> {
                Some(self)
            }
        );
    };
    ($client:ty, $provider:expr, $rotation:expr, $outcome:ty $(, reuse_grace = $grace:literal)? $(, sends = $sends:ident)? $(, client = $id:ident)? $(, revoke = $revoke:ident)? $(, variables = $vars:ident)?) => {
        $crate::refresh_client!(@impl $client, $provider, $rotation, $outcome, [$($grace)?], [$($sends)?], [$($id)?], [$($revoke)?], [$($vars)?],);
    };
    (@revoke) => {};
    (@revoke $revoke:ident) => {
        fn revoke<'a>(
            &'a self,
            token: &'a $crate::Secret,
            hint: $crate::TokenTypeHint,
        ) -> Option<$crate::BoxFuture<'a, Result<(), $crate::RefreshError>>> {
            Some(Box::pin(self.$revoke(token, hint)))
        }
    };
    (@variables $client:ty) => {};
    (@variables $client:ty, $vars:ident) => {
        fn variables(&self) -> &'static [$crate::Variable] {
            $vars
        }

        fn values(&self) -> &$crate::ConnectionValues {
            <$client>::values(self)
        }

        fn with_values(
            &self,
            values: &$crate::ConnectionValues,
        ) -> Result<Self, $crate::BuildError> {
            <$client>::with_values(self, values)
        }
    };
    (@client $self:ident) => {
        None
    };
    (@client $self:ident $id:ident) => {
        $crate::support::ClientIdText::client_id_text(&$self.$id)
    };
    (@sends) => {
        $crate::RefreshWith::RefreshToken
    };
    (@sends AccessToken) => {
        $crate::RefreshWith::AccessToken
    };
    (@impl $client:ty, $provider:expr, $rotation:expr, $outcome:ty, [$($grace:literal)?], [$($sends:ident)?], [$($id:ident)?], [$($revoke:ident)?], [$($vars:ident)?], $($grants:item)?) => {
        impl $client {
            /// The base URL requests go to.
            pub fn base_url(&self) -> &str {
                self.endpoint.base_url()
            }
        }

        impl $crate::RefreshClient for $client {
            fn provider(&self) -> &'static str {
                $provider
            }

            fn rotation(&self) -> $crate::Rotation {
                $rotation
            }

            fn attempt_timeout(&self) -> Option<std::time::Duration> {
                self.endpoint.timeout()
            }

            fn issuer(&self) -> String {
                $crate::support::issuer(
                    $provider,
                    self.endpoint.base_url(),
                    $crate::refresh_client!(@client self $($id)?),
                )
            }

            $(
                fn reuse_grace(&self) -> Option<std::time::Duration> {
                    Some(std::time::Duration::from_secs($grace))
                }
            )?

            $($grants)?

            $crate::refresh_client!(@variables $client $(, $vars)?);

            $crate::refresh_client!(@revoke $($revoke)?);

            fn refresh_with(&self) -> Option<$crate::RefreshWith> {
                Some($crate::refresh_client!(@sends $($sends)?))
            }

            fn refresh<'a>(
                &'a self,
                refresh_token: &'a $crate::RefreshToken,
            ) -> $crate::BoxFuture<'a, Result<$crate::TokenSet, $crate::RefreshError>> {
                Box::pin(async move {
                    let body = self.refresh_request(refresh_token);
                    let sends = $crate::refresh_client!(@sends $($sends)?);
                    self.endpoint
                        .refresh(&body, refresh_token, sends, $rotation, <$outcome>::token_set)
                        .await
                })
            }
        }
    };
}

/// Implements [`RefreshClient`](crate::RefreshClient) and `base_url` for a generated client
/// whose spec has only grants: `grant_client!(Client, PROVIDER, login_endpoint)`, where
/// `login_endpoint` is the field of one of its endpoints; optional, as for
/// [`refresh_client!`]: `client = ..`, `revoke = ..`, `variables = ..`. Its `refresh` sends nothing and fails
/// ([`no_refresh_operation`]); `grants` answers the client's own
/// [`GrantClient`](crate::GrantClient) implementation.
#[macro_export]
macro_rules! grant_client {
    ($client:ty, $provider:expr, $endpoint:ident $(, client = $id:ident)? $(, revoke = $revoke:ident)? $(, variables = $vars:ident)?) => {
        impl $client {
            /// The base URL requests go to.
            pub fn base_url(&self) -> &str {
                self.$endpoint.base_url()
            }
        }

        impl $crate::RefreshClient for $client {
            fn provider(&self) -> &'static str {
                $provider
            }

            fn rotation(&self) -> $crate::Rotation {
                $crate::Rotation::Optional
            }

            fn refresh_with(&self) -> Option<$crate::RefreshWith> {
                None
            }

            fn attempt_timeout(&self) -> Option<std::time::Duration> {
                self.$endpoint.timeout()
            }

            fn issuer(&self) -> String {
                $crate::support::issuer(
                    $provider,
                    self.$endpoint.base_url(),
                    $crate::refresh_client!(@client self $($id)?),
                )
            }

            fn grants(&self) -> Option<&dyn $crate::GrantClient> {
                Some(self)
            }

            $crate::refresh_client!(@variables $client $(, $vars)?);

            $crate::refresh_client!(@revoke $($revoke)?);

            fn refresh<'a>(
                &'a self,
                _refresh_token: &'a $crate::RefreshToken,
            ) -> $crate::BoxFuture<'a, Result<$crate::TokenSet, $crate::RefreshError>> {
                Box::pin(async { Err($crate::support::no_refresh_operation()) })
            }
        }
    };
}

/// A generated client's issuer ([`RefreshClient::issuer`](crate::RefreshClient::issuer)):
/// `<provider> <scheme>://<host>[:<port>]` of `base_url` (the path left out: one host's
/// endpoints issue the same tokens), then ` client <id>` where the client keeps its client id
/// (two OAuth applications of one provider are two issuers).
pub fn issuer(provider: &str, base_url: &str, client_id: Option<&str>) -> String {
    let origin = match reqwest::Url::parse(base_url) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => base_url.to_owned(),
    };
    match client_id {
        Some(id) => format!("{provider} {origin} client {id}"),
        None => format!("{provider} {origin}"),
    }
}

/// The error of a refresh asked of a client whose spec has no refresh operation (it issues
/// tokens only by grants): nothing was sent, and sending again will not help.
pub fn no_refresh_operation() -> RefreshError {
    RefreshError::not_sent()
}

/// The error of an authorization-code exchange without the PKCE verifier its spec requires:
/// nothing was sent.
pub fn missing_verifier() -> RefreshError {
    RefreshError::not_sent()
}

/// The choice `value` names among a server variable's `choices` (the spec's `enum`), for a
/// connection's values ([`RefreshClient::with_values`](crate::RefreshClient::with_values)).
pub fn choice<T: Copy>(name: &str, value: &str, choices: &[(&str, T)]) -> Result<T, BuildError> {
    choices
        .iter()
        .find(|(text, _)| *text == value)
        .map(|(_, choice)| *choice)
        .ok_or_else(|| BuildError {
            reason: format!(
                "{value:?} is not a value of the server variable {name:?} (it takes {})",
                choices
                    .iter()
                    .map(|(text, _)| *text)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// The error for a connection value named `name` that no server variable of the spec has: a
/// misspelt name fails instead of leaving the builder's value in place.
pub fn unknown_variable(name: &str, variables: &[Variable]) -> BuildError {
    let known: Vec<&str> = variables.iter().map(|v| v.name).collect();
    BuildError {
        reason: if known.is_empty() {
            format!(
                "the provider's spec declares no server variable, so a connection cannot set {name:?}"
            )
        } else {
            format!(
                "the provider's spec declares no server variable {name:?} (it declares {})",
                known.join(", ")
            )
        },
    }
}

/// The client id a generated client keeps, as its issuer names it: a required one, or an
/// optional one (a public client's body `client_id`) when it is set.
pub trait ClientIdText {
    /// The id, if the client has one.
    fn client_id_text(&self) -> Option<&str>;
}

impl ClientIdText for String {
    fn client_id_text(&self) -> Option<&str> {
        Some(self)
    }
}

impl ClientIdText for Option<String> {
    fn client_id_text(&self) -> Option<&str> {
        self.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_values_are_checked_by_name_and_choice() {
        let variables = [Variable {
            name: "region",
            description: "",
            default: Some("eu"),
            choices: &["eu", "us"],
        }];
        let choices = [("eu", 1), ("us", 2)];
        assert_eq!(choice("region", "us", &choices), Ok(2));
        let off = choice("region", "mars", &choices).unwrap_err();
        assert!(off.reason.contains("\"mars\"") && off.reason.contains("eu, us"));
        let unknown = unknown_variable("regoin", &variables);
        assert!(unknown.reason.contains("\"regoin\"") && unknown.reason.contains("region"));
        assert!(
            unknown_variable("x", &[])
                .reason
                .contains("no server variable")
        );
    }

    #[test]
    fn an_optional_client_id_names_its_issuer_once_set() {
        let url = "https://id.example/oauth";
        let unset: Option<String> = None;
        let set = Some("app-a".to_owned());
        let required = "app-b".to_owned();
        assert_eq!(
            issuer("p", url, unset.client_id_text()),
            "p https://id.example"
        );
        assert_eq!(
            issuer("p", url, set.client_id_text()),
            "p https://id.example client app-a"
        );
        assert_ne!(
            issuer("p", url, set.client_id_text()),
            issuer("p", url, required.client_id_text())
        );
    }
}
