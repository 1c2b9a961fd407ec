//! Tokens for the client: constants, the outcome enum, the builder, the typed operation and the
//! `RefreshClient` implementation.

use super::docs;
use super::types::{enum_variant, field_ident, ty};
use crate::extension::Rotation;
use crate::model::{Auth, ConfigField, FillSource, Location, ParamValue, Provider, StatusKey};
use crate::names::{ident, snake};
use crate::types::Ty;
use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};
use serde_json::Value;

/// The outcome enum's name (see [`crate::model::Operation::outcome`]).
pub fn outcome_ident(provider: &Provider) -> Ident {
    ident(&provider.operation.outcome)
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

/// The text form of a per-client value, for a header or query string.
fn as_text(field: &ConfigField, value: TokenStream) -> TokenStream {
    match field.ty {
        Ty::String => quote!(#value.as_str()),
        Ty::Secret => quote!(#value.expose()),
        _ => quote!(#value.to_string().as_str()),
    }
}

/// Everything but the types and the mapping.
pub fn client(provider: &Provider) -> TokenStream {
    let op = &provider.operation;
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
    let rotation = match provider.mapping.rotation {
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
    let accept = &op.accept;
    let mut setup = vec![quote! {
        headers.insert(
            tokenkit::reqwest::header::ACCEPT,
            tokenkit::http::header_value("Accept", #accept)?,
        );
    }];
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
        }
    }
    match &provider.auth {
        Some(Auth::Basic { id, secret }) => {
            let (id, secret) = (&idents[*id], &idents[*secret]);
            setup.push(quote! {
                headers.insert(
                    tokenkit::reqwest::header::AUTHORIZATION,
                    tokenkit::http::basic_auth(self.#id.as_str(), self.#secret.expose())?,
                );
            });
        }
        Some(Auth::ApiKey {
            location,
            name,
            key,
        }) => {
            let i = &idents[*key];
            setup.push(place(*location, name, quote!(self.#i.expose()), true));
        }
        None => {}
    }
    let has_query = op.params.iter().any(|p| p.location == Location::Query)
        || matches!(
            &provider.auth,
            Some(Auth::ApiKey {
                location: Location::Query,
                ..
            })
        );
    let has_path = op.params.iter().any(|p| p.location == Location::Path);
    let path_template = &op.path;
    let query_field = has_query.then(|| quote!(query: Vec<(&'static str, String)>,));
    let query_build = has_query.then(|| quote!(let mut query = Vec::new();));
    let query_init = has_query.then(|| quote!(query,));
    let query_call = has_query.then(|| quote!(.query(&self.query)));
    let path_field = has_path.then(|| quote!(path: String,));
    let path_build = has_path.then(|| quote!(let mut path = String::from(#path_template);));
    let path_init = has_path.then(|| quote!(path,));
    let path_expr = if has_path {
        quote!(&self.path)
    } else {
        quote!(#path_template)
    };

    // Body values live in the client; header and query values are already in the maps above.
    let body_config: Vec<usize> = op
        .body
        .fill
        .iter()
        .filter_map(|f| match f.source {
            FillSource::Config(i) => Some(i),
            _ => None,
        })
        .collect();
    let client_fields = body_config.iter().map(|&i| {
        let id = &idents[i];
        let t = stored_ty(&config[i]);
        quote!(#id: #t,)
    });
    let client_init = body_config.iter().map(|&i| {
        let id = &idents[i];
        quote!(#id: self.#id,)
    });

    // The refresh request body.
    let struct_ident = ident(&op.body.struct_name);
    let fills = op.body.fill.iter().map(|f| {
        let field = field_ident(&f.json);
        let value = match &f.source {
            FillSource::RefreshToken => quote!(refresh_token.into()),
            FillSource::Constant { enum_name, value } => {
                let e = ident(enum_name);
                let v = enum_variant(value);
                quote!(#e::#v)
            }
            FillSource::Config(i) => {
                let id = &idents[*i];
                if is_copy(&config[*i].ty, provider) {
                    quote!(self.#id)
                } else {
                    quote!(self.#id.clone())
                }
            }
        };
        quote!(#field: #value,)
    });
    let mut body_expr = quote!(#struct_ident { #(#fills)* });
    if let Some((enum_name, variant)) = &op.body.wrap {
        let e = ident(enum_name);
        let v = ident(variant);
        body_expr = quote!(#e::#v(#body_expr));
    }
    let body_ty = ty(&op.body.ty);

    // Secrets the client holds are scrubbed from every error along with the refresh token.
    // Every secret the client holds is scrubbed from errors, with the refresh token.
    let secret_fields: Vec<(&ConfigField, &Ident)> = config
        .iter()
        .zip(&idents)
        .filter(|(c, _)| c.ty == Ty::Secret)
        .collect();
    let required_secrets = secret_fields
        .iter()
        .filter(|(c, _)| c.required)
        .map(|(_, i)| quote!(self.#i.clone()));
    let optional_secrets = secret_fields
        .iter()
        .filter(|(c, _)| !c.required)
        .map(|(_, i)| quote!(.chain(self.#i.clone())));
    let secrets_field = quote!(secrets: Vec<tokenkit::Secret>,);
    let secrets_init = quote!(secrets,);
    let secrets_build = if secret_fields.is_empty() {
        quote!(let secrets = Vec::new();)
    } else {
        quote! {
            let secrets: Vec<tokenkit::Secret> = [#(#required_secrets),*].into_iter()#(#optional_secrets)*.collect();
        }
    };
    let encode = if crate::model::is_form(&op.body.media_type) {
        quote!(form)
    } else {
        quote!(json)
    };

    // The typed operation.
    let method = format_ident!("{}", op.method);
    let op_fn = ident(&snake(&op.id));
    let op_doc = docs(&format!(
        "`{} {}`{}\n\nSends `body` as it is and returns the documented outcome for the status that \
         came back. Errors are what the runtime could not turn into an outcome: no response, a \
         body over the size cap, or a documented body that does not match its schema.",
        op.method,
        op.path,
        op.summary
            .as_deref()
            .map(|s| format!(": {s}"))
            .unwrap_or_default()
    ));
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
                quote!(#code => #outcome::#variant(#value),)
            }
            StatusKey::Range(class) => {
                let low = proc_macro2::Literal::u16_unsuffixed(class * 100);
                let high = proc_macro2::Literal::u16_unsuffixed(class * 100 + 99);
                quote!(status @ #low..=#high => #outcome::#variant { status, body: #value },)
            }
            StatusKey::Default => quote!(status => #outcome::#variant { status, body: #value },),
        }
    });
    let has_default = op.responses.iter().any(|c| c.key == StatusKey::Default);
    let undocumented_arm = (!has_default)
        .then(|| quote!(status => #outcome::Undocumented { status, body: response.snippet() },));

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
    let client_doc = docs(&format!(
        "A client for {title}'s refresh operation, `{} {}`. Build it with [`Client::builder`]; \
         it is cheap to clone and safe to share.",
        op.method, op.path
    ));

    quote! {
        /// The servers the spec lists, in order.
        pub const SERVERS: &[&str] = &[#(#servers)*];

        #default_doc
        pub const DEFAULT_BASE_URL: &str = #default_url;

        /// What the provider does with refresh tokens, as the spec's mapping declares.
        pub const ROTATION: tokenkit::Rotation = #rotation;

        /// Body fields that hold secrets (mapped tokens, `format: password`, credential-like
        /// names): error snippets never show their values.
        const SENSITIVE_FIELDS: &[&str] = &[#(#sensitive),*];

        #outcome_doc
        #[derive(Clone, Debug, PartialEq)]
        pub enum #outcome {
            #(#outcome_variants)*
            /// A status the spec does not document.
            Undocumented {
                /// The HTTP status.
                status: u16,
                /// A scrubbed excerpt of the body.
                body: tokenkit::Snippet,
            },
        }

        #client_doc
        #[derive(Clone, Debug)]
        pub struct Client {
            transport: tokenkit::Transport,
            headers: tokenkit::reqwest::header::HeaderMap,
            #query_field
            #path_field
            #secrets_field
            #(#client_fields)*
        }

        /// Builds a [`Client`]: the base URL, the HTTP settings and the optional per-client values.
        #[derive(Clone, Debug)]
        pub struct ClientBuilder {
            connection: tokenkit::Connection,
            #(#builder_fields)*
        }

        impl Client {
            #builder_doc
            pub fn builder(#(#builder_args),*) -> ClientBuilder {
                ClientBuilder {
                    connection: tokenkit::Connection::new(DEFAULT_BASE_URL),
                    #(#builder_init)*
                }
            }

            /// The base URL requests go to.
            pub fn base_url(&self) -> &str {
                self.transport.base_url()
            }

            #op_doc
            pub async fn #op_fn(&self, body: &#body_ty) -> Result<#outcome, tokenkit::RefreshError> {
                let request = self
                    .transport
                    .request(tokenkit::reqwest::Method::#method, #path_expr)
                    .headers(self.headers.clone())
                    #query_call
                    .#encode(body);
                let response = self.transport.send(request).await?;
                Ok(match response.status() {
                    #(#decode_arms)*
                    #undocumented_arm
                })
            }

            /// The request body [`tokenkit::RefreshClient::refresh`] sends for `refresh_token`.
            pub fn refresh_request(&self, refresh_token: &tokenkit::RefreshToken) -> #body_ty {
                #body_expr
            }
        }

        impl ClientBuilder {
            /// Sends requests to `base_url` instead of [`DEFAULT_BASE_URL`]: another server of
            /// [`SERVERS`], a customer-specific host, or a mock.
            pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
                self.connection.base_url = base_url.into();
                self
            }

            /// Timeouts and the response body cap; see [`tokenkit::HttpConfig`] for the defaults.
            pub fn http_config(mut self, http_config: tokenkit::HttpConfig) -> Self {
                self.connection.http_config = http_config;
                self
            }

            /// Sends through an HTTP client the application built (a proxy, say). Its timeouts
            /// and redirect policy are then the application's; the body cap still applies.
            pub fn http_client(mut self, http_client: tokenkit::reqwest::Client) -> Self {
                self.connection.http_client = Some(http_client);
                self
            }

            #(#setters)*

            /// Checks the configuration and builds the client.
            pub fn build(self) -> Result<Client, tokenkit::BuildError> {
                let transport = self.connection.transport(SENSITIVE_FIELDS)?;
                #secrets_build
                let mut headers = tokenkit::reqwest::header::HeaderMap::new();
                #query_build
                #path_build
                #(#setup)*
                Ok(Client {
                    transport,
                    headers,
                    #query_init
                    #path_init
                    #secrets_init
                    #(#client_init)*
                })
            }
        }

        impl tokenkit::RefreshClient for Client {
            fn provider(&self) -> &'static str {
                #name
            }

            fn rotation(&self) -> tokenkit::Rotation {
                ROTATION
            }

            fn refresh<'a>(
                &'a self,
                refresh_token: &'a tokenkit::RefreshToken,
            ) -> tokenkit::BoxFuture<'a, Result<tokenkit::TokenSet, tokenkit::RefreshError>> {
                Box::pin(async move {
                    let outcome = self.#op_fn(&self.refresh_request(refresh_token)).await;
                    tokenkit::refresh::settle(outcome, refresh_token, &self.secrets, #outcome::into_token_set)
                })
            }
        }
    }
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

/// The statement that puts a parameter's text in its place, at build time.
fn place(location: Location, wire: &str, text: TokenStream, secret: bool) -> TokenStream {
    match location {
        Location::Header => {
            let lower = wire.to_ascii_lowercase();
            let value = if secret {
                quote!(tokenkit::http::sensitive_header_value(#wire, #text)?)
            } else {
                quote!(tokenkit::http::header_value(#wire, #text)?)
            };
            quote! {
                headers.insert(tokenkit::reqwest::header::HeaderName::from_static(#lower), #value);
            }
        }
        Location::Query => quote!(query.push((#wire, #text.to_owned()));),
        Location::Path => {
            let placeholder = format!("{{{wire}}}");
            quote!(path = path.replace(#placeholder, &tokenkit::http::path_segment(#text));)
        }
    }
}

fn first_line(doc: Option<&str>) -> String {
    doc.and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("a per-client value.")
        .to_owned()
}
