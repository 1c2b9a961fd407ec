//! References to reusable parts (`#/components/responses/Error`, parameters, request bodies,
//! headers) replaced by what they name, and a path's parameters given to each of its
//! operations: the later stages read every operation as if it were written out in full.

use super::walk;
use crate::error::SpecError;
use crate::pointer;
use serde_json::Value;

/// The methods of a path item.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Inlines every reusable part an operation references, in place.
pub(super) fn inline(file: &str, doc: &mut Value) -> Result<(), SpecError> {
    let source = doc.clone();
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for (path, item) in paths.iter_mut() {
        let path_at = pointer::join("/paths", path);
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        let shared = item.remove("parameters");
        for method in METHODS {
            let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            let at = pointer::join(&path_at, method);
            if let Some(shared) = &shared {
                merge_parameters(op, shared, &source);
            }
            if let Some(Value::Array(params)) = op.get_mut("parameters") {
                for (i, param) in params.iter_mut().enumerate() {
                    resolve(file, &source, param, &format!("{at}/parameters/{i}"))?;
                }
            }
            if let Some(body) = op.get_mut("requestBody") {
                resolve(file, &source, body, &pointer::join(&at, "requestBody"))?;
            }
            if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
                for (status, response) in responses.iter_mut() {
                    let here = pointer::join(&pointer::join(&at, "responses"), status);
                    resolve(file, &source, response, &here)?;
                    if let Some(headers) =
                        response.get_mut("headers").and_then(Value::as_object_mut)
                    {
                        for (name, header) in headers.iter_mut() {
                            let here = pointer::join(&pointer::join(&here, "headers"), name);
                            resolve(file, &source, header, &here)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Replaces `value`, a `$ref` to a reusable part, with a copy of the part.
fn resolve(file: &str, doc: &Value, value: &mut Value, at: &str) -> Result<(), SpecError> {
    let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
        return Ok(());
    };
    match walk::deref(doc, value) {
        Some(target) => {
            *value = target.clone();
            Ok(())
        }
        None => Err(SpecError::new(
            file,
            &pointer::join(at, "$ref"),
            format!("{reference:?} names nothing in this document"),
        )
        .hint("point it at a part under `components` (`#/components/responses/Error`)")),
    }
}

/// A path item's parameters apply to each of its operations, unless the operation declares
/// one of the same name and place (OpenAPI 3.0 §4.7.9).
fn merge_parameters(op: &mut serde_json::Map<String, Value>, shared: &Value, doc: &Value) {
    let Value::Array(shared) = shared else {
        return;
    };
    let key = |p: &Value| {
        let p = walk::deref(doc, p).unwrap_or(p);
        (
            p.get("name").and_then(Value::as_str).map(str::to_owned),
            p.get("in").and_then(Value::as_str).map(str::to_owned),
        )
    };
    let own: Vec<_> = op
        .get("parameters")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(key).collect())
        .unwrap_or_default();
    let list = op
        .entry("parameters")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = list {
        for param in shared {
            if !own.contains(&key(param)) {
                list.push(param.clone());
            }
        }
    }
}
