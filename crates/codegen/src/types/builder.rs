//! The type builder: schemas (inline or `$ref`) → type definitions, named once each.

use super::{Access, Def, Field, Resolved, Ty, TypeDef, is_secret_name};
use crate::error::SpecError;
use crate::names::pascal;
use crate::pointer;
use indexmap::IndexMap;
use openapiv3::{
    AdditionalProperties, AnySchema, IntegerFormat, ReferenceOr, Schema, SchemaKind, StringFormat,
    StringType, Type, VariantOrUnknownOrEmpty,
};
use std::collections::{HashMap, HashSet};

/// The merged members of an `allOf`.
#[derive(Default)]
struct ObjectParts {
    properties: IndexMap<String, ReferenceOr<Box<Schema>>>,
    required: Vec<String>,
    additional: Option<AdditionalProperties>,
}

impl ObjectParts {
    fn add(
        &mut self,
        properties: &IndexMap<String, ReferenceOr<Box<Schema>>>,
        required: &[String],
        additional: Option<&AdditionalProperties>,
    ) {
        self.properties
            .extend(properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.required.extend(
            required
                .iter()
                .filter(|r| !self.required.contains(r))
                .cloned()
                .collect::<Vec<_>>(),
        );
        if additional.is_some() {
            self.additional = additional.cloned();
        }
    }
}

/// Builds the types of one spec.
pub struct TypeBuilder<'a> {
    file: &'a str,
    components: Option<&'a IndexMap<String, ReferenceOr<Schema>>>,
    defs: IndexMap<String, TypeDef>,
    by_ref: HashMap<String, Resolved>,
    in_progress: HashSet<String>,
    reserved: HashSet<String>,
    /// The component whose top schema is being resolved now, until it claims a name.
    pending_ref: Option<String>,
    /// Components' type names, claimed before their definitions finish.
    ref_names: HashMap<String, String>,
}

/// A schema, inline or by reference.
#[derive(Clone, Copy)]
pub enum SchemaRef<'a> {
    /// `$ref`.
    Ref(&'a str),
    /// An inline schema.
    Inline(&'a Schema),
}

impl<'a> From<&'a ReferenceOr<Schema>> for SchemaRef<'a> {
    fn from(value: &'a ReferenceOr<Schema>) -> Self {
        match value {
            ReferenceOr::Reference { reference } => SchemaRef::Ref(reference),
            ReferenceOr::Item(schema) => SchemaRef::Inline(schema),
        }
    }
}

impl<'a> From<&'a ReferenceOr<Box<Schema>>> for SchemaRef<'a> {
    fn from(value: &'a ReferenceOr<Box<Schema>>) -> Self {
        match value {
            ReferenceOr::Reference { reference } => SchemaRef::Ref(reference),
            ReferenceOr::Item(schema) => SchemaRef::Inline(schema),
        }
    }
}

const COMPONENT_PREFIX: &str = "#/components/schemas/";

impl<'a> TypeBuilder<'a> {
    /// A builder for the spec in `file` with these component schemas.
    pub fn new(
        file: &'a str,
        components: Option<&'a IndexMap<String, ReferenceOr<Schema>>>,
    ) -> Self {
        Self {
            file,
            components,
            defs: IndexMap::new(),
            by_ref: HashMap::new(),
            in_progress: HashSet::new(),
            reserved: HashSet::new(),
            pending_ref: None,
            ref_names: HashMap::new(),
        }
    }

    /// The types defined so far, in definition order.
    pub fn finish(self) -> IndexMap<String, TypeDef> {
        self.defs
    }

    /// The definitions so far, by name.
    pub fn defs(&self) -> &IndexMap<String, TypeDef> {
        &self.defs
    }

    fn error(&self, pointer: &str, message: impl Into<String>) -> SpecError {
        SpecError::new(self.file, pointer, message)
    }

    /// Resolves a schema at `at`; a new type is named `hint` unless a component names it.
    pub fn resolve(
        &mut self,
        schema: SchemaRef<'_>,
        at: &str,
        hint: &str,
    ) -> Result<Resolved, SpecError> {
        match schema {
            SchemaRef::Ref(reference) => self.resolve_ref(reference, at),
            SchemaRef::Inline(schema) => self.resolve_inline(schema, at, hint),
        }
    }

    fn resolve_ref(&mut self, reference: &str, at: &str) -> Result<Resolved, SpecError> {
        let ref_at = pointer::join(at, "$ref");
        let Some(name) = reference.strip_prefix(COMPONENT_PREFIX) else {
            return Err(self
                .error(&ref_at, format!("unsupported $ref {reference:?}: only local references to #/components/schemas are read"))
                .hint("move the schema under components/schemas"));
        };
        if let Some(done) = self.by_ref.get(reference) {
            return Ok(done.clone());
        }
        let target = self.components.and_then(|c| c.get(name)).ok_or_else(|| {
            self.error(
                &ref_at,
                format!("dangling $ref: {reference:?} is not defined"),
            )
        })?;
        if !self.in_progress.insert(reference.to_owned()) {
            // A cycle: fine through an object (or oneOf) already named, whose field is boxed.
            return match self.ref_names.get(reference) {
                Some(named) => Ok(Resolved {
                    ty: Ty::Named(named.clone()),
                    nullable: false,
                    doc: None,
                    recursive: true,
                }),
                None => Err(self
                    .error(
                        &ref_at,
                        format!("the $ref cycle through {reference:?} never reaches an object"),
                    )
                    .hint(
                        "a recursive schema must recurse through an object's property or an array",
                    )),
            };
        }
        let component_at = format!("/components/schemas/{}", pointer::escape(name));
        self.pending_ref = Some(reference.to_owned());
        let resolved = match target {
            ReferenceOr::Reference { reference: next } => self.resolve_ref(next, &component_at),
            ReferenceOr::Item(schema) => self.resolve_inline(schema, &component_at, &pascal(name)),
        };
        self.pending_ref = None;
        self.in_progress.remove(reference);
        let resolved = resolved?;
        self.by_ref.insert(reference.to_owned(), resolved.clone());
        Ok(resolved)
    }

    fn resolve_inline(
        &mut self,
        schema: &Schema,
        at: &str,
        hint: &str,
    ) -> Result<Resolved, SpecError> {
        let data = &schema.schema_data;
        let doc = data.description.clone().or_else(|| data.title.clone());
        // Only an object or oneOf that is a component's own top schema takes its name early.
        let pending = self.pending_ref.take();
        let ty = match &schema.schema_kind {
            SchemaKind::Type(Type::String(s)) => self.string(s, at, hint, doc.clone()),
            SchemaKind::Type(Type::Integer(i)) => match i.format {
                VariantOrUnknownOrEmpty::Item(IntegerFormat::Int32) => Ty::I32,
                _ => Ty::I64,
            },
            SchemaKind::Type(Type::Number(_)) => Ty::F64,
            SchemaKind::Type(Type::Boolean(_)) => Ty::Bool,
            SchemaKind::Type(Type::Array(a)) => {
                let items_at = pointer::join(at, "items");
                let item = match &a.items {
                    Some(items) => {
                        self.resolve(items.into(), &items_at, &format!("{hint}Item"))?
                            .ty
                    }
                    None => Ty::Any,
                };
                Ty::Array(Box::new(item))
            }
            SchemaKind::Type(Type::Object(o)) => {
                self.pending_ref = pending;
                self.object(
                    &o.properties,
                    &o.required,
                    o.additional_properties.as_ref(),
                    at,
                    hint,
                    doc.clone(),
                )?
            }
            SchemaKind::OneOf { one_of } => {
                self.pending_ref = pending;
                self.one_of(one_of, at, hint, doc.clone())?
            }
            SchemaKind::Any(any) => self.untyped(any, at, hint, doc.clone(), pending)?,
            // 3.0's nullable (or described) reference: the referenced type itself.
            SchemaKind::AllOf { all_of }
                if matches!(all_of.as_slice(), [ReferenceOr::Reference { .. }]) =>
            {
                let member_at = pointer::join(&pointer::join(at, "allOf"), "0");
                let target = self.resolve((&all_of[0]).into(), &member_at, hint)?;
                return Ok(Resolved {
                    nullable: data.nullable || target.nullable,
                    doc: doc.or(target.doc),
                    ..target
                });
            }
            SchemaKind::AllOf { all_of } => {
                let mut merged = ObjectParts::default();
                self.merge_all_of(all_of, at, 0, &mut merged)?;
                self.pending_ref = pending;
                self.object(
                    &merged.properties,
                    &merged.required,
                    merged.additional.as_ref(),
                    at,
                    hint,
                    doc.clone(),
                )?
            }
            SchemaKind::AnyOf { .. } => return Err(self.unsupported(at, "anyOf")),
            SchemaKind::Not { .. } => return Err(self.unsupported(at, "not")),
        };
        Ok(Resolved {
            ty,
            nullable: data.nullable,
            doc,
            recursive: false,
        })
    }

    /// A string schema: an enum of its values, a secret (`format: password`), or text.
    fn string(&mut self, s: &StringType, at: &str, hint: &str, doc: Option<String>) -> Ty {
        let values: Vec<String> = s.enumeration.iter().flatten().cloned().collect();
        if !values.is_empty() {
            self.define(hint, doc, at, Def::Enum { values })
        } else if matches!(
            s.format,
            VariantOrUnknownOrEmpty::Item(StringFormat::Password)
        ) {
            Ty::Secret
        } else {
            Ty::String
        }
    }

    /// A schema without `type`: anything, or an object by its properties.
    fn untyped(
        &mut self,
        any: &AnySchema,
        at: &str,
        hint: &str,
        doc: Option<String>,
        pending: Option<String>,
    ) -> Result<Ty, SpecError> {
        if !any.one_of.is_empty()
            || !any.all_of.is_empty()
            || !any.any_of.is_empty()
            || any.not.is_some()
        {
            return Err(self
                .error(at, "a schema that mixes `type` or properties with oneOf/allOf/anyOf/not is not supported")
                .hint("move the shared properties into each oneOf variant"));
        }
        if any.properties.is_empty() {
            return Ok(Ty::Any);
        }
        self.pending_ref = pending;
        self.object(
            &any.properties,
            &any.required,
            any.additional_properties.as_ref(),
            at,
            hint,
            doc,
        )
    }

    /// The properties and required names of every `allOf` member, merged (later members win).
    fn merge_all_of(
        &self,
        members: &[ReferenceOr<Schema>],
        at: &str,
        depth: usize,
        merged: &mut ObjectParts,
    ) -> Result<(), SpecError> {
        let list_at = pointer::join(at, "allOf");
        for (i, member) in members.iter().enumerate() {
            let member_at = format!("{list_at}/{i}");
            let mut schema = member;
            let mut hops = 0;
            while let ReferenceOr::Reference { reference } = schema {
                let target = reference
                    .strip_prefix(COMPONENT_PREFIX)
                    .and_then(|name| self.components.and_then(|c| c.get(name)));
                schema = target.ok_or_else(|| {
                    self.error(
                        &pointer::join(&member_at, "$ref"),
                        format!("dangling $ref: {reference:?} is not defined"),
                    )
                })?;
                hops += 1;
                if hops > 32 || depth > 32 {
                    return Err(self.error(&member_at, "the allOf $refs form a cycle"));
                }
            }
            let ReferenceOr::Item(schema) = schema else {
                continue;
            };
            match &schema.schema_kind {
                SchemaKind::Type(Type::Object(o)) => {
                    merged.add(&o.properties, &o.required, o.additional_properties.as_ref())
                }
                SchemaKind::Any(any)
                    if !any.properties.is_empty()
                        && any.one_of.is_empty()
                        && any.all_of.is_empty() =>
                {
                    merged.add(
                        &any.properties,
                        &any.required,
                        any.additional_properties.as_ref(),
                    )
                }
                SchemaKind::AllOf { all_of } => {
                    self.merge_all_of(all_of, &member_at, depth + 1, merged)?
                }
                _ => {
                    return Err(self
                        .error(
                            &member_at,
                            "an allOf member must be an object schema (or an allOf of them)",
                        )
                        .hint("allOf combines objects; use oneOf for alternatives"));
                }
            }
        }
        Ok(())
    }

    fn unsupported(&self, at: &str, feature: &str) -> SpecError {
        self.error(at, format!("`{feature}` schemas are not supported yet"))
            .hint("see the support table in README.md")
    }

    fn object(
        &mut self,
        properties: &IndexMap<String, ReferenceOr<Box<Schema>>>,
        required: &[String],
        additional: Option<&AdditionalProperties>,
        at: &str,
        hint: &str,
        doc: Option<String>,
    ) -> Result<Ty, SpecError> {
        if properties.is_empty() {
            return Ok(Ty::Map);
        }
        for name in required {
            if !properties.contains_key(name) {
                return Err(self.error(
                    &pointer::join(at, "required"),
                    format!("required property {name:?} is not among the properties"),
                ));
            }
        }
        let name = self.reserve(hint);
        self.name_pending_ref(&name);
        let mut fields = Vec::new();
        let props_at = pointer::join(at, "properties");
        for (json, schema) in properties {
            let field_at = pointer::join(&props_at, json);
            let resolved =
                self.resolve(schema.into(), &field_at, &format!("{name}{}", pascal(json)))?;
            let ty = if resolved.ty == Ty::String && is_secret_name(json) {
                Ty::Secret
            } else {
                resolved.ty
            };
            fields.push(Field {
                json: json.clone(),
                ty,
                optional: resolved.nullable || !required.contains(json),
                doc: resolved.doc,
                boxed: resolved.recursive,
            });
        }
        let deny_unknown = matches!(additional, Some(AdditionalProperties::Any(false)));
        Ok(self.define_reserved(
            name,
            doc,
            at,
            Def::Struct {
                fields,
                deny_unknown,
            },
        ))
    }

    fn one_of(
        &mut self,
        schemas: &[ReferenceOr<Schema>],
        at: &str,
        hint: &str,
        doc: Option<String>,
    ) -> Result<Ty, SpecError> {
        let name = self.reserve(hint);
        self.name_pending_ref(&name);
        let mut variants: Vec<(String, Ty)> = Vec::new();
        let list_at = pointer::join(at, "oneOf");
        for (i, schema) in schemas.iter().enumerate() {
            let variant_at = format!("{list_at}/{i}");
            let resolved =
                self.resolve(schema.into(), &variant_at, &format!("{name}Variant{i}"))?;
            let variant = match &resolved.ty {
                Ty::Named(n) => n.clone(),
                Ty::String | Ty::Secret => "String".into(),
                Ty::Bool => "Boolean".into(),
                Ty::I32 | Ty::I64 => "Integer".into(),
                Ty::F64 => "Number".into(),
                Ty::Any => "Value".into(),
                Ty::Array(_) => "Array".into(),
                Ty::Map => "Object".into(),
            };
            if variants.iter().any(|(v, _)| *v == variant) {
                return Err(self.error(
                    &variant_at,
                    format!("two oneOf variants would both be named {variant}"),
                ));
            }
            variants.push((variant, resolved.ty));
        }
        if variants.is_empty() {
            return Err(self.error(&list_at, "oneOf needs at least one schema"));
        }
        Ok(self.define_reserved(name, doc, at, Def::OneOf { variants }))
    }

    /// Ties the component being resolved (if this is its top schema) to its type's name, so a
    /// reference back to it can name the type before it is finished.
    fn name_pending_ref(&mut self, name: &str) {
        if let Some(reference) = self.pending_ref.take() {
            self.ref_names.insert(reference, name.to_owned());
        }
    }

    /// Keeps `names` from ever naming a generated type.
    pub fn reserve_names(&mut self, names: &[&str]) {
        for name in names {
            self.reserved.insert((*name).to_owned());
        }
    }

    /// Claims a name for a type about to be defined: `hint`, or `hint2`, `hint3` … when taken.
    fn reserve(&mut self, hint: &str) -> String {
        let base = pascal(hint);
        let mut name = base.clone();
        let mut n = 2;
        while self.defs.contains_key(&name) || self.reserved.contains(&name) {
            name = format!("{base}{n}");
            n += 1;
        }
        // A placeholder keeps nested definitions from taking the name meanwhile.
        self.defs.insert(
            name.clone(),
            TypeDef {
                name: name.clone(),
                doc: None,
                pointer: String::new(),
                def: Def::Enum { values: Vec::new() },
            },
        );
        name
    }

    fn define(&mut self, hint: &str, doc: Option<String>, at: &str, def: Def) -> Ty {
        let name = self.reserve(hint);
        self.define_reserved(name, doc, at, def)
    }

    fn define_reserved(&mut self, name: String, doc: Option<String>, at: &str, def: Def) -> Ty {
        self.defs.insert(
            name.clone(),
            TypeDef {
                name: name.clone(),
                doc,
                pointer: at.to_owned(),
                def,
            },
        );
        Ty::Named(name)
    }

    /// How to reach `segments` from a value of type `ty`; an error message when it does not
    /// resolve.
    pub fn access(&self, ty: &Ty, segments: &[String]) -> Result<Access, String> {
        let Some((first, rest)) = segments.split_first() else {
            return Ok(Access::Leaf(ty.clone()));
        };
        let Ty::Named(name) = ty else {
            return Err(format!("{} has no property {first:?}", ty.describe()));
        };
        match &self.defs[name].def {
            Def::Struct { fields, .. } => {
                let field = fields
                    .iter()
                    .find(|f| f.json == *first)
                    .ok_or_else(|| format!("`{name}` has no property {first:?}"))?;
                Ok(Access::Field {
                    json: field.json.clone(),
                    optional: field.optional,
                    next: Box::new(self.access(&field.ty, rest)?),
                })
            }
            Def::OneOf { variants } => {
                let arms: Vec<(String, Option<Access>)> = variants
                    .iter()
                    .map(|(v, ty)| (v.clone(), self.access(ty, segments).ok()))
                    .collect();
                if arms.iter().all(|(_, a)| a.is_none()) {
                    return Err(format!("no variant of `{name}` has the property {first:?}"));
                }
                Ok(Access::Variants {
                    enum_name: name.clone(),
                    arms,
                })
            }
            Def::Enum { .. } => Err(format!("`{name}` is an enum and has no property {first:?}")),
        }
    }

    /// Makes the string field at the end of `segments` a secret, in every variant it is in.
    pub fn mark_secret(&mut self, ty: &Ty, segments: &[String]) {
        let (Ty::Named(name), Some((first, rest))) = (ty, segments.split_first()) else {
            return;
        };
        let next: Vec<Ty> = match &mut self.defs[name.as_str()].def {
            Def::Struct { fields, .. } => match fields.iter_mut().find(|f| f.json == *first) {
                Some(field) if rest.is_empty() => {
                    if field.ty == Ty::String {
                        field.ty = Ty::Secret;
                    }
                    Vec::new()
                }
                Some(field) => vec![field.ty.clone()],
                None => Vec::new(),
            },
            Def::OneOf { variants } => {
                let tys: Vec<Ty> = variants.iter().map(|(_, t)| t.clone()).collect();
                for t in tys {
                    self.mark_secret(&t, segments);
                }
                return;
            }
            Def::Enum { .. } => Vec::new(),
        };
        for t in next {
            self.mark_secret(&t, rest);
        }
    }
}
