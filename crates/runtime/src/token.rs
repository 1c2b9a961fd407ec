//! The normalized result of a refresh, whatever the provider's response looked like.

use crate::secret::{AccessToken, RefreshToken};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A provider's answer to a successful refresh, normalized.
#[derive(Clone, PartialEq)]
pub struct TokenSet {
    /// The new access token.
    pub access_token: AccessToken,
    /// The refresh token to use next time. When the response carried none, the one that was
    /// sent (RFC 6749 §6: the old one stays valid).
    pub refresh_token: Option<RefreshToken>,
    /// When the access token expires, as an absolute instant; `None` when the provider did not say.
    pub expires_at: Option<SystemTime>,
    /// The token type, such as `Bearer`, when the provider said.
    pub token_type: Option<String>,
    /// The rest of the success body, without the fields the mapping names as tokens.
    pub extras: serde_json::Map<String, serde_json::Value>,
}

impl TokenSet {
    /// How long the access token stays valid from `now`; `None` when the expiry is unknown,
    /// zero when it has passed.
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        self.expires_at
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
    }

    /// True when the access token is known to expire within `skew` of `now`.
    pub fn expires_within(&self, skew: Duration, now: SystemTime) -> bool {
        self.remaining(now).is_some_and(|left| left <= skew)
    }
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Extras are the provider's own fields; they may hold secrets the mapping does not name,
        // so only their keys are shown.
        f.debug_struct("TokenSet")
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("expires_at", &self.expires_at)
            .field("token_type", &self.token_type)
            .field("extras", &self.extras.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Smallest `expires_in` read as an absolute Unix time rather than a number of seconds.
/// 10^9 seconds is almost 32 years, longer than any token lifetime; 10^9 as a Unix time is 2001.
pub const EPOCH_THRESHOLD: f64 = 1e9;

/// Turns a provider's `expires_in` into an absolute expiry, received at `received`.
///
/// Some providers document an epoch time in `expires_in` (Easyship's example). So that such a
/// value never yields an expiry decades away:
/// - with `created_at` (the provider's issue time) and `expires_in > created_at`, the lifetime is
///   `expires_in - created_at`, counted from `received` so the two clocks need not agree;
/// - without it, a value of [`EPOCH_THRESHOLD`] or more is an absolute Unix time;
/// - otherwise it is a number of seconds from `received`.
///
/// Negative, NaN and infinite values give `None`: the expiry is unknown.
pub fn expiry_from(
    expires_in: f64,
    created_at: Option<f64>,
    received: SystemTime,
) -> Option<SystemTime> {
    if !expires_in.is_finite() || expires_in < 0.0 {
        return None;
    }
    let lifetime = match created_at {
        Some(created) if created.is_finite() && expires_in > created => expires_in - created,
        _ if expires_in >= EPOCH_THRESHOLD => {
            let at = UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(expires_in).ok()?)?;
            return Some(at.max(UNIX_EPOCH));
        }
        _ => expires_in,
    };
    received.checked_add(Duration::try_from_secs_f64(lifetime).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 24 * 3600;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn seconds_count_from_receipt() {
        let now = at(1_700_000_000);
        assert_eq!(
            expiry_from(3600.0, None, now),
            Some(now + Duration::from_secs(3600))
        );
    }

    #[test]
    fn epoch_with_created_at_becomes_a_lifetime() {
        // Easyship's documented example: expires_in 1645539660, issued 7200 s earlier.
        let now = at(1_800_000_000);
        let expiry = expiry_from(1_645_539_660.0, Some(1_645_532_460.0), now).unwrap();
        assert_eq!(expiry, now + Duration::from_secs(7200));
    }

    #[test]
    fn epoch_without_created_at_is_absolute_never_years_away() {
        let now = at(1_645_539_000);
        let expiry = expiry_from(1_645_539_660.0, None, now).unwrap();
        assert_eq!(expiry, at(1_645_539_660));
        assert!(expiry.duration_since(now).unwrap() < Duration::from_secs(DAY));
    }

    #[test]
    fn nonsense_is_unknown() {
        let now = at(1_700_000_000);
        assert_eq!(expiry_from(-1.0, None, now), None);
        assert_eq!(expiry_from(f64::NAN, None, now), None);
        assert_eq!(expiry_from(f64::INFINITY, None, now), None);
    }

    #[test]
    fn remaining_saturates_at_zero() {
        let set = TokenSet {
            access_token: "a".into(),
            refresh_token: None,
            expires_at: Some(at(100)),
            token_type: None,
            extras: Default::default(),
        };
        assert_eq!(set.remaining(at(200)), Some(Duration::ZERO));
        assert!(set.expires_within(Duration::from_secs(30), at(80)));
        assert!(!set.expires_within(Duration::from_secs(10), at(80)));
    }
}
