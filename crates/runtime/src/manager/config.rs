//! The manager's settings, checked against each other, and the arithmetic of its waits.

use super::ManagerError;
use std::time::{Duration, Instant, SystemTime};

/// Tuning for a [`TokenManager`](crate::TokenManager).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerConfig {
    /// Refresh this long before the access token expires.
    pub skew: Duration,
    /// Refresh this long before the refresh token dies (its stated or idle lifetime), so that
    /// a connection is renewed while it still can be; a pool's keeper visits connections by
    /// the same rule. A refresh token received with a shorter remaining life is refreshed
    /// halfway through it. Default 5 minutes: room for a replica that died holding the lock
    /// (its lease lasts `lock_ttl`), the waiters' `lock_wait` and a few attempts. Where the
    /// store's lock is a lease (Redis), keep it above `lock_ttl` plus an attempt.
    pub refresh_token_margin: Duration,
    /// The lifetime assumed for an access token whose provider gave no expiry; it is stored
    /// as the set's expiry, so every process sharing the store agrees on it.
    pub unknown_expiry: Duration,
    /// Attempts at a transient failure before giving up (the first included).
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles, with jitter, up to `max_backoff`.
    pub backoff: Duration,
    /// The longest delay between attempts.
    pub max_backoff: Duration,
    /// How long a store lock outlives a holder that died (where the store cannot tell).
    pub lock_ttl: Duration,
    /// How long to wait for another process's refresh before giving up.
    pub lock_wait: Duration,
    /// How often to look for another process's result while it holds the lock.
    pub lock_poll: Duration,
    /// The shortest time between two refresh requests for the credential from this process:
    /// bounds the rate when a provider answers with lifetimes of zero or in the past.
    pub min_refresh_interval: Duration,
    /// Which credentials the client-credentials grant may replace when their refresh token is
    /// unusable (where the spec offers the grant and no re-authentication hook is set).
    pub client_credentials_fallback: ClientCredentialsFallback,
    /// How far the clocks of hosts sharing a store that has no clock of its own may differ: a
    /// sending mark another host made counts as past the in-flight grace only this much later
    /// (the safe side: waiting, never resending). Redis stamps and judges marks by its own
    /// clock, so a replica whose clock runs minutes fast never takes a live connection for
    /// dead there; memory and files are one host's. Default zero: set it for a store of your
    /// own that hosts share and that reports no clock ([`Stored::read_at`](crate::Stored)).
    pub clock_skew: Duration,
    /// At most one refresh forced by a rejected access token
    /// ([`TokenManager::refresh_rejected`](crate::TokenManager::refresh_rejected)) per this
    /// interval: an API that rejects every token gets its rejections passed through, not a
    /// refresh per request.
    pub rejection_interval: Duration,
}

/// Which credentials the token manager may replace by the client-credentials grant. That grant
/// returns the application's own token; a user's connection must never silently become it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientCredentialsFallback {
    /// A credential that grant created, or none stored yet. A set stored before origins were
    /// recorded counts as the grant's when it holds no refresh token (only that grant issues
    /// none), as a user's otherwise.
    #[default]
    OwnCredentials,
    /// Any credential: the application has said its credentials are all its own.
    Always,
    /// None: the hook, or [`ManagerError::ReAuthenticate`].
    Never,
}

/// The longest duration a setting may have: far beyond any sensible value, and small enough
/// that no clock arithmetic on it can overflow.
const MAX_SETTING: Duration = Duration::from_secs(365 * 24 * 3600);

impl ManagerConfig {
    /// Checks the settings against each other and against `attempt_timeout`, the longest one
    /// refresh request can take (the client's HTTP timeout). The lock must outlive any one
    /// attempt: a holder confirms its lock just before sending, so the request ends before the
    /// lock could expire even if no renewal got through.
    pub fn validate(&self, attempt_timeout: Option<Duration>) -> Result<(), ManagerError> {
        let bad = |why: String| Err(ManagerError::Config(why));
        let settings = [
            ("skew", self.skew),
            ("refresh_token_margin", self.refresh_token_margin),
            ("unknown_expiry", self.unknown_expiry),
            ("backoff", self.backoff),
            ("max_backoff", self.max_backoff),
            ("lock_ttl", self.lock_ttl),
            ("lock_wait", self.lock_wait),
            ("lock_poll", self.lock_poll),
            ("min_refresh_interval", self.min_refresh_interval),
            ("rejection_interval", self.rejection_interval),
            ("clock_skew", self.clock_skew),
        ];
        for (name, value) in settings {
            if value > MAX_SETTING {
                return bad(format!("{name} is {value:?}; at most a year is allowed"));
            }
        }
        if self.max_attempts == 0 {
            return bad("max_attempts must be at least 1".into());
        }
        if self.lock_poll.is_zero() || self.lock_ttl < Duration::from_millis(30) {
            return bad("lock_poll must be positive and lock_ttl at least 30 ms".into());
        }
        if self.backoff > self.max_backoff {
            return bad("backoff must not exceed max_backoff".into());
        }
        if self.refresh_token_margin.is_zero() {
            return bad(
                "refresh_token_margin must be positive: a refresh token renewed only when it dies is never renewed".into(),
            );
        }
        if self.lock_wait < self.lock_poll {
            return bad("lock_wait must be at least lock_poll".into());
        }
        let attempt = self.attempt_limit();
        if let Some(timeout) = attempt_timeout
            && timeout > attempt
        {
            return bad(format!(
                "one refresh attempt may take {timeout:?} (the client's HTTP timeout), longer than two thirds of lock_ttl ({:?}): a lock could expire while its holder's request is on the wire; raise lock_ttl or lower the timeout",
                self.lock_ttl
            ));
        }
        Ok(())
    }

    /// How long a refresh marked as sent may still get its answer stored by its sender: a lock
    /// lifetime for the request, another for a new holder, and the longest write backoff.
    pub(super) fn in_flight_grace(&self) -> Duration {
        self.lock_ttl
            .saturating_mul(2)
            .saturating_add(self.max_backoff)
    }

    /// The longest the manager lets one attempt run: two thirds of the lock's ttl, so an
    /// attempt started right after confirming the lock ends well before it could expire.
    pub(super) fn attempt_limit(&self) -> Duration {
        self.lock_ttl * 2 / 3
    }
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            skew: Duration::from_secs(60),
            refresh_token_margin: Duration::from_secs(300),
            unknown_expiry: Duration::from_secs(300),
            max_attempts: 4,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            lock_ttl: Duration::from_secs(60),
            lock_wait: Duration::from_secs(90),
            lock_poll: Duration::from_millis(25),
            min_refresh_interval: Duration::from_secs(1),
            client_credentials_fallback: ClientCredentialsFallback::OwnCredentials,
            rejection_interval: Duration::from_secs(5),
            clock_skew: Duration::ZERO,
        }
    }
}

/// `base` doubled per attempt, capped, with up to 50 % jitter drawn from the clock.
pub(super) fn backoff(config: &ManagerConfig, attempt: u32) -> Duration {
    let exponential = config
        .backoff
        .saturating_mul(1 << attempt.min(16))
        .min(config.max_backoff);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let jitter = exponential.mul_f64(f64::from(nanos % 1000) / 2000.0);
    exponential.saturating_sub(exponential / 4) + jitter
}

/// `start + wait`, or far in the future where that does not fit an `Instant`.
pub(super) fn after(start: Instant, wait: Duration) -> Instant {
    start
        .checked_add(wait)
        .or_else(|| start.checked_add(MAX_SETTING))
        .unwrap_or(start)
}
