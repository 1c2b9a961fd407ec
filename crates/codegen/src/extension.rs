//! The `x-token-refresh` vendor extension, as written in a spec: what plain OpenAPI cannot say.
//!
//! Pointers here are JSON pointers into the *instance* (the request or response body), and the
//! generator checks each one against the schema of that body.

use crate::error::SpecError;
use serde::Deserialize;
use serde_json::Value;

/// The extension's key on the refresh operation.
pub const KEY: &str = "x-token-refresh";

/// The extension's key on an operation that serves a grant besides the refresh operation (a
/// provider's separate login endpoint, say).
pub const GRANT_KEY: &str = "x-token-grant";

/// The extension's key on the token revocation operation (RFC 7009): where a removal revokes a
/// connection's tokens.
pub const REVOKE_KEY: &str = "x-token-revoke";

/// The extension on a server variable that says its `default` is a real value a client may use
/// as it is (OpenAPI requires a default even where only a placeholder can be written).
pub const USABLE_DEFAULT: &str = "x-usable-default";

/// The extension on a server that names the hosts its URL may have once its variables are
/// filled: one pattern or a list (`*.okta.com`: any subdomain; `login.example.com`: that host).
pub const HOST_PATTERN: &str = "x-host-pattern";

/// What each `generate` kind needs of its field.
pub const GENERATE_HINT: &str = "uuid, nonce and date-time go in a string; unix-seconds in an integer or a string; unix-milliseconds in a 64-bit integer (`format: int64`) or a string";

/// `x-token-grant`: an operation of its own that serves one grant.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TokenGrant {
    /// Which grant.
    pub grant: GrantKind,
    /// `private_key_jwt` client authentication (RFC 7523 §2.2): the body property that carries
    /// the signed client assertion.
    pub client_assertion: Option<String>,
    /// Where its request's values go, as a `grants` entry says it.
    #[serde(default)]
    pub request: GrantMapping,
    /// Where the tokens come from in this operation's success response.
    pub success: SuccessMapping,
    /// What every documented failure of this operation means.
    #[serde(default)]
    pub failures: Vec<FailureMapping>,
}

/// `x-token-revoke`: the provider's token revocation operation (RFC 7009 §2.1), which a
/// removal calls with the refresh token, then the access token.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TokenRevoke {
    /// Where the token goes in the request body (`/token`).
    pub token: String,
    /// Where its type hint goes (`/token_type_hint`: `refresh_token` or `access_token`),
    /// where the body takes one.
    pub token_type_hint: Option<String>,
    /// Fixed values of the request, by top-level body pointer (or parameter name).
    #[serde(default)]
    pub set: indexmap::IndexMap<String, Value>,
    /// Nothing is generated for a revocation; here so that the request is read like the others.
    #[serde(skip)]
    pub generate: indexmap::IndexMap<String, GenerateKind>,
}

/// The whole extension.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TokenRefresh {
    /// What the provider does with refresh tokens.
    pub rotation: Rotation,
    /// Where the refresh token goes in the request.
    pub request: RequestMapping,
    /// Where the tokens come from in the success response.
    pub success: SuccessMapping,
    /// What every documented failure means.
    #[serde(default)]
    pub failures: Vec<FailureMapping>,
    /// The other grants the operation serves (client credentials, authorization code,
    /// password), each with where its request differs; their answers share `success` and
    /// `failures`.
    #[serde(default)]
    pub grants: indexmap::IndexMap<GrantKind, GrantMapping>,
    /// Seconds for which the provider still accepts a rotated refresh token, as its docs
    /// promise, so that an answer lost on the way can be retried (one-time and rotating only).
    pub reuse_grace: Option<u64>,
    /// `private_key_jwt` client authentication (RFC 7523 §2.2): the body property that carries
    /// the signed client assertion, in every request of the operation.
    pub client_assertion: Option<String>,
    /// Seconds after which a refresh token nobody used dies, as the provider's docs state it
    /// (refresh tokens that expire when idle): the runtime keeps each set's
    /// `refresh_expires_at` no later than its receipt plus this, so a keeper refreshes in time.
    pub refresh_idle_lifetime: Option<u64>,
    /// Optional properties of a body the refresh shares with grants that every request sends
    /// as per-client values (`per-client: [/scope]`), by top-level pointer. A shared body's other optional
    /// properties that no request fills are left out (most belong to one grant: `password`,
    /// `subject_token`), except the client's own `client_id` and `client_secret`.
    #[serde(default)]
    pub per_client: Vec<String>,
}

/// A grant besides the refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantKind {
    /// RFC 6749 §4.4; OpenAPI flow `clientCredentials`.
    ClientCredentials,
    /// RFC 6749 §4.1 (with RFC 7636 PKCE); OpenAPI flow `authorizationCode`.
    AuthorizationCode,
    /// RFC 6749 §4.3, or a provider's login with a user's credentials; OpenAPI flow `password`.
    Password,
    /// RFC 7523 §2.1: a signed JWT as the grant; OpenAPI has no flow for it.
    JwtBearer,
}

impl GrantKind {
    /// As the extension writes it.
    pub fn key(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client-credentials",
            Self::AuthorizationCode => "authorization-code",
            Self::Password => "password",
            Self::JwtBearer => "jwt-bearer",
        }
    }

    /// The OpenAPI flow's name (none for the JWT-bearer grant).
    pub fn flow(self) -> Option<&'static str> {
        match self {
            Self::ClientCredentials => Some("clientCredentials"),
            Self::AuthorizationCode => Some("authorizationCode"),
            Self::Password => Some("password"),
            Self::JwtBearer => None,
        }
    }
}

/// How one grant's request differs from the others.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GrantMapping {
    /// For a `oneOf` request body: the variant this grant sends, by its schema's name.
    pub variant: Option<String>,
    /// Fixed values for this grant, by top-level body pointer (`/grant_type:
    /// client_credentials` where one schema serves several grants).
    #[serde(default)]
    pub set: indexmap::IndexMap<String, Value>,
    /// Where the authorization code goes (authorization code).
    pub code: Option<String>,
    /// Where the redirect URI goes (authorization code).
    pub redirect_uri: Option<String>,
    /// Where the PKCE verifier goes (authorization code).
    pub code_verifier: Option<String>,
    /// Values made fresh for every request: by body pointer (`/nonce: uuid`) or by the name of
    /// a query or header parameter (`X-Request-Id: uuid`).
    #[serde(default)]
    pub generate: indexmap::IndexMap<String, GenerateKind>,
    /// Where the user name goes (password).
    pub username: Option<String>,
    /// Where the password goes (password).
    pub password: Option<String>,
    /// Where the signed assertion goes (JWT bearer).
    pub assertion: Option<String>,
}

/// The rotation policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rotation {
    /// Each refresh token works once.
    OneTime,
    /// Every refresh returns a new refresh token.
    Rotating,
    /// A new refresh token may come back; if not, the old one stays valid.
    Optional,
}

/// The refresh token's place in the request (or the access token's, for a provider that
/// exchanges its access token for a new one).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RequestMapping {
    /// A pointer into the request body (`/refresh_token`), or a parameter.
    pub refresh_token: Option<TokenPlace>,
    /// Instead of `refresh-token`: where the current access token goes, for a provider that
    /// refreshes by exchanging a still-valid access token and issues no refresh token.
    pub access_token: Option<TokenPlace>,
    /// For a `oneOf` request body: the variant the refresh sends, by its schema's name (by
    /// default the one variant that has the refresh token's property).
    pub variant: Option<String>,
    /// Fixed values for the refresh request, by top-level body pointer (`/grant_type:
    /// refresh_token` where one schema serves several grants).
    #[serde(default)]
    pub set: indexmap::IndexMap<String, Value>,
    /// Values made fresh for every request, as under a grant.
    #[serde(default)]
    pub generate: indexmap::IndexMap<String, GenerateKind>,
}

/// A value made fresh for every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GenerateKind {
    /// A random version 4 UUID (a text field).
    Uuid,
    /// 16 random bytes, base64url (a text field).
    Nonce,
    /// Unix seconds (an integer, or a text field).
    UnixSeconds,
    /// Unix milliseconds (a 64-bit integer, or a text field).
    UnixMilliseconds,
    /// RFC 3339 in UTC (a text field).
    DateTime,
}

impl GenerateKind {
    /// As the extension writes it.
    pub fn key(self) -> &'static str {
        match self {
            Self::Uuid => "uuid",
            Self::Nonce => "nonce",
            Self::UnixSeconds => "unix-seconds",
            Self::UnixMilliseconds => "unix-milliseconds",
            Self::DateTime => "date-time",
        }
    }

    /// Whether a field of this type can hold it, and whether it is then written as text.
    pub fn fits(self, ty: &crate::types::Ty) -> Option<bool> {
        use crate::types::Ty;
        match (self, ty) {
            (_, Ty::String) => Some(true),
            (Self::UnixSeconds, Ty::I32 | Ty::I64) | (Self::UnixMilliseconds, Ty::I64) => {
                Some(false)
            }
            _ => None,
        }
    }
}

impl RequestMapping {
    /// Where the token the refresh sends goes (`read` checks there is exactly one).
    pub fn place(&self) -> Option<&TokenPlace> {
        self.refresh_token.as_ref().or(self.access_token.as_ref())
    }

    /// Whether the refresh sends the access token rather than a refresh token.
    pub fn sends_access_token(&self) -> bool {
        self.refresh_token.is_none() && self.access_token.is_some()
    }

    /// The key that says where the sent token goes, as written.
    pub fn key(&self) -> &'static str {
        if self.sends_access_token() {
            "access-token"
        } else {
            "refresh-token"
        }
    }
}

/// Where the refresh token travels.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum TokenPlace {
    /// A JSON pointer to a top-level property of the JSON or form body.
    Body(String),
    /// A query parameter or a header.
    Param(ParamPlace),
}

/// A refresh token sent as a query parameter or a header.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ParamPlace {
    /// `query` or `header`.
    #[serde(rename = "in")]
    pub location: ParamIn,
    /// The parameter's name; a declared string parameter of the operation (or `Authorization`,
    /// which OpenAPI 3.0 does not let a spec declare).
    pub name: String,
    /// Written before the token, such as `Bearer ` (headers only).
    #[serde(default)]
    pub prefix: String,
}

/// Where a parameter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamIn {
    /// The query string.
    Query,
    /// A header.
    Header,
}

/// Where the token set comes from.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SuccessMapping {
    /// The documented status of the success response.
    #[serde(deserialize_with = "status_text")]
    pub status: String,
    /// A rule a success body must meet (`status: 0`, say); a body of the success status that
    /// meets neither it nor a failure's `when` is a bad response.
    pub when: Option<When>,
    /// The access token (required, a string).
    pub access_token: String,
    /// The new refresh token (a string); absent means the provider never sends one.
    pub refresh_token: Option<String>,
    /// The lifetime in seconds (a number or numeric string).
    pub expires_in: Option<String>,
    /// The token type (a string).
    pub token_type: Option<String>,
    /// When the token was issued, as a Unix time; lets an epoch-valued `expires_in` be read.
    pub created_at: Option<String>,
    /// When the access token expires, as an absolute time (beside or instead of
    /// `expires-in`; it wins when both are present).
    pub expires_at: Option<InstantSpec>,
    /// The access token's lifetime in seconds as the provider's docs state it, for answers that
    /// carry no `expires-in` or `expires-at` ("tokens last 2 hours": `lifetime: 7200`).
    pub lifetime: Option<u64>,
    /// The refresh token's own lifetime in seconds.
    pub refresh_expires_in: Option<String>,
    /// When the refresh token dies, as an absolute time.
    pub refresh_expires_at: Option<InstantSpec>,
}

/// An absolute time in a body: a pointer (the format read from the value: a number of Unix
/// seconds, of milliseconds from 10^11 on, or an RFC 3339 string), or a pointer and a format.
#[derive(Clone, Debug)]
pub enum InstantSpec {
    /// Just the pointer.
    Pointer(String),
    /// The pointer and how the time is written.
    Formatted {
        /// The pointer.
        pointer: String,
        /// How the time is written.
        format: TimeFormat,
    },
}

/// The `{pointer, format}` form, for its own error messages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FormattedInstant {
    pointer: String,
    format: TimeFormat,
}

impl<'de> Deserialize<'de> for InstantSpec {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        match Value::deserialize(de)? {
            Value::String(pointer) => Ok(Self::Pointer(pointer)),
            object @ Value::Object(_) => {
                let f: FormattedInstant =
                    serde_json::from_value(object).map_err(serde::de::Error::custom)?;
                Ok(Self::Formatted {
                    pointer: f.pointer,
                    format: f.format,
                })
            }
            other => Err(serde::de::Error::custom(format!(
                "an absolute time is a pointer or {{pointer, format}}, found {other}"
            ))),
        }
    }
}

impl InstantSpec {
    /// The pointer.
    pub fn pointer(&self) -> &str {
        match self {
            Self::Pointer(p) | Self::Formatted { pointer: p, .. } => p,
        }
    }
}

/// How an absolute time is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeFormat {
    /// Unix seconds.
    Seconds,
    /// Unix milliseconds.
    Milliseconds,
    /// RFC 3339 (`format: date-time` in OpenAPI).
    DateTime,
}

/// What one documented failure response means.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FailureMapping {
    /// The documented status.
    #[serde(deserialize_with = "status_text")]
    pub status: String,
    /// For a failure inside a success status: the field and value that mark it.
    pub when: Option<When>,
    /// The meaning when `kinds` names no other.
    pub kind: FailureKind,
    /// Meanings by the provider's error code, read at `code`: `code: kind` entries, or
    /// `kind: [code, code]` for a list of codes with one meaning.
    #[serde(default)]
    pub kinds: indexmap::IndexMap<String, KindsEntry>,
    /// The provider's error code.
    pub code: Option<String>,
    /// The provider's error message.
    pub message: Option<String>,
    /// For a transient failure: whether the provider documents that this answer means it did
    /// not process the request (`true`: the refresh token is unspent and may be sent again), or
    /// that it may have (`false`). Without it, the status decides (RFC 9110: 408, 425, 429 and
    /// 503 mean unprocessed).
    pub unprocessed: Option<bool>,
    /// Why this mapping was chosen, for readers of the spec.
    pub description: Option<String>,
}

/// A rule on one value of a body: exactly one of the tests is given.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct When {
    /// Where to look.
    pub pointer: String,
    /// Matches when the value is this JSON value.
    pub equals: Option<Value>,
    /// Matches when the value is present, not null, and not this JSON value.
    pub not_equals: Option<Value>,
    /// Matches when the value is one of these.
    pub one_of: Option<Vec<Value>>,
    /// `true`: matches when the value is present and not null; `false`: when it is absent or
    /// null.
    pub present: Option<bool>,
}

/// A `kinds` entry: `code: kind`, or `kind: [codes]`. Codes may be written as strings or as
/// numbers (`transient: [503, 100]` for an integer `status` field); they compare as text.
#[derive(Clone, Debug)]
pub enum KindsEntry {
    /// The key is a code; this is its meaning.
    Kind(FailureKind),
    /// The key is a meaning; these are its codes.
    Codes(Vec<String>),
}

impl<'de> Deserialize<'de> for KindsEntry {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let code = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match Value::deserialize(de)? {
            Value::String(kind) => serde_json::from_value(Value::String(kind.clone()))
                .map(Self::Kind)
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{kind:?} is not a kind: write `invalid-grant`, `rejected` or `transient`"
                    ))
                }),
            Value::Array(items) => items
                .iter()
                .map(|v| {
                    code(v).ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "a code is a string or a number, found {v}"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Self::Codes),
            other => Err(serde::de::Error::custom(format!(
                "a `kinds` entry is `code: kind` or `kind: [code, code]`, found {other}"
            ))),
        }
    }
}

/// What a failure means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The refresh token is dead: re-authenticate.
    InvalidGrant,
    /// Refused for another reason (wrong client credentials, malformed request).
    Rejected,
    /// Try again later.
    Transient,
}

fn status_text<'de, D: serde::Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    match Value::deserialize(de)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "a status must be a string such as \"200\", found {other}"
        ))),
    }
}

/// `value`, the extension at `at`, read as a `T`; an error points inside it and calls it the
/// `what` mapping.
fn mapping_at<T: serde::de::DeserializeOwned>(
    file: &str,
    at: &str,
    value: &Value,
    what: &str,
) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = crate::read::path_pointer(e.path());
        SpecError::new(
            file,
            &format!("{at}{inner}"),
            format!("invalid {what} mapping: {}", e.inner()),
        )
    })
}

/// Reads `x-token-grant` from a grant operation's extensions, locating any error inside it.
pub fn read_grant(
    file: &str,
    operation_pointer: &str,
    extensions: &indexmap::IndexMap<String, Value>,
) -> Result<TokenGrant, SpecError> {
    let at = crate::pointer::join(operation_pointer, GRANT_KEY);
    let value = extensions.get(GRANT_KEY).unwrap_or(&Value::Null);
    mapping_at(file, &at, value, "grant")
}

/// Reads `x-token-revoke` from an operation's extensions, locating any error inside it.
pub fn read_revoke(
    file: &str,
    operation_pointer: &str,
    extensions: &indexmap::IndexMap<String, Value>,
) -> Result<TokenRevoke, SpecError> {
    let at = crate::pointer::join(operation_pointer, REVOKE_KEY);
    let value = extensions.get(REVOKE_KEY).unwrap_or(&Value::Null);
    mapping_at(file, &at, value, "revocation")
        .map_err(|e| e.hint("`x-token-revoke: {token: /token, token-type-hint: /token_type_hint}`"))
}

/// Reads the extension from an operation's extensions, locating any error inside it.
pub fn read(
    file: &str,
    operation_pointer: &str,
    extensions: &indexmap::IndexMap<String, Value>,
) -> Result<TokenRefresh, SpecError> {
    let at = crate::pointer::join(operation_pointer, KEY);
    let value = extensions.get(KEY).ok_or_else(|| {
        SpecError::new(
            file,
            operation_pointer,
            format!("the refresh operation has no `{KEY}` mapping"),
        )
        .hint("add the token mapping extension; see README.md, \"The token mapping\"")
    })?;
    let mapping: TokenRefresh = mapping_at(file, &at, value, "token")?;
    let request = &mapping.request;
    if request.refresh_token.is_some() == request.access_token.is_some() {
        return Err(SpecError::new(
            file,
            &crate::pointer::join(&at, "request"),
            "the refresh request needs exactly one of `refresh-token` and `access-token`: where the token it sends goes",
        )
        .hint("`refresh-token: /refresh_token` for the usual refresh; `access-token: {in: query, name: access_token}` for a provider that exchanges its current access token"));
    }
    Ok(mapping)
}
