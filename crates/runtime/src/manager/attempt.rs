//! One refresh under the lock: which stored token may be sent (marks, grace, a store that
//! went backwards), pacing, the attempt itself, and what each answer means for a resend.

use super::config::{after, backoff};
use super::persist::Held;
use super::{Cached, Inner, ManagerError, locked};
use crate::client::{BoxFuture, RefreshClient, RefreshWith};
use crate::error::{ErrorKind, RefreshError, TransportKind};
use crate::secret::RefreshToken;
use crate::store::{Saved, StoreLock, Stored, TokenStore};
use crate::token::TokenSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

/// Whether a stored refresh token may be sent.
pub(super) enum Usable {
    /// Send it.
    Yes(RefreshToken),
    /// Its request may still get an answer: retry shortly.
    InFlight,
    /// It is gone or may be spent: re-authenticate.
    No,
}

/// A refresh that failed, and what the attempt knew when it sent it.
struct Failed<'a> {
    error: RefreshError,
    stored: &'a Stored,
    /// When the token was first sent.
    first_sent: SystemTime,
    /// Whether the rotation lets the same token be sent again.
    resend_safe: bool,
    /// The attempts so far, this one not counted.
    attempt: u32,
    /// Whether another newer stored set may still be tried.
    may_reread: bool,
}

/// What the attempt does after a failure.
enum AfterFailure {
    /// The flight's answer.
    Answer(Result<Held, ManagerError>),
    /// Try this newer stored set.
    Reread(Option<Stored>),
    /// Send again after this delay.
    Retry(std::time::Duration),
}

impl<C: RefreshClient + 'static, S: TokenStore> Inner<C, S> {
    pub(super) async fn refresh_holding_lock(
        &self,
        force: bool,
        seen: Option<u64>,
        lock: &StoreLock,
    ) -> Held {
        self.try_refresh_holding_lock(force, seen, lock)
            .await
            .unwrap_or_else(|e| Held::Done(Err(e)))
    }

    /// The refresh under the lock; an error is the flight's answer. The paths a renewal rarely
    /// takes (re-authenticating, a failure, a store gone backwards) are boxed: an async fn's
    /// future is as large as its largest path, and each renewal's future is allocated and
    /// moved whole.
    pub(super) async fn try_refresh_holding_lock(
        &self,
        force: bool,
        seen: Option<u64>,
        lock: &StoreLock,
    ) -> Result<Held, ManagerError> {
        let mut current = self.load_under(lock).await?;
        let mut attempt = 0;
        let mut rereads = 0;
        let resend_safe = self.client.rotation().resend_is_safe();
        loop {
            if self.regressed(current.as_ref()) {
                if rereads < 3 {
                    rereads += 1;
                    current = Box::pin(self.put_back_newest(current, lock)).await?;
                    continue;
                }
                // Nothing newer could be put back: never send the stale token.
                return Ok(Box::pin(self.reauthenticate(current.as_ref(), None, lock)).await);
            }
            let Some(stored) = current.take() else {
                return Ok(Box::pin(self.reauthenticate(None, None, lock)).await);
            };
            let newer = Some(stored.version) != seen;
            if Cached::would_be_fresh(&stored, &self.config, SystemTime::now()) && (!force || newer)
            {
                let cached = Cached::new(stored, &self.config, None);
                return Ok(Held::Done(Ok(Arc::new(cached))));
            }
            let refresh_token = match self.usable_token(&stored, resend_safe) {
                Usable::Yes(token) => token,
                Usable::InFlight => return Err(ManagerError::InFlight),
                Usable::No => {
                    return Ok(Box::pin(self.reauthenticate(Some(&stored), None, lock)).await);
                }
            };
            self.pace().await;
            // A token that must not be sent twice is marked first, in a write fenced by the
            // lock: that write is the proof the lock is held. Any other is sent after a
            // confirmation.
            if resend_safe && !lock.confirm().await {
                return Err(ManagerError::LockLost);
            }
            // When the token was first sent: an earlier mark of this version, or this one.
            let first_sent = stored.sending.unwrap_or_else(SystemTime::now);
            if !resend_safe {
                match self.mark_sent(&stored, lock).await {
                    Ok(true) => {}
                    Ok(false) => {
                        if rereads >= 3 || !lock.confirm().await {
                            return Err(ManagerError::LockLost);
                        }
                        // The set changed under us, or the lock is gone: look again.
                        rereads += 1;
                        current = self.load().await?;
                        continue;
                    }
                    Err(held) => return Ok(held),
                }
            }
            *locked(&self.last_sent) = Some(Instant::now());
            let sent = self.bounded(self.client.refresh(&refresh_token)).await;
            let error = match sent {
                Ok(tokens) => {
                    let held = self.store_answer(tokens, refresh_token, &stored, lock);
                    return Ok(held.await);
                }
                Err(error) => error,
            };
            let failed = Failed {
                error,
                stored: &stored,
                first_sent,
                resend_safe,
                attempt,
                may_reread: rereads < 3,
            };
            match Box::pin(self.after_failure(failed, lock)).await? {
                AfterFailure::Answer(answer) => return answer,
                AfterFailure::Reread(latest) => {
                    rereads += 1;
                    current = latest;
                }
                AfterFailure::Retry(delay) => {
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    current = self.load().await?;
                }
            }
        }
    }

    /// Marks `stored`'s token as being sent (a one-time or rotating one): false when the set
    /// changed under us or the lock is gone. A mark whose write failed is the attempt's
    /// answer (nothing was sent).
    async fn mark_sent(&self, stored: &Stored, lock: &StoreLock) -> Result<bool, Held> {
        let error = match self
            .store
            .mark_sending(&self.key, stored.version, lock)
            .await
        {
            Ok(marked) => return Ok(marked),
            Err(e) => ManagerError::Store(e),
        };
        // An earlier mark of this version stands for a request that was sent: it stays.
        if stored.sending.is_some() {
            return Err(Held::Done(Err(error)));
        }
        // The mark may have landed (a command Redis runs after a stall, a commit whose answer
        // was lost): undo it, or every process would take the token for in flight until the
        // grace ran out. When the store does not answer now, a task keeps the lock and clears
        // it once it does.
        match self
            .store
            .clear_sending(&self.key, stored.version, lock)
            .await
        {
            Ok(()) => Err(Held::Done(Err(error))),
            Err(_) => Err(Held::Unmarked(error, stored.version)),
        }
    }

    /// Stores the provider's answer to a refresh of `stored` with `refresh_token`.
    async fn store_answer(
        &self,
        mut tokens: TokenSet,
        refresh_token: RefreshToken,
        stored: &Stored,
        lock: &StoreLock,
    ) -> Held {
        *locked(&self.rejected) = None;
        tokens.origin = tokens.origin.or(stored.tokens.origin);
        // Without a new refresh token the old one stays valid only where the rotation says
        // so; elsewhere the set is stored without one, and the next refresh re-authenticates
        // instead of sending a spent token.
        if self.client.rotation().resend_is_safe()
            && self.client.refresh_with() == Some(RefreshWith::RefreshToken)
        {
            tokens.refresh_token.get_or_insert(refresh_token);
        }
        self.persist(tokens, Some(stored.version), lock).await
    }

    /// What a failed refresh means: an answer for the flight, a newer stored set to try, or
    /// a retry of the same token after a delay.
    async fn after_failure(
        &self,
        failed: Failed<'_>,
        lock: &StoreLock,
    ) -> Result<AfterFailure, ManagerError> {
        let Failed {
            error,
            stored,
            first_sent,
            resend_safe,
            attempt,
            may_reread,
        } = failed;
        let kind = error.kind();
        let dead = kind == ErrorKind::ReAuthenticate;
        // One rule for every answer (RefreshError::proves_unprocessed): only an answer that
        // proves the request unprocessed makes a one-time token sendable again; a 5xx, a
        // timeout or a bad body may come after the provider rotated it.
        let unprocessed = error.proves_unprocessed();
        // Only a first mark is cleared: an earlier one (a resend within the reuse grace) stands
        // for a request that may have been processed.
        if !resend_safe && unprocessed && stored.sending.is_none() {
            // If the mark cannot be cleared, the token counts as spent: safe, not lost.
            if let Err(e) = self
                .store
                .clear_sending(&self.key, stored.version, lock)
                .await
            {
                tracing::warn!(error = %e, "could not clear the sending mark");
            }
        }
        let may_resend = resend_safe || unprocessed || self.within_reuse_grace(first_sent);
        if dead || !may_resend {
            // Another process may have rotated the token since it was read: only a newer
            // stored set may be tried, never the same token again.
            let latest = self.load().await?;
            let changed = latest.as_ref().map(|s| s.version) != Some(stored.version);
            if changed && may_reread {
                return Ok(AfterFailure::Reread(latest));
            }
            if dead {
                let held = self.reauthenticate(Some(stored), Some(error), lock).await;
                return Ok(AfterFailure::Answer(Ok(held)));
            }
            return Ok(AfterFailure::Answer(Err(ManagerError::Refresh(error))));
        }
        if kind == ErrorKind::Rejected {
            self.note_rejected(&error);
        }
        if !error.is_retryable() || attempt + 1 >= self.config.max_attempts {
            return Ok(AfterFailure::Answer(Err(ManagerError::Refresh(error))));
        }
        let delay = match error.retry_after() {
            Some(after) => after.min(self.config.max_backoff),
            None => backoff(&self.config, attempt),
        };
        tracing::debug!(attempt = attempt + 1, ?delay, error = %error, "retrying the refresh");
        Ok(AfterFailure::Retry(delay))
    }

    /// Whether the stored refresh token may be sent: not when there is none, when the provider
    /// said it is dead by now, when the set is marked dead, or when a request with it may have
    /// reached the provider (marked by this process or another; a one-time or rotating token is
    /// never sent twice). Within
    /// the grace, a marked token's sender may still store the answer (a write being retried);
    /// after it, the sender is taken for dead and the credential needs re-authenticating.
    pub(super) fn usable_token(&self, stored: &Stored, resend_safe: bool) -> Usable {
        if stored.dead.is_some() {
            // Found dead before (here or by another process), and reported then.
            return Usable::No;
        }
        // The store's clock where it has one: marks are stamped by it, so a replica whose own
        // clock runs fast never takes a mark for older than it is (nor a live refresh token,
        // whose death the store's clock judges, for dead). Without one, a mark another host
        // made is given `clock_skew` more before it counts as past the in-flight grace.
        let (now, skew) = match stored.read_at {
            Some(store_now) => (store_now, std::time::Duration::ZERO),
            None => (SystemTime::now(), self.config.clock_skew),
        };
        let tokens = &stored.tokens;
        let token = match self.client.refresh_with() {
            Some(RefreshWith::RefreshToken) => match &tokens.refresh_token {
                Some(token) if tokens.refresh_expires_at.is_none_or(|dies| dies > now) => {
                    token.clone()
                }
                _ => return Usable::No,
            },
            // The access token itself, while the provider still takes it.
            Some(RefreshWith::AccessToken) if tokens.expires_at.is_none_or(|at| at > now) => {
                RefreshToken::new(tokens.access_token.expose())
            }
            // Expired, or a provider with grants only: a new set by a grant.
            Some(RefreshWith::AccessToken) | None => return Usable::No,
        };
        match stored.sending {
            Some(marked) if !resend_safe => {
                let age = now.duration_since(marked).unwrap_or_default();
                if self.within_reuse_grace_at(marked, now) {
                    // The provider still accepts it (its documented reuse grace).
                    Usable::Yes(token)
                } else if age < self.config.in_flight_grace().saturating_add(skew) {
                    Usable::InFlight
                } else {
                    Usable::No
                }
            }
            _ => Usable::Yes(token),
        }
    }

    /// Whether a one-time or rotating token first sent at `first_sent` may still be sent again:
    /// within the reuse grace the provider's spec declares (measured from our mark, which is
    /// before the provider could have rotated it), never where it declares none.
    pub(super) fn within_reuse_grace(&self, first_sent: SystemTime) -> bool {
        self.within_reuse_grace_at(first_sent, SystemTime::now())
    }

    /// `within_reuse_grace`, judged at `now` (the store's clock, where the mark is its).
    fn within_reuse_grace_at(&self, first_sent: SystemTime, now: SystemTime) -> bool {
        self.client
            .reuse_grace()
            .is_some_and(|grace| now.duration_since(first_sent).is_ok_and(|age| age < grace))
    }

    /// Waits until `min_refresh_interval` has passed since this process last sent a refresh.
    pub(super) async fn pace(&self) {
        let last = *locked(&self.last_sent);
        if let Some(last) = last {
            let ready = after(last, self.config.min_refresh_interval);
            tokio::time::sleep_until(ready.into()).await;
        }
    }

    /// Answers `Rejected` again, without asking, for a backoff that doubles with each
    /// rejection in a row: a misconfigured client must not hammer the provider.
    pub(super) fn note_rejected(&self, error: &RefreshError) {
        let mut rejected = locked(&self.rejected);
        let count = rejected.as_ref().map_or(0, |(_, n, _)| n.saturating_add(1));
        let until = after(Instant::now(), backoff(&self.config, count));
        *rejected = Some((until, count, error.clone()));
    }

    /// Whether `stored` is older than a set this process has seen: the store went backwards
    /// (restored from an older snapshot), and its refresh token is spent. (A store that holds
    /// nothing may have been emptied or the credential removed on purpose: that is the
    /// re-authentication path, never a set put back.)
    pub(super) fn regressed(&self, stored: Option<&Stored>) -> bool {
        let seen = self.high_water.load(Ordering::Acquire);
        stored.is_some_and(|s| s.version < seen)
    }

    /// After the store went backwards (`stored` is older than the newest set this process has
    /// seen): the stored refresh token is spent, so it is never sent. The newest
    /// set this process knows is put back with a sending mark, since a holder whose lock the
    /// store forgot may have its token on the wire: that holder's answer lands on it (a
    /// compare-and-set on its version), and within the in-flight grace nobody sends it; after
    /// the grace, the re-authentication path. Returns what the store holds now.
    pub(super) async fn put_back_newest(
        &self,
        stored: Option<Stored>,
        lock: &StoreLock,
    ) -> Result<Option<Stored>, ManagerError> {
        tracing::error!(
            credential = %self.key,
            stored = ?stored.as_ref().map(|s| s.version),
            seen = self.high_water.load(Ordering::Acquire),
            "the store holds an older token set than this process has seen: its refresh token is spent; putting back the newest set known here"
        );
        let Some(newest) = self.cache.load_full() else {
            return Ok(stored);
        };
        // Marked as sent a reuse grace ago: the mark keeps everyone from sending the token
        // while its holder's answer may still land, but never opens the provider's reuse
        // grace (this token may have been spent long before).
        let now = SystemTime::now();
        let marked = self
            .client
            .reuse_grace()
            .and_then(|grace| now.checked_sub(grace))
            .unwrap_or(now);
        let set = Stored {
            sending: Some(marked),
            ..Stored::unmarked(newest.version, newest.tokens.clone())
        };
        if !lock.confirm().await {
            return Err(ManagerError::LockLost);
        }
        match self.store.restore(&self.key, &set, lock).await? {
            Saved::LockLost => Err(ManagerError::LockLost),
            _ => Ok(self.load().await?),
        }
    }

    /// Runs one request (a refresh or a grant) bounded like an attempt: one that takes longer
    /// than two thirds of the lock's ttl is a timeout that may have reached the provider.
    pub(super) async fn bounded(
        &self,
        request: BoxFuture<'_, Result<TokenSet, RefreshError>>,
    ) -> Result<TokenSet, RefreshError> {
        tokio::time::timeout(self.config.attempt_limit(), request)
            .await
            .unwrap_or(Err(RefreshError::Transport {
                kind: TransportKind::Timeout,
                maybe_sent: true,
            }))
    }
}
