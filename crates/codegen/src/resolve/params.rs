//! The operation's header, query and path parameters: each a constant, a value made fresh, the
//! refresh token, or a per-client value.

use crate::error::{SpecError, SpecErrors};
use crate::extension::{GENERATE_HINT, GenerateKind};
use crate::model::{
    ConfigField, Location, Param, ParamValue, RefreshPlace, made_up_example, push_config,
};
use crate::names::snake;
use crate::pointer;
use crate::read::Spec;
use crate::types::{Ty, TypeBuilder};
use indexmap::IndexMap;
use openapiv3::{
    Operation as OaOperation, Parameter, ParameterSchemaOrContent, ReferenceOr, SchemaKind, Type,
};
use serde_json::Value;

/// A mapping's `set` values, of which those whose key is a name rather than a body pointer
/// (`grant_type`, not `/grant_type`) fix a query, header or path parameter of the operation.
pub(super) struct Fixed<'a> {
    /// Where the mapping's `request` is, for errors.
    pub(super) at: String,
    /// The `set` values, as written.
    pub(super) values: &'a IndexMap<String, Value>,
    /// The `generate` entries, as written.
    pub(super) generate: &'a IndexMap<String, GenerateKind>,
}

impl Fixed<'_> {
    /// What `generate` makes fresh for the parameter `name` at `location`.
    fn generated(&self, location: Location, name: &str) -> Option<(&str, GenerateKind)> {
        self.generate.iter().find_map(|(key, kind)| {
            let same = match location {
                Location::Header => key.eq_ignore_ascii_case(name),
                _ => key == name,
            };
            same.then_some((key.as_str(), *kind))
        })
    }

    /// The value `set` gives the parameter `name` at `location` (header names ignore case).
    fn value(&self, location: Location, name: &str) -> Option<(&str, &Value)> {
        self.values.iter().find_map(|(key, value)| {
            let same = match location {
                Location::Header => key.eq_ignore_ascii_case(name),
                _ => key == name,
            };
            same.then_some((key.as_str(), value))
        })
    }

    /// Every key naming a parameter that is not one of those `declared`.
    fn check_unmatched(
        &self,
        file: &str,
        declared: &[(Location, String)],
        errors: &mut SpecErrors,
    ) {
        let at = &self.at;
        let keys = (self.values.keys().map(|k| ("set", k)))
            .chain(self.generate.keys().map(|k| ("generate", k)));
        for (map, key) in keys.filter(|(_, k)| !k.starts_with('/')) {
            let found = declared.iter().any(|(location, name)| match location {
                Location::Header => name.eq_ignore_ascii_case(key),
                _ => name == key,
            });
            if !found {
                errors.push(
                    SpecError::new(
                        file,
                        &pointer::join(&pointer::join(at, map), key),
                        format!(
                            "the operation declares no query, header or path parameter {key:?}"
                        ),
                    )
                    .hint(format!("a body property is written as a pointer: `/{key}`")),
                );
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn params(
    spec: &Spec,
    op_pointer: &str,
    op: &OaOperation,
    place: Option<&RefreshPlace>,
    fixed: &Fixed<'_>,
    types: &mut TypeBuilder<'_>,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> Vec<Param> {
    let mut out = Vec::new();
    let mut declared = Vec::new();
    for (i, param) in op.parameters.iter().enumerate() {
        let at = format!("{op_pointer}/parameters/{i}");
        let ReferenceOr::Item(param) = param else {
            errors.push(
                SpecError::new(&spec.file, &at, "a $ref parameter is not supported")
                    .hint("write the parameter inline"),
            );
            continue;
        };
        let (location, data) = match param {
            Parameter::Header { parameter_data, .. } => (Location::Header, parameter_data),
            Parameter::Query { parameter_data, .. } => (Location::Query, parameter_data),
            Parameter::Path { parameter_data, .. } => (Location::Path, parameter_data),
            Parameter::Cookie { .. } => {
                errors.push(
                    SpecError::new(
                        &spec.file,
                        &pointer::join(&at, "in"),
                        "cookie parameters are not supported",
                    )
                    .hint(
                        "token endpoints take headers, query parameters, path segments and bodies",
                    ),
                );
                continue;
            }
        };
        declared.push((location, data.name.clone()));
        if location == Location::Header && !super::auth::is_http_token(&data.name) {
            errors.push(SpecError::new(
                &spec.file,
                &pointer::join(&at, "name"),
                format!("{:?} is not a valid HTTP header name", data.name),
            ));
            continue;
        }
        // OpenAPI 3.0: header parameters named Accept, Content-Type or Authorization are ignored.
        if location == Location::Header
            && ["accept", "content-type", "authorization"]
                .contains(&data.name.to_ascii_lowercase().as_str())
        {
            continue;
        }
        let ParameterSchemaOrContent::Schema(schema) = &data.format else {
            errors.push(
                SpecError::new(
                    &spec.file,
                    &pointer::join(&at, "content"),
                    "parameters with `content` are not supported",
                )
                .hint("use `schema`"),
            );
            continue;
        };
        if let Some((key, kind)) = fixed.generated(location, &data.name) {
            let here = pointer::join(&pointer::join(&fixed.at, "generate"), key);
            let schema_at = pointer::join(&at, "schema");
            let ty = types
                .resolve(schema.into(), &schema_at, &data.name)
                .map(|r| r.ty);
            match ty {
                Ok(ty) if location != Location::Path && kind.fits(&ty).is_some() => {
                    out.push(Param {
                        location,
                        name: data.name.clone(),
                        required: data.required,
                        schema_pointer: schema_at,
                        value: ParamValue::Generated(kind),
                    })
                }
                Ok(ty) => errors.push(
                    SpecError::new(
                        &spec.file,
                        &here,
                        format!(
                            "parameter {:?} ({}, in the {}) cannot carry a fresh {}",
                            data.name,
                            ty.describe(),
                            if location == Location::Path {
                                "path"
                            } else {
                                "request"
                            },
                            kind.key()
                        ),
                    )
                    .hint(GENERATE_HINT),
                ),
                Err(e) => errors.push(e),
            }
            continue;
        }
        if let Some((key, value)) = fixed.value(location, &data.name) {
            let here = pointer::join(&pointer::join(&fixed.at, "set"), key);
            let text = match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            let schema_json = spec
                .json
                .pointer(&pointer::join(&at, "schema"))
                .cloned()
                .unwrap_or(Value::Null);
            let fits = text.is_some()
                && crate::validate::validate(&spec.json, &schema_json, value).is_empty();
            match text.filter(|_| fits) {
                Some(text) => out.push(Param {
                    location,
                    name: data.name.clone(),
                    required: data.required,
                    schema_pointer: pointer::join(&at, "schema"),
                    value: ParamValue::Constant(text),
                }),
                None => errors.push(SpecError::new(
                    &spec.file,
                    &here,
                    format!(
                        "{value} is not a value parameter {:?} can take; `set` fixes a parameter to a string, number or boolean its schema allows",
                        data.name
                    ),
                )),
            }
            continue;
        }
        if let ReferenceOr::Item(s) = schema
            && let SchemaKind::Type(Type::String(st)) = &s.schema_kind
            && let [Some(only)] = st.enumeration.as_slice()
        {
            out.push(Param {
                location,
                name: data.name.clone(),
                required: data.required,
                schema_pointer: pointer::join(&at, "schema"),
                value: ParamValue::Constant(only.clone()),
            });
            continue;
        }
        let schema_at = pointer::join(&at, "schema");
        let resolved = match types.resolve(schema.into(), &schema_at, &data.name) {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let carries_token = match place {
            Some(RefreshPlace::Query { name }) => location == Location::Query && *name == data.name,
            Some(RefreshPlace::Header { name, .. }) => {
                location == Location::Header && name.eq_ignore_ascii_case(&data.name)
            }
            _ => false,
        };
        if carries_token {
            if !matches!(resolved.ty, Ty::String | Ty::Secret) {
                errors.push(SpecError::new(
                    &spec.file,
                    &schema_at,
                    format!(
                        "parameter {:?} carries the refresh token, so it must be a string, not {}",
                        data.name,
                        resolved.ty.describe()
                    ),
                ));
            }
            out.push(Param {
                location,
                name: data.name.clone(),
                required: data.required,
                schema_pointer: schema_at,
                value: ParamValue::RefreshToken,
            });
            continue;
        }
        if !matches!(
            resolved.ty,
            Ty::String | Ty::Secret | Ty::I32 | Ty::I64 | Ty::F64 | Ty::Bool
        ) {
            errors.push(SpecError::new(
                &spec.file,
                &schema_at,
                format!(
                    "parameter {:?} is {}; only strings, numbers and booleans are supported",
                    data.name,
                    resolved.ty.describe()
                ),
            ));
            continue;
        }
        let trimmed = data
            .name
            .strip_prefix("X-")
            .or_else(|| data.name.strip_prefix("x-"))
            .unwrap_or(&data.name);
        let example = data.example.clone().or_else(|| schema_example(schema));
        // A client secret or key in the query string is a secret like one in the body.
        let ty = match resolved.ty {
            Ty::String if crate::types::is_secret_name(&data.name) => Ty::Secret,
            ty => ty,
        };
        let index = push_config(
            config,
            ConfigField {
                name: snake(trimmed),
                example: example.unwrap_or_else(|| made_up_example(&ty, trimmed)),
                kept: false,
                copy: false,
                ty,
                required: data.required,
                doc: data.description.clone(),
            },
        );
        out.push(Param {
            location,
            name: data.name.clone(),
            required: data.required,
            schema_pointer: schema_at,
            value: ParamValue::Config(index),
        });
    }
    fixed.check_unmatched(&spec.file, &declared, errors);
    out
}

fn schema_example(schema: &ReferenceOr<openapiv3::Schema>) -> Option<Value> {
    match schema {
        ReferenceOr::Item(s) => s
            .schema_data
            .example
            .clone()
            .or_else(|| s.schema_data.default.clone()),
        ReferenceOr::Reference { .. } => None,
    }
}

/// Every `{name}` of the path has a path parameter, and every path parameter a `{name}`.
pub(super) fn check_path(
    spec: &Spec,
    op_pointer: &str,
    path: &str,
    params: &[Param],
    errors: &mut SpecErrors,
) {
    let placeholders: Vec<&str> = path
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect();
    let path_params: Vec<&Param> = params
        .iter()
        .filter(|p| p.location == Location::Path)
        .collect();
    for name in &placeholders {
        if !path_params.iter().any(|p| p.name == *name) {
            errors.push(
                SpecError::new(
                    &spec.file,
                    op_pointer,
                    format!("the path has {{{name}}} but no path parameter {name:?}"),
                )
                .hint("declare it under `parameters` with `in: path`"),
            );
        }
    }
    for param in path_params {
        if !placeholders.contains(&param.name.as_str()) {
            errors.push(SpecError::new(
                &spec.file,
                &param.schema_pointer,
                format!(
                    "path parameter {:?} does not appear in the path {path:?}",
                    param.name
                ),
            ));
        }
    }
}
