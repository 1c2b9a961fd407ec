//! What can go wrong in a refresh, classed by what the caller should do about it.

use crate::snippet::{Snippet, redact_in};
use std::fmt;
use std::time::Duration;

/// What a caller should do after a failed refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The refresh token is dead (expired, revoked, already used): re-authenticate.
    ReAuthenticate,
    /// The provider refused the request for a reason that retrying will not fix, such as wrong
    /// client credentials or a malformed request: fix the configuration.
    Rejected,
    /// A temporary failure: try again later, with the same refresh token where that is safe.
    RetryLater,
    /// The provider answered something the spec does not describe.
    BadResponse,
    /// The request could not be sent, or no complete answer came back.
    Transport,
}

/// A provider's own error code and message, as its documented error body gives them.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ProviderError {
    /// The provider's error code, such as `invalid_grant` or `401`.
    pub code: Option<String>,
    /// The provider's message.
    pub message: Option<String>,
}

impl ProviderError {
    fn redact(&mut self, secret: &str) {
        for text in [&mut self.code, &mut self.message].into_iter().flatten() {
            *text = redact_in(text, secret);
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => write!(f, "{code}: {message}"),
            (Some(text), None) | (None, Some(text)) => f.write_str(text),
            (None, None) => f.write_str("no error details"),
        }
    }
}

impl fmt::Debug for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProviderError({self})")
    }
}

/// Why no complete response came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// No connection could be made: the request was certainly not sent.
    Connect,
    /// The configured timeout passed.
    Timeout,
    /// The connection failed while the request or the response was under way.
    Interrupted,
    /// The request could not be built (an invalid URL or header value).
    Request,
}

/// A failed refresh. Every variant keeps what a person needs to act, and no secret: provider
/// texts and body snippets are scrubbed, and reqwest's messages are not kept.
#[derive(Clone, PartialEq, Eq)]
pub enum RefreshError {
    /// A documented response that means the refresh token is dead.
    InvalidGrant {
        /// The HTTP status.
        status: u16,
        /// The provider's code and message.
        provider: ProviderError,
    },
    /// A documented response that means the request was refused for another reason.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The provider's code and message.
        provider: ProviderError,
    },
    /// A documented response that means the provider failed for now.
    Transient {
        /// The HTTP status.
        status: u16,
        /// The provider's code and message, when its body gave them.
        provider: ProviderError,
        /// The provider's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// Whether this answer proves the provider did not process the request (so a one-time
        /// refresh token sent with it is unspent): by default true only for the statuses RFC
        /// 9110 gives that meaning (see [`RefreshError::proves_unprocessed`]); a spec's
        /// `unprocessed` key on the failure says otherwise.
        unprocessed: bool,
    },
    /// A status the spec does not document.
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
        /// An excerpt of the body.
        body: Snippet,
        /// The provider's `Retry-After` (on a 429 or 503, say), when it sent one.
        retry_after: Option<Duration>,
    },
    /// A documented status whose body did not match its schema.
    InvalidBody {
        /// The HTTP status.
        status: u16,
        /// What did not match, without the offending values.
        reason: String,
        /// An excerpt of the body.
        body: Snippet,
    },
    /// The body was longer than the client's cap; reading stopped there.
    BodyTooLarge {
        /// The HTTP status.
        status: u16,
        /// The cap, in bytes.
        limit: usize,
    },
    /// No complete response came back.
    Transport {
        /// What failed.
        kind: TransportKind,
        /// Whether the request may have reached the provider. A one-time refresh token may be
        /// spent when this is true.
        maybe_sent: bool,
    },
}

impl RefreshError {
    /// The request could not be built (an unusable value, no random bytes, no such
    /// operation): nothing was sent, and sending again will not help.
    pub fn not_sent() -> Self {
        Self::Transport {
            kind: TransportKind::Request,
            maybe_sent: false,
        }
    }

    /// What the caller should do.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidGrant { .. } => ErrorKind::ReAuthenticate,
            Self::Rejected { .. } => ErrorKind::Rejected,
            Self::Transient { .. } => ErrorKind::RetryLater,
            Self::UnexpectedStatus { status, .. } if is_transient_status(*status) => {
                ErrorKind::RetryLater
            }
            Self::UnexpectedStatus { .. }
            | Self::InvalidBody { .. }
            | Self::BodyTooLarge { .. } => ErrorKind::BadResponse,
            Self::Transport { .. } => ErrorKind::Transport,
        }
    }

    /// True when the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { kind, .. } => *kind != TransportKind::Request,
            _ => self.kind() == ErrorKind::RetryLater,
        }
    }

    /// True when the answer proves that the provider did not process the request, so that a
    /// one-time or rotating refresh token sent with it is still unspent and may be sent again.
    ///
    /// The rule, from RFC 9110 and RFC 6585: a documented refusal (`Rejected`) was decided
    /// without spending the token; a request that never left (`Transport` with `maybe_sent`
    /// false) was not seen; `408` (the server did not receive the whole request), `425` (the
    /// server refuses to risk processing it), `429` (refused by a rate limiter) and `503`
    /// (unavailable: overload or maintenance) say the request was not processed. Every other
    /// answer proves nothing: a `500`, a gateway's `502` or `504`, a timeout, a dropped
    /// connection or a body the spec does not describe may come after the provider rotated the
    /// token. A documented transient failure follows its status unless the spec says otherwise
    /// (`unprocessed` on the failure). A dead token (`InvalidGrant`) is not unspent.
    pub fn proves_unprocessed(&self) -> bool {
        match self {
            Self::Rejected { .. } => true,
            Self::Transient { unprocessed, .. } => *unprocessed,
            Self::UnexpectedStatus { status, .. } => status_says_unprocessed(*status),
            Self::Transport { maybe_sent, .. } => !maybe_sent,
            Self::InvalidGrant { .. } | Self::InvalidBody { .. } | Self::BodyTooLarge { .. } => {
                false
            }
        }
    }

    /// Overrides whether a documented transient failure proves the request unprocessed (the
    /// spec's `unprocessed` key); other errors are returned unchanged.
    #[must_use]
    pub fn with_unprocessed(mut self, value: bool) -> Self {
        if let Self::Transient { unprocessed, .. } = &mut self {
            *unprocessed = value;
        }
        self
    }

    /// The HTTP status, when a response arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::InvalidGrant { status, .. }
            | Self::Rejected { status, .. }
            | Self::Transient { status, .. }
            | Self::UnexpectedStatus { status, .. }
            | Self::InvalidBody { status, .. }
            | Self::BodyTooLarge { status, .. } => Some(*status),
            Self::Transport { .. } => None,
        }
    }

    /// The provider's code and message, for documented errors.
    pub fn provider_error(&self) -> Option<&ProviderError> {
        match self {
            Self::InvalidGrant { provider, .. }
            | Self::Rejected { provider, .. }
            | Self::Transient { provider, .. } => Some(provider),
            _ => None,
        }
    }

    /// How long the provider asked to wait before the next try (`Retry-After`), when the
    /// error is retryable and it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Transient { retry_after, .. } | Self::UnexpectedStatus { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// Attaches a response's `Retry-After` to a retryable error that has none yet.
    #[must_use]
    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        if self.kind() == ErrorKind::RetryLater
            && let Self::Transient { retry_after, .. } | Self::UnexpectedStatus { retry_after, .. } =
                &mut self
            && retry_after.is_none()
        {
            *retry_after = after;
        }
        self
    }

    /// Removes every occurrence of a secret the caller sent from the texts this error keeps.
    #[must_use]
    pub fn redact(mut self, secret: &str) -> Self {
        match &mut self {
            Self::InvalidGrant { provider, .. }
            | Self::Rejected { provider, .. }
            | Self::Transient { provider, .. } => provider.redact(secret),
            Self::UnexpectedStatus { body, .. } | Self::InvalidBody { body, .. } => {
                body.redact(secret)
            }
            Self::BodyTooLarge { .. } | Self::Transport { .. } => {}
        }
        self
    }

    /// Builds the error a documented error response maps to.
    pub fn documented(
        kind: ErrorKind,
        status: u16,
        provider: ProviderError,
        retry_after: Option<Duration>,
    ) -> Self {
        match kind {
            ErrorKind::ReAuthenticate => Self::InvalidGrant { status, provider },
            ErrorKind::Rejected => Self::Rejected { status, provider },
            _ => Self::Transient {
                status,
                provider,
                retry_after,
                unprocessed: status_says_unprocessed(status),
            },
        }
    }
}

/// Statuses that mean "later" even when a spec does not document them.
fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 500..=599)
}

/// Statuses whose meaning (RFC 9110 §15.5.9; RFC 8470 §5.2; RFC 6585 §4) is that the server
/// did not process the request. Not 503: RFC 9110 lets an origin answer it, but proxies in
/// front of most providers (Envoy, Istio, cloud load balancers) answer 503 after they
/// forwarded the request ("upstream reset before headers"), when the origin may have rotated
/// the token; a spec says `unprocessed: true` where its provider's 503 is proof.
fn status_says_unprocessed(status: u16) -> bool {
    matches!(status, 408 | 425 | 429)
}

impl fmt::Display for RefreshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidGrant { status, provider } => write!(
                f,
                "the refresh token is no longer valid (HTTP {status}: {provider}); re-authenticate"
            ),
            Self::Rejected { status, provider } => {
                write!(
                    f,
                    "the provider rejected the request (HTTP {status}: {provider})"
                )
            }
            Self::Transient {
                status, provider, ..
            } => write!(
                f,
                "the provider failed for now (HTTP {status}: {provider}); try again later"
            ),
            Self::UnexpectedStatus { status, body, .. } => {
                write!(f, "undocumented HTTP status {status}, body {body}")
            }
            Self::InvalidBody {
                status,
                reason,
                body,
            } => {
                write!(f, "HTTP {status} response not understood: {reason}")?;
                if body.body_len() > 0 {
                    write!(f, "; body {body}")?;
                }
                Ok(())
            }
            Self::BodyTooLarge { status, limit } => write!(
                f,
                "HTTP {status} response body exceeds the {limit}-byte limit"
            ),
            Self::Transport { kind, maybe_sent } => {
                let what = match kind {
                    TransportKind::Connect => "could not connect to the provider",
                    TransportKind::Timeout => "the request timed out",
                    TransportKind::Interrupted => "the connection failed mid-exchange",
                    TransportKind::Request => "the request could not be built",
                };
                let sent = if *maybe_sent {
                    " (the provider may have received the request)"
                } else {
                    ""
                };
                write!(f, "{what}{sent}")
            }
        }
    }
}

impl fmt::Debug for RefreshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RefreshError::{:?}({self})", self.kind())
    }
}

impl std::error::Error for RefreshError {}

/// A client could not be built from its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    /// What was wrong; never contains a secret value.
    pub reason: String,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid client configuration: {}", self.reason)
    }
}

impl std::error::Error for BuildError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_tell_the_caller_what_to_do() {
        let provider = ProviderError::default();
        let dead = RefreshError::documented(ErrorKind::ReAuthenticate, 400, provider.clone(), None);
        assert_eq!(dead.kind(), ErrorKind::ReAuthenticate);
        assert!(!dead.is_retryable());
        let later = RefreshError::documented(ErrorKind::RetryLater, 500, provider, None);
        assert!(later.is_retryable());
        let undocumented = RefreshError::UnexpectedStatus {
            status: 503,
            body: Snippet::new(b""),
            retry_after: None,
        };
        assert_eq!(undocumented.kind(), ErrorKind::RetryLater);
        let after = Some(Duration::from_secs(60));
        assert_eq!(undocumented.with_retry_after(after).retry_after(), after);
        let refused = RefreshError::documented(ErrorKind::Rejected, 400, Default::default(), None);
        assert_eq!(refused.with_retry_after(after).retry_after(), None);
        let reset = RefreshError::Transport {
            kind: TransportKind::Interrupted,
            maybe_sent: true,
        };
        assert!(reset.is_retryable());
        assert_eq!(reset.status(), None);
    }

    #[test]
    fn only_answers_that_say_so_prove_a_request_unprocessed() {
        let undocumented = |status| RefreshError::UnexpectedStatus {
            status,
            body: Snippet::new(b""),
            retry_after: None,
        };
        for status in [408, 425, 429] {
            assert!(undocumented(status).proves_unprocessed(), "{status}");
        }
        for status in [500, 501, 502, 503, 504, 400, 404, 418] {
            assert!(!undocumented(status).proves_unprocessed(), "{status}");
        }
        let documented = |status| {
            RefreshError::documented(ErrorKind::RetryLater, status, Default::default(), None)
        };
        assert!(!documented(503).proves_unprocessed());
        assert!(documented(503).with_unprocessed(true).proves_unprocessed());
        assert!(!documented(500).proves_unprocessed());
        assert!(documented(500).with_unprocessed(true).proves_unprocessed());
        assert!(documented(429).proves_unprocessed());
        assert!(!documented(429).with_unprocessed(false).proves_unprocessed());
        let refused = RefreshError::documented(ErrorKind::Rejected, 401, Default::default(), None);
        assert!(refused.proves_unprocessed());
        assert!(refused.with_unprocessed(false).proves_unprocessed());
        let dead =
            RefreshError::documented(ErrorKind::ReAuthenticate, 400, Default::default(), None);
        assert!(!dead.proves_unprocessed());
        for (kind, sent, proves) in [
            (TransportKind::Connect, false, true),
            (TransportKind::Timeout, true, false),
            (TransportKind::Interrupted, true, false),
        ] {
            let e = RefreshError::Transport {
                kind,
                maybe_sent: sent,
            };
            assert_eq!(e.proves_unprocessed(), proves, "{kind:?}");
        }
    }

    #[test]
    fn redact_reaches_provider_texts_and_snippets() {
        let secret = "rt-SENTINEL";
        let provider = ProviderError {
            code: Some("bad".into()),
            message: Some(format!("token {secret} is spent")),
        };
        let err =
            RefreshError::documented(ErrorKind::ReAuthenticate, 400, provider, None).redact(secret);
        assert!(!format!("{err} {err:?}").contains(secret));
        let err = RefreshError::UnexpectedStatus {
            status: 418,
            body: Snippet::new(format!("echo {secret}").as_bytes()),
            retry_after: None,
        }
        .redact(secret);
        assert!(!format!("{err} {err:?}").contains(secret));
    }
}
