//! Why no access token could be had.

use super::Cached;
use crate::error::RefreshError;
use crate::store::StoreError;
use std::fmt;
use std::sync::Arc;

/// Why no access token could be had. Never contains a token.
#[derive(Clone, PartialEq, Eq)]
pub enum ManagerError {
    /// The refresh token is dead (or may be spent) and nothing could replace the set. The
    /// stored set stays, for inspection, marked dead ([`Stored::dead`](crate::Stored)): no
    /// process sends its refresh token again, and one process reports it
    /// ([`TokenEvent::ReauthenticationRequired`](crate::TokenEvent)). Store a new set
    /// (`seed`, `replace`) once the user has signed in again.
    ReAuthenticate {
        /// The provider's answer, when a refresh was tried.
        cause: Option<RefreshError>,
    },
    /// The refresh failed for another reason (after the retries its kind allows).
    Refresh(RefreshError),
    /// The store failed.
    Store(StoreError),
    /// Another process held the refresh lock for longer than `lock_wait`.
    LockTimeout,
    /// The refresh task ended without an answer: it panicked, the runtime shut down, or the
    /// call was made outside a Tokio runtime. The next call starts a new refresh.
    Interrupted,
    /// The refresher lost the store's lock before it could send (or store) a refresh; nothing
    /// was sent with a token it could not prove it may send.
    LockLost,
    /// The configuration was refused; see [`ManagerConfig::validate`](super::ManagerConfig::validate).
    Config(String),
    /// A refresh with the stored refresh token was sent (by this process or another) and its
    /// answer is not stored yet; the token is not sent again. Try again shortly: the sender
    /// stores the new set, or after a grace the credential needs re-authenticating.
    InFlight,
    /// The API rejected the access token, and no other one can be had now: a forced refresh
    /// for this credential ran less than `rejection_interval` ago (an API that rejects every
    /// token must not turn each request into a refresh), or the refresh brought the same token.
    /// Pass the API's answer on.
    TokenRejected,
    /// A pool's connection that holds no set: never connected, or removed. A pool fills a
    /// connection only with what the application stores for it (`seed`, `replace`,
    /// `seed_from_code`), never with the application's own client-credentials token unless
    /// [`PoolConfig::grant_fills_connections`](crate::PoolConfig) says so.
    NotConnected,
    /// The stored set was issued by another provider or host (its
    /// [`TokenSet::issuer`](crate::TokenSet) is not this client's): it is neither sent nor
    /// served, nor changed. Two pools or managers share a key: give each provider its own
    /// key prefix.
    OtherIssuer {
        /// The issuer the stored set names (a provider, a host and a client id: no secret).
        stored: String,
    },
    /// The stored set was made for this connection with other values (another tenant, another
    /// region: its [`TokenSet::values`](crate::TokenSet) are not this client's): it is neither
    /// sent nor served, nor changed. A pool builds the connection's client again from the
    /// stored values and tries once more, so this reaches a caller only from a manager the
    /// application built itself, or a set someone changed by hand.
    OtherValues,
    /// A connection's values were refused by the client's spec (a name it does not declare, a
    /// value off a variable's list, one that would change the host or the path): nothing was
    /// sent or stored.
    Values(crate::error::BuildError),
}

impl ManagerError {
    /// True when a later call may succeed without anyone's help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Refresh(e) => e.is_retryable(),
            Self::Store(_)
            | Self::LockTimeout
            | Self::Interrupted
            | Self::LockLost
            | Self::InFlight
            | Self::TokenRejected => true,
            Self::ReAuthenticate { .. }
            | Self::Config(_)
            | Self::NotConnected
            | Self::OtherIssuer { .. }
            | Self::OtherValues
            | Self::Values(_) => false,
        }
    }
}

impl fmt::Display for ManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReAuthenticate { cause: Some(e) } => write!(f, "re-authentication needed: {e}"),
            Self::ReAuthenticate { cause: None } => f.write_str(
                "re-authentication needed: no usable refresh token is stored (none at all, or one an unanswered request may have spent)",
            ),
            Self::Refresh(e) => write!(f, "refresh failed: {e}"),
            Self::Store(e) => write!(f, "{e}"),
            Self::LockTimeout => f.write_str("another refresher held the lock too long"),
            Self::Interrupted => f.write_str("the refresh was interrupted"),
            Self::LockLost => f.write_str("the refresh lock was lost; nothing was sent"),
            Self::Config(why) => write!(f, "invalid token manager configuration: {why}"),
            Self::InFlight => f.write_str(
                "a refresh with the stored refresh token is in flight and its answer not stored yet",
            ),
            Self::TokenRejected => f.write_str(
                "the API rejected the access token and no other one can be had now (a forced refresh ran moments ago, or brought the same token)",
            ),
            Self::NotConnected => f.write_str(
                "not connected: no token set is stored for this connection (never connected, or removed); connect it first",
            ),
            Self::OtherIssuer { stored } => write!(
                f,
                "the stored token set was issued by {stored:?}, not by this client (its provider, host and client id); it is never sent or served here (give each provider and application its own key prefix)"
            ),
            Self::OtherValues => f.write_str(
                "the stored token set was made for this connection with other values (another tenant or region) than this client's; it is never sent or served here",
            ),
            Self::Values(e) => write!(f, "the connection's values are refused: {}", e.reason),
        }
    }
}

impl fmt::Debug for ManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManagerError({self})")
    }
}

impl std::error::Error for ManagerError {}

impl From<StoreError> for ManagerError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}
/// What a finished refresh was, for the tracing span and the metrics.
pub(super) fn outcome_name(result: &Result<Arc<Cached>, ManagerError>) -> &'static str {
    match result {
        Ok(cached) if cached.obtained => "ok",
        // Another process (or call) had stored a fresh set: nothing was sent.
        Ok(_) => "found",
        Err(ManagerError::ReAuthenticate { .. }) => "reauthenticate",
        Err(ManagerError::Refresh(_)) => "refresh_error",
        Err(ManagerError::Store(_)) => "store_error",
        Err(ManagerError::LockTimeout) => "lock_timeout",
        Err(ManagerError::Interrupted) => "interrupted",
        Err(ManagerError::LockLost) => "lock_lost",
        Err(ManagerError::Config(_)) => "config",
        Err(ManagerError::InFlight) => "in_flight",
        Err(ManagerError::TokenRejected) => "token_rejected",
        Err(ManagerError::NotConnected) => "not_connected",
        Err(ManagerError::OtherIssuer { .. }) => "other_issuer",
        Err(ManagerError::OtherValues) => "other_values",
        Err(ManagerError::Values(_)) => "values",
    }
}
