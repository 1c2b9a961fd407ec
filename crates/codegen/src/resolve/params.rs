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

/// What the parameters of one operation are read with.
pub(super) struct Reader<'r, 's> {
    pub(super) spec: &'r Spec,
    pub(super) op_pointer: &'r str,
    /// Where the refresh token goes (the refresh operation only).
    pub(super) place: Option<&'r RefreshPlace>,
    pub(super) fixed: &'r Fixed<'r>,
    pub(super) types: &'r mut TypeBuilder<'s>,
    pub(super) config: &'r mut Vec<ConfigField>,
    pub(super) errors: &'r mut SpecErrors,
}

/// A declared parameter, as far as the reader has got with it.
struct Declared<'p> {
    location: Location,
    data: &'p openapiv3::ParameterData,
    /// The parameter's pointer.
    at: String,
}

impl Declared<'_> {
    fn param(&self, schema_pointer: String, value: ParamValue) -> Param {
        Param {
            location: self.location,
            name: self.data.name.clone(),
            required: self.data.required,
            schema_pointer,
            value,
        }
    }

    fn schema_at(&self) -> String {
        pointer::join(&self.at, "schema")
    }
}

impl Reader<'_, '_> {
    fn error(&mut self, at: &str, message: impl Into<String>) {
        self.errors
            .push(SpecError::new(&self.spec.file, at, message));
    }

    /// The operation's header, query and path parameters, each a constant, a value made fresh,
    /// the refresh token or a per-client value; every `set` or `generate` key that names a
    /// parameter names one of them.
    pub(super) fn params(&mut self, op: &OaOperation) -> Vec<Param> {
        let mut out = Vec::new();
        let mut declared = Vec::new();
        for (i, param) in op.parameters.iter().enumerate() {
            let at = format!("{}/parameters/{i}", self.op_pointer);
            let Some(found) = self.declared(at, param) else {
                continue;
            };
            declared.push((found.location, found.data.name.clone()));
            if let Some(param) = self.param(&found) {
                out.push(param);
            }
        }
        self.fixed
            .check_unmatched(&self.spec.file, &declared, self.errors);
        out
    }

    /// A parameter's place and data; `None` for what a token operation cannot have.
    fn declared<'p>(
        &mut self,
        at: String,
        param: &'p ReferenceOr<Parameter>,
    ) -> Option<Declared<'p>> {
        let ReferenceOr::Item(param) = param else {
            self.errors.push(
                SpecError::new(&self.spec.file, &at, "a $ref parameter is not supported")
                    .hint("write the parameter inline"),
            );
            return None;
        };
        let (location, data) = match param {
            Parameter::Header { parameter_data, .. } => (Location::Header, parameter_data),
            Parameter::Query { parameter_data, .. } => (Location::Query, parameter_data),
            Parameter::Path { parameter_data, .. } => (Location::Path, parameter_data),
            Parameter::Cookie { .. } => {
                self.errors.push(
                    SpecError::new(
                        &self.spec.file,
                        &pointer::join(&at, "in"),
                        "cookie parameters are not supported",
                    )
                    .hint(
                        "token endpoints take headers, query parameters, path segments and bodies",
                    ),
                );
                return None;
            }
        };
        Some(Declared { location, data, at })
    }

    /// One parameter, modelled; `None` when it is ignored or wrong (the error reported).
    fn param(&mut self, found: &Declared<'_>) -> Option<Param> {
        let (location, data) = (found.location, found.data);
        if location == Location::Header && !super::auth::is_http_token(&data.name) {
            self.error(
                &pointer::join(&found.at, "name"),
                format!("{:?} is not a valid HTTP header name", data.name),
            );
            return None;
        }
        // OpenAPI 3.0: header parameters named Accept, Content-Type or Authorization are ignored.
        if location == Location::Header
            && ["accept", "content-type", "authorization"]
                .contains(&data.name.to_ascii_lowercase().as_str())
        {
            return None;
        }
        let ParameterSchemaOrContent::Schema(schema) = &data.format else {
            self.errors.push(
                SpecError::new(
                    &self.spec.file,
                    &pointer::join(&found.at, "content"),
                    "parameters with `content` are not supported",
                )
                .hint("use `schema`"),
            );
            return None;
        };
        if let Some((key, kind)) = self.fixed.generated(location, &data.name) {
            return self.generated(found, schema, key, kind);
        }
        if let Some((key, value)) = self.fixed.value(location, &data.name) {
            return self.constant(found, key, value);
        }
        if let ReferenceOr::Item(s) = schema
            && let SchemaKind::Type(Type::String(st)) = &s.schema_kind
            && let [Some(only)] = st.enumeration.as_slice()
        {
            return Some(found.param(found.schema_at(), ParamValue::Constant(only.clone())));
        }
        let ty = match self
            .types
            .resolve(schema.into(), &found.schema_at(), &data.name)
        {
            Ok(r) => r.ty,
            Err(e) => {
                self.errors.push(e);
                return None;
            }
        };
        if self.carries_token(location, &data.name) {
            return Some(self.token(found, &ty));
        }
        self.per_client(found, schema, ty)
    }

    /// A parameter the mapping's `generate` makes fresh for every request.
    fn generated(
        &mut self,
        found: &Declared<'_>,
        schema: &ReferenceOr<openapiv3::Schema>,
        key: &str,
        kind: GenerateKind,
    ) -> Option<Param> {
        let (location, data) = (found.location, found.data);
        let here = pointer::join(&pointer::join(&self.fixed.at, "generate"), key);
        let schema_at = found.schema_at();
        let ty = self.types.resolve(schema.into(), &schema_at, &data.name);
        match ty.map(|r| r.ty) {
            Ok(ty) if location != Location::Path && kind.fits(&ty).is_some() => {
                return Some(found.param(schema_at, ParamValue::Generated(kind)));
            }
            Ok(ty) => self.errors.push(
                SpecError::new(
                    &self.spec.file,
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
            Err(e) => self.errors.push(e),
        }
        None
    }

    /// A parameter the mapping's `set` fixes: a string, number or boolean its schema allows.
    fn constant(&mut self, found: &Declared<'_>, key: &str, value: &Value) -> Option<Param> {
        let here = pointer::join(&pointer::join(&self.fixed.at, "set"), key);
        let text = match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        let schema_json = self
            .spec
            .json
            .pointer(&found.schema_at())
            .cloned()
            .unwrap_or(Value::Null);
        let fits = text.is_some()
            && crate::validate::validate(&self.spec.json, &schema_json, value).is_empty();
        match text.filter(|_| fits) {
            Some(text) => Some(found.param(found.schema_at(), ParamValue::Constant(text))),
            None => {
                self.error(
                    &here,
                    format!(
                        "{value} is not a value parameter {:?} can take; `set` fixes a parameter to a string, number or boolean its schema allows",
                        found.data.name
                    ),
                );
                None
            }
        }
    }

    /// Whether the parameter at `location` named `name` is where the refresh token goes.
    fn carries_token(&self, location: Location, name: &str) -> bool {
        match self.place {
            Some(RefreshPlace::Query { name: token }) => {
                location == Location::Query && token == name
            }
            Some(RefreshPlace::Header { name: token, .. }) => {
                location == Location::Header && token.eq_ignore_ascii_case(name)
            }
            _ => false,
        }
    }

    /// The parameter that carries the refresh token: a string.
    fn token(&mut self, found: &Declared<'_>, ty: &Ty) -> Param {
        if !matches!(ty, Ty::String | Ty::Secret) {
            self.error(
                &found.schema_at(),
                format!(
                    "parameter {:?} carries the refresh token, so it must be a string, not {}",
                    found.data.name,
                    ty.describe()
                ),
            );
        }
        found.param(found.schema_at(), ParamValue::RefreshToken)
    }

    /// A per-client value: a string, number or boolean the user gives the builder.
    fn per_client(
        &mut self,
        found: &Declared<'_>,
        schema: &ReferenceOr<openapiv3::Schema>,
        ty: Ty,
    ) -> Option<Param> {
        let data = found.data;
        if !matches!(
            ty,
            Ty::String | Ty::Secret | Ty::I32 | Ty::I64 | Ty::F64 | Ty::Bool
        ) {
            self.error(
                &found.schema_at(),
                format!(
                    "parameter {:?} is {}; only strings, numbers and booleans are supported",
                    data.name,
                    ty.describe()
                ),
            );
            return None;
        }
        let trimmed = data
            .name
            .strip_prefix("X-")
            .or_else(|| data.name.strip_prefix("x-"))
            .unwrap_or(&data.name);
        let example = data.example.clone().or_else(|| schema_example(schema));
        // A client secret or key in the query string is a secret like one in the body.
        let ty = match ty {
            Ty::String if crate::types::is_secret_name(&data.name) => Ty::Secret,
            ty => ty,
        };
        let index = push_config(
            self.config,
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
        Some(found.param(found.schema_at(), ParamValue::Config(index)))
    }
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
