//! The per-client values a user supplies to the builder, and the example values they get.

use crate::names::snake;
use crate::types::Ty;
use serde_json::Value;

/// A value the user gives when building the client.
#[derive(Clone, Debug)]
pub struct ConfigField {
    /// The Rust field and builder method name.
    pub name: String,
    /// The Rust type.
    pub ty: Ty,
    /// Required values are builder arguments; the others are setters.
    pub required: bool,
    /// From the spec.
    pub doc: Option<String>,
    /// A value for tests and examples: the spec's example, or one made up from the type.
    pub example: Value,
    /// Whether the client keeps it: a body value, or the client id the authorization URL
    /// names. Header, query and path values live only in the endpoints.
    pub kept: bool,
    /// Whether its values are `Copy` (numbers, booleans, the generated string enums).
    pub copy: bool,
}

/// Adds a per-client value, or finds the one of the same name, type and need that another
/// request (or operation) already takes: one builder value, however many places send it.
pub(crate) fn push_config(config: &mut Vec<ConfigField>, field: ConfigField) -> usize {
    let same =
        |c: &ConfigField| c.name == field.name && c.ty == field.ty && c.required == field.required;
    config.iter().position(same).unwrap_or_else(|| {
        config.push(field);
        config.len() - 1
    })
}

pub(crate) fn made_up_example(ty: &Ty, name: &str) -> Value {
    match ty {
        Ty::I32 | Ty::I64 => Value::from(1),
        Ty::F64 => Value::from(1.5),
        Ty::Bool => Value::Bool(true),
        _ => Value::String(format!("example-{}", snake(name).replace('_', "-"))),
    }
}
