//! The refresh operation's own mapping: where the refresh token goes, and the rules only a
//! refresh has (rotation, reuse grace, idle lifetime).

use super::requests::{self, RequestPlan};
use super::{MapCtx, MappedOp, MappedRefresh};
use crate::error::{SpecError, SpecErrors};
use crate::extension::{self, Rotation, TokenRefresh};
use crate::model::{
    Failure, FillSource, Location, Mapped, Param, ParamValue, RefreshPlace, Success,
};
use crate::pointer;
use crate::resolve::ResolvedOp;
use crate::types::{Def, Ty, TypeBuilder, body_struct, names_variant, struct_fields};

/// Where the refresh token goes: the struct (inside a `oneOf` variant, if any) and the property.
struct RequestSlot {
    wrap: Option<(String, String)>,
    struct_name: String,
    refresh_json: String,
}

/// What only the refresh's mapping says, checked.
#[derive(Clone, Debug)]
pub(crate) struct RefreshRules {
    /// Whether the refresh sends the access token (`request: {access-token: …}`).
    pub sends_access_token: bool,
    /// The rotation policy.
    pub rotation: Rotation,
    /// How long the provider still accepts a rotated refresh token (`reuse-grace`).
    pub reuse_grace: Option<u64>,
    /// Where the refresh token travels in the request.
    pub refresh_place: RefreshPlace,
    /// Seconds after which an unused refresh token dies (`refresh-idle-lifetime`).
    pub idle_lifetime: Option<u64>,
}

impl MapCtx<'_> {
    /// The refresh request's struct, its `oneOf` wrapper if any, and the refresh token's property.
    fn request_slot(
        &self,
        types: &mut TypeBuilder<'_>,
        body_ty: &Ty,
        ptr: &str,
        variant: Option<&str>,
        errors: &mut SpecErrors,
    ) -> Option<RequestSlot> {
        let at = &format!("/request/{}", self.token_key);
        let segments = match pointer::segments(ptr) {
            Some(s) if s.len() == 1 => s,
            Some(_) => {
                errors.push(self.error(
                    at,
                    format!("{ptr:?}: only a top-level body property can carry the refresh token"),
                ));
                return None;
            }
            None => {
                errors.push(
                    self.error(at, format!("{ptr:?} is not a JSON pointer"))
                        .hint("write it like `/refresh_token`"),
                );
                return None;
            }
        };
        let (wrap, struct_name) = match self.holder(types, body_ty, ptr, &segments[0], variant) {
            Ok(found) => found,
            Err(reason) => {
                errors.push(self.error(at, reason));
                return None;
            }
        };
        let struct_ty = Ty::Named(struct_name.clone());
        match types.access(&struct_ty, &segments) {
            Ok(access)
                if access
                    .leaves()
                    .iter()
                    .all(|t| matches!(t, Ty::String | Ty::Secret)) =>
            {
                types.mark_secret(&struct_ty, &segments);
                Some(RequestSlot {
                    wrap,
                    struct_name,
                    refresh_json: segments[0].clone(),
                })
            }
            Ok(_) => {
                errors.push(self.error(at, format!("{ptr:?} must be a string property")));
                None
            }
            Err(reason) => {
                errors.push(self.error(
                    at,
                    format!("{ptr:?} does not resolve in the request body: {reason}"),
                ));
                None
            }
        }
    }

    /// A one-time or rotating refresh token comes back with every success.
    fn check_rotation(
        &self,
        spec: &TokenRefresh,
        mapped_refresh: Option<&Mapped>,
        errors: &mut SpecErrors,
    ) {
        if spec.rotation != crate::extension::Rotation::Optional {
            let rotation = match spec.rotation {
                crate::extension::Rotation::OneTime => "one-time",
                _ => "rotating",
            };
            match (&spec.success.refresh_token, mapped_refresh) {
                (None, _) => errors.push(
                    self.error(
                        "/success",
                        format!("rotation is `{rotation}`, but the mapping names no new refresh token in the success response"),
                    )
                    .hint("add `refresh-token: /pointer`, or say `rotation: optional` if the old token stays valid"),
                ),
                // A response shared with grants may lack it (client credentials issue none);
                // the runtime still refuses a refresh answer without one.
                // With a success rule, the envelope may hold the tokens only in successes (every
                // answer HTTP 200, `body` present only when `status` is 0): the rule tells the
                // successes apart, and the runtime refuses a success without the token.
                (Some(ptr), Some(mapped))
                    if mapped.access.may_be_absent()
                        && spec.grants.is_empty()
                        && spec.success.when.is_none() =>
                {
                    errors.push(
                    self.error(
                        "/success/refresh-token",
                        format!("rotation is `{rotation}`, but {ptr:?} may be absent or null in the success response: a response without it would leave only the token just spent"),
                    )
                    .hint("make every property on the way `required` and not `nullable`; or, where the answer holds the tokens only when it succeeds, give the success a rule (`when: {pointer: /status, equals: 0}`); or say `rotation: optional`"),
                    )
                }
                _ => {}
            }
        }
    }

    /// The idle lifetime and the reuse grace: in range, and only where they mean something.
    fn check_lifetimes(&self, spec: &TokenRefresh, errors: &mut SpecErrors) {
        if let Some(idle) = spec.refresh_idle_lifetime
            && (idle == 0 || idle > 10 * 365 * 24 * 3600)
        {
            errors.push(
                self.error(
                    "/refresh-idle-lifetime",
                    format!("an idle lifetime of {idle} seconds: it must be between 1 and ten years"),
                )
                .hint("give the seconds after which the provider's docs say an unused refresh token dies (`refresh-idle-lifetime: 2592000` for 30 days)"),
            );
        }
        if spec.refresh_idle_lifetime.is_some() && spec.request.sends_access_token() {
            errors.push(self.error(
                "/refresh-idle-lifetime",
                "the refresh sends the access token; there is no refresh token to die when idle",
            ));
        }
        if let Some(grace) = spec.reuse_grace {
            if spec.rotation == crate::extension::Rotation::Optional {
                errors.push(
                    self.error(
                        "/reuse-grace",
                        "a reuse grace is for `one-time` or `rotating` refresh tokens; with `optional` the old token stays valid anyway",
                    )
                    .hint("remove `reuse-grace`, or say which rotation the provider really has"),
                );
            } else if grace == 0 || grace > 24 * 3600 {
                errors.push(
                    self.error(
                        "/reuse-grace",
                        format!("a reuse grace of {grace} seconds: it must be between 1 and 86400"),
                    )
                    .hint("give the number of seconds the provider's docs promise a rotated refresh token still works"),
                );
            }
        }
    }

    /// The struct of the body that holds the property `json`: the body's struct, or the one
    /// `oneOf` variant (of those `variant` allows) that has it (`ptr` names it in errors).
    fn holder(
        &self,
        types: &TypeBuilder<'_>,
        body_ty: &Ty,
        ptr: &str,
        json: &str,
        variant: Option<&str>,
    ) -> Result<(Option<(String, String)>, String), String> {
        let not_an_object =
            || "the request body must be an object or a oneOf of objects".to_owned();
        let Ty::Named(name) = body_ty else {
            return Err(not_an_object());
        };
        let variants = match &types.defs()[name].def {
            Def::Struct { .. } => return Ok((None, name.clone())),
            Def::OneOf { variants } => variants,
            Def::Enum { .. } => return Err(not_an_object()),
        };
        let holders: Vec<&String> = variants
            .iter()
            .enumerate()
            .filter_map(|(i, (v, t))| match t {
                Ty::Named(n)
                    if variant.is_none_or(|want| names_variant(want, i, v, n))
                        && struct_fields(types.defs(), n)
                            .iter()
                            .any(|f| f.json == json) =>
                {
                    Some(v)
                }
                _ => None,
            })
            .collect();
        match holders.as_slice() {
            [one] => Ok((Some((name.clone(), (*one).clone())), (*one).clone())),
            _ => Err(format!(
                "{ptr:?} must resolve in exactly one oneOf variant of the request body; it resolves in {}",
                holders.len()
            )),
        }
    }

    /// A refresh token in a parameter: the operation declares it (a string; the model's
    /// `params` checked the type), or it is the `Authorization` header, which OpenAPI 3.0
    /// does not let a spec declare. A prefix is for headers only.
    fn check_param_place(
        &self,
        place: &RefreshPlace,
        params: &[Param],
        errors: &mut SpecErrors,
    ) -> bool {
        let at = &format!("/request/{}/name", self.token_key);
        let (location, name) = match place {
            RefreshPlace::Body { .. } => return true,
            RefreshPlace::Query { name } => (Location::Query, name),
            RefreshPlace::Header { name, .. } => (Location::Header, name),
        };
        if location == Location::Header && name.eq_ignore_ascii_case("authorization") {
            return true;
        }
        let declared = params
            .iter()
            .any(|p| matches!(p.value, ParamValue::RefreshToken) && p.location == location);
        if !declared {
            let kind = if location == Location::Query {
                "query parameter"
            } else {
                "header"
            };
            errors.push(
                self.error(
                    at,
                    format!(
                        "the operation declares no {kind} named {name:?} to carry the refresh token"
                    ),
                )
                .hint(format!(
                    "declare it under `parameters` with `in: {}` and a string schema",
                    if location == Location::Query {
                        "query"
                    } else {
                        "header"
                    }
                )),
            );
            return false;
        }
        true
    }

    fn rules(
        &self,
        types: &mut TypeBuilder<'_>,
        spec: &TokenRefresh,
        refresh_place: RefreshPlace,
        errors: &mut SpecErrors,
    ) -> Option<(RefreshRules, Success, Vec<Failure>)> {
        if let RefreshPlace::Query { .. } = &refresh_place
            && let Some(extension::TokenPlace::Param(p)) = spec.request.place()
            && !p.prefix.is_empty()
        {
            errors.push(self.error(
                &format!("/request/{}/prefix", self.token_key),
                "a prefix is for a refresh token in a header, not in the query",
            ));
        }
        let answers = self.answers(types, &spec.success, &spec.failures, errors);
        let mapped_refresh = answers.as_ref().and_then(|(s, _)| s.refresh_token.as_ref());
        let sends_access = spec.request.sends_access_token();
        if sends_access && spec.success.refresh_token.is_some() {
            errors.push(
                self.error(
                    "/success/refresh-token",
                    "the refresh sends the access token, so a refresh token in the answer would never be sent",
                )
                .hint("leave `refresh-token` out; the new access token is what the next refresh sends"),
            );
        }
        if !sends_access {
            self.check_rotation(spec, mapped_refresh, errors);
        }
        self.check_lifetimes(spec, errors);
        let (success, failures) = answers?;
        let rules = RefreshRules {
            sends_access_token: sends_access,
            rotation: spec.rotation,
            reuse_grace: spec.reuse_grace,
            refresh_place,
            idle_lifetime: spec.refresh_idle_lifetime,
        };
        Some((rules, success, failures))
    }
}

/// The refresh operation's mapping: where the refresh token goes, its answers and rules, and
/// the requests it sends (its own first, then the grants it also serves).
pub(super) fn map<'s>(
    file: &str,
    op: ResolvedOp<'s, TokenRefresh>,
    types: &mut TypeBuilder<'_>,
    errors: &mut SpecErrors,
) -> Option<MappedRefresh<'s>> {
    let ext = &op.found.ext;
    let place = RefreshPlace::from_spec(ext.request.place()?);
    let mut ctx = MapCtx::new(file, &op.found, &op.responses);
    ctx.token_key = ext.request.key();
    let slot = ctx.slot(types, &op, &place, errors);
    let rules = ctx.rules(types, ext, place, errors);
    let (Some((rules, success, failures)), Some(slot)) = (rules, slot) else {
        return None;
    };
    let body_ty = op.body.as_ref().map(|b| &b.ty);
    let grant_plans = requests::plans(file, &ctx.at, types, body_ty, &ext.grants, errors);
    let at = op.found.request_at();
    let mut own = vec![(slot.refresh_json, FillSource::RefreshToken)];
    own.extend(requests::fixed(
        file,
        &at,
        types,
        &slot.struct_name,
        &ext.request.set,
        errors,
    ));
    own.extend(requests::generated(
        file,
        &at,
        types,
        &slot.struct_name,
        &ext.request.generate,
        errors,
    ));
    let mut plans = vec![RequestPlan {
        kind: None,
        wrap: slot.wrap,
        struct_name: slot.struct_name,
        own,
        per_client: Vec::new(),
        at,
    }];
    plans.extend(grant_plans);
    let values_at = pointer::join(&ctx.at, "per-client");
    requests::per_client(file, &values_at, types, &mut plans, &ext.per_client, errors);
    let assertion = ext.client_assertion.as_deref().and_then(|ptr| {
        let at = pointer::join(&ctx.at, "client-assertion");
        requests::client_assertion(file, &at, types, &mut plans, ptr, errors)
    });
    Some(MappedRefresh {
        op: MappedOp {
            op,
            success,
            failures,
            requests: plans,
            assertion,
        },
        rules,
    })
}

impl MapCtx<'_> {
    /// Where the refresh token goes: a body property (in the struct, or the `oneOf` variant,
    /// the mapping names), or a parameter the operation declares (the body, if any, one struct).
    fn slot(
        &self,
        types: &mut TypeBuilder<'_>,
        op: &ResolvedOp<'_, TokenRefresh>,
        place: &RefreshPlace,
        errors: &mut SpecErrors,
    ) -> Option<RequestSlot> {
        match (place, &op.body) {
            (RefreshPlace::Body { pointer }, Some(body)) => self.request_slot(
                types,
                &body.ty,
                pointer,
                op.found.ext.request.variant.as_deref(),
                errors,
            ),
            (RefreshPlace::Body { .. }, None) => None,
            (_, body) => {
                let struct_name = body_struct(types.defs(), body.as_ref().map(|b| &b.ty));
                if let Some(body) = body.as_ref().filter(|_| struct_name.is_empty()) {
                    errors.push(SpecError::new(
                        self.file,
                        &body.schema_pointer,
                        "with the refresh token outside the body, the body must be one object",
                    ));
                }
                self.check_param_place(place, &op.params, errors)
                    .then(|| RequestSlot {
                        wrap: None,
                        struct_name,
                        refresh_json: String::new(),
                    })
            }
        }
    }
}
