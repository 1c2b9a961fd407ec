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

/// What the spec's OAuth 2 security schemes say about the grants it maps (`mapped`: each
/// grant, the path of its operation, where it is mapped): each flow must name its operation as
/// its `tokenUrl` (and the refresh operation as its `refreshUrl`) and be mapped, and each mapped
/// grant must have its flow, when the spec declares flows at all.
pub(super) fn flows(
    spec: &Spec,
    servers: &[Server],
    refresh_path: Option<&str>,
    mapped: &[(GrantKind, &str, String)],
    notes: &mut Vec<SpecError>,
    errors: &mut SpecErrors,
) -> OAuth {
    let mut check = Check {
        spec,
        servers,
        refresh_path,
        mapped,
        notes,
        errors,
        oauth: OAuth::default(),
        declared: Vec::new(),
    };
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
    for (name, f) in schemes {
        let flows_at = pointer::join(&pointer::join("/components/securitySchemes", name), "flows");
        for (kind, flow) in flows_of(f) {
            if let (Some(flow), Some(flow_name)) = (flow, kind.flow()) {
                check.flow(&pointer::join(&flows_at, flow_name), kind, flow);
            }
        }
        if let Some(code) = &f.authorization_code {
            let at = pointer::join(
                &pointer::join(&flows_at, "authorizationCode"),
                "authorizationUrl",
            );
            check.authorization_url(&at, &code.authorization_url);
        }
    }
    check.undeclared();
    check.oauth
}

/// The flows of one scheme that a mapping can serve.
fn flows_of(f: &openapiv3::OAuth2Flows) -> [(GrantKind, Option<Flow<'_>>); 3] {
    [
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
    ]
}

/// The flows being checked, and what they have said so far.
struct Check<'r> {
    spec: &'r Spec,
    servers: &'r [Server],
    refresh_path: Option<&'r str>,
    mapped: &'r [(GrantKind, &'r str, String)],
    notes: &'r mut Vec<SpecError>,
    errors: &'r mut SpecErrors,
    oauth: OAuth,
    /// The grants a flow declares.
    declared: Vec<GrantKind>,
}

impl Check<'_> {
    fn push(&mut self, at: &str, message: impl Into<String>, hint: &str) {
        let error = SpecError::new(&self.spec.file, at, message);
        self.errors.push(if hint.is_empty() {
            error
        } else {
            error.hint(hint)
        });
    }

    /// Whether `url` names `path` on one of the servers (absolutely, or relative to one).
    fn points_at(&self, url: &str, path: &str) -> bool {
        self.servers.iter().any(|s| {
            let full = format!("{}{path}", s.url);
            let full_path = full
                .split_once("://")
                .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
                .unwrap_or(path);
            url == full || url == full_path || url == path
        })
    }

    /// A flow's URL (at `at`) that does not name `path`, the operation that serves it: a note
    /// when it names no operation of the document on a host of its servers, as a published
    /// document's flow may (another version of the endpoint; the client sends to the
    /// operation, whatever the flow says); an error when it names another operation (the
    /// mapping may be on the wrong one) or another host (the servers may be wrong).
    fn elsewhere(&mut self, at: &str, url: &str, path: &str) {
        let other =
            (self.spec.api.paths.paths.keys()).find(|p| *p != path && self.points_at(url, p));
        let our_host =
            !url.contains("://") || self.servers.iter().any(|s| origin(&s.url) == origin(url));
        if let (None, true) = (other, our_host) {
            self.notes.push(SpecError::new(
                &self.spec.file,
                at,
                format!("{url:?} names no operation of the document: the client sends to {path}, the operation with the mapping"),
            ));
            return;
        }
        let names = other
            .map(|o| format!(" ({o}, another operation)"))
            .unwrap_or_default();
        self.push(
            at,
            format!("{url:?}{names} is not the operation that serves it ({path} on a server of the spec)"),
            "write the URL of the operation with the mapping, absolute or relative to a server",
        );
    }

    /// One declared flow, at `flow_at`: its URLs name the operations, it is mapped, and its
    /// scopes are the client's.
    fn flow(&mut self, flow_at: &str, kind: GrantKind, (token_url, refresh_url, scopes): Flow<'_>) {
        let served = self.mapped.iter().find(|(k, _, _)| *k == kind);
        let grant_path = served.map(|(_, path, _)| *path).or(self.refresh_path);
        for (key, url, path) in [
            ("tokenUrl", Some(token_url), grant_path),
            ("refreshUrl", refresh_url, self.refresh_path),
        ] {
            let Some(url) = url else { continue };
            let at = pointer::join(flow_at, key);
            match path {
                None => self.push(
                    &at,
                    "the spec has no refresh operation (`x-token-refresh`) for this URL to name",
                    "leave out `refreshUrl` for a provider that issues no refresh tokens",
                ),
                Some(path) if !self.points_at(url, path) => self.elsewhere(&at, url, path),
                Some(_) => {}
            }
        }
        if served.is_none() {
            self.push(
                flow_at,
                format!(
                    "the {} flow is declared, but the token mapping has no `grants: {{{}: …}}` for it",
                    kind.flow().unwrap_or_default(),
                    kind.key()
                ),
                "map the grant under `x-token-refresh/grants`, or on its own operation with `x-token-grant`",
            );
        }
        self.declared.push(kind);
        for (scope, about) in scopes {
            if !self.oauth.scopes.iter().any(|(s, _)| s == scope) {
                self.oauth.scopes.push((scope.clone(), about.clone()));
            }
        }
    }

    /// The authorization URL (at `at`): absolute, https unless loopback, and its placeholders
    /// the first server's variables.
    fn authorization_url(&mut self, at: &str, url: &str) {
        let declared = self
            .spec
            .api
            .servers
            .first()
            .and_then(|s| s.variables.as_ref());
        let unknown: Vec<&str> = crate::model::placeholders(url)
            .into_iter()
            .filter(|name| !declared.is_some_and(|v| v.contains_key(*name)))
            .collect();
        if !unknown.is_empty() {
            self.push(
                at,
                format!("{url:?} has placeholders no variable of the first server declares: {unknown:?}"),
                "the authorization URL may use the first server's variables, such as a tenant's host",
            );
        } else if url.starts_with("https://") || loopback_http(url) {
            self.oauth.authorization_url = Some(url.to_owned());
        } else if url.starts_with("http://") {
            self.push(
                at,
                format!("{url:?} uses plain http: the code and state would cross the network in clear text"),
                "use the provider's https URL (http is allowed only on localhost, 127.0.0.0/8 and [::1])",
            );
        } else {
            self.push(at, format!("{url:?} is not an absolute URL"), "");
        }
    }

    /// Once any flow is declared, every mapped grant that has a flow declares it. (The
    /// JWT-bearer grant has no OpenAPI flow to declare.)
    fn undeclared(&mut self) {
        if self.declared.is_empty() {
            return;
        }
        let undeclared: Vec<(&str, &str)> = self
            .mapped
            .iter()
            .filter(|(k, _, _)| !self.declared.contains(k))
            .filter_map(|(k, _, at)| Some((k.flow()?, at.as_str())))
            .collect();
        for (flow, at) in undeclared {
            self.push(
                at,
                format!("the spec's OAuth 2 flows declare no {flow} flow for this grant"),
                "add it under the oauth2 security scheme's `flows`",
            );
        }
    }
}

/// The scheme and authority of an absolute URL (`https://api.example.com`).
fn origin(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let end = rest
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| url.len() - rest.len() + i);
    Some(&url[..end])
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
