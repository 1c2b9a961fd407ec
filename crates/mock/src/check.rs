//! Checks a request against the spec's refresh operation: method, path, parameters, media type
//! and body. A conforming client causes no violation.

use crate::http::Request;
use serde_json::Value;
use tokenkit_codegen::model::{Location, ParamValue, Provider};
use tokenkit_codegen::validate::validate;

/// Every way `request` breaks the operation, as readable sentences. They quote no value.
pub fn check_request(provider: &Provider, base_path: &str, request: &Request) -> Vec<String> {
    let op = &provider.operation;
    let mut out = Vec::new();
    if request.method != op.method {
        out.push(format!(
            "method {} instead of {}",
            request.method, op.method
        ));
    }
    let expected_path = format!("{base_path}{}", op.path);
    if request.path != expected_path {
        out.push(format!(
            "path {:?} instead of {expected_path:?}",
            request.path
        ));
    }
    for param in &op.params {
        let found = match param.location {
            Location::Header => request.header(&param.name).map(str::to_owned),
            Location::Query => request
                .query
                .iter()
                .find(|(k, _)| *k == param.name)
                .map(|(_, v)| v.clone()),
        };
        let place = match param.location {
            Location::Header => "header",
            Location::Query => "query parameter",
        };
        let Some(text) = found else {
            if param.required {
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
        let value = typed_param(&text, schema, &provider.spec_json);
        for violation in validate(&provider.spec_json, schema, &value) {
            out.push(format!("{place} {}: {}", param.name, violation.message));
        }
    }
    let media = request.header("content-type").unwrap_or_default();
    let essence = media.split(';').next().unwrap_or_default().trim();
    if essence != op.body.media_type {
        out.push(format!(
            "content type {essence:?} instead of {:?}",
            op.body.media_type
        ));
    }
    match serde_json::from_slice::<Value>(&request.body) {
        Err(_) => out.push("the body is not JSON".to_owned()),
        Ok(body) => {
            if let Some(schema) = provider.spec_json.pointer(&op.body.schema_pointer) {
                for violation in validate(&provider.spec_json, schema, &body) {
                    out.push(format!("body {violation}"));
                }
            }
        }
    }
    out
}

/// A parameter's text as the JSON value its schema's type calls for; text that does not parse
/// stays a string, so that validation reports the type.
fn typed_param(text: &str, schema: &Value, spec: &Value) -> Value {
    let resolved = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|p| spec.pointer(p))
        .unwrap_or(schema);
    let parsed = match resolved.get("type").and_then(Value::as_str) {
        Some("integer") => text.parse::<i64>().ok().map(Value::from),
        Some("number") => text.parse::<f64>().ok().map(Value::from),
        Some("boolean") => text.parse::<bool>().ok().map(Value::from),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::String(text.to_owned()))
}
