//! Stage 3, locate: the token operations and their extensions (`x-token-refresh`,
//! `x-token-grant`), read and checked against each other. Input: the normalized [`Spec`];
//! output: [`Located`], each operation with its mapping.

use crate::error::{SpecError, SpecErrors};
use crate::extension::{self, GenerateKind, GrantKind, TokenGrant, TokenRefresh, TokenRevoke};
use crate::model::RefreshPlace;
use crate::pointer;
use crate::read::Spec;
use indexmap::IndexMap;
use openapiv3::{Operation as OaOperation, ReferenceOr};
use serde_json::Value;

/// The token operations of a spec, each with its extension read.
pub(crate) struct Located<'s> {
    /// The document.
    pub(crate) spec: &'s Spec,
    /// The refresh operation, if the spec has one and its mapping could be read.
    pub(crate) refresh: Option<Found<'s, TokenRefresh>>,
    /// The spec has a refresh operation whose mapping could not be read: the later stages still
    /// report what they find in the rest, but no client comes out.
    pub(crate) refresh_lost: bool,
    /// The operations with `x-token-grant`, in the spec's order.
    pub(crate) grants: Vec<Found<'s, TokenGrant>>,
    /// The operation with `x-token-revoke`, if the spec maps one.
    pub(crate) revocation: Option<Found<'s, TokenRevoke>>,
}

/// One token operation: where it is, and its extension (`E`).
pub(crate) struct Found<'s, E> {
    /// Its pointer (`/paths/~1token/post`).
    pub(crate) pointer: String,
    /// The HTTP method, upper case.
    pub(crate) method: String,
    /// The path below the base URL.
    pub(crate) path: String,
    /// The operation.
    pub(crate) op: &'s OaOperation,
    /// `operationId`.
    pub(crate) id: String,
    /// The id in PascalCase: what the operation's generated types are named after.
    pub(crate) name: String,
    /// Its extension, read.
    pub(crate) ext: E,
}

/// A mapping's `set` and `generate`: some of their keys name the operation's parameters.
pub(crate) type RequestValues<'a> = (
    &'a IndexMap<String, Value>,
    &'a IndexMap<String, GenerateKind>,
);

/// What the later stages ask of either extension.
pub(crate) trait TokenExtension {
    /// The extension's key (`x-token-refresh`).
    const KEY: &'static str;
    /// Where the token the request sends goes: only the refresh sends one.
    fn place(&self) -> Option<RefreshPlace>;
    /// The request's `set` and `generate`.
    fn values(&self) -> RequestValues<'_>;
}

impl TokenExtension for TokenRefresh {
    const KEY: &'static str = extension::KEY;
    fn place(&self) -> Option<RefreshPlace> {
        self.request.place().map(RefreshPlace::from_spec)
    }
    fn values(&self) -> RequestValues<'_> {
        (&self.request.set, &self.request.generate)
    }
}

impl TokenExtension for TokenGrant {
    const KEY: &'static str = extension::GRANT_KEY;
    fn place(&self) -> Option<RefreshPlace> {
        None
    }
    fn values(&self) -> RequestValues<'_> {
        (&self.request.set, &self.request.generate)
    }
}

impl TokenExtension for TokenRevoke {
    const KEY: &'static str = extension::REVOKE_KEY;
    fn place(&self) -> Option<RefreshPlace> {
        None
    }
    fn values(&self) -> RequestValues<'_> {
        (&self.set, &self.generate)
    }
}

impl<'s, E> Found<'s, E> {
    /// Operation `op` at `pointer`, named by `id`, with its extension read.
    fn new(
        id: String,
        (pointer, method, path, op): (String, String, String, &'s OaOperation),
        ext: E,
    ) -> Self {
        Self {
            name: crate::names::pascal(&id),
            id,
            pointer,
            method,
            path,
            op,
            ext,
        }
    }
}

impl<E: TokenExtension> Found<'_, E> {
    /// Where this operation's extension is.
    pub(crate) fn ext_at(&self) -> String {
        pointer::join(&self.pointer, E::KEY)
    }

    /// Where this operation's mapping writes its `request`.
    pub(crate) fn request_at(&self) -> String {
        pointer::join(&self.ext_at(), "request")
    }
}

/// Every token operation of `spec`, or `None` when the spec's token operations cannot even be
/// found (the errors say why).
pub(crate) fn locate<'s>(spec: &'s Spec, errors: &mut SpecErrors) -> Option<Located<'s>> {
    let found = refresh_operation(spec).map_err(|e| errors.push(e)).ok()?;
    let declared = found.is_some();
    let refresh = found.and_then(|found| refresh_of(spec, found, errors));
    let grants = grant_operations(spec, errors);
    let revocation = revoke_operation(spec, errors);
    let located = Located {
        spec,
        refresh_lost: declared && refresh.is_none(),
        refresh,
        grants,
        revocation,
    };
    check_against_each_other(&located, declared, errors);
    Some(located)
}

/// The refresh operation with its mapping read; `None` when the mapping cannot be read.
fn refresh_of<'s>(
    spec: &'s Spec,
    (pointer, method, path, op): (String, String, String, &'s OaOperation),
    errors: &mut SpecErrors,
) -> Option<Found<'s, TokenRefresh>> {
    let file = spec.file.as_str();
    let ext = extension::read(file, &pointer, &op.extensions).map_err(|e| errors.push(e));
    let id = match &op.operation_id {
        Some(id) if !id.trim().is_empty() => id.clone(),
        _ => {
            errors.push(
                SpecError::new(file, &pointer, "the refresh operation has no operationId")
                    .hint("add `operationId: refreshToken`; it names the generated method"),
            );
            "refresh".to_owned()
        }
    };
    Some(Found::new(id, (pointer, method, path, op), ext.ok()?))
}

/// Every operation that carries the extension `key`: its pointer, method (upper case), path
/// and the operation.
fn carrying<'s>(spec: &'s Spec, key: &str) -> Vec<(String, String, String, &'s OaOperation)> {
    let mut out = Vec::new();
    for (path, item) in &spec.api.paths.paths {
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        for (method, op) in item.iter() {
            if op.extensions.contains_key(key) {
                let at = pointer::join(&pointer::join("/paths", path), method);
                out.push((at, method.to_ascii_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

/// A located operation with its extension read, named by its operationId (`what` operation,
/// `example` in the hint when it has none).
fn named<'s, E>(
    file: &str,
    (pointer, method, path, op): (String, String, String, &'s OaOperation),
    ext: E,
    (what, example): (&str, &str),
    errors: &mut SpecErrors,
) -> Option<Found<'s, E>> {
    let Some(id) = op.operation_id.clone().filter(|id| !id.trim().is_empty()) else {
        errors.push(
            SpecError::new(
                file,
                &pointer,
                format!("the {what} operation has no operationId"),
            )
            .hint(format!(
                "add `operationId: {example}`; it names the generated types and method"
            )),
        );
        return None;
    };
    Some(Found::new(id, (pointer, method, path, op), ext))
}

/// The operations with `x-token-grant`, each with its mapping read.
fn grant_operations<'s>(spec: &'s Spec, errors: &mut SpecErrors) -> Vec<Found<'s, TokenGrant>> {
    let file = spec.file.as_str();
    let mut out = Vec::new();
    for located in carrying(spec, extension::GRANT_KEY) {
        let (op_pointer, op) = (&located.0, located.3);
        if op.extensions.contains_key(extension::KEY) {
            errors.push(SpecError::new(
                file,
                op_pointer,
                format!(
                    "an operation carries either `{}` or `{}`; grants of the refresh operation go under its `grants`",
                    extension::KEY,
                    extension::GRANT_KEY
                ),
            ));
            continue;
        }
        let ext = match extension::read_grant(file, op_pointer, &op.extensions) {
            Ok(ext) => ext,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        out.extend(named(file, located, ext, ("grant", "login"), errors));
    }
    out
}

/// The operation with `x-token-revoke`: at most one, on no token operation, with an
/// operationId.
fn revoke_operation<'s>(spec: &'s Spec, errors: &mut SpecErrors) -> Option<Found<'s, TokenRevoke>> {
    let file = spec.file.as_str();
    let mut found: Option<Found<'s, TokenRevoke>> = None;
    for located in carrying(spec, extension::REVOKE_KEY) {
        let (op_pointer, op) = (&located.0, located.3);
        if op.extensions.contains_key(extension::KEY)
            || op.extensions.contains_key(extension::GRANT_KEY)
        {
            errors.push(SpecError::new(
                file,
                op_pointer,
                format!(
                    "the revocation operation carries `{}` and a token mapping: revoking is an operation of its own",
                    extension::REVOKE_KEY
                ),
            ));
            continue;
        }
        if let Some(first) = &found {
            errors.push(
                SpecError::new(
                    file,
                    op_pointer,
                    format!(
                        "a second revocation operation (the first is {})",
                        first.pointer
                    ),
                )
                .hint("a removal revokes at one endpoint; map one"),
            );
            continue;
        }
        let ext = match extension::read_revoke(file, op_pointer, &op.extensions) {
            Ok(ext) => ext,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        found = named(file, located, ext, ("revocation", "revokeToken"), errors);
    }
    found
}

/// What the operations' mappings say together: a parameter fixed by the refresh cannot also
/// serve its grants, each grant is mapped once, and a spec without a refresh operation issues
/// no refresh token it could never use.
fn check_against_each_other(located: &Located<'_>, declared: bool, errors: &mut SpecErrors) {
    let file = located.spec.file.as_str();
    let mut served: Vec<GrantKind> = Vec::new();
    if let Some(refresh) = &located.refresh {
        fixed_parameters_serve_no_grant(file, refresh, errors);
        served.extend(refresh.ext.grants.keys());
    }
    for op in &located.grants {
        if served.contains(&op.ext.grant) {
            errors.push(SpecError::new(
                file,
                &op.ext_at(),
                format!("the {} grant is mapped twice", op.ext.grant.key()),
            ));
        }
        served.push(op.ext.grant);
    }
    if declared {
        return;
    }
    // Nothing could ever send a refresh token such a provider issued.
    for op in located
        .grants
        .iter()
        .filter(|op| op.ext.success.refresh_token.is_some())
    {
        errors.push(
            SpecError::new(
                file,
                &pointer::join(&pointer::join(&op.ext_at(), "success"), "refresh-token"),
                "the spec has no refresh operation, so a refresh token could never be used",
            )
            .hint("map the refresh operation with `x-token-refresh`, or leave `refresh-token` out"),
        );
    }
}

/// A `set` or `generate` on a parameter fixes it for every request of the operation, so the
/// refresh operation cannot also serve grants with it.
fn fixed_parameters_serve_no_grant(
    file: &str,
    refresh: &Found<'_, TokenRefresh>,
    errors: &mut SpecErrors,
) {
    if refresh.ext.grants.is_empty() {
        return;
    }
    let request = &refresh.ext.request;
    let params = (request.set.keys().map(|k| ("set", k)))
        .chain(request.generate.keys().map(|k| ("generate", k)));
    for (map, key) in params.filter(|(_, k)| !k.starts_with('/')) {
        errors.push(
            SpecError::new(
                file,
                &pointer::join(&pointer::join(&refresh.request_at(), map), key),
                format!("{key:?} is a parameter, fixed for every request of this operation, and it also serves grants"),
            )
            .hint("fix a parameter where one operation serves one request: give the grants operations of their own (`x-token-grant`), or use a body property"),
        );
    }
}

/// The one operation that carries the refresh mapping, if any: a spec whose token operations are
/// all grants (`x-token-grant`) has none.
fn refresh_operation(
    spec: &Spec,
) -> Result<Option<(String, String, String, &OaOperation)>, SpecError> {
    let mut found = Vec::new();
    let mut grants = 0;
    for (path, item) in &spec.api.paths.paths {
        let path_at = pointer::join("/paths", path);
        let ReferenceOr::Item(item) = item else {
            return Err(SpecError::new(
                &spec.file,
                &path_at,
                "a $ref path item is not supported",
            ));
        };
        for (method, op) in item.iter() {
            grants += usize::from(op.extensions.contains_key(extension::GRANT_KEY));
            if op.extensions.contains_key(extension::KEY) {
                found.push((
                    pointer::join(&path_at, method),
                    method.to_ascii_uppercase(),
                    path.clone(),
                    op,
                ));
            }
        }
    }
    match found.len() {
        1 => Ok(Some(found.remove(0))),
        0 if grants > 0 => Ok(None),
        0 => Err(SpecError::new(
            &spec.file,
            "/paths",
            format!(
                "no operation carries a token mapping (`{}` or `{}`)",
                extension::KEY,
                extension::GRANT_KEY
            ),
        )
        .hint("add `x-token-refresh` to the refresh operation, or `x-token-grant` to each operation that issues tokens by a grant; see README.md")),
        _ => Err(SpecError::new(
            &spec.file,
            &found[1].0,
            format!("more than one operation carries `{}`", extension::KEY),
        )
        .hint("a spec describes one refresh operation")),
    }
}
