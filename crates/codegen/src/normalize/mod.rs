//! Stage 2, normalize: the document as the rest of the generator wants to see it. Input: the
//! JSON document [`read`](crate::read) made; output: a [`Spec`]. What an OpenAPI document may
//! say in several ways is reduced here to the one form the later stages read, so that they
//! never learn the other ones; then the document is parsed (`openapiv3`, which reads 3.0).
//! In order: 3.1 in the words of 3.0 (`v31`); references to reusable responses, parameters
//! and bodies, and a path's parameters, written out in each operation (`refs`); schemas in
//! one canonical form (`schemas`); a body of any type (`*/*`) read as JSON (`media`); servers from the OAuth flows where the document declares
//! none, and the token operations' own servers in place of the document's (`servers`);
//! examples assembled from schemas where a media type has none (`examples`).

mod examples;
mod media;
mod refs;
mod schemas;
mod servers;
mod structural;
mod v31;
mod walk;

use crate::error::SpecError;
use crate::read::{Spec, path_pointer};
use openapiv3::OpenAPI;
use serde_json::Value;

/// The document of the provider `name` (from `file`), normalized and parsed.
pub(crate) fn normalize(name: &str, file: &str, mut json: Value) -> Result<Spec, SpecError> {
    if check_version(file, &json)? == Version::V31 {
        v31::downgrade(&mut json);
    }
    refs::inline(file, &mut json)?;
    schemas::canonical(&mut json);
    media::any_as_json(&mut json);
    servers::from_flows(&mut json);
    examples::assemble(&mut json);
    let spec = typed(name, file, json)?;
    servers::token_servers(&spec)
}

/// The OpenAPI versions read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V30,
    V31,
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

fn check_version(file: &str, json: &Value) -> Result<Version, SpecError> {
    let version = json.get("openapi").and_then(Value::as_str);
    match version {
        Some(v) if v.starts_with("3.0.") => Ok(Version::V30),
        Some(v) if v.starts_with("3.1.") => Ok(Version::V31),
        Some(v) => Err(SpecError::new(
            file,
            "/openapi",
            format!("OpenAPI version {v:?} is not supported; this generator reads 3.0.x and 3.1.x"),
        )
        .hint("write `openapi: 3.0.3` or `openapi: 3.1.0`")),
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
