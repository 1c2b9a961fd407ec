//! What a fleet must hear once, not once per replica: a set that needs re-authentication, a
//! refresh token about to die that no keeper could renew. The store records each against the
//! set's version ([`TokenStore::mark_reported`]); only the process whose mark lands reports it.

use super::{Inner, TokenManager};
use crate::client::RefreshClient;
use crate::error::RefreshError;
use crate::events::TokenEvent;
use crate::store::{Reported, StoreLock, Stored, TokenStore};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

impl<C: RefreshClient + 'static, S: TokenStore> Inner<C, S> {
    /// Marks `current` dead (every process then skips it) and sends
    /// `ReauthenticationRequired`, once fleet-wide: the report is claimed with its own mark
    /// ([`Reported::Announced`]), and only where someone listens, so a replica without a
    /// subscriber leaves the report to one that has (its caller has the error). A store that
    /// could not take the claim gets it reported here anyway (better twice than never).
    /// Nothing stored is no report: the caller's error says so, and a name asked for again
    /// and again is not news.
    pub(super) async fn report_dead(
        &self,
        current: Option<&Stored>,
        cause: Option<&RefreshError>,
        lock: &StoreLock,
    ) {
        let Some(stored) = current else { return };
        // Marked already (here or elsewhere): `mark_first` leaves it.
        let _ = self.mark_first(stored, Reported::Dead, lock).await;
        if !self.listened() {
            return;
        }
        let first = self.mark_first(stored, Reported::Announced, lock).await;
        if first {
            self.send(
                |provider, connection| TokenEvent::ReauthenticationRequired {
                    provider,
                    connection,
                    cause: cause.cloned(),
                },
            );
        }
    }

    /// After a keeper gave up renewing the set whose refresh token dies at `dies`: marks it and
    /// sends `RefreshTokenExpiring`, once fleet-wide; nothing when the set was renewed since.
    async fn report_expiring(&self, dies: SystemTime) {
        if !self.listened() {
            // Left to a process that can deliver it (see `report_dead`).
            return;
        }
        let first = match self.wait_for_lock().await {
            Ok(lock) => {
                let first = match self.load_under(&lock).await {
                    Ok(Some(stored)) if same_instant(stored.tokens.refresh_expires_at, dies) => {
                        stored.dead.is_none()
                            && self.mark_first(&stored, Reported::Expiring, &lock).await
                    }
                    // Renewed or removed since.
                    Ok(_) => false,
                    Err(_) => true,
                };
                lock.release().await;
                first
            }
            Err(_) => true,
        };
        if first {
            self.send(|provider, connection| TokenEvent::RefreshTokenExpiring {
                provider,
                connection,
                at: dies,
            });
        }
    }

    /// Whether this process is the first to report `what` of `stored` (its mark landed, or
    /// the store failed to take it).
    async fn mark_first(&self, stored: &Stored, what: Reported, lock: &StoreLock) -> bool {
        let marked = match what {
            Reported::Dead => stored.dead,
            Reported::Expiring => stored.expiring,
            Reported::Announced => stored.announced,
        };
        if marked.is_some() {
            return false;
        }
        match self
            .store
            .mark_reported(&self.key, stored.version, what, lock)
            .await
        {
            Ok(first) => first,
            Err(e) => {
                tracing::warn!(credential = %self.key, error = %e, reported = what.as_str(), "could not record a report in the store; reporting it here");
                true
            }
        }
    }

    /// Whether anyone subscribed to this credential's events here: where a report can be
    /// delivered.
    fn listened(&self) -> bool {
        self.events
            .get()
            .is_some_and(|sink| sink.tx.receiver_count() > 0)
    }

    /// Sends the event `make` builds for this credential, when anyone listens.
    pub(super) fn send(&self, make: impl FnOnce(&'static str, Arc<str>) -> TokenEvent) {
        if let Some(sink) = self.events.get() {
            sink.send(make(self.client.provider(), Arc::clone(&sink.connection)));
        }
    }
}

/// Whether `stored` is `at`, to the millisecond stores keep.
fn same_instant(stored: Option<SystemTime>, at: SystemTime) -> bool {
    stored.is_some_and(|s| {
        s.duration_since(at)
            .or_else(|_| at.duration_since(s))
            .is_ok_and(|d| d < Duration::from_millis(1))
    })
}

impl<C: RefreshClient + 'static, S: TokenStore> TokenManager<C, S> {
    /// Reports, once fleet-wide, that a keeper could not renew the set whose refresh token
    /// dies at `dies`.
    pub(crate) async fn report_expiring(&self, dies: SystemTime) {
        self.inner.report_expiring(dies).await;
    }
}
