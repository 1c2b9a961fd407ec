//! The authorization-code flow's helpers for an application: a PKCE verifier and its challenge
//! (RFC 7636), the `state` of the request (RFC 6749 §10.12), and the authorization URL.

use crate::error::BuildError;
use crate::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::fmt;

/// Random bytes from the operating system, base64url without padding.
fn random_text(bytes: usize) -> Result<String, BuildError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| BuildError {
        reason: format!("the operating system gave no random bytes: {e}"),
    })?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// A PKCE code verifier (RFC 7636 §4.1): kept by the application between sending the user to
/// the authorization URL and exchanging the code. Debug and Display redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct PkceVerifier(Secret);

impl PkceVerifier {
    /// A fresh verifier: 32 random bytes, 43 characters (the RFC's recommendation).
    pub fn generate() -> Result<Self, BuildError> {
        random_text(32).map(|text| Self(Secret::new(text)))
    }

    /// A verifier kept from earlier (between the redirect and the exchange, say): 43 to 128
    /// characters of `A-Z a-z 0-9 - . _ ~`.
    pub fn parse(text: &str) -> Result<Self, BuildError> {
        let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        if (43..=128).contains(&text.len()) && text.bytes().all(unreserved) {
            Ok(Self(Secret::new(text)))
        } else {
            Err(BuildError {
                reason: "a PKCE verifier is 43 to 128 characters of A-Z a-z 0-9 - . _ ~".into(),
            })
        }
    }

    /// The `S256` challenge for the authorization URL: base64url(SHA-256(verifier)).
    pub fn challenge(&self) -> PkceChallenge {
        PkceChallenge(URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.expose().as_bytes())))
    }

    /// The verifier itself, for the token request (or to keep it between two requests).
    pub fn secret(&self) -> &Secret {
        &self.0
    }
}

impl fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PkceVerifier({})", crate::REDACTED)
    }
}

/// The `S256` code challenge of a [`PkceVerifier`]: public, it travels in the authorization URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkceChallenge(String);

impl PkceChallenge {
    /// The challenge text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The method: always `S256` (`plain` offers no protection and is not supported).
    pub fn method(&self) -> &'static str {
        "S256"
    }
}

/// The `state` of an authorization request (RFC 6749 §10.12): random, kept by the application,
/// compared with the one the redirect brings back. Never empty; compared in constant time,
/// with `==` too.
#[derive(Clone, Eq)]
pub struct AuthorizationState(String);

impl PartialEq for AuthorizationState {
    fn eq(&self, other: &Self) -> bool {
        self.matches(&other.0)
    }
}

impl AuthorizationState {
    /// A fresh state: 16 random bytes.
    pub fn generate() -> Result<Self, BuildError> {
        random_text(16).map(Self)
    }

    /// A state kept from earlier; an empty one is refused (it would match a redirect that
    /// brings none).
    pub fn new(text: impl Into<String>) -> Result<Self, BuildError> {
        let text = text.into();
        if text.is_empty() {
            return Err(BuildError {
                reason: "an authorization state must not be empty".into(),
            });
        }
        Ok(Self(text))
    }

    /// The text, for the URL (and for keeping it in a session).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the redirect's `state` is this one, compared in constant time. An empty
    /// `returned` never matches.
    pub fn matches(&self, returned: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), returned.as_bytes());
        !a.is_empty()
            && a.len() == b.len()
            && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for AuthorizationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorizationState({})", crate::REDACTED)
    }
}

/// What a consent URL carries besides the client's own id: for code that holds any provider's
/// client ([`GrantClient::consent_url`](crate::GrantClient::consent_url)).
#[derive(Clone, Copy, Debug)]
pub struct ConsentRequest<'a> {
    /// Where the provider sends the customer back, with the code.
    pub redirect_uri: &'a str,
    /// The scopes asked for.
    pub scopes: &'a [&'a str],
    /// The state the redirect must bring back.
    pub state: &'a AuthorizationState,
    /// The PKCE challenge, where the client's code exchange sends a verifier
    /// ([`GrantClient::sends_pkce_verifier`](crate::GrantClient::sends_pkce_verifier)).
    pub challenge: Option<&'a PkceChallenge>,
}

/// The URL to send a user to for consent (RFC 6749 §4.1.1, with RFC 7636's challenge):
/// `authorization_url` from the spec's `authorizationCode` flow, with `response_type=code`,
/// `client_id`, `redirect_uri`, the scopes (space-separated), `state` and, when given, the
/// `S256` challenge. Query parameters already in `authorization_url` are kept.
pub fn authorization_url(
    authorization_url: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[&str],
    state: &AuthorizationState,
    challenge: Option<&PkceChallenge>,
) -> Result<String, BuildError> {
    let mut url = url::Url::parse(authorization_url).map_err(|_| BuildError {
        reason: "the authorization URL is not an absolute URL".into(),
    })?;
    let plain_loopback = url.scheme() == "http" && crate::support::http::is_loopback(url.host());
    if url.scheme() != "https" && !plain_loopback {
        return Err(BuildError {
            reason: "the authorization URL must be https (http only on localhost, 127.0.0.0/8 or [::1]): the code and state come back over it".into(),
        });
    }
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri);
        if !scopes.is_empty() {
            query.append_pair("scope", &scopes.join(" "));
        }
        query.append_pair("state", state.as_str());
        if let Some(challenge) = challenge {
            query
                .append_pair("code_challenge", challenge.as_str())
                .append_pair("code_challenge_method", challenge.method());
        }
    }
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636_appendix_b() {
        let verifier = PkceVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        assert_eq!(
            verifier.challenge().as_str(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(verifier.challenge().method(), "S256");
    }

    #[test]
    fn generated_values_are_fresh_well_formed_and_redacted() {
        let a = PkceVerifier::generate().unwrap();
        let b = PkceVerifier::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.secret().expose().len(), 43);
        assert!(PkceVerifier::parse(a.secret().expose()).is_ok());
        assert!(!format!("{a:?}").contains(a.secret().expose()));
        let state = AuthorizationState::generate().unwrap();
        assert_ne!(state, AuthorizationState::generate().unwrap());
        assert!(!format!("{state:?}").contains(state.as_str()));
        assert!(state.matches(state.as_str()));
        assert!(!state.matches("other"));
        assert!(!state.matches(""));
        assert!(AuthorizationState::new("").is_err());
        let kept = AuthorizationState::new(state.as_str()).unwrap();
        assert_eq!(kept, state);
        assert_ne!(kept, AuthorizationState::new("x").unwrap());
    }

    #[test]
    fn plain_http_authorization_urls_only_on_loopback() {
        let state = AuthorizationState::new("s").unwrap();
        let url = |base: &str| authorization_url(base, "c", "r", &[], &state, None);
        for allowed in [
            "https://auth.example.com/a",
            "http://localhost:8080/a",
            "http://127.0.0.1/a",
            "http://[::1]:9/a",
        ] {
            assert!(url(allowed).is_ok(), "{allowed}");
        }
        for refused in ["http://auth.example.com/a", "http://10.0.0.1/a"] {
            let err = url(refused).unwrap_err();
            assert!(err.reason.contains("https"), "{refused}: {err}");
        }
    }

    #[test]
    fn short_or_foreign_verifiers_are_refused() {
        assert!(PkceVerifier::parse("short").is_err());
        assert!(PkceVerifier::parse(&"a".repeat(129)).is_err());
        assert!(PkceVerifier::parse(&format!("{}+", "a".repeat(43))).is_err());
    }

    #[test]
    fn the_authorization_url_carries_every_parameter_encoded() {
        let verifier = PkceVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        let url = authorization_url(
            "https://auth.example.com/authorize?audience=api",
            "client 1",
            "https://app.example.com/cb?x=1",
            &["read:a", "write:b"],
            &AuthorizationState::new("st&1").unwrap(),
            Some(&verifier.challenge()),
        )
        .unwrap();
        let parsed = url::Url::parse(&url).unwrap();
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(parsed.host_str(), Some("auth.example.com"));
        assert_eq!(get("audience"), Some("api"));
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("client_id"), Some("client 1"));
        assert_eq!(get("redirect_uri"), Some("https://app.example.com/cb?x=1"));
        assert_eq!(get("scope"), Some("read:a write:b"));
        assert_eq!(get("state"), Some("st&1"));
        assert_eq!(
            get("code_challenge"),
            Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        );
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert!(!url.contains(verifier.secret().expose()));
        assert!(
            authorization_url(
                "not a url",
                "c",
                "r",
                &[],
                &AuthorizationState::new("s").unwrap(),
                None
            )
            .is_err()
        );
        assert!(
            authorization_url(
                "ftp://x/a",
                "c",
                "r",
                &[],
                &AuthorizationState::new("s").unwrap(),
                None
            )
            .is_err()
        );
    }
}
