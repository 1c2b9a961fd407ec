//! Tokens that apply the token mapping: pointer-following functions and `into_token_set`.

use super::types::field_ident;
use crate::extension::{FailureKind, TimeFormat};
use crate::model::{Failure, Mapped, ResponseCase, StatusKey, Test, TokenOperation};
use crate::names::ident;
use crate::types::Access;
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

/// What a pointer-following function returns, made from a reference to the target.
#[derive(Clone, Copy, Debug)]
enum Finish {
    /// `Option<tokenkit::Secret>`.
    Secret,
    /// `Option<String>`.
    Text,
    /// `Option<f64>`.
    Seconds,
    /// `Option<serde_json::Value>`: the target as JSON, for a `when` rule (`None`: absent).
    Json,
    /// `Option<SystemTime>`: an absolute time, written as the format says (`None`: read from
    /// the value).
    Instant(Option<TimeFormat>),
}

impl Finish {
    fn output(self) -> TokenStream {
        match self {
            Finish::Secret => quote!(Option<tokenkit::Secret>),
            Finish::Text => quote!(Option<String>),
            Finish::Seconds => quote!(Option<f64>),
            Finish::Json => quote!(Option<serde_json::Value>),
            Finish::Instant(_) => quote!(Option<std::time::SystemTime>),
        }
    }

    fn apply(self, target: TokenStream) -> TokenStream {
        match self {
            Finish::Secret => quote!(Some(support::mapping::secret(#target))),
            Finish::Text => quote!(support::mapping::text(#target)),
            Finish::Seconds => quote!(support::mapping::seconds(#target)),
            Finish::Json => quote!(support::mapping::json(#target)),
            Finish::Instant(format) => {
                let format = match format {
                    None => quote!(Auto),
                    Some(TimeFormat::Seconds) => quote!(Seconds),
                    Some(TimeFormat::Milliseconds) => quote!(Milliseconds),
                    Some(TimeFormat::DateTime) => quote!(DateTime),
                };
                quote!(support::mapping::instant(#target, tokenkit::TimeFormat::#format))
            }
        }
    }
}

/// An expression of the finisher's type that follows `access` from `place`; `is_ref` says
/// whether `place` is already a reference. Optional fields are crossed with `?`.
fn follow(place: TokenStream, is_ref: bool, access: &Access, finish: Finish) -> TokenStream {
    match access {
        Access::Leaf(_) => {
            let target = if is_ref { place } else { quote!(&#place) };
            finish.apply(target)
        }
        Access::Field {
            json,
            optional,
            next,
        } => {
            let field = field_ident(json);
            match (optional, next.as_ref()) {
                (false, next) => follow(quote!(#place.#field), false, next, finish),
                (true, Access::Leaf(_)) => finish.apply(quote!(#place.#field.as_ref()?)),
                (true, next) => follow(quote!(#place.#field.as_ref()?), true, next, finish),
            }
        }
        Access::Variants { enum_name, arms } => {
            let enum_ident = ident(enum_name);
            let scrutinee = if is_ref { place } else { quote!(&#place) };
            let arms = arms.iter().map(|(variant, arm)| {
                let variant = ident(variant);
                match arm {
                    Some(arm) => {
                        let inner = follow(quote!(value), true, arm, finish);
                        quote!(#enum_ident::#variant(value) => #inner,)
                    }
                    None => quote!(#enum_ident::#variant(_) => None,),
                }
            });
            quote!(match #scrutinee { #(#arms)* })
        }
    }
}

/// The pointer-following functions of one client, in the order they are needed: one `mapping`
/// module for every operation, so two operations (or two failures) that read the same field of
/// the same type share one function.
#[derive(Default)]
pub struct Getters {
    functions: Vec<TokenStream>,
    /// The function already written for a body type, pointer and result, by name.
    written: Vec<(String, Ident)>,
}

impl Getters {
    /// The `mapping` module holding every function.
    pub fn module(&self) -> TokenStream {
        let functions = &self.functions;
        quote! {
            /// Functions that follow the token mapping's pointers through the typed bodies.
            mod mapping {
                use super::*;

                #(#functions)*
            }
        }
    }

    /// Adds a function named `name` and returns a call of it on `body`.
    fn call(
        &mut self,
        name: &str,
        purpose: &str,
        case: &ResponseCase,
        mapped: &Mapped,
        finish: Finish,
    ) -> TokenStream {
        let body_ty = case
            .body
            .as_ref()
            .map(|(_, ty)| format!("{ty:?}"))
            .unwrap_or_default();
        let key = format!("{body_ty}|{}|{finish:?}", mapped.pointer);
        if let Some((_, existing)) = self.written.iter().find(|(k, _)| *k == key) {
            return quote!(mapping::#existing(&body));
        }
        // Named by role and body; a second reading of the same role elsewhere in that body
        // gets a number.
        let taken = |n: &str| self.written.iter().any(|(_, w)| w == n);
        let name = (1..)
            .map(|n| match n {
                1 => name.to_owned(),
                n => format!("{name}_{n}"),
            })
            .find(|n| !taken(n))
            .unwrap_or_default();
        let name = format_ident!("{}", name);
        self.functions
            .push(getter(&name, purpose, case, mapped, finish));
        self.written.push((key, name.clone()));
        quote!(mapping::#name(&body))
    }

    /// A call, or `None` when the mapping has no such pointer.
    fn call_opt(
        &mut self,
        name: &str,
        purpose: &str,
        case: &ResponseCase,
        mapped: Option<&Mapped>,
        finish: Finish,
    ) -> Option<TokenStream> {
        mapped.map(|m| self.call(name, purpose, case, m, finish))
    }
}

fn getter(
    name: &Ident,
    purpose: &str,
    case: &ResponseCase,
    mapped: &Mapped,
    finish: Finish,
) -> TokenStream {
    let body_ty = match &case.body {
        Some((_, ty)) => super::types::ty(ty),
        None => quote!(()),
    };
    let output = finish.output();
    let body = follow(quote!(body), true, &mapped.access, finish);
    let in_body = match &case.body {
        Some((_, crate::types::Ty::Named(name))) => format!("a [`{name}`]"),
        _ => format!("the `{}` body", case.key.spec_key()),
    };
    let doc = super::docs(&format!("{purpose}: `{}` of {in_body}.", mapped.pointer));
    quote! {
        #doc
        pub(super) fn #name(body: &#body_ty) -> #output {
            #body
        }
    }
}

/// A failure body's name in accessor names: its type's, or its status's when it has none.
fn body_name(case: &ResponseCase) -> String {
    match &case.body {
        Some((_, crate::types::Ty::Named(name))) => crate::names::snake(name),
        _ => format!("status_{}", case.key.spec_key().to_ascii_lowercase()),
    }
}

/// The status an arm knows: a literal for one code, the bound `status` for a range or default.
fn status_tokens(key: StatusKey) -> TokenStream {
    match key {
        StatusKey::Code(code) => {
            let code = proc_macro2::Literal::u16_unsuffixed(code);
            quote!(#code)
        }
        StatusKey::Range(_) | StatusKey::Default => quote!(status),
    }
}

fn kind(kind: FailureKind) -> TokenStream {
    match kind {
        FailureKind::InvalidGrant => quote!(tokenkit::ErrorKind::ReAuthenticate),
        FailureKind::Rejected => quote!(tokenkit::ErrorKind::Rejected),
        FailureKind::Transient => quote!(tokenkit::ErrorKind::RetryLater),
    }
}

/// A `when` test as the runtime's `support::mapping::Rule`.
fn rule(test: &Test) -> TokenStream {
    let literal = |v: &serde_json::Value| v.to_string();
    match test {
        Test::Equals(v) => {
            let v = literal(v);
            quote!(support::mapping::Rule::Equals(#v))
        }
        Test::NotEquals(v) => {
            let v = literal(v);
            quote!(support::mapping::Rule::NotEquals(#v))
        }
        Test::OneOf(values) => {
            let values = values.iter().map(literal);
            quote!(support::mapping::Rule::OneOf(&[#(#values),*]))
        }
        Test::Present => quote!(support::mapping::Rule::Present),
        Test::Absent => quote!(support::mapping::Rule::Absent),
    }
}

/// The runtime function that fails with `kind`'s error.
fn failing(kind: FailureKind) -> TokenStream {
    match kind {
        FailureKind::InvalidGrant => quote!(support::mapping::invalid_grant),
        FailureKind::Rejected => quote!(support::mapping::rejected),
        FailureKind::Transient => quote!(support::mapping::transient),
    }
}

/// The `decode`, `token_set` and `into_token_set` methods of an operation's outcome enum; the
/// functions they call go to `getters` (see [`Getters::module`]).
pub fn mapping(
    file: &str,
    answering: &TokenOperation,
    outcome: &Ident,
    decode: TokenStream,
    getters: &mut Getters,
) -> TokenStream {
    let success = &answering.success;
    let failures = &answering.failures;
    let case_of = |status: u16| {
        answering
            .operation
            .responses
            .iter()
            .find(|r| r.status == status)
            .expect("the model checked that every mapped status is documented")
    };
    let success_case = case_of(success.status);

    // The failures, by status: `when` discriminators first, then the fallback.
    let mut failure_checks: Vec<(u16, Option<TokenStream>, TokenStream)> = Vec::new();
    for failure in failures {
        let case = case_of(failure.status);
        let condition = failure.when.as_ref().map(|when| {
            let call = getters.call(
                &format!("{}_failure_rule", body_name(case)),
                "The value a failure rule tests",
                case,
                &when.mapped,
                Finish::Json,
            );
            let rule = rule(&when.test);
            quote!(#rule.test(#call))
        });
        let error = failure_error(failure, case, getters);
        failure_checks.push((failure.status, condition, error));
    }

    let access = getters.call(
        "access_token",
        "The access token",
        success_case,
        &success.access_token,
        Finish::Secret,
    );
    let success_guard = success.when.as_ref().map(|when| {
        let call = getters.call(
            "success_when",
            "The value the success rule tests",
            success_case,
            &when.mapped,
            Finish::Json,
        );
        let rule = rule(&when.test);
        let status = status_tokens(success_case.key);
        quote!(if !#rule.test(#call) { return Err(support::mapping::unrecognized(#status)); })
    });
    let refresh_token = match &success.refresh_token {
        Some(m) => {
            let call = getters.call(
                "refresh_token",
                "The new refresh token",
                success_case,
                m,
                Finish::Secret,
            );
            Some(call)
        }
        None => None,
    };
    let expires_in = getters.call_opt(
        "expires_in",
        "The lifetime",
        success_case,
        success.expires_in.as_ref(),
        Finish::Seconds,
    );
    let created_at = getters.call_opt(
        "created_at",
        "The issue time",
        success_case,
        success.created_at.as_ref(),
        Finish::Seconds,
    );
    let token_type = getters.call_opt(
        "token_type",
        "The token type",
        success_case,
        success.token_type.as_ref(),
        Finish::Text,
    );
    let expires_at = success.expires_at.as_ref().map(|(m, format)| {
        getters.call(
            "expires_at",
            "The access token's expiry",
            success_case,
            m,
            Finish::Instant(*format),
        )
    });
    let refresh_expires_in = getters.call_opt(
        "refresh_expires_in",
        "The refresh token's lifetime",
        success_case,
        success.refresh_expires_in.as_ref(),
        Finish::Seconds,
    );
    let refresh_expires_at = success.refresh_expires_at.as_ref().map(|(m, format)| {
        getters.call(
            "refresh_expires_at",
            "The refresh token's expiry",
            success_case,
            m,
            Finish::Instant(*format),
        )
    });
    let secret_pointers: Vec<&str> = std::iter::once(success.access_token.pointer.as_str())
        .chain(success.refresh_token.as_ref().map(|m| m.pointer.as_str()))
        .collect();
    let success_status = success.status;
    let success_literal = proc_macro2::Literal::u16_unsuffixed(success_status);
    let lifetime = success.lifetime.map(|secs| {
        let secs = proc_macro2::Literal::u64_unsuffixed(secs);
        quote!(Some(#secs))
    });
    let refresh_idle_lifetime = success.refresh_idle_lifetime.map(|secs| {
        let secs = proc_macro2::Literal::u64_unsuffixed(secs);
        quote!(Some(#secs))
    });

    // With a `default` response the decoder never builds `Undocumented`; it is still matched,
    // since the variant exists in every outcome enum.
    let undocumented = quote! {
        Self::Undocumented(answer) => Err(answer.into()),
    };
    let arms = answering.operation.responses.iter().map(|case| {
        let variant = ident(&case.variant);
        let status = case.status;
        let checks: Vec<&(u16, Option<TokenStream>, TokenStream)> = failure_checks
            .iter()
            .filter(|(s, _, _)| *s == status)
            .collect();
        let success_guard = (status == success_status)
            .then(|| success_guard.clone())
            .flatten();
        let guarded = checks
            .iter()
            .filter_map(|(_, cond, error)| {
                cond.as_ref()
                    .map(|cond| quote!(if #cond { return #error; }))
            })
            .chain(success_guard);
        let fallback = if status == success_status {
            let optional = [
                ("refresh_token", &refresh_token),
                ("expires_in", &expires_in),
                ("created_at", &created_at),
                ("token_type", &token_type),
                ("expires_at", &expires_at),
                ("refresh_expires_in", &refresh_expires_in),
                ("refresh_expires_at", &refresh_expires_at),
                ("lifetime", &lifetime),
                ("refresh_idle_lifetime", &refresh_idle_lifetime),
            ];
            let rest = optional
                .iter()
                .any(|(_, value)| value.is_none())
                .then(|| quote!(..Default::default()));
            let fields = optional.iter().filter_map(|(name, value)| {
                let name = format_ident!("{}", name);
                value.as_ref().map(|value| quote!(#name: #value,))
            });
            quote! {
                support::mapping::Fields {
                    access_token: #access,
                    #(#fields)*
                    tokens: &[#(#secret_pointers),*],
                    #rest
                }
                .token_set(&body, #success_literal, received)
            }
        } else {
            checks
                .iter()
                .find(|(_, cond, _)| cond.is_none())
                .map(|(_, _, error)| error.clone())
                .expect("the model checked that every documented status has a meaning")
        };
        let guarded: Vec<TokenStream> = guarded.collect();
        let uses_body = status == success_status
            || failures.iter().any(|f| {
                f.status == status && (f.when.is_some() || f.code.is_some() || f.message.is_some())
            });
        let binding = if case.body.is_some() && uses_body {
            quote!(body)
        } else {
            quote!(_)
        };
        let pattern = match case.key {
            StatusKey::Code(_) => quote!(Self::#variant(#binding)),
            _ if case.body.is_some() && uses_body => quote!(Self::#variant { status, body }),
            _ => quote!(Self::#variant { status, .. }),
        };
        if guarded.is_empty() {
            quote!(#pattern => #fallback,)
        } else {
            quote! {
                #pattern => {
                    #(#guarded)*
                    #fallback
                }
            }
        }
    });

    // The failure rules again, judged on the body as received: a `oneOf` arm the body decodes
    // to may have dropped the field a rule reads.
    let raw_checks = failures.iter().filter_map(|failure| {
        let when = failure.when.as_ref()?;
        let status = match case_of(failure.status).key {
            StatusKey::Code(code) => {
                let code = proc_macro2::Literal::u16_unsuffixed(code);
                quote!(status == #code)
            }
            StatusKey::Range(hundreds) => {
                let hundreds = proc_macro2::Literal::u16_unsuffixed(hundreds);
                quote!(status / 100 == #hundreds)
            }
            // A `default` failure covers what no other status does: the typed path decides.
            StatusKey::Default => return None,
        };
        let pointer = &when.mapped.pointer;
        let test = rule(&when.test);
        let text_at = |mapped: Option<&Mapped>| match mapped {
            Some(m) => {
                let p = &m.pointer;
                quote!(support::mapping::at(raw.as_ref(), #p).and_then(|v| support::mapping::text(&v)))
            }
            None => quote!(None),
        };
        let (code, message) = (text_at(failure.code.as_ref()), text_at(failure.message.as_ref()));
        let error = failure_result(failure, &quote!(status), &code, &message);
        Some(quote! {
            if #status && #test.test(support::mapping::at(raw.as_ref(), #pointer)) {
                return #error;
            }
        })
    });
    let raw_checks: Vec<TokenStream> = raw_checks.collect();
    let finish = if raw_checks.is_empty() {
        quote!(Self::decode(response)?.into_token_set(received))
    } else {
        quote! {
            let outcome = Self::decode(response)?;
            let raw = support::mapping::received(response);
            let status = response.status();
            #(#raw_checks)*
            outcome.into_token_set(received)
        }
    };
    let doc = super::docs(&format!(
        "Applies the token mapping of `{}`: the success body becomes a token set, and every \
         documented failure the error its mapping names. `refresh_token` is `None` when the \
         response carries none (the runtime then keeps the one sent, where the rotation policy \
         allows it); `received` is when the response arrived, the origin of a relative expiry.",
        file
    ));
    quote! {
        impl #outcome {
            #decode

            /// Decodes a response and applies the mapping: how the client's requests end.
            pub fn token_set(
                response: &support::Response,
                received: std::time::SystemTime,
            ) -> Result<tokenkit::TokenSet, tokenkit::RefreshError> {
                #finish
            }

            #doc
            pub fn into_token_set(
                self,
                received: std::time::SystemTime,
            ) -> Result<tokenkit::TokenSet, tokenkit::RefreshError> {
                match self {
                    #(#arms)*
                    #undocumented
                }
            }
        }
    }
}

fn failure_error(failure: &Failure, case: &ResponseCase, getters: &mut Getters) -> TokenStream {
    let status = status_tokens(case.key);
    let or_none = |call: Option<TokenStream>| call.unwrap_or_else(|| quote!(None));
    let code = or_none(getters.call_opt(
        &format!("{}_code", body_name(case)),
        "The provider's error code",
        case,
        failure.code.as_ref(),
        Finish::Text,
    ));
    let message = or_none(getters.call_opt(
        &format!("{}_message", body_name(case)),
        "The provider's error message",
        case,
        failure.message.as_ref(),
        Finish::Text,
    ));
    failure_result(failure, &status, &code, &message)
}

/// The error of `failure` (an expression), given how to read its status, code and message.
fn failure_result(
    failure: &Failure,
    status: &TokenStream,
    code: &TokenStream,
    message: &TokenStream,
) -> TokenStream {
    // What the spec says the answer proves about the request, where it overrides the status.
    let unprocessed = failure
        .unprocessed
        .map(|value| quote!(.map_err(|e| e.with_unprocessed(#value))));
    if failure.kinds.is_empty() {
        let fail = failing(failure.kind);
        return quote!(#fail(#status, #code, #message) #unprocessed);
    }
    let default_kind = kind(failure.kind);
    let arms = failure.kinds.iter().map(|(code, k)| {
        let k = kind(*k);
        quote!(Some(#code) => #k,)
    });
    quote! {{
        let code = #code;
        let kind = match code.as_deref() { #(#arms)* _ => #default_kind };
        support::mapping::failure(kind, #status, code, #message) #unprocessed
    }}
}
