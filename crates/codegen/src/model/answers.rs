//! What a token operation's answers mean: the documented responses by status, and the success
//! and failure mappings that read them.

use crate::extension::{self, FailureKind};
use crate::types::{Access, Ty};
use serde_json::Value;

/// Which statuses a documented response covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusKey {
    /// One status, such as `200`.
    Code(u16),
    /// A class, such as `4XX` (the digit).
    Range(u16),
    /// `default`: every status nothing else documents.
    Default,
}

impl StatusKey {
    /// The key as the spec writes it: `200`, `4XX`, `default`.
    pub fn spec_key(self) -> String {
        match self {
            StatusKey::Code(code) => code.to_string(),
            StatusKey::Range(class) => format!("{class}XX"),
            StatusKey::Default => "default".to_owned(),
        }
    }

    /// Whether `status` falls under this key (ignoring more specific keys).
    pub fn covers(self, status: u16) -> bool {
        match self {
            StatusKey::Code(code) => code == status,
            StatusKey::Range(class) => status / 100 == class,
            StatusKey::Default => true,
        }
    }
}

/// The outcome variant for a status: its reason phrase in PascalCase, or `StatusNNN`.
pub fn status_variant(status: u16) -> String {
    let phrase = match status {
        200 => "Ok",
        201 => "Created",
        202 => "Accepted",
        204 => "NoContent",
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Gone",
        422 => "UnprocessableEntity",
        429 => "TooManyRequests",
        500 => "InternalServerError",
        502 => "BadGateway",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        _ => return format!("Status{status}"),
    };
    phrase.to_owned()
}

/// A documented response.
#[derive(Clone, Debug)]
pub struct ResponseCase {
    /// The statuses it covers.
    pub key: StatusKey,
    /// A status it stands for: the code itself, or one of its range (or, for `default`, one)
    /// that no more specific response documents. The mock sends it; tests expect it.
    pub status: u16,
    /// The outcome enum's variant name.
    pub variant: String,
    /// The response's description.
    pub description: String,
    /// The body's media type and type, when one is documented.
    pub body: Option<(String, Ty)>,
    /// Named examples (an unnamed `example` is called `example`).
    pub examples: Vec<(String, Value)>,
    /// The response's pointer in the spec.
    pub pointer: String,
}

/// Where the refresh token travels in the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshPlace {
    /// A top-level property of the body, by JSON pointer.
    Body {
        /// The pointer, as written (`/refresh_token`).
        pointer: String,
    },
    /// A query parameter.
    Query {
        /// Its name.
        name: String,
    },
    /// A header, with an optional prefix such as `Bearer `.
    Header {
        /// Its name.
        name: String,
        /// Written before the token.
        prefix: String,
    },
}

impl RefreshPlace {
    /// From the extension's form.
    pub fn from_spec(place: &extension::TokenPlace) -> Self {
        match place {
            extension::TokenPlace::Body(pointer) => Self::Body {
                pointer: pointer.clone(),
            },
            extension::TokenPlace::Param(p) => match p.location {
                extension::ParamIn::Query => Self::Query {
                    name: p.name.clone(),
                },
                extension::ParamIn::Header => Self::Header {
                    name: p.name.clone(),
                    prefix: p.prefix.clone(),
                },
            },
        }
    }

    /// The token as the request carries it, from a request's body, query or headers: what a
    /// server (the mock) reads back.
    pub fn read(
        &self,
        body: Option<&Value>,
        query: impl Fn(&str) -> Option<String>,
        header: impl Fn(&str) -> Option<String>,
    ) -> Option<String> {
        match self {
            Self::Body { pointer } => body?.pointer(pointer)?.as_str().map(str::to_owned),
            Self::Query { name } => query(name),
            Self::Header { name, prefix } => header(name)?
                .strip_prefix(prefix.as_str())
                .map(str::to_owned),
        }
    }
}

/// A pointer and how the generated code follows it.
#[derive(Clone, Debug)]
pub struct Mapped {
    /// The instance pointer, as written.
    pub pointer: String,
    /// The field accesses.
    pub access: Access,
}

/// Where the token set is in the success response.
#[derive(Clone, Debug)]
pub struct Success {
    /// The status.
    pub status: u16,
    /// The rule a success body meets, if the spec gives one.
    pub when: Option<When>,
    /// The access token.
    pub access_token: Mapped,
    /// The new refresh token.
    pub refresh_token: Option<Mapped>,
    /// The lifetime.
    pub expires_in: Option<Mapped>,
    /// The token type.
    pub token_type: Option<Mapped>,
    /// The issue time.
    pub created_at: Option<Mapped>,
    /// The access token's absolute expiry, and its format (`None`: read from the value).
    pub expires_at: Option<(Mapped, Option<extension::TimeFormat>)>,
    /// The refresh token's lifetime.
    pub refresh_expires_in: Option<Mapped>,
    /// The refresh token's absolute expiry, and its format.
    pub refresh_expires_at: Option<(Mapped, Option<extension::TimeFormat>)>,
    /// The documented lifetime, in seconds, of an access token whose answer gives none.
    pub lifetime: Option<u64>,
    /// The provider's idle lifetime of refresh tokens, in seconds (`refresh-idle-lifetime`),
    /// for every answer of the provider.
    pub refresh_idle_lifetime: Option<u64>,
}

/// A test on one value of a body.
#[derive(Clone, Debug, PartialEq)]
pub enum Test {
    /// The value is this.
    Equals(Value),
    /// The value is present, not null, and not this.
    NotEquals(Value),
    /// The value is one of these.
    OneOf(Vec<Value>),
    /// The value is present and not null.
    Present,
    /// The value is absent or null.
    Absent,
}

impl Test {
    /// Whether `found` (the value at the rule's pointer, `None` when absent) passes. The
    /// generated clients apply the same rules (`tokenkit::support::mapping::Rule`); the conformance
    /// suite holds one to the other.
    pub fn matches(&self, found: Option<&Value>) -> bool {
        let present = found.filter(|v| !v.is_null());
        match self {
            Test::Equals(v) => found == Some(v),
            Test::NotEquals(v) => present.is_some_and(|f| f != v),
            Test::OneOf(values) => found.is_some_and(|f| values.contains(f)),
            Test::Present => present.is_some(),
            Test::Absent => present.is_none(),
        }
    }
}

/// A rule on one value of a body: where, and the test.
#[derive(Clone, Debug)]
pub struct When {
    /// The value's pointer.
    pub mapped: Mapped,
    /// The test.
    pub test: Test,
}

impl When {
    /// Whether `body` passes.
    pub fn matches(&self, body: &Value) -> bool {
        self.test.matches(body.pointer(&self.mapped.pointer))
    }
}

/// What one documented failure means.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The statuses it covers.
    pub key: StatusKey,
    /// The status it stands for (see [`ResponseCase::status`]).
    pub status: u16,
    /// The discriminator, for a failure inside a success status.
    pub when: Option<When>,
    /// The default meaning.
    pub kind: FailureKind,
    /// Meanings by error code.
    pub kinds: Vec<(String, FailureKind)>,
    /// The provider's error code.
    pub code: Option<Mapped>,
    /// The provider's message.
    pub message: Option<Mapped>,
    /// What the spec says a transient answer here proves about the request (`unprocessed`);
    /// `None`: its status decides.
    pub unprocessed: Option<bool>,
}
