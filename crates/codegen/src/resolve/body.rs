//! The request body: its media type, schema, type and example.

use crate::error::{SpecError, SpecErrors};
use crate::model::is_form;
use crate::pointer;
use crate::read::Spec;
use crate::types::{Resolved, Ty, TypeBuilder};
use indexmap::IndexMap;
use openapiv3::{Operation as OaOperation, ReferenceOr, RequestBody};
use serde_json::Value;

pub(crate) fn is_json(media: &str) -> bool {
    let essence = media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

pub(crate) fn json_media<'a>(
    file: &str,
    at: &str,
    content: &'a IndexMap<String, openapiv3::MediaType>,
    allow_form: bool,
) -> Result<(&'a String, &'a openapiv3::MediaType), SpecError> {
    content
        .iter()
        .find(|(m, _)| is_json(m))
        .or_else(|| content.iter().find(|(m, _)| allow_form && is_form(m)))
        .ok_or_else(|| {
            let found: Vec<&String> = content.keys().collect();
            let supported = if allow_form {
                "application/json, +json and application/x-www-form-urlencoded request bodies"
            } else {
                "application/json and +json response bodies"
            };
            SpecError::new(
                file,
                &pointer::join(at, "content"),
                format!("unsupported media type {found:?}: only {supported} are supported"),
            )
        })
}

/// A request body as read from the spec, before the mapping says how it is filled.
pub(crate) struct BodyParts {
    /// The body's type.
    pub(crate) ty: Ty,
    /// Its media type.
    pub(crate) media_type: String,
    /// The spec's example of it.
    pub(crate) example: Option<Value>,
    /// Where its schema is in the spec.
    pub(crate) schema_pointer: String,
}

/// The request body's type, media type, example and schema pointer: `Some(None)` for an
/// operation without a body (allowed when the refresh token travels elsewhere), `None` after
/// an error.
pub(super) fn request_body(
    spec: &Spec,
    op_pointer: &str,
    op: &OaOperation,
    op_name: &str,
    token_in_body: bool,
    types: &mut TypeBuilder<'_>,
    errors: &mut SpecErrors,
) -> Option<Option<BodyParts>> {
    let at = pointer::join(op_pointer, "requestBody");
    let body: &RequestBody = match &op.request_body {
        Some(ReferenceOr::Item(b)) => b,
        Some(ReferenceOr::Reference { .. }) => {
            errors.push(
                SpecError::new(&spec.file, &at, "a $ref request body is not supported")
                    .hint("write the body inline; its schema may be a $ref"),
            );
            return None;
        }
        None if !token_in_body => return Some(None),
        None => {
            errors.push(
                SpecError::new(
                    &spec.file,
                    op_pointer,
                    "the refresh operation has no request body, but the mapping puts the refresh token in one",
                )
                .hint("add the body, or map the token to a parameter: `refresh-token: {in: query, name: refresh_token}`"),
            );
            return None;
        }
    };
    let (media, content) = match json_media(&spec.file, &at, &body.content, true) {
        Ok(found) => found,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let media_at = pointer::join(&pointer::join(&at, "content"), media);
    let Some(schema) = &content.schema else {
        errors.push(SpecError::new(
            &spec.file,
            &media_at,
            "the request body has no schema",
        ));
        return None;
    };
    let example = content.example.clone().or_else(|| {
        content.examples.values().find_map(|e| match e {
            ReferenceOr::Item(e) => e.value.clone(),
            ReferenceOr::Reference { .. } => None,
        })
    });
    let schema_at = pointer::join(&media_at, "schema");
    match types.resolve(schema.into(), &schema_at, &format!("{op_name}Request")) {
        Ok(Resolved { ty, .. }) => Some(Some(BodyParts {
            ty,
            media_type: media.clone(),
            example,
            schema_pointer: schema_at,
        })),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}
