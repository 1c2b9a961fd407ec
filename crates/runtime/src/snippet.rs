//! Bounded, scrubbed excerpts of response bodies, for errors a person will read.
//!
//! A body the client did not understand may still hold a token (a success body cut short, an
//! error that echoes the request). Before a snippet is kept, three passes remove what looks like
//! one: string values of JSON keys that name a credential, long runs of token characters, and any
//! secret the caller knows it sent, in every form a body may echo it (as sent, JSON-escaped,
//! percent-encoded). Secrets are redacted in the whole scrubbed window before the excerpt is
//! cut, so a secret that crosses the cut never leaves its beginning behind.

use crate::secret::REDACTED;
use std::fmt;

/// How many bytes of a body a snippet keeps.
pub const SNIPPET_LIMIT: usize = 256;

/// Runs of token characters at least this long are taken for credentials.
const LONG_RUN: usize = 24;

/// Key fragments (lower case) whose string values are never shown.
const SENSITIVE_KEYS: [&str; 6] = [
    "token",
    "secret",
    "password",
    "assertion",
    "authorization",
    "cookie",
];

/// At most [`SNIPPET_LIMIT`] bytes of a body, with anything credential-like replaced by
/// `[redacted]`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Snippet {
    /// The scrubbed window, longer than what is shown, so that secrets are redacted before the
    /// cut.
    text: String,
    /// Whether the window ends before the body does (a secret may start in its last bytes).
    cut: bool,
    body_len: usize,
}

impl Snippet {
    /// Keeps a scrubbed excerpt of `body`.
    pub fn new(body: &[u8]) -> Self {
        Self::with_keys(body, &[])
    }

    /// Keeps a scrubbed excerpt of `body`, also redacting the string values of `keys`: the
    /// names a spec gives its secret fields (`jwt`, `renewal` …), which no heuristic would guess.
    pub fn with_keys(body: &[u8], keys: &[&str]) -> Self {
        // Scrub a little more than is kept, so a value cut at the limit was still seen whole.
        let window = &body[..body.len().min(SNIPPET_LIMIT * 4)];
        let text = String::from_utf8_lossy(window);
        Self {
            text: scrub_long_runs(&scrub_json_keys(&text, keys)),
            cut: window.len() < body.len(),
            body_len: body.len(),
        }
    }

    /// Removes every occurrence of a secret the caller knows, such as the refresh token it sent,
    /// in every form a body may echo it; where the window was cut inside one, its beginning too.
    pub fn redact(&mut self, secret: &str) {
        self.text = redact_in(&self.text, secret);
        if self.cut {
            for form in encoded_forms(secret) {
                let keep = (1..form.len())
                    .rev()
                    .filter(|&n| form.is_char_boundary(n))
                    .find(|&n| self.text.ends_with(&form[..n]));
                if let Some(n) = keep {
                    self.text.truncate(self.text.len() - n);
                    self.text.push_str(REDACTED);
                }
            }
        }
    }

    /// The scrubbed excerpt: at most [`SNIPPET_LIMIT`] bytes.
    pub fn as_str(&self) -> &str {
        truncate(&self.text, SNIPPET_LIMIT)
    }

    /// The length of the whole body, in bytes.
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    /// True when the body was longer than the excerpt.
    pub fn is_truncated(&self) -> bool {
        self.body_len > self.as_str().len()
    }
}

impl fmt::Display for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.body_len == 0 {
            return f.write_str("<empty body>");
        }
        write!(f, "{:?}", self.as_str())?;
        if self.is_truncated() {
            write!(f, " (of {} bytes)", self.body_len)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Replaces every occurrence of `secret` (when non-empty) in `text`, in each of its
/// [`encoded_forms`].
pub(crate) fn redact_in(text: &str, secret: &str) -> String {
    encoded_forms(secret)
        .iter()
        .fold(text.to_owned(), |text, form| text.replace(form, REDACTED))
}

/// The forms in which a body may echo `secret`: as it is, JSON-escaped (with `/` escaped or
/// not), and percent-encoded as a form or a URL would (upper- and lower-case hex, `+` for a
/// space); longest first, none empty.
fn encoded_forms(secret: &str) -> Vec<String> {
    if secret.is_empty() {
        return Vec::new();
    }
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or(secret)
        .to_owned();
    let percent = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let mut forms = vec![
        secret.to_owned(),
        json.replace('/', "\\/"),
        json,
        lower_hex(&percent),
        percent,
        lower_hex(&form),
        form,
    ];
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

/// `text` with the two hex digits after each `%` in lower case.
fn lower_hex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut hex = 0;
    for c in text.chars() {
        if hex > 0 {
            out.push(c.to_ascii_lowercase());
            hex -= 1;
        } else {
            hex = if c == '%' { 2 } else { 0 };
            out.push(c);
        }
    }
    out
}

/// Cuts at a character boundary at or before `limit` bytes.
fn truncate(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Redacts the string value after any JSON key that names a credential. Works on text that is
/// not valid JSON, including text cut off in the middle of a value.
fn scrub_json_keys(text: &str, keys: &[&str]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut redact_next_string = false;
    while let Some(start) = rest.find('"') {
        let (before, from_quote) = rest.split_at(start);
        out.push_str(before);
        if redact_next_string && !before.trim().trim_start_matches(':').trim().is_empty() {
            redact_next_string = false;
        }
        let end = string_end(from_quote);
        let literal = &from_quote[..end];
        rest = &from_quote[end..];
        if redact_next_string {
            out.push('"');
            out.push_str(REDACTED);
            if literal.len() > 1 && literal.ends_with('"') {
                out.push('"');
            }
            redact_next_string = false;
            continue;
        }
        out.push_str(literal);
        let is_key = rest.trim_start().starts_with(':');
        let lowered = literal.to_ascii_lowercase();
        let name = lowered.trim_matches('"');
        redact_next_string = is_key
            && (SENSITIVE_KEYS.iter().any(|k| name.contains(k))
                || keys.iter().any(|k| k.eq_ignore_ascii_case(name)));
    }
    out.push_str(rest);
    out
}

/// The byte length of the string literal at the start of `text` (which starts with `"`),
/// closing quote included; the whole text when the literal is not closed.
fn string_end(text: &str) -> usize {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return i + 1,
            _ => {}
        }
    }
    text.len()
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '+' | '/' | '=' | '-')
}

/// Redacts every run of [`LONG_RUN`] or more token characters: JWTs, opaque tokens, keys.
fn scrub_long_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run_start = None;
    for (i, c) in text.char_indices() {
        match (is_token_char(c), run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(start)) => {
                push_run(&mut out, &text[start..i]);
                run_start = None;
                out.push(c);
            }
            (false, None) => out.push(c),
            (true, Some(_)) => {}
        }
    }
    if let Some(start) = run_start {
        push_run(&mut out, &text[start..]);
    }
    out
}

fn push_run(out: &mut String, run: &str) {
    out.push_str(if run.len() >= LONG_RUN { REDACTED } else { run });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_short_error_bodies_readable() {
        let s = Snippet::new(br#"{"error":"invalid_grant","error_description":"expired"}"#);
        assert_eq!(
            s.as_str(),
            r#"{"error":"invalid_grant","error_description":"expired"}"#
        );
    }

    #[test]
    fn redacts_values_of_credential_keys_even_when_cut_off() {
        let s = Snippet::new(br#"{"accessToken":"abc","refresh_token":"de"#);
        assert_eq!(
            s.as_str(),
            r#"{"accessToken":"[redacted]","refresh_token":"[redacted]"#
        );
        assert!(!s.as_str().contains("abc"));
    }

    #[test]
    fn redacts_values_of_named_keys() {
        let s = Snippet::with_keys(br#"{"jwt":"abc","ttl":"60"}"#, &["jwt"]);
        assert_eq!(s.as_str(), r#"{"jwt":"[redacted]","ttl":"60"}"#);
    }

    #[test]
    fn redacts_long_runs_and_known_secrets() {
        let mut s = Snippet::new(b"bad token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9 for shortsecret");
        s.redact("shortsecret");
        assert_eq!(s.as_str(), "bad token [redacted] for [redacted]");
    }

    /// A secret with characters no heuristic takes for a token, so only `redact` finds it.
    const SECRET: &str = "s3cr3t!SNTL/\"é %+x";

    fn leaks(shown: &str) -> Option<String> {
        encoded_forms(SECRET)
            .into_iter()
            .flat_map(|form| {
                let prefixes: Vec<String> = (5..=form.len())
                    .filter(|&n| form.is_char_boundary(n))
                    .map(|n| form[..n].to_owned())
                    .collect();
                prefixes
            })
            .find(|prefix| shown.contains(prefix.as_str()))
    }

    #[test]
    fn a_secret_is_redacted_at_every_cut_position_and_in_every_form() {
        let forms = encoded_forms(SECRET);
        assert!(forms.len() >= 5, "{forms:?}");
        for form in &forms {
            // Spaces around it: nothing token-like for the long-run heuristic.
            for at in 0..(SNIPPET_LIMIT * 4 + 8) {
                let body = format!("{}{form} tail", " ".repeat(at));
                let mut s = Snippet::new(body.as_bytes());
                s.redact(SECRET);
                let shown = format!("{s} {s:?} {}", s.as_str());
                assert_eq!(leaks(&shown), None, "{form:?} at {at}: {shown}");
            }
        }
    }

    #[test]
    fn encoded_forms_cover_json_and_percent_encoding() {
        let forms = encoded_forms("a/b\"c d+é");
        for expected in [
            "a/b\"c d+é",
            "a/b\\\"c d+é",
            "a\\/b\\\"c d+é",
            "a%2Fb%22c%20d%2B%C3%A9",
            "a%2fb%22c%20d%2b%c3%a9",
            "a%2Fb%22c+d%2B%C3%A9",
        ] {
            assert!(
                forms.iter().any(|f| f == expected),
                "{expected} not in {forms:?}"
            );
        }
        let provider = redact_in(
            "echo a%2fb%22c%20d%2b%c3%a9 and a\\/b\\\"c d+é",
            "a/b\"c d+é",
        );
        assert_eq!(provider, "echo [redacted] and [redacted]");
    }

    #[test]
    fn bounds_the_excerpt_and_reports_the_length() {
        let body = "é".repeat(10_000);
        let s = Snippet::new(body.as_bytes());
        assert!(s.as_str().len() <= SNIPPET_LIMIT);
        assert!(s.is_truncated());
        assert_eq!(s.body_len(), 20_000);
        assert!(s.to_string().contains("of 20000 bytes"));
        assert_eq!(Snippet::new(b"").to_string(), "<empty body>");
    }
}
