//! Stage 1, read: a spec file's YAML → the JSON document, every failure located. (Stage 2,
//! normalize, makes it a [`Spec`]; [`load`] and [`parse`] run both.) A document split over
//! several files is read as one (`bundle`).

mod bundle;

use crate::error::SpecError;
use crate::pointer;
use openapiv3::OpenAPI;
use serde_json::{Map, Number, Value};
use std::path::Path;

/// A parsed spec and where it came from.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The provider's name: the file name without `.yaml`.
    pub name: String,
    /// The file, as the caller named it; every error quotes it.
    pub file: String,
    /// The spec as JSON, for the mock server and for pointers the typed model does not keep.
    pub json: Value,
    /// The typed OpenAPI document.
    pub api: OpenAPI,
    /// Where `api.servers` was declared: `/servers`, or (once the model has put the token
    /// operations' own servers in its place) an operation's or a path's `servers`.
    pub servers_at: String,
}

/// Reads and parses one spec file.
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| SpecError::new(&file, "", format!("cannot read the file: {e}")))?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SpecError::new(&file, "", "the file name is not valid UTF-8"))?;
    parse_in(name, &file, &text, path.parent().unwrap_or(Path::new(".")))
}

/// Parses spec text into a [`Spec`] (read, then normalize); `file` is only used in errors.
/// References to other files are read relative to the working directory.
pub fn parse(name: &str, file: &str, text: &str) -> Result<Spec, SpecError> {
    parse_in(name, file, text, Path::new("."))
}

/// Parses spec text read from a file in `dir`: references to other files
/// (`$ref: schemas/Error.yaml`) are read from there, and the whole is one document.
pub fn parse_in(name: &str, file: &str, text: &str, dir: &Path) -> Result<Spec, SpecError> {
    let mut json = document(file, text)?;
    bundle::bundle(file, dir, &mut json)?;
    crate::normalize::normalize(name, file, json)
}

/// The YAML text as a JSON document.
pub fn document(file: &str, text: &str) -> Result<Value, SpecError> {
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        SpecError::new(file, "", format!("not valid YAML{at}: {e}"))
    })?;
    to_json(yaml, "").map_err(|(pointer, message)| SpecError::new(file, &pointer, message))
}

/// A serde path as a JSON pointer.
pub(crate) fn path_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .map(|segment| match segment {
            Segment::Seq { index } => format!("/{index}"),
            Segment::Map { key } => pointer::join("", key),
            Segment::Enum { .. } | Segment::Unknown => String::new(),
        })
        .collect()
}

/// YAML allows what JSON does not (non-string keys, tags, NaN); OpenAPI is JSON's data model.
/// Numeric and boolean keys (`200:` unquoted) become strings, as YAML readers of OpenAPI expect.
fn to_json(value: serde_yaml::Value, at: &str) -> Result<Value, (String, String)> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Value::Number(
                    Number::from_f64(f).ok_or_else(|| {
                        (at.to_owned(), format!("the number {n} has no JSON form"))
                    })?,
                )
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &format!("{at}/{i}")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (key, v) in map {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        return Err((
                            at.to_owned(),
                            format!("a mapping key must be a string, found {other:?}"),
                        ));
                    }
                };
                let child = pointer::join(at, &key);
                out.insert(key, to_json(v, &child)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            return Err((
                at.to_owned(),
                format!("YAML tag {} is not allowed in OpenAPI", tagged.tag),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_yaml_names_the_line() {
        let err = parse("x", "x.yaml", "openapi: [").unwrap_err();
        assert_eq!(err.file, "x.yaml");
        assert!(err.message.contains("line"), "{err}");
    }

    #[test]
    fn version_is_checked_first() {
        let err = parse("x", "x.yaml", "openapi: 2.0.0\ninfo: {}\n").unwrap_err();
        assert_eq!(err.pointer, "/openapi");
    }

    #[test]
    fn structural_errors_have_a_pointer() {
        let text = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    post:\n      responses: 7\n";
        let err = parse("x", "x.yaml", text).unwrap_err();
        assert_eq!(err.pointer, "/paths/~1a/post/responses", "{err}");
    }
}
