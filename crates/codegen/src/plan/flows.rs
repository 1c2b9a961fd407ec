//! The OAuth 2 flows the spec declares (`components/securitySchemes`), checked against the
//! grants it maps: the authorization URL and the scopes.

use crate::error::{SpecError, SpecErrors};
use crate::extension::GrantKind;
use crate::model::{OAuth, Server};
use crate::pointer;
use crate::read::Spec;
use indexmap::IndexMap;
use openapiv3::ReferenceOr;

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
            let unknown: Vec<&str> = crate::model::placeholders(url)
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
