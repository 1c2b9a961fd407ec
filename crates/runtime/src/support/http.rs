//! The HTTP layer every generated client shares: safe defaults, a capped body, typed failures.

use crate::error::{BuildError, RefreshError, TransportKind};
use crate::snippet::Snippet;
use bytes::{Bytes, BytesMut};
use reqwest::header::{
    CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};
use serde::de::DeserializeOwned;
use std::time::Duration;

pub use super::connection::{Connection, HttpConfig, fill_server_variables, host_matches};

/// A base URL and an HTTP client: what a generated client sends its requests through.
///
/// Redirects are never followed: a token request redirected elsewhere would carry its
/// credentials to a host nobody chose.
#[derive(Clone, Debug)]
pub struct Transport {
    base_url: String,
    http: reqwest::Client,
    /// The whole-exchange timeout, when the runtime built `http` (`None`: the application's).
    timeout: Option<Duration>,
    max_body: usize,
    sensitive_keys: &'static [&'static str],
}

impl Transport {
    /// A transport with its own HTTP client built from `config`.
    pub fn new(base_url: &str, config: &HttpConfig) -> Result<Self, BuildError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tokenkit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| BuildError {
                reason: "the HTTP client could not be initialised".into(),
            })?;
        let mut transport = Self::with_client(base_url, http, config)?;
        transport.timeout = Some(config.timeout);
        Ok(transport)
    }

    /// A transport over an HTTP client built without redirects (by [`Transport::new`] or
    /// [`Connection::use_http_client`]); `config` gives the body cap and whether plain HTTP is
    /// allowed beyond loopback.
    pub(super) fn with_client(
        base_url: &str,
        http: reqwest::Client,
        config: &HttpConfig,
    ) -> Result<Self, BuildError> {
        check_base_url(base_url, config.allow_plain_http)?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http,
            timeout: None,
            max_body: config.max_body,
            sensitive_keys: &[],
        })
    }

    /// Names of body fields whose values snippets must never show, beyond those that look like
    /// credentials (`*token*`, `*secret*` …). Generated clients pass every field their spec
    /// maps to a token or marks as a secret.
    #[must_use]
    pub fn with_sensitive_keys(mut self, keys: &'static [&'static str]) -> Self {
        self.sensitive_keys = keys;
        self
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The whole-exchange timeout, when the runtime built the HTTP client.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Starts a request to `path` (which begins with `/`) below the base URL.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
    }

    /// Sends the request and reads the response body up to the cap.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, RefreshError> {
        let mut response = request.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let headers = response.headers();
        let content_type = header_text(headers, &CONTENT_TYPE);
        let retry_after = header_text(headers, &RETRY_AFTER).and_then(|v| parse_retry_after(&v));
        let too_large = RefreshError::BodyTooLarge {
            status,
            limit: self.max_body,
        };
        let declared = header_text(headers, &CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body as u64) {
            return Err(too_large);
        }
        let mut body = BytesMut::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_body {
                        return Err(too_large);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(transport_error(e)),
                // The provider answered, so the request was processed; the answer is unreadable.
                Err(_) => {
                    return Err(RefreshError::InvalidBody {
                        status,
                        reason: format!(
                            "the connection closed before the body was complete ({} bytes read)",
                            body.len()
                        ),
                        body: Snippet::with_keys(&body, self.sensitive_keys),
                    });
                }
            }
        }
        Ok(Response {
            status,
            content_type,
            retry_after,
            body: body.freeze(),
            sensitive_keys: self.sensitive_keys,
        })
    }
}

/// Refuses a base URL that could send a token where nobody chose, or in clear text. Errors
/// never quote the URL: it may carry credentials.
fn check_base_url(base_url: &str, allow_plain_http: bool) -> Result<(), BuildError> {
    let refuse = |why: &str| BuildError {
        reason: format!("the base URL {why}"),
    };
    let parsed =
        reqwest::Url::parse(base_url).map_err(|e| refuse(&format!("is not a URL ({e})")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse(
            "carries credentials; give them to the builder, never in the URL",
        ));
    }
    if parsed.cannot_be_a_base() || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(refuse(
            "must be a plain https URL, without a query or fragment",
        ));
    }
    let host = parsed.host_str().unwrap_or_default();
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_plain_http || is_loopback(parsed.host()) => Ok(()),
        "http" => Err(refuse(&format!(
            "uses plain http to {host}; tokens must not cross a network in clear text (use https, or set HttpConfig::allow_plain_http for a private test network)"
        ))),
        scheme => Err(refuse(&format!(
            "has the scheme {scheme:?}; only https (and http on loopback) is allowed"
        ))),
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`.
pub(crate) fn is_loopback(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `Retry-After` as a delay: delay-seconds, or an HTTP-date (RFC 9110 §10.2.3) counted from
/// now (a date in the past is no delay).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

/// Classes a reqwest error; its message is dropped, since it can quote the URL.
fn transport_error(error: reqwest::Error) -> RefreshError {
    let (kind, maybe_sent) = if error.is_builder() {
        (TransportKind::Request, false)
    } else if error.is_connect() {
        (TransportKind::Connect, false)
    } else if error.is_timeout() {
        (TransportKind::Timeout, true)
    } else {
        (TransportKind::Interrupted, true)
    };
    RefreshError::Transport { kind, maybe_sent }
}

/// Makes a header value from configuration, refusing characters HTTP does not allow.
pub fn header_value(name: &str, value: &str) -> Result<HeaderValue, BuildError> {
    HeaderValue::from_str(value).map_err(|_| BuildError {
        reason: format!("the value for header {name} has characters HTTP headers cannot carry"),
    })
}

/// Like [`header_value`], for a secret: marked sensitive so HTTP tooling does not show it.
pub fn sensitive_header_value(name: &str, value: &str) -> Result<HeaderValue, BuildError> {
    let mut value = header_value(name, value)?;
    value.set_sensitive(true);
    Ok(value)
}

/// An `Authorization: Basic` value for a client id and secret, as RFC 6749 §2.3.1 wants them:
/// each form-urlencoded, joined by `:`, then base64. Marked sensitive.
pub fn basic_auth(client_id: &str, client_secret: &str) -> Result<HeaderValue, BuildError> {
    let pair = format!("{}:{}", form_encode(client_id), form_encode(client_secret));
    sensitive_header_value(
        "Authorization",
        &format!("Basic {}", base64(pair.as_bytes())),
    )
}

/// `application/x-www-form-urlencoded` encoding of one value (the WHATWG URL standard's
/// serializer, as `url` and `reqwest` use it).
fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Everything but RFC 3986's unreserved characters is encoded in a path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment, percent-encoded so a value can never add a `/`, `?` or `#` to the path.
pub fn path_segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A complete response: status, the headers the runtime uses, and the body.
#[derive(Clone, Debug)]
pub struct Response {
    status: u16,
    content_type: Option<String>,
    retry_after: Option<Duration>,
    body: Bytes,
    sensitive_keys: &'static [&'static str],
}

impl Response {
    /// A response assembled by hand, for tests and other transports.
    pub fn new(status: u16, content_type: Option<&str>, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type: content_type.map(str::to_owned),
            retry_after: None,
            body: body.into(),
            sensitive_keys: &[],
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The `Retry-After` delay, when the server gave one in seconds.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// A scrubbed excerpt of the body.
    pub fn snippet(&self) -> Snippet {
        Snippet::with_keys(&self.body, self.sensitive_keys)
    }

    /// Decodes a JSON body into `T`. A body whose declared media type is not JSON, or that does
    /// not match `T`, is an [`RefreshError::InvalidBody`] that quotes no value from the body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, RefreshError> {
        if let Some(media) = &self.content_type
            && !is_json_media_type(media)
        {
            return Err(self.invalid(format!("expected a JSON body, got {media:?}")));
        }
        if self.body.is_empty() {
            return Err(self.invalid("expected a JSON body, got an empty body".into()));
        }
        let mut de = serde_json::Deserializer::from_slice(&self.body);
        let value = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| self.invalid(describe_json_error(e.inner(), &e.path().to_string())))?;
        de.end()
            .map_err(|e| self.invalid(describe_json_error(&e, "")))?;
        Ok(value)
    }

    /// This response, as the outcome of a status its spec does not document.
    pub fn undocumented(&self) -> Undocumented {
        Undocumented {
            status: self.status,
            body: self.snippet(),
        }
    }

    /// The error for a status the spec does not document.
    pub fn unexpected(&self) -> RefreshError {
        RefreshError::UnexpectedStatus {
            status: self.status,
            body: self.snippet(),
            retry_after: self.retry_after,
        }
    }

    fn invalid(&self, reason: String) -> RefreshError {
        RefreshError::InvalidBody {
            status: self.status,
            reason,
            body: self.snippet(),
        }
    }
}

/// An answer with a status the spec does not document: every generated outcome enum's last
/// variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undocumented {
    /// The HTTP status.
    pub status: u16,
    /// A scrubbed excerpt of the body.
    pub body: Snippet,
}

impl From<Undocumented> for RefreshError {
    fn from(answer: Undocumented) -> Self {
        RefreshError::UnexpectedStatus {
            status: answer.status,
            body: answer.body,
            retry_after: None,
        }
    }
}

/// serde_json's own messages quote offending values (`invalid type: string "…"`), which may be
/// tokens; this keeps only where it failed and what kind of failure it was.
fn describe_json_error(inner: &serde_json::Error, path: &str) -> String {
    let what = match inner.classify() {
        serde_json::error::Category::Io => "could not be read",
        serde_json::error::Category::Syntax => "is not valid JSON",
        serde_json::error::Category::Eof => "ends early",
        serde_json::error::Category::Data => "does not match the documented schema",
    };
    let at = if path == "." || path.is_empty() {
        String::new()
    } else {
        format!(" at field `{path}`")
    };
    format!(
        "the body {what}{at} (line {}, column {})",
        inner.line(),
        inner.column()
    )
}

/// `application/json` and any `+json` media type, parameters ignored.
pub fn is_json_media_type(media: &str) -> bool {
    let essence = media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Body {
        #[allow(dead_code)]
        expires_in: u32,
    }

    #[test]
    fn json_errors_quote_no_value() {
        let response = Response::new(
            200,
            Some("application/json"),
            r#"{"expires_in":"SENTINEL-VALUE"}"#,
        );
        let Err(RefreshError::InvalidBody { reason: shown, .. }) = response.json::<Body>() else {
            panic!("a mismatched body must be InvalidBody");
        };
        assert!(shown.contains("expires_in"), "{shown}");
        assert!(!shown.contains("SENTINEL-VALUE"), "{shown}");
    }

    #[test]
    fn wrong_media_type_and_empty_body_are_invalid() {
        let html = Response::new(200, Some("text/html"), "<html>");
        assert!(matches!(
            html.json::<Body>(),
            Err(RefreshError::InvalidBody { .. })
        ));
        let empty = Response::new(200, Some("application/json"), "");
        assert!(matches!(
            empty.json::<Body>(),
            Err(RefreshError::InvalidBody { .. })
        ));
        let trailing = Response::new(200, None, r#"{"expires_in":1} x"#);
        assert!(matches!(
            trailing.json::<Body>(),
            Err(RefreshError::InvalidBody { .. })
        ));
    }

    #[test]
    fn basic_auth_follows_rfc_6749() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // RFC 6749 §2.3.1's example, and a secret that needs form encoding.
        let value = basic_auth("s6BhdRkqt3", "gX1fBat3bV").unwrap();
        assert_eq!(
            value.to_str().unwrap(),
            "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW"
        );
        assert!(value.is_sensitive());
        let encoded = basic_auth("a b", "p:w/").unwrap();
        assert_eq!(
            encoded.to_str().unwrap(),
            format!("Basic {}", base64(b"a+b:p%3Aw%2F"))
        );
        assert_eq!(form_encode("a*b-c._~é"), "a*b-c._%7E%C3%A9");
    }

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(path_segment("acme"), "acme");
        assert_eq!(path_segment("../x?y#z"), "..%2Fx%3Fy%23z");
        assert_eq!(path_segment("a b~é"), "a%20b~%C3%A9");
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after(" 60 "), Some(Duration::from_secs(60)));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        let parsed = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(parsed > Duration::from_secs(110) && parsed <= Duration::from_secs(120));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn media_types() {
        assert!(is_json_media_type("application/json; charset=utf-8"));
        assert!(is_json_media_type("application/problem+json"));
        assert!(!is_json_media_type("text/plain"));
    }

    #[test]
    fn base_url_must_be_https_or_loopback() {
        let config = HttpConfig::default();
        assert!(Transport::new("ftp://x", &config).is_err());
        assert!(Transport::new("not a url", &config).is_err());
        let t = Transport::new("https://api.example.com/v1/", &config).unwrap();
        assert_eq!(t.base_url(), "https://api.example.com/v1");
        for local in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://localhost:1",
            "http://[::1]:9",
        ] {
            assert!(Transport::new(local, &config).is_ok(), "{local}");
        }
        for remote in [
            "http://api.example.com",
            "http://10.0.0.5",
            "http://[2001:db8::1]",
        ] {
            let err = Transport::new(remote, &config).unwrap_err();
            assert!(err.reason.contains("clear text"), "{err}");
        }
        let opted_in = HttpConfig {
            allow_plain_http: true,
            ..HttpConfig::default()
        };
        assert!(Transport::new("http://10.0.0.5", &opted_in).is_ok());
    }

    #[test]
    fn base_url_errors_never_echo_credentials() {
        let config = HttpConfig::default();
        for url in [
            "https://user:SNTL-pw@api.example.com",
            "https://SNTL-user@api.example.com",
            "http://u:SNTL-pw@api.example.com",
            "https://api.example.com/?key=SNTL-key",
            "ht!tp://SNTL-x",
        ] {
            let err = Transport::new(url, &config).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("SNTL"), "{shown}");
        }
    }
}
