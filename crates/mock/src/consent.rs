//! The provider's side of a customer's consent (RFC 6749 §4.1, RFC 7636, RFC 9207): the
//! authorization endpoint with a consent page (approve or deny), codes bound to the client, the
//! redirect URI and the PKCE challenge, and their check at the token endpoint: each code once,
//! within a minute, by the client it was issued to, with the same redirect URI and a verifier
//! that matches its challenge. A code presented again revokes what it was exchanged for
//! (RFC 6749 §4.1.2).

use crate::Reply;
use crate::http::{Request, form_pairs};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokenkit_codegen::Provider;
use tokenkit_codegen::model::{FillSource, GrantArg};

/// How long a code may wait for its exchange (RFC 6749 §4.1.2 recommends at most ten minutes).
const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// What the consent side has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsentStats {
    /// Consent pages shown.
    pub pages: u64,
    /// Customers who approved (a code issued each time).
    pub approved: u64,
    /// Customers who denied.
    pub denied: u64,
    /// Codes exchanged for tokens.
    pub exchanged: u64,
    /// Code exchanges refused, each with why (no code or verifier quoted).
    pub refused: Vec<String>,
}

/// A code waiting for its exchange.
struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    issued: Instant,
    /// Set by its exchange: the token family it started (where the mock enforces rotation).
    exchanged: Option<Option<u64>>,
}

/// What the authorization endpoint asked for, checked.
struct Authorization {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    scope: Option<String>,
    challenge: Option<String>,
}

pub(crate) struct Consent {
    /// The authorization endpoint's path on the mock.
    path: String,
    /// What the redirect's `iss` says (RFC 9207): the mock's origin.
    issuer: String,
    /// Where customers may be sent back; empty: anywhere with an `http(s)` URL.
    redirect_uris: Vec<String>,
    codes: HashMap<String, Code>,
    pub(crate) stats: ConsentStats,
}

/// The outcome of a code exchange's check.
pub(crate) enum Exchange {
    /// Not a code exchange (or not a code this side issued): answered as before.
    NotMine,
    /// The code is good: answer with tokens, then [`Consent::exchanged`].
    Accepted(String),
    /// Refused: answer invalid-grant; a replayed code's family is to be revoked.
    Refused { revoke: Option<u64> },
}

impl Consent {
    pub(crate) fn new(path: String, issuer: String) -> Self {
        Self {
            path,
            issuer,
            redirect_uris: Vec::new(),
            codes: HashMap::new(),
            stats: ConsentStats::default(),
        }
    }

    pub(crate) fn register_redirect_uri(&mut self, uri: &str) {
        self.redirect_uris.push(uri.to_owned());
    }

    /// The reply for a request to the authorization endpoint; `None` for any other request.
    pub(crate) fn route(&mut self, provider: &Provider, request: &Request) -> Option<Reply> {
        if request.path.trim_end_matches('/') != self.path.trim_end_matches('/') {
            return None;
        }
        Some(match request.method.as_str() {
            "GET" => self.page(provider, &request.query),
            "POST" => {
                let form = std::str::from_utf8(&request.body)
                    .map(form_pairs)
                    .unwrap_or_default();
                self.decide(&form)
            }
            _ => page(405, "Method not allowed", "<p>GET or POST only.</p>"),
        })
    }

    /// The consent page for a valid authorization request.
    fn page(&mut self, provider: &Provider, query: &[(String, String)]) -> Reply {
        let request = match self.authorization(query) {
            Ok(request) => request,
            Err(reply) => return reply,
        };
        self.stats.pages += 1;
        let hidden: String = [
            ("response_type", Some("code")),
            ("client_id", Some(request.client_id.as_str())),
            ("redirect_uri", Some(request.redirect_uri.as_str())),
            ("state", request.state.as_deref()),
            ("scope", request.scope.as_deref()),
            ("code_challenge", request.challenge.as_deref()),
            (
                "code_challenge_method",
                request.challenge.as_ref().map(|_| "S256"),
            ),
        ]
        .iter()
        .filter_map(|(name, value)| {
            value.map(|v| {
                format!(
                    r#"<input type="hidden" name="{name}" value="{}">"#,
                    escape(v)
                )
            })
        })
        .collect();
        let scopes = match &request.scope {
            Some(scope) => scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| format!("<li>{}</li>", escape(s)))
                .collect::<String>(),
            None => "<li>(no scope named)</li>".to_owned(),
        };
        let body = format!(
            r#"<p>The application <b id="client">{client}</b> asks to use your {title} account:</p>
<ul id="scopes">{scopes}</ul>
<form method="post" action="{path}">{hidden}
<button type="submit" name="decision" value="approve" id="approve">Approve</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form>"#,
            client = escape(&request.client_id),
            title = escape(&provider.title),
            path = escape(&self.path),
        );
        page(200, &format!("{} (mock): consent", provider.title), &body)
    }

    /// The customer's answer: a code (or `access_denied`) on the way back.
    fn decide(&mut self, form: &[(String, String)]) -> Reply {
        let request = match self.authorization(form) {
            Ok(request) => request,
            Err(reply) => return reply,
        };
        let approved = value(form, "decision") == Some("approve");
        let mut back = vec![];
        if approved {
            self.stats.approved += 1;
            let code = fresh_code();
            self.codes.insert(
                code.clone(),
                Code {
                    client_id: request.client_id,
                    redirect_uri: request.redirect_uri.clone(),
                    challenge: request.challenge,
                    issued: Instant::now(),
                    exchanged: None,
                },
            );
            back.push(("code", code));
        } else {
            self.stats.denied += 1;
            back.push(("error", "access_denied".to_owned()));
        }
        if let Some(state) = request.state {
            back.push(("state", state));
        }
        back.push(("iss", self.issuer.clone()));
        redirect(&request.redirect_uri, &back)
    }

    /// The authorization request's values, checked (RFC 6749 §4.1.1, §4.1.2.1): without a
    /// client or a redirect URI it may be sent back to, an error page (never a redirect, which
    /// would make the endpoint an open redirector); other errors go back to the client.
    fn authorization(&self, pairs: &[(String, String)]) -> Result<Authorization, Reply> {
        let client_id = value(pairs, "client_id").filter(|c| !c.is_empty());
        let redirect_uri = value(pairs, "redirect_uri").filter(|uri| {
            let absolute = uri.starts_with("https://") || uri.starts_with("http://");
            let registered =
                self.redirect_uris.is_empty() || self.redirect_uris.iter().any(|r| r == uri);
            absolute && !uri.contains('#') && registered
        });
        let (Some(client_id), Some(redirect_uri)) = (client_id, redirect_uri) else {
            return Err(page(
                400,
                "Bad authorization request",
                "<p>The request names no client, or a redirect URI this provider does not send customers back to.</p>",
            ));
        };
        let state = value(pairs, "state").map(str::to_owned);
        let back_with = |error: &str| {
            let mut pairs = vec![("error", error.to_owned())];
            if let Some(state) = &state {
                pairs.push(("state", state.clone()));
            }
            pairs.push(("iss", self.issuer.clone()));
            Err(redirect(redirect_uri, &pairs))
        };
        if value(pairs, "response_type") != Some("code") {
            return back_with("unsupported_response_type");
        }
        let challenge = value(pairs, "code_challenge").map(str::to_owned);
        let method = value(pairs, "code_challenge_method");
        if challenge.is_some() && method != Some("S256") {
            return back_with("invalid_request");
        }
        Ok(Authorization {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            state,
            scope: value(pairs, "scope").map(str::to_owned),
            challenge,
        })
    }

    /// Checks a code exchange: `body` is the grant's request body (JSON or form, read as
    /// JSON), `authorization` the request's `Authorization` header.
    pub(crate) fn check(
        &mut self,
        provider: &Provider,
        body: Option<&serde_json::Value>,
        authorization: Option<&str>,
    ) -> Exchange {
        let Some(body) = body else {
            return Exchange::NotMine;
        };
        let Some(grant) = provider
            .grant_of(Some(body))
            .filter(|g| g.kind == tokenkit_codegen::extension::GrantKind::AuthorizationCode)
        else {
            return Exchange::NotMine;
        };
        let field = |arg: GrantArg| {
            grant
                .fill
                .iter()
                .find(|f| matches!(f.source, FillSource::Arg(a) if a == arg))
                .and_then(|f| body.get(&f.json))
                .and_then(serde_json::Value::as_str)
        };
        let Some(presented) = field(GrantArg::Code) else {
            return Exchange::NotMine;
        };
        let client_id = body
            .get("client_id")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .or_else(|| basic_user(authorization?));
        let Some(code) = self.codes.get_mut(presented) else {
            return self.refuse("a code this provider never issued", None);
        };
        if let Some(family) = code.exchanged {
            return self.refuse("a code presented a second time", family);
        }
        let reason = if code.issued.elapsed() > CODE_LIFETIME {
            Some("a code older than its lifetime")
        } else if client_id.as_deref() != Some(code.client_id.as_str()) {
            Some("a code issued to another client")
        } else if field(GrantArg::RedirectUri).is_some_and(|uri| uri != code.redirect_uri) {
            Some("a redirect URI other than the code's")
        } else {
            match (&code.challenge, field(GrantArg::CodeVerifier)) {
                (Some(_), None) => Some("no verifier for a code issued with a challenge"),
                (None, Some(_)) => Some("a verifier for a code issued without a challenge"),
                (Some(challenge), Some(verifier)) if s256(verifier) != *challenge => {
                    Some("a verifier that does not match the code's challenge")
                }
                _ => None,
            }
        };
        match reason {
            // A code is spent by its first exchange, good or not.
            Some(reason) => {
                code.exchanged = Some(None);
                self.refuse(reason, None)
            }
            None => Exchange::Accepted(presented.to_owned()),
        }
    }

    /// Records an accepted code's exchange and the token family it started.
    pub(crate) fn exchanged(&mut self, code: &str, family: Option<u64>) {
        if let Some(code) = self.codes.get_mut(code) {
            code.exchanged = Some(family);
        }
        self.stats.exchanged += 1;
    }

    fn refuse(&mut self, reason: &str, revoke: Option<u64>) -> Exchange {
        self.stats.refused.push(reason.to_owned());
        Exchange::Refused { revoke }
    }
}

/// The first value of `name` among `pairs`.
fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The user of an HTTP Basic `Authorization` header (the client id, percent-decoded as RFC
/// 6749 §2.3.1 encodes it).
fn basic_user(header: &str) -> Option<String> {
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, _) = decoded.split_once(':')?;
    form_pairs(&format!("u={user}"))
        .into_iter()
        .next()
        .map(|(_, v)| v)
}

/// RFC 7636's `S256`: base64url(SHA-256(verifier)).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A code nobody can guess: 24 random bytes.
fn fresh_code() -> String {
    let mut bytes = [0u8; 24];
    // A mock without randomness still issues distinct codes: the time's nanoseconds.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes[..16].copy_from_slice(&nanos.to_le_bytes());
    }
    format!("code-{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// `302` to `uri` with `pairs` added to its query.
fn redirect(uri: &str, pairs: &[(&str, String)]) -> Reply {
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent(v)))
        .collect();
    let joiner = if uri.contains('?') { '&' } else { '?' };
    Reply::Redirect {
        location: format!("{uri}{joiner}{}", query.join("&")),
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An HTML page.
fn page(status: u16, title: &str, body: &str) -> Reply {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body><h1>{}</h1>\n{body}\n</body></html>\n",
        escape(title),
        escape(title)
    );
    Reply::Raw {
        status,
        content_type: Some("text/html; charset=utf-8".to_owned()),
        body: html.into_bytes(),
    }
}

/// Text for HTML, attributes included.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_is_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn basic_users_are_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20app:secret"));
        assert_eq!(basic_user(&header).as_deref(), Some("my app"));
        assert_eq!(basic_user("Bearer x"), None);
    }

    #[test]
    fn codes_are_fresh_and_html_is_escaped() {
        assert_ne!(fresh_code(), fresh_code());
        assert_eq!(
            escape(r#"<a href="x">'&"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
        assert_eq!(percent("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
