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

/// A response's body as received, as JSON: what failure rules are judged on, whichever `oneOf`
/// arm the typed body decodes to (an arm drops the fields it does not declare).
pub fn received(response: &crate::support::Response) -> Option<Value> {
    serde_json::from_slice(response.body()).ok()
}

/// The value at `pointer` of a received body.
pub fn at(body: Option<&Value>, pointer: &str) -> Option<Value> {
    body?.pointer(pointer).cloned()
}

/// An absolute time from a mapped value (`expires-at`, `refresh-expires-at`).
pub fn instant<T: Serialize + ?Sized>(value: &T, format: crate::TimeFormat) -> Option<SystemTime> {
    crate::token::instant_from(&serde_json::to_value(value).ok()?, format)
}

/// A mapped value as JSON, for a `when` rule.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Option<Value> {
    serde_json::to_value(value).ok()
}

/// A spec's `when` rule on one value of a body; literals are JSON text.
#[derive(Clone, Copy, Debug)]
pub enum Rule {
    /// The value is this.
    Equals(&'static str),
    /// The value is present, not null, and not this.
    NotEquals(&'static str),
    /// The value is one of these.
    OneOf(&'static [&'static str]),
    /// The value is present and not null.
    Present,
    /// The value is absent or null.
    Absent,
}

impl Rule {
    /// Whether `found` (the value at the rule's pointer; `None`: absent) passes.
    pub fn test(self, found: Option<Value>) -> bool {
        let literal = |text: &str| serde_json::from_str::<Value>(text).ok();
        let present = found.as_ref().filter(|v| !v.is_null());
        match self {
            Rule::Equals(v) => found.is_some() && found == literal(v),
            Rule::NotEquals(v) => present.is_some_and(|f| Some(f) != literal(v).as_ref()),
            Rule::OneOf(values) => found
                .as_ref()
                .is_some_and(|f| values.iter().any(|v| literal(v).as_ref() == Some(f))),
            Rule::Present => present.is_some(),
            Rule::Absent => present.is_none(),
        }
    }
}

/// The error for a body of the success status that meets neither the success rule nor a
/// documented failure's.
pub fn unrecognized(status: u16) -> RefreshError {
    RefreshError::InvalidBody {
        status,
        reason: "the body meets neither the success rule nor a documented failure's".into(),
        body: Snippet::default(),
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
    /// When the access token expires, when the body says so absolutely.
    pub expires_at: Option<SystemTime>,
    /// The refresh token's lifetime in seconds.
    pub refresh_expires_in: Option<f64>,
    /// When the refresh token dies, when the body says so absolutely.
    pub refresh_expires_at: Option<SystemTime>,
    /// The lifetime in seconds the provider's docs state, for an answer with no expiry of its
    /// own (the spec's `lifetime`).
    pub lifetime: Option<u64>,
    /// Seconds after which an unused refresh token dies (the spec's `refresh-idle-lifetime`):
    /// the refresh token's expiry is no later than receipt plus this.
    pub refresh_idle_lifetime: Option<u64>,
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
            // An absolute expiry wins over a lifetime: it needs no clock agreement on receipt.
            expires_at: self
                .expires_at
                .or_else(|| expiry(self.expires_in, self.created_at, received))
                .or_else(|| {
                    let lifetime = std::time::Duration::from_secs(self.lifetime?);
                    received.checked_add(lifetime)
                }),
            token_type: self.token_type,
            refresh_expires_at: {
                let stated = self
                    .refresh_expires_at
                    .or_else(|| expiry(self.refresh_expires_in, None, received));
                let idle = self
                    .refresh_idle_lifetime
                    .and_then(|secs| received.checked_add(std::time::Duration::from_secs(secs)));
                match (stated, idle) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            },
            extras: extras(body, self.tokens),
            origin: None,
            issuer: None,
            values: Default::default(),
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
    fn rules() {
        assert!(Rule::Equals("false").test(json(&false)));
        assert!(!Rule::Equals("false").test(json(&true)));
        assert!(!Rule::Equals("false").test(None));
        assert!(Rule::Equals(r#"{"a":1}"#).test(Some(json!({"a": 1}))));
        assert!(Rule::NotEquals("0").test(Some(json!(17))));
        assert!(!Rule::NotEquals("0").test(Some(json!(0))));
        assert!(
            !Rule::NotEquals("0").test(None),
            "absent is not a failure code"
        );
        assert!(!Rule::NotEquals("0").test(Some(Value::Null)));
        assert!(Rule::OneOf(&["\"a\"", "2"]).test(Some(json!(2))));
        assert!(!Rule::OneOf(&["\"a\"", "2"]).test(Some(json!("2"))));
        assert!(Rule::Present.test(Some(json!("x"))));
        assert!(!Rule::Present.test(Some(Value::Null)));
        assert!(Rule::Absent.test(None));
        assert!(Rule::Absent.test(Some(Value::Null)));
        assert!(!Rule::Absent.test(Some(json!(false))));
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
