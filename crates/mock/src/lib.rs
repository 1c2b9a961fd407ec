//! A mock token provider derived from a spec: it serves the refresh operation on 127.0.0.1,
//! checks every request against the spec, answers with the spec's own examples, and misbehaves
//! on demand (undocumented statuses, broken bodies, silence, dropped connections).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let provider = tokenkit_mock::load("specs/fredi.yaml").expect("a valid spec");
//! let mock = tokenkit_mock::MockServer::start(provider).await?;
//! // Point a client at mock.base_url(), then:
//! assert!(mock.violations().is_empty());
//! # Ok(())
//! # }
//! ```

mod authority;
mod check;
mod consent;
pub mod http;

pub use authority::AuthorityStats;
pub use consent::ConsentStats;

pub use check::{body_json, check_request, operation_for, presented_token};
pub use http::Request;

use serde_json::Value;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokenkit_codegen::Provider;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Loads and checks a spec, naming the file in errors as given.
pub fn load(path: impl AsRef<Path>) -> Result<Provider, tokenkit_codegen::SpecErrors> {
    let path = path.as_ref();
    tokenkit_codegen::load_provider(path, &path.display().to_string())
}

/// What the mock answers to a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// A documented example of `status`: the one named `name`, or the first.
    Example {
        /// The documented status.
        status: u16,
        /// The example's name in the spec (`example` for an unnamed one).
        name: Option<String>,
    },
    /// A JSON body with the status's documented media type.
    Json {
        /// The status.
        status: u16,
        /// The body.
        body: Value,
    },
    /// Any bytes with any content type.
    Raw {
        /// The status.
        status: u16,
        /// The `Content-Type`, if any.
        content_type: Option<String>,
        /// The body.
        body: Vec<u8>,
    },
    /// Declares the whole body's length, sends the first half, then closes the connection.
    Truncated {
        /// The status.
        status: u16,
        /// The whole body.
        body: Vec<u8>,
    },
    /// Streams a JSON-looking body of `bytes` bytes, or until the client stops reading.
    Endless {
        /// The status.
        status: u16,
        /// How many bytes to offer.
        bytes: usize,
        /// Whether to declare the length up front (otherwise the body is chunked).
        declare_length: bool,
    },
    /// Reads the request and never answers.
    Silent,
    /// Reads the request and closes the connection without a word.
    Close,
    /// An undocumented status (429 or 503, say) with a `Retry-After` header and no body.
    RetryAfter {
        /// The status.
        status: u16,
        /// The header's value: seconds, or an HTTP date.
        retry_after: String,
    },
    /// `302 Found` to `location` (the consent page's way back to the application).
    Redirect {
        /// Where to.
        location: String,
    },
    /// Waits, then gives the inner reply.
    Delayed {
        /// How long to wait.
        delay: Duration,
        /// What to answer then.
        reply: Box<Reply>,
    },
}

/// A request the mock received, and how it broke the spec.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The request.
    pub request: Request,
    /// Every rule of the spec it broke; empty for a conforming request.
    pub violations: Vec<String>,
}

#[derive(Default)]
struct State {
    queued: VecDeque<Reply>,
    default: Option<Reply>,
    authority: Option<authority::Authority>,
    /// The authorization endpoint and its codes, once [`MockServer::serve_consent`] ran.
    consent: Option<consent::Consent>,
    recorded: Vec<Recorded>,
    streamed: usize,
    /// Off for benchmarks: neither checks nor keeps requests.
    quiet: bool,
    /// Answers requests that break the spec as if they did not (the examples); by default
    /// they get `422` with the violations.
    lenient: bool,
}

/// A running mock. It stops when dropped.
pub struct MockServer {
    addr: SocketAddr,
    base_path: String,
    provider: Arc<Provider>,
    state: Arc<Mutex<State>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The path part of a server URL: `/v1` for `https://api.example.com/v1`.
fn base_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme
        .find('/')
        .map(|i| after_scheme[i..].trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

impl MockServer {
    /// Serves `provider` on an ephemeral port of 127.0.0.1.
    pub async fn start(provider: Provider) -> std::io::Result<Self> {
        Self::bind(provider, 0).await
    }

    /// Serves `provider` on `port` of 127.0.0.1 (0 picks a free one).
    pub async fn bind(provider: Provider, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let mut base_path = provider
            .servers
            .first()
            .map(|s| base_path(&s.url))
            .unwrap_or_default();
        // A server variable in the path (`/{region}`) takes its default: the mock is one tenant.
        for variable in &provider.server_variables {
            if let Some(value) = provider.config[variable.field].example.as_str() {
                base_path = base_path.replace(&format!("{{{}}}", variable.name), value);
            }
        }
        let provider = Arc::new(provider);
        let state = Arc::new(Mutex::new(State::default()));
        let accept = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&provider),
            base_path.clone(),
            Arc::clone(&state),
        ));
        Ok(Self {
            addr,
            base_path,
            provider,
            state,
            accept,
        })
    }

    /// The base URL to give a client: the mock's address and the spec's server path.
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, self.base_path)
    }

    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The provider this mock serves.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Answers every request with `reply` from now on (queued replies first).
    pub fn set_default(&self, reply: Reply) {
        self.state().default = Some(reply);
    }

    /// Answers the next request with `reply`, once.
    pub fn enqueue(&self, reply: Reply) {
        self.state().queued.push_back(reply);
    }

    /// Answers requests that break the spec with the usual replies instead of `422`: for
    /// applications still on their way to conforming.
    pub fn lenient(&self) {
        self.state().lenient = true;
    }

    /// Stops checking and keeping requests, for benchmarks that send millions.
    pub fn quiet(&self) {
        self.state().quiet = true;
    }

    /// Every request so far, with its violations.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().recorded.clone()
    }

    /// Every violation of every request so far, each prefixed with the request's number.
    pub fn violations(&self) -> Vec<String> {
        self.state()
            .recorded
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                r.violations
                    .iter()
                    .map(move |v| format!("request {i}: {v}"))
            })
            .collect()
    }

    /// Makes the mock a provider that enforces rotation: every success issues a fresh access
    /// token and refresh token (living `lifetime_secs`), each refresh token works once, and a
    /// reused one answers the spec's invalid-grant failure and revokes its whole family
    /// (RFC 9700 §4.14.2). Answers come after `delay`. Returns the family's first refresh token.
    pub fn enforce_rotation(&self, lifetime_secs: i64, delay: Duration) -> String {
        let mut authority = authority::Authority::new(lifetime_secs, delay);
        let first = authority.mint_family();
        self.state().authority = Some(authority);
        first
    }

    /// Starts another token family (a user's connection) on the rotation-enforcing provider
    /// and returns its first refresh token; `None` when rotation is not enforced. Families are
    /// independent: spending, reusing or revoking one leaves the others alone.
    pub fn new_family(&self) -> Option<String> {
        self.state()
            .authority
            .as_mut()
            .map(authority::Authority::mint_family)
    }

    /// Revokes the family `token` belongs to (a user who disconnected the application at the
    /// provider): its refresh tokens answer invalid-grant from now on. `false` for a token the
    /// provider never issued.
    pub fn revoke_family_of(&self, token: &str) -> bool {
        self.state()
            .authority
            .as_mut()
            .is_some_and(|a| a.revoke_family_of(token))
    }

    /// Revokes every token family the rotation-enforcing provider issued (an administrator
    /// revoking the application's tokens, say): each of their refresh tokens answers the spec's
    /// invalid-grant failure from now on.
    pub fn revoke_families(&self) {
        if let Some(authority) = self.state().authority.as_mut() {
            authority.revoke_all();
        }
    }

    /// How many refreshes the rotation-enforcing provider answered for each token family (each
    /// user's connection); empty when it is off.
    pub fn refreshes_by_family(&self) -> Vec<u64> {
        self.state()
            .authority
            .as_ref()
            .map(|a| a.by_family.values().copied().collect())
            .unwrap_or_default()
    }

    /// What the rotation-enforcing provider has seen; zeros when it is off.
    pub fn authority_stats(&self) -> AuthorityStats {
        self.state()
            .authority
            .as_ref()
            .map(|a| a.stats)
            .unwrap_or_default()
    }

    /// Serves the spec's authorization endpoint too (its `authorizationCode` flow's
    /// `authorizationUrl`, at its path here): a consent page where a customer approves or
    /// denies, then a redirect back with a code (or `error=access_denied`), the `state` and
    /// `iss` (RFC 9207: [`MockServer::issuer`]). Each code is bound to the client, the redirect
    /// URI and the PKCE challenge it was issued for, and the token endpoint checks them: one
    /// exchange per code, within a minute, by that client, with that redirect URI and a
    /// verifier that matches (a code presented again also revokes the token family it was
    /// exchanged for, where rotation is enforced). Codes the consent page did not issue are
    /// refused from now on. Returns the endpoint's URL (give it to the client builder's
    /// `authorization_endpoint`); `None` when the spec has no authorization code flow.
    pub fn serve_consent(&self) -> Option<String> {
        let url = self.provider.oauth.authorization_url.as_deref()?;
        let mut path = base_path(url);
        for variable in &self.provider.server_variables {
            if let Some(value) = self.provider.config[variable.field].example.as_str() {
                path = path.replace(&format!("{{{}}}", variable.name), value);
            }
        }
        if path.is_empty() {
            path = "/".to_owned();
        }
        let endpoint = format!("{}{path}", self.issuer());
        self.state().consent = Some(consent::Consent::new(path, self.issuer()));
        Some(endpoint)
    }

    /// Sends customers back only to `uri` (and any other registered one) from now on: an
    /// authorization request with another redirect URI gets an error page, never a redirect.
    pub fn register_redirect_uri(&self, uri: &str) {
        if let Some(consent) = self.state().consent.as_mut() {
            consent.register_redirect_uri(uri);
        }
    }

    /// The issuer identifier the consent redirect's `iss` carries: the mock's origin.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the consent side has seen; default when [`MockServer::serve_consent`] never ran.
    pub fn consent_stats(&self) -> ConsentStats {
        self.state()
            .consent
            .as_ref()
            .map(|c| c.stats.clone())
            .unwrap_or_default()
    }

    /// How many body bytes `Reply::Endless` got onto the wire before the client stopped.
    pub fn bytes_streamed(&self) -> usize {
        self.state().streamed
    }

    /// The documented example `name` (or the first) of `status`, if the spec has one.
    pub fn example(&self, status: u16, name: Option<&str>) -> Option<Value> {
        example(&self.provider, status, name)
    }
}

/// A lock that survives a panicking holder: the state is plain data.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The documented example `name` (or the first) of `status`, of the refresh operation (or of
/// the first grant operation, for a provider with grants only).
pub fn example(provider: &Provider, status: u16, name: Option<&str>) -> Option<Value> {
    example_of(&provider.operations.first()?.operation, status, name)
}

/// The documented example `name` (or the first) of `status`, of `operation`.
pub fn example_of(
    operation: &tokenkit_codegen::model::Operation,
    status: u16,
    name: Option<&str>,
) -> Option<Value> {
    let case = operation.responses.iter().find(|r| r.status == status)?;
    case.examples
        .iter()
        .find(|(n, _)| name.is_none_or(|name| n == name))
        .map(|(_, v)| v.clone())
}

/// What the mock says when told nothing: the first success example of the operation asked.
fn fallback(answering: &tokenkit_codegen::model::TokenOperation) -> Reply {
    Reply::Example {
        status: answering.success.status,
        name: None,
    }
}

async fn accept_loop(
    listener: TcpListener,
    provider: Arc<Provider>,
    base_path: String,
    state: Arc<Mutex<State>>,
) {
    // Connections live in the set, so stopping the mock stops them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                connections.spawn(serve(stream, Arc::clone(&provider), base_path.clone(), Arc::clone(&state)));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(
    mut stream: TcpStream,
    provider: Arc<Provider>,
    base_path: String,
    state: Arc<Mutex<State>>,
) {
    let mut buffer = Vec::new();
    while let Ok(Some(request)) = http::read_request(&mut stream, &mut buffer).await {
        let answering = check::operation_for(&provider, &request);
        let page = lock(&state)
            .consent
            .as_mut()
            .and_then(|c| c.route(&provider, &request));
        if let Some(page) = page {
            if !answer(&mut stream, &answering.operation, &state, page).await {
                return;
            }
            continue;
        }
        if let Some(revocation) = provider
            .revocation
            .as_ref()
            .filter(|r| is_for(&r.operation, &request))
        {
            let violations = check::check_revocation(&provider, revocation, &request);
            let reply = revoke(revocation, &request, violations, &mut lock(&state));
            if !answer(&mut stream, &revocation.operation, &state, reply).await {
                return;
            }
            continue;
        }
        let quiet = lock(&state).quiet;
        let violations = if quiet {
            Vec::new()
        } else {
            check::check_request(&provider, &base_path, &request)
        };
        let reply = {
            let mut state = lock(&state);
            let refused = (!state.quiet && !state.lenient && !violations.is_empty())
                .then(|| problem(&violations));
            let next = match refused {
                Some(refused) => Some(refused),
                None => state.queued.pop_front(),
            };
            let exchange = match (&next, state.consent.as_mut()) {
                (None, Some(consent)) => consent.check(
                    &provider,
                    check::body_json(&provider, &request).as_ref(),
                    request.header("authorization"),
                ),
                _ => consent::Exchange::NotMine,
            };
            let next = match exchange {
                consent::Exchange::Refused { revoke } => {
                    if let (Some(family), Some(authority)) = (revoke, state.authority.as_mut()) {
                        authority.revoke_family(family);
                    }
                    Some(authority::dead(&provider))
                }
                _ => next,
            };
            let families = state.authority.as_ref().map(|a| a.families());
            let issued = match (&next, state.authority.as_mut()) {
                (None, Some(authority)) => Some(authority.answer(&provider, &request)),
                _ => None,
            };
            if let consent::Exchange::Accepted(code) = &exchange {
                let after = state.authority.as_ref().map(|a| a.families());
                let family = after.filter(|after| Some(*after) != families);
                if let Some(consent) = state.consent.as_mut() {
                    consent.exchanged(code, family);
                }
            }
            if !state.quiet {
                state.recorded.push(Recorded {
                    request,
                    violations,
                });
            }
            next.or(issued)
                .or_else(|| state.default.clone())
                .unwrap_or_else(|| fallback(answering))
        };
        if !answer(&mut stream, &answering.operation, &state, reply).await {
            return;
        }
    }
}

/// Whether `request` is for `operation` (its method, and a path that ends with the
/// operation's, below the server's base path).
fn is_for(operation: &tokenkit_codegen::model::Operation, request: &Request) -> bool {
    request.method == operation.method
        && request
            .path
            .trim_end_matches('/')
            .ends_with(operation.path.trim_end_matches('/'))
}

/// A token revocation (RFC 7009): the token the mapping names, revoked with its family where
/// the provider issued it; `200` with an empty body either way, `400` when no token came. A
/// queued reply answers instead (and revokes nothing); a request that breaks the spec gets
/// `422`, unless the mock is lenient.
fn revoke(
    revocation: &tokenkit_codegen::model::Revocation,
    request: &Request,
    violations: Vec<String>,
    state: &mut State,
) -> Reply {
    use tokenkit_codegen::model::{FillSource, GrantArg};
    let field = revocation
        .fill
        .iter()
        .find(|f| matches!(f.source, FillSource::Arg(GrantArg::RevokedToken)))
        .map(|f| f.json.as_str())
        .unwrap_or("token");
    let form = revocation
        .operation
        .body
        .as_ref()
        .is_some_and(|b| tokenkit_codegen::model::is_form(&b.media_type));
    let token = if form {
        std::str::from_utf8(&request.body)
            .ok()
            .and_then(|text| http::form_pairs(text).into_iter().find(|(k, _)| k == field))
            .map(|(_, v)| v)
    } else {
        serde_json::from_slice::<Value>(&request.body)
            .ok()
            .and_then(|body| body.get(field)?.as_str().map(str::to_owned))
    };
    let refused = (!state.lenient && !violations.is_empty()).then(|| problem(&violations));
    if !state.quiet {
        state.recorded.push(Recorded {
            request: request.clone(),
            violations,
        });
    }
    if let Some(refused) = refused {
        return refused;
    }
    if let Some(queued) = state.queued.pop_front() {
        return queued;
    }
    match token.filter(|t| !t.is_empty()) {
        Some(token) => {
            if let Some(authority) = state.authority.as_mut() {
                authority.revoke_token(&token);
            }
            Reply::Raw {
                status: 200,
                content_type: None,
                body: Vec::new(),
            }
        }
        None => Reply::Json {
            status: 400,
            body: serde_json::json!({ "error": "invalid_request" }),
        },
    }
}

/// The `422` a strict mock answers a request that breaks the spec with: an RFC 9457 problem
/// listing the violations (which quote no request value).
fn problem(violations: &[String]) -> Reply {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "The request does not conform to the spec",
        "status": 422,
        "violations": violations,
    });
    Reply::Raw {
        status: 422,
        content_type: Some("application/problem+json".to_owned()),
        body: body.to_string().into_bytes(),
    }
}

/// Sends `reply`; false when the connection must not be used again.
async fn answer(
    stream: &mut TcpStream,
    operation: &tokenkit_codegen::model::Operation,
    state: &Mutex<State>,
    reply: Reply,
) -> bool {
    let media_of = |status: u16| {
        operation
            .responses
            .iter()
            .find(|r| r.status == status)
            .and_then(|r| r.body.as_ref().map(|(m, _)| m.clone()))
            .unwrap_or_else(|| "application/json".to_owned())
    };
    match reply {
        Reply::Example { status, name } => match example_of(operation, status, name.as_deref()) {
            Some(body) => json(stream, status, &media_of(status), &body).await,
            None => {
                // A documented status without an example: an empty body, as documented.
                http::write_response(stream, status, None, b"")
                    .await
                    .is_ok()
            }
        },
        Reply::Json { status, body } => json(stream, status, &media_of(status), &body).await,
        Reply::Raw {
            status,
            content_type,
            body,
        } => http::write_response(stream, status, content_type.as_deref(), &body)
            .await
            .is_ok(),
        Reply::RetryAfter {
            status,
            retry_after,
        } => {
            let mut bytes = http::head(status, None, Some(0));
            let blank = bytes.len() - 2;
            let header = format!("Retry-After: {retry_after}\r\n");
            bytes.splice(blank..blank, header.into_bytes());
            stream.write_all(&bytes).await.is_ok()
        }
        Reply::Truncated { status, body } => {
            let mut bytes = http::head(status, Some("application/json"), Some(body.len()));
            bytes.extend_from_slice(&body[..body.len() / 2]);
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
            false
        }
        Reply::Endless {
            status,
            bytes,
            declare_length,
        } => {
            endless(stream, state, status, bytes, declare_length).await;
            false
        }
        Reply::Silent => {
            std::future::pending::<()>().await;
            false
        }
        Reply::Close => false,
        Reply::Redirect { location } => {
            let mut bytes = http::head(302, None, Some(0));
            let blank = bytes.len() - 2;
            let header = format!("Location: {location}\r\nCache-Control: no-store\r\n");
            bytes.splice(blank..blank, header.into_bytes());
            stream.write_all(&bytes).await.is_ok()
        }
        Reply::Delayed { delay, reply } => {
            tokio::time::sleep(delay).await;
            Box::pin(answer(stream, operation, state, *reply)).await
        }
    }
}

async fn json(stream: &mut TcpStream, status: u16, media: &str, body: &Value) -> bool {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    http::write_response(stream, status, Some(media), &bytes)
        .await
        .is_ok()
}

async fn endless(
    stream: &mut TcpStream,
    state: &Mutex<State>,
    status: u16,
    bytes: usize,
    declare_length: bool,
) {
    let head = http::head(
        status,
        Some("application/json"),
        declare_length.then_some(bytes),
    );
    if stream.write_all(&head).await.is_err() {
        return;
    }
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < bytes {
        let n = chunk.len().min(bytes - sent);
        let ok = if declare_length {
            stream.write_all(&chunk[..n]).await.is_ok()
        } else {
            let mut framed = format!("{n:x}\r\n").into_bytes();
            framed.extend_from_slice(&chunk[..n]);
            framed.extend_from_slice(b"\r\n");
            stream.write_all(&framed).await.is_ok()
        };
        if !ok {
            break;
        }
        sent += n;
        lock(state).streamed = sent;
    }
    if !declare_length && sent >= bytes {
        let _ = stream.write_all(b"0\r\n\r\n").await;
    }
}

#[cfg(test)]
mod tests {
    use super::base_path;

    #[test]
    fn base_paths() {
        assert_eq!(base_path("https://api.byelabel.com/v1"), "/v1");
        assert_eq!(base_path("https://api.vault.ist"), "");
        assert_eq!(base_path("https://x.example/api/"), "/api");
    }
}
