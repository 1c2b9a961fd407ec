//! The token mapping, checked against the schemas of the request and the responses.

use super::*;

/// Where the refresh token goes: the struct (inside a `oneOf` variant, if any) and the property.
pub(super) struct RequestSlot {
    pub(super) wrap: Option<(String, String)>,
    pub(super) struct_name: String,
    pub(super) refresh_json: String,
}

/// Shared state while the mapping is checked.
pub(super) struct MapCtx<'a> {
    pub(super) file: &'a str,
    pub(super) at: String,
    pub(super) responses: &'a [ResponseCase],
    /// Every status key the spec documents, modelled or not.
    pub(super) documented: Vec<String>,
    /// The request mapping's key for the token the refresh sends (`refresh-token`, or
    /// `access-token`), for errors.
    pub(super) token_key: &'static str,
}

/// What a mapped value may be.
#[derive(Clone, Copy)]
pub(super) enum Want {
    Text,
    Seconds,
    /// An absolute time: a number, or a string (numeric or RFC 3339).
    Time,
    Anything,
}

impl MapCtx<'_> {
    fn error(&self, rel: &str, message: impl Into<String>) -> SpecError {
        SpecError::new(self.file, &format!("{}{rel}", self.at), message)
    }

    /// The refresh request's struct, its `oneOf` wrapper if any, and the refresh token's property.
    pub(super) fn request_slot(
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
        let slot = match body_ty {
            Ty::Named(name) => match &types.defs()[name].def {
                Def::Struct { .. } => Some((None, name.clone())),
                Def::OneOf { variants } => {
                    let holders: Vec<&String> = variants
                        .iter()
                        .filter_map(|(v, t)| match t {
                            Ty::Named(n)
                                if variant.is_none_or(|want| want == v || want == n)
                                    && struct_fields(types.defs(), n)
                                        .iter()
                                        .any(|f| f.json == segments[0]) =>
                            {
                                Some(v)
                            }
                            _ => None,
                        })
                        .collect();
                    match holders.as_slice() {
                        [one] => Some((Some((name.clone(), (*one).clone())), (*one).clone())),
                        _ => {
                            errors.push(self.error(at, format!("{ptr:?} must resolve in exactly one oneOf variant of the request body; it resolves in {}", holders.len())));
                            None
                        }
                    }
                }
                Def::Enum { .. } => None,
            },
            _ => None,
        };
        let Some((wrap, struct_name)) = slot else {
            if errors.0.is_empty() {
                errors.push(self.error(
                    at,
                    "the request body must be an object or a oneOf of objects",
                ));
            }
            return None;
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

    /// A refresh token in a parameter: the operation declares it (a string; the model's
    /// `params` checked the type), or it is the `Authorization` header, which OpenAPI 3.0
    /// does not let a spec declare. A prefix is for headers only.
    pub(super) fn check_param_place(
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

    /// A `when` rule: its pointer resolves in the response, and exactly one test is given.
    fn when(
        &self,
        types: &mut TypeBuilder<'_>,
        response: &ResponseCase,
        rel: &str,
        w: &extension::When,
    ) -> Result<When, SpecError> {
        let tests: Vec<Test> = [
            w.equals.clone().map(Test::Equals),
            w.not_equals.clone().map(Test::NotEquals),
            w.one_of.clone().map(Test::OneOf),
            w.present
                .map(|p| if p { Test::Present } else { Test::Absent }),
        ]
        .into_iter()
        .flatten()
        .collect();
        let test = match tests.as_slice() {
            [Test::OneOf(values)] if values.is_empty() => {
                return Err(self.error(&format!("{rel}/one-of"), "`one-of` lists no value"));
            }
            [one] => one.clone(),
            _ => {
                return Err(self
                    .error(
                        rel,
                        format!(
                            "`when` needs exactly one test, found {}",
                            tests.len()
                        ),
                    )
                    .hint("one of `equals: v`, `not-equals: v`, `one-of: [v, w]`, `present: true|false`"));
            }
        };
        let mapped = self.pointer(
            types,
            response,
            &format!("{rel}/pointer"),
            &w.pointer,
            Want::Anything,
            false,
        )?;
        Ok(When { mapped, test })
    }

    /// `kinds`, flattened to code → kind: `code: kind` entries, and `kind: [codes]` lists.
    fn kinds(
        &self,
        rel: &str,
        kinds: &IndexMap<String, extension::KindsEntry>,
        errors: &mut SpecErrors,
    ) -> Vec<(String, FailureKind)> {
        let mut out: Vec<(String, FailureKind)> = Vec::new();
        for (key, entry) in kinds {
            let at = format!("{rel}/{}", pointer::escape(key));
            let pairs: Vec<(String, FailureKind)> = match entry {
                extension::KindsEntry::Kind(kind) => vec![(key.clone(), *kind)],
                extension::KindsEntry::Codes(codes) => {
                    let kind = match serde_json::from_value::<FailureKind>(Value::String(
                        key.clone(),
                    )) {
                        Ok(kind) => kind,
                        Err(_) => {
                            errors.push(
                                self.error(&at, format!("{key:?} is not a kind, so it cannot take a list of codes"))
                                    .hint("write `invalid-grant: [code, code]`, `rejected: [...]` or `transient: [...]`, or `code: kind`"),
                            );
                            continue;
                        }
                    };
                    codes.iter().map(|c| (c.clone(), kind)).collect()
                }
            };
            for (code, kind) in pairs {
                if out.iter().any(|(c, _)| *c == code) {
                    errors.push(self.error(&at, format!("code {code:?} is given a meaning twice")));
                    continue;
                }
                out.push((code, kind));
            }
        }
        out
    }

    /// The modelled response of `status`; `None` with an error when the spec does not
    /// document it, and `None` alone when it does but the response failed to model (that
    /// failure is already reported).
    fn response(&self, rel: &str, status: &str, errors: &mut SpecErrors) -> Option<&ResponseCase> {
        let found = self
            .responses
            .iter()
            .find(|r| r.key.spec_key().eq_ignore_ascii_case(status));
        if found.is_none() && !self.documented.iter().any(|d| d == status) {
            errors.push(self.error(
                rel,
                format!("status {status} is not a documented response of this operation"),
            ));
        }
        found
    }

    fn pointer(
        &self,
        types: &mut TypeBuilder<'_>,
        response: &ResponseCase,
        rel: &str,
        ptr: &str,
        want: Want,
        secret: bool,
    ) -> Result<Mapped, SpecError> {
        let Some((_, body_ty)) = &response.body else {
            return Err(self.error(
                rel,
                format!(
                    "status {} has no documented JSON body to point into",
                    response.status
                ),
            ));
        };
        let segments = pointer::segments(ptr).ok_or_else(|| {
            self.error(rel, format!("{ptr:?} is not a JSON pointer"))
                .hint("write it like `/access_token`")
        })?;
        if secret {
            types.mark_secret(body_ty, &segments);
        }
        let access = types.access(body_ty, &segments).map_err(|reason| {
            self.error(
                rel,
                format!(
                    "{ptr:?} does not resolve in the {} response: {reason}",
                    response.status
                ),
            )
        })?;
        for leaf in access.leaves() {
            let fits = match want {
                Want::Text => matches!(leaf, Ty::String | Ty::Secret),
                Want::Seconds | Want::Time => match leaf {
                    Ty::I32 | Ty::I64 | Ty::F64 | Ty::String | Ty::Any => true,
                    // A number-or-numeric-string `oneOf`.
                    Ty::Named(name) => matches!(
                        types.defs().get(name).map(|t| &t.def),
                        Some(Def::OneOf { variants }) if variants.iter().all(|(_, t)| matches!(t, Ty::I32 | Ty::I64 | Ty::F64 | Ty::String))
                    ),
                    _ => false,
                },
                Want::Anything => true,
            };
            if !fits {
                let wanted = match want {
                    Want::Text => "a string",
                    Want::Seconds => "a number or numeric string",
                    Want::Time => "a number or a string (Unix time or RFC 3339)",
                    Want::Anything => "a value",
                };
                return Err(self.error(
                    rel,
                    format!(
                        "{ptr:?} points at {}, but must be {wanted}",
                        leaf.describe()
                    ),
                ));
            }
        }
        Ok(Mapped {
            pointer: ptr.to_owned(),
            access,
        })
    }

    fn optional(
        &self,
        types: &mut TypeBuilder<'_>,
        response: &ResponseCase,
        rel: &str,
        ptr: Option<&String>,
        want: Want,
        errors: &mut SpecErrors,
    ) -> Option<Mapped> {
        let ptr = ptr?;
        self.pointer(types, response, rel, ptr, want, false)
            .map_err(|e| errors.push(e))
            .ok()
    }

    pub(super) fn mapping(
        &self,
        types: &mut TypeBuilder<'_>,
        spec: &TokenRefresh,
        refresh_place: RefreshPlace,
        errors: &mut SpecErrors,
    ) -> Option<Mapping> {
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
        if spec.rotation != crate::extension::Rotation::Optional && !sends_access {
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
        let (success, failures) = answers?;
        Some(Mapping {
            sends_access_token: sends_access,
            rotation: spec.rotation,
            reuse_grace: spec.reuse_grace,
            refresh_place,
            success,
            failures,
        })
    }

    /// The success and failure mappings of an operation, checked against its responses.
    pub(super) fn answers(
        &self,
        types: &mut TypeBuilder<'_>,
        s: &extension::SuccessMapping,
        failure_specs: &[extension::FailureMapping],
        errors: &mut SpecErrors,
    ) -> Option<(Success, Vec<Failure>)> {
        if let Some(lifetime) = s.lifetime
            && (lifetime == 0 || lifetime > 10 * 365 * 24 * 3600)
        {
            errors.push(
                self.error(
                    "/success/lifetime",
                    format!("a lifetime of {lifetime} seconds: it must be between 1 and ten years"),
                )
                .hint("give the access token's lifetime in seconds as the provider's docs state it (`lifetime: 7200` for two hours)"),
            );
        }
        let success_response = self.response("/success/status", &s.status, errors)?;
        if !matches!(success_response.key, StatusKey::Code(200..=299)) {
            errors.push(self.error(
                "/success/status",
                format!(
                    "the success status must be one 2xx code, not {}",
                    success_response.key.spec_key()
                ),
            ));
            return None;
        }
        let success_when = match &s.when {
            Some(w) => self
                .when(types, success_response, "/success/when", w)
                .map_err(|e| errors.push(e))
                .ok(),
            None => None,
        };
        let access_token = self
            .pointer(
                types,
                success_response,
                "/success/access-token",
                &s.access_token,
                Want::Text,
                true,
            )
            .map_err(|e| errors.push(e))
            .ok();
        let refresh_token = s.refresh_token.as_ref().and_then(|p| {
            self.pointer(
                types,
                success_response,
                "/success/refresh-token",
                p,
                Want::Text,
                true,
            )
            .map_err(|e| errors.push(e))
            .ok()
        });
        let expires_in = self.optional(
            types,
            success_response,
            "/success/expires-in",
            s.expires_in.as_ref(),
            Want::Seconds,
            errors,
        );
        let token_type = self.optional(
            types,
            success_response,
            "/success/token-type",
            s.token_type.as_ref(),
            Want::Text,
            errors,
        );
        let created_at = self.optional(
            types,
            success_response,
            "/success/created-at",
            s.created_at.as_ref(),
            Want::Seconds,
            errors,
        );

        let mut instant = |rel: &str, spec: Option<&extension::InstantSpec>| {
            let spec = spec?;
            let format = match spec {
                extension::InstantSpec::Formatted { format, .. } => Some(*format),
                extension::InstantSpec::Pointer(_) => None,
            };
            let ptr = spec.pointer().to_owned();
            self.optional(types, success_response, rel, Some(&ptr), Want::Time, errors)
                .map(|m| (m, format))
        };
        let expires_at = instant("/success/expires-at", s.expires_at.as_ref());
        let refresh_expires_at =
            instant("/success/refresh-expires-at", s.refresh_expires_at.as_ref());
        let refresh_expires_in = self.optional(
            types,
            success_response,
            "/success/refresh-expires-in",
            s.refresh_expires_in.as_ref(),
            Want::Seconds,
            errors,
        );

        let mut failures = Vec::new();
        for (i, f) in failure_specs.iter().enumerate() {
            let rel = format!("/failures/{i}");
            let Some(response) = self.response(&format!("{rel}/status"), &f.status, errors) else {
                continue;
            };
            let when = match &f.when {
                Some(w) => match self.when(types, response, &format!("{rel}/when"), w) {
                    Ok(when) => Some(when),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                },
                None => None,
            };
            if response.key == success_response.key && when.is_none() {
                errors.push(
                    self.error(
                        &rel,
                        format!(
                            "status {} is the success status; a failure there needs `when`",
                            response.status
                        ),
                    )
                    .hint("add `when: {pointer: /success, equals: false}` or similar"),
                );
            }
            let code = self.optional(
                types,
                response,
                &format!("{rel}/code"),
                f.code.as_ref(),
                Want::Anything,
                errors,
            );
            let message = self.optional(
                types,
                response,
                &format!("{rel}/message"),
                f.message.as_ref(),
                Want::Anything,
                errors,
            );
            if !f.kinds.is_empty() && code.is_none() {
                errors.push(self.error(
                    &format!("{rel}/kinds"),
                    "`kinds` needs `code`, the pointer to the error code",
                ));
            }
            let kinds = self.kinds(&format!("{rel}/kinds"), &f.kinds, errors);
            let transient = f.kind == FailureKind::Transient
                || kinds.iter().any(|(_, k)| *k == FailureKind::Transient);
            if f.unprocessed.is_some() && !transient {
                errors.push(
                    self.error(
                        &format!("{rel}/unprocessed"),
                        "`unprocessed` says what a transient failure proves about the request, but this failure maps nothing to `transient`",
                    )
                    .hint("remove it: a documented refusal (`rejected`) always proves the token unspent, and a dead one (`invalid-grant`) is dead"),
                );
            }
            failures.push(Failure {
                key: response.key,
                status: response.status,
                when,
                kind: f.kind,
                kinds,
                code,
                message,
                unprocessed: f.unprocessed,
            });
        }
        for response in self.responses {
            let covered = response.key == success_response.key
                || failures
                    .iter()
                    .any(|f| f.key == response.key && f.when.is_none());
            if !covered {
                errors.push(
                    SpecError::new(
                        self.file,
                        &response.pointer,
                        format!(
                            "documented status {} has no meaning in the token mapping",
                            response.key.spec_key()
                        ),
                    )
                    .hint(format!(
                        "add a `failures` entry with `status: \"{}\"` and a `kind`",
                        response.key.spec_key()
                    )),
                );
            }
        }
        Some((
            Success {
                status: success_response.status,
                when: success_when,
                access_token: access_token?,
                refresh_token,
                expires_in,
                token_type,
                created_at,
                expires_at,
                refresh_expires_in,
                refresh_expires_at,
                lifetime: s.lifetime,
                refresh_idle_lifetime: None,
            },
            failures,
        ))
    }
}
