//! Schemas in one canonical form, whatever idiom the document wrote them in:
//! - `type: object` (or empty `properties`) beside `oneOf`/`anyOf`/`allOf` says nothing the
//!   composition does not: dropped; properties beside `allOf` become one more member;
//! - `allOf` members that only annotate (`description`, `nullable`, `example`…) are folded
//!   into the schema; an `allOf` of one inline schema is that schema; an `allOf` of one `$ref`
//!   stays (it is 3.0's way to make a reference nullable or describe it);
//! - object keywords (`required`, `properties`) inside a string, number or boolean schema are
//!   strays: dropped.

use super::walk;
use serde_json::{Map, Value};

/// Keywords that describe a schema without constraining its instances.
const ANNOTATIONS: [&str; 9] = [
    "description",
    "title",
    "example",
    "examples",
    "default",
    "nullable",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Rewrites every schema of `doc` in the canonical form, in place.
pub(super) fn canonical(doc: &mut Value) {
    walk::schemas(doc, &mut |schema| {
        if let Some(map) = schema.as_object_mut() {
            stray_object_keywords(map);
            composition_beside_type(map);
            fold_annotation_members(map);
        }
    });
}

/// Whether a schema says nothing but annotations.
fn only_annotates(schema: &Map<String, Value>) -> bool {
    schema
        .keys()
        .all(|k| ANNOTATIONS.contains(&k.as_str()) || k.starts_with("x-"))
}

/// `required` and `properties` in a schema whose type cannot have them.
fn stray_object_keywords(map: &mut Map<String, Value>) {
    let scalar = matches!(
        map.get("type").and_then(Value::as_str),
        Some("string" | "integer" | "number" | "boolean")
    );
    if scalar {
        map.remove("required");
        map.remove("properties");
        map.remove("additionalProperties");
    }
}

/// `type: object` beside a composition.
fn composition_beside_type(map: &mut Map<String, Value>) {
    let composed = ["oneOf", "anyOf", "allOf"]
        .iter()
        .any(|k| map.get(*k).is_some_and(Value::is_array));
    if !composed || map.get("type").is_some_and(|t| t != "object") {
        return;
    }
    map.remove("type");
    let empty = map
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty);
    if empty {
        map.remove("properties");
    }
    // Properties beside `allOf` are one more of its members.
    if map.contains_key("allOf") && map.contains_key("properties") {
        let mut member = Map::new();
        member.insert("type".to_owned(), Value::String("object".to_owned()));
        for key in ["properties", "required", "additionalProperties"] {
            if let Some(value) = map.remove(key) {
                member.insert(key.to_owned(), value);
            }
        }
        if let Some(Value::Array(members)) = map.get_mut("allOf") {
            members.push(Value::Object(member));
        }
    }
}

/// `allOf` members that only annotate, folded into the schema (a later member's annotation
/// wins over an earlier one's, the schema's own over both); then an `allOf` of one inline
/// schema becomes that schema.
fn fold_annotation_members(map: &mut Map<String, Value>) {
    let Some(Value::Array(members)) = map.get_mut("allOf") else {
        return;
    };
    let mut folded = Map::new();
    members.retain(|member| match member.as_object() {
        Some(m) if !m.contains_key("$ref") && only_annotates(m) => {
            folded.extend(m.clone());
            false
        }
        _ => true,
    });
    if let [Value::Object(only)] = members.as_slice()
        && !only.contains_key("$ref")
    {
        let mut merged = only.clone();
        merged.extend(folded);
        map.remove("allOf");
        for (key, value) in std::mem::take(map) {
            merged.insert(key, value);
        }
        *map = merged;
        return;
    }
    for (key, value) in folded {
        map.entry(key).or_insert(value);
    }
}
