//! What happens to a credential over its life, as typed events an application can subscribe to
//! ([`TokenManager::subscribe`](crate::TokenManager::subscribe),
//! [`TokenPool::subscribe`](crate::TokenPool::subscribe)): to tell a customer to connect again,
//! to page someone when a provider fails, to count. No event carries a token or a secret: a
//! connection's name, a provider's name, versions, kinds and times, and a [`RefreshError`],
//! which is secret-free by construction.

use crate::error::{ErrorKind, RefreshError};
use crate::token::Origin;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::broadcast;

/// One thing that happened to one connection (a credential: the key of a single manager, or a
/// pool's connection name).
#[derive(Clone, Debug, PartialEq)]
pub enum TokenEvent {
    /// A new token set was stored and is served: refreshed, or got by a grant or the
    /// application's hook.
    Refreshed {
        /// The provider.
        provider: &'static str,
        /// The connection.
        connection: Arc<str>,
        /// The stored version.
        version: u64,
        /// Where the set came from, when known.
        origin: Option<Origin>,
    },
    /// No usable refresh token and no way to get a new set: the user must sign in or consent
    /// again. `cause` is the provider's answer when a refresh was tried. Sent once per stored
    /// set across replicas (by the process that marked it dead in the store).
    ReauthenticationRequired {
        /// The provider.
        provider: &'static str,
        /// The connection.
        connection: Arc<str>,
        /// Why, when a refresh was tried.
        cause: Option<RefreshError>,
    },
    /// A refresh failed for a reason that may pass (the provider down, the network, the store).
    Failing {
        /// The provider.
        provider: &'static str,
        /// The connection.
        connection: Arc<str>,
        /// What kind of failure (`None`: the store or the lock, not the provider).
        kind: Option<ErrorKind>,
        /// Failed refreshes in a row.
        attempts: u32,
        /// When it will be tried again, where something schedules it (the keeper).
        next_try: Option<SystemTime>,
    },
    /// A connection that was failing refreshed again.
    Recovered {
        /// The provider.
        provider: &'static str,
        /// The connection.
        connection: Arc<str>,
        /// Failed refreshes before this one.
        after_attempts: u32,
    },
    /// The refresh token dies at `at` and nothing can renew it first (the keeper could not
    /// refresh it in time): the user must consent again before then. Sent once per stored set
    /// across replicas (the first keeper to give up marks it in the store).
    RefreshTokenExpiring {
        /// The provider.
        provider: &'static str,
        /// The connection.
        connection: Arc<str>,
        /// When the refresh token dies.
        at: SystemTime,
    },
}

impl TokenEvent {
    /// The connection the event is about.
    pub fn connection(&self) -> &str {
        match self {
            Self::Refreshed { connection, .. }
            | Self::ReauthenticationRequired { connection, .. }
            | Self::Failing { connection, .. }
            | Self::Recovered { connection, .. }
            | Self::RefreshTokenExpiring { connection, .. } => connection,
        }
    }
}

/// Where a manager sends its events, and the connection name it sends them under.
#[derive(Clone, Debug)]
pub(crate) struct EventSink {
    pub(crate) tx: broadcast::Sender<TokenEvent>,
    pub(crate) connection: Arc<str>,
}

impl EventSink {
    /// A channel that keeps the last `capacity` events for slow subscribers.
    pub(crate) fn channel(capacity: usize) -> broadcast::Sender<TokenEvent> {
        broadcast::channel(capacity.max(1)).0
    }

    /// Sends `event` to the subscribers, if any.
    pub(crate) fn send(&self, event: TokenEvent) {
        send(&self.tx, event);
    }
}

/// Sends `event` on `tx` to its subscribers, if any (nobody listening is not an error).
pub(crate) fn send(tx: &broadcast::Sender<TokenEvent>, event: TokenEvent) {
    if tx.receiver_count() > 0 {
        let _ = tx.send(event);
    }
}
