//! Examples where providers put them. A media type without an example gets one assembled
//! from its schema: the schema's own `example`, else its `default`, else its first `enum`
//! value, else one built from its parts (each property, the first `oneOf` variant, the
//! `allOf` members merged), else a value of its type and format. `example: null` is no
//! example. The mock serves, the lint checks and the suite expects the assembled example like
//! a written one; a media type whose schema cannot make one (none, or a circular one) is left
//! without, for the lint to name.

use super::walk;
use serde_json::{Map, Value, json};

/// How deep an example is built before a recursive schema stops it.
const MAX_DEPTH: usize = 12;

/// Gives every request and response media type of `doc` an example, in place.
pub(super) fn assemble(doc: &mut Value) {
    let source = doc.clone();
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in item.values_mut().filter_map(Value::as_object_mut) {
            if let Some(content) = op.get_mut("requestBody").and_then(|b| b.get_mut("content")) {
                media_types(&source, content);
            }
            let responses = op.get_mut("responses").and_then(Value::as_object_mut);
            for response in responses.into_iter().flat_map(|r| r.values_mut()) {
                if let Some(content) = response.get_mut("content") {
                    media_types(&source, content);
                }
            }
        }
    }
}

/// Each media type of a `content` map without an example gets the one its schema makes.
fn media_types(doc: &Value, content: &mut Value) {
    let Some(content) = content.as_object_mut() else {
        return;
    };
    for media in content.values_mut().filter_map(Value::as_object_mut) {
        if media.get("example").is_some_and(Value::is_null) {
            media.remove("example");
        }
        let has_examples = media
            .get("examples")
            .and_then(Value::as_object)
            .is_some_and(|e| {
                e.values()
                    .any(|e| e.get("value").is_some_and(|v| !v.is_null()))
            });
        if media.contains_key("example") || has_examples {
            continue;
        }
        let example = media
            .get("schema")
            .and_then(|schema| example_of(doc, schema, "value", 0));
        if let Some(example) = example {
            media.insert("example".to_owned(), example);
        }
    }
}

/// The example `schema` makes; `name` is what it is the value of (for made-up text).
fn example_of(doc: &Value, schema: &Value, name: &str, depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    let schema = walk::deref(doc, schema)?;
    let map = schema.as_object()?;
    for key in ["example", "default"] {
        if let Some(value) = map.get(key).filter(|v| !v.is_null()) {
            return Some(value.clone());
        }
    }
    if let Some(first) = map
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|values| values.iter().find(|v| !v.is_null()))
    {
        return Some(first.clone());
    }
    if let Some(Value::Array(members)) = map.get("allOf") {
        return all_of(doc, members, name, depth);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(variants)) = map.get(key) {
            return variants.iter().find_map(|v| {
                let mut example = example_of(doc, v, name, depth + 1)?;
                discriminate(map, v, &mut example);
                Some(example)
            });
        }
    }
    let ty = map.get("type").and_then(Value::as_str);
    if ty == Some("object") || map.contains_key("properties") {
        return object(doc, map, depth);
    }
    scalar(map, ty, name, doc, depth)
}

/// An object: every property that makes an example; `None` when a required one cannot.
fn object(doc: &Value, map: &Map<String, Value>, depth: usize) -> Option<Value> {
    let required: Vec<&str> = map
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Map::new();
    let properties = map.get("properties").and_then(Value::as_object);
    for (prop, schema) in properties.into_iter().flatten() {
        match example_of(doc, schema, prop, depth + 1) {
            Some(value) => {
                out.insert(prop.clone(), value);
            }
            None if required.contains(&prop.as_str()) => return None,
            None => {}
        }
    }
    Some(Value::Object(out))
}

/// The members' examples merged (objects key by key; otherwise the last member's).
fn all_of(doc: &Value, members: &[Value], name: &str, depth: usize) -> Option<Value> {
    let mut merged: Option<Value> = None;
    for member in members {
        let example = example_of(doc, member, name, depth + 1)?;
        merged = Some(match (merged, example) {
            (Some(Value::Object(mut a)), Value::Object(b)) => {
                a.extend(b);
                Value::Object(a)
            }
            (_, example) => example,
        });
    }
    merged
}

/// A value of a scalar or array type, within its bounds where it states them.
fn scalar(
    map: &Map<String, Value>,
    ty: Option<&str>,
    name: &str,
    doc: &Value,
    depth: usize,
) -> Option<Value> {
    let number = |fallback: f64| {
        let min = map.get("minimum").and_then(Value::as_f64);
        let max = map.get("maximum").and_then(Value::as_f64);
        match (min, max) {
            (Some(min), _) => min.max(fallback.min(max.unwrap_or(f64::MAX))),
            (None, Some(max)) => fallback.min(max),
            (None, None) => fallback,
        }
    };
    Some(match ty {
        Some("integer") => json!(number(1.0) as i64),
        Some("number") => json!(number(1.5)),
        Some("boolean") => json!(true),
        Some("array") => {
            let item = map
                .get("items")
                .and_then(|items| example_of(doc, items, name, depth + 1));
            Value::Array(item.into_iter().collect())
        }
        Some("string") => json!(text(map, name)),
        _ => return None,
    })
}

/// A string of the schema's format, or one named after what it is.
fn text(map: &Map<String, Value>, name: &str) -> String {
    let made = match map.get("format").and_then(Value::as_str) {
        Some("date-time") => "2024-01-01T00:00:00Z".to_owned(),
        Some("date") => "2024-01-01".to_owned(),
        Some("uri" | "url") => "https://example.com/".to_owned(),
        Some("email") => "someone@example.com".to_owned(),
        Some("uuid") => "00000000-0000-4000-8000-000000000000".to_owned(),
        _ => format!("example-{}", name.replace('_', "-")),
    };
    let min = map.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    if made.len() < min {
        format!("{made}{}", "x".repeat(min - made.len()))
    } else {
        made
    }
}

/// A variant's example carries the discriminator value that picks that variant: its
/// `mapping` key, else its schema's name.
fn discriminate(map: &Map<String, Value>, variant: &Value, example: &mut Value) {
    let Some(discriminator) = map.get("discriminator") else {
        return;
    };
    let (Some(property), Some(reference)) = (
        discriminator.get("propertyName").and_then(Value::as_str),
        variant.get("$ref").and_then(Value::as_str),
    ) else {
        return;
    };
    let mapped = discriminator
        .get("mapping")
        .and_then(Value::as_object)
        .and_then(|m| {
            m.iter().find(|(_, target)| {
                target.as_str().is_some_and(|target| {
                    target == reference || reference.rsplit('/').next() == Some(target)
                })
            })
        })
        .map(|(key, _)| key.clone());
    let value = mapped.or_else(|| reference.rsplit('/').next().map(str::to_owned));
    if let (Some(value), Some(object)) = (value, example.as_object_mut()) {
        object.insert(property.to_owned(), Value::String(value));
    }
}
