//! The servers the token operations are sent to: their own (operation- or path-level
//! `servers`) where they declare them, and, for a document that declares none at all, the
//! servers its OAuth flows' `tokenUrl`s name.

use crate::error::SpecError;
use crate::extension;
use crate::pointer;
use crate::read::Spec;
use openapiv3::ReferenceOr;
use serde_json::{Value, json};

/// A document without `servers` (OpenAPI's default, `/`, names no host): the origin and base
/// path of each absolute `tokenUrl` of its OAuth flows that ends in a token operation's path,
/// so that a self-hosted provider's client is generated with its documented host as the
/// default (and the builder's `base_url` for everyone else's).
pub(super) fn from_flows(doc: &mut Value) {
    let declared = doc
        .get("servers")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    if declared {
        return;
    }
    let paths: Vec<String> = token_paths(doc);
    let mut urls: Vec<String> = Vec::new();
    let schemes = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object);
    for scheme in schemes.into_iter().flat_map(|s| s.values()) {
        let flows = scheme.get("flows").and_then(Value::as_object);
        for flow in flows.into_iter().flat_map(|f| f.values()) {
            let Some(token_url) = flow.get("tokenUrl").and_then(Value::as_str) else {
                continue;
            };
            let base = paths
                .iter()
                .find_map(|path| token_url.strip_suffix(path.as_str()))
                .filter(|base| base.starts_with("https://") || base.starts_with("http://"));
            if let Some(base) = base
                && !urls.iter().any(|u| u == base)
            {
                urls.push(base.to_owned());
            }
        }
    }
    if urls.is_empty() {
        return;
    }
    let servers = urls
        .into_iter()
        .map(|url| json!({ "url": url, "description": "from the OAuth flows' tokenUrl (the document declares no server)" }))
        .collect();
    if let Some(map) = doc.as_object_mut() {
        map.insert("servers".to_owned(), Value::Array(servers));
    }
}

/// The paths of the operations that carry a token mapping.
fn token_paths(doc: &Value) -> Vec<String> {
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return Vec::new();
    };
    paths
        .iter()
        .filter(|(_, item)| {
            item.as_object().is_some_and(|ops| {
                ops.values().any(|op| {
                    op.get(extension::KEY).is_some() || op.get(extension::GRANT_KEY).is_some()
                })
            })
        })
        .map(|(path, _)| path.clone())
        .collect()
}

/// `spec` with the token operations' own servers in place of the document's: an
/// operation's `servers`, else its path's, else the document's (OpenAPI 3.0 §4.7.10: the
/// nearest declaration wins), with `servers_at` naming where they were declared. One client
/// has one base URL, so token operations on different servers are an error.
pub(super) fn token_servers(spec: &Spec) -> Result<Spec, SpecError> {
    // The first token operation's servers: where they were declared, the operation, the list.
    let mut chosen: Option<(String, String, Vec<openapiv3::Server>)> = None;
    let urls = |list: &[openapiv3::Server]| -> Vec<String> {
        list.iter()
            .map(|s| s.url.trim_end_matches('/').to_owned())
            .collect()
    };
    for (path, item) in &spec.api.paths.paths {
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        let path_at = pointer::join("/paths", path);
        for (method, op) in item.iter() {
            let token_op = op.extensions.contains_key(extension::KEY)
                || op.extensions.contains_key(extension::GRANT_KEY);
            if !token_op {
                continue;
            }
            let op_at = pointer::join(&path_at, method);
            let (at, servers) = if !op.servers.is_empty() {
                (pointer::join(&op_at, "servers"), &op.servers)
            } else if !item.servers.is_empty() {
                (pointer::join(&path_at, "servers"), &item.servers)
            } else {
                ("/servers".to_owned(), &spec.api.servers)
            };
            match &chosen {
                None => chosen = Some((at, op_at, servers.clone())),
                Some((first_at, first_op, first)) if urls(first) != urls(servers) => {
                    return Err(SpecError::new(
                        &spec.file,
                        &op_at,
                        format!(
                            "this token operation is sent to {} (the servers at {at}), the one at {first_op} to {} (at {first_at}): one client has one base URL",
                            urls(servers).join(", "),
                            urls(first).join(", ")
                        ),
                    )
                    .hint("give the token operations the same `servers`, or put them in specs of their own"));
                }
                Some(_) => {}
            }
        }
    }
    let mut resolved = spec.clone();
    if let Some((at, _, servers)) = chosen {
        resolved.api.servers = servers;
        resolved.servers_at = at;
    }
    Ok(resolved)
}
