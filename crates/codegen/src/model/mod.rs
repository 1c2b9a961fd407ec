//! The model of one provider: everything the printer needs, all of it checked, and the
//! pipeline that builds it from a spec.
//!
//! [`build`] runs the stages after `read` and `normalize` (which make the [`Spec`]) in order,
//! each once, each handing its output to the next: `locate` (the token operations and their
//! extensions) → `resolve` (servers, parameters, bodies, responses, types) → `map` (the
//! token mapping checked against those types) → `plan` (the requests filled, the per-client
//! values, the decisions) → [`Provider`]. Every stage reports all it finds (file and JSON
//! pointer); anything `build` returns can be printed. (The examples are checked after it, by
//! `lint`.)

mod answers;
mod config;
mod operation;

pub use answers::*;
pub use config::*;
pub use operation::*;

use crate::error::SpecErrors;
use crate::extension::Rotation;
use crate::read::Spec;
use crate::types::TypeDef;
use indexmap::IndexMap;
use serde_json::Value;

/// Builds the model of a parsed spec, collecting every problem found.
pub fn build(spec: &Spec) -> Result<Provider, SpecErrors> {
    let mut errors = SpecErrors::default();
    let Some(located) = crate::locate::locate(spec, &mut errors) else {
        return Err(errors);
    };
    let resolution = crate::resolve::resolve(located, &mut errors);
    let mapping = crate::map::map(resolution, &mut errors);
    match crate::plan::plan(mapping, &mut errors) {
        Some(provider) => errors.into_result(provider),
        None => Err(errors),
    }
}

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
    /// The token revocation operation (RFC 7009, `x-token-revoke`), where the spec maps one:
    /// a removal revokes the connection's tokens there first.
    pub revocation: Option<Revocation>,
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
    /// What the maintainer should know that is no error, with file and pointer: a security
    /// requirement the client passed over or took from the document. `lint` and `gen` print
    /// them.
    pub notes: Vec<crate::SpecError>,
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
    /// The values it may take, where the spec lists them (`enum`); empty: free text.
    pub choices: Vec<String>,
}

/// Whether `value` may fill a server variable: RFC 3986 unreserved characters only, and not a
/// dot segment, so that no value can change the URL's structure (its host, user, port, path,
/// query or fragment). The runtime applies the same rule (`support::fill_server_variables`).
pub fn safe_variable_value(value: &str) -> bool {
    !value.is_empty()
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The `{name}` placeholders of a URL template, in order.
pub fn placeholders(template: &str) -> Vec<&str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect()
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

/// The token revocation operation (RFC 7009): its request's body is filled with the token
/// (`GrantArg::RevokedToken`), its type hint where the body takes one
/// (`GrantArg::TokenTypeHint`), fixed and per-client values; any 2xx answer is a revocation.
#[derive(Clone, Debug)]
pub struct Revocation {
    /// The operation.
    pub operation: Operation,
    /// Its client authentication.
    pub auth: Option<Auth>,
    /// For a `oneOf` body: the enum and the variant the request sends.
    pub wrap: Option<(String, String)>,
    /// The struct its request fills in.
    pub struct_name: String,
    /// How each field of that struct is filled.
    pub fill: Vec<BodyFill>,
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

impl Provider {
    /// The grant a request body is, if it is one (a request carrying a refresh token is the
    /// refresh, whatever its body says).
    pub fn grant_of(&self, body: Option<&Value>) -> Option<&Grant> {
        let body = body?;
        self.all_grants().find(|g| g.matches(body))
    }
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
