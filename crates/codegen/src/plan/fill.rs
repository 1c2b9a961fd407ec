//! How each request fills its struct's fields, and the body that carries them.

use crate::error::{SpecError, SpecErrors};
use crate::map::RequestPlan;
use crate::model::{Body, BodyFill, ConfigField, FillSource, is_form, made_up_example};
use crate::names::snake;
use crate::resolve::BodyParts;
use crate::types::{Def, Ty, TypeBuilder, TypeDef, single_value, struct_fields};
use indexmap::IndexMap;
use serde_json::Value;

/// The request a body carries by default: its `oneOf` wrapper, its struct and its fill.
pub(super) type Slot = (Option<(String, String)>, String, Vec<BodyFill>);

impl BodyParts {
    /// The body, once the requests it carries are known: `slot` is the `oneOf` wrapper, the
    /// struct and the fill of the operation's own request; a form body's fields are checked
    /// in every struct of `structs` (its own and the grants' that share the operation).
    pub(super) fn into_body(
        self,
        file: &str,
        types: &TypeBuilder<'_>,
        structs: &[&str],
        (wrap, struct_name, fill): Slot,
        errors: &mut SpecErrors,
    ) -> Body {
        if is_form(&self.media_type) {
            for name in structs {
                check_form_fields(file, &self.schema_pointer, types.defs(), name, errors);
            }
        }
        Body {
            media_type: self.media_type,
            ty: self.ty,
            example: self.example,
            schema_pointer: self.schema_pointer,
            wrap,
            struct_name,
            fill,
        }
    }
}

/// Fills every request's fields. A field another request on the same struct fills itself
/// (its token, code or fixed value) is left out of this one, so it must be optional; so is
/// an optional field of a shared struct that no request fills (it may be any grant's), unless
/// it is a constant (a single-value enum), the client's own (`client_id`, `client_secret`:
/// RFC 6749 §2.3.1), or the mapping names it in `per-client`.
pub(super) fn fill_all(
    file: &str,
    types: &IndexMap<String, TypeDef>,
    plans: &[RequestPlan],
    example: Option<&Value>,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> Vec<Vec<BodyFill>> {
    plans
        .iter()
        .map(|plan| {
            let sharing = plans
                .iter()
                .filter(|other| other.struct_name == plan.struct_name);
            let mut foreign: Vec<&str> = sharing
                .clone()
                .flat_map(|other| other.own.iter().map(|(json, _)| json.as_str()))
                .filter(|json| !plan.own.iter().any(|(own, _)| own == json))
                .collect();
            if sharing.count() > 1 {
                foreign.extend(
                    struct_fields(types, &plan.struct_name)
                        .iter()
                        .filter(|f| f.optional && !per_client(plan, &f.json))
                        // A single-value enum is a constant every request may carry.
                        .filter(|f| single_value(types, &f.ty).is_none())
                        .filter(|f| !plan.own.iter().any(|(own, _)| *own == f.json))
                        .map(|f| f.json.as_str()),
                );
            }
            for field in struct_fields(types, &plan.struct_name) {
                if !field.optional && foreign.contains(&field.json.as_str()) {
                    errors.push(SpecError::new(
                        file,
                        &plan.at,
                        format!(
                            "{:?} is required in {}, but this request has no value for it (another request fills it)",
                            field.json, plan.struct_name
                        ),
                    )
                    .hint("make it optional, give each grant its own oneOf variant, or fix it with `set`"),
                    );
                }
            }
            body_fill(types, &plan.struct_name, &plan.own, &foreign, example, config)
        })
        .collect()
}

/// Whether a shared body's optional `json` is a per-client value of `plan`.
fn per_client(plan: &RequestPlan, json: &str) -> bool {
    matches!(json, "client_id" | "client_secret") || plan.per_client.iter().any(|v| v == json)
}

/// How each field of a request struct is filled: `own` are the values this request sets
/// itself, `foreign` the fields other requests set (left out here); every other field is a
/// constant (a single-value enum) or a per-client value, added to `config` once by name.
fn body_fill(
    types: &IndexMap<String, TypeDef>,
    struct_name: &str,
    own: &[(String, FillSource)],
    foreign: &[&str],
    example: Option<&Value>,
    config: &mut Vec<ConfigField>,
) -> Vec<BodyFill> {
    struct_fields(types, struct_name)
        .iter()
        .map(|field| {
            let source = if let Some((_, source)) = own.iter().find(|(j, _)| *j == field.json) {
                source.clone()
            } else if foreign.contains(&field.json.as_str()) {
                FillSource::Omit
            } else if let Some((enum_name, value)) = single_value(types, &field.ty) {
                FillSource::Constant { enum_name, value }
            } else {
                let name = snake(&field.json);
                // One value however many places send it (HTTP Basic's `client_id` and a body
                // `client_id`; a field required by one request and optional in another): a
                // value some request requires is required of the builder.
                let known = config
                    .iter()
                    .position(|c| c.name == name && c.ty == field.ty);
                if let Some(i) = known
                    && !field.optional
                {
                    config[i].required = true;
                }
                FillSource::Config(known.unwrap_or_else(|| {
                    let example = example
                        .and_then(|e| e.get(&field.json))
                        .cloned()
                        .unwrap_or_else(|| made_up_example(&field.ty, &field.json));
                    config.push(ConfigField {
                        name,
                        ty: field.ty.clone(),
                        required: !field.optional,
                        doc: field.doc.clone(),
                        example,
                        kept: false,
                        copy: false,
                    });
                    config.len() - 1
                }))
            };
            BodyFill {
                json: field.json.clone(),
                source,
                optional: field.optional,
            }
        })
        .collect()
}

/// A form body is a flat list of fields: each must be a string, number, boolean or enum.
fn check_form_fields(
    file: &str,
    schema_pointer: &str,
    types: &IndexMap<String, TypeDef>,
    struct_name: &str,
    errors: &mut SpecErrors,
) {
    for field in struct_fields(types, struct_name) {
        let flat = match &field.ty {
            Ty::String | Ty::Secret | Ty::Bool | Ty::I32 | Ty::I64 | Ty::F64 => true,
            Ty::Named(name) => matches!(types.get(name).map(|t| &t.def), Some(Def::Enum { .. })),
            _ => false,
        };
        if !flat {
            errors.push(SpecError::new(
                file,
                schema_pointer,
                format!(
                    "form field {:?} is {}; form bodies take strings, numbers, booleans and enums",
                    field.json,
                    field.ty.describe()
                ),
            ));
        }
    }
}
