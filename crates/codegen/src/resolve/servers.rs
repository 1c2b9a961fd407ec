//! The servers: their URLs, the first one's variables (each a per-client value) and the hosts
//! it may name once they are filled.

use crate::error::{SpecError, SpecErrors};
use crate::extension::{HOST_PATTERN, USABLE_DEFAULT};
use crate::model::{
    ConfigField, Server, ServerVariable, placeholders, push_config, safe_variable_value,
};
use crate::names::snake;
use crate::pointer;
use crate::read::Spec;
use crate::types::{Ty, TypeBuilder};
use openapiv3::{SchemaKind, Type};
use serde_json::Value;

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
        let usable_flag = usable_default(file, &at, variable, errors);
        if !values_are_safe(file, &at, variable, errors) {
            continue;
        }
        let is_enum = !variable.enumeration.is_empty();
        let ty = match variable_type(name, &at, variable, types) {
            Ok(ty) => ty,
            Err(e) => {
                errors.push(e);
                continue;
            }
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
            choices: variable.enumeration.clone(),
        });
    }
    out
}

/// `x-usable-default` on a variable: whether its default is a real value.
fn usable_default(
    file: &str,
    at: &str,
    variable: &openapiv3::ServerVariable,
    errors: &mut SpecErrors,
) -> bool {
    match variable.extensions.get(USABLE_DEFAULT) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(SpecError::new(
                file,
                &pointer::join(at, USABLE_DEFAULT),
                format!("`{USABLE_DEFAULT}` is true or false"),
            ));
            false
        }
    }
}

/// Whether every value a variable may take (its default and its `enum`) can fill a URL.
fn values_are_safe(
    file: &str,
    at: &str,
    variable: &openapiv3::ServerVariable,
    errors: &mut SpecErrors,
) -> bool {
    let mut bad = false;
    for (i, value) in std::iter::once(&variable.default)
        .chain(&variable.enumeration)
        .enumerate()
    {
        if !safe_variable_value(value) {
            bad = true;
            let here = if i == 0 {
                pointer::join(at, "default")
            } else {
                pointer::join(&pointer::join(at, "enum"), &(i - 1).to_string())
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
            &pointer::join(at, "default"),
            format!(
                "the default {:?} is not one of the variable's `enum` values",
                variable.default
            ),
        ));
    }
    !bad
}

/// A variable's type: an enum of its values, or a string.
fn variable_type(
    name: &str,
    at: &str,
    variable: &openapiv3::ServerVariable,
    types: &mut TypeBuilder<'_>,
) -> Result<Ty, SpecError> {
    if variable.enumeration.is_empty() {
        return Ok(Ty::String);
    }
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
    let name = crate::names::pascal(name);
    types
        .resolve(crate::types::SchemaRef::Inline(&schema), at, &name)
        .map(|r| r.ty)
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
