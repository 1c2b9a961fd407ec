//! What a generated client sends through: the transport, and every part of the request that is
//! fixed when the client is built (method, path, headers, query, encoding). Generated code only
//! says what its spec says; how values are placed, kept secret and scrubbed is written here once.

use crate::assertion::{AssertionClaims, SigningKey};
use crate::client::{RefreshWith, Rotation};
use crate::error::{BuildError, RefreshError};
use crate::secret::{RefreshToken, Secret};
use crate::snippet::Snippet;
use crate::support::generate::Generate;
use crate::support::http::{
    Connection, Response, Transport, basic_auth, header_value, path_segment, sensitive_header_value,
};
use crate::token::TokenSet;
use reqwest::header::{HeaderMap, HeaderName};
use serde::Serialize;
use std::fmt;
use std::time::SystemTime;

/// How the request body is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/json` (or a `+json` type).
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// No body: every value travels in the path, the query or a header.
    Empty,
}

/// Where the refresh token travels in a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenPlace {
    /// Nowhere: the operation serves a grant and sends no refresh token.
    NotSent,
    /// In the body, which the generated code builds.
    Body,
    /// As this query parameter.
    Query(&'static str),
    /// In this header, after `prefix` (`Authorization: Bearer <token>`, say).
    Header {
        /// The header's name.
        name: &'static str,
        /// Written before the token.
        prefix: &'static str,
    },
}

/// What a spec says about an operation's request, as a generated constant.
#[derive(Clone, Copy, Debug)]
pub struct Operation {
    /// The HTTP method, upper case (`POST`).
    pub method: &'static str,
    /// The path template below the base URL; `{name}` placeholders are path parameters.
    pub path: &'static str,
    /// How the body is written.
    pub encoding: Encoding,
    /// Where the refresh token goes.
    pub refresh_token: TokenPlace,
    /// Body fields whose values error snippets never show (mapped tokens, `format: password`,
    /// credential-like names), beyond those that look like credentials anyway.
    pub sensitive_fields: &'static [&'static str],
}

/// One operation of a provider, ready to send: the transport plus the request parts fixed at
/// build time. Values from configuration that are secrets (API keys, client secrets) stay
/// [`Secret`]s here, are scrubbed from every error, and `Debug` shows no value at all.
#[derive(Clone)]
pub struct Endpoint {
    transport: Transport,
    method: reqwest::Method,
    template: &'static str,
    refresh_token: TokenPlace,
    /// The path with its parameters filled in; a secret, since a parameter may be one.
    path: Secret,
    encoding: Encoding,
    headers: HeaderMap,
    query: Vec<(&'static str, Secret)>,
    secrets: Vec<Secret>,
    /// Headers and query parameters made fresh for each request (`true`: a header).
    generated_params: Vec<(bool, &'static str, Generate)>,
    /// Body fields made fresh for each request, where the body carries them: the field, what
    /// to make, and whether it is written as text.
    generated_body: Vec<(&'static str, Generate, bool)>,
    /// `private_key_jwt` (RFC 7523 §2.2): the body field that carries a fresh signed assertion,
    /// the key, and the client id it names as issuer and subject.
    client_assertion: Option<(&'static str, SigningKey, String)>,
    /// Where customers go for consent, where the application set it.
    authorization_endpoint: Option<String>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let query: Vec<&str> = self.query.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Endpoint")
            .field("base_url", &self.transport.base_url())
            .field("method", &self.method)
            .field("path", &self.template)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("query", &query)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// `operation` through `connection`; [`Endpoint::path_param`] fills the path's
    /// placeholders.
    pub fn new(connection: Connection, operation: &Operation) -> Result<Self, BuildError> {
        let method =
            reqwest::Method::from_bytes(operation.method.as_bytes()).map_err(|_| BuildError {
                reason: format!("{:?} is not an HTTP method", operation.method),
            })?;
        let authorization_endpoint = connection.authorization_endpoint.clone();
        Ok(Self {
            transport: connection.transport(operation.sensitive_fields)?,
            authorization_endpoint,
            method,
            template: operation.path,
            refresh_token: operation.refresh_token,
            path: Secret::new(operation.path),
            encoding: operation.encoding,
            headers: HeaderMap::new(),
            query: Vec::new(),
            secrets: Vec::new(),
            generated_params: Vec::new(),
            generated_body: Vec::new(),
            client_assertion: None,
        })
    }

    /// Where customers go for consent: the builder's `authorization_endpoint`, else `spec`
    /// (the spec's `authorizationUrl`).
    pub fn authorization_endpoint<'a>(&'a self, spec: &'a str) -> &'a str {
        self.authorization_endpoint.as_deref().unwrap_or(spec)
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.transport.base_url()
    }

    /// The HTTP timeout of one request, when the runtime built the HTTP client.
    pub fn timeout(&self) -> Option<std::time::Duration> {
        self.transport.timeout()
    }

    /// Sends the header `name: value` with every request.
    pub fn header(&mut self, name: &str, value: &str) -> Result<(), BuildError> {
        let name = header_name(name)?;
        let value = header_value(name.as_str(), value)?;
        self.headers.insert(name, value);
        Ok(())
    }

    /// Like [`Endpoint::header`], for a secret: marked sensitive and scrubbed from errors.
    pub fn secret_header(&mut self, name: &str, value: &Secret) -> Result<(), BuildError> {
        let name = header_name(name)?;
        let sensitive = sensitive_header_value(name.as_str(), value.expose())?;
        self.headers.insert(name, sensitive);
        self.scrub(value);
        Ok(())
    }

    /// `Authorization: Basic` for a client id and secret (RFC 6749 §2.3.1).
    pub fn basic_auth(
        &mut self,
        client_id: &str,
        client_secret: &Secret,
    ) -> Result<(), BuildError> {
        self.headers.insert(
            reqwest::header::AUTHORIZATION,
            basic_auth(client_id, client_secret.expose())?,
        );
        self.scrub(client_secret);
        Ok(())
    }

    /// Adds `name=value` to the query string of every request.
    pub fn query(&mut self, name: &'static str, value: &str) {
        self.query.push((name, Secret::new(value)));
    }

    /// Like [`Endpoint::query`], for a secret: also scrubbed from errors.
    pub fn secret_query(&mut self, name: &'static str, value: &Secret) {
        self.query.push((name, value.clone()));
        self.scrub(value);
    }

    /// Fills the path's `{name}` placeholder with `value`, percent-encoded as one segment.
    pub fn path_param(&mut self, name: &str, value: &str) {
        let filled = self
            .path
            .expose()
            .replace(&format!("{{{name}}}"), &path_segment(value));
        self.path = Secret::new(filled);
    }

    /// Like [`Endpoint::path_param`], for a secret: also scrubbed from errors.
    pub fn secret_path_param(&mut self, name: &str, value: &Secret) {
        self.path_param(name, value.expose());
        self.scrub(value);
    }

    /// Sends the header `name` with a fresh value of `kind` on every request.
    pub fn generated_header(
        &mut self,
        name: &'static str,
        kind: Generate,
    ) -> Result<(), BuildError> {
        header_name(name)?;
        self.generated_params.push((true, name, kind));
        Ok(())
    }

    /// Adds `name` to the query string with a fresh value of `kind` on every request.
    pub fn generated_query(&mut self, name: &'static str, kind: Generate) {
        self.generated_params.push((false, name, kind));
    }

    /// Writes a fresh value of `kind` into the body's top-level `field` on every request that
    /// carries the field (the generated request bodies fill it with a placeholder; a request
    /// that leaves it out gets none): as text where `as_text`, else a number for the Unix times.
    pub fn generated_body(&mut self, field: &'static str, kind: Generate, as_text: bool) {
        self.generated_body.push((field, kind, as_text));
    }

    /// Authenticates the client with `private_key_jwt` (RFC 7523 §2.2): every request carries,
    /// in the body's `field`, an assertion signed with `key` whose issuer and subject are
    /// `client_id`, whose audience is this endpoint's URL, valid for 60 seconds, with a fresh
    /// `jti`.
    pub fn client_assertion(&mut self, field: &'static str, key: &SigningKey, client_id: &str) {
        self.client_assertion = Some((field, key.clone(), client_id.to_owned()));
    }

    /// The URL requests go to (what an assertion names as its audience).
    pub fn url(&self) -> String {
        format!("{}{}", self.transport.base_url(), self.path.expose())
    }

    /// Scrubs `secret` from every error this endpoint returns (a client secret sent in the
    /// body, say). The refresh token sent is always scrubbed.
    pub fn scrub(&mut self, secret: &Secret) {
        if !secret.expose().is_empty() {
            self.secrets.push(secret.clone());
        }
    }

    /// Sends `body` (and `refresh_token`, where the operation carries it outside the body) and
    /// reads the response up to the body cap.
    pub async fn send<B: Serialize + ?Sized>(
        &self,
        body: &B,
        refresh_token: Option<&RefreshToken>,
    ) -> Result<Response, RefreshError> {
        // Nothing was sent when any of this fails.
        fn unsendable<E>(_: E) -> RefreshError {
            RefreshError::not_sent()
        }
        let mut headers = self.headers.clone();
        let mut fresh_query = Vec::new();
        for (is_header, name, kind) in &self.generated_params {
            let value = kind.text()?;
            if *is_header {
                let name = header_name(name).map_err(unsendable)?;
                let value = header_value(name.as_str(), &value).map_err(unsendable)?;
                headers.insert(name, value);
            } else {
                fresh_query.push((*name, value));
            }
        }
        let mut query: Vec<(&str, &str)> = self
            .query
            .iter()
            .map(|(name, value)| (*name, value.expose()))
            .chain(
                fresh_query
                    .iter()
                    .map(|(name, value)| (*name, value.as_str())),
            )
            .collect();
        match (self.refresh_token, refresh_token) {
            (TokenPlace::Query(name), Some(token)) => query.push((name, token.expose())),
            (TokenPlace::Header { name, prefix }, Some(token)) => {
                // Checked by the generator; a failure here sent nothing.
                let name = header_name(name).map_err(unsendable)?;
                let value =
                    sensitive_header_value(name.as_str(), &format!("{prefix}{}", token.expose()))
                        .map_err(unsendable)?;
                headers.insert(name, value);
            }
            _ => {}
        }
        let mut request = self
            .transport
            .request(self.method.clone(), self.path.expose())
            .headers(headers);
        if !query.is_empty() {
            request = request.query(&query);
        }
        let writes_body = !self.generated_body.is_empty() || self.client_assertion.is_some();
        request = match (self.encoding, !writes_body) {
            (Encoding::Empty, _) => request,
            (Encoding::Json, true) => request.json(body),
            (Encoding::Form, true) => request.form(body),
            (encoding, false) => {
                let mut value = serde_json::to_value(body).map_err(unsendable)?;
                if let serde_json::Value::Object(fields) = &mut value {
                    for (field, kind, as_text) in &self.generated_body {
                        if let Some(slot) = fields.get_mut(*field) {
                            *slot = kind.value(*as_text)?;
                        }
                    }
                    if let Some((field, key, client_id)) = &self.client_assertion {
                        let claims = AssertionClaims::new(client_id, client_id, self.url());
                        let signed = claims.sign(key).map_err(unsendable)?;
                        fields.insert((*field).to_owned(), signed.expose().into());
                    }
                }
                match encoding {
                    Encoding::Form => request.form(&value),
                    _ => request.json(&value),
                }
            }
        };
        self.transport
            .send(request)
            .await
            .map_err(|e| self.scrubbed(e, None))
    }

    /// One refresh, start to finish: sends `body`, turns the response into a token set with
    /// `map` (the generated decoder and mapping), then applies what every provider shares:
    /// - an empty access token, or an empty new refresh token, is a bad response;
    /// - a response without a new refresh token keeps `sent` where `rotation` allows that,
    ///   and is a bad response where it does not (the token just sent is spent); where `sent`
    ///   is the access token (`sends`), no refresh token exists and none is kept;
    /// - the response's `Retry-After` reaches a retryable error;
    /// - `sent` and every secret of the endpoint are scrubbed from errors.
    pub async fn refresh<B, F>(
        &self,
        body: &B,
        sent: &RefreshToken,
        sends: RefreshWith,
        rotation: Rotation,
        map: F,
    ) -> Result<TokenSet, RefreshError>
    where
        B: Serialize + ?Sized,
        F: FnOnce(&Response, SystemTime) -> Result<TokenSet, RefreshError>,
    {
        self.exchange(body, Some(sent), &[], map, |tokens, response| match sends {
            RefreshWith::RefreshToken => complete(tokens, response, sent, rotation),
            RefreshWith::AccessToken => check_tokens(tokens, response),
        })
        .await
    }

    /// One grant (client credentials, code exchange, password), start to finish: like
    /// [`Endpoint::refresh`] with no refresh token sent. An answer without a refresh token is
    /// fine here (RFC 6749 §4.4.3: client credentials usually get none); an empty token is a
    /// bad response. `secrets` (the code, the password, the PKCE verifier) are scrubbed from
    /// errors with the endpoint's own.
    pub async fn grant<B, F>(
        &self,
        body: &B,
        secrets: &[Option<&Secret>],
        map: F,
    ) -> Result<TokenSet, RefreshError>
    where
        B: Serialize + ?Sized,
        F: FnOnce(&Response, SystemTime) -> Result<TokenSet, RefreshError>,
    {
        self.exchange(body, None, secrets, map, check_tokens).await
    }

    /// One token revocation (RFC 7009 §2.1): any 2xx answer is a revocation (the provider
    /// answers 200 for a token it does not know too); another status is
    /// [`RefreshError::UnexpectedStatus`]. `secrets` (the token) are scrubbed from errors with
    /// the endpoint's own.
    pub async fn revoke<B: Serialize + ?Sized>(
        &self,
        body: &B,
        secrets: &[Option<&Secret>],
    ) -> Result<(), RefreshError> {
        let scrub = |e: RefreshError| {
            secrets
                .iter()
                .flatten()
                .fold(self.scrubbed(e, None), |e, s| e.redact(s.expose()))
        };
        let response = self.send(body, None).await.map_err(scrub)?;
        if (200..300).contains(&response.status()) {
            Ok(())
        } else {
            Err(scrub(response.unexpected()))
        }
    }

    /// Sends, maps the answer, holds it to `rules`; every error is scrubbed of `sent`,
    /// `secrets` and the endpoint's own, and carries the answer's `Retry-After`.
    async fn exchange<B, F, R>(
        &self,
        body: &B,
        sent: Option<&RefreshToken>,
        secrets: &[Option<&Secret>],
        map: F,
        rules: R,
    ) -> Result<TokenSet, RefreshError>
    where
        B: Serialize + ?Sized,
        F: FnOnce(&Response, SystemTime) -> Result<TokenSet, RefreshError>,
        R: FnOnce(TokenSet, &Response) -> Result<TokenSet, RefreshError>,
    {
        let scrub = |e: RefreshError| {
            secrets
                .iter()
                .flatten()
                .fold(self.scrubbed(e, sent), |e, s| e.redact(s.expose()))
        };
        let response = self.send(body, sent).await.map_err(scrub)?;
        let received = SystemTime::now();
        map(&response, received)
            .and_then(|tokens| rules(tokens, &response))
            .map_err(|e| scrub(e).with_retry_after(response.retry_after()))
    }

    fn scrubbed(&self, error: RefreshError, sent: Option<&RefreshToken>) -> RefreshError {
        let error = match sent {
            Some(sent) => error.redact(sent.expose()),
            None => error,
        };
        self.secrets
            .iter()
            .fold(error, |error, secret| error.redact(secret.expose()))
    }
}

fn header_name(name: &str) -> Result<HeaderName, BuildError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| BuildError {
        reason: format!("{name:?} is not a valid header name"),
    })
}

/// The rules every successful answer must meet, whatever its spec: a non-empty access token,
/// and a new refresh token that is not empty when there is one.
fn check_tokens(tokens: TokenSet, response: &Response) -> Result<TokenSet, RefreshError> {
    let empty = |what: &str| {
        Err(RefreshError::InvalidBody {
            status: response.status(),
            reason: format!("the {what} is empty"),
            body: Snippet::default(),
        })
    };
    if tokens.access_token.expose().trim().is_empty() {
        return empty("access token");
    }
    if tokens
        .refresh_token
        .as_ref()
        .is_some_and(|new| new.expose().trim().is_empty())
    {
        return empty("new refresh token");
    }
    Ok(tokens)
}

/// What a refresh answer must meet besides: without a new refresh token, `sent` stays where
/// `rotation` allows that, and the answer is a bad response where it does not (the token just
/// sent is spent).
fn complete(
    tokens: TokenSet,
    response: &Response,
    sent: &RefreshToken,
    rotation: Rotation,
) -> Result<TokenSet, RefreshError> {
    let mut tokens = check_tokens(tokens, response)?;
    if tokens.refresh_token.is_none() {
        if !rotation.resend_is_safe() {
            return Err(RefreshError::InvalidBody {
                status: response.status(),
                reason: "the answer carries no new refresh token, though this provider spends the one sent".into(),
                body: Snippet::default(),
            });
        }
        tokens.refresh_token = Some(sent.clone());
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(access: &str, refresh: Option<&str>) -> TokenSet {
        TokenSet {
            access_token: access.into(),
            refresh_token: refresh.map(Into::into),
            expires_at: None,
            token_type: None,
            refresh_expires_at: None,
            extras: Default::default(),
            origin: None,
            issuer: None,
            values: Default::default(),
        }
    }

    #[test]
    fn empty_or_missing_tokens_are_bad_responses() {
        let ok = Response::new(200, Some("application/json"), "{}");
        let sent = RefreshToken::new("SNTL-sent");
        let bad = |r: Result<TokenSet, RefreshError>| {
            r.is_err_and(|e| e.kind() == crate::ErrorKind::BadResponse)
        };
        assert!(bad(complete(
            set("", Some("r")),
            &ok,
            &sent,
            Rotation::Optional
        )));
        assert!(bad(complete(
            set(" ", Some("r")),
            &ok,
            &sent,
            Rotation::Optional
        )));
        assert!(bad(complete(
            set("a", Some("")),
            &ok,
            &sent,
            Rotation::Optional
        )));
        for rotation in [Rotation::OneTime, Rotation::Rotating] {
            assert!(bad(complete(set("a", None), &ok, &sent, rotation)));
        }
        let kept = complete(set("a", None), &ok, &sent, Rotation::Optional).unwrap();
        assert_eq!(kept.refresh_token, Some(sent.clone()));
        let rotated = complete(set("a", Some("new")), &ok, &sent, Rotation::OneTime).unwrap();
        assert_eq!(rotated.refresh_token.unwrap().expose(), "new");
    }

    #[test]
    fn debug_shows_no_configured_value() {
        let operation = Operation {
            method: "POST",
            path: "/t/{tenant}",
            encoding: Encoding::Json,
            refresh_token: TokenPlace::Body,
            sensitive_fields: &[],
        };
        let mut endpoint =
            Endpoint::new(Connection::new("http://127.0.0.1:1/base"), &operation).unwrap();
        endpoint.secret_query("key", &Secret::new("SNTL-key"));
        endpoint.secret_path_param("tenant", &Secret::new("SNTL-tenant"));
        endpoint
            .secret_header("X-Api-Key", &Secret::new("SNTL-header"))
            .unwrap();
        endpoint.basic_auth("id", &Secret::new("SNTL-pw")).unwrap();
        let shown = format!("{endpoint:?}");
        assert!(!shown.contains("SNTL"), "{shown}");
        assert!(
            shown.contains("/t/{tenant}") && shown.contains("key"),
            "{shown}"
        );
        assert!(endpoint.headers.values().all(|v| v.is_sensitive()));
    }
}
