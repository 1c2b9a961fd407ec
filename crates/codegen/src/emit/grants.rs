//! The grants of a generated client: a typed method per grant its spec maps, the
//! `tokenkit::GrantClient` implementation, the authorization URL and the OAuth constants.

use super::docs;
use super::request::*;
use super::types::ty;
use crate::extension::GrantKind;
use crate::model::{ConfigField, FillSource, GrantArg, Provider};
use crate::names::ident;
use proc_macro2::{Ident, TokenStream};
use quote::quote;

/// The grants' request builders and typed methods (inside `impl Client`), and the
/// `GrantClient` implementation with the OAuth constants (beside it).
pub(super) fn grants(
    provider: &Provider,
    idents: &[Ident],
    config: &[ConfigField],
) -> (TokenStream, TokenStream) {
    // Each grant with the endpoint that sends it, that operation's outcome and body type (`None`:
    // the operation has no body; every value is in the query string or the headers).
    let served: Vec<(&crate::model::Grant, Ident, Ident, Option<TokenStream>)> = provider
        .refresh_operation()
        .into_iter()
        .flat_map(|op| {
            provider.refresh_grants().iter().map(move |g| {
                (
                    g,
                    ident("endpoint"),
                    ident(&op.operation.outcome),
                    &op.operation,
                )
            })
        })
        .chain(provider.grant_operations().map(|(g, grant)| {
            (
                grant,
                grant_op_names(&g.operation).0,
                ident(&g.operation.outcome),
                &g.operation,
            )
        }))
        .map(|(g, endpoint, outcome, op)| {
            (g, endpoint, outcome, op.body.as_ref().map(|b| ty(&b.ty)))
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
                GrantArg::Assertion => quote!(Some(assertion)),
                _ => quote!(Some(password)),
            })
            .collect();
        let (key, request_fn, grant_fn, what) = match grant.kind {
            GrantKind::JwtBearer => (
                quote!(JwtBearer),
                "jwt_bearer_request",
                "jwt_bearer_grant",
                "the JWT-bearer grant (RFC 7523 §2.1): a token set for a signed assertion (sign one \
                 with `tokenkit::AssertionClaims::sign`)",
            ),
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
        methods.push(match body_ty {
            Some(body_ty) => {
                let expr = request_body(
                    grant.wrap.as_ref(),
                    &grant.struct_name,
                    &grant.fill,
                    idents,
                    config,
                );
                quote! {
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
                }
            }
            // No body: every value is fixed when the client is built.
            None => quote! {
                #grant_doc
                pub async fn #grant_ident(&self) -> Result<tokenkit::TokenSet, tokenkit::RefreshError> {
                    self.#endpoint.grant(&(), &[], #outcome::token_set).await
                }
            },
        });
        trait_fns.push(match grant.kind {
            GrantKind::JwtBearer => quote! {
                fn jwt_bearer<'a>(&'a self, assertion: &'a tokenkit::Secret) -> Option<tokenkit::BoxFuture<'a, Result<tokenkit::TokenSet, tokenkit::RefreshError>>> {
                    Some(Box::pin(self.jwt_bearer_grant(assertion)))
                }
            },
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
    let client_id = provider.oauth.client_id.map(|i| &idents[i]);
    // Every endpoint is built from the same connection: the code exchange's (or the first
    // one's) holds the builder's `authorization_endpoint`.
    let consent_endpoint = served
        .iter()
        .find(|(g, ..)| g.kind == GrantKind::AuthorizationCode)
        .unwrap_or(&served[0])
        .1
        .clone();
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
            // A tenant's authorization URL: the client's server variables fill it (and an
            // `authorization_endpoint` the application set, where it has them).
            let endpoint = quote!(self.#consent_endpoint.authorization_endpoint(AUTHORIZATION_URL));
            let authorization_base =
                match variable_values(provider, idents).filter(|_| url.contains('{')) {
                    Some(values) => quote!(&support::fill_server_variables(#endpoint, #values)?),
                    None => endpoint,
                };
            let consent_challenge = if pkce {
                quote!(request.challenge)
            } else {
                quote!()
            };
            trait_fns.push(quote! {
                fn consent_url(&self, request: &tokenkit::ConsentRequest<'_>) -> Option<Result<String, tokenkit::BuildError>> {
                    Some(self.authorization_url(request.redirect_uri, request.scopes, request.state, #consent_challenge))
                }

                fn sends_pkce_verifier(&self) -> bool {
                    #pkce
                }
            });
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
                        tokenkit::authorization_url(#authorization_base, &self.#id, redirect_uri, scopes, state, #challenge_arg)
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
        /// The grants the spec maps.
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
