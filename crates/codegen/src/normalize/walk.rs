//! Walking a document's schemas, and following its local `$ref`s.

use serde_json::Value;

/// The keys whose values are schemas, inside a schema.
const SCHEMA_KEYS: [&str; 3] = ["items", "not", "additionalProperties"];
/// The keys whose values are lists of schemas, inside a schema.
const SCHEMA_LISTS: [&str; 3] = ["allOf", "oneOf", "anyOf"];

/// Calls `visit` on every schema of `doc`, outermost first: the component schemas and every
/// `schema` of a parameter, header or media type, and each schema inside those.
pub(super) fn schemas(doc: &mut Value, visit: &mut dyn FnMut(&mut Value)) {
    if let Some(components) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for schema in components.values_mut() {
            schema_tree(schema, visit);
        }
    }
    for key in ["paths", "components"] {
        if let Some(part) = doc.get_mut(key) {
            schema_holders(part, visit);
        }
    }
}

/// Every `schema` value below `value` (outside `components/schemas`, walked on its own).
fn schema_holders(value: &mut Value, visit: &mut dyn FnMut(&mut Value)) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match key.as_str() {
                    "schema" => schema_tree(child, visit),
                    "schemas" | "examples" | "example" => {}
                    _ => schema_holders(child, visit),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| schema_holders(v, visit)),
        _ => {}
    }
}

/// `schema` and every schema inside it, outermost first.
pub(super) fn schema_tree(schema: &mut Value, visit: &mut dyn FnMut(&mut Value)) {
    if !schema.is_object() {
        return;
    }
    visit(schema);
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    if let Some(props) = map.get_mut("properties").and_then(Value::as_object_mut) {
        for prop in props.values_mut() {
            schema_tree(prop, visit);
        }
    }
    for key in SCHEMA_KEYS {
        if let Some(child) = map.get_mut(key) {
            schema_tree(child, visit);
        }
    }
    for key in SCHEMA_LISTS {
        if let Some(Value::Array(list)) = map.get_mut(key) {
            list.iter_mut().for_each(|s| schema_tree(s, visit));
        }
    }
}

/// The JSON pointer a local `$ref` names (`#/components/schemas/X` → `/components/schemas/X`).
pub(super) fn local(reference: &str) -> Option<&str> {
    reference.strip_prefix('#')
}

/// The node `value` stands for: itself, or what its local `$ref` chain ends at (at most a few
/// hops; `None` for a dangling or circular chain).
pub(super) fn deref<'a>(doc: &'a Value, mut value: &'a Value) -> Option<&'a Value> {
    for _ in 0..16 {
        let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
            return Some(value);
        };
        value = doc.pointer(local(reference)?)?;
    }
    None
}
