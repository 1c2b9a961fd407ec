//! Client authentication: the security scheme the operation requires.

use crate::error::{SpecError, SpecErrors};
use crate::model::{Auth, ConfigField, Location, made_up_example, push_config};
use crate::pointer;
use crate::read::Spec;
use crate::types::Ty;
use openapiv3::{Operation as OaOperation, ReferenceOr, SecurityRequirement};

/// The client authentication of the security requirement the operation meets.
pub(super) fn auth(
    spec: &Spec,
    op_pointer: &str,
    op: &OaOperation,
    config: &mut Vec<ConfigField>,
    notes: &mut Vec<SpecError>,
    errors: &mut SpecErrors,
) -> Option<Auth> {
    let (name, scheme) = required_scheme(spec, op_pointer, op, notes, errors)?;
    let at = pointer::join("/components/securitySchemes", name);
    let mut field = |name: &str, ty: Ty, doc: &str| {
        push_config(
            config,
            ConfigField {
                name: name.to_owned(),
                example: made_up_example(&ty, name),
                kept: false,
                copy: false,
                ty,
                required: true,
                doc: Some(doc.to_owned()),
            },
        )
    };
    match scheme {
        openapiv3::SecurityScheme::HTTP { scheme, .. } if scheme.eq_ignore_ascii_case("basic") => {
            let id = field(
                "client_id",
                Ty::String,
                "The OAuth client id, sent with HTTP Basic (RFC 6749 §2.3.1).",
            );
            let secret = field(
                "client_secret",
                Ty::Secret,
                "The OAuth client secret, sent with HTTP Basic.",
            );
            Some(Auth::Basic { id, secret })
        }
        openapiv3::SecurityScheme::APIKey { location, name, .. } => {
            let (location, name) = api_key(spec, &at, location, name, errors)?;
            let key = field("api_key", Ty::Secret, "The API key.");
            Some(Auth::ApiKey {
                location,
                name,
                key,
            })
        }
        openapiv3::SecurityScheme::OAuth2 { .. } => {
            errors.push(
                SpecError::new(
                    &spec.file,
                    &pointer::join(op_pointer, "security"),
                    format!("the token operation requires the oauth2 scheme {name:?}: it cannot need the tokens it issues"),
                )
                .hint("keep the scheme under components/securitySchemes for its flows (the grants), and require Basic, an API key or nothing here"),
            );
            None
        }
        _ => {
            errors.push(
                SpecError::new(&spec.file, &at, "only HTTP Basic and API key security schemes are supported")
                    .hint("a token endpoint authenticates the client with Basic, an API key, or body fields"),
            );
            None
        }
    }
}

/// The security scheme of the requirement the token operation meets, with its name: the
/// first alternative of its own `security` a client can meet (Basic, an API key, or none),
/// else of the document's. A scheme that needs a token (bearer, OAuth 2, OpenID Connect)
/// cannot be the token endpoint's own, so such alternatives are passed over; what was passed
/// over, and a document-wide requirement that applies, are said in `notes`.
fn required_scheme<'s>(
    spec: &'s Spec,
    op_pointer: &str,
    op: &'s OaOperation,
    notes: &mut Vec<SpecError>,
    errors: &mut SpecErrors,
) -> Option<(&'s String, &'s openapiv3::SecurityScheme)> {
    let (alternatives, at) = match &op.security {
        Some(own) => (own, pointer::join(op_pointer, "security")),
        None => (spec.api.security.as_ref()?, "/security".to_owned()),
    };
    let usable = |r: &&SecurityRequirement| !r.keys().any(|name| needs_a_token(spec, name));
    let Some(requirement) = alternatives.iter().find(usable) else {
        if op.security.is_some() {
            // Every alternative of its own needs a token: the first one's error says why.
            return scheme(spec, op_pointer, alternatives.first()?, errors);
        }
        let note = SpecError::new(
            &spec.file,
            &at,
            format!(
                "the document-wide security ({}) needs a token, so it does not apply to the token endpoints",
                describe(alternatives.iter())
            ),
        );
        if !alternatives.is_empty() && !notes.contains(&note) {
            notes.push(note);
        }
        return None;
    };
    let others = alternatives.iter().filter(|r| *r != requirement);
    if op.security.is_none() && !requirement.is_empty() {
        notes.push(
            SpecError::new(&spec.file, op_pointer, format!(
                "the token operation has no `security` of its own, so the document-wide {} applies to it",
                describe([requirement].into_iter())
            ))
            .hint("write `security: []` on the operation if its endpoint takes no such credential"),
        );
    } else if op.security.is_some() && others.clone().next().is_some() {
        notes.push(SpecError::new(
            &spec.file,
            &at,
            format!(
                "the client meets the requirement {} and ignores the other alternatives ({})",
                describe([requirement].into_iter()),
                describe(others)
            ),
        ));
    }
    scheme(spec, op_pointer, requirement, errors)
}

/// The one scheme `requirement` names, defined under components; `None` for no scheme.
fn scheme<'s>(
    spec: &'s Spec,
    op_pointer: &str,
    requirement: &'s SecurityRequirement,
    errors: &mut SpecErrors,
) -> Option<(&'s String, &'s openapiv3::SecurityScheme)> {
    let (name, _) = requirement.iter().next()?;
    if requirement.len() > 1 {
        errors.push(SpecError::new(
            &spec.file,
            &pointer::join(op_pointer, "security"),
            "a security requirement that combines several schemes is not supported",
        ));
        return None;
    }
    let at = pointer::join("/components/securitySchemes", name);
    let scheme = spec
        .api
        .components
        .as_ref()
        .and_then(|c| c.security_schemes.get(name));
    let scheme = match scheme {
        Some(ReferenceOr::Item(scheme)) => scheme,
        Some(ReferenceOr::Reference { .. }) => {
            errors.push(SpecError::new(
                &spec.file,
                &at,
                "a $ref security scheme is not supported",
            ));
            return None;
        }
        None => {
            errors.push(SpecError::new(
                &spec.file,
                &pointer::join(op_pointer, "security"),
                format!("security scheme {name:?} is not defined under components/securitySchemes"),
            ));
            return None;
        }
    };
    Some((name, scheme))
}

/// An RFC 9110 token: what a header name (and so a name the printer passes to
/// `HeaderName::from_static`) may be.
pub(super) fn is_http_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Where an API key goes, checked: a header or the query, under a valid name.
fn api_key(
    spec: &Spec,
    at: &str,
    location: &openapiv3::APIKeyLocation,
    name: &str,
    errors: &mut SpecErrors,
) -> Option<(Location, String)> {
    let location = match location {
        openapiv3::APIKeyLocation::Header => Location::Header,
        openapiv3::APIKeyLocation::Query => Location::Query,
        openapiv3::APIKeyLocation::Cookie => {
            errors.push(SpecError::new(
                &spec.file,
                at,
                "API keys in cookies are not supported",
            ));
            return None;
        }
    };
    if !is_http_token(name) {
        errors.push(SpecError::new(
            &spec.file,
            &pointer::join(at, "name"),
            format!("{name:?} is not a valid HTTP header or parameter name"),
        ));
        return None;
    }
    Some((location, name.to_owned()))
}

/// Whether the scheme `name` authenticates with a token (bearer, OAuth 2, OpenID Connect).
fn needs_a_token(spec: &Spec, name: &str) -> bool {
    let scheme = spec
        .api
        .components
        .as_ref()
        .and_then(|c| c.security_schemes.get(name));
    matches!(
        scheme,
        Some(ReferenceOr::Item(
            openapiv3::SecurityScheme::OAuth2 { .. }
                | openapiv3::SecurityScheme::OpenIDConnect { .. }
        ))
    ) || matches!(
        scheme,
        Some(ReferenceOr::Item(openapiv3::SecurityScheme::HTTP { scheme, .. }))
            if scheme.eq_ignore_ascii_case("bearer")
    )
}

/// Security requirements as a maintainer reads them: `"basic"`, `"a" + "b"`, `none`, joined by
/// `or`.
fn describe<'r>(requirements: impl Iterator<Item = &'r SecurityRequirement>) -> String {
    let one = |r: &SecurityRequirement| match r.is_empty() {
        true => "none".to_owned(),
        false => r
            .keys()
            .map(|k| format!("{k:?}"))
            .collect::<Vec<_>>()
            .join(" + "),
    };
    requirements.map(one).collect::<Vec<_>>().join(" or ")
}
