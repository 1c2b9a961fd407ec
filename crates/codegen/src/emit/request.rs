//! The pieces every request of a generated client is built from, shared by the client, its
//! operations and its grants: per-client values as arguments, stored fields and text, the
//! request body's construction, grant arguments and the names of operations.

use super::types::{enum_variant, field_ident, ty};
use crate::model::{ConfigField, FillSource, GrantArg, Operation, Provider};
use crate::names::{ident, snake};
use crate::types::Ty;
use proc_macro2::{Ident, Literal, TokenStream};
use quote::quote;
use serde_json::Value;

/// A literal for an example value, as a builder argument; a generated enum's value is named
/// through `krate` (the generated crate, as the caller sees it).
pub fn example_literal(field: &ConfigField, krate: &TokenStream) -> TokenStream {
    match (&field.ty, &field.example) {
        (Ty::Named(name), Value::String(s)) if field.copy => {
            let e = ident(name);
            let v = enum_variant(s);
            quote!(#krate::#e::#v)
        }
        (Ty::I32 | Ty::I64, Value::Number(n)) if n.is_i64() => {
            let v = n.as_i64().unwrap_or_default();
            let lit = match field.ty {
                Ty::I32 => Literal::i32_unsuffixed(i32::try_from(v).unwrap_or_default()),
                _ => Literal::i64_unsuffixed(v),
            };
            quote!(#lit)
        }
        (Ty::F64, Value::Number(n)) => {
            let lit = Literal::f64_unsuffixed(n.as_f64().unwrap_or_default());
            quote!(#lit)
        }
        (Ty::Bool, Value::Bool(b)) => quote!(#b),
        (_, Value::String(s)) => quote!(#s),
        (_, other) => {
            let text = other.to_string();
            quote!(#text)
        }
    }
}

/// The argument type a builder takes for a per-client value.
pub(super) fn arg_ty(field: &ConfigField) -> TokenStream {
    match field.ty {
        Ty::String => quote!(impl Into<String>),
        Ty::Secret => quote!(impl Into<tokenkit::Secret>),
        _ => ty(&field.ty),
    }
}

/// How a builder stores an argument: `: name.into()` where it takes `impl Into`, nothing
/// (shorthand initialisation) where it takes the type itself.
pub(super) fn arg_conversion(field: &ConfigField, name: &Ident) -> Option<TokenStream> {
    match field.ty {
        Ty::String | Ty::Secret => Some(quote!(: #name.into())),
        _ => None,
    }
}

pub(super) fn stored_ty(field: &ConfigField) -> TokenStream {
    let inner = ty(&field.ty);
    if field.required {
        inner
    } else {
        quote!(Option<#inner>)
    }
}

/// The form in which a per-client value goes to [`place`]: a `&str`, or for a secret the
/// secret itself, which the endpoint keeps as one.
pub(super) fn as_text(field: &ConfigField, value: TokenStream) -> TokenStream {
    match field.ty {
        Ty::String => quote!(#value.as_str()),
        Ty::Secret => value,
        _ => quote!(#value.to_string().as_str()),
    }
}

/// The server variables' values as `&[(name, String)]`, read from `self` (the builder, or a
/// client that keeps them); `None` when the spec's server has none.
pub(super) fn variable_values(provider: &Provider, idents: &[Ident]) -> Option<TokenStream> {
    if provider.server_variables.is_empty() {
        return None;
    }
    let pairs = provider.server_variables.iter().map(|v| {
        let field = &provider.config[v.field];
        let id = &idents[v.field];
        let name = v.name.as_str();
        let value = match (&v.default, &field.ty) {
            (None, Ty::String) => quote!(self.#id.clone()),
            (None, _) => quote!(self.#id.to_string()),
            (Some(default), _) => {
                quote!(self.#id.as_ref().map_or_else(|| #default.to_owned(), ToString::to_string))
            }
        };
        quote!((#name, #value))
    });
    Some(quote!(&[#(#pairs),*]))
}

/// The expression that builds a request body: the refresh's (`token` in scope) or a grant's
/// (its arguments in scope).
pub(super) fn request_body(
    wrap: Option<&(String, String)>,
    struct_name: &str,
    fill: &[crate::model::BodyFill],
    idents: &[Ident],
    config: &[ConfigField],
) -> TokenStream {
    let struct_ident = ident(struct_name);
    let fills = fill.iter().map(|f| {
        let field = field_ident(&f.json);
        let value = match &f.source {
            FillSource::RefreshToken => quote!(token.into()),
            FillSource::Constant { enum_name, value } => {
                let e = ident(enum_name);
                let v = enum_variant(value);
                quote!(#e::#v)
            }
            FillSource::Literal(text) => quote!(#text.into()),
            FillSource::Arg(GrantArg::CodeVerifier) if f.optional => {
                return quote!(#field: verifier.map(|v| v.secret().clone()),);
            }
            FillSource::Arg(GrantArg::TokenTypeHint) => quote!(hint.as_str().into()),
            FillSource::Arg(arg) => {
                let (name, _) = grant_param(*arg, false);
                if arg.is_secret() {
                    match arg {
                        GrantArg::CodeVerifier => quote!(#name.secret().clone()),
                        _ => quote!(#name.clone()),
                    }
                } else {
                    quote!(#name.into())
                }
            }
            FillSource::Omit => return quote!(#field: None,),
            // A placeholder: the endpoint writes a fresh value over it when it sends.
            FillSource::Generated { as_text: true, .. } | FillSource::ClientAssertion => {
                quote!("".into())
            }
            FillSource::Generated { as_text: false, .. } => quote!(0),
            FillSource::Config(i) => {
                let id = &idents[*i];
                let value = if config[*i].copy {
                    quote!(self.#id)
                } else {
                    quote!(self.#id.clone())
                };
                // A value the builder requires, in a field this request may leave out.
                if f.optional && config[*i].required {
                    return quote!(#field: Some(#value),);
                }
                return quote!(#field: #value,);
            }
        };
        if f.optional {
            quote!(#field: Some(#value),)
        } else {
            quote!(#field: #value,)
        }
    });
    let mut expr = quote!(#struct_ident { #(#fills)* });
    if let Some((enum_name, variant)) = wrap {
        let e = ident(enum_name);
        let v = ident(variant);
        expr = quote!(#e::#v(#expr));
    }
    expr
}

/// The typed operation's method name: the operationId in snake case, unless that is a name the
/// client already has (`refresh` would hide `RefreshClient::refresh`).
pub fn operation_fn(operation_id: &str) -> String {
    let name = snake(operation_id);
    let taken = [
        "refresh",
        "provider",
        "rotation",
        "attempt_timeout",
        "base_url",
        "builder",
        "refresh_request",
        "client_credentials_request",
        "client_credentials_grant",
        "authorization_code_request",
        "authorization_code_grant",
        "password_request",
        "password_grant",
        "jwt_bearer_request",
        "jwt_bearer_grant",
        "authorization_url",
        "grants",
        "grant_types",
        "revoke",
        "revoke_request",
        "revoke_token",
    ];
    if taken.contains(&name.as_str()) {
        format!("{name}_operation")
    } else {
        name
    }
}

/// Whether the body's fill puts the refresh token in it.
pub(super) fn body_uses_token(op: &crate::model::Operation) -> bool {
    op.body.as_ref().is_some_and(|b| {
        b.fill
            .iter()
            .any(|f| matches!(f.source, FillSource::RefreshToken))
    })
}

pub(super) fn first_line(doc: Option<&str>) -> String {
    doc.and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("a per-client value.")
        .to_owned()
}

/// A grant operation's names: its endpoint field and its operation constant.
pub(super) fn grant_op_names(op: &Operation) -> (Ident, Ident) {
    let snake_id = snake(&op.id);
    (
        ident(&format!("{snake_id}_endpoint")),
        ident(&format!("{}_OPERATION", snake_id.to_ascii_uppercase())),
    )
}

/// A grant argument's parameter name and type.
pub(super) fn grant_param(arg: GrantArg, optional: bool) -> (Ident, TokenStream) {
    let (name, ty) = match arg {
        GrantArg::Code => ("code", quote!(&tokenkit::Secret)),
        GrantArg::RedirectUri => ("redirect_uri", quote!(&str)),
        GrantArg::CodeVerifier if optional => ("verifier", quote!(Option<&tokenkit::PkceVerifier>)),
        GrantArg::CodeVerifier => ("verifier", quote!(&tokenkit::PkceVerifier)),
        GrantArg::Username => ("username", quote!(&str)),
        GrantArg::Password => ("password", quote!(&tokenkit::Secret)),
        GrantArg::Assertion => ("assertion", quote!(&tokenkit::Secret)),
        GrantArg::RevokedToken => ("token", quote!(&tokenkit::Secret)),
        GrantArg::TokenTypeHint => ("hint", quote!(tokenkit::TokenTypeHint)),
    };
    (ident(name), ty)
}
