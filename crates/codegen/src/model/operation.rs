//! A token operation as the printer sees it: the request (parameters, client authentication,
//! body and how each request fills it) and the grant it serves.

use super::{Failure, ResponseCase, Success};
use crate::extension::{self, GrantKind};
use crate::types::Ty;
use serde_json::Value;

/// The refresh operation.
#[derive(Clone, Debug)]
pub struct Operation {
    /// `operationId`.
    pub id: String,
    /// The HTTP method, upper case.
    pub method: String,
    /// The path below the base URL.
    pub path: String,
    /// The operation's pointer in the spec.
    pub pointer: String,
    /// `summary`.
    pub summary: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// Header and query parameters.
    pub params: Vec<Param>,
    /// The request body; `None` when the operation has none (every value travels in the
    /// query, the headers or the path).
    pub body: Option<Body>,
    /// Documented responses, exact statuses in the spec's order.
    pub responses: Vec<ResponseCase>,
    /// The `Accept` header: the media types of the documented responses.
    pub accept: String,
    /// The outcome enum's name: `<OperationId>Response`, or `…Outcome` when a schema has that
    /// name.
    pub outcome: String,
}

/// An operation that answers with tokens: the refresh operation, or a grant on an operation of
/// its own (a provider's login endpoint, say). Each has its own parameters, client
/// authentication, body, responses and the mapping of its answers.
#[derive(Clone, Debug)]
pub struct TokenOperation {
    /// The operation.
    pub operation: Operation,
    /// How the client authenticates itself to it, from the spec's security requirement.
    pub auth: Option<Auth>,
    /// Where the token set is in its success response.
    pub success: Success,
    /// What its documented failures mean.
    pub failures: Vec<Failure>,
    /// The grant it serves, when it is not the refresh operation.
    pub grant: Option<Grant>,
}

impl TokenOperation {
    /// Whether it is the refresh operation.
    pub fn is_refresh(&self) -> bool {
        self.grant.is_none()
    }
}

/// Client authentication declared by a security scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1): indexes into
    /// [`Provider::config`](super::Provider::config).
    Basic {
        /// The client id's config field.
        id: usize,
        /// The client secret's config field.
        secret: usize,
    },
    /// `private_key_jwt` (RFC 7523 §2.2): a fresh assertion, signed with the application's key,
    /// in a body property of every request.
    PrivateKeyJwt {
        /// The body property.
        field: String,
        /// The client id (issuer and subject): an index into [`Provider::config`](super::Provider::config).
        client_id: usize,
    },
    /// An API key in a header or query parameter.
    ApiKey {
        /// Header or query.
        location: Location,
        /// The header or parameter name.
        name: String,
        /// The key's config field.
        key: usize,
    },
}

/// Where a parameter goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// An HTTP header.
    Header,
    /// A query string parameter.
    Query,
    /// A `{name}` segment of the path.
    Path,
}

/// A header or query parameter.
#[derive(Clone, Debug)]
pub struct Param {
    /// Header or query.
    pub location: Location,
    /// The wire name.
    pub name: String,
    /// Whether the spec requires it.
    pub required: bool,
    /// Its schema's pointer in the spec.
    pub schema_pointer: String,
    /// Where its value comes from.
    pub value: ParamValue,
}

/// The source of a parameter's value.
#[derive(Clone, Debug)]
pub enum ParamValue {
    /// A single-value enum: the client always sends it.
    Constant(String),
    /// A per-client value: an index into [`Provider::config`](super::Provider::config).
    Config(usize),
    /// The refresh token being exchanged (see [`Refresh::place`](super::Refresh::place)).
    RefreshToken,
    /// A value made fresh for every request.
    Generated(extension::GenerateKind),
}

/// The JSON media type of a content map, or an error naming what is there instead.
/// The form media type of RFC 6749 requests.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// Whether `media` is the form media type.
pub fn is_form(media: &str) -> bool {
    media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case(FORM)
}

/// The request body.
#[derive(Clone, Debug)]
pub struct Body {
    /// The media type.
    pub media_type: String,
    /// The body's type.
    pub ty: Ty,
    /// The spec's example, for the mock and the docs.
    pub example: Option<Value>,
    /// The body schema's pointer in the spec.
    pub schema_pointer: String,
    /// For a `oneOf` body: the enum and the variant the refresh request uses.
    pub wrap: Option<(String, String)>,
    /// The struct the refresh request fills in.
    pub struct_name: String,
    /// How each field of that struct is filled.
    pub fill: Vec<BodyFill>,
}

/// One field of a request body.
#[derive(Clone, Debug)]
pub struct BodyFill {
    /// The property name.
    pub json: String,
    /// The value.
    pub source: FillSource,
    /// Whether the field is an `Option`.
    pub optional: bool,
}

/// Where a body field's value comes from.
#[derive(Clone, Debug)]
pub enum FillSource {
    /// The refresh token being exchanged.
    RefreshToken,
    /// A single-value enum.
    Constant {
        /// The enum type.
        enum_name: String,
        /// Its only value.
        value: String,
    },
    /// A per-client value: an index into [`Provider::config`](super::Provider::config).
    Config(usize),
    /// A fixed text (`set` on a string property).
    Literal(String),
    /// A value the grant's call supplies.
    Arg(GrantArg),
    /// A value made fresh for every request (the endpoint writes it over a placeholder).
    Generated {
        /// What to make.
        kind: extension::GenerateKind,
        /// Whether the field holds it as text.
        as_text: bool,
    },
    /// Nothing: a field another request fills (`None`).
    Omit,
    /// The signed client assertion (`private_key_jwt`), written by the endpoint over a
    /// placeholder.
    ClientAssertion,
}

/// A grant the operation serves besides the refresh.
#[derive(Clone, Debug)]
pub struct Grant {
    /// Which one.
    pub kind: crate::extension::GrantKind,
    /// For a `oneOf` body: the enum and the variant this grant sends.
    pub wrap: Option<(String, String)>,
    /// The struct its request fills in.
    pub struct_name: String,
    /// How each field of that struct is filled.
    pub fill: Vec<BodyFill>,
}

impl Grant {
    /// Whether a request body is this grant's: every fixed value is there, and every value a
    /// call must supply. What a server (the mock) uses to tell the grants apart.
    pub fn matches(&self, body: &Value) -> bool {
        self.fill.iter().all(|f| {
            let found = body.get(&f.json);
            match &f.source {
                FillSource::Constant { value, .. } | FillSource::Literal(value) => {
                    found.and_then(Value::as_str) == Some(value.as_str())
                }
                FillSource::Arg(_) if !f.optional => found.is_some_and(|v| !v.is_null()),
                _ => true,
            }
        })
    }
}

/// A value a grant's call supplies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantArg {
    /// The authorization code.
    Code,
    /// The redirect URI the code was issued for.
    RedirectUri,
    /// The PKCE code verifier.
    CodeVerifier,
    /// The user name.
    Username,
    /// The user's password.
    Password,
    /// A signed JWT (the JWT-bearer grant).
    Assertion,
    /// The token a revocation revokes (RFC 7009 `token`).
    RevokedToken,
    /// What kind of token it is (RFC 7009 `token_type_hint`).
    TokenTypeHint,
}

impl GrantArg {
    /// Whether every mapping of `kind` must say where this value goes.
    pub(crate) fn required_by(self, kind: GrantKind) -> bool {
        matches!(
            (kind, self),
            (GrantKind::AuthorizationCode, GrantArg::Code)
                | (GrantKind::Password, GrantArg::Username | GrantArg::Password)
                | (GrantKind::JwtBearer, GrantArg::Assertion)
        )
    }

    /// Whether requests of `kind` carry this value.
    pub(crate) fn belongs_to(self, kind: GrantKind) -> bool {
        match kind {
            GrantKind::ClientCredentials => false,
            GrantKind::AuthorizationCode => matches!(
                self,
                GrantArg::Code | GrantArg::RedirectUri | GrantArg::CodeVerifier
            ),
            GrantKind::Password => matches!(self, GrantArg::Username | GrantArg::Password),
            GrantKind::JwtBearer => self == GrantArg::Assertion,
        }
    }

    /// Whether the value is a secret (typed so, and scrubbed from errors).
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            GrantArg::Code
                | GrantArg::CodeVerifier
                | GrantArg::Password
                | GrantArg::Assertion
                | GrantArg::RevokedToken
        )
    }
}
