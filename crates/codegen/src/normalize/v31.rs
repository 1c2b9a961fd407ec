//! OpenAPI 3.1 in the words of 3.0: what a token operation's document uses of JSON Schema
//! 2020-12, rewritten so that one parser (`openapiv3`, 3.0) and one type builder read both.
//!
//! Rewriting the JSON before it is parsed keeps every later stage on one form; a second,
//! 3.1 parser would mean a second document model for the type builder and the mock to follow.

use super::walk;
use serde_json::{Map, Value, json};

/// Rewrites a 3.1 document as 3.0.3, in place.
pub(super) fn downgrade(doc: &mut Value) {
    if let Some(map) = doc.as_object_mut() {
        map.insert("openapi".to_owned(), json!("3.0.3"));
        // 3.1's own top-level members, which a token client never reads.
        map.remove("webhooks");
        map.remove("jsonSchemaDialect");
        if !map.contains_key("paths") {
            map.insert("paths".to_owned(), json!({}));
        }
    }
    if let Some(info) = doc.get_mut("info").and_then(Value::as_object_mut) {
        info.remove("summary");
        if let Some(license) = info.get_mut("license").and_then(Value::as_object_mut) {
            license.remove("identifier");
        }
    }
    walk::schemas(doc, &mut |schema| {
        if let Some(map) = schema.as_object_mut() {
            schema_31(map);
        }
    });
}

/// One schema's 3.1 keywords as 3.0 ones.
fn schema_31(map: &mut Map<String, Value>) {
    // `type: [T, "null"]` is `type: T, nullable: true`.
    if let Some(Value::Array(types)) = map.get("type").cloned() {
        let named: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if named.len() < types.len() {
            map.insert("nullable".to_owned(), Value::Bool(true));
        }
        match named.as_slice() {
            [] => {
                map.remove("type");
            }
            [one] => {
                map.insert("type".to_owned(), one.clone());
            }
            several => {
                map.remove("type");
                let variants = several.iter().map(|t| json!({ "type": t })).collect();
                map.insert("oneOf".to_owned(), Value::Array(variants));
            }
        }
    }
    // `const: v` is a one-value enum.
    if let Some(value) = map.remove("const") {
        map.insert("enum".to_owned(), Value::Array(vec![value]));
    }
    // A schema's `examples` is a list in 2020-12; 3.0 has one `example`.
    if let Some(Value::Array(examples)) = map.get("examples").cloned() {
        map.remove("examples");
        if let Some(first) = examples.into_iter().find(|e| !e.is_null()) {
            map.entry("example").or_insert(first);
        }
    }
    // Numeric `exclusiveMinimum` / `exclusiveMaximum` are 3.0's bound with a flag.
    for (exclusive, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(value) = map.get(exclusive).filter(|v| v.is_number()).cloned() {
            map.insert(bound.to_owned(), value);
            map.insert(exclusive.to_owned(), Value::Bool(true));
        }
    }
    for keyword in [
        "$schema",
        "$id",
        "$comment",
        "$anchor",
        "contentEncoding",
        "contentMediaType",
        "unevaluatedProperties",
    ] {
        map.remove(keyword);
    }
    ref_siblings(map);
}

/// A `$ref` with siblings: 3.1 applies both, 3.0 ignores the siblings. Annotations are
/// dropped (the target's own stand); anything that constrains is kept beside the target, as
/// `allOf`.
fn ref_siblings(map: &mut Map<String, Value>) {
    if !map.contains_key("$ref") || map.len() == 1 {
        return;
    }
    for annotation in ["description", "summary", "title", "example", "deprecated"] {
        map.remove(annotation);
    }
    if map.len() == 1 {
        return;
    }
    let reference = map.remove("$ref").unwrap_or_default();
    let rest = std::mem::take(map);
    let nullable = rest.get("nullable").cloned();
    let mut constraints = rest;
    constraints.remove("nullable");
    let mut members = vec![json!({ "$ref": reference })];
    if !constraints.is_empty() {
        members.push(Value::Object(constraints));
    }
    map.insert("allOf".to_owned(), Value::Array(members));
    if let Some(nullable) = nullable {
        map.insert("nullable".to_owned(), nullable);
    }
}
