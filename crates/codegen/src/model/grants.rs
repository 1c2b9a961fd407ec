//! The grants besides the refresh: which request each sends, the values a call supplies, and
//! the OAuth 2 flows (`components/securitySchemes`) that declare them.

use super::*;
use crate::extension::{GrantKind, GrantMapping};

/// One request the operation sends, before its fields are filled: the refresh, or a grant.
pub(super) struct Plan {
    /// `None` for the refresh.
    pub(super) kind: Option<GrantKind>,
    pub(super) wrap: Option<(String, String)>,
    pub(super) struct_name: String,
    /// The fields this request fills itself: per-call values and fixed ones.
    pub(super) own: Vec<(String, FillSource)>,
    /// Where its mapping is, for errors.
    pub(super) at: String,
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
            .find_map(|(variant_name, ty)| match ty {
                Ty::Named(n)
                    if (variant_name == v || n == v)
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

/// What each `generate` kind needs of its field.
pub(super) const GENERATE_HINT: &str = "uuid, nonce and date-time go in a string; unix-seconds in an integer or a string; unix-milliseconds in a 64-bit integer (`format: int64`) or a string";

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
    plans: &mut [Plan],
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
) -> Vec<Plan> {
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
) -> Option<Plan> {
    let Some(body_ty) = body_ty else {
        // Every value in the query string or headers: fixed (`set` on parameters) or the
        // client's own, none per call.
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
        return fine.then(|| Plan {
            kind: Some(kind),
            wrap: None,
            struct_name: String::new(),
            own: Vec::new(),
            at: grant_at.to_owned(),
        });
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
            continue;
        };
        if !arg.belongs_to(kind) {
            errors.push(SpecError::new(
                file,
                &here,
                format!("the {} grant sends no {key}", kind.key()),
            ));
            continue;
        }
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
    Some(Plan {
        kind: Some(kind),
        wrap,
        struct_name,
        own,
        at: grant_at.to_owned(),
    })
}

/// Fills every request's fields. A field another request on the same struct fills itself
/// (its token, code or fixed value) is left out of this one, so it must be optional.
pub(super) fn fill_all(
    file: &str,
    types: &IndexMap<String, TypeDef>,
    plans: &[Plan],
    example: Option<&Value>,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> Vec<Vec<BodyFill>> {
    plans
        .iter()
        .map(|plan| {
            let foreign: Vec<&str> = plans
                .iter()
                .filter(|other| other.struct_name == plan.struct_name)
                .flat_map(|other| other.own.iter().map(|(json, _)| json.as_str()))
                .filter(|json| !plan.own.iter().any(|(own, _)| own == json))
                .collect();
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

/// One declared flow: its `tokenUrl`, `refreshUrl` and scopes.
type Flow<'a> = (&'a str, Option<&'a str>, &'a IndexMap<String, String>);

/// What the spec's OAuth 2 security schemes say about the grants of the operation at
/// `op_pointer`: each flow must name this operation as its `tokenUrl` (and `refreshUrl`) and be
/// mapped, and each mapped grant must have its flow, when the spec declares flows at all.
pub(super) fn flows(
    spec: &Spec,
    servers: &[Server],
    refresh_path: Option<&str>,
    mapped: &[(GrantKind, &str, String)],
    errors: &mut SpecErrors,
) -> OAuth {
    let file = spec.file.as_str();
    let mut oauth = OAuth::default();
    let schemes = spec
        .api
        .components
        .iter()
        .flat_map(|c| &c.security_schemes)
        .filter_map(|(name, s)| match s {
            ReferenceOr::Item(openapiv3::SecurityScheme::OAuth2 { flows, .. }) => {
                Some((name, flows))
            }
            _ => None,
        });
    let points_at = |url: &str, path: &str| {
        servers.iter().any(|s| {
            let full = format!("{}{path}", s.url);
            let full_path = full
                .split_once("://")
                .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
                .unwrap_or(path);
            url == full || url == full_path || url == path
        })
    };
    let mut declared = Vec::new();
    for (name, f) in schemes {
        let scheme_at = pointer::join("/components/securitySchemes", name);
        let flows: [(GrantKind, Option<Flow<'_>>); 3] = [
            (
                GrantKind::ClientCredentials,
                f.client_credentials
                    .as_ref()
                    .map(|f| (f.token_url.as_str(), f.refresh_url.as_deref(), &f.scopes)),
            ),
            (
                GrantKind::AuthorizationCode,
                f.authorization_code
                    .as_ref()
                    .map(|f| (f.token_url.as_str(), f.refresh_url.as_deref(), &f.scopes)),
            ),
            (
                GrantKind::Password,
                f.password
                    .as_ref()
                    .map(|f| (f.token_url.as_str(), f.refresh_url.as_deref(), &f.scopes)),
            ),
        ];
        for (kind, flow) in flows {
            let (Some((token_url, refresh_url, scopes)), Some(flow_name)) = (flow, kind.flow())
            else {
                continue;
            };
            let flow_at = pointer::join(&pointer::join(&scheme_at, "flows"), flow_name);
            let served = mapped.iter().find(|(k, _, _)| *k == kind);
            let grant_path = served.map(|(_, path, _)| *path).or(refresh_path);
            for (key, url, path) in [
                ("tokenUrl", Some(token_url), grant_path),
                ("refreshUrl", refresh_url, refresh_path),
            ] {
                let Some(url) = url else { continue };
                let Some(path) = path else {
                    errors.push(
                        SpecError::new(
                            file,
                            &pointer::join(&flow_at, key),
                            "the spec has no refresh operation (`x-token-refresh`) for this URL to name",
                        )
                        .hint("leave out `refreshUrl` for a provider that issues no refresh tokens"),
                    );
                    continue;
                };
                if !points_at(url, path) {
                    errors.push(
                        SpecError::new(
                            file,
                            &pointer::join(&flow_at, key),
                            format!("{url:?} is not the operation that serves it ({path} on a server of the spec)"),
                        )
                        .hint("write the URL of the operation with the mapping, absolute or relative to a server"),
                    );
                }
            }
            if served.is_none() {
                errors.push(
                    SpecError::new(
                        file,
                        &flow_at,
                        format!(
                            "the {} flow is declared, but the token mapping has no `grants: {{{}: …}}` for it",
                            flow_name,
                            kind.key()
                        ),
                    )
                    .hint("map the grant under `x-token-refresh/grants`, or on its own operation with `x-token-grant`"),
                );
            }
            declared.push(kind);
            for (scope, about) in scopes {
                if !oauth.scopes.iter().any(|(s, _)| s == scope) {
                    oauth.scopes.push((scope.clone(), about.clone()));
                }
            }
        }
        if let Some(code) = &f.authorization_code {
            let url = &code.authorization_url;
            let at = pointer::join(
                &pointer::join(&pointer::join(&scheme_at, "flows"), "authorizationCode"),
                "authorizationUrl",
            );
            let declared = spec.api.servers.first().and_then(|s| s.variables.as_ref());
            let unknown: Vec<&str> = super::placeholders(url)
                .into_iter()
                .filter(|name| !declared.is_some_and(|v| v.contains_key(*name)))
                .collect();
            if !unknown.is_empty() {
                errors.push(
                    SpecError::new(
                        file,
                        &at,
                        format!("{url:?} has placeholders no variable of the first server declares: {unknown:?}"),
                    )
                    .hint("the authorization URL may use the first server's variables, such as a tenant's host"),
                );
            } else if url.starts_with("https://") || loopback_http(url) {
                oauth.authorization_url = Some(url.clone());
            } else if url.starts_with("http://") {
                errors.push(
                    SpecError::new(
                        file,
                        &at,
                        format!("{url:?} uses plain http: the code and state would cross the network in clear text"),
                    )
                    .hint("use the provider's https URL (http is allowed only on localhost, 127.0.0.0/8 and [::1])"),
                );
            } else {
                errors.push(SpecError::new(
                    file,
                    &at,
                    format!("{url:?} is not an absolute URL"),
                ));
            }
        }
    }
    if !declared.is_empty() {
        // The JWT-bearer grant has no OpenAPI flow to declare.
        let undeclared = mapped
            .iter()
            .filter(|(k, _, _)| !declared.contains(k))
            .filter_map(|(k, _, at)| Some((k.flow()?, at)));
        for (flow, at) in undeclared {
            errors.push(
                SpecError::new(
                    file,
                    at,
                    format!("the spec's OAuth 2 flows declare no {flow} flow for this grant"),
                )
                .hint("add it under the oauth2 security scheme's `flows`"),
            );
        }
    }
    oauth
}

impl GrantArg {
    /// Whether every mapping of `kind` must say where this value goes.
    fn required_by(self, kind: GrantKind) -> bool {
        matches!(
            (kind, self),
            (GrantKind::AuthorizationCode, GrantArg::Code)
                | (GrantKind::Password, GrantArg::Username | GrantArg::Password)
                | (GrantKind::JwtBearer, GrantArg::Assertion)
        )
    }

    /// Whether requests of `kind` carry this value.
    fn belongs_to(self, kind: GrantKind) -> bool {
        match kind {
            GrantKind::ClientCredentials => false,
            GrantKind::AuthorizationCode => matches!(
                self,
                GrantArg::Code | GrantArg::RedirectUri | GrantArg::CodeVerifier
            ),
            GrantKind::Password => matches!(self, GrantArg::Username | GrantArg::Password),
            GrantKind::JwtBearer => self == GrantArg::Assertion,
        }
    }

    /// Whether the value is a secret (typed so, and scrubbed from errors).
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            GrantArg::Code | GrantArg::CodeVerifier | GrantArg::Password | GrantArg::Assertion
        )
    }
}

/// Whether `url` is plain http to a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`).
fn loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}
