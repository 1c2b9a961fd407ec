//! One token operation's part of a generated client: its `support::Operation` constant, its
//! outcome enum and `decode`, the setup of its endpoint, and for a grant's own operation its
//! endpoint field and typed method (the mapping methods come from `emit::mapping`).

use super::docs;
use super::request::*;
use super::types::ty;
use crate::extension::GenerateKind;
use crate::model::{
    Auth, ConfigField, FillSource, Grant, Location, Operation, ParamValue, Provider, Refresh,
    RefreshPlace, StatusKey, TokenOperation,
};
use crate::names::ident;
use crate::types::Ty;
use proc_macro2::{Ident, TokenStream};
use quote::quote;

/// The `support::Generate` variant of a kind.
fn generate_kind(kind: GenerateKind) -> TokenStream {
    match kind {
        GenerateKind::Uuid => quote!(support::Generate::Uuid),
        GenerateKind::Nonce => quote!(support::Generate::Nonce),
        GenerateKind::UnixSeconds => quote!(support::Generate::UnixSeconds),
        GenerateKind::UnixMilliseconds => quote!(support::Generate::UnixMilliseconds),
        GenerateKind::DateTime => quote!(support::Generate::DateTime),
    }
}

/// The statements that set up an endpoint (`endpoint` in scope) for `op` at build time: the
/// `Accept` header, the parameters, the values made fresh for each request (its own and those
/// of the `grants` it also serves) and the client authentication.
pub(super) fn endpoint_setup(
    op: &Operation,
    auth: Option<&Auth>,
    grants: &[Grant],
    config: &[ConfigField],
    idents: &[Ident],
) -> Vec<TokenStream> {
    let accept = &op.accept;
    let mut setup = vec![quote!(endpoint.header("Accept", #accept)?;)];
    let fills = op
        .body
        .iter()
        .flat_map(|b| &b.fill)
        .chain(grants.iter().flat_map(|g| &g.fill));
    let mut fresh: Vec<&str> = Vec::new();
    for fill in fills {
        if let FillSource::Generated { kind, as_text } = fill.source
            && !fresh.contains(&fill.json.as_str())
        {
            fresh.push(&fill.json);
            let (json, kind) = (fill.json.as_str(), generate_kind(kind));
            setup.push(quote!(endpoint.generated_body(#json, #kind, #as_text);));
        }
    }
    for param in &op.params {
        let wire = param.name.as_str();
        match &param.value {
            ParamValue::Constant(value) => {
                setup.push(place(param.location, wire, quote!(#value), false))
            }
            ParamValue::Config(index) => {
                let field = &config[*index];
                let i = &idents[*index];
                let secret = field.ty == Ty::Secret;
                setup.push(if field.required {
                    place(
                        param.location,
                        wire,
                        as_text(field, quote!(self.#i)),
                        secret,
                    )
                } else {
                    let inner = place(param.location, wire, as_text(field, quote!(value)), secret);
                    quote!(if let Some(value) = &self.#i { #inner })
                });
            }
            // Sent with each request, by the endpoint (`Operation::refresh_token`).
            ParamValue::RefreshToken => {}
            ParamValue::Generated(kind) => {
                let kind = generate_kind(*kind);
                setup.push(match param.location {
                    Location::Header => quote!(endpoint.generated_header(#wire, #kind)?;),
                    _ => quote!(endpoint.generated_query(#wire, #kind);),
                });
            }
        }
    }
    match auth {
        Some(Auth::Basic { id, secret }) => {
            let (id, secret) = (&idents[*id], &idents[*secret]);
            setup.push(quote!(endpoint.basic_auth(self.#id.as_str(), &self.#secret)?;));
        }
        Some(Auth::PrivateKeyJwt { field, client_id }) => {
            let id = &idents[*client_id];
            setup.push(
                quote!(endpoint.client_assertion(#field, &self.signing_key, self.#id.as_str());),
            );
        }
        Some(Auth::ApiKey {
            location,
            name,
            key,
        }) => {
            let i = &idents[*key];
            setup.push(place(*location, name, quote!(self.#i), true));
        }
        None => {}
    }
    setup
}

/// An operation's outcome enum and its `decode` function.
pub(super) fn outcome_items(op: &Operation, outcome: &Ident) -> (TokenStream, TokenStream) {
    let decode_arms = op.responses.iter().map(|case| {
        let variant = ident(&case.variant);
        let value = if case.body.is_some() {
            quote!(response.json()?)
        } else {
            quote!(response.snippet())
        };
        match case.key {
            StatusKey::Code(code) => {
                let code = proc_macro2::Literal::u16_unsuffixed(code);
                quote!(#code => Self::#variant(#value),)
            }
            StatusKey::Range(class) => {
                let low = proc_macro2::Literal::u16_unsuffixed(class * 100);
                let high = proc_macro2::Literal::u16_unsuffixed(class * 100 + 99);
                quote!(status @ #low..=#high => Self::#variant { status, body: #value },)
            }
            StatusKey::Default => quote!(status => Self::#variant { status, body: #value },),
        }
    });
    let has_default = op.responses.iter().any(|c| c.key == StatusKey::Default);
    let undocumented_arm =
        (!has_default).then(|| quote!(_ => Self::Undocumented(response.undocumented()),));
    let outcome_variants = op.responses.iter().map(|case| {
        let variant = ident(&case.variant);
        let inner = match &case.body {
            Some((_, t)) => ty(t),
            None => quote!(tokenkit::Snippet),
        };
        let doc = docs(&format!(
            "`{}`: {}",
            case.key.spec_key(),
            case.description.trim()
        ));
        match case.key {
            StatusKey::Code(_) => quote! {
                #doc
                #variant(#inner),
            },
            _ => quote! {
                #doc
                #variant {
                    /// The HTTP status.
                    status: u16,
                    /// The body.
                    body: #inner,
                },
            },
        }
    });
    let outcome_doc = docs(&format!(
        "The outcome of `{}`: one variant per documented status, with its typed body (or a scrubbed \
         snippet where the spec documents no body).",
        op.id
    ));
    let enum_def = quote! {
        #outcome_doc
        #[derive(Clone, Debug, PartialEq)]
        pub enum #outcome {
            #(#outcome_variants)*
            /// A status the spec does not document.
            Undocumented(support::Undocumented),
        }
    };
    let decode = quote! {
        /// Reads a response into the variant of its status: the typed body where the spec
        /// documents one, a scrubbed snippet where it does not.
        pub fn decode(response: &support::Response) -> Result<Self, tokenkit::RefreshError> {
            let outcome = match response.status() {
                #(#decode_arms)*
                #undocumented_arm
            };
            Ok(outcome)
        }
    };
    (enum_def, decode)
}

/// What the grant operations add to the client.
#[derive(Default)]
pub(super) struct GrantOps {
    /// One section per operation: its constant, outcome enum, typed method and mapping.
    pub(super) items: Vec<TokenStream>,
    /// The endpoint fields of `Client`.
    pub(super) fields: Vec<TokenStream>,
    /// Building each endpoint in `ClientBuilder::build`.
    pub(super) builds: Vec<TokenStream>,
    /// Their `Client` initialisers.
    pub(super) inits: Vec<TokenStream>,
}

impl GrantOps {
    /// Builds endpoint `field` of the operation `constant` from a clone of the builder's
    /// connection, set up by `setup`, its secrets scrubbed, and puts it in `Client`.
    fn endpoint(
        &mut self,
        field: &Ident,
        constant: &Ident,
        setup: &[TokenStream],
        scrubs: &[TokenStream],
    ) {
        self.builds.push(quote! {
            let #field = {
                let mut endpoint = support::Endpoint::new(self.connection.clone(), &#constant)?;
                #(#setup)*
                #(#scrubs)*
                endpoint
            };
        });
        self.inits.push(quote!(#field,));
    }
}

/// How an operation's body is written.
fn encoding(op: &Operation) -> TokenStream {
    match &op.body {
        Some(b) if crate::model::is_form(&b.media_type) => quote!(support::Encoding::Form),
        Some(_) => quote!(support::Encoding::Json),
        None => quote!(support::Encoding::Empty),
    }
}

pub(super) fn grant_operations(
    provider: &Provider,
    config: &[ConfigField],
    idents: &[Ident],
    scrubs: &[TokenStream],
    sensitive: &[&str],
    getters: &mut super::mapping::Getters,
) -> GrantOps {
    let mut out = GrantOps::default();
    for (g, grant) in provider.grant_operations() {
        let op = &g.operation;
        let (field, constant) = grant_op_names(op);
        let outcome = ident(&op.outcome);
        let (enum_def, decode) = outcome_items(op, &outcome);
        let mapping = super::mapping::mapping(&provider.file, g, &outcome, decode, getters);
        let (method, path) = (op.method.as_str(), op.path.as_str());
        let encoding = encoding(op);
        let const_doc = docs(&format!(
            "The `{}` operation's request ({} grant), as the spec describes it.",
            op.id,
            grant.kind.key()
        ));
        out.items.push(quote! {
            #const_doc
            const #constant: support::Operation = support::Operation {
                method: #method,
                path: #path,
                encoding: #encoding,
                refresh_token: support::TokenPlace::NotSent,
                sensitive_fields: &[#(#sensitive),*],
            };

            #enum_def
        });
        let field_doc = docs(&format!("The endpoint of `{} {}`.", op.method, op.path));
        out.fields.push(quote! {
            #field_doc
            #field: support::Endpoint,
        });
        let setup = endpoint_setup(op, g.auth.as_ref(), &[], config, idents);
        out.endpoint(&field, &constant, &setup, scrubs);
        let op_fn = ident(&operation_fn(&op.id));
        let sends = match &op.body {
            Some(_) => "Sends `body` as it is",
            None => "Sends the request (every value was fixed when the client was built)",
        };
        let op_doc = docs(&format!(
            "`{} {}`: the {} grant's own operation. {sends} and returns the documented outcome \
             for the status that came back.",
            op.method,
            op.path,
            grant.kind.key()
        ));
        let (args, body) = match &op.body {
            Some(b) => {
                let body_ty = ty(&b.ty);
                (quote!(body: &#body_ty), quote!(body))
            }
            None => (quote!(), quote!(&())),
        };
        out.items.push(quote! {
            impl Client {
                #op_doc
                pub async fn #op_fn(&self, #args) -> Result<#outcome, tokenkit::RefreshError> {
                    #outcome::decode(&self.#field.send(#body, None).await?)
                }
            }
        });
        out.items.push(mapping);
    }
    out
}

/// The revocation operation's part (`x-token-revoke`), added to `out` like a grant
/// operation's: its constant, its endpoint, and `revoke_request` and `revoke_token`, which
/// `RefreshClient::revoke` calls.
pub(super) fn revocation(
    provider: &Provider,
    idents: &[Ident],
    scrubs: &[TokenStream],
    sensitive: &[&str],
    out: &mut GrantOps,
) {
    let Some(revocation) = &provider.revocation else {
        return;
    };
    let op = &revocation.operation;
    let config = &provider.config;
    let (method, path) = (op.method.as_str(), op.path.as_str());
    let encoding = encoding(op);
    let Some(body) = &op.body else {
        return;
    };
    let body_ty = ty(&body.ty);
    let expr = request_body(
        revocation.wrap.as_ref(),
        &revocation.struct_name,
        &revocation.fill,
        idents,
        config,
    );
    let hint_sent = revocation.fill.iter().any(|f| {
        matches!(
            f.source,
            FillSource::Arg(crate::model::GrantArg::TokenTypeHint)
        )
    });
    let unused = (!hint_sent).then(|| quote!(let _ = hint;));
    let const_doc = docs(&format!(
        "The `{}` operation's request (token revocation, RFC 7009), as the spec describes it.",
        op.id
    ));
    let request_doc = docs(
        "The request body of the token revocation (RFC 7009 §2.1): `token`, and its type hint          where the body takes one.",
    );
    let revoke_doc = docs(&format!(
        "Revokes `token` at `{method} {path}` (RFC 7009): any 2xx answer is a revocation (the          provider answers 200 for a token it does not know too). The token is scrubbed from          errors. A pool's `revoke_and_remove` calls it with a connection's tokens."
    ));
    out.items.push(quote! {
        #const_doc
        const REVOKE_OPERATION: support::Operation = support::Operation {
            method: #method,
            path: #path,
            encoding: #encoding,
            refresh_token: support::TokenPlace::NotSent,
            sensitive_fields: &[#(#sensitive),*],
        };

        impl Client {
            #request_doc
            pub fn revoke_request(&self, token: &tokenkit::Secret, hint: tokenkit::TokenTypeHint) -> #body_ty {
                #unused
                #expr
            }

            #revoke_doc
            pub async fn revoke_token(&self, token: &tokenkit::Secret, hint: tokenkit::TokenTypeHint) -> Result<(), tokenkit::RefreshError> {
                let body = self.revoke_request(token, hint);
                self.revoke_endpoint.revoke(&body, &[Some(token)]).await
            }
        }
    });
    let field_doc = docs(&format!(
        "The endpoint of `{method} {path}` (token revocation)."
    ));
    out.fields.push(quote! {
        #field_doc
        revoke_endpoint: support::Endpoint,
    });
    let setup = endpoint_setup(op, revocation.auth.as_ref(), &[], config, idents);
    out.endpoint(
        &ident("revoke_endpoint"),
        &ident("REVOKE_OPERATION"),
        &setup,
        scrubs,
    );
}

/// The statement that puts a parameter's value in its place, at build time. A secret's value is
/// the secret itself (a place expression), never its text.
pub(super) fn place(
    location: Location,
    wire: &str,
    value: TokenStream,
    secret: bool,
) -> TokenStream {
    match (location, secret) {
        (Location::Header, false) => quote!(endpoint.header(#wire, #value)?;),
        (Location::Header, true) => quote!(endpoint.secret_header(#wire, &#value)?;),
        (Location::Query, false) => quote!(endpoint.query(#wire, #value);),
        (Location::Query, true) => quote!(endpoint.secret_query(#wire, &#value);),
        (Location::Path, false) => quote!(endpoint.path_param(#wire, #value);),
        (Location::Path, true) => quote!(endpoint.secret_path_param(#wire, &#value);),
    }
}

/// The refresh operation's section: its constant, its outcome enum, its typed method and the
/// body `RefreshClient::refresh` sends, and its mapping (whose functions go to `getters`).
pub(super) fn refresh_section(
    provider: &Provider,
    (refresh_op, refresh): (&TokenOperation, &Refresh),
    idents: &[Ident],
    sensitive: &[&str],
    getters: &mut super::mapping::Getters,
) -> TokenStream {
    let op = &refresh_op.operation;
    let config = &provider.config;
    let outcome = ident(&op.outcome);
    let encoding = encoding(op);
    // The refresh request body, if the operation has one.
    let (body_ty, body_expr) = match &op.body {
        Some(body) => (
            ty(&body.ty),
            request_body(
                body.wrap.as_ref(),
                &body.struct_name,
                &body.fill,
                idents,
                config,
            ),
        ),
        None => (quote!(()), quote!()),
    };
    let returns = op.body.as_ref().map(|_| quote!(-> #body_ty));
    let refresh_place = match &refresh.place {
        RefreshPlace::Body { .. } => quote!(support::TokenPlace::Body),
        RefreshPlace::Query { name } => quote!(support::TokenPlace::Query(#name)),
        RefreshPlace::Header { name, prefix } => {
            quote!(support::TokenPlace::Header { name: #name, prefix: #prefix })
        }
    };
    let token_in_body = matches!(refresh.place, RefreshPlace::Body { .. });
    // The typed operation takes what the request carries: the body, and the refresh token
    // where it travels outside the body.
    let (op_args, send_args) = match (&op.body, token_in_body) {
        (Some(_), true) => (quote!(body: &#body_ty), quote!(body, None)),
        (Some(_), false) => (
            quote!(body: &#body_ty, refresh_token: &tokenkit::RefreshToken),
            quote!(body, Some(refresh_token)),
        ),
        (None, _) => (
            quote!(refresh_token: &tokenkit::RefreshToken),
            quote!(&(), Some(refresh_token)),
        ),
    };
    let token_param = if token_in_body || op.body.is_some() && body_uses_token(op) {
        quote!(token)
    } else {
        quote!(_token)
    };
    let request_doc = docs(if op.body.is_none() {
        "The request body [`tokenkit::RefreshClient::refresh`] sends: none, since the operation \
         has no body (the refresh token travels in the query or a header)."
    } else if token_in_body {
        "The request body [`tokenkit::RefreshClient::refresh`] sends for `token`."
    } else {
        "The request body [`tokenkit::RefreshClient::refresh`] sends (the refresh token travels \
         in the query or a header)."
    });

    // The typed operation.
    let method_text = op.method.as_str();
    let op_fn = ident(&operation_fn(&op.id));
    let op_doc = docs(&format!(
        "`{} {}`{} Sends `body` as it is and returns the documented outcome for the status that \
         came back. Errors are what the runtime could not turn into an outcome: no response, a \
         body over the size cap, or a documented body that does not match its schema.",
        op.method,
        op.path,
        op.summary
            .as_deref()
            .map(|s| format!(": {}", s.trim().trim_end_matches('.')))
            .unwrap_or_default()
            + "."
    ));
    let (outcome_enum, decode) = outcome_items(op, &outcome);
    let mapping = super::mapping::mapping(&provider.file, refresh_op, &outcome, decode, getters);
    let path_template = &op.path;
    quote! {
        /// The refresh operation's request, as the spec describes it.
        const OPERATION: support::Operation = support::Operation {
            method: #method_text,
            path: #path_template,
            encoding: #encoding,
            refresh_token: #refresh_place,
            sensitive_fields: &[#(#sensitive),*],
        };

        #outcome_enum

        impl Client {
            #op_doc
            pub async fn #op_fn(&self, #op_args) -> Result<#outcome, tokenkit::RefreshError> {
                #outcome::decode(&self.endpoint.send(#send_args).await?)
            }

            #request_doc
            pub fn refresh_request(&self, #token_param: &tokenkit::RefreshToken) #returns {
                #body_expr
            }
        }

        #mapping
    }
}
