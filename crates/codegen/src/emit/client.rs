//! Tokens for the client: constants, the outcome enum, the builder, the typed operation and the
//! `RefreshClient` implementation.

use super::docs;
use super::types::{enum_variant, field_ident, ty};
use crate::extension::GrantKind;
use crate::extension::Rotation;
use crate::model::{
    Auth, ConfigField, FillSource, GrantArg, Location, Operation, ParamValue, Provider,
    RefreshPlace, StatusKey,
};
use crate::names::{ident, snake};
use crate::types::Ty;
use proc_macro2::{Ident, Literal, TokenStream};
use quote::quote;
use serde_json::Value;

/// The outcome enum's name (see [`crate::model::Operation::outcome`]).
pub fn outcome_ident(provider: &Provider) -> Ident {
    ident(&provider.refresh_operation().operation.outcome)
}

/// A literal for an example value, as a builder argument.
pub fn example_literal(field: &ConfigField) -> TokenStream {
    match (&field.ty, &field.example) {
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
fn arg_ty(field: &ConfigField) -> TokenStream {
    match field.ty {
        Ty::String => quote!(impl Into<String>),
        Ty::Secret => quote!(impl Into<tokenkit::Secret>),
        _ => ty(&field.ty),
    }
}

/// How a builder stores an argument: `: name.into()` where it takes `impl Into`, nothing
/// (shorthand initialisation) where it takes the type itself.
fn arg_conversion(field: &ConfigField, name: &Ident) -> Option<TokenStream> {
    match field.ty {
        Ty::String | Ty::Secret => Some(quote!(: #name.into())),
        _ => None,
    }
}

fn stored_ty(field: &ConfigField) -> TokenStream {
    let inner = ty(&field.ty);
    if field.required {
        inner
    } else {
        quote!(Option<#inner>)
    }
}

/// The form in which a per-client value goes to [`place`]: a `&str`, or for a secret the
/// secret itself, which the endpoint keeps as one.
fn as_text(field: &ConfigField, value: TokenStream) -> TokenStream {
    match field.ty {
        Ty::String => quote!(#value.as_str()),
        Ty::Secret => value,
        _ => quote!(#value.to_string().as_str()),
    }
}

/// Everything but the types and the mapping, and the outcome's `decode` function (which
/// [`super::mapping`] puts in the outcome's one `impl` block).
pub fn client(
    provider: &Provider,
    getters: &mut super::mapping::Getters,
) -> (TokenStream, TokenStream) {
    let op = &provider.refresh_operation().operation;
    let outcome = outcome_ident(provider);
    let name = &provider.name;
    let title = &provider.title;
    let config = &provider.config;

    let servers = provider.servers.iter().map(|s| {
        let url = &s.url;
        quote!(#url,)
    });
    let default_url = provider
        .servers
        .first()
        .map(|s| s.url.as_str())
        .unwrap_or_default();
    let default_doc = docs(&format!(
        "The default base URL: the spec's first server{}.",
        provider
            .servers
            .first()
            .and_then(|s| s.description.as_deref())
            .map(|d| format!(
                " ({})",
                d.lines().next().unwrap_or("").trim_end_matches('.')
            ))
            .unwrap_or_default()
    ));
    let rotation = match provider.refresh.rotation {
        Rotation::OneTime => quote!(tokenkit::Rotation::OneTime),
        Rotation::Rotating => quote!(tokenkit::Rotation::Rotating),
        Rotation::Optional => quote!(tokenkit::Rotation::Optional),
    };

    let mut sensitive: Vec<&str> = provider
        .types
        .values()
        .filter_map(|t| match &t.def {
            crate::types::Def::Struct { fields, .. } => Some(fields),
            _ => None,
        })
        .flatten()
        .filter(|f| f.ty == Ty::Secret)
        .map(|f| f.json.as_str())
        .collect();
    sensitive.sort_unstable();
    sensitive.dedup();

    // Per-client values: required ones are builder arguments, the others setters.
    let idents: Vec<Ident> = config.iter().map(|c| ident(&c.name)).collect();
    let required: Vec<(&ConfigField, &Ident)> = config
        .iter()
        .zip(&idents)
        .filter(|(c, _)| c.required)
        .collect();
    let optional: Vec<(&ConfigField, &Ident)> = config
        .iter()
        .zip(&idents)
        .filter(|(c, _)| !c.required)
        .collect();
    let builder_fields = config.iter().zip(&idents).map(|(c, i)| {
        let t = stored_ty(c);
        quote!(#i: #t,)
    });
    let builder_args = required.iter().map(|(c, i)| {
        let t = arg_ty(c);
        quote!(#i: #t)
    });
    let builder_init = config.iter().zip(&idents).map(|(c, i)| {
        if c.required {
            let v = arg_conversion(c, i);
            quote!(#i #v,)
        } else {
            quote!(#i: None,)
        }
    });
    let args_doc = if required.is_empty() {
        String::new()
    } else {
        let lines: Vec<String> = required
            .iter()
            .map(|(c, _)| format!("- `{}`: {}", c.name, first_line(c.doc.as_deref())))
            .collect();
        format!("\n\n{}", lines.join("\n"))
    };
    let builder_doc = docs(&format!(
        "Starts a builder with the per-client values the spec requires.{args_doc}"
    ));
    let setters = optional.iter().map(|(c, i)| {
        let t = arg_ty(c);
        let v = match arg_conversion(c, i) {
            Some(_) => quote!(#i.into()),
            None => quote!(#i),
        };
        let doc = docs(&format!(
            "Sets `{}`: {}",
            c.name,
            first_line(c.doc.as_deref())
        ));
        quote! {
            #doc
            pub fn #i(mut self, #i: #t) -> Self {
                self.#i = Some(#v);
                self
            }
        }
    });

    // Headers, query parameters and path segments are fixed when the client is built.
    let mut setup = endpoint_setup(
        op,
        provider.refresh_operation().auth.as_ref(),
        config,
        &idents,
    );
    let path_template = &op.path;

    // Body values live in the client; header, query and path values are in the endpoint.
    let mut body_config: Vec<usize> = op
        .body
        .iter()
        .flat_map(|b| &b.fill)
        .chain(provider.all_grants().flat_map(|g| &g.fill))
        .filter_map(|f| match f.source {
            FillSource::Config(i) => Some(i),
            _ => None,
        })
        .collect();
    // The authorization URL needs the client id, wherever else it goes (HTTP Basic, say).
    body_config.extend(authorization_client_id(provider));
    body_config.sort_unstable();
    body_config.dedup();
    let client_fields = body_config.iter().map(|&i| {
        let id = &idents[i];
        let t = stored_ty(&config[i]);
        quote!(#id: #t,)
    });
    let client_init = body_config.iter().map(|&i| {
        let id = &idents[i];
        quote!(#id: self.#id,)
    });
    // Secrets sent in a body are scrubbed from every error, with the refresh token.
    let scrubs: Vec<TokenStream> = body_config
        .iter()
        .filter(|&&i| config[i].ty == Ty::Secret)
        .map(|&i| {
            let id = &idents[i];
            if config[i].required {
                quote!(endpoint.scrub(&self.#id);)
            } else {
                quote!(if let Some(value) = &self.#id { endpoint.scrub(value); })
            }
        })
        .collect();
    setup.extend(scrubs.iter().cloned());
    let grant_ops = grant_operations(provider, config, &idents, &scrubs, &sensitive, getters);

    // The refresh request body, if the operation has one.
    let (body_ty, body_expr, encoding) = match &op.body {
        Some(body) => (
            ty(&body.ty),
            request_body(
                body.wrap.as_ref(),
                &body.struct_name,
                &body.fill,
                &idents,
                config,
                provider,
            ),
            if crate::model::is_form(&body.media_type) {
                quote!(support::Encoding::Form)
            } else {
                quote!(support::Encoding::Json)
            },
        ),
        None => (quote!(()), quote!(), quote!(support::Encoding::Empty)),
    };
    let returns = op.body.as_ref().map(|_| quote!(-> #body_ty));
    let refresh_place = match &provider.refresh.place {
        RefreshPlace::Body { .. } => quote!(support::TokenPlace::Body),
        RefreshPlace::Query { name } => quote!(support::TokenPlace::Query(#name)),
        RefreshPlace::Header { name, prefix } => {
            quote!(support::TokenPlace::Header { name: #name, prefix: #prefix })
        }
    };
    let token_in_body = matches!(provider.refresh.place, RefreshPlace::Body { .. });
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
    let client_doc = docs(&format!(
        "A client for {title}'s refresh operation, `{} {}`. Build it with [`Client::builder`]; \
         it is cheap to clone and safe to share.",
        op.method, op.path
    ));

    let (grant_methods, grant_items) = grants(provider, &idents, config);
    let GrantOps {
        items: grant_op_items,
        fields: grant_op_fields,
        methods: grant_op_methods,
        builds: grant_op_builds,
        inits: grant_op_inits,
    } = grant_ops;
    let grants_arg = provider.all_grants().next().map(|_| quote!(, grants));
    let grace_arg = provider.refresh.reuse_grace.map(|secs| {
        let secs = proc_macro2::Literal::u64_unsuffixed(secs);
        quote!(, reuse_grace = #secs)
    });
    let items = quote! {
        /// The provider's name, as its spec file is named.
        pub const PROVIDER: &str = #name;

        /// The servers the spec lists, in order.
        pub const SERVERS: &[&str] = &[#(#servers)*];

        #default_doc
        pub const DEFAULT_BASE_URL: &str = #default_url;

        /// What the provider does with refresh tokens, as the spec's mapping declares.
        pub const ROTATION: tokenkit::Rotation = #rotation;

        /// The refresh operation's request, as the spec describes it.
        const OPERATION: support::Operation = support::Operation {
            method: #method_text,
            path: #path_template,
            encoding: #encoding,
            refresh_token: #refresh_place,
            sensitive_fields: &[#(#sensitive),*],
        };

        #outcome_enum

        #(#grant_op_items)*

        #client_doc
        #[derive(Clone, Debug)]
        pub struct Client {
            endpoint: support::Endpoint,
            #(#grant_op_fields)*
            #(#client_fields)*
        }

        /// Builds a [`Client`]: the base URL, the HTTP settings and the optional per-client values.
        #[derive(Clone, Debug)]
        pub struct ClientBuilder {
            connection: support::Connection,
            #(#builder_fields)*
        }

        impl Client {
            #builder_doc
            pub fn builder(#(#builder_args),*) -> ClientBuilder {
                ClientBuilder {
                    connection: support::Connection::new(DEFAULT_BASE_URL),
                    #(#builder_init)*
                }
            }

            #op_doc
            pub async fn #op_fn(&self, #op_args) -> Result<#outcome, tokenkit::RefreshError> {
                #outcome::decode(&self.endpoint.send(#send_args).await?)
            }

            #request_doc
            pub fn refresh_request(&self, #token_param: &tokenkit::RefreshToken) #returns {
                #body_expr
            }

            #(#grant_op_methods)*

            #grant_methods
        }

        #grant_items

        impl ClientBuilder {
            tokenkit::connection_setters!();

            #(#setters)*

            /// Checks the configuration and builds the client.
            pub fn build(self) -> Result<Client, tokenkit::BuildError> {
                #(#grant_op_builds)*
                let mut endpoint = support::Endpoint::new(self.connection, &OPERATION)?;
                #(#setup)*
                Ok(Client { endpoint, #(#grant_op_inits)* #(#client_init)* })
            }
        }

        tokenkit::refresh_client!(Client, PROVIDER, ROTATION, #outcome #grace_arg #grants_arg);
    };
    (items, decode)
}

/// The statements that set up an endpoint (`endpoint` in scope) for `op` at build time: the
/// `Accept` header, the parameters and the client authentication.
fn endpoint_setup(
    op: &Operation,
    auth: Option<&Auth>,
    config: &[ConfigField],
    idents: &[Ident],
) -> Vec<TokenStream> {
    let accept = &op.accept;
    let mut setup = vec![quote!(endpoint.header("Accept", #accept)?;)];
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
        }
    }
    match auth {
        Some(Auth::Basic { id, secret }) => {
            let (id, secret) = (&idents[*id], &idents[*secret]);
            setup.push(quote!(endpoint.basic_auth(self.#id.as_str(), &self.#secret)?;));
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
fn outcome_items(op: &Operation, outcome: &Ident) -> (TokenStream, TokenStream) {
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
struct GrantOps {
    /// Operation constants, outcome enums with their mapping.
    items: Vec<TokenStream>,
    /// The endpoint fields of `Client`.
    fields: Vec<TokenStream>,
    /// The typed operations.
    methods: Vec<TokenStream>,
    /// Building each endpoint in `ClientBuilder::build`.
    builds: Vec<TokenStream>,
    /// Their `Client` initialisers.
    inits: Vec<TokenStream>,
}

/// A grant operation's names: its endpoint field and its operation constant.
fn grant_op_names(op: &Operation) -> (Ident, Ident) {
    let snake_id = snake(&op.id);
    (
        ident(&format!("{snake_id}_endpoint")),
        ident(&format!("{}_OPERATION", snake_id.to_ascii_uppercase())),
    )
}

fn grant_operations(
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
        let encoding = match &op.body {
            Some(b) if crate::model::is_form(&b.media_type) => {
                quote!(support::Encoding::Form)
            }
            _ => quote!(support::Encoding::Json),
        };
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

            #mapping
        });
        let field_doc = docs(&format!("The endpoint of `{} {}`.", op.method, op.path));
        out.fields.push(quote! {
            #field_doc
            #field: support::Endpoint,
        });
        let setup = endpoint_setup(op, g.auth.as_ref(), config, idents);
        out.builds.push(quote! {
            let #field = {
                let mut endpoint = support::Endpoint::new(self.connection.clone(), &#constant)?;
                #(#setup)*
                #(#scrubs)*
                endpoint
            };
        });
        out.inits.push(quote!(#field,));
        if let Some(body) = &op.body {
            let body_ty = ty(&body.ty);
            let op_fn = ident(&operation_fn(&op.id));
            let op_doc = docs(&format!(
                "`{} {}`: the {} grant's own operation. Sends `body` as it is and returns the \
                 documented outcome for the status that came back.",
                op.method,
                op.path,
                grant.kind.key()
            ));
            out.methods.push(quote! {
                #op_doc
                pub async fn #op_fn(&self, body: &#body_ty) -> Result<#outcome, tokenkit::RefreshError> {
                    #outcome::decode(&self.#field.send(body, None).await?)
                }
            });
        }
    }
    out
}

/// The expression that builds a request body: the refresh's (`token` in scope) or a grant's
/// (its arguments in scope).
fn request_body(
    wrap: Option<&(String, String)>,
    struct_name: &str,
    fill: &[crate::model::BodyFill],
    idents: &[Ident],
    config: &[ConfigField],
    provider: &Provider,
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
            FillSource::Config(i) => {
                let id = &idents[*i];
                let value = if is_copy(&config[*i].ty, provider) {
                    quote!(self.#id)
                } else {
                    quote!(self.#id.clone())
                };
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

/// The per-client value the authorization URL names as `client_id`, when the spec has an
/// authorization URL and a required text value of that name.
fn authorization_client_id(provider: &Provider) -> Option<usize> {
    provider.oauth.authorization_url.as_ref()?;
    provider
        .config
        .iter()
        .position(|c| c.name == "client_id" && c.required && c.ty == Ty::String)
}

/// A grant argument's parameter name and type.
fn grant_param(arg: GrantArg, optional: bool) -> (Ident, TokenStream) {
    let (name, ty) = match arg {
        GrantArg::Code => ("code", quote!(&tokenkit::Secret)),
        GrantArg::RedirectUri => ("redirect_uri", quote!(&str)),
        GrantArg::CodeVerifier if optional => ("verifier", quote!(Option<&tokenkit::PkceVerifier>)),
        GrantArg::CodeVerifier => ("verifier", quote!(&tokenkit::PkceVerifier)),
        GrantArg::Username => ("username", quote!(&str)),
        GrantArg::Password => ("password", quote!(&tokenkit::Secret)),
    };
    (ident(name), ty)
}

/// The grants' request builders and typed methods (inside `impl Client`), and the
/// `GrantClient` implementation with the OAuth constants (beside it).
fn grants(
    provider: &Provider,
    idents: &[Ident],
    config: &[ConfigField],
) -> (TokenStream, TokenStream) {
    // Each grant with the endpoint that sends it, that operation's outcome and body type.
    let served: Vec<(&crate::model::Grant, Ident, Ident, TokenStream)> = provider
        .refresh
        .grants
        .iter()
        .map(|g| {
            (
                g,
                ident("endpoint"),
                outcome_ident(provider),
                &provider.refresh_operation().operation,
            )
        })
        .chain(provider.grant_operations().map(|(g, grant)| {
            (
                grant,
                grant_op_names(&g.operation).0,
                ident(&g.operation.outcome),
                &g.operation,
            )
        }))
        .filter_map(|(g, endpoint, outcome, op)| {
            op.body.as_ref().map(|b| (g, endpoint, outcome, ty(&b.ty)))
        })
        .collect();
    if served.is_empty() {
        return (quote!(), quote!());
    }
    let mut methods = Vec::new();
    let mut trait_fns = Vec::new();
    let mut kinds = Vec::new();
    for (grant, endpoint, outcome, body_ty) in &served {
        let args: Vec<(GrantArg, bool)> = grant
            .fill
            .iter()
            .filter_map(|f| match f.source {
                FillSource::Arg(a) => Some((a, f.optional)),
                _ => None,
            })
            .collect();
        let params: Vec<TokenStream> = args
            .iter()
            .map(|(a, optional)| {
                let (name, t) = grant_param(*a, *optional && *a == GrantArg::CodeVerifier);
                quote!(#name: #t)
            })
            .collect();
        let names: Vec<Ident> = args.iter().map(|(a, _)| grant_param(*a, false).0).collect();
        let secrets: Vec<TokenStream> = args
            .iter()
            .filter(|(a, _)| a.is_secret())
            .map(|(a, optional)| match a {
                GrantArg::CodeVerifier if *optional => quote!(verifier.map(|v| v.secret())),
                GrantArg::CodeVerifier => quote!(Some(verifier.secret())),
                GrantArg::Code => quote!(Some(code)),
                _ => quote!(Some(password)),
            })
            .collect();
        let expr = request_body(
            grant.wrap.as_ref(),
            &grant.struct_name,
            &grant.fill,
            idents,
            config,
            provider,
        );
        let (key, request_fn, grant_fn, what) = match grant.kind {
            GrantKind::ClientCredentials => (
                quote!(ClientCredentials),
                "client_credentials_request",
                "client_credentials_grant",
                "the client-credentials grant (RFC 6749 §4.4): a token set for the client itself",
            ),
            GrantKind::AuthorizationCode => (
                quote!(AuthorizationCode),
                "authorization_code_request",
                "authorization_code_grant",
                "the authorization-code grant (RFC 6749 §4.1.3): a token set for the code the \
                 redirect brought",
            ),
            GrantKind::Password => (
                quote!(Password),
                "password_request",
                "password_grant",
                "the password grant (RFC 6749 §4.3): a token set for a user's credentials",
            ),
        };
        kinds.push(quote!(tokenkit::GrantType::#key));
        let request_ident = ident(request_fn);
        let grant_ident = ident(grant_fn);
        let request_doc = docs(&format!("The request body of {what}."));
        let grant_doc = docs(&format!(
            "Sends {what}. The answer goes through the spec's success and failure mapping; an \
             answer without a refresh token is a set without one. The arguments are scrubbed \
             from errors."
        ));
        methods.push(quote! {
            #request_doc
            pub fn #request_ident(&self, #(#params),*) -> #body_ty {
                #expr
            }

            #grant_doc
            pub async fn #grant_ident(&self, #(#params),*) -> Result<tokenkit::TokenSet, tokenkit::RefreshError> {
                let body = self.#request_ident(#(#names),*);
                self.#endpoint
                    .grant(&body, &[#(#secrets),*], #outcome::token_set)
                    .await
            }
        });
        trait_fns.push(match grant.kind {
            GrantKind::ClientCredentials => quote! {
                fn client_credentials(&self) -> Option<tokenkit::BoxFuture<'_, Result<tokenkit::TokenSet, tokenkit::RefreshError>>> {
                    Some(Box::pin(self.#grant_ident()))
                }
            },
            GrantKind::AuthorizationCode => {
                let call_args = args.iter().map(|(a, optional)| match (a, optional) {
                    (GrantArg::Code, _) => quote!(&exchange.code),
                    (GrantArg::RedirectUri, _) => quote!(&exchange.redirect_uri),
                    (GrantArg::CodeVerifier, true) => quote!(exchange.verifier.as_ref()),
                    _ => quote!(verifier),
                });
                let needs_verifier = args
                    .iter()
                    .any(|(a, optional)| *a == GrantArg::CodeVerifier && !optional);
                let check = needs_verifier.then(|| quote! {
                    let Some(verifier) = &exchange.verifier else {
                        return Some(Box::pin(async { Err(support::missing_verifier()) }));
                    };
                });
                quote! {
                    fn exchange_code<'a>(&'a self, exchange: &'a tokenkit::CodeExchange) -> Option<tokenkit::BoxFuture<'a, Result<tokenkit::TokenSet, tokenkit::RefreshError>>> {
                        #check
                        Some(Box::pin(self.#grant_ident(#(#call_args),*)))
                    }
                }
            }
            GrantKind::Password => {
                let call_args = args.iter().map(|(a, _)| match a {
                    GrantArg::Username => quote!(&login.username),
                    _ => quote!(&login.password),
                });
                quote! {
                    fn password<'a>(&'a self, login: &'a tokenkit::PasswordLogin) -> Option<tokenkit::BoxFuture<'a, Result<tokenkit::TokenSet, tokenkit::RefreshError>>> {
                        Some(Box::pin(self.#grant_ident(#(#call_args),*)))
                    }
                }
            }
        });
    }
    let scopes = provider.oauth.scopes.iter().map(|(s, about)| {
        let about = about.trim();
        quote!((#s, #about),)
    });
    let client_id = authorization_client_id(provider).map(|i| &idents[i]);
    let authorization = match (&provider.oauth.authorization_url, client_id) {
        (Some(url), Some(id)) => {
            // A PKCE challenge only where the code exchange can send its verifier: a provider
            // that enforces PKCE would refuse a code whose verifier never comes.
            let pkce = provider.all_grants().any(|g| {
                g.fill
                    .iter()
                    .any(|f| matches!(f.source, FillSource::Arg(GrantArg::CodeVerifier)))
            });
            let (challenge_doc, challenge_param, challenge_arg) = if pkce {
                (
                    "and the PKCE challenge when given",
                    quote!(challenge: Option<&tokenkit::PkceChallenge>,),
                    quote!(challenge),
                )
            } else {
                (
                    "and no PKCE challenge: the spec's code exchange has nowhere to send a \
                     verifier",
                    quote!(),
                    quote!(None),
                )
            };
            let doc = docs(&format!(
                "The URL to send a user to for consent: `{url}` (the spec's `authorizationUrl`) \
                 with this client's id, `redirect_uri`, the `scopes`, the `state` to compare \
                 with the redirect's, {challenge_doc}. Exchange the code the \
                 redirect brings with [`Client::authorization_code_grant`], or seed a token \
                 manager with `TokenManager::seed_from_code`."
            ));
            let const_doc =
                docs("The authorization endpoint of the spec's authorization code flow.");
            (
                quote! {
                    #doc
                    pub fn authorization_url(
                        &self,
                        redirect_uri: &str,
                        scopes: &[&str],
                        state: &tokenkit::AuthorizationState,
                        #challenge_param
                    ) -> Result<String, tokenkit::BuildError> {
                        tokenkit::authorization_url(AUTHORIZATION_URL, &self.#id, redirect_uri, scopes, state, #challenge_arg)
                    }
                },
                quote! {
                    #const_doc
                    pub const AUTHORIZATION_URL: &str = #url;
                },
            )
        }
        (Some(url), None) => {
            let const_doc = docs(
                "The authorization endpoint of the spec's authorization code flow (build the URL with `tokenkit::authorization_url`).",
            );
            (
                quote!(),
                quote! {
                    #const_doc
                    pub const AUTHORIZATION_URL: &str = #url;
                },
            )
        }
        _ => (quote!(), quote!()),
    };
    let (auth_method, auth_const) = authorization;
    let inherent = quote! {
        #(#methods)*
        #auth_method
    };
    let beside = quote! {
        /// The grants the spec offers besides the refresh.
        pub const GRANTS: &[tokenkit::GrantType] = &[#(#kinds),*];

        /// The scopes the spec's OAuth 2 flows declare, with their descriptions.
        pub const SCOPES: &[(&str, &str)] = &[#(#scopes)*];

        #auth_const

        impl tokenkit::GrantClient for Client {
            fn grant_types(&self) -> &'static [tokenkit::GrantType] {
                GRANTS
            }

            #(#trait_fns)*
        }
    };
    (inherent, beside)
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
        "authorization_url",
        "grants",
        "grant_types",
    ];
    if taken.contains(&name.as_str()) {
        format!("{name}_operation")
    } else {
        name
    }
}

/// Whether the body's fill puts the refresh token in it.
fn body_uses_token(op: &crate::model::Operation) -> bool {
    op.body.as_ref().is_some_and(|b| {
        b.fill
            .iter()
            .any(|f| matches!(f.source, FillSource::RefreshToken))
    })
}

/// Whether values of `ty` are `Copy` (numbers, booleans, and the generated string enums).
fn is_copy(ty: &Ty, provider: &Provider) -> bool {
    match ty {
        Ty::Bool | Ty::I32 | Ty::I64 | Ty::F64 => true,
        Ty::Named(name) => matches!(
            provider.types.get(name).map(|t| &t.def),
            Some(crate::types::Def::Enum { .. })
        ),
        _ => false,
    }
}

/// The statement that puts a parameter's value in its place, at build time. A secret's value is
/// the secret itself (a place expression), never its text.
fn place(location: Location, wire: &str, value: TokenStream, secret: bool) -> TokenStream {
    match (location, secret) {
        (Location::Header, false) => quote!(endpoint.header(#wire, #value)?;),
        (Location::Header, true) => quote!(endpoint.secret_header(#wire, &#value)?;),
        (Location::Query, false) => quote!(endpoint.query(#wire, #value);),
        (Location::Query, true) => quote!(endpoint.secret_query(#wire, &#value);),
        (Location::Path, false) => quote!(endpoint.path_param(#wire, #value);),
        (Location::Path, true) => quote!(endpoint.secret_path_param(#wire, &#value);),
    }
}

fn first_line(doc: Option<&str>) -> String {
    doc.and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("a per-client value.")
        .to_owned()
}
