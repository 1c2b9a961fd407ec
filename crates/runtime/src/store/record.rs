//! The stored form of a token set: JSON with a version (and, in files, its marks). Shared by
//! every store.

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
    /// The version's marks, where the store keeps them in the record (files); the others keep
    /// them beside it.
    #[serde(default, skip_serializing_if = "Marks::is_empty")]
    marks: Marks,
}

/// [`Stored`]'s marks, in milliseconds since the Unix epoch.
#[derive(Default, Serialize, Deserialize)]
struct Marks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sending: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dead: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expiring: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    announced: Option<u64>,
}

impl Marks {
    fn is_empty(&self) -> bool {
        [self.sending, self.dead, self.expiring, self.announced]
            .iter()
            .all(Option::is_none)
    }
}

/// The JSON of `tokens` as `version`.
pub fn encode(version: u64, tokens: &TokenSet) -> Vec<u8> {
    // A struct of strings, numbers and JSON values always serializes.
    serde_json::to_vec_pretty(&record(version, tokens)).unwrap_or_default()
}

/// The compact JSON of `stored` with its marks.
pub fn encode_marked(stored: &Stored) -> Vec<u8> {
    let mut record = record(stored.version, &stored.tokens);
    let ms = |at: Option<SystemTime>| at.map(to_millis);
    record.marks = Marks {
        sending: ms(stored.sending),
        dead: ms(stored.dead),
        expiring: ms(stored.expiring),
        announced: ms(stored.announced),
    };
    serde_json::to_vec(&record).unwrap_or_default()
}

fn record(version: u64, tokens: &TokenSet) -> Record {
    Record {
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
        marks: Marks::default(),
    }
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
    let marks = record.marks;
    let mut stored = Stored::unmarked(
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
    );
    stored.sending = marks.sending.map(from_millis);
    stored.dead = marks.dead.map(from_millis);
    stored.expiring = marks.expiring.map(from_millis);
    stored.announced = marks.announced.map(from_millis);
    Ok(stored)
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
        assert_eq!(stored.sending, None);

        let mut marked = Stored::unmarked(8, tokens);
        marked.sending = Some(from_millis(1_700_000_000_001));
        marked.announced = Some(from_millis(1_700_000_000_002));
        assert_eq!(decode(&encode_marked(&marked)).unwrap(), marked);
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
