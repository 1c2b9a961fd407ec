//! Client authentication: the security scheme the operation requires.

use crate::error::{SpecError, SpecErrors};
use crate::model::{Auth, ConfigField, Location, made_up_example, push_config};
use crate::pointer;
use crate::read::Spec;
use crate::types::Ty;
use openapiv3::{Operation as OaOperation, ReferenceOr};

/// The client authentication of the operation's first security requirement (or the spec's).
pub(super) fn auth(
    spec: &Spec,
    op_pointer: &str,
    op: &OaOperation,
    config: &mut Vec<ConfigField>,
    errors: &mut SpecErrors,
) -> Option<Auth> {
    let (name, scheme) = required_scheme(spec, op_pointer, op, errors)?;
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

/// The security scheme the operation's first requirement (or the spec's) names, with its name.
fn required_scheme<'s>(
    spec: &'s Spec,
    op_pointer: &str,
    op: &'s OaOperation,
    errors: &mut SpecErrors,
) -> Option<(&'s String, &'s openapiv3::SecurityScheme)> {
    // A document-wide requirement is for the API the document describes: a scheme that
    // needs a token (bearer, OAuth 2, OpenID Connect) cannot be the token endpoint's, so the
    // first alternative that can (or none) applies. An operation's own is taken as written.
    let requirement = match &op.security {
        Some(own) => own.first()?,
        None => spec
            .api
            .security
            .as_ref()?
            .iter()
            .find(|r| !r.keys().all(|name| needs_a_token(spec, name)))?,
    };
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
