//! The requests an operation sends besides answers: which struct each fills, and the values
//! it fills itself (per-call values, fixed ones, generated ones, the client assertion).

use crate::error::{SpecError, SpecErrors};
use crate::extension::{GENERATE_HINT, GrantKind, GrantMapping};
use crate::model::{FillSource, GrantArg};
use crate::pointer;
use crate::types::{Def, Ty, TypeBuilder, TypeDef, names_variant, struct_fields};
use indexmap::IndexMap;
use serde_json::Value;

/// One request the operation sends, before its fields are filled: the refresh, or a grant.
pub(crate) struct RequestPlan {
    /// `None` for the refresh.
    pub(crate) kind: Option<GrantKind>,
    pub(crate) wrap: Option<(String, String)>,
    pub(crate) struct_name: String,
    /// The fields this request fills itself: per-call values and fixed ones.
    pub(crate) own: Vec<(String, FillSource)>,
    /// Optional fields of a shared body this request sends as per-client values
    /// (the mapping's `per-client`).
    pub(crate) per_client: Vec<String>,
    /// Where its mapping is, for errors.
    pub(crate) at: String,
}

/// The struct a request of a body of type `body_ty` fills: the body's struct, or the `oneOf`
/// variant named `variant` (by variant or schema name).
fn slot(
    types: &IndexMap<String, TypeDef>,
    body_ty: &Ty,
    variant: Option<&str>,
) -> Result<(Option<(String, String)>, String), String> {
    let Ty::Named(name) = body_ty else {
        return Err("the request body must be an object or a oneOf of objects".into());
    };
    match (&types[name].def, variant) {
        (Def::Struct { .. }, None) => Ok((None, name.clone())),
        (Def::Struct { .. }, Some(v)) if v == name => Ok((None, name.clone())),
        (Def::Struct { .. }, Some(v)) => Err(format!(
            "variant {v:?}: the request body is one object ({name}), not a oneOf"
        )),
        (Def::OneOf { .. }, None) => {
            Err("the request body is a oneOf: say which `variant` this grant sends".into())
        }
        (Def::OneOf { variants }, Some(v)) => variants
            .iter()
            .enumerate()
            .find_map(|(i, (variant_name, ty))| match ty {
                Ty::Named(n)
                    if names_variant(v, i, variant_name, n)
                        && matches!(types[n].def, Def::Struct { .. }) =>
                {
                    Some((Some((name.clone(), variant_name.clone())), n.clone()))
                }
                _ => None,
            })
            .ok_or_else(|| {
                let names: Vec<&str> = variants.iter().map(|(n, _)| n.as_str()).collect();
                format!("no object variant {v:?} in the request body's oneOf; it has {names:?}")
            }),
        (Def::Enum { .. }, _) => {
            Err("the request body must be an object or a oneOf of objects".into())
        }
    }
}

/// The one top-level property `ptr` names in `struct_name`.
fn top_level(
    types: &TypeBuilder<'_>,
    struct_name: &str,
    ptr: &str,
) -> Result<crate::types::Field, String> {
    match pointer::segments(ptr) {
        Some(s) if s.len() == 1 => struct_fields(types.defs(), struct_name)
            .iter()
            .find(|f| f.json == s[0])
            .cloned()
            .ok_or_else(|| format!("{ptr:?} is not a property of {struct_name}")),
        _ => Err(format!(
            "{ptr:?} must point at a top-level property, like `/code`"
        )),
    }
}

/// Fixed values (`set`) of one request: an enum property takes one of its values, a string
/// property any text.
pub(super) fn fixed(
    file: &str,
    at: &str,
    types: &TypeBuilder<'_>,
    struct_name: &str,
    set: &IndexMap<String, Value>,
    errors: &mut SpecErrors,
) -> Vec<(String, FillSource)> {
    let mut out = Vec::new();
    // A key without the leading `/` names a parameter (`model::request::Fixed`).
    for (ptr, value) in set.iter().filter(|(k, _)| k.starts_with('/')) {
        let here = pointer::join(&pointer::join(at, "set"), ptr.trim_start_matches('/'));
        let field = match top_level(types, struct_name, ptr) {
            Ok(f) => f,
            Err(reason) => {
                errors.push(SpecError::new(file, &here, reason));
                continue;
            }
        };
        let text = value.as_str().map(str::to_owned);
        let source = match (&field.ty, text) {
            (Ty::Named(e), Some(text)) => match &types.defs()[e].def {
                Def::Enum { values } if values.contains(&text) => Some(FillSource::Constant {
                    enum_name: e.clone(),
                    value: text,
                }),
                _ => None,
            },
            (Ty::String, Some(text)) => Some(FillSource::Literal(text)),
            _ => None,
        };
        match source {
            Some(source) => out.push((field.json, source)),
            None => errors.push(SpecError::new(
                file,
                &here,
                format!(
                    "{value} is not a value {ptr:?} ({}) can take; `set` fixes strings and enum values",
                    field.ty.describe()
                ),
            )),
        }
    }
    out
}

/// Values made fresh for every request (`generate`) of one request's body: a placeholder the
/// endpoint writes over. Keys without the leading `/` name parameters (`model::request::Fixed`).
pub(super) fn generated(
    file: &str,
    at: &str,
    types: &TypeBuilder<'_>,
    struct_name: &str,
    generate: &IndexMap<String, crate::extension::GenerateKind>,
    errors: &mut SpecErrors,
) -> Vec<(String, FillSource)> {
    let mut out = Vec::new();
    for (ptr, kind) in generate.iter().filter(|(k, _)| k.starts_with('/')) {
        let here = pointer::join(&pointer::join(at, "generate"), ptr.trim_start_matches('/'));
        match top_level(types, struct_name, ptr) {
            Ok(field) => match kind.fits(&field.ty) {
                Some(as_text) => out.push((
                    field.json,
                    FillSource::Generated {
                        kind: *kind,
                        as_text,
                    },
                )),
                None => errors.push(
                    SpecError::new(
                        file,
                        &here,
                        format!(
                            "{ptr:?} is {}, which cannot hold a {}",
                            field.ty.describe(),
                            kind.key()
                        ),
                    )
                    .hint(GENERATE_HINT),
                ),
            },
            Err(reason) => errors.push(SpecError::new(file, &here, reason)),
        }
    }
    out
}

/// `private_key_jwt`: the body property `ptr` that carries the signed client assertion (a
/// secret), filled by every request of `plans` whose struct has it, the first's at least.
pub(super) fn client_assertion(
    file: &str,
    at: &str,
    types: &mut TypeBuilder<'_>,
    plans: &mut [RequestPlan],
    ptr: &str,
    errors: &mut SpecErrors,
) -> Option<String> {
    let first = plans.first()?;
    if first.struct_name.is_empty() {
        errors.push(SpecError::new(
            file,
            at,
            "a client assertion travels in the request body, and the operation has none",
        ));
        return None;
    }
    let field = match top_level(types, &first.struct_name, ptr) {
        Ok(field) if matches!(field.ty, Ty::String | Ty::Secret) => field,
        Ok(field) => {
            errors.push(SpecError::new(
                file,
                at,
                format!("{ptr:?} must be a string, not {}", field.ty.describe()),
            ));
            return None;
        }
        Err(reason) => {
            errors.push(SpecError::new(file, at, reason));
            return None;
        }
    };
    for plan in plans.iter_mut() {
        if struct_fields(types.defs(), &plan.struct_name)
            .iter()
            .any(|f| f.json == field.json)
        {
            types.mark_secret(
                &Ty::Named(plan.struct_name.clone()),
                std::slice::from_ref(&field.json),
            );
            plan.own
                .push((field.json.clone(), FillSource::ClientAssertion));
        }
    }
    Some(field.json)
}

/// The plan of each grant the mapping lists.
pub(super) fn plans(
    file: &str,
    at: &str,
    types: &mut TypeBuilder<'_>,
    body_ty: Option<&Ty>,
    grants: &IndexMap<GrantKind, GrantMapping>,
    errors: &mut SpecErrors,
) -> Vec<RequestPlan> {
    grants
        .iter()
        .filter_map(|(kind, mapping)| {
            let grant_at = pointer::join(&pointer::join(at, "grants"), kind.key());
            plan(file, &grant_at, types, body_ty, *kind, mapping, errors)
        })
        .collect()
}

/// The plan of one grant's request, its mapping at `grant_at`.
pub(super) fn plan(
    file: &str,
    grant_at: &str,
    types: &mut TypeBuilder<'_>,
    body_ty: Option<&Ty>,
    kind: GrantKind,
    mapping: &GrantMapping,
    errors: &mut SpecErrors,
) -> Option<RequestPlan> {
    let Some(body_ty) = body_ty else {
        return without_body(file, grant_at, kind, mapping, errors);
    };
    let (wrap, struct_name) = match slot(types.defs(), body_ty, mapping.variant.as_deref()) {
        Ok(found) => found,
        Err(reason) => {
            errors.push(SpecError::new(file, grant_at, reason));
            return None;
        }
    };
    let args = [
        ("code", &mapping.code, GrantArg::Code),
        ("redirect-uri", &mapping.redirect_uri, GrantArg::RedirectUri),
        (
            "code-verifier",
            &mapping.code_verifier,
            GrantArg::CodeVerifier,
        ),
        ("username", &mapping.username, GrantArg::Username),
        ("password", &mapping.password, GrantArg::Password),
        ("assertion", &mapping.assertion, GrantArg::Assertion),
    ];
    let mut own = fixed(file, grant_at, types, &struct_name, &mapping.set, errors);
    own.extend(generated(
        file,
        grant_at,
        types,
        &struct_name,
        &mapping.generate,
        errors,
    ));
    for (key, ptr, arg) in args {
        if let Some(value) = per_call(
            file,
            grant_at,
            types,
            &struct_name,
            kind,
            (key, ptr, arg),
            errors,
        ) {
            own.push(value);
        }
    }
    Some(RequestPlan {
        kind: Some(kind),
        wrap,
        struct_name,
        own,
        per_client: Vec::new(),
        at: grant_at.to_owned(),
    })
}

/// A grant whose operation has no body: every value in the query string or headers, fixed
/// (`set` on parameters) or the client's own, none per call.
fn without_body(
    file: &str,
    grant_at: &str,
    kind: GrantKind,
    mapping: &GrantMapping,
    errors: &mut SpecErrors,
) -> Option<RequestPlan> {
    let per_call = [
        ("code", &mapping.code),
        ("redirect-uri", &mapping.redirect_uri),
        ("code-verifier", &mapping.code_verifier),
        ("username", &mapping.username),
        ("password", &mapping.password),
        ("assertion", &mapping.assertion),
    ];
    let mut fine = true;
    for (key, _) in per_call.iter().filter(|(_, p)| p.is_some()) {
        fine = false;
        errors.push(SpecError::new(
            file,
            &pointer::join(grant_at, key),
            format!("the operation has no request body for the {key} to go in"),
        ));
    }
    let body_keys = (mapping.set.keys().map(|k| ("set", k)))
        .chain(mapping.generate.keys().map(|k| ("generate", k)));
    for (map, key) in body_keys.filter(|(_, k)| k.starts_with('/')) {
        fine = false;
        errors.push(SpecError::new(
            file,
            &pointer::join(&pointer::join(grant_at, map), key.trim_start_matches('/')),
            "the operation has no request body; a parameter is named without the `/`",
        ));
    }
    if kind != GrantKind::ClientCredentials {
        fine = false;
        errors.push(
            SpecError::new(
                file,
                grant_at,
                format!(
                    "the {} grant needs a request body for its per-call values",
                    kind.key()
                ),
            )
            .hint("only the client-credentials grant can travel without a body"),
        );
    }
    fine.then(|| RequestPlan {
        kind: Some(kind),
        wrap: None,
        struct_name: String::new(),
        own: Vec::new(),
        per_client: Vec::new(),
        at: grant_at.to_owned(),
    })
}

/// The mapping's `per-client` values (at `at`): each an optional top-level property of a request's
/// struct, given to every request whose struct has it.
pub(super) fn per_client(
    file: &str,
    at: &str,
    types: &TypeBuilder<'_>,
    plans: &mut [RequestPlan],
    values: &[String],
    errors: &mut SpecErrors,
) {
    for (i, ptr) in values.iter().enumerate() {
        let here = pointer::join(at, &i.to_string());
        let mut found = false;
        let mut refused: Vec<&str> = Vec::new();
        for plan in plans.iter_mut() {
            let Ok(field) = top_level(types, &plan.struct_name, ptr) else {
                continue;
            };
            found = true;
            if field.optional {
                plan.per_client.push(field.json);
            } else if !refused.contains(&plan.struct_name.as_str()) {
                refused.push(&plan.struct_name);
                errors.push(SpecError::new(
                    file,
                    &here,
                    format!(
                        "{:?} is required in {}: every request sends it already",
                        field.json, plan.struct_name
                    ),
                ));
            }
        }
        if !found {
            errors.push(SpecError::new(
                file,
                &here,
                format!("{ptr:?} is not a top-level property of any request body"),
            ));
        }
    }
}

/// Where one per-call value of a grant goes (`code: /code`): a top-level string property,
/// a secret where the value is one; `None` when the grant has no such value or an error was
/// reported.
fn per_call(
    file: &str,
    grant_at: &str,
    types: &mut TypeBuilder<'_>,
    struct_name: &str,
    kind: GrantKind,
    (key, ptr, arg): (&str, &Option<String>, GrantArg),
    errors: &mut SpecErrors,
) -> Option<(String, FillSource)> {
    let here = pointer::join(grant_at, key);
    let Some(ptr) = ptr else {
        if arg.required_by(kind) {
            errors.push(
                SpecError::new(
                    file,
                    grant_at,
                    format!("the {} grant needs `{key}`: where it goes", kind.key()),
                )
                .hint(format!("add `{key}: /property`")),
            );
        }
        return None;
    };
    if !arg.belongs_to(kind) {
        errors.push(SpecError::new(
            file,
            &here,
            format!("the {} grant sends no {key}", kind.key()),
        ));
        return None;
    }
    match top_level(types, struct_name, ptr) {
        Ok(field) if matches!(field.ty, Ty::String | Ty::Secret) => {
            if arg.is_secret() {
                types.mark_secret(
                    &Ty::Named(struct_name.to_owned()),
                    std::slice::from_ref(&field.json),
                );
            }
            return Some((field.json, FillSource::Arg(arg)));
        }
        Ok(field) => errors.push(SpecError::new(
            file,
            &here,
            format!("{ptr:?} must be a string, not {}", field.ty.describe()),
        )),
        Err(reason) => errors.push(SpecError::new(file, &here, reason)),
    }
    None
}

/// The revocation's one request (`x-token-revoke` at `at`): the token (a secret) and its type
/// hint where the body takes one, each a top-level string property, and the fixed values.
pub(super) fn revocation(
    file: &str,
    at: &str,
    types: &mut TypeBuilder<'_>,
    body_ty: Option<&Ty>,
    ext: &crate::extension::TokenRevoke,
    errors: &mut SpecErrors,
) -> Option<RequestPlan> {
    let Some(body_ty) = body_ty else {
        errors.push(SpecError::new(
            file,
            at,
            "the revocation operation has no request body: RFC 7009 sends the token in one",
        ));
        return None;
    };
    let (wrap, struct_name) = match slot(types.defs(), body_ty, None) {
        Ok(found) => found,
        Err(reason) => {
            errors.push(SpecError::new(file, at, reason));
            return None;
        }
    };
    let mut own = Vec::new();
    let values = [
        ("token", Some(&ext.token), GrantArg::RevokedToken),
        (
            "token-type-hint",
            ext.token_type_hint.as_ref(),
            GrantArg::TokenTypeHint,
        ),
    ];
    for (key, ptr, arg) in values {
        let Some(ptr) = ptr else { continue };
        let here = pointer::join(at, key);
        match top_level(types, &struct_name, ptr) {
            Ok(field) if matches!(field.ty, Ty::String | Ty::Secret) => {
                if arg.is_secret() {
                    types.mark_secret(
                        &Ty::Named(struct_name.clone()),
                        std::slice::from_ref(&field.json),
                    );
                }
                own.push((field.json, FillSource::Arg(arg)));
            }
            Ok(field) => errors.push(SpecError::new(
                file,
                &here,
                format!("{ptr:?} must be a string, not {}", field.ty.describe()),
            )),
            Err(reason) => errors.push(SpecError::new(file, &here, reason)),
        }
    }
    if own.is_empty() {
        return None;
    }
    own.extend(fixed(file, at, types, &struct_name, &ext.set, errors));
    Some(RequestPlan {
        kind: None,
        wrap,
        struct_name,
        own,
        per_client: Vec::new(),
        at: at.to_owned(),
    })
}
