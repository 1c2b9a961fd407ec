//! The stored form of a token set: JSON with a version. Shared by the file and Redis stores.

use super::{StoreError, Stored};
use crate::secret::{AccessToken, RefreshToken};
use crate::token::{Origin, TokenSet};
use crate::values::ConnectionValues;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Serialize, Deserialize)]
struct Record {
    version: u64,
    access_token: AccessToken,
    refresh_token: Option<RefreshToken>,
    /// Milliseconds since the Unix epoch.
    expires_at_ms: Option<u64>,
    token_type: Option<String>,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    refresh_expires_at_ms: Option<u64>,
    #[serde(default)]
    extras: serde_json::Map<String, serde_json::Value>,
    /// Absent in sets stored before origins were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<Origin>,
    /// Absent in sets stored before issuers were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    /// The connection's own values; absent where it has none.
    #[serde(default, skip_serializing_if = "ConnectionValues::is_empty")]
    values: ConnectionValues,
}

/// The JSON of `tokens` as `version`.
pub fn encode(version: u64, tokens: &TokenSet) -> Vec<u8> {
    let record = Record {
        version,
        access_token: tokens.access_token.clone(),
        refresh_token: tokens.refresh_token.clone(),
        expires_at_ms: tokens.expires_at.map(to_millis),
        refresh_expires_at_ms: tokens.refresh_expires_at.map(to_millis),
        token_type: tokens.token_type.clone(),
        extras: tokens.extras.clone(),
        origin: tokens.origin,
        issuer: tokens.issuer.clone(),
        values: tokens.values.clone(),
    };
    // A struct of strings, numbers and JSON values always serializes.
    serde_json::to_vec_pretty(&record).unwrap_or_default()
}

/// Milliseconds since the Unix epoch, for marks stored as text.
pub fn to_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The time `millis` after the Unix epoch.
pub fn from_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// A stored record; errors say where the JSON broke, never what it held.
pub fn decode(bytes: &[u8]) -> Result<Stored, StoreError> {
    let record: Record = serde_json::from_slice(bytes).map_err(|e| {
        StoreError::new(format!(
            "the stored token set is unreadable ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    Ok(Stored::unmarked(
        record.version,
        TokenSet {
            access_token: record.access_token,
            refresh_token: record.refresh_token,
            expires_at: record
                .expires_at_ms
                .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            token_type: record.token_type,
            refresh_expires_at: record.refresh_expires_at_ms.map(from_millis),
            extras: record.extras,
            origin: record.origin,
            issuer: record.issuer,
            values: record.values,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let tokens = TokenSet {
            access_token: "a".into(),
            refresh_token: Some("r".into()),
            expires_at: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            token_type: Some("Bearer".into()),
            refresh_expires_at: Some(UNIX_EPOCH + Duration::from_millis(1_800_000_000_456)),
            extras: serde_json::json!({"scope": "x"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            origin: Some(Origin::AuthorizationCode),
            issuer: Some("vaultist https://api.vault.ist".into()),
            values: ConnectionValues::new().with("tenant", "acme"),
        };
        let stored = decode(&encode(7, &tokens)).unwrap();
        assert_eq!(stored.version, 7);
        assert_eq!(stored.tokens, tokens);
    }

    #[test]
    fn a_record_stored_before_origins_still_reads() {
        let old = br#"{"version": 3, "access_token": "a", "refresh_token": "r", "expires_at_ms": null, "token_type": null}"#;
        let stored = decode(old).unwrap();
        assert_eq!((stored.version, stored.tokens.origin), (3, None));
    }

    #[test]
    fn errors_quote_nothing() {
        let err = decode(br#"{"version": 1, "access_token": 5, "refresh_token": "SENTINEL"}"#)
            .unwrap_err();
        assert!(!err.to_string().contains("SENTINEL"));
        assert!(decode(br#"{"version": 1, "acc"#).is_err());
    }
}
