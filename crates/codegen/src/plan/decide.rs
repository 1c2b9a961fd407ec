//! The decisions the printer would otherwise make, and the per-client values' names.

use crate::error::{SpecError, SpecErrors};
use crate::model::{ConfigField, FillSource, Provider};
use crate::types::{Def, Ty};

/// The decisions the printer would otherwise make: which fields are sensitive, which
/// per-client values the client keeps and which are `Copy`, and the authorization URL's client
/// id.
pub(super) fn decide(provider: &mut Provider) {
    let mut sensitive: Vec<String> = provider
        .types
        .values()
        .filter_map(|t| match &t.def {
            Def::Struct { fields, .. } => Some(fields),
            _ => None,
        })
        .flatten()
        .filter(|f| f.ty == Ty::Secret)
        .map(|f| f.json.clone())
        .collect();
    sensitive.sort_unstable();
    sensitive.dedup();
    provider.sensitive_fields = sensitive;
    provider.oauth.client_id = provider.oauth.authorization_url.as_ref().and_then(|_| {
        provider
            .config
            .iter()
            .position(|c| c.name == "client_id" && c.required && c.ty == Ty::String)
    });
    let in_bodies: Vec<usize> = provider
        .operations
        .iter()
        .filter_map(|op| op.operation.body.as_ref())
        .flat_map(|b| &b.fill)
        .chain(provider.all_grants().flat_map(|g| &g.fill))
        // A revocation body sends them too (a spec whose token operation takes them elsewhere).
        .chain(provider.revocation.iter().flat_map(|r| &r.fill))
        .filter_map(|f| match f.source {
            FillSource::Config(i) => Some(i),
            _ => None,
        })
        .chain(provider.oauth.client_id)
        // The authorization URL fills its placeholders from the client's values.
        .chain(
            provider
                .server_variables
                .iter()
                .filter(|_| {
                    provider
                        .oauth
                        .authorization_url
                        .as_deref()
                        .is_some_and(|url| url.contains('{'))
                })
                .map(|v| v.field),
        )
        .collect();
    let types = &provider.types;
    for (i, field) in provider.config.iter_mut().enumerate() {
        field.kept = in_bodies.contains(&i);
        field.copy = match &field.ty {
            Ty::Bool | Ty::I32 | Ty::I64 | Ty::F64 => true,
            Ty::Named(name) => matches!(types.get(name).map(|t| &t.def), Some(Def::Enum { .. })),
            _ => false,
        };
    }
}

pub(super) fn check_config_names(
    file: &str,
    op_pointer: &str,
    config: &[ConfigField],
    errors: &mut SpecErrors,
) {
    let reserved = ["base_url", "http_config", "http_client", "build", "builder"];
    for (i, field) in config.iter().enumerate() {
        if config[..i].iter().any(|f| f.name == field.name)
            || reserved.contains(&field.name.as_str())
        {
            errors.push(
                SpecError::new(file, op_pointer, format!("two per-client values, or a value and a builder method, would both be named `{}`", field.name))
                    .hint("rename the parameter or the body property"),
            );
        }
    }
}
