//! The normalized result of a refresh, whatever the provider's response looked like.

use crate::secret::{AccessToken, RefreshToken};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A provider's answer to a successful refresh, normalized.
#[derive(Clone, PartialEq)]
pub struct TokenSet {
    /// The new access token.
    pub access_token: AccessToken,
    /// The refresh token to use next time. When the response carried none: the one that was
    /// sent where the rotation is `optional` (RFC 6749 §6: the old one stays valid); a
    /// `one-time` or `rotating` answer without one is refused, and a grant's may have none.
    pub refresh_token: Option<RefreshToken>,
    /// When the access token expires, as an absolute instant; `None` when the provider did not say.
    pub expires_at: Option<SystemTime>,
    /// The token type, such as `Bearer`, when the provider said.
    pub token_type: Option<String>,
    /// When the refresh token itself dies, when the provider said (`refresh_expires_in`,
    /// `refresh_token_expires_in`, …): the token manager refreshes, or re-authenticates,
    /// before then.
    pub refresh_expires_at: Option<SystemTime>,
    /// The rest of the success body, without the fields the mapping names as tokens.
    pub extras: serde_json::Map<String, serde_json::Value>,
    /// How the credential was first obtained; refreshed sets keep their predecessor's. The
    /// token manager records it, and lets the client-credentials grant replace only a
    /// credential that grant created. `None` from a client (the manager fills it in) and in
    /// sets stored before origins were recorded.
    pub origin: Option<Origin>,
    /// Who issued the set: the provider and the origin its token endpoint has
    /// ([`RefreshClient::issuer`](crate::RefreshClient::issuer)). The token manager records it
    /// with every set it stores and refuses a stored set another issuer made: a refresh token
    /// is never sent to a provider or host other than the one that issued it. `None` from a
    /// client (the manager fills it in) and in sets stored before issuers were recorded.
    pub issuer: Option<String>,
    /// The connection's own values (server variables: a tenant, a region) the set's client
    /// was built with ([`RefreshClient::values`](crate::RefreshClient::values)): a pool builds
    /// the connection's client from them, and the token manager refuses a stored set whose
    /// values are not its client's. Empty from a client (the manager fills it in) and for a
    /// client configured once.
    pub values: crate::values::ConnectionValues,
}

/// How a credential was first obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// The client-credentials grant: the application's own token, not a user's.
    ClientCredentials,
    /// An authorization code a user's consent brought.
    AuthorizationCode,
    /// A login with a user's credentials (the password grant, or a provider's login).
    Password,
    /// Given by the application ([`TokenManager::seed`](crate::TokenManager::seed),
    /// [`TokenManager::replace`](crate::TokenManager::replace), its re-authentication hook).
    Application,
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
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("extras", &self.extras.keys().collect::<Vec<_>>())
            .field("origin", &self.origin)
            .field("issuer", &self.issuer)
            .field("values", &self.values)
            .finish()
    }
}

/// How an absolute time is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFormat {
    /// Numbers of 10^11 and more are Unix milliseconds, smaller ones Unix seconds; strings are
    /// such a number or an RFC 3339 date-time.
    Auto,
    /// Unix seconds (a number or numeric string).
    Seconds,
    /// Unix milliseconds.
    Milliseconds,
    /// An RFC 3339 date-time (`2026-11-23T10:00:00Z`, `…+02:00`).
    DateTime,
}

/// An absolute time from a provider's value, as `format` says; `None` when it is not one.
pub fn instant_from(value: &serde_json::Value, format: TimeFormat) -> Option<SystemTime> {
    let number = match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let from_unix = |seconds: f64| {
        (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::try_from_secs_f64(seconds).ok())
            .flatten()
            .and_then(|d| UNIX_EPOCH.checked_add(d))
    };
    match (format, number) {
        (TimeFormat::DateTime, _) | (TimeFormat::Auto, None) => parse_rfc3339(value.as_str()?),
        (TimeFormat::Seconds, Some(n)) => from_unix(n),
        (TimeFormat::Milliseconds, Some(n)) => from_unix(n / 1000.0),
        (TimeFormat::Auto, Some(n)) if n >= 1e11 => from_unix(n / 1000.0),
        (TimeFormat::Auto, Some(n)) => from_unix(n),
        (_, None) => None,
    }
}

/// An RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; `t`, `z` and a space for
/// `T` accepted), as an instant. Times before 1970 are refused.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.trim().as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = std::str::from_utf8(&b[start..i.min(start + 9)]).ok()?;
        nanos = format!("{frac:0<9}").parse().ok()?;
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if b.len() == i + 1 => 0,
        sign @ (b'+' | b'-') if b.len() == i + 6 && b[i + 3] == b':' => {
            let minutes = digits(i + 1..i + 3)? * 60 + digits(i + 4..i + 6)?;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset * 60;
    let seconds = u64::try_from(seconds).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
}

/// Smallest `expires_in` read as an absolute Unix time rather than a number of seconds.
/// 10^9 seconds is almost 32 years, longer than any token lifetime; 10^9 as a Unix time is 2001.
pub const EPOCH_THRESHOLD: f64 = 1e9;

/// Smallest absolute `expires_in` read as Unix milliseconds rather than seconds: 10^11 seconds
/// is the year 5138, 10^11 milliseconds is 1973, and every millisecond time since is above it
/// (Twilio's example writes milliseconds).
pub const EPOCH_MILLIS_THRESHOLD: f64 = 1e11;

/// Turns a provider's `expires_in` into an absolute expiry, received at `received`.
///
/// Some providers document an epoch time in `expires_in` (Easyship's example). So that such a
/// value never yields an expiry decades away:
/// - with `created_at` (the provider's issue time) and `expires_in > created_at`, the lifetime is
///   `expires_in - created_at`, counted from `received` so the two clocks need not agree;
/// - without it, a value of [`EPOCH_THRESHOLD`] or more is an absolute Unix time, in
///   milliseconds from [`EPOCH_MILLIS_THRESHOLD`] on;
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
            let seconds = if expires_in >= EPOCH_MILLIS_THRESHOLD {
                expires_in / 1000.0
            } else {
                expires_in
            };
            let at = UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(seconds).ok()?)?;
            return Some(at.max(UNIX_EPOCH));
        }
        _ => expires_in,
    };
    received.checked_add(Duration::try_from_secs_f64(lifetime).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_date_times() {
        let at = |s: &str| parse_rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap());
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(Duration::ZERO));
        assert_eq!(
            at("2026-11-23T10:00:00Z"),
            Some(Duration::from_secs(1_795_428_000))
        );
        assert_eq!(
            at("2026-11-23T12:00:00+02:00"),
            Some(Duration::from_secs(1_795_428_000))
        );
        assert_eq!(
            at("2026-11-23t09:30:00.25-00:30"),
            Some(Duration::new(1_795_428_000, 250_000_000))
        );
        assert_eq!(
            at("2000-02-29T00:00:00Z"),
            Some(Duration::from_secs(951_782_400))
        );
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-11-23",
            "2026-11-23T10:00:00",
            "x",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn instants_in_every_format() {
        use serde_json::json;
        let secs = |v: serde_json::Value, f| {
            instant_from(&v, f).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs())
        };
        assert_eq!(
            secs(json!(1_795_428_000), TimeFormat::Auto),
            Some(1_795_428_000)
        );
        assert_eq!(
            secs(json!(1_795_428_000_000_u64), TimeFormat::Auto),
            Some(1_795_428_000)
        );
        assert_eq!(
            secs(json!("1795428000"), TimeFormat::Seconds),
            Some(1_795_428_000)
        );
        assert_eq!(
            secs(json!(1_795_428_000_000_u64), TimeFormat::Milliseconds),
            Some(1_795_428_000)
        );
        assert_eq!(
            secs(json!("2026-11-23T10:00:00Z"), TimeFormat::Auto),
            Some(1_795_428_000)
        );
        assert_eq!(
            secs(json!("2026-11-23T10:00:00Z"), TimeFormat::DateTime),
            Some(1_795_428_000)
        );
        assert_eq!(secs(json!(-5), TimeFormat::Seconds), None);
        assert_eq!(secs(json!("soon"), TimeFormat::Auto), None);
    }

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
    fn epoch_milliseconds_are_milliseconds() {
        let now = at(1_645_539_000);
        let expiry = expiry_from(1_645_539_660_000.0, None, now).unwrap();
        assert_eq!(expiry, at(1_645_539_660));
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
            refresh_expires_at: None,
            extras: Default::default(),
            origin: None,
            issuer: None,
            values: Default::default(),
        };
        assert_eq!(set.remaining(at(200)), Some(Duration::ZERO));
        assert!(set.expires_within(Duration::from_secs(30), at(80)));
        assert!(!set.expires_within(Duration::from_secs(10), at(80)));
    }
}
