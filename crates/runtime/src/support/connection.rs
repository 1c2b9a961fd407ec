//! What a generated client's builder collects: its HTTP settings, its base URL (a template's
//! variables filled and checked, the host against the spec's patterns), and its HTTP client.

use super::http::Transport;
use crate::error::BuildError;
use std::time::Duration;

/// Settings for the HTTP client a generated client builds for itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Time allowed for the whole exchange, connection included.
    pub timeout: Duration,
    /// Time allowed to establish the connection.
    pub connect_timeout: Duration,
    /// The largest response body read, in bytes. Token responses are small; a provider that
    /// sends more is misbehaving, and the client stops reading there.
    pub max_body: usize,
    /// Allows `http://` base URLs on hosts other than loopback (a private test network).
    /// Off by default: a refresh token or client secret must never cross a network in clear
    /// text. `http://` on `localhost`, `127.0.0.0/8` and `[::1]` is always allowed.
    pub allow_plain_http: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body: 1024 * 1024,
            allow_plain_http: false,
        }
    }
}

/// A URL template with its `{name}` placeholders filled from `values`. A value must be RFC 3986
/// unreserved characters (letters, digits, `-`, `.`, `_`, `~`) and not `.` or `..`: it fills one
/// host label or path segment and cannot change the URL's structure (no `/`, `@`, `:`, `?`, `#`
/// or percent-escape smuggled in). A placeholder that no value fills is an error too: the
/// request would go to a host nobody named.
pub fn fill_server_variables(
    template: &str,
    values: &[(&str, String)],
) -> Result<String, BuildError> {
    let mut url = template.to_owned();
    for (name, value) in values {
        let placeholder = format!("{{{name}}}");
        if !url.contains(&placeholder) {
            continue;
        }
        let safe = !value.is_empty()
            && value != "."
            && value != ".."
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !safe {
            return Err(BuildError {
                reason: format!(
                    "{value:?} cannot fill the server variable {name:?}: use letters, digits, `-`, `.`, `_` and `~` only"
                ),
            });
        }
        url = url.replace(&placeholder, value);
    }
    if let Some(start) = url.find('{') {
        let rest = &url[start..];
        let name = rest.split('}').next().unwrap_or(rest);
        return Err(BuildError {
            reason: format!("the URL {template:?} has a placeholder {name}}} that no value fills"),
        });
    }
    Ok(url)
}

/// Whether the host of `url` matches one of `patterns`: `*.example.com` (a subdomain of it,
/// at any depth) or `login.example.com` (that host), ignoring case.
pub fn host_matches(url: &str, patterns: &[&str]) -> bool {
    let Some(host) = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    else {
        return false;
    };
    patterns.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_prefix('*') {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| !rest.is_empty() && suffix.starts_with('.')),
            None => host == pattern,
        }
    })
}

/// Where and how a generated client connects, as its builder's `base_url`, `http_config` and
/// `http_client` set it.
#[derive(Clone, Debug)]
pub struct Connection {
    /// The base URL; the spec's first server unless set.
    pub base_url: String,
    /// Timeouts and the body cap.
    pub http_config: HttpConfig,
    /// Where customers go for consent instead of the spec's `authorizationUrl` (a mock, a
    /// provider's regional host), as the builder's `authorization_endpoint` sets it.
    pub authorization_endpoint: Option<String>,
    /// An HTTP client built from the application's builder (see [`Connection::use_http_client`]),
    /// used instead of one built from `http_config` (whose body cap still applies).
    http_client: Option<Result<reqwest::Client, BuildError>>,
}

impl Connection {
    /// The defaults: `base_url`, default HTTP settings, a client of the runtime's own.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.to_owned(),
            http_config: HttpConfig::default(),
            authorization_endpoint: None,
            http_client: None,
        }
    }

    /// Sends through an HTTP client built from the application's `builder` (a proxy, its own
    /// roots, timeouts), with redirects turned off whatever the builder says: a redirected
    /// token request would carry the refresh token and client secret to a host nobody chose
    /// (a 307 or 308 resends the body). A builder that fails to build is reported by
    /// [`Connection::transport`].
    pub fn use_http_client(&mut self, builder: reqwest::ClientBuilder) {
        let built = builder
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| BuildError {
                reason: "the application's HTTP client could not be built".into(),
            });
        self.http_client = Some(built);
    }

    /// Fills the base URL's `{name}` placeholders (the spec's server variables) with `values`;
    /// a base URL the application set without placeholders is left as it is. See
    /// [`fill_server_variables`].
    pub fn fill_server_variables(&mut self, values: &[(&str, String)]) -> Result<(), BuildError> {
        self.base_url = fill_server_variables(&self.base_url, values)?;
        Ok(())
    }

    /// Like [`Connection::fill_server_variables`], for a spec whose variables may make up
    /// the host (`x-host-pattern`): where the base URL is still the spec's `template`, the
    /// filled host must match one of `hosts` (`*.okta.com`, `login.example.com`), or the
    /// client is not built. A base URL the application set is its own choice.
    pub fn fill_server_variables_within(
        &mut self,
        values: &[(&str, String)],
        template: &str,
        hosts: &[&str],
    ) -> Result<(), BuildError> {
        let from_template = self.base_url == template;
        self.fill_server_variables(values)?;
        if from_template && !host_matches(&self.base_url, hosts) {
            return Err(BuildError {
                reason: format!(
                    "the server variables make the host one the spec does not allow (it allows {}); refusing to send tokens there",
                    hosts.join(", ")
                ),
            });
        }
        Ok(())
    }

    /// The transport, with `sensitive_keys` as [`Transport::with_sensitive_keys`].
    pub fn transport(
        self,
        sensitive_keys: &'static [&'static str],
    ) -> Result<Transport, BuildError> {
        let transport = match self.http_client {
            Some(http) => Transport::with_client(&self.base_url, http?, &self.http_config)?,
            None => Transport::new(&self.base_url, &self.http_config)?,
        };
        Ok(transport.with_sensitive_keys(sensitive_keys))
    }
}

#[cfg(test)]
mod server_variable_tests {
    use super::fill_server_variables;

    fn fill(template: &str, value: &str) -> Result<String, String> {
        fill_server_variables(template, &[("tenant", value.to_owned())]).map_err(|e| e.reason)
    }

    #[test]
    fn a_value_fills_its_placeholders() {
        assert_eq!(
            fill("https://{tenant}.example.com/t/{tenant}/token", "acme-1").unwrap(),
            "https://acme-1.example.com/t/acme-1/token"
        );
        assert_eq!(
            fill("https://fixed.example.com", "acme").unwrap(),
            "https://fixed.example.com"
        );
    }

    #[test]
    fn no_value_changes_the_url_s_structure() {
        for smuggled in [
            "evil.com/",
            "evil.com#",
            "evil.com?",
            "user@evil.com",
            "evil.com:444",
            "..",
            ".",
            "",
            "a b",
            "a%2fb",
            "a\\b",
            "ev\u{0}il",
            "ünï",
        ] {
            assert!(
                fill("https://{tenant}.example.com", smuggled).is_err(),
                "{smuggled:?}"
            );
        }
    }

    #[test]
    fn a_placeholder_left_unfilled_is_an_error() {
        let err = fill_server_variables("https://{tenant}.example.com", &[]).unwrap_err();
        assert!(err.reason.contains("{tenant}"), "{}", err.reason);
    }
}
