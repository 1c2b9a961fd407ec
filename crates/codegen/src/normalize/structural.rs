//! Finds the deepest node of a spec that does not deserialize.
//!
//! `openapiv3` flattens extensions into most of its types, and serde loses the path inside a
//! flattened struct, so a whole-document error often says only `/paths`. This walks the places
//! where specs go wrong (operations, parameters, bodies, responses, schemas) and deserializes
//! each node on its own, to name the exact pointer.

use crate::pointer::join;
use openapiv3::{Operation, Parameter, PathItem, ReferenceOr, RequestBody, Response, Schema};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The pointer and message of the deepest failing node, if any node fails on its own.
pub(super) fn deepest_failure(doc: &Value) -> Option<(String, String)> {
    let mut found = None;
    if let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        for (name, schema) in schemas {
            found = found.or_else(|| schema_node(&join("/components/schemas", name), schema));
        }
    }
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            let at = join("/paths", path);
            found = found.or_else(|| {
                fails::<ReferenceOr<PathItem>>(item)
                    .map(|message| path_item(&at, item).unwrap_or((at.clone(), message)))
            });
        }
    }
    found
}

/// The error of deserializing `value` as `T`, if it fails.
fn fails<T: DeserializeOwned>(value: &Value) -> Option<String> {
    serde_json::from_value::<T>(value.clone())
        .err()
        .map(|e| e.to_string())
}

/// The first child that fails, with the deepest pointer inside it.
fn first<'a>(
    children: impl IntoIterator<Item = (String, &'a Value)>,
    check: impl Fn(&str, &Value) -> Option<(String, String)>,
) -> Option<(String, String)> {
    children.into_iter().find_map(|(at, v)| check(&at, v))
}

fn entries<'a>(at: &str, value: Option<&'a Value>) -> Vec<(String, &'a Value)> {
    match value {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (join(at, k), v)).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{at}/{i}"), v))
            .collect(),
        _ => Vec::new(),
    }
}

fn path_item(at: &str, item: &Value) -> Option<(String, String)> {
    let methods = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    first(
        methods
            .iter()
            .filter_map(|m| item.get(*m).map(|v| (join(at, m), v))),
        |at, op| {
            let message = fails::<Operation>(op)?;
            Some(operation(at, op).unwrap_or((at.to_owned(), message)))
        },
    )
}

fn operation(at: &str, op: &Value) -> Option<(String, String)> {
    let params_at = join(at, "parameters");
    let param = first(entries(&params_at, op.get("parameters")), |at, p| {
        let message = fails::<ReferenceOr<Parameter>>(p)?;
        let deeper = p
            .get("schema")
            .and_then(|s| schema_node(&join(at, "schema"), s));
        Some(deeper.unwrap_or((at.to_owned(), message)))
    });
    let body = op.get("requestBody").and_then(|b| {
        let at = join(at, "requestBody");
        let message = fails::<ReferenceOr<RequestBody>>(b)?;
        Some(content(&at, b).unwrap_or((at, message)))
    });
    let responses_at = join(at, "responses");
    let response = first(entries(&responses_at, op.get("responses")), |at, r| {
        let message = fails::<ReferenceOr<Response>>(r)?;
        Some(content(at, r).unwrap_or((at.to_owned(), message)))
    });
    // A field of the wrong shape altogether (`responses: 7`).
    let field = |key: &str, message: Option<String>| message.map(|m| (join(at, key), m));
    let shape = || {
        op.get("responses")
            .and_then(|v| field("responses", fails::<openapiv3::Responses>(v)))
            .or_else(|| {
                op.get("parameters")
                    .and_then(|v| field("parameters", fails::<Vec<ReferenceOr<Parameter>>>(v)))
            })
            .or_else(|| {
                op.get("operationId")
                    .and_then(|v| field("operationId", fails::<String>(v)))
            })
    };
    param.or(body).or(response).or_else(shape)
}

fn content(at: &str, holder: &Value) -> Option<(String, String)> {
    let content_at = join(at, "content");
    first(entries(&content_at, holder.get("content")), |at, media| {
        media
            .get("schema")
            .and_then(|s| schema_node(&join(at, "schema"), s))
    })
}

fn schema_node(at: &str, schema: &Value) -> Option<(String, String)> {
    let message = fails::<ReferenceOr<Schema>>(schema)?;
    let mut children = entries(&join(at, "properties"), schema.get("properties"));
    for key in ["oneOf", "allOf", "anyOf"] {
        children.extend(entries(&join(at, key), schema.get(key)));
    }
    for key in ["items", "not", "additionalProperties"] {
        if let Some(child) = schema.get(key).filter(|c| c.is_object()) {
            children.push((join(at, key), child));
        }
    }
    Some(first(children, schema_node).unwrap_or((at.to_owned(), message)))
}
