//! One refresh in flight per credential and process: the first caller starts it as a task of
//! its own (a keeper's visit, itself such a task, runs it in place), every other caller awaits
//! its answer, and the cache serves the result.

use super::error::outcome_name;
use super::{Cached, Inner, ManagerError, TokenManager, locked};
use crate::client::RefreshClient;
use crate::events::TokenEvent;
use crate::store::StoreLock;
use crate::store::TokenStore;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};
use tokio::sync::watch;
use tracing::Instrument;

/// What a finished refresh hands its waiters (`None` while it runs).
pub(super) type Answer = Option<Result<Arc<Cached>, ManagerError>>;
pub(super) type Flight = watch::Receiver<Answer>;

/// Clears the flight slot and answers its waiters however the refresh task ends: normally,
/// by a panic, or dropped with a runtime that shuts down.
pub(super) struct FlightGuard<C, S> {
    pub(super) inner: Arc<Inner<C, S>>,
    pub(super) tx: Option<watch::Sender<Answer>>,
}

impl<C, S> Inner<C, S> {
    /// Serves `cached` from now on, and remembers its version as seen.
    pub(super) fn publish(&self, cached: Arc<Cached>) {
        self.high_water.fetch_max(cached.version, Ordering::AcqRel);
        self.cache.store(Some(cached));
    }
}

impl<C, S> FlightGuard<C, S> {
    pub(super) fn finish(mut self, result: Result<Arc<Cached>, ManagerError>) {
        if let Ok(cached) = &result {
            self.inner.publish(Arc::clone(cached));
        }
        self.end(result);
    }

    fn end(&mut self, result: Result<Arc<Cached>, ManagerError>) {
        if let Some(tx) = self.tx.take() {
            *locked(&self.inner.flight) = None;
            let _ = tx.send(Some(result));
        }
    }
}

impl<C, S> Drop for FlightGuard<C, S> {
    fn drop(&mut self) {
        self.end(Err(ManagerError::Interrupted));
    }
}

impl<C: RefreshClient + 'static, S: TokenStore> TokenManager<C, S> {
    /// Joins (or starts) the refresh in flight and reads its result through `read`.
    pub(super) async fn current<T>(
        &self,
        force: bool,
        read: impl Fn(&Cached) -> T,
    ) -> Result<T, ManagerError> {
        self.current_or_unexpired(force, true, None, read).await
    }

    /// Like `current`; a failed refresh is an error even while the cached access token has
    /// not expired unless `fallback`.
    ///
    /// `held` is the store's lock when the caller has taken it already (the keeper's look):
    /// a refresh this call starts runs under it, in the caller's task (a keeper's visit is a
    /// task of its own that no caller can drop: a second task would only cost a spawn and a
    /// wake-up per renewal); otherwise it is let go.
    pub(super) async fn current_or_unexpired<T>(
        &self,
        force: bool,
        fallback: bool,
        held: Option<StoreLock>,
        read: impl Fn(&Cached) -> T,
    ) -> Result<T, ManagerError> {
        let mut held = held;
        let in_this_task = held.is_some();
        let fresh = |now| {
            let cache = self.inner.cache.load();
            cache.as_ref().filter(|c| c.is_fresh(now)).map(|c| read(c))
        };
        let (mut flight, run_here) = {
            let mut slot = locked(&self.inner.flight);
            if !force && let Some(value) = fresh(SystemTime::now()) {
                let_go(held.take());
                return Ok(value);
            }
            match slot.as_ref() {
                Some(running) => {
                    let_go(held.take());
                    (running.clone(), None)
                }
                None => {
                    // The refresh runs in its own task: a caller that gives up must not
                    // abandon a request that may already have spent the refresh token.
                    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                        let_go(held.take());
                        return Err(ManagerError::Interrupted);
                    };
                    let held = held.take();
                    let (tx, rx) = watch::channel(None);
                    *slot = Some(rx.clone());
                    let guard = FlightGuard {
                        inner: Arc::clone(&self.inner),
                        tx: Some(tx),
                    };
                    let refresh = async move {
                        let result = Arc::clone(&guard.inner).refresh(force, held).await;
                        guard.finish(result);
                    };
                    if in_this_task {
                        // Boxed: the refresh is most of a flight's size, and every caller's
                        // future would carry it.
                        (rx, Some(Box::pin(refresh)))
                    } else {
                        runtime.spawn(refresh);
                        (rx, None)
                    }
                }
            }
        };
        if let Some(refresh) = run_here {
            refresh.await;
        }
        loop {
            if let Some(result) = flight.borrow_and_update().as_ref() {
                return match result {
                    Ok(cached) => Ok(read(cached)),
                    // A failed early refresh still leaves a token that has not expired.
                    Err(e) => {
                        let cache = self.inner.cache.load();
                        match cache.as_ref() {
                            Some(c) if fallback && !force && c.is_unexpired(SystemTime::now()) => {
                                Ok(read(c))
                            }
                            _ => Err(e.clone()),
                        }
                    }
                };
            }
            if flight.changed().await.is_err() {
                return Err(ManagerError::Interrupted);
            }
        }
    }
}

impl<C: RefreshClient + 'static, S: TokenStore> Inner<C, S> {
    pub(super) async fn refresh(
        self: Arc<Self>,
        force: bool,
        held: Option<StoreLock>,
    ) -> Result<Arc<Cached>, ManagerError> {
        let span = tracing::info_span!(
            "tokenkit.refresh",
            provider = self.client.provider(),
            credential = %self.key,
            outcome = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = Arc::clone(&self)
            .refresh_locked(force, held)
            .instrument(span.clone())
            .await;
        let outcome = outcome_name(&result);
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        span.record("outcome", outcome);
        span.record("duration_ms", duration_ms);
        span.in_scope(|| match &result {
            Ok(_) => tracing::info!(outcome, duration_ms, "token refresh"),
            Err(e) => tracing::warn!(outcome, duration_ms, error = %e, "token refresh failed"),
        });
        #[cfg(feature = "metrics")]
        {
            let provider = self.client.provider();
            metrics::counter!("tokenkit_refreshes_total", "provider" => provider, "outcome" => outcome)
                .increment(1);
            metrics::histogram!("tokenkit_refresh_duration_seconds", "provider" => provider)
                .record(started.elapsed().as_secs_f64());
        }
        self.note(&result);
        result
    }

    /// The events a refresh's end sends: a failure (counted) or a recovery. (A new set stored
    /// is sent where it is stored, a set that needs re-authentication where it is marked.)
    fn note(&self, result: &Result<Arc<Cached>, ManagerError>) {
        let Some(sink) = self.events.get() else {
            match result {
                Ok(_) => self.failures.store(0, Ordering::Relaxed),
                Err(_) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        };
        let provider = self.client.provider();
        let connection = Arc::clone(&sink.connection);
        match result {
            Ok(_) => {
                let before = self.failures.swap(0, Ordering::Relaxed);
                if before > 0 {
                    sink.send(TokenEvent::Recovered {
                        provider,
                        connection,
                        after_attempts: before,
                    });
                }
            }
            // Reported where the set is marked dead, once fleet-wide (`report_dead`).
            Err(ManagerError::ReAuthenticate { .. }) => {
                self.failures.store(0, Ordering::Relaxed);
            }
            Err(e) => {
                let attempts = self
                    .failures
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                let kind = match e {
                    ManagerError::Refresh(r) => Some(r.kind()),
                    _ => None,
                };
                sink.send(TokenEvent::Failing {
                    provider,
                    connection,
                    kind,
                    attempts,
                    next_try: None,
                });
            }
        }
    }

    /// Sends `Refreshed` for a set this process stored.
    pub(super) fn note_stored(&self, cached: &Cached) {
        self.send(|provider, connection| TokenEvent::Refreshed {
            provider,
            connection,
            version: cached.version,
            origin: cached.tokens.origin,
        });
    }
}

/// Gives up a lock the caller took but will not refresh under (in the background: the caller
/// may hold a mutex). Without a runtime the lease simply runs out.
pub(super) fn let_go(lock: Option<StoreLock>) {
    if let (Some(lock), Ok(runtime)) = (lock, tokio::runtime::Handle::try_current()) {
        runtime.spawn(lock.release());
    }
}
