//! The client itself: the provider's constants, the `Client` and its builder (per-client
//! values, endpoints), the refresh operation's typed method and request body, and the
//! `RefreshClient` implementation. Each operation's own items come from `emit::operation`, the
//! grants from `emit::grants`, the mapping from `emit::mapping`.

use super::docs;
use super::grants::*;
use super::operation::*;
use super::request::*;
use crate::extension::Rotation;
use crate::model::{ConfigField, Provider};
use crate::names::ident;
use crate::types::Ty;
use proc_macro2::{Ident, TokenStream};
use quote::quote;

/// Everything but the types and the mapping, and the outcome's `decode` function (which
/// [`super::mapping`] puts in the outcome's one `impl` block).
/// The client and, after it, one section per operation (its constant, outcome enum, typed
/// method and mapping), then the grants.
pub fn client(provider: &Provider, getters: &mut super::mapping::Getters) -> TokenStream {
    let refresh = provider.refresh_operation().zip(provider.refresh.as_ref());
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
    let default_doc = default_url_doc(provider);

    let sensitive: Vec<&str> = provider
        .sensitive_fields
        .iter()
        .map(String::as_str)
        .collect();

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
    // With private_key_jwt, the application's signing key is one more builder argument; the
    // endpoints take it when the client is built.
    let signs = provider.signs_assertions();
    let key_field = signs.then(|| quote!(signing_key: tokenkit::SigningKey,));
    let key_arg = signs.then(|| quote!(signing_key: tokenkit::SigningKey));
    let key_init = signs.then(|| quote!(signing_key,));
    let builder_fields = config.iter().zip(&idents).map(|(c, i)| {
        let t = stored_ty(c);
        quote!(#i: #t,)
    });
    let builder_args = required
        .iter()
        .map(|(c, i)| {
            let t = arg_ty(c);
            quote!(#i: #t)
        })
        .chain(key_arg);
    let builder_init = config.iter().zip(&idents).map(|(c, i)| {
        if c.required {
            let v = arg_conversion(c, i);
            quote!(#i #v,)
        } else {
            quote!(#i: None,)
        }
    });
    let args_doc = args_doc(&required, signs);
    let builder_doc = docs(&format!(
        "Starts a builder with the per-client values the spec requires.{args_doc}"
    ));
    let setters = optional.iter().map(|(c, i)| setter(provider, c, i));

    // Body values (and the authorization URL's client id) live in the client; header, query
    // and path values are in the endpoint.
    let body_config: Vec<usize> = (0..config.len()).filter(|&i| config[i].kept).collect();
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
    let mut grant_ops = grant_operations(provider, config, &idents, &scrubs, &sensitive, getters);
    revocation(provider, &idents, &scrubs, &sensitive, &mut grant_ops);

    let client_doc = docs(&match refresh {
        Some((op, _)) => format!(
            "A client for {title}'s refresh operation, `{} {}`. Build it with \
             [`Client::builder`]; it is cheap to clone and safe to share.",
            op.operation.method, op.operation.path
        ),
        None => format!(
            "A client for {title}'s token operations. The provider issues tokens only by grants \
             (no refresh token exists): a token manager gets a new set by the client-credentials \
             grant when the current one is stale. Build it with [`Client::builder`]; it is \
             cheap to clone and safe to share."
        ),
    });

    let (grant_methods, grant_items) = grants(provider, &idents, config);
    let GrantOps {
        items: grant_op_items,
        fields: grant_op_fields,
        builds: grant_op_builds,
        inits: grant_op_inits,
    } = grant_ops;
    let grants_arg = provider.all_grants().next().map(|_| quote!(, grants));
    let PerConnection {
        constant: variables_const,
        builder_field: values_field,
        builder_init: values_init,
        client_field: template_field,
        keep: keep_template,
        client_init: template_init,
        methods: values_methods,
        arg: variables_arg,
    } = per_connection(provider, &idents).unwrap_or_default();
    let revoke_arg = provider
        .revocation
        .as_ref()
        .map(|_| quote!(, revoke = revoke_token));
    // The server variables fill the base URL's placeholders before any endpoint is built.
    let (build_self, fill_variables, build_doc) = match variable_values(provider, &idents) {
        Some(values) if !provider.host_patterns.is_empty() => {
            let hosts = provider.host_patterns.iter().map(String::as_str);
            (
                quote!(mut self),
                quote!(self.connection.fill_server_variables_within(#values, DEFAULT_BASE_URL, &[#(#hosts),*])?;),
                docs(
                    "Checks the configuration, fills the server variables into the base URL (a \
                     value that could change the URL's path, or make the host one the spec does \
                     not allow, is refused) and builds the client.",
                ),
            )
        }
        Some(values) => (
            quote!(mut self),
            quote!(self.connection.fill_server_variables(#values)?;),
            docs(
                "Checks the configuration, fills the server variables into the base URL (a \
                 value that could change the URL's host or path is refused) and builds the \
                 client.",
            ),
        ),
        None => (
            quote!(self),
            quote!(),
            docs("Checks the configuration and builds the client."),
        ),
    };
    // The refresh operation's parts: its constant and section, its endpoint (built last, from
    // the connection itself), `ROTATION` and the `RefreshClient` impl. Without one, the first
    // grant operation's endpoint answers `base_url`.
    // The client id the client keeps, if the spec has one: part of its issuer, so that two
    // OAuth applications of one provider never take each other's stored sets.
    let client_arg = config
        .iter()
        .zip(&idents)
        .find(|(f, _)| f.name == "client_id" && f.kept && f.ty == Ty::String)
        .map(|(_, id)| quote!(, client = #id));
    let (rotation_const, refresh_items, refresh_field, refresh_build, refresh_init) = match refresh
    {
        Some((op, r)) => {
            let rotation = match r.rotation {
                Rotation::OneTime => quote!(tokenkit::Rotation::OneTime),
                Rotation::Rotating => quote!(tokenkit::Rotation::Rotating),
                Rotation::Optional => quote!(tokenkit::Rotation::Optional),
            };
            let grace_arg = r.reuse_grace.map(|secs| {
                let secs = proc_macro2::Literal::u64_unsuffixed(secs);
                quote!(, reuse_grace = #secs)
            });
            let sends_arg = r.sends_access_token.then(|| quote!(, sends = AccessToken));
            let outcome = ident(&op.operation.outcome);
            let section = refresh_section(provider, (op, r), &idents, &sensitive, getters);
            // Headers, query parameters and path segments are fixed when the client is built.
            let setup = endpoint_setup(
                &op.operation,
                op.auth.as_ref(),
                provider.refresh_grants(),
                config,
                &idents,
            );
            (
                quote! {
                    /// What the provider does with refresh tokens, as the spec's mapping declares.
                    pub const ROTATION: tokenkit::Rotation = #rotation;
                },
                quote! {
                    tokenkit::refresh_client!(Client, PROVIDER, ROTATION, #outcome #grace_arg #sends_arg #client_arg #revoke_arg #variables_arg #grants_arg);

                    #section
                },
                quote!(endpoint: support::Endpoint,),
                quote! {
                    let mut endpoint = support::Endpoint::new(self.connection, &OPERATION)?;
                    #(#setup)*
                    #(#scrubs)*
                },
                quote!(endpoint,),
            )
        }
        None => {
            let first = provider
                .grant_operations()
                .next()
                .map(|(op, _)| grant_op_names(&op.operation).0);
            (
                quote!(),
                quote!(tokenkit::grant_client!(Client, PROVIDER, #first #client_arg #revoke_arg #variables_arg);),
                quote!(),
                quote!(),
                quote!(),
            )
        }
    };
    let grant_methods = (!grant_methods.is_empty()).then(|| {
        quote! {
            impl Client {
                #grant_methods
            }
        }
    });
    quote! {
        /// The provider's name, as its spec file is named.
        pub const PROVIDER: &str = #name;

        /// The servers the spec lists, in order.
        pub const SERVERS: &[&str] = &[#(#servers)*];

        #default_doc
        pub const DEFAULT_BASE_URL: &str = #default_url;

        #variables_const

        #rotation_const

        #client_doc
        #[derive(Clone, Debug)]
        pub struct Client {
            #refresh_field
            #(#grant_op_fields)*
            #(#client_fields)*
            #template_field
        }

        /// Builds a [`Client`]: the base URL, the HTTP settings and the optional per-client values.
        #[derive(Clone, Debug)]
        pub struct ClientBuilder {
            connection: support::Connection,
            #key_field
            #(#builder_fields)*
            #values_field
        }

        impl Client {
            #builder_doc
            pub fn builder(#(#builder_args),*) -> ClientBuilder {
                ClientBuilder {
                    connection: support::Connection::new(DEFAULT_BASE_URL),
                    #key_init
                    #(#builder_init)*
                    #values_init
                }
            }
        }

        impl ClientBuilder {
            tokenkit::connection_setters!();

            #(#setters)*

            #build_doc
            pub fn build(#build_self) -> Result<Client, tokenkit::BuildError> {
                #keep_template
                #fill_variables
                #(#grant_op_builds)*
                #refresh_build
                Ok(Client { #refresh_init #(#grant_op_inits)* #(#client_init)* #template_init })
            }
        }

        #values_methods

        #refresh_items

        #(#grant_op_items)*

        #grant_methods

        #grant_items
    }
}

/// What a client whose spec has server variables adds so that a pool's connection can carry
/// its own values: the `VARIABLES` constant, the builder kept unfilled in the client, and
/// `values` and `with_values`, which rebuild it with a connection's values.
#[derive(Default)]
struct PerConnection {
    constant: TokenStream,
    builder_field: TokenStream,
    builder_init: TokenStream,
    client_field: TokenStream,
    keep: TokenStream,
    client_init: TokenStream,
    methods: TokenStream,
    arg: TokenStream,
}

fn per_connection(provider: &Provider, idents: &[Ident]) -> Option<PerConnection> {
    if provider.server_variables.is_empty() {
        return None;
    }
    let entries = provider.server_variables.iter().map(|v| {
        let name = v.name.as_str();
        let description = provider.config[v.field].doc.as_deref().unwrap_or("").trim();
        let default = match &v.default {
            Some(d) => quote!(Some(#d)),
            None => quote!(None),
        };
        let choices = v.choices.iter().map(String::as_str);
        quote! {
            tokenkit::Variable {
                name: #name,
                description: #description,
                default: #default,
                choices: &[#(#choices),*],
            },
        }
    });
    let arms = provider.server_variables.iter().map(|v| {
        let field = &provider.config[v.field];
        let id = &idents[v.field];
        let name = v.name.as_str();
        let value = match &field.ty {
            Ty::Named(enum_name) => {
                let e = ident(enum_name);
                let pairs = v.choices.iter().map(|c| {
                    let variant = super::types::enum_variant(c);
                    quote!((#c, #e::#variant))
                });
                quote!(support::choice(name, value, &[#(#pairs),*])?)
            }
            _ => quote!(value.to_owned()),
        };
        let value = if field.required {
            value
        } else {
            quote!(Some(#value))
        };
        quote!(#name => builder.#id = #value,)
    });
    Some(PerConnection {
        constant: quote! {
            /// The server variables a connection may set with its own values
            /// ([`Client::with_values`]): what a connect page asks the customer for.
            pub const VARIABLES: &[tokenkit::Variable] = &[#(#entries)*];
        },
        builder_field: quote! {
            values: tokenkit::ConnectionValues,
        },
        builder_init: quote!(values: tokenkit::ConnectionValues::new(),),
        client_field: quote! {
            /// The builder this client was built from, its base URL still a template, for
            /// [`Client::with_values`].
            builder: Box<ClientBuilder>,
        },
        keep: quote!(let builder = Box::new(self.clone());),
        client_init: quote!(builder,),
        methods: quote! {
            impl Client {
                /// The connection values this client was built with ([`Client::with_values`]).
                pub fn values(&self) -> &tokenkit::ConnectionValues {
                    &self.builder.values
                }

                /// This client for a connection with its own `values` (see [`VARIABLES`]): each
                /// replaces this client's value of that server variable and is checked as
                /// [`ClientBuilder::build`] checks it. A name the spec does not declare, or a value
                /// off a variable's list, is refused.
                pub fn with_values(
                    &self,
                    values: &tokenkit::ConnectionValues,
                ) -> Result<Self, tokenkit::BuildError> {
                    let mut builder = (*self.builder).clone();
                    for (name, value) in values.iter() {
                        match name {
                            #(#arms)*
                            _ => return Err(support::unknown_variable(name, VARIABLES)),
                        }
                        builder.values.insert(name, value);
                    }
                    builder.build()
                }
            }
        },
        arg: quote!(, variables = VARIABLES),
    })
}

/// The doc of `DEFAULT_BASE_URL`: the spec's first server, and its description.
fn default_url_doc(provider: &Provider) -> TokenStream {
    let template = if provider.server_variables.is_empty() {
        ""
    } else {
        ", a template whose placeholders the builder fills from the server variables"
    };
    docs(&format!(
        "The default base URL: the spec's first server{}{template}.",
        provider
            .servers
            .first()
            .and_then(|s| s.description.as_deref())
            .map(|d| format!(
                " ({})",
                d.lines().next().unwrap_or("").trim_end_matches('.')
            ))
            .unwrap_or_default()
    ))
}

/// The builder's argument list, for its doc: each required value's first line, and the
/// signing key where the client signs assertions.
fn args_doc(required: &[(&ConfigField, &Ident)], signs: bool) -> String {
    if required.is_empty() && !signs {
        String::new()
    } else {
        let lines: Vec<String> = required
            .iter()
            .map(|(c, _)| format!("- `{}`: {}", c.name, first_line(c.doc.as_deref())))
            .chain(signs.then(|| {
                "- `signing_key`: The application's private key, which signs a client \
                 assertion for every request (private_key_jwt, RFC 7523)."
                    .to_owned()
            }))
            .collect();
        format!("\n\n{}", lines.join("\n"))
    }
}

/// The builder's setter of an optional per-client value.
fn setter(provider: &Provider, c: &ConfigField, i: &Ident) -> TokenStream {
    let t = arg_ty(c);
    let v = match arg_conversion(c, i) {
        Some(_) => quote!(#i.into()),
        None => quote!(#i),
    };
    let default = provider
        .server_variables
        .iter()
        .find(|v| provider.config[v.field].name == c.name)
        .and_then(|v| v.default.as_deref())
        .map(|d| format!(" (default `{d}`)"))
        .unwrap_or_default();
    let line = first_line(c.doc.as_deref());
    let doc = docs(&format!(
        "Sets `{}`: {}{default}.",
        c.name,
        line.trim_end_matches('.')
    ));
    quote! {
        #doc
        pub fn #i(mut self, #i: #t) -> Self {
            self.#i = Some(#v);
            self
        }
    }
}
