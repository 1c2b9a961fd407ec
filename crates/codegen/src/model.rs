//! The resolved model of one provider: everything the printer needs, all of it checked.
//!
//! `build` is where validation lives. Anything it returns can be printed without further
//! questions; anything wrong comes back as errors naming the file and the JSON pointer.

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
    /// `servers`, in order; the first is the default base URL.
    pub servers: Vec<Server>,
    /// The refresh operation.
    pub operation: Operation,
    /// The per-client values a user supplies (headers, query and body fields that are not
    /// constants and not the refresh token).
    pub config: Vec<ConfigField>,
    /// The generated types, in definition order.
    pub types: IndexMap<String, TypeDef>,
    /// The resolved token mapping.
    pub mapping: Mapping,
    /// How the client authenticates itself, from the spec's security requirement.
    pub auth: Option<Auth>,
    /// The whole spec as JSON: what the mock server and the lint check instances against.
    pub spec_json: Value,
}

/// A server URL.
#[derive(Clone, Debug)]
pub struct Server {
    /// The URL.
    pub url: String,
    /// What it is (production, sandbox …).
    pub description: Option<String>,
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
    /// The request body.
    pub body: Body,
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

/// One field of the refresh request body.
#[derive(Clone, Debug)]
pub struct BodyFill {
    /// The property name.
    pub json: String,
    /// The value.
    pub source: FillSource,
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

/// The token mapping, checked against the schemas.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// The rotation policy.
    pub rotation: Rotation,
    /// The refresh token's pointer in the request body.
    pub request_refresh_token: String,
    /// The success response.
    pub success: Success,
    /// Documented failures.
    pub failures: Vec<Failure>,
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
}

/// What one documented failure means.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The statuses it covers.
    pub key: StatusKey,
    /// The status it stands for (see [`ResponseCase::status`]).
    pub status: u16,
    /// The discriminator, for a failure inside a success status.
    pub when: Option<(Mapped, Value)>,
    /// The default meaning.
    pub kind: FailureKind,
    /// Meanings by error code.
    pub kinds: Vec<(String, FailureKind)>,
    /// The provider's error code.
    pub code: Option<Mapped>,
    /// The provider's message.
    pub message: Option<Mapped>,
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

/// Builds the model of a parsed spec, collecting every problem found.
pub fn build(spec: &Spec) -> Result<Provider, SpecErrors> {
    let mut errors = SpecErrors::default();
    let file = spec.file.as_str();
    let servers = servers(spec, &mut errors);
    let (op_pointer, method, path, op) = match refresh_operation(spec) {
        Ok(found) => found,
        Err(e) => {
            errors.push(e);
            return Err(errors);
        }
    };
    let mapping_spec = match extension::read(file, &op_pointer, &op.extensions) {
        Ok(m) => Some(m),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let components = spec.api.components.as_ref().map(|c| &c.schemas);
    let mut types = TypeBuilder::new(file, components);
    // The names the printer uses for its own items; schemas named so get another name.
    types.reserve_names(&["Client", "ClientBuilder"]);
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

    let mut config = Vec::new();
    let params = params(spec, &op_pointer, op, &mut types, &mut config, &mut errors);
    check_path(spec, &op_pointer, &path, &params, &mut errors);
    let auth = auth(spec, &op_pointer, op, &mut config, &mut errors);
    let body = request_body(spec, &op_pointer, op, &op_name, &mut types, &mut errors);
    let responses = responses(spec, &op_pointer, op, &op_name, &mut types, &mut errors);

    let (Some(mapping_spec), Some((body_ty, body_media, body_example, body_schema))) =
        (mapping_spec, body)
    else {
        return Err(errors);
    };
    let ctx = MapCtx {
        file,
        at: pointer::join(&op_pointer, extension::KEY),
        responses: &responses,
        documented: op
            .responses
            .responses
            .keys()
            .map(ToString::to_string)
            .chain(op.responses.default.as_ref().map(|_| "default".to_owned()))
            .collect(),
    };
    let refresh_slot = ctx.request_slot(&mut types, &body_ty, &mapping_spec, &mut errors);
    let mapping = ctx.mapping(&mut types, &mapping_spec, &mut errors);

    let accept = {
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
    };

    let (
        Some(mapping),
        Some(RequestSlot {
            wrap,
            struct_name,
            refresh_json,
        }),
    ) = (mapping, refresh_slot)
    else {
        return Err(errors);
    };
    let fill = body_fill(
        types.defs(),
        &struct_name,
        &refresh_json,
        body_example.as_ref(),
        &mut config,
    );
    check_config_names(file, &op_pointer, &config, &mut errors);
    if is_form(&body_media) {
        check_form_fields(file, &body_schema, types.defs(), &struct_name, &mut errors);
    }
    let info = &spec.api.info;
    let provider = Provider {
        name: spec.name.clone(),
        file: file.to_owned(),
        title: info.title.clone(),
        description: info.description.clone(),
        spec_version: info.version.clone(),
        servers,
        operation: Operation {
            id,
            method,
            path,
            pointer: op_pointer,
            summary: op.summary.clone(),
            description: op.description.clone(),
            params,
            body: Body {
                media_type: body_media,
                ty: body_ty,
                example: body_example,
                schema_pointer: body_schema,
                wrap,
                struct_name,
                fill,
            },
            responses,
            accept,
            outcome: outcome_name(&op_name, types.defs()),
        },
        config,
        types: types.finish(),
        mapping,
        auth,
        spec_json: spec.json.clone(),
    };
    errors.into_result(provider)
}

fn servers(spec: &Spec, errors: &mut SpecErrors) -> Vec<Server> {
    if spec.api.servers.is_empty() {
        errors.push(
            SpecError::new(&spec.file, "/servers", "the spec lists no server")
                .hint("add `servers: [{url: https://api.example.com}]`; the first is the client's default base URL"),
        );
    }
    spec.api
        .servers
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let at = format!("/servers/{i}");
            if s.variables.as_ref().is_some_and(|v| !v.is_empty()) || s.url.contains('{') {
                errors.push(
                    SpecError::new(&spec.file, &at, "server variables are not supported")
                        .hint("write the URL out; users override it with the builder's base_url"),
                );
                return None;
            }
            if !(s.url.starts_with("https://") || s.url.starts_with("http://")) {
                errors.push(SpecError::new(
                    &spec.file,
                    &pointer::join(&at, "url"),
                    format!("server URL {:?} is not an absolute http(s) URL", s.url),
                ));
                return None;
            }
            Some(Server {
                url: s.url.trim_end_matches('/').to_owned(),
                description: s.description.clone(),
            })
        })
        .collect()
}

/// The one operation that carries the token mapping.
fn refresh_operation(spec: &Spec) -> Result<(String, String, String, &OaOperation), SpecError> {
    let mut found = Vec::new();
    for (path, item) in &spec.api.paths.paths {
        let path_at = pointer::join("/paths", path);
        let ReferenceOr::Item(item) = item else {
            return Err(SpecError::new(
                &spec.file,
                &path_at,
                "a $ref path item is not supported",
            ));
        };
        for (method, op) in item.iter() {
            if op.extensions.contains_key(extension::KEY) {
                found.push((
                    pointer::join(&path_at, method),
                    method.to_ascii_uppercase(),
                    path.clone(),
                    op,
                ));
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(SpecError::new(
            &spec.file,
            "/paths",
            format!("no operation carries the `{}` mapping", extension::KEY),
        )
        .hint("add the token mapping to the refresh operation; see README.md")),
        _ => Err(SpecError::new(
            &spec.file,
            &found[1].0,
            format!("more than one operation carries `{}`", extension::KEY),
        )
        .hint("a spec describes one refresh operation")),
    }
}

fn params(
    spec: &Spec,
    op_pointer: &str,
    op: &OaOperation,
    types: &mut TypeBuilder<'_>,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> Vec<Param> {
    let mut out = Vec::new();
    for (i, param) in op.parameters.iter().enumerate() {
        let at = format!("{op_pointer}/parameters/{i}");
        let ReferenceOr::Item(param) = param else {
            errors.push(
                SpecError::new(&spec.file, &at, "a $ref parameter is not supported")
                    .hint("write the parameter inline"),
            );
            continue;
        };
        let (location, data) = match param {
            Parameter::Header { parameter_data, .. } => (Location::Header, parameter_data),
            Parameter::Query { parameter_data, .. } => (Location::Query, parameter_data),
            Parameter::Path { parameter_data, .. } => (Location::Path, parameter_data),
            Parameter::Cookie { .. } => {
                errors.push(
                    SpecError::new(
                        &spec.file,
                        &pointer::join(&at, "in"),
                        "cookie parameters are not supported",
                    )
                    .hint(
                        "token endpoints take headers, query parameters, path segments and bodies",
                    ),
                );
                continue;
            }
        };
        let is_token = !data.name.is_empty()
            && data
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if location == Location::Header && !is_token {
            errors.push(SpecError::new(
                &spec.file,
                &pointer::join(&at, "name"),
                format!("{:?} is not a valid HTTP header name", data.name),
            ));
            continue;
        }
        // OpenAPI 3.0: header parameters named Accept, Content-Type or Authorization are ignored.
        if location == Location::Header
            && ["accept", "content-type", "authorization"]
                .contains(&data.name.to_ascii_lowercase().as_str())
        {
            continue;
        }
        let ParameterSchemaOrContent::Schema(schema) = &data.format else {
            errors.push(
                SpecError::new(
                    &spec.file,
                    &pointer::join(&at, "content"),
                    "parameters with `content` are not supported",
                )
                .hint("use `schema`"),
            );
            continue;
        };
        if let ReferenceOr::Item(s) = schema
            && let SchemaKind::Type(Type::String(st)) = &s.schema_kind
            && let [Some(only)] = st.enumeration.as_slice()
        {
            out.push(Param {
                location,
                name: data.name.clone(),
                required: data.required,
                schema_pointer: pointer::join(&at, "schema"),
                value: ParamValue::Constant(only.clone()),
            });
            continue;
        }
        let schema_at = pointer::join(&at, "schema");
        let resolved = match types.resolve(schema.into(), &schema_at, &data.name) {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if !matches!(
            resolved.ty,
            Ty::String | Ty::Secret | Ty::I32 | Ty::I64 | Ty::F64 | Ty::Bool
        ) {
            errors.push(SpecError::new(
                &spec.file,
                &schema_at,
                format!(
                    "parameter {:?} is {}; only strings, numbers and booleans are supported",
                    data.name,
                    resolved.ty.describe()
                ),
            ));
            continue;
        }
        let trimmed = data
            .name
            .strip_prefix("X-")
            .or_else(|| data.name.strip_prefix("x-"))
            .unwrap_or(&data.name);
        let example = data.example.clone().or_else(|| schema_example(schema));
        config.push(ConfigField {
            name: snake(trimmed),
            example: example.unwrap_or_else(|| made_up_example(&resolved.ty, trimmed)),
            ty: resolved.ty,
            required: data.required,
            doc: data.description.clone(),
        });
        out.push(Param {
            location,
            name: data.name.clone(),
            required: data.required,
            schema_pointer: schema_at,
            value: ParamValue::Config(config.len() - 1),
        });
    }
    out
}

fn schema_example(schema: &ReferenceOr<openapiv3::Schema>) -> Option<Value> {
    match schema {
        ReferenceOr::Item(s) => s
            .schema_data
            .example
            .clone()
            .or_else(|| s.schema_data.default.clone()),
        ReferenceOr::Reference { .. } => None,
    }
}

fn made_up_example(ty: &Ty, name: &str) -> Value {
    match ty {
        Ty::I32 | Ty::I64 => Value::from(1),
        Ty::F64 => Value::from(1.5),
        Ty::Bool => Value::Bool(true),
        _ => Value::String(format!("example-{}", snake(name).replace('_', "-"))),
    }
}

fn is_json(media: &str) -> bool {
    let essence = media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
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

fn json_media<'a>(
    file: &str,
    at: &str,
    content: &'a IndexMap<String, openapiv3::MediaType>,
    allow_form: bool,
) -> Result<(&'a String, &'a openapiv3::MediaType), SpecError> {
    content
        .iter()
        .find(|(m, _)| is_json(m))
        .or_else(|| content.iter().find(|(m, _)| allow_form && is_form(m)))
        .ok_or_else(|| {
            let found: Vec<&String> = content.keys().collect();
            let supported = if allow_form {
                "application/json, +json and application/x-www-form-urlencoded request bodies"
            } else {
                "application/json and +json response bodies"
            };
            SpecError::new(
                file,
                &pointer::join(at, "content"),
                format!("unsupported media type {found:?}: only {supported} are supported"),
            )
        })
}

fn request_body(
    spec: &Spec,
    op_pointer: &str,
    op: &OaOperation,
    op_name: &str,
    types: &mut TypeBuilder<'_>,
    errors: &mut SpecErrors,
) -> Option<(Ty, String, Option<Value>, String)> {
    let at = pointer::join(op_pointer, "requestBody");
    let body: &RequestBody = match &op.request_body {
        Some(ReferenceOr::Item(b)) => b,
        Some(ReferenceOr::Reference { .. }) => {
            errors.push(
                SpecError::new(&spec.file, &at, "a $ref request body is not supported")
                    .hint("write the body inline; its schema may be a $ref"),
            );
            return None;
        }
        None => {
            errors.push(
                SpecError::new(
                    &spec.file,
                    op_pointer,
                    "the refresh operation has no request body",
                )
                .hint("the refresh token travels in a JSON body"),
            );
            return None;
        }
    };
    let (media, content) = match json_media(&spec.file, &at, &body.content, true) {
        Ok(found) => found,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let media_at = pointer::join(&pointer::join(&at, "content"), media);
    let Some(schema) = &content.schema else {
        errors.push(SpecError::new(
            &spec.file,
            &media_at,
            "the request body has no schema",
        ));
        return None;
    };
    let example = content.example.clone().or_else(|| {
        content.examples.values().find_map(|e| match e {
            ReferenceOr::Item(e) => e.value.clone(),
            ReferenceOr::Reference { .. } => None,
        })
    });
    let schema_at = pointer::join(&media_at, "schema");
    match types.resolve(schema.into(), &schema_at, &format!("{op_name}Request")) {
        Ok(Resolved { ty, .. }) => Some((ty, media.clone(), example, schema_at)),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

fn responses(
    spec: &Spec,
    op_pointer: &str,
    op: &OaOperation,
    op_name: &str,
    types: &mut TypeBuilder<'_>,
    errors: &mut SpecErrors,
) -> Vec<ResponseCase> {
    let responses_at = pointer::join(op_pointer, "responses");
    let mut out = Vec::new();
    let keyed = op
        .responses
        .responses
        .iter()
        .map(|(status, response)| {
            let key = match *status {
                StatusCode::Code(code) => StatusKey::Code(code),
                StatusCode::Range(class) => StatusKey::Range(class),
            };
            (key, response)
        })
        .chain(op.responses.default.iter().map(|r| (StatusKey::Default, r)));
    for (key, response) in keyed {
        let at = pointer::join(&responses_at, &key.spec_key());
        let ReferenceOr::Item(response) = response else {
            errors.push(
                SpecError::new(&spec.file, &at, "a $ref response is not supported")
                    .hint("write the response inline; its schema may be a $ref"),
            );
            continue;
        };
        match response_case(spec, &at, key, response, op_name, types) {
            Ok(case) => out.push(case),
            Err(e) => errors.push(e),
        }
    }
    // Exact codes first, then ranges, then `default`: the order a decoder must try them.
    out.sort_by_key(|c| match c.key {
        StatusKey::Code(_) => 0,
        StatusKey::Range(_) => 1,
        StatusKey::Default => 2,
    });
    let keys: Vec<StatusKey> = out.iter().map(|c| c.key).collect();
    for case in &mut out {
        case.status = representative(case.key, &keys);
    }
    if out.is_empty() && errors.0.is_empty() {
        errors.push(SpecError::new(
            &spec.file,
            &responses_at,
            "no response is documented",
        ));
    }
    out
}

/// A status `key` stands for that no more specific key documents.
fn representative(key: StatusKey, keys: &[StatusKey]) -> u16 {
    let specific = |status: u16| {
        keys.iter().any(|k| {
            *k != key
                && k.covers(status)
                && !matches!(
                    (k, key),
                    (StatusKey::Default, _) | (StatusKey::Range(_), StatusKey::Code(_))
                )
        })
    };
    let candidates: Vec<u16> = match key {
        StatusKey::Code(code) => return code,
        StatusKey::Range(class) => (class * 100..class * 100 + 100).collect(),
        StatusKey::Default => (500..600).chain(400..500).chain(300..400).collect(),
    };
    candidates
        .into_iter()
        .find(|s| !specific(*s))
        .unwrap_or(599)
}

fn response_case(
    spec: &Spec,
    at: &str,
    key: StatusKey,
    response: &Response,
    op_name: &str,
    types: &mut TypeBuilder<'_>,
) -> Result<ResponseCase, SpecError> {
    let variant = match key {
        StatusKey::Code(code) => status_variant(code),
        StatusKey::Range(1) => "Informational".to_owned(),
        StatusKey::Range(2) => "Success".to_owned(),
        StatusKey::Range(3) => "Redirection".to_owned(),
        StatusKey::Range(4) => "ClientError".to_owned(),
        StatusKey::Range(5) => "ServerError".to_owned(),
        StatusKey::Range(class) => format!("Class{class}xx"),
        StatusKey::Default => "Default".to_owned(),
    };
    let status = match key {
        StatusKey::Code(code) => code,
        StatusKey::Range(class) => class * 100,
        StatusKey::Default => 500,
    };
    let mut body = None;
    let mut examples = Vec::new();
    if !response.content.is_empty() {
        let (media, content) = json_media(&spec.file, at, &response.content, false)?;
        let media_at = pointer::join(&pointer::join(at, "content"), media);
        let schema = content.schema.as_ref().ok_or_else(|| {
            SpecError::new(&spec.file, &media_at, "the response body has no schema")
        })?;
        let resolved = types.resolve(
            schema.into(),
            &pointer::join(&media_at, "schema"),
            &format!("{op_name}{variant}"),
        )?;
        body = Some((media.clone(), resolved.ty));
        if let Some(example) = &content.example {
            examples.push(("example".to_owned(), example.clone()));
        }
        for (name, example) in &content.examples {
            match example {
                ReferenceOr::Item(e) => {
                    if let Some(value) = &e.value {
                        examples.push((name.clone(), value.clone()));
                    }
                }
                ReferenceOr::Reference { .. } => {
                    return Err(SpecError::new(
                        &spec.file,
                        &pointer::join(&pointer::join(&media_at, "examples"), name),
                        "a $ref example is not supported",
                    ));
                }
            }
        }
    }
    Ok(ResponseCase {
        key,
        status,
        variant,
        description: response.description.clone(),
        body,
        examples,
        pointer: at.to_owned(),
    })
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

/// Where the refresh token goes: the struct (inside a `oneOf` variant, if any) and the property.
struct RequestSlot {
    wrap: Option<(String, String)>,
    struct_name: String,
    refresh_json: String,
}

/// Shared state while the mapping is checked.
struct MapCtx<'a> {
    file: &'a str,
    at: String,
    responses: &'a [ResponseCase],
    /// Every status key the spec documents, modelled or not.
    documented: Vec<String>,
}

/// What a mapped value may be.
#[derive(Clone, Copy)]
enum Want {
    Text,
    Seconds,
    Anything,
}

impl MapCtx<'_> {
    fn error(&self, rel: &str, message: impl Into<String>) -> SpecError {
        SpecError::new(self.file, &format!("{}{rel}", self.at), message)
    }

    /// The refresh request's struct, its `oneOf` wrapper if any, and the refresh token's property.
    fn request_slot(
        &self,
        types: &mut TypeBuilder<'_>,
        body_ty: &Ty,
        spec: &TokenRefresh,
        errors: &mut SpecErrors,
    ) -> Option<RequestSlot> {
        let at = "/request/refresh-token";
        let ptr = &spec.request.refresh_token;
        let segments = match pointer::segments(ptr) {
            Some(s) if s.len() == 1 => s,
            Some(_) => {
                errors.push(self.error(
                    at,
                    format!("{ptr:?}: only a top-level body property can carry the refresh token"),
                ));
                return None;
            }
            None => {
                errors.push(
                    self.error(at, format!("{ptr:?} is not a JSON pointer"))
                        .hint("write it like `/refresh_token`"),
                );
                return None;
            }
        };
        let slot = match body_ty {
            Ty::Named(name) => match &types.defs()[name].def {
                Def::Struct { .. } => Some((None, name.clone())),
                Def::OneOf { variants } => {
                    let holders: Vec<&String> = variants
                        .iter()
                        .filter_map(|(v, t)| match t {
                            Ty::Named(n)
                                if struct_fields(types.defs(), n)
                                    .iter()
                                    .any(|f| f.json == segments[0]) =>
                            {
                                Some(v)
                            }
                            _ => None,
                        })
                        .collect();
                    match holders.as_slice() {
                        [one] => Some((Some((name.clone(), (*one).clone())), (*one).clone())),
                        _ => {
                            errors.push(self.error(at, format!("{ptr:?} must resolve in exactly one oneOf variant of the request body; it resolves in {}", holders.len())));
                            None
                        }
                    }
                }
                Def::Enum { .. } => None,
            },
            _ => None,
        };
        let Some((wrap, struct_name)) = slot else {
            if errors.0.is_empty() {
                errors.push(self.error(
                    at,
                    "the request body must be an object or a oneOf of objects",
                ));
            }
            return None;
        };
        let struct_ty = Ty::Named(struct_name.clone());
        match types.access(&struct_ty, &segments) {
            Ok(access)
                if access
                    .leaves()
                    .iter()
                    .all(|t| matches!(t, Ty::String | Ty::Secret)) =>
            {
                types.mark_secret(&struct_ty, &segments);
                Some(RequestSlot {
                    wrap,
                    struct_name,
                    refresh_json: segments[0].clone(),
                })
            }
            Ok(_) => {
                errors.push(self.error(at, format!("{ptr:?} must be a string property")));
                None
            }
            Err(reason) => {
                errors.push(self.error(
                    at,
                    format!("{ptr:?} does not resolve in the request body: {reason}"),
                ));
                None
            }
        }
    }

    /// The modelled response of `status`; `None` with an error when the spec does not
    /// document it, and `None` alone when it does but the response failed to model (that
    /// failure is already reported).
    fn response(&self, rel: &str, status: &str, errors: &mut SpecErrors) -> Option<&ResponseCase> {
        let found = self
            .responses
            .iter()
            .find(|r| r.key.spec_key().eq_ignore_ascii_case(status));
        if found.is_none() && !self.documented.iter().any(|d| d == status) {
            errors.push(self.error(
                rel,
                format!("status {status} is not a documented response of this operation"),
            ));
        }
        found
    }

    fn pointer(
        &self,
        types: &mut TypeBuilder<'_>,
        response: &ResponseCase,
        rel: &str,
        ptr: &str,
        want: Want,
        secret: bool,
    ) -> Result<Mapped, SpecError> {
        let Some((_, body_ty)) = &response.body else {
            return Err(self.error(
                rel,
                format!(
                    "status {} has no documented JSON body to point into",
                    response.status
                ),
            ));
        };
        let segments = pointer::segments(ptr).ok_or_else(|| {
            self.error(rel, format!("{ptr:?} is not a JSON pointer"))
                .hint("write it like `/access_token`")
        })?;
        if secret {
            types.mark_secret(body_ty, &segments);
        }
        let access = types.access(body_ty, &segments).map_err(|reason| {
            self.error(
                rel,
                format!(
                    "{ptr:?} does not resolve in the {} response: {reason}",
                    response.status
                ),
            )
        })?;
        for leaf in access.leaves() {
            let fits = match want {
                Want::Text => matches!(leaf, Ty::String | Ty::Secret),
                Want::Seconds => match leaf {
                    Ty::I32 | Ty::I64 | Ty::F64 | Ty::String | Ty::Any => true,
                    // A number-or-numeric-string `oneOf`.
                    Ty::Named(name) => matches!(
                        types.defs().get(name).map(|t| &t.def),
                        Some(Def::OneOf { variants }) if variants.iter().all(|(_, t)| matches!(t, Ty::I32 | Ty::I64 | Ty::F64 | Ty::String))
                    ),
                    _ => false,
                },
                Want::Anything => true,
            };
            if !fits {
                let wanted = match want {
                    Want::Text => "a string",
                    Want::Seconds => "a number or numeric string",
                    Want::Anything => "a value",
                };
                return Err(self.error(
                    rel,
                    format!(
                        "{ptr:?} points at {}, but must be {wanted}",
                        leaf.describe()
                    ),
                ));
            }
        }
        Ok(Mapped {
            pointer: ptr.to_owned(),
            access,
        })
    }

    fn optional(
        &self,
        types: &mut TypeBuilder<'_>,
        response: &ResponseCase,
        rel: &str,
        ptr: Option<&String>,
        want: Want,
        errors: &mut SpecErrors,
    ) -> Option<Mapped> {
        let ptr = ptr?;
        self.pointer(types, response, rel, ptr, want, false)
            .map_err(|e| errors.push(e))
            .ok()
    }

    fn mapping(
        &self,
        types: &mut TypeBuilder<'_>,
        spec: &TokenRefresh,
        errors: &mut SpecErrors,
    ) -> Option<Mapping> {
        let s = &spec.success;
        let success_response = self.response("/success/status", &s.status, errors)?;
        if !matches!(success_response.key, StatusKey::Code(200..=299)) {
            errors.push(self.error(
                "/success/status",
                format!(
                    "the success status must be one 2xx code, not {}",
                    success_response.key.spec_key()
                ),
            ));
            return None;
        }
        let access_token = self
            .pointer(
                types,
                success_response,
                "/success/access-token",
                &s.access_token,
                Want::Text,
                true,
            )
            .map_err(|e| errors.push(e))
            .ok();
        let refresh_token = s.refresh_token.as_ref().and_then(|p| {
            self.pointer(
                types,
                success_response,
                "/success/refresh-token",
                p,
                Want::Text,
                true,
            )
            .map_err(|e| errors.push(e))
            .ok()
        });
        let expires_in = self.optional(
            types,
            success_response,
            "/success/expires-in",
            s.expires_in.as_ref(),
            Want::Seconds,
            errors,
        );
        let token_type = self.optional(
            types,
            success_response,
            "/success/token-type",
            s.token_type.as_ref(),
            Want::Text,
            errors,
        );
        let created_at = self.optional(
            types,
            success_response,
            "/success/created-at",
            s.created_at.as_ref(),
            Want::Seconds,
            errors,
        );

        let mut failures = Vec::new();
        for (i, f) in spec.failures.iter().enumerate() {
            let rel = format!("/failures/{i}");
            let Some(response) = self.response(&format!("{rel}/status"), &f.status, errors) else {
                continue;
            };
            let when = match &f.when {
                Some(w) => match self.pointer(
                    types,
                    response,
                    &format!("{rel}/when/pointer"),
                    &w.pointer,
                    Want::Anything,
                    false,
                ) {
                    Ok(m) => Some((m, w.equals.clone())),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                },
                None => None,
            };
            if response.key == success_response.key && when.is_none() {
                errors.push(
                    self.error(
                        &rel,
                        format!(
                            "status {} is the success status; a failure there needs `when`",
                            response.status
                        ),
                    )
                    .hint("add `when: {pointer: /success, equals: false}` or similar"),
                );
            }
            let code = self.optional(
                types,
                response,
                &format!("{rel}/code"),
                f.code.as_ref(),
                Want::Anything,
                errors,
            );
            let message = self.optional(
                types,
                response,
                &format!("{rel}/message"),
                f.message.as_ref(),
                Want::Anything,
                errors,
            );
            if !f.kinds.is_empty() && code.is_none() {
                errors.push(self.error(
                    &format!("{rel}/kinds"),
                    "`kinds` needs `code`, the pointer to the error code",
                ));
            }
            failures.push(Failure {
                key: response.key,
                status: response.status,
                when,
                kind: f.kind,
                kinds: f.kinds.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                code,
                message,
            });
        }
        for response in self.responses {
            let covered = response.key == success_response.key
                || failures
                    .iter()
                    .any(|f| f.key == response.key && f.when.is_none());
            if !covered {
                errors.push(
                    SpecError::new(
                        self.file,
                        &response.pointer,
                        format!(
                            "documented status {} has no meaning in the token mapping",
                            response.key.spec_key()
                        ),
                    )
                    .hint(format!(
                        "add a `failures` entry with `status: \"{}\"` and a `kind`",
                        response.key.spec_key()
                    )),
                );
            }
        }
        Some(Mapping {
            rotation: spec.rotation,
            request_refresh_token: spec.request.refresh_token.clone(),
            success: Success {
                status: success_response.status,
                access_token: access_token?,
                refresh_token,
                expires_in,
                token_type,
                created_at,
            },
            failures,
        })
    }
}

/// How each field of the refresh request struct is filled; adds the per-client values to
/// `config`.
fn body_fill(
    types: &IndexMap<String, TypeDef>,
    struct_name: &str,
    refresh_json: &str,
    example: Option<&Value>,
    config: &mut Vec<ConfigField>,
) -> Vec<BodyFill> {
    struct_fields(types, struct_name)
        .iter()
        .map(|field| {
            let source = if field.json == refresh_json {
                FillSource::RefreshToken
            } else if let Some((enum_name, value)) = single_value(types, &field.ty) {
                FillSource::Constant { enum_name, value }
            } else {
                let example = example
                    .and_then(|e| e.get(&field.json))
                    .cloned()
                    .unwrap_or_else(|| made_up_example(&field.ty, &field.json));
                config.push(ConfigField {
                    name: snake(&field.json),
                    ty: field.ty.clone(),
                    required: !field.optional,
                    doc: field.doc.clone(),
                    example,
                });
                FillSource::Config(config.len() - 1)
            };
            BodyFill {
                json: field.json.clone(),
                source,
            }
        })
        .collect()
}

/// The enum and its only value, for a single-value string enum.
fn single_value(types: &IndexMap<String, TypeDef>, ty: &Ty) -> Option<(String, String)> {
    let Ty::Named(name) = ty else { return None };
    match &types.get(name)?.def {
        Def::Enum { values } if values.len() == 1 => Some((name.clone(), values[0].clone())),
        _ => None,
    }
}

fn check_config_names(
    file: &str,
    op_pointer: &str,
    config: &[ConfigField],
    errors: &mut SpecErrors,
) {
    let reserved = ["base_url", "http_config", "http_client", "build", "builder"];
    for (i, field) in config.iter().enumerate() {
        if config[..i].iter().any(|f| f.name == field.name)
            || reserved.contains(&field.name.as_str())
        {
            errors.push(
                SpecError::new(file, op_pointer, format!("two per-client values, or a value and a builder method, would both be named `{}`", field.name))
                    .hint("rename the parameter or the body property"),
            );
        }
    }
}

/// Every `{name}` of the path has a path parameter, and every path parameter a `{name}`.
fn check_path(
    spec: &Spec,
    op_pointer: &str,
    path: &str,
    params: &[Param],
    errors: &mut SpecErrors,
) {
    let placeholders: Vec<&str> = path
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect();
    let path_params: Vec<&Param> = params
        .iter()
        .filter(|p| p.location == Location::Path)
        .collect();
    for name in &placeholders {
        if !path_params.iter().any(|p| p.name == *name) {
            errors.push(
                SpecError::new(
                    &spec.file,
                    op_pointer,
                    format!("the path has {{{name}}} but no path parameter {name:?}"),
                )
                .hint("declare it under `parameters` with `in: path`"),
            );
        }
    }
    for param in path_params {
        if !placeholders.contains(&param.name.as_str()) {
            errors.push(SpecError::new(
                &spec.file,
                &param.schema_pointer,
                format!(
                    "path parameter {:?} does not appear in the path {path:?}",
                    param.name
                ),
            ));
        }
    }
}

/// The client authentication of the operation's first security requirement (or the spec's).
fn auth(
    spec: &Spec,
    op_pointer: &str,
    op: &OaOperation,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> Option<Auth> {
    let requirements = op.security.as_ref().or(spec.api.security.as_ref())?;
    let requirement = requirements.first()?;
    let (name, _) = requirement.iter().next()?;
    if requirement.len() > 1 {
        errors.push(SpecError::new(
            &spec.file,
            &pointer::join(op_pointer, "security"),
            "a security requirement that combines several schemes is not supported",
        ));
        return None;
    }
    let at = pointer::join("/components/securitySchemes", name);
    let scheme = spec
        .api
        .components
        .as_ref()
        .and_then(|c| c.security_schemes.get(name));
    let scheme = match scheme {
        Some(ReferenceOr::Item(scheme)) => scheme,
        Some(ReferenceOr::Reference { .. }) => {
            errors.push(SpecError::new(
                &spec.file,
                &at,
                "a $ref security scheme is not supported",
            ));
            return None;
        }
        None => {
            errors.push(SpecError::new(
                &spec.file,
                &pointer::join(op_pointer, "security"),
                format!("security scheme {name:?} is not defined under components/securitySchemes"),
            ));
            return None;
        }
    };
    let mut field = |name: &str, ty: Ty, doc: &str| {
        config.push(ConfigField {
            name: name.to_owned(),
            example: made_up_example(&ty, name),
            ty,
            required: true,
            doc: Some(doc.to_owned()),
        });
        config.len() - 1
    };
    match scheme {
        openapiv3::SecurityScheme::HTTP { scheme, .. } if scheme.eq_ignore_ascii_case("basic") => {
            let id = field(
                "client_id",
                Ty::String,
                "The OAuth client id, sent with HTTP Basic (RFC 6749 §2.3.1).",
            );
            let secret = field(
                "client_secret",
                Ty::Secret,
                "The OAuth client secret, sent with HTTP Basic.",
            );
            Some(Auth::Basic { id, secret })
        }
        openapiv3::SecurityScheme::APIKey { location, name, .. } => {
            let location = match location {
                openapiv3::APIKeyLocation::Header => Location::Header,
                openapiv3::APIKeyLocation::Query => Location::Query,
                openapiv3::APIKeyLocation::Cookie => {
                    errors.push(SpecError::new(
                        &spec.file,
                        &at,
                        "API keys in cookies are not supported",
                    ));
                    return None;
                }
            };
            let is_token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !is_token {
                errors.push(SpecError::new(
                    &spec.file,
                    &pointer::join(&at, "name"),
                    format!("{name:?} is not a valid HTTP header or parameter name"),
                ));
                return None;
            }
            let key = field("api_key", Ty::Secret, "The API key.");
            Some(Auth::ApiKey {
                location,
                name: name.clone(),
                key,
            })
        }
        _ => {
            errors.push(
                SpecError::new(&spec.file, &at, "only HTTP Basic and API key security schemes are supported")
                    .hint("a token endpoint authenticates the client with Basic, an API key, or body fields"),
            );
            None
        }
    }
}

/// A form body is a flat list of fields: each must be a string, number, boolean or enum.
fn check_form_fields(
    file: &str,
    schema_pointer: &str,
    types: &IndexMap<String, TypeDef>,
    struct_name: &str,
    errors: &mut SpecErrors,
) {
    for field in struct_fields(types, struct_name) {
        let flat = match &field.ty {
            Ty::String | Ty::Secret | Ty::Bool | Ty::I32 | Ty::I64 | Ty::F64 => true,
            Ty::Named(name) => matches!(types.get(name).map(|t| &t.def), Some(Def::Enum { .. })),
            _ => false,
        };
        if !flat {
            errors.push(SpecError::new(
                file,
                schema_pointer,
                format!(
                    "form field {:?} is {}; form bodies take strings, numbers, booleans and enums",
                    field.json,
                    field.ty.describe()
                ),
            ));
        }
    }
}

/// `<Op>Response`, unless a schema took it.
fn outcome_name(op_name: &str, types: &IndexMap<String, TypeDef>) -> String {
    [format!("{op_name}Response"), format!("{op_name}Outcome")]
        .into_iter()
        .chain((2..).map(|n| format!("{op_name}Outcome{n}")))
        .find(|name| !types.contains_key(name))
        .unwrap_or_default()
}
