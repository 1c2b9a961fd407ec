//! The request side of the model: servers, the operation, parameters, client authentication,
//! the body and how the refresh request fills it.

use super::*;

/// The extension on a server variable that says its `default` is a real value a client may use
/// as it is (OpenAPI requires a default even where only a placeholder can be written).
pub const USABLE_DEFAULT: &str = "x-usable-default";

/// The extension on a server that names the hosts its URL may have once its variables are
/// filled: one pattern or a list (`*.okta.com`: any subdomain; `login.example.com`: that host).
pub const HOST_PATTERN: &str = "x-host-pattern";

/// The host part of a URL template (`{tenant}.example.com` of `https://{tenant}.example.com:8443/v1`).
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains('}') || host.ends_with('}') => host,
        _ => authority,
    }
}

/// Whether `suffix` (what follows the last placeholder of a host, or a pattern's fixed part)
/// names a domain: a dot, then at least two non-empty labels (`.okta.com`), so that no value
/// before it can pick the registrable domain.
fn names_a_domain(suffix: &str) -> bool {
    suffix.strip_prefix('.').is_some_and(|rest| {
        let labels: Vec<&str> = rest.split('.').collect();
        labels.len() >= 2
            && labels
                .iter()
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    })
}

/// The first server's `x-host-pattern`s, checked; and, where it declares none, a refusal of a
/// host its variables make up: a value filling `https://{domain}/` (or `{sub}.{domain}`, or
/// `{tenant}.com`) could send the refresh token and the client secret to any host. A host is
/// safe when every variable in it is an `enum`, or when a fixed domain of two labels or more
/// follows the last one (`{tenant}.okta.com`).
pub(super) fn host_patterns(
    spec: &Spec,
    variables: &[ServerVariable],
    errors: &mut SpecErrors,
) -> Vec<String> {
    let file = spec.file.as_str();
    let Some(server) = spec.api.servers.first() else {
        return Vec::new();
    };
    let at = pointer::join(&pointer::join(&spec.servers_at, "0"), HOST_PATTERN);
    let declared: Vec<String> = match server.extensions.get(HOST_PATTERN) {
        None => Vec::new(),
        Some(Value::String(p)) => vec![p.clone()],
        Some(Value::Array(list)) if !list.is_empty() && list.iter().all(Value::is_string) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            errors.push(SpecError::new(
                file,
                &at,
                format!("`{HOST_PATTERN}` is a host pattern or a list of them"),
            ));
            return Vec::new();
        }
    };
    for (i, pattern) in declared.iter().enumerate() {
        let fixed = pattern
            .strip_prefix('*')
            .map_or_else(|| format!(".{pattern}"), str::to_owned);
        if !names_a_domain(&fixed.to_ascii_lowercase()) {
            errors.push(
                SpecError::new(
                    file,
                    &pointer::join(&at, &i.to_string()),
                    format!("{pattern:?} is not a host pattern"),
                )
                .hint("write a host (`login.example.com`) or `*.` and a domain of two labels or more (`*.okta.com`)"),
            );
        }
    }
    let host = host_of(&server.url);
    let in_host = placeholders(host);
    let Some(last) = host.rfind('}').filter(|_| declared.is_empty()) else {
        return declared;
    };
    // A variable that made it into the model with an `enum` takes only the spec's values.
    let all_enum = in_host.iter().all(|name| {
        variables.iter().any(|v| v.name == *name)
            && server
                .variables
                .as_ref()
                .and_then(|vars| vars.get(*name))
                .is_some_and(|var| !var.enumeration.is_empty())
    });
    if !all_enum && !names_a_domain(&host[last + 1..].to_ascii_lowercase()) {
        errors.push(
            SpecError::new(
                file,
                &format!("{}/0/url", spec.servers_at),
                format!(
                    "the variables {} make up the host of {:?}: a value could send the refresh token and the client secret to any host",
                    in_host.iter().map(|n| format!("{{{n}}}")).collect::<Vec<_>>().join(", "),
                    server.url
                ),
            )
            .hint(format!(
                "give the variable an `enum` of the hosts it may be, or declare them on the server: `{HOST_PATTERN}: '*.okta.com'`"
            )),
        );
    }
    declared
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

/// The first server's variables: each becomes a per-client value (a builder argument unless the
/// spec marks its default as usable: an `enum` whose default is one of its values, or
/// `x-usable-default: true`).
pub(super) fn server_variables(
    spec: &Spec,
    types: &mut TypeBuilder<'_>,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> Vec<ServerVariable> {
    let file = spec.file.as_str();
    let Some(server) = spec.api.servers.first() else {
        return Vec::new();
    };
    let variables = server.variables.clone().unwrap_or_default();
    let mut out = Vec::new();
    for name in placeholders(&server.url) {
        if !variables.contains_key(name) {
            errors.push(
                SpecError::new(
                    file,
                    &format!("{}/0/url", spec.servers_at),
                    format!("the URL's placeholder {{{name}}} has no variable"),
                )
                .hint(format!(
                    "declare it under `variables: {{{name}: {{default: …, description: …}}}}`"
                )),
            );
        }
    }
    for (name, variable) in &variables {
        let at = pointer::join(&format!("{}/0/variables", spec.servers_at), name);
        if !placeholders(&server.url).contains(&name.as_str()) {
            errors.push(SpecError::new(
                file,
                &at,
                format!("the variable {name:?} is not in the URL"),
            ));
            continue;
        }
        let usable_flag = match variable.extensions.get(USABLE_DEFAULT) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                errors.push(SpecError::new(
                    file,
                    &pointer::join(&at, USABLE_DEFAULT),
                    format!("`{USABLE_DEFAULT}` is true or false"),
                ));
                false
            }
        };
        let mut bad = false;
        for (i, value) in std::iter::once(&variable.default)
            .chain(&variable.enumeration)
            .enumerate()
        {
            if !safe_variable_value(value) {
                bad = true;
                let here = if i == 0 {
                    pointer::join(&at, "default")
                } else {
                    pointer::join(&pointer::join(&at, "enum"), &(i - 1).to_string())
                };
                errors.push(
                    SpecError::new(file, &here, format!("{value:?} cannot fill a URL: a value is letters, digits, `-`, `.`, `_` and `~`"))
                        .hint("a variable fills one host label or path segment; it cannot carry `/`, `@`, `:`, `?` or `#`"),
                );
            }
        }
        let is_enum = !variable.enumeration.is_empty();
        if is_enum && !variable.enumeration.contains(&variable.default) {
            bad = true;
            errors.push(SpecError::new(
                file,
                &pointer::join(&at, "default"),
                format!(
                    "the default {:?} is not one of the variable's `enum` values",
                    variable.default
                ),
            ));
        }
        if bad {
            continue;
        }
        let ty = if is_enum {
            let schema = openapiv3::Schema {
                schema_data: openapiv3::SchemaData {
                    description: variable.description.clone(),
                    ..Default::default()
                },
                schema_kind: SchemaKind::Type(Type::String(openapiv3::StringType {
                    enumeration: variable.enumeration.iter().cloned().map(Some).collect(),
                    ..Default::default()
                })),
            };
            match types.resolve(
                crate::types::SchemaRef::Inline(&schema),
                &at,
                &crate::names::pascal(name),
            ) {
                Ok(r) => r.ty,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            }
        } else {
            Ty::String
        };
        let default = (is_enum || usable_flag).then(|| variable.default.clone());
        let field = push_config(
            config,
            ConfigField {
                name: snake(name),
                example: Value::String(variable.default.clone()),
                kept: false,
                copy: false,
                ty,
                required: default.is_none(),
                doc: variable.description.clone(),
            },
        );
        out.push(ServerVariable {
            name: name.clone(),
            field,
            default,
        });
    }
    out
}

pub(super) fn servers(spec: &Spec, errors: &mut SpecErrors) -> Vec<Server> {
    if spec.api.servers.is_empty() {
        errors.push(
            SpecError::new(&spec.file, &spec.servers_at, "the spec lists no server")
                .hint("add `servers: [{url: https://api.example.com}]`; the first is the client's default base URL"),
        );
    }
    spec.api
        .servers
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let at = pointer::join(&spec.servers_at, &i.to_string());
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

/// `spec` with the token operations' own servers in place of the document's: an
/// operation's `servers`, else its path's, else the document's (OpenAPI 3.0 §4.7.10: the
/// nearest declaration wins), with `servers_at` naming where they were declared. One client
/// has one base URL, so token operations on different servers are an error.
pub(super) fn token_servers(spec: &Spec) -> Result<Spec, SpecError> {
    // The first token operation's servers: where they were declared, the operation, the list.
    let mut chosen: Option<(String, String, Vec<openapiv3::Server>)> = None;
    let urls = |list: &[openapiv3::Server]| -> Vec<String> {
        list.iter()
            .map(|s| s.url.trim_end_matches('/').to_owned())
            .collect()
    };
    for (path, item) in &spec.api.paths.paths {
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        let path_at = pointer::join("/paths", path);
        for (method, op) in item.iter() {
            let token_op = op.extensions.contains_key(extension::KEY)
                || op.extensions.contains_key(extension::GRANT_KEY);
            if !token_op {
                continue;
            }
            let op_at = pointer::join(&path_at, method);
            let (at, servers) = if !op.servers.is_empty() {
                (pointer::join(&op_at, "servers"), &op.servers)
            } else if !item.servers.is_empty() {
                (pointer::join(&path_at, "servers"), &item.servers)
            } else {
                ("/servers".to_owned(), &spec.api.servers)
            };
            match &chosen {
                None => chosen = Some((at, op_at, servers.clone())),
                Some((first_at, first_op, first)) if urls(first) != urls(servers) => {
                    return Err(SpecError::new(
                        &spec.file,
                        &op_at,
                        format!(
                            "this token operation is sent to {} (the servers at {at}), the one at {first_op} to {} (at {first_at}): one client has one base URL",
                            urls(servers).join(", "),
                            urls(first).join(", ")
                        ),
                    )
                    .hint("give the token operations the same `servers`, or put them in specs of their own"));
                }
                Some(_) => {}
            }
        }
    }
    let mut resolved = spec.clone();
    if let Some((at, _, servers)) = chosen {
        resolved.api.servers = servers;
        resolved.servers_at = at;
    }
    Ok(resolved)
}

/// The one operation that carries the refresh mapping, if any: a spec whose token operations are
/// all grants (`x-token-grant`) has none.
pub(super) fn refresh_operation(
    spec: &Spec,
) -> Result<Option<(String, String, String, &OaOperation)>, SpecError> {
    let mut found = Vec::new();
    let mut grants = 0;
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
            grants += usize::from(op.extensions.contains_key(extension::GRANT_KEY));
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
        1 => Ok(Some(found.remove(0))),
        0 if grants > 0 => Ok(None),
        0 => Err(SpecError::new(
            &spec.file,
            "/paths",
            format!(
                "no operation carries a token mapping (`{}` or `{}`)",
                extension::KEY,
                extension::GRANT_KEY
            ),
        )
        .hint("add `x-token-refresh` to the refresh operation, or `x-token-grant` to each operation that issues tokens by a grant; see README.md")),
        _ => Err(SpecError::new(
            &spec.file,
            &found[1].0,
            format!("more than one operation carries `{}`", extension::KEY),
        )
        .hint("a spec describes one refresh operation")),
    }
}

/// A mapping's `set` values, of which those whose key is a name rather than a body pointer
/// (`grant_type`, not `/grant_type`) fix a query, header or path parameter of the operation.
pub(super) struct Fixed<'a> {
    /// Where the mapping's `request` is, for errors.
    pub(super) at: Option<String>,
    /// The `set` values, as written.
    pub(super) values: Option<&'a IndexMap<String, Value>>,
    /// The `generate` entries, as written.
    pub(super) generate: Option<&'a IndexMap<String, crate::extension::GenerateKind>>,
}

impl Fixed<'_> {
    /// What `generate` makes fresh for the parameter `name` at `location`.
    fn generated(
        &self,
        location: Location,
        name: &str,
    ) -> Option<(&str, crate::extension::GenerateKind)> {
        self.generate?.iter().find_map(|(key, kind)| {
            let same = match location {
                Location::Header => key.eq_ignore_ascii_case(name),
                _ => key == name,
            };
            same.then_some((key.as_str(), *kind))
        })
    }

    /// The value `set` gives the parameter `name` at `location` (header names ignore case).
    fn value(&self, location: Location, name: &str) -> Option<(&str, &Value)> {
        self.values?.iter().find_map(|(key, value)| {
            let same = match location {
                Location::Header => key.eq_ignore_ascii_case(name),
                _ => key == name,
            };
            same.then_some((key.as_str(), value))
        })
    }

    /// Every key naming a parameter that is not one of those `declared`.
    fn check_unmatched(
        &self,
        file: &str,
        declared: &[(Location, String)],
        errors: &mut SpecErrors,
    ) {
        let Some(at) = &self.at else {
            return;
        };
        let keys = (self
            .values
            .into_iter()
            .flat_map(|v| v.keys())
            .map(|k| ("set", k)))
        .chain(
            self.generate
                .into_iter()
                .flat_map(|g| g.keys())
                .map(|k| ("generate", k)),
        );
        for (map, key) in keys.filter(|(_, k)| !k.starts_with('/')) {
            let found = declared.iter().any(|(location, name)| match location {
                Location::Header => name.eq_ignore_ascii_case(key),
                _ => name == key,
            });
            if !found {
                errors.push(
                    SpecError::new(
                        file,
                        &pointer::join(&pointer::join(at, map), key),
                        format!(
                            "the operation declares no query, header or path parameter {key:?}"
                        ),
                    )
                    .hint(format!("a body property is written as a pointer: `/{key}`")),
                );
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn params(
    spec: &Spec,
    op_pointer: &str,
    op: &OaOperation,
    place: Option<&RefreshPlace>,
    fixed: &Fixed<'_>,
    types: &mut TypeBuilder<'_>,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> Vec<Param> {
    let mut out = Vec::new();
    let mut declared = Vec::new();
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
        declared.push((location, data.name.clone()));
        if location == Location::Header && !is_http_token(&data.name) {
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
        if let Some((key, kind)) = fixed.generated(location, &data.name) {
            let here = pointer::join(
                &pointer::join(fixed.at.as_deref().unwrap_or(op_pointer), "generate"),
                key,
            );
            let schema_at = pointer::join(&at, "schema");
            let ty = types
                .resolve(schema.into(), &schema_at, &data.name)
                .map(|r| r.ty);
            match ty {
                Ok(ty) if location != Location::Path && kind.fits(&ty).is_some() => {
                    out.push(Param {
                        location,
                        name: data.name.clone(),
                        required: data.required,
                        schema_pointer: schema_at,
                        value: ParamValue::Generated(kind),
                    })
                }
                Ok(ty) => errors.push(
                    SpecError::new(
                        &spec.file,
                        &here,
                        format!(
                            "parameter {:?} ({}, in the {}) cannot carry a fresh {}",
                            data.name,
                            ty.describe(),
                            if location == Location::Path {
                                "path"
                            } else {
                                "request"
                            },
                            kind.key()
                        ),
                    )
                    .hint(super::grants::GENERATE_HINT),
                ),
                Err(e) => errors.push(e),
            }
            continue;
        }
        if let Some((key, value)) = fixed.value(location, &data.name) {
            let here = pointer::join(
                &pointer::join(fixed.at.as_deref().unwrap_or(op_pointer), "set"),
                key,
            );
            let text = match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            let schema_json = spec
                .json
                .pointer(&pointer::join(&at, "schema"))
                .cloned()
                .unwrap_or(Value::Null);
            let fits = text.is_some()
                && crate::validate::validate(&spec.json, &schema_json, value).is_empty();
            match text.filter(|_| fits) {
                Some(text) => out.push(Param {
                    location,
                    name: data.name.clone(),
                    required: data.required,
                    schema_pointer: pointer::join(&at, "schema"),
                    value: ParamValue::Constant(text),
                }),
                None => errors.push(SpecError::new(
                    &spec.file,
                    &here,
                    format!(
                        "{value} is not a value parameter {:?} can take; `set` fixes a parameter to a string, number or boolean its schema allows",
                        data.name
                    ),
                )),
            }
            continue;
        }
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
        let carries_token = match place {
            Some(RefreshPlace::Query { name }) => location == Location::Query && *name == data.name,
            Some(RefreshPlace::Header { name, .. }) => {
                location == Location::Header && name.eq_ignore_ascii_case(&data.name)
            }
            _ => false,
        };
        if carries_token {
            if !matches!(resolved.ty, Ty::String | Ty::Secret) {
                errors.push(SpecError::new(
                    &spec.file,
                    &schema_at,
                    format!(
                        "parameter {:?} carries the refresh token, so it must be a string, not {}",
                        data.name,
                        resolved.ty.describe()
                    ),
                ));
            }
            out.push(Param {
                location,
                name: data.name.clone(),
                required: data.required,
                schema_pointer: schema_at,
                value: ParamValue::RefreshToken,
            });
            continue;
        }
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
        // A client secret or key in the query string is a secret like one in the body.
        let ty = match resolved.ty {
            Ty::String if crate::types::is_secret_name(&data.name) => Ty::Secret,
            ty => ty,
        };
        let index = push_config(
            config,
            ConfigField {
                name: snake(trimmed),
                example: example.unwrap_or_else(|| made_up_example(&ty, trimmed)),
                kept: false,
                copy: false,
                ty,
                required: data.required,
                doc: data.description.clone(),
            },
        );
        out.push(Param {
            location,
            name: data.name.clone(),
            required: data.required,
            schema_pointer: schema_at,
            value: ParamValue::Config(index),
        });
    }
    fixed.check_unmatched(&spec.file, &declared, errors);
    out
}

pub(super) fn schema_example(schema: &ReferenceOr<openapiv3::Schema>) -> Option<Value> {
    match schema {
        ReferenceOr::Item(s) => s
            .schema_data
            .example
            .clone()
            .or_else(|| s.schema_data.default.clone()),
        ReferenceOr::Reference { .. } => None,
    }
}

pub(super) fn made_up_example(ty: &Ty, name: &str) -> Value {
    match ty {
        Ty::I32 | Ty::I64 => Value::from(1),
        Ty::F64 => Value::from(1.5),
        Ty::Bool => Value::Bool(true),
        _ => Value::String(format!("example-{}", snake(name).replace('_', "-"))),
    }
}

pub(super) fn is_json(media: &str) -> bool {
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

pub(super) fn json_media<'a>(
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

/// A request body as read from the spec, before the mapping says how it is filled.
pub(super) struct BodyParts {
    /// The body's type.
    pub(super) ty: Ty,
    /// Its media type.
    pub(super) media_type: String,
    /// The spec's example of it.
    pub(super) example: Option<Value>,
    /// Where its schema is in the spec.
    pub(super) schema_pointer: String,
}

impl BodyParts {
    /// The body, once the requests it carries are known: `slot` is the `oneOf` wrapper, the
    /// struct and the fill of the operation's own request; a form body's fields are checked
    /// in every struct of `structs` (its own and the grants' that share the operation).
    pub(super) fn into_body(
        self,
        file: &str,
        types: &TypeBuilder<'_>,
        structs: &[&str],
        (wrap, struct_name, fill): (Option<(String, String)>, String, Vec<BodyFill>),
        errors: &mut SpecErrors,
    ) -> Body {
        if is_form(&self.media_type) {
            for name in structs {
                check_form_fields(file, &self.schema_pointer, types.defs(), name, errors);
            }
        }
        Body {
            media_type: self.media_type,
            ty: self.ty,
            example: self.example,
            schema_pointer: self.schema_pointer,
            wrap,
            struct_name,
            fill,
        }
    }
}

/// The request body's type, media type, example and schema pointer: `Some(None)` for an
/// operation without a body (allowed when the refresh token travels elsewhere), `None` after
/// an error.
pub(super) fn request_body(
    spec: &Spec,
    op_pointer: &str,
    op: &OaOperation,
    op_name: &str,
    token_in_body: bool,
    types: &mut TypeBuilder<'_>,
    errors: &mut SpecErrors,
) -> Option<Option<BodyParts>> {
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
        None if !token_in_body => return Some(None),
        None => {
            errors.push(
                SpecError::new(
                    &spec.file,
                    op_pointer,
                    "the refresh operation has no request body, but the mapping puts the refresh token in one",
                )
                .hint("add the body, or map the token to a parameter: `refresh-token: {in: query, name: refresh_token}`"),
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
        Ok(Resolved { ty, .. }) => Some(Some(BodyParts {
            ty,
            media_type: media.clone(),
            example,
            schema_pointer: schema_at,
        })),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

/// Every `{name}` of the path has a path parameter, and every path parameter a `{name}`.
pub(super) fn check_path(
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
pub(super) fn auth(
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
        push_config(
            config,
            ConfigField {
                name: name.to_owned(),
                example: made_up_example(&ty, name),
                kept: false,
                copy: false,
                ty,
                required: true,
                doc: Some(doc.to_owned()),
            },
        )
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
            if !is_http_token(name) {
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
        openapiv3::SecurityScheme::OAuth2 { .. } => {
            errors.push(
                SpecError::new(
                    &spec.file,
                    &pointer::join(op_pointer, "security"),
                    format!("the token operation requires the oauth2 scheme {name:?}: it cannot need the tokens it issues"),
                )
                .hint("keep the scheme under components/securitySchemes for its flows (the grants), and require Basic, an API key or nothing here"),
            );
            None
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
pub(super) fn check_form_fields(
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

/// How each field of a request struct is filled: `own` are the values this request sets
/// itself, `foreign` the fields other requests set (left out here); every other field is a
/// constant (a single-value enum) or a per-client value, added to `config` once by name.
pub(super) fn body_fill(
    types: &IndexMap<String, TypeDef>,
    struct_name: &str,
    own: &[(String, FillSource)],
    foreign: &[&str],
    example: Option<&Value>,
    config: &mut Vec<ConfigField>,
) -> Vec<BodyFill> {
    struct_fields(types, struct_name)
        .iter()
        .map(|field| {
            let source = if let Some((_, source)) = own.iter().find(|(j, _)| *j == field.json) {
                source.clone()
            } else if foreign.contains(&field.json.as_str()) {
                FillSource::Omit
            } else if let Some((enum_name, value)) = single_value(types, &field.ty) {
                FillSource::Constant { enum_name, value }
            } else {
                let name = snake(&field.json);
                let known = config.iter().position(|c| {
                    c.name == name && c.ty == field.ty && c.required != field.optional
                });
                FillSource::Config(known.unwrap_or_else(|| {
                    let example = example
                        .and_then(|e| e.get(&field.json))
                        .cloned()
                        .unwrap_or_else(|| made_up_example(&field.ty, &field.json));
                    config.push(ConfigField {
                        name,
                        ty: field.ty.clone(),
                        required: !field.optional,
                        doc: field.doc.clone(),
                        example,
                        kept: false,
                        copy: false,
                    });
                    config.len() - 1
                }))
            };
            BodyFill {
                json: field.json.clone(),
                source,
                optional: field.optional,
            }
        })
        .collect()
}

/// Adds a per-client value, or finds the one of the same name, type and need that another
/// request (or operation) already takes: one builder value, however many places send it.
pub(super) fn push_config(config: &mut Vec<ConfigField>, field: ConfigField) -> usize {
    let same =
        |c: &ConfigField| c.name == field.name && c.ty == field.ty && c.required == field.required;
    config.iter().position(same).unwrap_or_else(|| {
        config.push(field);
        config.len() - 1
    })
}

/// The struct a body of type `ty` is (`""` for none, or a body that is not one struct).
pub(super) fn body_struct(types: &IndexMap<String, TypeDef>, ty: Option<&Ty>) -> String {
    match ty {
        Some(Ty::Named(name))
            if matches!(types.get(name).map(|t| &t.def), Some(Def::Struct { .. })) =>
        {
            name.clone()
        }
        _ => String::new(),
    }
}

/// The enum and its only value, for a single-value string enum.
pub(super) fn single_value(types: &IndexMap<String, TypeDef>, ty: &Ty) -> Option<(String, String)> {
    let Ty::Named(name) = ty else { return None };
    match &types.get(name)?.def {
        Def::Enum { values } if values.len() == 1 => Some((name.clone(), values[0].clone())),
        _ => None,
    }
}

pub(super) fn check_config_names(
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

/// An RFC 9110 token: what a header name (and so a name the printer passes to
/// `HeaderName::from_static`) may be.
fn is_http_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
