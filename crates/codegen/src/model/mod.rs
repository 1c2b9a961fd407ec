//! The resolved model of one provider: everything the printer needs, all of it checked.
//!
//! `build` checks everything generation needs: anything it returns can be printed; anything
//! wrong comes back as errors naming the file and the JSON pointer. (The examples are checked
//! after it, by `lint`.)

use crate::error::{SpecError, SpecErrors};
use crate::extension::{self, FailureKind, Rotation, TokenRefresh};
use crate::names::snake;
use crate::pointer;
use crate::spec::Spec;
use crate::types::{Access, Def, Resolved, Ty, TypeBuilder, TypeDef};
use indexmap::IndexMap;
use openapiv3::{
    Operation as OaOperation, Parameter, ParameterSchemaOrContent, ReferenceOr, RequestBody,
    Response, SchemaKind, StatusCode, Type,
};
use serde_json::Value;

mod grants;
mod mapping;
mod request;
mod responses;

use mapping::{MapCtx, RequestSlot};
use request::*;
pub use request::{FORM, USABLE_DEFAULT, is_form, placeholders, safe_variable_value};
pub use responses::status_variant;
use responses::*;

/// A provider, ready to print.
#[derive(Clone, Debug)]
pub struct Provider {
    /// The spec file's stem, such as `byelabel`.
    pub name: String,
    /// The spec file, as given.
    pub file: String,
    /// `info.title`.
    pub title: String,
    /// `info.description`.
    pub description: Option<String>,
    /// `info.version`.
    pub spec_version: String,
    /// `servers`, in order; the first is the default base URL. A URL may be a template with
    /// `{name}` placeholders.
    pub servers: Vec<Server>,
    /// The first server's variables, each a per-client value that fills its placeholder.
    pub server_variables: Vec<ServerVariable>,
    /// The hosts the first server's URL may name once its variables are filled
    /// (`x-host-pattern`: `*.okta.com`, `login.example.com`), checked by the builder. Empty
    /// where the spec declares none (its variables then cannot make up the host).
    pub host_patterns: Vec<String>,
    /// Every operation that answers with tokens: the refresh operation first, then the grants
    /// served by operations of their own (`x-token-grant`), in the spec's order.
    pub operations: Vec<TokenOperation>,
    /// The refresh operation's own facts: rotation, where the token goes, the grants it also
    /// serves. `None` for a provider that issues tokens only by grants (client credentials,
    /// say): no refresh token exists.
    pub refresh: Option<Refresh>,
    /// The per-client values a user supplies (headers, query and body fields that are not
    /// constants and not the refresh token).
    pub config: Vec<ConfigField>,
    /// The generated types, in definition order.
    pub types: IndexMap<String, TypeDef>,
    /// What the spec's OAuth 2 flows say: the authorization URL and the scopes.
    pub oauth: OAuth,
    /// The whole spec as JSON: what the mock server and the lint check instances against.
    pub spec_json: Value,
    /// Body fields whose values error snippets never show: every secret-typed field, by its
    /// JSON name, sorted.
    pub sensitive_fields: Vec<String>,
}

/// A server URL.
#[derive(Clone, Debug)]
pub struct Server {
    /// The URL.
    pub url: String,
    /// What it is (production, sandbox …).
    pub description: Option<String>,
}

/// A variable of the first server's URL (`https://{subdomain}.example.com`).
#[derive(Clone, Debug)]
pub struct ServerVariable {
    /// The placeholder's name, as the URL writes it.
    pub name: String,
    /// Its per-client value: an index into [`Provider::config`].
    pub field: usize,
    /// The value used when the user gives none: the default of an `enum` variable, or one the
    /// spec marks usable (`x-usable-default`). `None`: the user must give one (a tenant's
    /// host, whose default is only a placeholder).
    pub default: Option<String>,
}

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

/// Client authentication declared by a security scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1): indexes into
    /// [`Provider::config`].
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
        /// The client id (issuer and subject): an index into [`Provider::config`].
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
    /// A per-client value: an index into [`Provider::config`].
    Config(usize),
    /// The refresh token being exchanged (see [`Refresh::place`]).
    RefreshToken,
    /// A value made fresh for every request.
    Generated(extension::GenerateKind),
}

/// A value the user gives when building the client.
#[derive(Clone, Debug)]
pub struct ConfigField {
    /// The Rust field and builder method name.
    pub name: String,
    /// The Rust type.
    pub ty: Ty,
    /// Required values are builder arguments; the others are setters.
    pub required: bool,
    /// From the spec.
    pub doc: Option<String>,
    /// A value for tests and examples: the spec's example, or one made up from the type.
    pub example: Value,
    /// Whether the client keeps it: a body value, or the client id the authorization URL
    /// names. Header, query and path values live only in the endpoints.
    pub kept: bool,
    /// Whether its values are `Copy` (numbers, booleans, the generated string enums).
    pub copy: bool,
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

impl Provider {
    /// The grant a request body is, if it is one (a request carrying a refresh token is the
    /// refresh, whatever its body says).
    pub fn grant_of(&self, body: Option<&Value>) -> Option<&Grant> {
        let body = body?;
        self.all_grants().find(|g| g.matches(body))
    }
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

/// What only the refresh operation has.
#[derive(Clone, Debug)]
pub struct Refresh {
    /// What the refresh sends: the refresh token, or (`request: {access-token: …}`) the
    /// current access token, for a provider that exchanges it and issues no refresh token.
    pub sends_access_token: bool,
    /// The rotation policy.
    pub rotation: Rotation,
    /// How long the provider still accepts a rotated refresh token (`reuse-grace`).
    pub reuse_grace: Option<u64>,
    /// After how long unused a refresh token dies (`refresh-idle-lifetime`), in seconds.
    pub idle_lifetime: Option<u64>,
    /// Where the refresh token travels in the request.
    pub place: RefreshPlace,
    /// The grants the refresh operation also serves, in the mapping's order.
    pub grants: Vec<Grant>,
}

impl Provider {
    /// The refresh operation (`build` puts it first), unless the provider only has grants.
    pub fn refresh_operation(&self) -> Option<&TokenOperation> {
        self.operations.first().filter(|op| op.is_refresh())
    }

    /// Whether an operation authenticates the client with `private_key_jwt`: the client is then
    /// built with the application's signing key.
    pub fn signs_assertions(&self) -> bool {
        self.operations
            .iter()
            .any(|op| matches!(op.auth, Some(Auth::PrivateKeyJwt { .. })))
    }

    /// The grants served by operations of their own, with those operations.
    pub fn grant_operations(&self) -> impl Iterator<Item = (&TokenOperation, &Grant)> {
        self.operations
            .iter()
            .filter_map(|op| op.grant.as_ref().map(|g| (op, g)))
    }

    /// The operation that serves `kind` (its own, or the refresh operation), if the spec
    /// maps that grant.
    pub fn operation_for(&self, kind: crate::extension::GrantKind) -> Option<&TokenOperation> {
        match self.grant_operations().find(|(_, g)| g.kind == kind) {
            Some((op, _)) => Some(op),
            None => self
                .refresh
                .as_ref()
                .filter(|r| r.grants.iter().any(|g| g.kind == kind))
                .and(self.refresh_operation()),
        }
    }

    /// The grants the refresh operation also serves (none without one).
    pub fn refresh_grants(&self) -> &[Grant] {
        self.refresh.as_ref().map_or(&[], |r| &r.grants)
    }

    /// Every grant, on the refresh operation or its own.
    pub fn all_grants(&self) -> impl Iterator<Item = &Grant> {
        self.refresh_grants()
            .iter()
            .chain(self.operations.iter().filter_map(|op| op.grant.as_ref()))
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
}

/// What the spec's OAuth 2 security schemes declare.
#[derive(Clone, Debug, Default)]
pub struct OAuth {
    /// The authorization code flow's `authorizationUrl`.
    pub authorization_url: Option<String>,
    /// Every flow's scopes and their descriptions, first declaration first.
    pub scopes: Vec<(String, String)>,
    /// The per-client value the authorization URL names as `client_id` (an index into
    /// [`Provider::config`]): a required text value of that name, when there is a URL.
    pub client_id: Option<usize>,
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
    /// A per-client value: an index into [`Provider::config`].
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

/// The refresh operation's token mapping, checked against the schemas.
#[derive(Clone, Debug)]
pub(crate) struct Mapping {
    /// Whether the refresh sends the access token (`request: {access-token: …}`).
    pub sends_access_token: bool,
    /// The rotation policy.
    pub rotation: Rotation,
    /// How long the provider still accepts a rotated refresh token (`reuse-grace`).
    pub reuse_grace: Option<u64>,
    /// Where the refresh token travels in the request.
    pub refresh_place: RefreshPlace,
    /// The success response.
    pub success: Success,
    /// Documented failures.
    pub failures: Vec<Failure>,
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

/// The fields of a struct type, by name.
pub fn struct_fields<'a>(
    types: &'a IndexMap<String, TypeDef>,
    name: &str,
) -> &'a [crate::types::Field] {
    match types.get(name).map(|t| &t.def) {
        Some(Def::Struct { fields, .. }) => fields,
        _ => &[],
    }
}

/// Every status key an operation documents, modelled or not.
fn documented(op: &OaOperation) -> Vec<String> {
    op.responses
        .responses
        .keys()
        .map(ToString::to_string)
        .chain(op.responses.default.as_ref().map(|_| "default".to_owned()))
        .collect()
}

/// The `Accept` header of an operation: the media types of its documented responses.
fn accept_of(responses: &[ResponseCase]) -> String {
    let mut media: Vec<&str> = responses
        .iter()
        .filter_map(|r| r.body.as_ref().map(|(m, _)| m.as_str()))
        .collect();
    media.dedup();
    if media.is_empty() {
        "application/json".to_owned()
    } else {
        media.join(", ")
    }
}

/// Where an operation is in the spec.
struct Found<'a> {
    /// Its pointer (`/paths/~1token/post`).
    pointer: String,
    /// The HTTP method, upper case.
    method: String,
    /// The path below the base URL.
    path: String,
    /// The operation.
    op: &'a OaOperation,
}

/// A mapping's `set` and `generate`: some of their keys name the operation's parameters.
type RequestValues<'a> = (
    &'a IndexMap<String, Value>,
    &'a IndexMap<String, extension::GenerateKind>,
);

/// What every token operation is made of, whatever it serves.
struct Parts {
    params: Vec<Param>,
    auth: Option<Auth>,
    /// `Some(None)`: no body; `None`: an error was reported.
    body: Option<Option<BodyParts>>,
    responses: Vec<ResponseCase>,
}

impl Found<'_> {
    /// The steps every token operation shares: its parameters (knowing where the refresh
    /// token goes, for the refresh operation), its path, its client authentication, its body
    /// and its responses.
    #[allow(clippy::too_many_arguments)]
    fn parts(
        &self,
        spec: &Spec,
        op_name: &str,
        place: Option<&RefreshPlace>,
        set: Option<RequestValues<'_>>,
        types: &mut TypeBuilder<'_>,
        config: &mut Vec<ConfigField>,
        errors: &mut SpecErrors,
    ) -> Parts {
        let fixed = Fixed {
            at: set.map(|_| self.mapping_request_at(place.is_some())),
            values: set.map(|(set, _)| set),
            generate: set.map(|(_, generate)| generate),
        };
        let params = params(
            spec,
            &self.pointer,
            self.op,
            place,
            &fixed,
            types,
            config,
            errors,
        );
        check_path(spec, &self.pointer, &self.path, &params, errors);
        let auth = auth(spec, &self.pointer, self.op, config, errors);
        let in_body = matches!(place, Some(RefreshPlace::Body { .. }));
        let body = request_body(
            spec,
            &self.pointer,
            self.op,
            op_name,
            in_body,
            types,
            errors,
        );
        let responses = responses(spec, &self.pointer, self.op, op_name, types, errors);
        Parts {
            params,
            auth,
            body,
            responses,
        }
    }

    /// Where this operation's mapping writes its `request` (for errors).
    fn mapping_request_at(&self, refresh: bool) -> String {
        let key = if refresh {
            extension::KEY
        } else {
            extension::GRANT_KEY
        };
        pointer::join(&pointer::join(&self.pointer, key), "request")
    }

    /// The mapping's context for this operation's extension (`key`).
    fn map_ctx<'r>(&self, file: &'r str, key: &str, responses: &'r [ResponseCase]) -> MapCtx<'r> {
        MapCtx {
            file,
            at: pointer::join(&self.pointer, key),
            responses,
            documented: documented(self.op),
            token_key: "refresh-token",
        }
    }

    /// The operation, once its body is known.
    fn operation(
        self,
        id: String,
        op_name: &str,
        params: Vec<Param>,
        body: Option<Body>,
        responses: Vec<ResponseCase>,
        types: &TypeBuilder<'_>,
    ) -> Operation {
        Operation {
            id,
            method: self.method,
            path: self.path,
            pointer: self.pointer,
            summary: self.op.summary.clone(),
            description: self.op.description.clone(),
            params,
            body,
            accept: accept_of(&responses),
            outcome: outcome_name(op_name, types.defs()),
            responses,
        }
    }
}

/// The operations with `x-token-grant`, each modelled like the refresh operation: its
/// parameters, client authentication, body, responses and the mapping of its answers.
fn grant_operations(
    spec: &Spec,
    types: &mut TypeBuilder<'_>,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> Vec<TokenOperation> {
    let file = spec.file.as_str();
    let mut out = Vec::new();
    for (path, item) in &spec.api.paths.paths {
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        for (method, op) in item.iter() {
            if !op.extensions.contains_key(extension::GRANT_KEY) {
                continue;
            }
            let op_pointer = pointer::join(&pointer::join("/paths", path), method);
            if op.extensions.contains_key(extension::KEY) {
                errors.push(SpecError::new(
                    file,
                    &op_pointer,
                    format!(
                        "an operation carries either `{}` or `{}`; grants of the refresh operation go under its `grants`",
                        extension::KEY,
                        extension::GRANT_KEY
                    ),
                ));
                continue;
            }
            let ext = match extension::read_grant(file, &op_pointer, &op.extensions) {
                Ok(ext) => ext,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let Some(id) = op.operation_id.clone().filter(|id| !id.trim().is_empty()) else {
                errors.push(
                    SpecError::new(file, &op_pointer, "the grant operation has no operationId")
                        .hint("add `operationId: login`; it names the generated types and method"),
                );
                continue;
            };
            let op_name = crate::names::pascal(&id);
            let found = Found {
                pointer: op_pointer,
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                op,
            };
            let Parts {
                params,
                auth,
                body,
                responses,
            } = found.parts(
                spec,
                &op_name,
                None,
                Some((&ext.request.set, &ext.request.generate)),
                types,
                config,
                errors,
            );
            let ctx = found.map_ctx(file, extension::GRANT_KEY, &responses);
            let answers = ctx.answers(types, &ext.success, &ext.failures, errors);
            let Some(body) = body else { continue };
            let plan = grants::plan(
                file,
                &pointer::join(&ctx.at, "request"),
                types,
                body.as_ref().map(|b| &b.ty),
                ext.grant,
                &ext.request,
                errors,
            );
            let (Some((success, failures)), Some(mut plan)) = (answers, plan) else {
                continue;
            };
            let assertion = ext.client_assertion.as_deref().and_then(|ptr| {
                let at = pointer::join(&ctx.at, "client-assertion");
                grants::client_assertion(
                    file,
                    &at,
                    types,
                    std::slice::from_mut(&mut plan),
                    ptr,
                    errors,
                )
            });
            let fill = match &body {
                Some(parts) => grants::fill_all(
                    file,
                    types.defs(),
                    std::slice::from_ref(&plan),
                    parts.example.as_ref(),
                    config,
                    errors,
                )
                .pop()
                .unwrap_or_default(),
                None => Vec::new(),
            };
            let body = body.map(|parts| {
                let slot = (plan.wrap.clone(), plan.struct_name.clone(), fill.clone());
                parts.into_body(file, types, &[plan.struct_name.as_str()], slot, errors)
            });
            let auth = with_assertion(file, &found.pointer, auth, assertion, config, errors);
            out.push(TokenOperation {
                operation: found.operation(id, &op_name, params, body, responses, types),
                auth,
                success,
                failures,
                grant: Some(Grant {
                    kind: ext.grant,
                    wrap: plan.wrap,
                    struct_name: plan.struct_name,
                    fill,
                }),
            });
        }
    }
    out
}

/// The refresh operation, modelled: its token operation, what only it has, and where its
/// mapping is.
struct RefreshPart {
    operation: TokenOperation,
    refresh: Refresh,
}

/// Builds the model of a parsed spec, collecting every problem found.
pub fn build(spec: &Spec) -> Result<Provider, SpecErrors> {
    let mut errors = SpecErrors::default();
    // The token operations' own servers, where they declare them, stand for the document's.
    let spec = &match token_servers(spec) {
        Ok(spec) => spec,
        Err(e) => {
            errors.push(e);
            return Err(errors);
        }
    };
    let file = spec.file.as_str();
    let found = match refresh_operation(spec) {
        Ok(found) => found,
        Err(e) => {
            errors.push(e);
            return Err(errors);
        }
    };
    let components = spec.api.components.as_ref().map(|c| &c.schemas);
    let mut types = TypeBuilder::new(file, components);
    // The names the printer uses for its own items; schemas named so get another name.
    types.reserve_names(&["Client", "ClientBuilder"]);
    let mut config = Vec::new();
    let servers = servers(spec, &mut errors);
    let server_variables = server_variables(spec, &mut types, &mut config, &mut errors);
    let host_patterns = host_patterns(spec, &server_variables, &mut errors);
    let refresh = match found {
        Some(found) => Some(
            refresh_part(spec, found, &mut types, &mut config, &mut errors)
                .ok_or_else(|| std::mem::take(&mut errors))?,
        ),
        None => None,
    };
    let grant_operations = grant_operations(spec, &mut types, &mut config, &mut errors);
    let mut served: Vec<(extension::GrantKind, &str, String)> = Vec::new();
    if let Some(part) = &refresh {
        let at = pointer::join(&part.operation.operation.pointer, extension::KEY);
        for g in &part.refresh.grants {
            let at = pointer::join(&pointer::join(&at, "grants"), g.kind.key());
            served.push((g.kind, part.operation.operation.path.as_str(), at));
        }
    }
    for (op, grant) in grant_operations
        .iter()
        .filter_map(|op| op.grant.as_ref().map(|g| (op, g)))
    {
        let at = pointer::join(&op.operation.pointer, extension::GRANT_KEY);
        if served.iter().any(|(k, _, _)| *k == grant.kind) {
            errors.push(SpecError::new(
                file,
                &at,
                format!("the {} grant is mapped twice", grant.kind.key()),
            ));
        }
        served.push((grant.kind, op.operation.path.as_str(), at));
    }
    if refresh.is_none() {
        // Nothing could ever send a refresh token such a provider issued.
        for op in grant_operations
            .iter()
            .filter(|op| op.success.refresh_token.is_some())
        {
            let at = pointer::join(&op.operation.pointer, extension::GRANT_KEY);
            errors.push(
                SpecError::new(
                    file,
                    &pointer::join(&pointer::join(&at, "success"), "refresh-token"),
                    "the spec has no refresh operation, so a refresh token could never be used",
                )
                .hint("map the refresh operation with `x-token-refresh`, or leave `refresh-token` out"),
            );
        }
    }
    let refresh_path = refresh
        .as_ref()
        .map(|r| r.operation.operation.path.as_str());
    let oauth = grants::flows(spec, &servers, refresh_path, &served, &mut errors);
    let first_at = refresh
        .as_ref()
        .map(|r| r.operation.operation.pointer.clone())
        .or_else(|| {
            grant_operations
                .first()
                .map(|g| g.operation.pointer.clone())
        })
        .unwrap_or_else(|| "/paths".to_owned());
    check_config_names(file, &first_at, &config, &mut errors);
    let (refresh_op, refresh) = match refresh {
        Some(RefreshPart { operation, refresh }) => (Some(operation), Some(refresh)),
        None => (None, None),
    };
    // Every answer of the provider carries the idle lifetime of the refresh tokens it issues.
    let idle = refresh.as_ref().and_then(|r| r.idle_lifetime);
    let mut grant_operations = grant_operations;
    let mut refresh_op = refresh_op;
    for op in refresh_op.iter_mut().chain(grant_operations.iter_mut()) {
        op.success.refresh_idle_lifetime = idle;
    }
    let info = &spec.api.info;
    let mut provider = Provider {
        name: spec.name.clone(),
        file: file.to_owned(),
        title: info.title.clone(),
        description: info.description.clone(),
        spec_version: info.version.clone(),
        servers,
        server_variables,
        host_patterns,
        operations: refresh_op.into_iter().chain(grant_operations).collect(),
        refresh,
        config,
        types: types.finish(),
        oauth,
        spec_json: spec.json.clone(),
        sensitive_fields: Vec::new(),
    };
    decide(&mut provider);
    errors.into_result(provider)
}

/// The refresh operation (`x-token-refresh`) and the grants it also serves; `None` when an
/// error was reported.
fn refresh_part(
    spec: &Spec,
    (op_pointer, method, path, op): (String, String, String, &OaOperation),
    types: &mut TypeBuilder<'_>,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> Option<RefreshPart> {
    let file = spec.file.as_str();
    let mapping_spec = match extension::read(file, &op_pointer, &op.extensions) {
        Ok(m) => Some(m),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let id = match &op.operation_id {
        Some(id) if !id.trim().is_empty() => id.clone(),
        _ => {
            errors.push(
                SpecError::new(
                    file,
                    &op_pointer,
                    "the refresh operation has no operationId",
                )
                .hint("add `operationId: refreshToken`; it names the generated method"),
            );
            "refresh".to_owned()
        }
    };
    let op_name = crate::names::pascal(&id);

    let place = mapping_spec
        .as_ref()
        .and_then(|m| m.request.place().map(RefreshPlace::from_spec));
    let found = Found {
        pointer: op_pointer.clone(),
        method,
        path: path.clone(),
        op,
    };
    let set = mapping_spec
        .as_ref()
        .map(|m| (&m.request.set, &m.request.generate));
    let Parts {
        params,
        auth,
        body,
        responses,
    } = found.parts(spec, &op_name, place.as_ref(), set, types, config, errors);

    let (Some(mapping_spec), Some(place), Some(body)) = (mapping_spec, place, body) else {
        return None;
    };
    let mut ctx = found.map_ctx(file, extension::KEY, &responses);
    ctx.token_key = mapping_spec.request.key();
    if !mapping_spec.grants.is_empty() {
        let request = &mapping_spec.request;
        let params = (request.set.keys().map(|k| ("set", k)))
            .chain(request.generate.keys().map(|k| ("generate", k)));
        for (map, key) in params.filter(|(_, k)| !k.starts_with('/')) {
            errors.push(
                SpecError::new(
                    file,
                    &pointer::join(&pointer::join(&pointer::join(&ctx.at, "request"), map), key),
                    format!("{key:?} is a parameter, fixed for every request of this operation, and it also serves grants"),
                )
                .hint("fix a parameter where one operation serves one request: give the grants operations of their own (`x-token-grant`), or use a body property"),
            );
        }
    }
    let refresh_slot = match (&place, &body) {
        (RefreshPlace::Body { pointer }, Some(body)) => ctx.request_slot(
            types,
            &body.ty,
            pointer,
            mapping_spec.request.variant.as_deref(),
            errors,
        ),
        (RefreshPlace::Body { .. }, None) => None,
        (_, body) => {
            let struct_name = body_struct(types.defs(), body.as_ref().map(|b| &b.ty));
            if let Some(body) = body.as_ref().filter(|_| struct_name.is_empty()) {
                errors.push(SpecError::new(
                    file,
                    &body.schema_pointer,
                    "with the refresh token outside the body, the body must be one object",
                ));
            }
            ctx.check_param_place(&place, &params, errors)
                .then(|| RequestSlot {
                    wrap: None,
                    struct_name,
                    refresh_json: String::new(),
                })
        }
    };
    let mapping = ctx.mapping(types, &mapping_spec, place, errors);

    let (
        Some(mapping),
        Some(RequestSlot {
            wrap,
            struct_name,
            refresh_json,
        }),
    ) = (mapping, refresh_slot)
    else {
        return None;
    };
    let grant_plans = grants::plans(
        file,
        &ctx.at,
        types,
        body.as_ref().map(|b| &b.ty),
        &mapping_spec.grants,
        errors,
    );
    let mut refresh_own = vec![(refresh_json.clone(), FillSource::RefreshToken)];
    refresh_own.extend(grants::fixed(
        file,
        &pointer::join(&ctx.at, "request"),
        types,
        &struct_name,
        &mapping_spec.request.set,
        errors,
    ));
    refresh_own.extend(grants::generated(
        file,
        &pointer::join(&ctx.at, "request"),
        types,
        &struct_name,
        &mapping_spec.request.generate,
        errors,
    ));
    let mut plans = vec![grants::Plan {
        kind: None,
        wrap: wrap.clone(),
        struct_name: struct_name.clone(),
        own: refresh_own,
        at: pointer::join(&ctx.at, "request"),
    }];
    plans.extend(grant_plans);
    let assertion = mapping_spec.client_assertion.as_deref().and_then(|ptr| {
        let at = pointer::join(&ctx.at, "client-assertion");
        grants::client_assertion(file, &at, types, &mut plans, ptr, errors)
    });
    let mut fills = grants::fill_all(
        file,
        types.defs(),
        &plans,
        body.as_ref().and_then(|b| b.example.as_ref()),
        config,
        errors,
    )
    .into_iter();
    let refresh_fill = fills.next().unwrap_or_default();
    let grants: Vec<Grant> = plans
        .into_iter()
        .skip(1)
        .zip(fills)
        .filter_map(|(plan, fill)| {
            Some(Grant {
                kind: plan.kind?,
                wrap: plan.wrap,
                struct_name: plan.struct_name,
                fill,
            })
        })
        .collect();
    let body = body.map(|parts| {
        let mut structs: Vec<&str> = std::iter::once(struct_name.as_str())
            .chain(grants.iter().map(|g| g.struct_name.as_str()))
            .collect();
        structs.dedup();
        let slot = (wrap.clone(), struct_name.clone(), refresh_fill);
        parts.into_body(file, types, &structs, slot, errors)
    });
    let auth = with_assertion(file, &op_pointer, auth, assertion, config, errors);
    Some(RefreshPart {
        operation: TokenOperation {
            operation: found.operation(id, &op_name, params, body, responses, types),
            auth,
            success: mapping.success,
            failures: mapping.failures,
            grant: None,
        },
        refresh: Refresh {
            sends_access_token: mapping.sends_access_token,
            rotation: mapping.rotation,
            reuse_grace: mapping.reuse_grace,
            idle_lifetime: mapping_spec.refresh_idle_lifetime,
            place: mapping.refresh_place,
            grants,
        },
    })
}

/// An operation's client authentication once its mapping is read: `private_key_jwt` when it
/// names a `client-assertion` property (then the spec declares no other), with the client id it
/// signs as (the `client_id` per-client value, or a new one).
fn with_assertion(
    file: &str,
    op_pointer: &str,
    auth: Option<Auth>,
    assertion: Option<String>,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> Option<Auth> {
    let Some(field) = assertion else {
        return auth;
    };
    if auth.is_some() {
        errors.push(
            SpecError::new(
                file,
                op_pointer,
                "the operation declares a security requirement and a `client-assertion`: one client authentication per operation",
            )
            .hint("with private_key_jwt, drop the operation's `security` (or write `security: []`)"),
        );
    }
    let client_id = config
        .iter()
        .position(|c| c.name == "client_id" && c.required && c.ty == Ty::String)
        .unwrap_or_else(|| {
            push_config(
                config,
                ConfigField {
                    name: "client_id".to_owned(),
                    ty: Ty::String,
                    required: true,
                    doc: Some(
                        "The client id: the issuer and subject of the signed client assertions."
                            .to_owned(),
                    ),
                    example: Value::String("client-id".to_owned()),
                    kept: false,
                    copy: false,
                },
            )
        });
    Some(Auth::PrivateKeyJwt { field, client_id })
}

/// The decisions the printer would otherwise make: which fields are sensitive, which
/// per-client values the client keeps and which are `Copy`, and the authorization URL's client
/// id.
fn decide(provider: &mut Provider) {
    let mut sensitive: Vec<String> = provider
        .types
        .values()
        .filter_map(|t| match &t.def {
            Def::Struct { fields, .. } => Some(fields),
            _ => None,
        })
        .flatten()
        .filter(|f| f.ty == Ty::Secret)
        .map(|f| f.json.clone())
        .collect();
    sensitive.sort_unstable();
    sensitive.dedup();
    provider.sensitive_fields = sensitive;
    provider.oauth.client_id = provider.oauth.authorization_url.as_ref().and_then(|_| {
        provider
            .config
            .iter()
            .position(|c| c.name == "client_id" && c.required && c.ty == Ty::String)
    });
    let in_bodies: Vec<usize> = provider
        .operations
        .iter()
        .filter_map(|op| op.operation.body.as_ref())
        .flat_map(|b| &b.fill)
        .chain(provider.all_grants().flat_map(|g| &g.fill))
        .filter_map(|f| match f.source {
            FillSource::Config(i) => Some(i),
            _ => None,
        })
        .chain(provider.oauth.client_id)
        // The authorization URL fills its placeholders from the client's values.
        .chain(
            provider
                .server_variables
                .iter()
                .filter(|_| {
                    provider
                        .oauth
                        .authorization_url
                        .as_deref()
                        .is_some_and(|url| url.contains('{'))
                })
                .map(|v| v.field),
        )
        .collect();
    let types = &provider.types;
    for (i, field) in provider.config.iter_mut().enumerate() {
        field.kept = in_bodies.contains(&i);
        field.copy = match &field.ty {
            Ty::Bool | Ty::I32 | Ty::I64 | Ty::F64 => true,
            Ty::Named(name) => matches!(types.get(name).map(|t| &t.def), Some(Def::Enum { .. })),
            _ => false,
        };
    }
}
