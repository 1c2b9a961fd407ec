//! The documented responses, keyed by status, exact codes before ranges before `default`.

use super::body::json_media;
use crate::error::{SpecError, SpecErrors};
use crate::model::{ResponseCase, StatusKey, status_variant};
use crate::pointer;
use crate::read::Spec;
use crate::types::TypeBuilder;
use openapiv3::{Operation as OaOperation, ReferenceOr, Response, StatusCode};

pub(super) fn responses(
    spec: &Spec,
    op_pointer: &str,
    op: &OaOperation,
    op_name: &str,
    types: &mut TypeBuilder<'_>,
    errors: &mut SpecErrors,
) -> Vec<ResponseCase> {
    let responses_at = pointer::join(op_pointer, "responses");
    let mut out = Vec::new();
    let keyed = op
        .responses
        .responses
        .iter()
        .map(|(status, response)| {
            let key = match *status {
                StatusCode::Code(code) => StatusKey::Code(code),
                StatusCode::Range(class) => StatusKey::Range(class),
            };
            (key, response)
        })
        .chain(op.responses.default.iter().map(|r| (StatusKey::Default, r)));
    for (key, response) in keyed {
        let at = pointer::join(&responses_at, &key.spec_key());
        let ReferenceOr::Item(response) = response else {
            errors.push(
                SpecError::new(&spec.file, &at, "a $ref response is not supported")
                    .hint("write the response inline; its schema may be a $ref"),
            );
            continue;
        };
        match response_case(spec, &at, key, response, op_name, types) {
            Ok(case) => out.push(case),
            Err(e) => errors.push(e),
        }
    }
    // Exact codes first, then ranges, then `default`: the order a decoder must try them.
    out.sort_by_key(|c| match c.key {
        StatusKey::Code(_) => 0,
        StatusKey::Range(_) => 1,
        StatusKey::Default => 2,
    });
    let keys: Vec<StatusKey> = out.iter().map(|c| c.key).collect();
    for case in &mut out {
        case.status = representative(case.key, &keys);
    }
    if out.is_empty() && errors.0.is_empty() {
        errors.push(SpecError::new(
            &spec.file,
            &responses_at,
            "no response is documented",
        ));
    }
    out
}

/// A status `key` stands for that no more specific key documents.
fn representative(key: StatusKey, keys: &[StatusKey]) -> u16 {
    let specific = |status: u16| {
        keys.iter().any(|k| {
            *k != key
                && k.covers(status)
                && !matches!(
                    (k, key),
                    (StatusKey::Default, _) | (StatusKey::Range(_), StatusKey::Code(_))
                )
        })
    };
    let candidates: Vec<u16> = match key {
        StatusKey::Code(code) => return code,
        StatusKey::Range(class) => (class * 100..class * 100 + 100).collect(),
        StatusKey::Default => (500..600).chain(400..500).chain(300..400).collect(),
    };
    candidates
        .into_iter()
        .find(|s| !specific(*s))
        .unwrap_or(599)
}

fn response_case(
    spec: &Spec,
    at: &str,
    key: StatusKey,
    response: &Response,
    op_name: &str,
    types: &mut TypeBuilder<'_>,
) -> Result<ResponseCase, SpecError> {
    let variant = match key {
        StatusKey::Code(code) => status_variant(code),
        StatusKey::Range(1) => "Informational".to_owned(),
        StatusKey::Range(2) => "Success".to_owned(),
        StatusKey::Range(3) => "Redirection".to_owned(),
        StatusKey::Range(4) => "ClientError".to_owned(),
        StatusKey::Range(5) => "ServerError".to_owned(),
        StatusKey::Range(class) => format!("Class{class}xx"),
        StatusKey::Default => "Default".to_owned(),
    };
    let status = match key {
        StatusKey::Code(code) => code,
        StatusKey::Range(class) => class * 100,
        StatusKey::Default => 500,
    };
    let mut body = None;
    let mut examples = Vec::new();
    if !response.content.is_empty() {
        let (media, content) = json_media(&spec.file, at, &response.content, false)?;
        let media_at = pointer::join(&pointer::join(at, "content"), media);
        let schema = content.schema.as_ref().ok_or_else(|| {
            SpecError::new(&spec.file, &media_at, "the response body has no schema")
        })?;
        let resolved = types.resolve(
            schema.into(),
            &pointer::join(&media_at, "schema"),
            &format!("{op_name}{variant}"),
        )?;
        body = Some((media.clone(), resolved.ty));
        if let Some(example) = &content.example {
            examples.push(("example".to_owned(), example.clone()));
        }
        for (name, example) in &content.examples {
            match example {
                ReferenceOr::Item(e) => {
                    if let Some(value) = &e.value {
                        examples.push((name.clone(), value.clone()));
                    }
                }
                ReferenceOr::Reference { .. } => {
                    return Err(SpecError::new(
                        &spec.file,
                        &pointer::join(&pointer::join(&media_at, "examples"), name),
                        "a $ref example is not supported",
                    ));
                }
            }
        }
    }
    Ok(ResponseCase {
        key,
        status,
        variant,
        description: response.description.clone(),
        body,
        examples,
        pointer: at.to_owned(),
    })
}
