//! The answers: the success and failure mappings checked against the responses' types.

use super::MapCtx;
use crate::error::{SpecError, SpecErrors};
use crate::extension::{self, FailureKind};
use crate::model::{Failure, Mapped, ResponseCase, StatusKey, Success, Test, When};
use crate::pointer;
use crate::types::{Def, Ty, TypeBuilder};
use indexmap::IndexMap;
use serde_json::Value;

/// What a mapped value may be.
#[derive(Clone, Copy)]
pub(super) enum Want {
    Text,
    /// Text, or a value of a string enum (`token_type: {enum: [Bearer]}`).
    Label,
    Seconds,
    /// An absolute time: a number, or a string (numeric or RFC 3339).
    Time,
    Anything,
}

impl MapCtx<'_> {
    /// The success and failure mappings of an operation, checked against its responses.
    pub(super) fn answers(
        &self,
        types: &mut TypeBuilder<'_>,
        s: &extension::SuccessMapping,
        failure_specs: &[extension::FailureMapping],
        errors: &mut SpecErrors,
    ) -> Option<(Success, Vec<Failure>)> {
        let (success_response, success) = self.success(types, s, errors)?;
        let failures: Vec<Failure> = failure_specs
            .iter()
            .enumerate()
            .filter_map(|(i, f)| self.failure(types, success_response, i, f, errors))
            .collect();
        self.check_covered(success_response, &failures, errors);
        Some((success?, failures))
    }

    /// The success mapping: its response (`None` when there is no such success status) and,
    /// when its access token resolves, the success.
    fn success(
        &self,
        types: &mut TypeBuilder<'_>,
        s: &extension::SuccessMapping,
        errors: &mut SpecErrors,
    ) -> Option<(&ResponseCase, Option<Success>)> {
        let response = self.success_response(s, errors)?;
        let when = match &s.when {
            Some(w) => self
                .when(types, response, "/success/when", w)
                .map_err(|e| errors.push(e))
                .ok(),
            None => None,
        };
        let mut required = |rel: &str, ptr: &String| {
            self.pointer(types, response, rel, ptr, Want::Text, true)
                .map_err(|e| errors.push(e))
                .ok()
        };
        let access_token = required("/success/access-token", &s.access_token);
        let refresh_token = s
            .refresh_token
            .as_ref()
            .and_then(|p| required("/success/refresh-token", p));
        let mut optional = |rel: &str, ptr: Option<&String>, want: Want| {
            self.optional(types, response, rel, ptr, want, errors)
        };
        let expires_in = optional("/success/expires-in", s.expires_in.as_ref(), Want::Seconds);
        let token_type = optional("/success/token-type", s.token_type.as_ref(), Want::Label);
        let created_at = optional("/success/created-at", s.created_at.as_ref(), Want::Seconds);
        let mut instant = |rel: &str, spec: Option<&extension::InstantSpec>| {
            let spec = spec?;
            let format = match spec {
                extension::InstantSpec::Formatted { format, .. } => Some(*format),
                extension::InstantSpec::Pointer(_) => None,
            };
            let ptr = spec.pointer().to_owned();
            optional(rel, Some(&ptr), Want::Time).map(|m| (m, format))
        };
        let expires_at = instant("/success/expires-at", s.expires_at.as_ref());
        let refresh_expires_at =
            instant("/success/refresh-expires-at", s.refresh_expires_at.as_ref());
        let refresh_expires_in = optional(
            "/success/refresh-expires-in",
            s.refresh_expires_in.as_ref(),
            Want::Seconds,
        );
        let success = access_token.map(|access_token| Success {
            status: response.status,
            when,
            access_token,
            refresh_token,
            expires_in,
            token_type,
            created_at,
            expires_at,
            refresh_expires_in,
            refresh_expires_at,
            lifetime: s.lifetime,
            refresh_idle_lifetime: None,
        });
        Some((response, success))
    }

    /// The success status: one 2xx code the operation documents (and a sane `lifetime`).
    fn success_response(
        &self,
        s: &extension::SuccessMapping,
        errors: &mut SpecErrors,
    ) -> Option<&ResponseCase> {
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
        let response = self.response("/success/status", &s.status, errors)?;
        if !matches!(response.key, StatusKey::Code(200..=299)) {
            errors.push(self.error(
                "/success/status",
                format!(
                    "the success status must be one 2xx code, not {}",
                    response.key.spec_key()
                ),
            ));
            return None;
        }
        Some(response)
    }

    /// The `i`th failure mapping, checked against its response.
    fn failure(
        &self,
        types: &mut TypeBuilder<'_>,
        success_response: &ResponseCase,
        i: usize,
        f: &extension::FailureMapping,
        errors: &mut SpecErrors,
    ) -> Option<Failure> {
        let rel = format!("/failures/{i}");
        let response = self.response(&format!("{rel}/status"), &f.status, errors)?;
        let when = match &f.when {
            Some(w) => match self.when(types, response, &format!("{rel}/when"), w) {
                Ok(when) => Some(when),
                Err(e) => {
                    errors.push(e);
                    return None;
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
        Some(Failure {
            key: response.key,
            status: response.status,
            when,
            kind: f.kind,
            kinds,
            code,
            message,
            unprocessed: f.unprocessed,
        })
    }

    /// Every documented status has a meaning: the success, or a failure without a rule.
    fn check_covered(
        &self,
        success_response: &ResponseCase,
        failures: &[Failure],
        errors: &mut SpecErrors,
    ) {
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
                Want::Label => match leaf {
                    Ty::String | Ty::Secret => true,
                    Ty::Named(name) => matches!(
                        types.defs().get(name).map(|t| &t.def),
                        Some(Def::Enum { .. })
                    ),
                    _ => false,
                },
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
                    Want::Label => "a string or a string enum",
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
}
