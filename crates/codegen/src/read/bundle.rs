//! A document split over several files, read as one: every `$ref` to another file
//! (`schemas/OAuthError.yaml`, `common.yaml#/components/responses/Error`) is replaced by what
//! it names. A schema from another file becomes a component schema of the document (named
//! after its file, or the last segment of its pointer), so that its type keeps a name; any
//! other part is written out where it is referenced. Only files in the spec's folder (or
//! below) are read.

use super::document;
use crate::error::SpecError;
use crate::pointer;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Bundles `doc`, read from `file` in `dir`, in place.
pub(super) fn bundle(file: &str, dir: &Path, doc: &mut Value) -> Result<(), SpecError> {
    let mut bundler = Bundler {
        file,
        root: dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
        files: HashMap::new(),
        hoisted: HashMap::new(),
        schemas: Map::new(),
        stack: Vec::new(),
    };
    let root = dir.to_path_buf();
    bundler.walk(doc, &root, "", false)?;
    if bundler.schemas.is_empty() {
        return Ok(());
    }
    let components = doc.as_object_mut().map(|d| {
        d.entry("components")
            .or_insert_with(|| Value::Object(Map::new()))
    });
    if let Some(Value::Object(components)) = components {
        let schemas = components
            .entry("schemas")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(schemas) = schemas {
            schemas.extend(std::mem::take(&mut bundler.schemas));
        }
    }
    Ok(())
}

/// What bundling one document has read and made so far.
struct Bundler<'a> {
    /// The document's file, as errors name it.
    file: &'a str,
    /// The spec's own folder: no reference reads outside it (a spec in a pull request must
    /// not pull the build machine's other files into a generated crate).
    root: PathBuf,
    /// Every other file read, by path.
    files: HashMap<PathBuf, Value>,
    /// The component name each hoisted schema got, by file and pointer.
    hoisted: HashMap<(PathBuf, String), String>,
    /// The schemas hoisted from other files.
    schemas: Map<String, Value>,
    /// The external references being written out, to refuse a cycle.
    stack: Vec<(PathBuf, String)>,
}

impl Bundler<'_> {
    fn error(&self, at: &str, message: impl Into<String>) -> SpecError {
        SpecError::new(self.file, at, message)
    }

    /// Bundles `value` (at `at`, from a file in `dir`); `in_schema`: it is (inside) a schema.
    fn walk(
        &mut self,
        value: &mut Value,
        dir: &Path,
        at: &str,
        in_schema: bool,
    ) -> Result<(), SpecError> {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref")
                    && !reference.starts_with('#')
                {
                    let reference = reference.clone();
                    *value = self.external(&reference, dir, at, in_schema)?;
                    return Ok(());
                }
                for (key, child) in map.iter_mut() {
                    let child_at = pointer::join(at, key);
                    let schema = in_schema || key == "schema" || at == "/components/schemas";
                    self.walk(child, dir, &child_at, schema)?;
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.walk(item, dir, &format!("{at}/{i}"), in_schema)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// What an external `$ref` at `at` stands for: a reference to the hoisted component
    /// schema, or the part itself.
    fn external(
        &mut self,
        reference: &str,
        dir: &Path,
        at: &str,
        in_schema: bool,
    ) -> Result<Value, SpecError> {
        let (path, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let path = dir.join(path);
        let key = (path.clone(), fragment.to_owned());
        if in_schema && let Some(name) = self.hoisted.get(&key) {
            return Ok(local_ref(name));
        }
        if self.stack.contains(&key) {
            return Err(self.error(
                &pointer::join(at, "$ref"),
                format!("{reference:?} refers back to itself across files"),
            ));
        }
        let mut part = self.part(&path, fragment, reference, at)?;
        let name = in_schema.then(|| self.name_for(&path, fragment));
        if let Some(name) = &name {
            self.hoisted.insert(key.clone(), name.clone());
        }
        // References inside the part are relative to its own file: local ones name that file.
        let part_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let file_name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        relocate_local_refs(&mut part, &file_name);
        self.stack.push(key);
        let walked = self.walk(&mut part, &part_dir, at, in_schema);
        self.stack.pop();
        walked?;
        Ok(match name {
            Some(name) => {
                self.schemas.insert(name.clone(), part);
                local_ref(&name)
            }
            None => part,
        })
    }

    /// The node at `fragment` (a JSON pointer, or the whole file) of the file at `path`.
    fn part(
        &mut self,
        path: &Path,
        fragment: &str,
        reference: &str,
        at: &str,
    ) -> Result<Value, SpecError> {
        let inside = path
            .canonicalize()
            .is_ok_and(|real| real.starts_with(&self.root));
        if path.exists() && !inside {
            return Err(self
                .error(
                    &pointer::join(at, "$ref"),
                    format!("{reference:?} is outside the spec's folder"),
                )
                .hint("keep the files a spec refers to in its folder, or below it"));
        }
        if !self.files.contains_key(path) {
            let text = std::fs::read_to_string(path).map_err(|e| {
                self.error(
                    &pointer::join(at, "$ref"),
                    format!("{reference:?}: cannot read the file ({})", io_reason(&e)),
                )
            })?;
            let doc = document(&path.display().to_string(), &text)?;
            self.files.insert(path.to_path_buf(), doc);
        }
        let doc = &self.files[path];
        doc.pointer(fragment).cloned().ok_or_else(|| {
            self.error(
                &pointer::join(at, "$ref"),
                format!("{reference:?} names nothing in its file"),
            )
        })
    }

    /// A component name for a hoisted schema: its pointer's last segment, else its file's
    /// stem, made unique.
    fn name_for(&self, path: &Path, fragment: &str) -> String {
        let base = fragment
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                path.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            });
        let taken = |n: &str| self.schemas.contains_key(n) || self.hoisted.values().any(|v| v == n);
        let mut name = base.clone();
        let mut i = 2;
        while taken(&name) {
            name = format!("{base}{i}");
            i += 1;
        }
        name
    }
}

fn local_ref(name: &str) -> Value {
    let mut map = Map::new();
    map.insert(
        "$ref".to_owned(),
        Value::String(format!("#/components/schemas/{name}")),
    );
    Value::Object(map)
}

/// `#/…` references inside a part read from `file` name that file, not the document.
fn relocate_local_refs(value: &mut Value, file: &str) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref")
                && reference.starts_with('#')
            {
                *reference = format!("{file}{reference}");
            }
            map.values_mut().for_each(|v| relocate_local_refs(v, file));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| relocate_local_refs(v, file)),
        _ => {}
    }
}

/// What went wrong reading a file, without the path (errors name the reference instead).
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.kind().to_string(),
    }
}
