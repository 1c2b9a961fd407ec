//! Helpers the generated code calls to apply a spec's token mapping to a decoded body.
//! They are public for generated crates; applications have no need for them.

use crate::error::{ErrorKind, ProviderError, RefreshError};
use crate::secret::Secret;
use crate::snippet::Snippet;
use serde::Serialize;
use serde_json::{Map, Value};
use std::time::SystemTime;

/// Seconds from a mapped value: a number, or a numeric string (`"3600"` happens in the wild),
/// of whatever generated type holds it.
pub fn seconds<T: Serialize + ?Sized>(value: &T) -> Option<f64> {
    match serde_json::to_value(value).ok()? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An absolute expiry from optional `expires_in` and `created_at` values; see
/// [`crate::expiry_from`].
pub fn expiry(
    expires_in: Option<f64>,
    created_at: Option<f64>,
    received: SystemTime,
) -> Option<SystemTime> {
    crate::token::expiry_from(expires_in?, created_at, received)
}

/// A code or message as text: strings as they are, numbers and booleans printed, `null` as none,
/// anything else as compact JSON.
pub fn text<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    match serde_json::to_value(value).ok()? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// Whether `value` equals the JSON literal `literal` (a spec's failure discriminator).
pub fn equals_json<T: Serialize + ?Sized>(value: &T, literal: &str) -> bool {
    match (
        serde_json::to_value(value),
        serde_json::from_str::<Value>(literal),
    ) {
        (Ok(value), Ok(literal)) => value == literal,
        _ => false,
    }
}

/// The error for a success body that lacks a value the mapping requires.
pub fn missing(status: u16, pointer: &str) -> RefreshError {
    RefreshError::InvalidBody {
        status,
        reason: format!("the body has no value at {pointer}"),
        body: Snippet::default(),
    }
}

/// The error a documented failure maps to (its `Retry-After`, if any, is added by the endpoint).
pub fn failure<T>(
    kind: ErrorKind,
    status: u16,
    code: Option<String>,
    message: Option<String>,
) -> Result<T, RefreshError> {
    Err(RefreshError::documented(
        kind,
        status,
        ProviderError { code, message },
        None,
    ))
}

/// A documented failure that means the refresh token is dead (the spec's `invalid-grant`).
pub fn invalid_grant<T>(
    status: u16,
    code: Option<String>,
    message: Option<String>,
) -> Result<T, RefreshError> {
    failure(ErrorKind::ReAuthenticate, status, code, message)
}

/// A documented failure that means the request was refused for another reason (the spec's
/// `rejected`).
pub fn rejected<T>(
    status: u16,
    code: Option<String>,
    message: Option<String>,
) -> Result<T, RefreshError> {
    failure(ErrorKind::Rejected, status, code, message)
}

/// A documented failure that means the provider failed for now (the spec's `transient`).
pub fn transient<T>(
    status: u16,
    code: Option<String>,
    message: Option<String>,
) -> Result<T, RefreshError> {
    failure(ErrorKind::RetryLater, status, code, message)
}

/// The values a success mapping read from a body, before the rules every provider shares.
#[derive(Default)]
pub struct Fields {
    /// The access token (`None`: the body had none, a bad response).
    pub access_token: Option<Secret>,
    /// The new refresh token, if the body carries one.
    pub refresh_token: Option<Secret>,
    /// The lifetime in seconds.
    pub expires_in: Option<f64>,
    /// When the token was issued, as a Unix time.
    pub created_at: Option<f64>,
    /// The token type.
    pub token_type: Option<String>,
    /// The mapping's access-token pointer, then the refresh token's if mapped: the fields
    /// [`TokenSet::extras`](crate::TokenSet::extras) leaves out.
    pub tokens: &'static [&'static str],
}

impl Fields {
    /// The token set read from `body` (of `status`), or the error for a body without the access
    /// token. `received` is when the answer arrived, the origin of a relative expiry.
    pub fn token_set<T: Serialize + ?Sized>(
        self,
        body: &T,
        status: u16,
        received: SystemTime,
    ) -> Result<crate::TokenSet, RefreshError> {
        let access_pointer = self.tokens.first().copied().unwrap_or_default();
        let access_token = self
            .access_token
            .ok_or_else(|| missing(status, access_pointer))?;
        Ok(crate::TokenSet {
            access_token: access_token.into(),
            refresh_token: self.refresh_token.map(Into::into),
            expires_at: expiry(self.expires_in, self.created_at, received),
            token_type: self.token_type,
            extras: extras(body, self.tokens),
        })
    }
}

/// The body as a JSON object without the fields at `secret_pointers`; empty for non-objects.
pub fn extras<T: Serialize + ?Sized>(body: &T, secret_pointers: &[&str]) -> Map<String, Value> {
    let Ok(mut value) = serde_json::to_value(body) else {
        return Map::new();
    };
    for pointer in secret_pointers {
        remove_pointer(&mut value, pointer);
    }
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn remove_pointer(value: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    if let Some(Value::Object(map)) = value.pointer_mut(parent) {
        map.remove(&key);
    }
}

/// A secret from any mapped string field, whether the spec typed it as a secret or not.
pub fn secret(value: &impl AsSecret) -> Secret {
    value.as_secret()
}

/// Fields a token can be read from.
pub trait AsSecret {
    /// The value as a secret.
    fn as_secret(&self) -> Secret;
}

impl AsSecret for Secret {
    fn as_secret(&self) -> Secret {
        self.clone()
    }
}

impl AsSecret for String {
    fn as_secret(&self) -> Secret {
        Secret::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seconds_from_numbers_and_numeric_strings() {
        assert_eq!(seconds(&3600_i64), Some(3600.0));
        assert_eq!(seconds(&"900".to_string()), Some(900.0));
        assert_eq!(seconds(&json!("x")), None);
        assert_eq!(seconds(&Some(5_u32)), Some(5.0));
        assert_eq!(seconds(&json!(null)), None);
    }

    #[test]
    fn equals_a_literal() {
        assert!(equals_json(&false, "false"));
        assert!(!equals_json(&true, "false"));
        assert!(equals_json(&json!({"a": 1}), r#"{"a":1}"#));
    }

    #[test]
    fn text_of_codes() {
        assert_eq!(text(&json!(401)), Some("401".into()));
        assert_eq!(text(&json!("invalid_grant")), Some("invalid_grant".into()));
        assert_eq!(text(&json!(null)), None);
    }

    #[test]
    fn extras_drop_the_tokens() {
        let body = json!({"payload": {"access": {"token": "A", "expires_in": 5}}, "id": "x"});
        let extras = extras(&body, &["/payload/access/token"]);
        assert_eq!(
            Value::Object(extras),
            json!({"payload": {"access": {"expires_in": 5}}, "id": "x"})
        );
    }
}
