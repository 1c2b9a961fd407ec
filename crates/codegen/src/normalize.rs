//! Stage 2, normalize: the document as the rest of the generator wants to see it. Input and
//! output: a [`Spec`]. What an OpenAPI document may say in several ways is reduced here to the
//! one form the later stages read, so that they never learn the other ones.
//!
//! Today: the token operations' own servers (operation- or path-level `servers`) stand in for
//! the document's.

use crate::error::SpecError;
use crate::extension;
use crate::pointer;
use crate::read::Spec;
use openapiv3::ReferenceOr;

/// The document, normalized.
pub(crate) fn normalize(spec: &Spec) -> Result<Spec, SpecError> {
    token_servers(spec)
}

/// `spec` with the token operations' own servers in place of the document's: an
/// operation's `servers`, else its path's, else the document's (OpenAPI 3.0 §4.7.10: the
/// nearest declaration wins), with `servers_at` naming where they were declared. One client
/// has one base URL, so token operations on different servers are an error.
fn token_servers(spec: &Spec) -> Result<Spec, SpecError> {
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
