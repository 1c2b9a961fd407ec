//! JSON schemas → the Rust types the generated client declares, and instance pointers → the
//! field accesses that reach a value in those types.

mod builder;

pub use builder::{SchemaRef, TypeBuilder};

use crate::names::pascal;
use indexmap::IndexMap;

/// A Rust type a field or body can have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ty {
    /// `String`.
    String,
    /// `tokenkit::Secret`: a string that never prints.
    Secret,
    /// `bool`.
    Bool,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `f64`.
    F64,
    /// `serde_json::Value`: a schema that does not constrain the type.
    Any,
    /// A generated type, by name.
    Named(String),
    /// `Vec<T>`.
    Array(Box<Ty>),
    /// `serde_json::Map` with values of this type (only `Any` values are supported).
    Map,
}

impl Ty {
    /// A short description for error messages.
    pub fn describe(&self) -> String {
        match self {
            Ty::String => "a string".into(),
            Ty::Secret => "a secret string".into(),
            Ty::Bool => "a boolean".into(),
            Ty::I32 | Ty::I64 => "an integer".into(),
            Ty::F64 => "a number".into(),
            Ty::Any => "an untyped value".into(),
            Ty::Named(name) => format!("the type `{name}`"),
            Ty::Array(_) => "an array".into(),
            Ty::Map => "a map".into(),
        }
    }
}

/// A field of a generated struct.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// The property name on the wire.
    pub json: String,
    /// The field's type, before `Option`.
    pub ty: Ty,
    /// True when the field is `Option<_>`: not required, or nullable.
    pub optional: bool,
    /// The property's description.
    pub doc: Option<String>,
    /// `Box<_>`: the field refers back to a type that contains it.
    pub boxed: bool,
}

/// A generated type.
#[derive(Clone, Debug, PartialEq)]
pub enum Def {
    /// An object schema.
    Struct {
        /// Fields in the schema's order.
        fields: Vec<Field>,
        /// `additionalProperties: false`.
        deny_unknown: bool,
    },
    /// A string schema with `enum`.
    Enum {
        /// The allowed values.
        values: Vec<String>,
    },
    /// A `oneOf`: the first variant that matches wins.
    OneOf {
        /// Variant names and types, in the schema's order.
        variants: Vec<(String, Ty)>,
    },
}

/// A generated type with its name and documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeDef {
    /// The Rust name.
    pub name: String,
    /// The schema's description or title.
    pub doc: Option<String>,
    /// Where the schema is, for errors.
    pub pointer: String,
    /// The shape.
    pub def: Def,
}

/// A resolved schema: its type and what its own keywords say.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The Rust type.
    pub ty: Ty,
    /// `nullable: true`.
    pub nullable: bool,
    /// The schema's description.
    pub doc: Option<String>,
    /// A reference back to a type still being defined: a field of it must be boxed.
    pub recursive: bool,
}

/// How to reach an instance pointer's target from a value of some type.
#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    /// The value itself.
    Leaf(Ty),
    /// A struct field, then the rest.
    Field {
        /// The property name on the wire.
        json: String,
        /// Whether the field is an `Option`.
        optional: bool,
        /// The rest of the path.
        next: Box<Access>,
    },
    /// A `oneOf`: the path continues in some variants and not in others.
    Variants {
        /// The enum's name.
        enum_name: String,
        /// Each variant, with the rest of the path where it resolves there.
        arms: Vec<(String, Option<Access>)>,
    },
}

impl Access {
    /// Whether a body that matches the schema may lack the value (an optional or nullable field
    /// on the way). Variants where the pointer does not resolve are other shapes (a failure
    /// envelope, say), not an absent value.
    pub fn may_be_absent(&self) -> bool {
        match self {
            Access::Leaf(_) => false,
            Access::Field { optional, next, .. } => *optional || next.may_be_absent(),
            Access::Variants { arms, .. } => arms
                .iter()
                .filter_map(|(_, a)| a.as_ref())
                .any(Access::may_be_absent),
        }
    }

    /// Every type the pointer can end at.
    pub fn leaves(&self) -> Vec<&Ty> {
        match self {
            Access::Leaf(ty) => vec![ty],
            Access::Field { next, .. } => next.leaves(),
            Access::Variants { arms, .. } => arms
                .iter()
                .filter_map(|(_, a)| a.as_ref())
                .flat_map(Access::leaves)
                .collect(),
        }
    }
}

/// The fields of a struct type, by name.
pub fn struct_fields<'a>(
    types: &'a IndexMap<String, TypeDef>,
    name: &str,
) -> &'a [crate::types::Field] {
    match types.get(name).map(|t| &t.def) {
        Some(Def::Struct { fields, .. }) => fields,
        _ => &[],
    }
}

/// The struct a body of type `ty` is (`""` for none, or a body that is not one struct).
pub(crate) fn body_struct(types: &IndexMap<String, TypeDef>, ty: Option<&Ty>) -> String {
    match ty {
        Some(Ty::Named(name))
            if matches!(types.get(name).map(|t| &t.def), Some(Def::Struct { .. })) =>
        {
            name.clone()
        }
        _ => String::new(),
    }
}

/// The enum and its only value, for a single-value string enum.
pub(crate) fn single_value(types: &IndexMap<String, TypeDef>, ty: &Ty) -> Option<(String, String)> {
    let Ty::Named(name) = ty else { return None };
    match &types.get(name)?.def {
        Def::Enum { values } if values.len() == 1 => Some((name.clone(), values[0].clone())),
        _ => None,
    }
}

/// Whether a mapping's `variant: want` names the `index`th `oneOf` variant, called `variant`,
/// of type `ty_name`: by the variant's name, its type's, its `title` (the type is named after
/// it), or its index (`"0"`), for inline variants that have no name of their own.
pub(crate) fn names_variant(want: &str, index: usize, variant: &str, ty_name: &str) -> bool {
    want == variant || want == ty_name || want == index.to_string() || pascal(want) == ty_name
}

/// Property names that hold credentials whatever the spec says: `*token`, `*secret`,
/// `*password`. `token_type` is not one.
pub(crate) fn is_secret_name(json: &str) -> bool {
    let lowered: String = json
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    ["token", "secret", "password"]
        .iter()
        .any(|s| lowered.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_is_named_by_name_type_title_or_index() {
        assert!(names_variant("Card", 0, "Card", "PayCard"));
        assert!(names_variant("PayCard", 0, "Card", "PayCard"));
        assert!(names_variant("pay card", 0, "Card", "PayCard"));
        assert!(names_variant("1", 1, "Variant1", "RequestVariant1"));
        assert!(!names_variant("0", 1, "Variant1", "RequestVariant1"));
    }

    #[test]
    fn secret_names() {
        assert!(is_secret_name("refreshToken"));
        assert!(is_secret_name("client_secret"));
        assert!(is_secret_name("token"));
        assert!(!is_secret_name("token_type"));
        assert!(!is_secret_name("expires_in"));
    }
}
