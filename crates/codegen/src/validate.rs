//! Checks a JSON instance against an OpenAPI 3.0 schema of a spec: the mock server uses it on
//! every request, and the lint on every example.
//!
//! Messages name the place in the instance and the rule, never the offending value, which may be
//! a token.

use crate::pointer;
use serde_json::Value;

/// How deep `$ref`s may nest before a schema is taken for a cycle.
const MAX_DEPTH: usize = 64;

/// One way the instance breaks the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// A JSON pointer into the instance.
    pub at: String,
    /// The rule it breaks.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.at.is_empty() {
            "(root)"
        } else {
            &self.at
        };
        write!(f, "{at}: {}", self.message)
    }
}

/// Every violation of `schema` (a schema inside `spec`, which `$ref`s resolve against) by
/// `instance`.
pub fn validate(spec: &Value, schema: &Value, instance: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    Checker {
        spec,
        out: &mut out,
    }
    .check(schema, instance, "", 0);
    out
}

struct Checker<'a> {
    spec: &'a Value,
    out: &'a mut Vec<Violation>,
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Checker<'_> {
    fn fail(&mut self, at: &str, message: impl Into<String>) {
        self.out.push(Violation {
            at: at.to_owned(),
            message: message.into(),
        });
    }

    fn check(&mut self, schema: &Value, instance: &Value, at: &str, depth: usize) {
        if depth > MAX_DEPTH {
            self.fail(at, "the schema nests $refs too deeply (a cycle?)");
            return;
        }
        let Some(obj) = schema.as_object() else {
            // `true`/`{}`-like schemas accept everything.
            return;
        };
        if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
            let target = reference
                .strip_prefix('#')
                .and_then(|p| self.spec.pointer(p));
            match target {
                Some(target) => self.check(target, instance, at, depth + 1),
                None => self.fail(
                    at,
                    format!("the schema's $ref {reference:?} does not resolve"),
                ),
            }
            return;
        }
        if instance.is_null() && obj.get("nullable").and_then(Value::as_bool) == Some(true) {
            return;
        }
        if let Some(expected) = obj.get("type").and_then(Value::as_str) {
            let found = type_name(instance);
            let fits = expected == found || (expected == "number" && found == "integer");
            if !fits {
                self.fail(at, format!("expected {expected}, found {found}"));
                return;
            }
        }
        if let Some(allowed) = obj.get("enum").and_then(Value::as_array)
            && !allowed.contains(instance)
        {
            let allowed: Vec<String> = allowed.iter().map(Value::to_string).collect();
            self.fail(
                at,
                format!("the value is not one of {}", allowed.join(", ")),
            );
        }
        self.numbers(obj, instance, at);
        self.strings(obj, instance, at);
        self.combinators(obj, instance, at, depth);
        match instance {
            Value::Object(map) => self.object(obj, map, at, depth),
            Value::Array(items) => {
                if let Some(item_schema) = obj.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item_schema, item, &format!("{at}/{i}"), depth + 1);
                    }
                }
            }
            _ => {}
        }
    }

    fn numbers(&mut self, obj: &serde_json::Map<String, Value>, instance: &Value, at: &str) {
        let Value::Number(n) = instance else { return };
        match obj.get("format").and_then(Value::as_str) {
            Some("int32") if n.as_i64().and_then(|v| i32::try_from(v).ok()).is_none() => {
                self.fail(at, "expected a 32-bit integer");
            }
            Some("int64") if n.as_i64().is_none() => self.fail(at, "expected a 64-bit integer"),
            _ => {}
        }
        let v = n.as_f64().unwrap_or(f64::NAN);
        if let Some(min) = obj.get("minimum").and_then(Value::as_f64)
            && v < min
        {
            self.fail(at, format!("below the minimum {min}"));
        }
        if let Some(max) = obj.get("maximum").and_then(Value::as_f64)
            && v > max
        {
            self.fail(at, format!("above the maximum {max}"));
        }
    }

    fn strings(&mut self, obj: &serde_json::Map<String, Value>, instance: &Value, at: &str) {
        let Value::String(s) = instance else { return };
        let len = s.chars().count() as u64;
        if let Some(min) = obj.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            self.fail(at, format!("shorter than {min} characters"));
        }
        if let Some(max) = obj.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            self.fail(at, format!("longer than {max} characters"));
        }
    }

    fn combinators(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        instance: &Value,
        at: &str,
        depth: usize,
    ) {
        let matches = |this: &Self, schema: &Value| {
            let mut scratch = Vec::new();
            Checker {
                spec: this.spec,
                out: &mut scratch,
            }
            .check(schema, instance, at, depth + 1);
            scratch.is_empty()
        };
        if let Some(options) = obj.get("oneOf").and_then(Value::as_array) {
            // A discriminator names the one schema that applies (OpenAPI 3.0 §4.7.25):
            // subtypes that overlap are told apart by it, not by trying each.
            let count = match discriminated(obj, options, instance) {
                Some(chosen) => {
                    self.check(chosen, instance, at, depth + 1);
                    1
                }
                None => options.iter().filter(|s| matches(self, s)).count(),
            };
            if count != 1 {
                self.fail(
                    at,
                    format!(
                        "matches {count} of the {} oneOf schemas; exactly one must match",
                        options.len()
                    ),
                );
            }
        }
        if let Some(options) = obj.get("anyOf").and_then(Value::as_array)
            && !options.iter().any(|s| matches(self, s))
        {
            self.fail(at, "matches none of the anyOf schemas");
        }
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            for schema in all {
                self.check(schema, instance, at, depth + 1);
            }
        }
    }

    fn object(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        map: &serde_json::Map<String, Value>,
        at: &str,
        depth: usize,
    ) {
        let properties = obj.get("properties").and_then(Value::as_object);
        if let Some(required) = obj.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    self.fail(at, format!("the required property {name:?} is missing"));
                }
            }
        }
        for (key, value) in map {
            let child = pointer::join(at, key);
            match properties.and_then(|p| p.get(key)) {
                Some(schema) => self.check(schema, value, &child, depth + 1),
                None => match obj.get("additionalProperties") {
                    Some(Value::Bool(false)) => self.fail(
                        &child,
                        "this property is not allowed (additionalProperties: false)",
                    ),
                    Some(schema @ Value::Object(_)) => self.check(schema, value, &child, depth + 1),
                    _ => {}
                },
            }
        }
    }
}

/// The `oneOf` member the discriminator picks for `instance`: the `mapping` entry for its
/// property's value, else the member whose `$ref` ends in that value's schema name. `None`
/// without a discriminator, or when the value picks nothing (then every member is tried).
fn discriminated<'a>(
    obj: &serde_json::Map<String, Value>,
    options: &'a [Value],
    instance: &Value,
) -> Option<&'a Value> {
    let discriminator = obj.get("discriminator")?;
    let property = discriminator.get("propertyName")?.as_str()?;
    let value = instance.get(property)?.as_str()?;
    let target = discriminator
        .get("mapping")
        .and_then(|m| m.get(value))
        .and_then(Value::as_str)
        .unwrap_or(value);
    // A mapping value is a reference, or a schema's name.
    let target = if target.contains('/') {
        target.to_owned()
    } else {
        format!("#/components/schemas/{target}")
    };
    options
        .iter()
        .find(|o| o.get("$ref").and_then(Value::as_str) == Some(target.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({"components": {"schemas": {
            "A": {"type": "object", "required": ["kind", "n"], "additionalProperties": false,
                  "properties": {"kind": {"type": "string", "enum": ["a"]}, "n": {"type": "integer", "format": "int32"}}},
            "B": {"type": "object", "required": ["kind"],
                  "properties": {"kind": {"type": "string", "enum": ["b"]}, "s": {"type": "string", "nullable": true}}},
            "Loop": {"$ref": "#/components/schemas/Loop"}
        }}})
    }

    fn one_of() -> Value {
        json!({"oneOf": [{"$ref": "#/components/schemas/A"}, {"$ref": "#/components/schemas/B"}]})
    }

    #[test]
    fn accepts_conforming_instances() {
        assert_eq!(
            validate(&spec(), &one_of(), &json!({"kind": "a", "n": 5})),
            vec![]
        );
        assert_eq!(
            validate(&spec(), &one_of(), &json!({"kind": "b", "s": null})),
            vec![]
        );
    }

    #[test]
    fn reports_each_rule_without_values() {
        let v = validate(
            &spec(),
            &json!({"$ref": "#/components/schemas/A"}),
            &json!({"kind": "SECRET", "n": 5_000_000_000_i64, "x": 1}),
        );
        let text: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text.iter().all(|t| !t.contains("SECRET")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with("/x:")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("32-bit")), "{text:?}");
    }

    #[test]
    fn one_of_needs_exactly_one() {
        let v = validate(&spec(), &one_of(), &json!({"kind": "c"}));
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("matches 0"));
    }

    #[test]
    fn ref_cycles_end() {
        let v = validate(
            &spec(),
            &json!({"$ref": "#/components/schemas/Loop"}),
            &json!(1),
        );
        assert!(v[0].message.contains("cycle"));
    }

    #[test]
    fn a_discriminator_picks_one_of_overlapping_subtypes() {
        let spec = json!({"components": {"schemas": {
            "Card": {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}}},
            "Bank": {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}, "iban": {"type": "string"}}}
        }}});
        let schema = json!({
            "oneOf": [{"$ref": "#/components/schemas/Card"}, {"$ref": "#/components/schemas/Bank"}],
            "discriminator": {"propertyName": "kind", "mapping": {"bank": "#/components/schemas/Bank"}}
        });
        // Both subtypes accept it: without the discriminator it matches 2 of 2.
        assert!(validate(&spec, &schema, &json!({"kind": "bank", "iban": "x"})).is_empty());
        assert!(validate(&spec, &schema, &json!({"kind": "Card"})).is_empty());
        let wrong = validate(&spec, &schema, &json!({"kind": "bank", "iban": 7}));
        assert_eq!(wrong.len(), 1, "{wrong:?}");
        let without = json!({"oneOf": schema["oneOf"].clone()});
        assert_eq!(validate(&spec, &without, &json!({"kind": "bank"})).len(), 1);
    }
}
