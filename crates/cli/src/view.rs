//! What an operator sees of one connection: its state and times, never a token.

use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokenkit::Stored;

/// How long before its refresh token dies a connection counts as expiring.
pub const EXPIRING_WITHIN: Duration = Duration::from_secs(24 * 3600);

/// A connection's state, worst first.
pub fn state(set: &Stored, now: SystemTime) -> &'static str {
    if set.sealed_with().is_some() {
        // Read without its key: the times inside are not readable.
        "sealed"
    } else if set.dead.is_some() {
        "dead"
    } else if set.sending.is_some() {
        "in flight"
    } else if set.expiring.is_some()
        || set
            .tokens
            .refresh_expires_at
            .is_some_and(|at| at <= now + EXPIRING_WITHIN)
    {
        "expiring"
    } else if set.tokens.expires_at.is_some_and(|at| at <= now) {
        "refreshing"
    } else {
        "healthy"
    }
}

/// Seconds from `now` to `at` (negative: past).
fn seconds_to(at: SystemTime, now: SystemTime) -> i64 {
    match at.duration_since(now) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn unix(at: Option<SystemTime>) -> Value {
    at.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(Value::Null, |d| json!(d.as_secs()))
}

/// The connection as JSON: key, version, state, the tokens' times and the marks. The tokens
/// themselves are never read out of the set.
pub fn json_of(key: &str, set: &Stored, now: SystemTime) -> Value {
    let last_report = [
        ("dead", set.dead),
        ("expiring", set.expiring),
        ("announced", set.announced),
    ]
    .into_iter()
    .filter_map(|(what, at)| at.map(|at| (what, at)))
    .max_by_key(|(_, at)| *at);
    json!({
        "key": key,
        "version": set.version,
        "state": state(set, now),
        "sealed_with": set.sealed_with(),
        "issuer": set.tokens.issuer,
        "values": set.tokens.values,
        "token_type": set.tokens.token_type,
        "has_refresh_token": set.tokens.refresh_token.is_some(),
        "access_token_expires_at": unix(set.tokens.expires_at),
        "refresh_token_expires_at": unix(set.tokens.refresh_expires_at),
        "refresh_token_left_seconds": set
            .tokens
            .refresh_expires_at
            .map(|at| seconds_to(at, now)),
        "in_flight_since": unix(set.sending),
        "last_report": last_report.map(|(what, at)| json!({ "what": what, "at": unix(Some(at)) })),
    })
}

/// One line of the list: key, state, version, the refresh token's remaining life.
pub fn line_of(key: &str, set: &Stored, now: SystemTime) -> String {
    let left = set
        .tokens
        .refresh_expires_at
        .map(|at| human(seconds_to(at, now)))
        .unwrap_or_else(|| "-".to_owned());
    format!("{key}\t{}\tv{}\t{left}", state(set, now), set.version)
}

/// A number of seconds, readably (`3d4h`, `-2m`).
fn human(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let s = seconds.unsigned_abs();
    let text = match s {
        s if s >= 86_400 => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    };
    format!("{sign}{text}")
}
