//! A new set when no refresh token is usable (the application's hook, or the client-credentials
//! grant where the credential's origin allows it), and the sets the application puts in place:
//! an authorization code's, a replacement, a removal.

use super::config::ClientCredentialsFallback;
use super::persist::Held;
use super::{Cached, Inner, ManagerError, locked};
use crate::client::{BoxFuture, RefreshClient};
use crate::client::{CodeExchange, GrantType};
use crate::error::{ErrorKind, RefreshError};
use crate::store::{Saved, StoreLock, Stored, TokenStore};
use crate::token::{Origin, TokenSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl<C: RefreshClient + 'static, S: TokenStore> Inner<C, S> {
    /// A new set when no refresh token is usable (none stored, dead, expired, or maybe spent):
    /// from the application's hook when it gave one, else by the client-credentials grant when
    /// the provider's spec offers it and the credential's origin allows it
    /// ([`ClientCredentialsFallback`]), stored like a refreshed set. Without either, or when
    /// that fails for good, [`ManagerError::ReAuthenticate`], reported once.
    pub(super) async fn reauthenticate(
        &self,
        current: Option<&Stored>,
        cause: Option<RefreshError>,
        lock: &StoreLock,
    ) -> Held {
        let held = self.new_set(current, cause, lock).await;
        if let Held::Done(Err(ManagerError::ReAuthenticate { cause })) = &held {
            self.report_dead(current, cause.as_ref(), lock).await;
        }
        held
    }

    /// A new set by the hook or the client-credentials grant, stored; see `reauthenticate`.
    async fn new_set(
        &self,
        current: Option<&Stored>,
        cause: Option<RefreshError>,
        lock: &StoreLock,
    ) -> Held {
        let hook = locked(&self.reauthenticate).clone();
        let grant = self
            .client
            .grants()
            .and_then(|g| g.client_credentials())
            .filter(|_| self.may_grant_client_credentials(current.map(|s| &s.tokens)));
        let (fetched, origin) = if let Some(hook) = hook {
            (hook().await, Origin::Application)
        } else if let Some(grant) = grant {
            match self.send_grant(grant, lock).await {
                Ok(fetched) => (fetched, Origin::ClientCredentials),
                Err(e) => return Held::Done(Err(e)),
            }
        } else if current.is_none() && self.connection.is_some() {
            // A pool's connection nobody connected (or one removed): nothing to report.
            return Held::Done(Err(ManagerError::NotConnected));
        } else {
            return Held::Done(Err(ManagerError::ReAuthenticate { cause }));
        };
        match fetched {
            Ok(mut tokens) => {
                *locked(&self.rejected) = None;
                tokens.origin.get_or_insert(origin);
                self.persist(tokens, current.map(|s| s.version), lock).await
            }
            Err(e) => Held::Done(Err(self.grant_error(e))),
        }
    }

    /// Whether the client-credentials grant may replace `current` (nothing stored, or a set of
    /// that origin, unless the configuration says otherwise).
    pub(super) fn may_grant_client_credentials(&self, current: Option<&TokenSet>) -> bool {
        if self.connection == Some(super::Connection::Customer) {
            // A customer's connection never becomes the application's own token.
            return false;
        }
        let Some(current) = current else {
            return self.config.client_credentials_fallback != ClientCredentialsFallback::Never;
        };
        match self.config.client_credentials_fallback {
            ClientCredentialsFallback::Always => true,
            ClientCredentialsFallback::Never => false,
            ClientCredentialsFallback::OwnCredentials => match current.origin {
                Some(origin) => origin == Origin::ClientCredentials,
                // Stored before origins were recorded: only client credentials issue no
                // refresh token.
                None => current.refresh_token.is_none(),
            },
        }
    }

    /// Sends a grant as the lock holder: paced like a refresh, only while the lock is
    /// provably held, and bounded like one attempt.
    pub(super) async fn send_grant(
        &self,
        grant: BoxFuture<'_, Result<TokenSet, RefreshError>>,
        lock: &StoreLock,
    ) -> Result<Result<TokenSet, RefreshError>, ManagerError> {
        self.pace().await;
        if !lock.confirm().await {
            return Err(ManagerError::LockLost);
        }
        *locked(&self.last_sent) = Some(Instant::now());
        Ok(self.bounded(grant).await)
    }

    /// A failed grant as the manager reports it; a rejected one also backs off.
    pub(super) fn grant_error(&self, error: RefreshError) -> ManagerError {
        match error.kind() {
            ErrorKind::ReAuthenticate => ManagerError::ReAuthenticate { cause: Some(error) },
            kind => {
                if kind == ErrorKind::Rejected {
                    self.note_rejected(&error);
                }
                ManagerError::Refresh(error)
            }
        }
    }

    /// Stores `tokens` over whatever is stored, under the lock.
    pub(super) async fn replace(
        self: Arc<Self>,
        mut tokens: TokenSet,
    ) -> Result<Arc<Cached>, ManagerError> {
        tokens.origin.get_or_insert(Origin::Application);
        self.cancel_unsaved();
        let lock = self.wait_for_lock().await?;
        let held = match self.load_under(&lock).await {
            Ok(stored) => {
                *locked(&self.rejected) = None;
                self.persist(tokens, stored.map(|s| s.version), &lock).await
            }
            Err(e) => Held::Done(Err(e)),
        };
        let cached = self.settle(lock, held).await?;
        self.publish(Arc::clone(&cached));
        Ok(cached)
    }

    /// Deletes the stored set under the lock and forgets what this process knew of it.
    pub(super) async fn remove(self: Arc<Self>) -> Result<(), ManagerError> {
        self.cancel_unsaved();
        let lock = self.wait_for_lock().await?;
        // Another issuer's set is not this client's to remove.
        if let Err(e) = self.load_under(&lock).await {
            lock.release().await;
            return Err(e);
        }
        self.delete_and_forget(lock).await
    }

    /// Deletes the stored set under `lock` (then released) and forgets what this process
    /// knew of it.
    pub(super) async fn delete_and_forget(&self, lock: StoreLock) -> Result<(), ManagerError> {
        let deleted = self.store.delete(&self.key, &lock).await;
        lock.release().await;
        if deleted? == Saved::LockLost {
            return Err(ManagerError::LockLost);
        }
        self.cache.store(None);
        self.high_water.store(0, Ordering::Release);
        *locked(&self.rejected) = None;
        Ok(())
    }

    /// Exchanges an authorization code under the lock and stores the set over whatever is
    /// stored.
    pub(super) async fn seed_from_code(
        self: Arc<Self>,
        exchange: &CodeExchange,
    ) -> Result<Arc<Cached>, ManagerError> {
        let unoffered = || {
            ManagerError::Config(format!(
                "the {} spec offers no authorization-code grant",
                self.client.provider()
            ))
        };
        let offered = self
            .client
            .grants()
            .is_some_and(|g| g.grant_types().contains(&GrantType::AuthorizationCode));
        if !offered {
            return Err(unoffered());
        }
        self.cancel_unsaved();
        let lock = self.wait_for_lock().await?;
        let held = async {
            let expected = self.load_under(&lock).await?.map(|s| s.version);
            let grant = self
                .client
                .grants()
                .and_then(|g| g.exchange_code(exchange))
                .ok_or_else(unoffered)?;
            match self.send_grant(grant, &lock).await? {
                Ok(mut tokens) => {
                    tokens.origin = Some(Origin::AuthorizationCode);
                    Ok(self.persist(tokens, expected, &lock).await)
                }
                Err(e) => Err(self.grant_error(e)),
            }
        }
        .await
        .unwrap_or_else(|e| Held::Done(Err(e)));
        let cached = self.settle(lock, held).await?;
        self.publish(Arc::clone(&cached));
        Ok(cached)
    }
}
