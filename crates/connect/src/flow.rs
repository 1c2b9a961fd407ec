//! The framework-neutral core: links and consents in flight, each kept by the SHA-256 of its
//! secret (a lookup leaks nothing of a guess through its timing, and memory holds no usable
//! id), taken out on first use whatever the outcome, and dropped once expired.

use crate::{Connect, ConnectError, ConnectEvent, FailReason, Inner};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokenkit::{
    AuthorizationState, CodeExchange, ConnectionValues, ConsentRequest, PkceVerifier, Variable,
};

type Digest32 = [u8; 32];

/// The links and consents of one [`Connect`].
#[derive(Default)]
pub(crate) struct Pending {
    links: HashMap<Digest32, Link>,
    consents: HashMap<Digest32, Consent>,
    pruned: Option<Instant>,
}

/// What a link was made for.
#[derive(Clone)]
struct Link {
    provider: String,
    connection: String,
    /// The connection's values the application gave; the customer's answers join them.
    values: ConnectionValues,
    return_url: url::Url,
    expires: Instant,
}

/// A consent the customer is giving at the provider.
struct Consent {
    provider: String,
    connection: String,
    values: ConnectionValues,
    return_url: url::Url,
    /// The SHA-256 of the cookie value of the browser that opened the link.
    browser: Digest32,
    verifier: Option<PkceVerifier>,
    /// What the redirect's `iss` must say, where it says anything.
    issuer: String,
    expires: Instant,
}

impl Pending {
    /// Drops what expired, at most once a second.
    fn prune(&mut self, now: Instant) {
        if self
            .pruned
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        self.pruned = Some(now);
        self.links.retain(|_, l| l.expires > now);
        self.consents.retain(|_, c| c.expires > now);
    }
}

/// What opening a link answers: the redirect to the provider's consent page, and the cookie
/// that binds the consent to this browser.
#[derive(Clone)]
pub struct Opened {
    /// Where to send the browser (`303 See Other`).
    pub location: String,
    /// The `Set-Cookie` header's value.
    pub set_cookie: String,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opened { .. }")
    }
}

/// What opening a link (or answering its page) leads to.
#[derive(Debug)]
pub enum Opening {
    /// The consent started: redirect the browser.
    Consent(Opened),
    /// The provider needs values the link did not carry: show the page that asks for them
    /// and `POST` its answers back to the link ([`Connect::submit`]).
    Ask(ValuesForm),
}

/// The page that asks the customer for a connection's values (a tenant's subdomain, a
/// region), as [`ConnectBuilder::ask_for`](crate::ConnectBuilder::ask_for) set it up.
#[derive(Clone, Debug)]
pub struct ValuesForm {
    /// The provider's name, as registered.
    pub provider: String,
    /// What to ask, in the spec's order.
    pub fields: Vec<Variable>,
    /// The values given so far (the link's, or the customer's last answers).
    pub given: ConnectionValues,
    /// Why the last answers were refused.
    pub error: Option<String>,
}

/// The callback's query, as the provider sent it.
#[derive(Clone, Default)]
pub struct CallbackParams {
    /// `state`.
    pub state: Option<String>,
    /// `code`.
    pub code: Option<String>,
    /// `error` (RFC 6749 §4.1.2.1).
    pub error: Option<String>,
    /// `iss` (RFC 9207).
    pub iss: Option<String>,
}

impl CallbackParams {
    /// The parameters of a query string (`state=..&code=..`).
    pub fn from_query(query: &str) -> Self {
        let mut params = Self::default();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "state" => &mut params.state,
                "code" => &mut params.code,
                "error" => &mut params.error,
                "iss" => &mut params.iss,
                _ => continue,
            };
            // The first of each: a second one is not the provider's.
            slot.get_or_insert_with(|| value.into_owned());
        }
        params
    }
}

impl std::fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackParams")
            .field("error", &self.error)
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

/// What the callback answers: where to send the browser (the return URL, with
/// `tokenkit_connect=connected|reconnected|denied|failed`, `provider` and `connection`), and
/// the `Set-Cookie` value that clears the consent's cookie.
#[derive(Clone, Debug)]
pub struct Finished {
    /// Where to send the browser (`303 See Other`).
    pub location: String,
    /// The `Set-Cookie` header's value.
    pub clear_cookie: String,
}

impl Connect {
    /// A connect link for `connection` of provider `name`, sending the customer back to
    /// `return_url` (which must be on the allow-list): single-use, valid for
    /// `link_lifetime`, and not guessable (32 random bytes). A link for a connection the store
    /// already holds is a reconnect: the new consent's set replaces the old one in place.
    pub fn link(
        &self,
        name: &str,
        connection: &str,
        return_url: &str,
    ) -> Result<String, ConnectError> {
        self.link_with(name, connection, &ConnectionValues::new(), return_url)
    }

    /// [`Connect::link`] for a connection with its own `values` (the customer's tenant, its
    /// region: the provider's server variables), which its consent and its requests use and
    /// which are stored with it. Refused now where the provider's spec does not take them (a
    /// name it does not declare, a value that would change the host or the path).
    pub fn link_with(
        &self,
        name: &str,
        connection: &str,
        values: &ConnectionValues,
        return_url: &str,
    ) -> Result<String, ConnectError> {
        let inner = &self.inner;
        let provider = inner.provider(name)?;
        let return_url = url::Url::parse(return_url)
            .ok()
            .filter(|url| inner.allowed.iter().any(|a| allows(a, url)))
            .ok_or(ConnectError::ReturnUrlNotAllowed)?;
        if !values.is_empty() {
            provider.pool.check_values(values)?;
        }
        let id = random(32)?;
        let now = Instant::now();
        let link = Link {
            provider: name.to_owned(),
            connection: connection.to_owned(),
            values: values.clone(),
            return_url,
            expires: now + inner.config.link_lifetime,
        };
        let mut pending = inner.lock();
        pending.prune(now);
        pending.links.insert(digest(&id), link);
        Ok(inner.endpoint(&format!("link/{id}")))
    }

    /// Opens link `id`: starts the consent (once: the link is used up) and answers the
    /// redirect to the provider with the cookie that binds it to this browser; or, where the
    /// provider asks for values the link did not carry, the page that asks for them (the link
    /// stays usable until it is answered or expires). A connection the store holds keeps its
    /// stored values and is asked nothing.
    pub async fn open(&self, id: &str) -> Result<Opening, ConnectError> {
        let link = self.inner.peek(id)?;
        let values = self
            .settled_values(&link, link.values.clone(), false)
            .await?;
        match values {
            Settled::Ready(values) => self.start(id, values).map(Opening::Consent),
            Settled::Ask(given) => Ok(Opening::Ask(self.inner.form(&link, given, None)?)),
        }
    }

    /// The customer's answers to link `id`'s page (the form's fields, by name): only the
    /// variables the page asks for are read, each checked as the client's builder checks
    /// its own. Answers that are refused, or missing where a variable has no default, get
    /// the page again with the reason.
    pub async fn submit(
        &self,
        id: &str,
        answers: &[(String, String)],
    ) -> Result<Opening, ConnectError> {
        let inner = &self.inner;
        let link = inner.peek(id)?;
        let provider = inner.provider(&link.provider)?;
        let mut values = link.values.clone();
        for name in &provider.asks {
            let answer = answers
                .iter()
                .find(|(field, _)| field == name)
                .map(|(_, value)| value.trim())
                .filter(|value| !value.is_empty());
            if let Some(answer) = answer {
                values.insert(name.as_str(), answer);
            }
        }
        let values = match self.settled_values(&link, values, true).await? {
            Settled::Ready(values) => values,
            Settled::Ask(given) => {
                let error = Some("a value the provider needs is missing".to_owned());
                return Ok(Opening::Ask(inner.form(&link, given, error)?));
            }
        };
        if let Err(e) = provider.pool.check_values(&values) {
            let reason = match e {
                ConnectError::Values(reason) => reason,
                other => return Err(other),
            };
            return Ok(Opening::Ask(inner.form(&link, values, Some(reason))?));
        }
        self.start(id, values).map(Opening::Consent)
    }

    /// The values `link`'s consent goes with: the stored connection's (a reconnect, which
    /// asks nothing and may not change them), else `given` once it holds every variable the
    /// provider asks for (once `answered`, every one without a default).
    async fn settled_values(
        &self,
        link: &Link,
        given: ConnectionValues,
        answered: bool,
    ) -> Result<Settled, ConnectError> {
        let provider = self.inner.provider(&link.provider)?;
        if !provider.pool.variables().is_empty() {
            let stored = provider
                .pool
                .stored_values(link.connection.clone())
                .await
                .map_err(ConnectError::Pool)?;
            if let Some(stored) = stored {
                if !link.values.is_empty() && link.values != stored {
                    return Err(ConnectError::Values(
                        "the connection is stored with other values; disconnect it before connecting it with new ones".into(),
                    ));
                }
                return Ok(Settled::Ready(stored));
            }
        }
        let declared = provider.pool.variables();
        let missing = provider.asks.iter().any(|name| {
            given.get(name).is_none()
                && (!answered
                    || declared
                        .iter()
                        .any(|v| v.name == name.as_str() && v.required()))
        });
        Ok(if missing {
            Settled::Ask(given)
        } else {
            Settled::Ready(given)
        })
    }

    /// Uses up link `id` and starts its consent with `values`.
    fn start(&self, id: &str, values: ConnectionValues) -> Result<Opened, ConnectError> {
        let inner = &self.inner;
        let now = Instant::now();
        let link = inner
            .lock()
            .links
            .remove(&digest(id))
            .filter(|l| l.expires > now)
            .ok_or(ConnectError::Link)?;
        let provider = inner.provider(&link.provider)?;
        let state = AuthorizationState::generate().map_err(ConnectError::Consent)?;
        let verifier = provider
            .pool
            .sends_pkce_verifier()
            .then(PkceVerifier::generate)
            .transpose()
            .map_err(ConnectError::Consent)?;
        let challenge = verifier.as_ref().map(PkceVerifier::challenge);
        let scopes: Vec<&str> = provider.scopes.iter().map(String::as_str).collect();
        let redirect_uri = inner.endpoint("callback");
        let location = provider.pool.consent_url(
            &values,
            &ConsentRequest {
                redirect_uri: &redirect_uri,
                scopes: &scopes,
                state: &state,
                challenge: challenge.as_ref(),
            },
        )?;
        let issuer = match &provider.issuer {
            Some(issuer) => issuer.clone(),
            None => url::Url::parse(&location)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default(),
        };
        let browser = random(32)?;
        let set_cookie = inner.cookie(state.as_str(), &browser, inner.config.consent_lifetime);
        let consent = Consent {
            provider: link.provider,
            connection: link.connection,
            values,
            return_url: link.return_url,
            browser: digest(&browser),
            verifier,
            issuer,
            expires: now + inner.config.consent_lifetime,
        };
        let mut pending = inner.lock();
        pending.prune(now);
        pending.consents.insert(digest(state.as_str()), consent);
        Ok(Opened {
            location,
            set_cookie,
        })
    }

    /// The provider's redirect back, with the browser's `Cookie` header: the consent it
    /// finishes is taken out (a second callback with its state fails), its browser and its
    /// issuer checked, and its code exchanged through the pool in a task of its own (a browser
    /// that goes away mid-exchange loses nothing). Answers where to send the browser; an
    /// error means the callback is not one this flow can answer (show a page; never follow a
    /// URL it carries).
    pub async fn callback(
        &self,
        params: CallbackParams,
        cookies: Option<&str>,
    ) -> Result<Finished, ConnectError> {
        let inner = &self.inner;
        let state = params.state.as_deref().ok_or(ConnectError::Callback)?;
        let consent = inner
            .lock()
            .consents
            .remove(&digest(state))
            .ok_or(ConnectError::Callback)?;
        let browser = cookie(cookies, &cookie_name(state)).map(digest);
        if consent.expires <= Instant::now() || !browser.is_some_and(|b| same(&b, &consent.browser))
        {
            return Err(ConnectError::Callback);
        }
        let clear_cookie = inner.cookie(state, "", Duration::ZERO);
        let provider = inner.provider(&consent.provider)?;
        let failed = |reason: FailReason| {
            let outcome = match &reason {
                FailReason::Provider(code) if code == "access_denied" => "denied",
                _ => "failed",
            };
            inner.emit(ConnectEvent::Failed {
                provider: consent.provider.clone(),
                connection: consent.connection.clone(),
                reason,
            });
            Ok(Finished {
                location: back(&consent, outcome),
                clear_cookie: clear_cookie.clone(),
            })
        };
        if params
            .iss
            .as_ref()
            .is_some_and(|iss| *iss != consent.issuer)
        {
            return failed(FailReason::WrongIssuer);
        }
        if let Some(error) = &params.error {
            let plain = !error.is_empty()
                && error.len() <= 64
                && error.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            let code = if plain {
                error.clone()
            } else {
                "invalid".into()
            };
            return failed(FailReason::Provider(code));
        }
        let Some(code) = params.code else {
            return failed(FailReason::NoCode);
        };
        let exchange = CodeExchange {
            code: code.into(),
            redirect_uri: inner.endpoint("callback"),
            verifier: consent.verifier.clone(),
        };
        let task = tokio::spawn(exchanged(
            Arc::clone(&provider.pool),
            Arc::clone(&self.inner),
            consent.provider.clone(),
            consent.connection.clone(),
            consent.values.clone(),
            exchange,
        ));
        let outcome = match task.await {
            Ok(Some(outcome)) => outcome,
            _ => "failed",
        };
        Ok(Finished {
            location: back(&consent, outcome),
            clear_cookie,
        })
    }
}

/// Where a link's values stand.
enum Settled {
    /// Complete: start the consent with them.
    Ready(ConnectionValues),
    /// The page must ask for more; these are given so far.
    Ask(ConnectionValues),
}

/// Exchanges the code and says so: `connected` or `reconnected`, or `None` (failed).
async fn exchanged(
    pool: Arc<dyn crate::Connector>,
    inner: Arc<Inner>,
    provider: String,
    connection: String,
    values: ConnectionValues,
    exchange: CodeExchange,
) -> Option<&'static str> {
    let held = pool.is_stored(connection.clone()).await;
    let result = match held {
        Ok(held) => pool
            .exchange(connection.clone(), values, exchange)
            .await
            .map(|()| held),
        Err(e) => Err(e),
    };
    match result {
        Ok(held) => {
            inner.emit(if held {
                ConnectEvent::Reconnected {
                    provider,
                    connection,
                }
            } else {
                ConnectEvent::Connected {
                    provider,
                    connection,
                }
            });
            Some(if held { "reconnected" } else { "connected" })
        }
        Err(e) => {
            inner.emit(ConnectEvent::Failed {
                provider,
                connection,
                reason: FailReason::Exchange(e.to_string()),
            });
            None
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Link `id`, left in place (it is used up when its consent starts).
    fn peek(&self, id: &str) -> Result<Link, ConnectError> {
        let now = Instant::now();
        self.lock()
            .links
            .get(&digest(id))
            .filter(|l| l.expires > now)
            .cloned()
            .ok_or(ConnectError::Link)
    }

    /// The page asking for what `link`'s provider asks, with `given` filled in.
    fn form(
        &self,
        link: &Link,
        given: ConnectionValues,
        error: Option<String>,
    ) -> Result<ValuesForm, ConnectError> {
        let provider = self.provider(&link.provider)?;
        let declared = provider.pool.variables();
        let fields = provider
            .asks
            .iter()
            .filter_map(|name| declared.iter().find(|v| v.name == name.as_str()).copied())
            .collect();
        Ok(ValuesForm {
            provider: link.provider.clone(),
            fields,
            given,
            error,
        })
    }

    /// The `Set-Cookie` value of consent `state`'s cookie: only over HTTPS where the base
    /// URL is, never to scripts, sent on the provider's top-level redirect back (`Lax`), and
    /// only to this router's paths.
    fn cookie(&self, state: &str, value: &str, lifetime: Duration) -> String {
        let secure = if self.base.scheme() == "https" {
            "; Secure"
        } else {
            ""
        };
        format!(
            "{}={value}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            cookie_name(state),
            self.base.path(),
            lifetime.as_secs()
        )
    }
}

/// The cookie of consent `state`: one per consent, so two tabs connecting at once do not
/// overwrite each other's.
fn cookie_name(state: &str) -> String {
    let hex: String = digest(state)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("tokenkit_connect_{hex}")
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The return URL with the outcome.
fn back(consent: &Consent, outcome: &str) -> String {
    let mut url = consent.return_url.clone();
    url.query_pairs_mut()
        .append_pair("tokenkit_connect", outcome)
        .append_pair("provider", &consent.provider)
        .append_pair("connection", &consent.connection);
    url.into()
}

/// Whether `allowed` allows `url`: the same origin, and a path at or below its path.
fn allows(allowed: &url::Url, url: &url::Url) -> bool {
    if allowed.origin() != url.origin() || url.username() != "" || url.password().is_some() {
        return false;
    }
    let base = allowed.path().trim_end_matches('/');
    let path = url.path();
    path == base || path.starts_with(&format!("{base}/")) || base.is_empty()
}

fn digest(text: &str) -> Digest32 {
    Sha256::digest(text.as_bytes()).into()
}

/// Constant-time equality of two digests.
fn same(a: &Digest32, b: &Digest32) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `bytes` random bytes, base64url.
fn random(bytes: usize) -> Result<String, ConnectError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|_| ConnectError::Config("the operating system gave no random bytes".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_urls_are_allowed_by_origin_and_path() {
        let allowed = url::Url::parse("https://app.example/settings").unwrap();
        let ok = |u: &str| allows(&allowed, &url::Url::parse(u).unwrap());
        assert!(ok("https://app.example/settings"));
        assert!(ok("https://app.example/settings/integrations?tab=1"));
        assert!(!ok("https://app.example/settings-evil"));
        assert!(!ok("https://app.example.evil/settings"));
        assert!(!ok("http://app.example/settings"));
        assert!(!ok("https://app.example:8443/settings"));
        assert!(!ok("https://user@app.example/settings"));
        assert!(!ok("https://app.example/other"));
    }

    #[test]
    fn callback_params_take_the_first_of_each() {
        let p = CallbackParams::from_query("code=a%2Bb&state=s&code=evil&iss=https%3A%2F%2Fx");
        assert_eq!(p.code.as_deref(), Some("a+b"));
        assert_eq!(p.state.as_deref(), Some("s"));
        assert_eq!(p.iss.as_deref(), Some("https://x"));
        assert!(!format!("{p:?}").contains("a+b"));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let header = Some("a=1; tokenkit_connect_00=xyz; b=2");
        assert_eq!(cookie(header, "tokenkit_connect_00"), Some("xyz"));
        assert_eq!(cookie(header, "tokenkit_connect_01"), None);
        assert_eq!(cookie(None, "a"), None);
    }
}
