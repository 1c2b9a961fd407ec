//! The trait every generated client implements, so applications can hold any provider.

use crate::error::RefreshError;
use crate::secret::{RefreshToken, Secret};
use crate::token::TokenSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

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

/// Exchanges a refresh token for a new [`TokenSet`]. Every generated client implements it.
pub trait RefreshClient: Send + Sync {
    /// The provider's name, as its spec file is named.
    fn provider(&self) -> &'static str;

    /// The provider's rotation policy.
    fn rotation(&self) -> Rotation;

    /// Sends one refresh request. A response without a new refresh token yields the one that
    /// was sent; no error or log line contains either token.
    fn refresh<'a>(
        &'a self,
        refresh_token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<TokenSet, RefreshError>>;
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

            fn refresh<'a>(
                &'a self,
                refresh_token: &'a RefreshToken,
            ) -> BoxFuture<'a, Result<TokenSet, RefreshError>> {
                (**self).refresh(refresh_token)
            }
        }
    )*};
}

forward_refresh_client!(Box, Arc);

/// Finishes a generated client's refresh: applies the token mapping to the typed outcome
/// (`into_token_set`, with the refresh token sent and the time the answer arrived) and scrubs
/// the refresh token and every secret the client holds from any error.
pub fn settle<O>(
    outcome: Result<O, RefreshError>,
    sent: &RefreshToken,
    secrets: &[Secret],
    into_token_set: impl FnOnce(O, &RefreshToken, SystemTime) -> Result<TokenSet, RefreshError>,
) -> Result<TokenSet, RefreshError> {
    let received = SystemTime::now();
    outcome
        .and_then(|outcome| into_token_set(outcome, sent, received))
        .map_err(|error| {
            secrets
                .iter()
                .fold(error.redact(sent.expose()), |error, secret| {
                    error.redact(secret.expose())
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::error::ProviderError;

    #[test]
    fn settle_scrubs_every_secret_from_errors() {
        let sent = RefreshToken::new("SNTL-sent");
        let secrets = [Secret::new("SNTL-client-secret")];
        let provider = ProviderError {
            code: None,
            message: Some("SNTL-sent and SNTL-client-secret are wrong".into()),
        };
        let failed: Result<(), RefreshError> = Err(RefreshError::documented(
            ErrorKind::Rejected,
            401,
            provider,
            None,
        ));
        let err = settle(failed, &sent, &secrets, |_, _, _| unreachable!()).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("SNTL"), "{shown}");
    }
}
