//! Schemas in one canonical form, whatever idiom the document wrote them in:
//! - `type: object` (or empty `properties`) beside `oneOf`/`anyOf`/`allOf` says nothing the
//!   composition does not: dropped; properties beside `allOf` become one more member;
//! - `allOf` members that only annotate (`description`, `nullable`, `example`…) are folded
//!   into the schema; an `allOf` of one inline schema is that schema; an `allOf` of one `$ref`
//!   stays (it is 3.0's way to make a reference nullable or describe it);
//! - object keywords (`required`, `properties`) inside a string, number or boolean schema are
//!   strays: dropped;
//! - polymorphism by mapping (a base schema with a `discriminator` mapping and no `oneOf`,
//!   whose subtypes are `allOf` the base) becomes a `oneOf` of the subtypes under the base's
//!   name, the base's own properties moving to `<Base>Base`, so that a reference to the base
//!   is a reference to any of its subtypes, as the discriminator says.

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
    by_mapping(doc);
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

/// The component schemas that are bases of polymorphism by mapping, with their subtypes.
fn bases(schemas: &Map<String, Value>) -> Vec<(String, Vec<String>)> {
    const PREFIX: &str = "#/components/schemas/";
    schemas
        .iter()
        .filter(|(_, s)| s.get("oneOf").is_none() && s.get("anyOf").is_none())
        .filter_map(|(name, s)| {
            let mapping = s.get("discriminator")?.get("mapping")?.as_object()?;
            let subtypes: Vec<String> = mapping
                .values()
                .filter_map(Value::as_str)
                .map(|v| v.strip_prefix(PREFIX).unwrap_or(v).to_owned())
                .filter(|t| t != name && schemas.contains_key(t))
                .collect();
            (!subtypes.is_empty()).then(|| (name.clone(), subtypes))
        })
        .collect()
}

/// Polymorphism by mapping as a `oneOf` (see the module docs).
fn by_mapping(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (base, subtypes) in bases(schemas) {
        let mut own = format!("{base}Base");
        while schemas.contains_key(&own) {
            own.push('_');
        }
        let Some(Value::Object(mut base_schema)) = schemas.remove(&base) else {
            continue;
        };
        let discriminator = base_schema.remove("discriminator");
        schemas.insert(own.clone(), Value::Object(base_schema));
        let from = format!("#/components/schemas/{base}");
        let to = format!("#/components/schemas/{own}");
        for subtype in &subtypes {
            let members = schemas
                .get_mut(subtype)
                .and_then(|s| s.get_mut("allOf"))
                .and_then(Value::as_array_mut);
            for member in members.into_iter().flatten() {
                if member.get("$ref").and_then(Value::as_str) == Some(from.as_str()) {
                    member["$ref"] = Value::String(to.clone());
                }
            }
        }
        let mut union = Map::new();
        let variants = subtypes
            .iter()
            .map(|t| serde_json::json!({ "$ref": format!("#/components/schemas/{t}") }))
            .collect();
        union.insert("oneOf".to_owned(), Value::Array(variants));
        if let Some(discriminator) = discriminator {
            union.insert("discriminator".to_owned(), discriminator);
        }
        schemas.insert(base, Value::Object(union));
    }
}
