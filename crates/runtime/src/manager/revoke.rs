//! A removal that revokes first (RFC 7009): the stored set's refresh token, then its access
//! token, at the provider's revocation operation where the spec maps one; then the set is
//! deleted, whatever the provider answered, and the answers are reported.

use super::{Inner, ManagerError};
use crate::client::{RefreshClient, TokenTypeHint};
use crate::error::ErrorKind;
use crate::secret::Secret;
use crate::store::TokenStore;
use std::sync::Arc;

/// What the provider answered one revocation of a removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The provider answered 2xx: revoked (or a token it no longer knew).
    Revoked,
    /// The spec maps no revocation operation: nothing was sent.
    NotOffered,
    /// The stored set had no such token (no set was stored, or it had no refresh token).
    NoToken,
    /// The revocation failed (the set was deleted anyway): why, by kind.
    Failed(ErrorKind),
}

/// What a removal's revocations got (see [`TokenPool::revoke_and_remove`](crate::TokenPool)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The refresh token's revocation.
    pub refresh_token: RevokeOutcome,
    /// The access token's.
    pub access_token: RevokeOutcome,
}

impl<C: RefreshClient + 'static, S: TokenStore> Inner<C, S> {
    /// Under the lock: revokes the stored set's tokens, deletes the set, forgets it here.
    pub(super) async fn remove_revoking(self: Arc<Self>) -> Result<Revocation, ManagerError> {
        self.cancel_unsaved();
        let lock = self.wait_for_lock().await?;
        // Another issuer's set is neither this client's to revoke nor to remove.
        let stored = match self.load_under(&lock).await {
            Ok(stored) => stored,
            Err(e) => {
                lock.release().await;
                return Err(e);
            }
        };
        let tokens = stored.as_ref().map(|s| &s.tokens);
        let refresh = tokens
            .and_then(|t| t.refresh_token.as_ref())
            .map(|t| Secret::new(t.expose()));
        let access = tokens.map(|t| Secret::new(t.access_token.expose()));
        let revocation = Revocation {
            refresh_token: self
                .revoke_one(refresh.as_ref(), TokenTypeHint::RefreshToken)
                .await,
            access_token: self
                .revoke_one(access.as_ref(), TokenTypeHint::AccessToken)
                .await,
        };
        self.delete_and_forget(lock).await?;
        Ok(revocation)
    }

    async fn revoke_one(&self, token: Option<&Secret>, hint: TokenTypeHint) -> RevokeOutcome {
        let Some(token) = token.filter(|t| !t.expose().is_empty()) else {
            return RevokeOutcome::NoToken;
        };
        let Some(revoking) = self.client.revoke(token, hint) else {
            return RevokeOutcome::NotOffered;
        };
        match revoking.await {
            Ok(()) => RevokeOutcome::Revoked,
            Err(e) => {
                tracing::warn!(credential = %self.key, error = %e, hint = hint.as_str(), "the provider did not revoke a removed connection's token");
                RevokeOutcome::Failed(e.kind())
            }
        }
    }
}
