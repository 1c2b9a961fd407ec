//! Stage 6, plan: what the client needs. Input: [`Mapping`]; output: the [`Provider`] the
//! printer reads: each request's fields filled (per-call values, fixed ones, per-client
//! values), the bodies, the client authentication, the OAuth flows, and the decisions the
//! printer would otherwise make.

mod decide;
mod fill;
mod flows;

use crate::error::{SpecError, SpecErrors};
use crate::extension::GrantKind;
use crate::extension::{self, TokenGrant};
use crate::locate::Found;
use crate::map::{MappedOp, MappedRefresh, Mapping};
use crate::model::{
    Auth, Body, ConfigField, Grant, Operation, Provider, Refresh, ResponseCase, Revocation,
    TokenOperation, push_config,
};
use crate::pointer;
use crate::resolve::{Common, ResolvedOp};
use crate::types::{Ty, TypeBuilder, TypeDef};
use indexmap::IndexMap;
use serde_json::Value;

/// The provider, or `None` when the refresh operation did not come this far (its errors are
/// already reported).
pub(crate) fn plan(mapping: Mapping<'_>, errors: &mut SpecErrors) -> Option<Provider> {
    let Mapping {
        common,
        refresh,
        refresh_lost,
        grants,
        revocation,
    } = mapping;
    if refresh_lost {
        return None;
    }
    let Common {
        spec,
        servers,
        server_variables,
        host_patterns,
        types,
        mut config,
        mut notes,
    } = common;
    let file = spec.file.as_str();
    let refresh = refresh.map(|r| refresh_operation(file, r, &types, &mut config, errors));
    let grant_operations: Vec<TokenOperation> = grants
        .into_iter()
        .map(|g| grant_operation(file, g, &types, &mut config, errors))
        .collect();
    let revocation = revocation
        .map(|(op, plan)| revocation_operation(file, op, plan, &types, &mut config, errors));
    let mut served: Vec<(GrantKind, &str, String)> = Vec::new();
    if let Some((op, refresh)) = &refresh {
        let at = pointer::join(&op.operation.pointer, extension::KEY);
        for g in &refresh.grants {
            let at = pointer::join(&pointer::join(&at, "grants"), g.kind.key());
            served.push((g.kind, op.operation.path.as_str(), at));
        }
    }
    for (op, grant) in grant_operations
        .iter()
        .filter_map(|op| op.grant.as_ref().map(|g| (op, g)))
    {
        let at = pointer::join(&op.operation.pointer, extension::GRANT_KEY);
        served.push((grant.kind, op.operation.path.as_str(), at));
    }
    let refresh_path = refresh.as_ref().map(|(op, _)| op.operation.path.as_str());
    let oauth = flows::flows(spec, &servers, refresh_path, &served, &mut notes, errors);
    let first_at = refresh
        .as_ref()
        .map(|(op, _)| op.operation.pointer.clone())
        .or_else(|| {
            grant_operations
                .first()
                .map(|g| g.operation.pointer.clone())
        })
        .unwrap_or_else(|| "/paths".to_owned());
    decide::check_config_names(file, &first_at, &config, errors);
    let (refresh_op, refresh) = refresh.unzip();
    let mut operations: Vec<TokenOperation> =
        refresh_op.into_iter().chain(grant_operations).collect();
    // Every answer of the provider carries the idle lifetime of the refresh tokens it issues.
    let idle = refresh.as_ref().and_then(|r| r.idle_lifetime);
    for op in &mut operations {
        op.success.refresh_idle_lifetime = idle;
    }
    let info = &spec.api.info;
    let mut provider = Provider {
        name: spec.name.clone(),
        file: file.to_owned(),
        title: info.title.clone(),
        description: info.description.clone(),
        spec_version: info.version.clone(),
        servers,
        server_variables,
        host_patterns,
        operations,
        refresh,
        revocation,
        config,
        types: types.finish(),
        oauth,
        spec_json: spec.json.clone(),
        sensitive_fields: Vec::new(),
        notes,
    };
    decide::decide(&mut provider);
    Some(provider)
}

/// The refresh operation, its requests filled: its own and the grants it also serves.
fn refresh_operation(
    file: &str,
    mapped: MappedRefresh<'_>,
    types: &TypeBuilder<'_>,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> (TokenOperation, Refresh) {
    let MappedRefresh { op, rules } = mapped;
    let MappedOp {
        op,
        success,
        failures,
        requests,
        assertion,
    } = op;
    let example = op.body.as_ref().and_then(|b| b.example.as_ref());
    let mut fills =
        fill::fill_all(file, types.defs(), &requests, example, config, errors).into_iter();
    let own_fill = fills.next().unwrap_or_default();
    let mut requests = requests.into_iter();
    let own = requests.next();
    let grants: Vec<Grant> = requests
        .zip(fills)
        .filter_map(|(plan, fill)| {
            Some(Grant {
                kind: plan.kind?,
                wrap: plan.wrap,
                struct_name: plan.struct_name,
                fill,
            })
        })
        .collect();
    let (wrap, struct_name) = own
        .map(|own| (own.wrap, own.struct_name))
        .unwrap_or_default();
    let mut structs: Vec<&str> = std::iter::once(struct_name.as_str())
        .chain(grants.iter().map(|g| g.struct_name.as_str()))
        .collect();
    structs.dedup();
    let slot = (wrap, struct_name.clone(), own_fill);
    let operation = finish(file, op, &structs, slot, assertion, types, config, errors);
    let refresh = Refresh {
        sends_access_token: rules.sends_access_token,
        rotation: rules.rotation,
        reuse_grace: rules.reuse_grace,
        idle_lifetime: rules.idle_lifetime,
        place: rules.refresh_place,
        grants,
    };
    (
        TokenOperation {
            operation: operation.0,
            auth: operation.1,
            success,
            failures,
            grant: None,
        },
        refresh,
    )
}

/// A grant operation, its request filled.
fn grant_operation(
    file: &str,
    mapped: MappedOp<'_, TokenGrant>,
    types: &TypeBuilder<'_>,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> TokenOperation {
    let MappedOp {
        op,
        success,
        failures,
        requests,
        assertion,
    } = mapped;
    let kind = op.found.ext.grant;
    let fill = match &op.body {
        Some(parts) => fill::fill_all(
            file,
            types.defs(),
            &requests,
            parts.example.as_ref(),
            config,
            errors,
        )
        .pop()
        .unwrap_or_default(),
        None => Vec::new(),
    };
    let plan = requests.into_iter().next();
    let (wrap, struct_name) = plan.map(|p| (p.wrap, p.struct_name)).unwrap_or_default();
    let slot = (wrap.clone(), struct_name.clone(), fill.clone());
    let (operation, auth) = finish(
        file,
        op,
        &[struct_name.as_str()],
        slot,
        assertion,
        types,
        config,
        errors,
    );
    TokenOperation {
        operation,
        auth,
        success,
        failures,
        grant: Some(Grant {
            kind,
            wrap,
            struct_name,
            fill,
        }),
    }
}

/// The revocation operation, its request filled.
fn revocation_operation(
    file: &str,
    op: ResolvedOp<'_, extension::TokenRevoke>,
    plan: crate::map::RequestPlan,
    types: &TypeBuilder<'_>,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> Revocation {
    let example = op.body.as_ref().and_then(|b| b.example.as_ref());
    let fill = fill::fill_all(
        file,
        types.defs(),
        std::slice::from_ref(&plan),
        example,
        config,
        errors,
    )
    .pop()
    .unwrap_or_default();
    let slot = (plan.wrap.clone(), plan.struct_name.clone(), fill.clone());
    let (operation, auth) = finish(
        file,
        op,
        &[plan.struct_name.as_str()],
        slot,
        None,
        types,
        config,
        errors,
    );
    Revocation {
        operation,
        auth,
        wrap: plan.wrap,
        struct_name: plan.struct_name,
        fill,
    }
}

/// The operation the printer reads, once its requests are filled: its body (a form body's
/// fields checked in every struct of `structs`) and its client authentication.
#[allow(clippy::too_many_arguments)]
fn finish<E>(
    file: &str,
    op: ResolvedOp<'_, E>,
    structs: &[&str],
    slot: fill::Slot,
    assertion: Option<String>,
    types: &TypeBuilder<'_>,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> (Operation, Option<Auth>) {
    let ResolvedOp {
        found,
        params,
        auth,
        body,
        responses,
    } = op;
    let body: Option<Body> = body.map(|parts| parts.into_body(file, types, structs, slot, errors));
    let auth = with_assertion(file, &found.pointer, auth, assertion, config, errors);
    (operation(found, params, body, responses, types), auth)
}

/// The operation, once its body is known.
fn operation<E>(
    found: Found<'_, E>,
    params: Vec<crate::model::Param>,
    body: Option<Body>,
    responses: Vec<ResponseCase>,
    types: &TypeBuilder<'_>,
) -> Operation {
    Operation {
        outcome: outcome_name(&found.name, types.defs()),
        id: found.id,
        method: found.method,
        path: found.path,
        pointer: found.pointer,
        summary: found.op.summary.clone(),
        description: found.op.description.clone(),
        params,
        body,
        accept: accept_of(&responses),
        responses,
    }
}

/// The `Accept` header of an operation: the media types of its documented responses.
fn accept_of(responses: &[ResponseCase]) -> String {
    let mut media: Vec<&str> = responses
        .iter()
        .filter_map(|r| r.body.as_ref().map(|(m, _)| m.as_str()))
        .collect();
    media.dedup();
    if media.is_empty() {
        "application/json".to_owned()
    } else {
        media.join(", ")
    }
}

/// `<Op>Response`, unless a schema took it.
fn outcome_name(op_name: &str, types: &IndexMap<String, TypeDef>) -> String {
    [format!("{op_name}Response"), format!("{op_name}Outcome")]
        .into_iter()
        .chain((2..).map(|n| format!("{op_name}Outcome{n}")))
        .find(|name| !types.contains_key(name))
        .unwrap_or_default()
}

/// An operation's client authentication once its mapping is read: `private_key_jwt` when it
/// names a `client-assertion` property (then the spec declares no other), with the client id it
/// signs as (the `client_id` per-client value, or a new one).
fn with_assertion(
    file: &str,
    op_pointer: &str,
    auth: Option<Auth>,
    assertion: Option<String>,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> Option<Auth> {
    let Some(field) = assertion else {
        return auth;
    };
    if auth.is_some() {
        errors.push(
            SpecError::new(
                file,
                op_pointer,
                "the operation declares a security requirement and a `client-assertion`: one client authentication per operation",
            )
            .hint("with private_key_jwt, drop the operation's `security` (or write `security: []`)"),
        );
    }
    let client_id = config
        .iter()
        .position(|c| c.name == "client_id" && c.required && c.ty == Ty::String)
        .unwrap_or_else(|| {
            push_config(
                config,
                ConfigField {
                    name: "client_id".to_owned(),
                    ty: Ty::String,
                    required: true,
                    doc: Some(
                        "The client id: the issuer and subject of the signed client assertions."
                            .to_owned(),
                    ),
                    example: Value::String("client-id".to_owned()),
                    kept: false,
                    copy: false,
                },
            )
        });
    Some(Auth::PrivateKeyJwt { field, client_id })
}
