//! Rust names from spec names: `X-Workspace-Id` is `x_workspace_id` and `XWorkspaceId`.

use proc_macro2::{Ident, Span};

/// The words of a name: split at non-alphanumerics and at lower-to-upper case changes
/// (`refreshToken`, `HTTPError` → `HTTP`, `Error`).
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1);
        let boundary = c.is_ascii_uppercase()
            && (prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(|p| p.is_ascii_uppercase())
                    && next.is_some_and(|n| n.is_ascii_lowercase())));
        if boundary && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// `snake_case`, never empty, never starting with a digit.
pub fn snake(name: &str) -> String {
    let joined = words(name)
        .iter()
        .map(|w| w.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("_");
    guard(joined, "value")
}

/// `PascalCase`, never empty, never starting with a digit.
pub fn pascal(name: &str) -> String {
    let joined: String = words(name)
        .iter()
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            let mut chars = lower.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    guard(joined, "Value")
}

fn guard(name: String, empty: &str) -> String {
    if name.is_empty() {
        empty.to_owned()
    } else if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("{empty}{name}")
    } else {
        name
    }
}

/// An identifier, raw where `name` is a keyword (`r#type`); `self`-like keywords get a `_`.
pub fn ident(name: &str) -> Ident {
    if matches!(name, "self" | "Self" | "super" | "crate" | "_") {
        return Ident::new(&format!("{name}_"), Span::call_site());
    }
    match syn::parse_str::<Ident>(name) {
        Ok(ident) => ident,
        Err(_) => Ident::new_raw(name, Span::call_site()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        assert_eq!(snake("X-Workspace-Id"), "x_workspace_id");
        assert_eq!(snake("refreshToken"), "refresh_token");
        assert_eq!(snake("traceId"), "trace_id");
        assert_eq!(snake("HTTPError"), "http_error");
        assert_eq!(pascal("refresh_token"), "RefreshToken");
        assert_eq!(pascal("X-Workspace-Id"), "XWorkspaceId");
        assert_eq!(pascal("public.shipment:read"), "PublicShipmentRead");
        assert_eq!(pascal("2fa"), "Value2fa");
        assert_eq!(snake(""), "value");
        assert_eq!(ident("type").to_string(), "r#type");
        assert_eq!(ident("self").to_string(), "self_");
    }
}
