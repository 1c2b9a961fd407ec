//! Checks a request against the spec's refresh operation: method, path, parameters, media type
//! and body. A conforming client causes no violation.

use crate::http::Request;
use serde_json::Value;
use tokenkit_codegen::model::{
    Auth, Body, Location, Operation, ParamValue, Provider, TokenOperation,
};
use tokenkit_codegen::validate::validate;

/// The operation a request is for: the one whose method and path template its method and path
/// end with (a grant's own operation, say), else the refresh operation (or, for a provider with
/// grants only, its first operation; a built provider has at least one).
pub fn operation_for<'a>(provider: &'a Provider, request: &Request) -> &'a TokenOperation {
    let path: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    provider
        .operations
        .iter()
        .find(|a| {
            let template: Vec<&str> = a
                .operation
                .path
                .trim_start_matches('/')
                .split('/')
                .collect();
            a.operation.method == request.method
                && path.len() >= template.len()
                && match_path(
                    &template.join("/"),
                    &path[path.len() - template.len()..].join("/"),
                )
                .is_some()
        })
        .unwrap_or(&provider.operations[0])
}

/// Every way `request` breaks the operation it is for, as readable sentences. They quote no
/// value.
pub fn check_request(provider: &Provider, base_path: &str, request: &Request) -> Vec<String> {
    let answering = operation_for(provider, request);
    let op = &answering.operation;
    let mut out = Vec::new();
    if request.method != op.method {
        out.push(format!(
            "method {} instead of {}",
            request.method, op.method
        ));
    }
    let template = format!("{base_path}{}", op.path);
    let path_values = match_path(&template, &request.path);
    if path_values.is_none() {
        out.push(format!(
            "path {:?} does not match {template:?}",
            request.path
        ));
    }
    check_params(provider, op, request, path_values.as_deref(), &mut out);
    check_auth(answering.auth.as_ref(), request, &mut out);
    if let Some(tokenkit_codegen::model::RefreshPlace::Header { name, prefix }) =
        provider.refresh.as_ref().map(|r| &r.place)
        && answering.is_refresh()
        && name.eq_ignore_ascii_case("authorization")
        && !request
            .header(name)
            .is_some_and(|v| v.starts_with(prefix.as_str()))
    {
        out.push(format!(
            "header {name} with the refresh token after {prefix:?} is missing"
        ));
    }
    if let Some(body_spec) = &op.body {
        check_body(
            provider,
            answering.auth.as_ref(),
            body_spec,
            request,
            &mut out,
        );
    } else if !request.body.is_empty() {
        out.push("a body was sent, but the operation has none".to_owned());
    }
    out
}

/// Every way a request to the revocation operation (`x-token-revoke`) breaks it: its client
/// authentication, its content type and its body against the schema. They quote no value.
pub fn check_revocation(
    provider: &Provider,
    revocation: &tokenkit_codegen::model::Revocation,
    request: &Request,
) -> Vec<String> {
    let mut out = Vec::new();
    let auth = revocation.auth.as_ref();
    check_auth(auth, request, &mut out);
    if let Some(body_spec) = &revocation.operation.body {
        check_body(provider, auth, body_spec, request, &mut out);
    }
    out
}

/// The refresh token a request carries, wherever the mapping puts it (none, for a request to
/// a grant's own operation).
pub fn presented_token(provider: &Provider, request: &Request) -> Option<String> {
    if !operation_for(provider, request).is_refresh() {
        return None;
    }
    provider.refresh.as_ref()?.place.read(
        body_json(provider, request).as_ref(),
        |name| query(request, name),
        |name| request.header(name).map(str::to_owned),
    )
}

fn query(request: &Request, name: &str) -> Option<String> {
    request
        .query
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.clone())
}

/// The values of a path template's `{name}` segments, if the path matches it.
fn match_path(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let expected: Vec<&str> = template.split('/').collect();
    let actual: Vec<&str> = path.split('/').collect();
    if expected.len() != actual.len() {
        return None;
    }
    let mut values = Vec::new();
    for (e, a) in expected.iter().zip(&actual) {
        match e.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            Some(name) if !a.is_empty() => values.push((name.to_owned(), (*a).to_owned())),
            Some(_) => return None,
            None if e == a => {}
            None => return None,
        }
    }
    Some(values)
}

/// The client authentication the spec's security scheme asks for.
fn check_auth(auth: Option<&Auth>, request: &Request, out: &mut Vec<String>) {
    match auth {
        None => {}
        Some(Auth::Basic { .. }) => {
            let credentials = request
                .header("authorization")
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(|b64| decode_base64(b64.trim()))
                .and_then(|bytes| String::from_utf8(bytes).ok());
            match credentials.as_deref().and_then(|c| c.split_once(':')) {
                Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {}
                _ => {
                    out.push("HTTP Basic client authentication is missing or malformed".to_owned())
                }
            }
        }
        // In the body, checked with it (`check_assertion`).
        Some(Auth::PrivateKeyJwt { .. }) => {}
        Some(Auth::ApiKey { location, name, .. }) => {
            let present = match location {
                Location::Header => request.header(name).is_some(),
                _ => query(request, name).is_some(),
            };
            if !present {
                out.push(format!("the API key {name} is missing"));
            }
        }
    }
}

/// A `private_key_jwt` assertion's shape (RFC 7523 §3): a compact JWS whose header names an
/// asymmetric algorithm and whose claims have `iss` = `sub`, `aud`, `exp` within five minutes of
/// `iat`, and a `jti`. The mock cannot check the signature: it does not hold the public key.
fn check_assertion(assertion: Option<&str>, out: &mut Vec<String>) {
    let Some(assertion) = assertion else {
        out.push("the client assertion is missing".to_owned());
        return;
    };
    let part = |i: usize| -> Option<Value> {
        let text = assertion.split('.').nth(i)?;
        let padded = format!("{text}{}", "=".repeat((4 - text.len() % 4) % 4));
        let bytes = decode_base64(&padded.replace('-', "+").replace('_', "/"))?;
        serde_json::from_slice(&bytes).ok()
    };
    let (Some(header), Some(claims), 3) = (part(0), part(1), assertion.split('.').count()) else {
        out.push("the client assertion is not a compact JWS".to_owned());
        return;
    };
    let alg = header["alg"].as_str().unwrap_or_default();
    if !["RS256", "PS256", "ES256", "ES384", "EdDSA"].contains(&alg) {
        out.push(format!(
            "the client assertion's alg {alg:?} is not an asymmetric algorithm"
        ));
    }
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    let fine = claims["iss"].is_string()
        && claims["iss"] == claims["sub"]
        && claims["aud"].is_string()
        && claims["jti"].is_string()
        && matches!((iat, exp), (Some(iat), Some(exp)) if exp > iat && exp - iat <= 300);
    if !fine {
        out.push(
            "the client assertion's claims are not iss = sub, aud, a short exp and a jti"
                .to_owned(),
        );
    }
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let trimmed = text.trim_end_matches('=');
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in trimmed.bytes() {
        buffer = (buffer << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The request body as JSON: parsed, or for a form body, its fields typed by the schema.
pub fn body_json(provider: &Provider, request: &Request) -> Option<Value> {
    let body_spec = operation_for(provider, request).operation.body.as_ref()?;
    body_as(provider, body_spec, request)
}

/// The request body as JSON, read as `body_spec` describes it.
fn body_as(provider: &Provider, body_spec: &Body, request: &Request) -> Option<Value> {
    if !tokenkit_codegen::model::is_form(&body_spec.media_type) {
        return serde_json::from_slice(&request.body).ok();
    }
    let text = std::str::from_utf8(&request.body).ok()?;
    let spec = &provider.spec_json;
    let schema = spec.pointer(&body_spec.schema_pointer)?;
    let mut fields = serde_json::Map::new();
    for (key, value) in crate::http::form_pairs(text) {
        let typed_value = match property_schema(spec, schema, &key, 0) {
            Some(property) => typed(&value, property, spec),
            None => Value::String(value),
        };
        fields.insert(key, typed_value);
    }
    Some(Value::Object(fields))
}

/// The schema of property `key` in an object schema, or in any of its `oneOf` variants.
fn property_schema<'a>(
    spec: &'a Value,
    schema: &'a Value,
    key: &str,
    depth: usize,
) -> Option<&'a Value> {
    if depth > 16 {
        return None;
    }
    let schema = resolve(schema, spec);
    if let Some(found) = schema.pointer(&tokenkit_codegen::pointer::join("/properties", key)) {
        return Some(found);
    }
    schema
        .get("oneOf")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|variant| property_schema(spec, variant, key, depth + 1))
}

fn resolve<'a>(schema: &'a Value, spec: &'a Value) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|p| spec.pointer(p))
        .unwrap_or(schema)
}

/// Text (a parameter, a form field) as the JSON value its schema's type calls for; text that
/// does not parse stays a string, so that validation reports the type.
fn typed(text: &str, schema: &Value, spec: &Value) -> Value {
    let resolved = resolve(schema, spec);
    let parsed = match resolved.get("type").and_then(Value::as_str) {
        Some("integer") => text.parse::<i64>().ok().map(Value::from),
        Some("number") => text.parse::<f64>().ok().map(Value::from),
        Some("boolean") => text.parse::<bool>().ok().map(Value::from),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::String(text.to_owned()))
}

/// Every way the request's parameters break the operation's: missing, not the constant, or
/// not what their schema allows. `path_values`: the path's placeholders, where it matched.
fn check_params(
    provider: &Provider,
    op: &Operation,
    request: &Request,
    path_values: Option<&[(String, String)]>,
    out: &mut Vec<String>,
) {
    for param in &op.params {
        let found = match param.location {
            Location::Header => request.header(&param.name).map(str::to_owned),
            Location::Query => query(request, &param.name),
            Location::Path => path_values
                .and_then(|values| values.iter().find(|(k, _)| *k == param.name))
                .map(|(_, v)| v.clone()),
        };
        let place = match param.location {
            Location::Header => "header",
            Location::Query => "query parameter",
            Location::Path => "path parameter",
        };
        let Some(text) = found else {
            if param.required && !(param.location == Location::Path && path_values.is_none()) {
                out.push(format!("required {place} {} is missing", param.name));
            }
            continue;
        };
        if let ParamValue::Constant(constant) = &param.value {
            if text != *constant {
                out.push(format!("{place} {} must be {constant:?}", param.name));
            }
            continue;
        }
        let Some(schema) = provider.spec_json.pointer(&param.schema_pointer) else {
            continue;
        };
        let value = typed(&text, schema, &provider.spec_json);
        for violation in validate(&provider.spec_json, schema, &value) {
            out.push(format!("{place} {}: {}", param.name, violation.message));
        }
    }
}

/// Every way the request's body breaks the operation's: its media type, its schema, and the
/// signed client assertion where the operation takes one.
fn check_body(
    provider: &Provider,
    auth: Option<&Auth>,
    body_spec: &Body,
    request: &Request,
    out: &mut Vec<String>,
) {
    let media = request.header("content-type").unwrap_or_default();
    let essence = media.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case(&body_spec.media_type) {
        out.push(format!(
            "content type {essence:?} instead of {:?}",
            body_spec.media_type
        ));
    }
    match body_as(provider, body_spec, request) {
        None => out.push(format!("the body is not {}", body_spec.media_type)),
        Some(body) => {
            if let Some(schema) = provider.spec_json.pointer(&body_spec.schema_pointer) {
                for violation in validate(&provider.spec_json, schema, &body) {
                    out.push(format!("body {violation}"));
                }
            }
            if let Some(Auth::PrivateKeyJwt { field, .. }) = auth {
                check_assertion(body.get(field).and_then(Value::as_str), out);
            }
        }
    }
}
