//! Stage 2, normalize: the document as the rest of the generator wants to see it. Input: the
//! JSON document [`read`](crate::read) made; output: a [`Spec`]. What an OpenAPI document may
//! say in several ways is reduced here to the one form the later stages read, so that they
//! never learn the other ones; then the document is parsed (`openapiv3`, which reads 3.0).
//!
//! Today: the token operations' own servers (operation- or path-level `servers`) stand in for
//! the document's.

mod structural;

use crate::error::SpecError;
use crate::extension;
use crate::pointer;
use crate::read::{Spec, path_pointer};
use openapiv3::{OpenAPI, ReferenceOr};
use serde_json::Value;

/// The document of the provider `name` (from `file`), normalized and parsed.
pub(crate) fn normalize(name: &str, file: &str, json: Value) -> Result<Spec, SpecError> {
    check_version(file, &json)?;
    let spec = typed(name, file, json)?;
    token_servers(&spec)
}

/// The normalized document, parsed; every failure located.
fn typed(name: &str, file: &str, json: Value) -> Result<Spec, SpecError> {
    let api = serde_path_to_error::deserialize::<_, OpenAPI>(&json).map_err(|e| {
        let (pointer, message) = structural::deepest_failure(&json)
            .unwrap_or_else(|| (path_pointer(e.path()), e.inner().to_string()));
        SpecError::new(
            file,
            &pointer,
            format!("not a valid OpenAPI 3.0 document: {message}"),
        )
    })?;
    if !is_valid_name(name) {
        return Err(SpecError::new(
            file,
            "",
            format!("the provider name {name:?} must be lower-case letters, digits and dashes"),
        )
        .hint("rename the file, such as `specs/my-provider.yaml`"));
    }
    Ok(Spec {
        name: name.to_owned(),
        file: file.to_owned(),
        json,
        api,
        servers_at: "/servers".to_owned(),
    })
}

fn check_version(file: &str, json: &Value) -> Result<(), SpecError> {
    let version = json.get("openapi").and_then(Value::as_str);
    match version {
        Some(v) if v.starts_with("3.0.") => Ok(()),
        Some(v) => Err(SpecError::new(
            file,
            "/openapi",
            format!("OpenAPI version {v:?} is not supported; this generator reads 3.0.x"),
        )
        .hint("write `openapi: 3.0.3`")),
        None => Err(SpecError::new(
            file,
            "/openapi",
            "the `openapi` version field is missing or not a string",
        )
        .hint("start the file with `openapi: 3.0.3`")),
    }
}

fn is_valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
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
