//! Stage 4, resolve: per token operation, what the document says of it, each schema made a
//! type. Input: [`Located`]; output: [`Resolution`]: the servers and their variables, each
//! operation's parameters, client authentication, request body and responses, the types
//! (`TypeBuilder`) and the per-client values they need.

mod auth;
mod body;
mod params;
mod responses;
mod servers;

pub(crate) use body::BodyParts;

use crate::error::{SpecError, SpecErrors};
use crate::extension::{TokenGrant, TokenRefresh, TokenRevoke};
use crate::locate::{Found, Located, TokenExtension};
use crate::model::{Auth, ConfigField, Param, RefreshPlace, ResponseCase, Server, ServerVariable};
use crate::read::Spec;
use crate::types::TypeBuilder;

/// What belongs to the whole client rather than to one operation, handed on by every later
/// stage: the later ones mark secrets in the types and add per-client values.
pub(crate) struct Common<'s> {
    /// The document.
    pub(crate) spec: &'s Spec,
    /// `servers`, checked.
    pub(crate) servers: Vec<Server>,
    /// The first server's variables.
    pub(crate) server_variables: Vec<ServerVariable>,
    /// The hosts the first server's URL may name once filled.
    pub(crate) host_patterns: Vec<String>,
    /// The types made so far.
    pub(crate) types: TypeBuilder<'s>,
    /// The per-client values found so far.
    pub(crate) config: Vec<ConfigField>,
    /// What a maintainer should know that is not an error (a requirement passed over).
    pub(crate) notes: Vec<SpecError>,
}

/// The token operations, resolved.
pub(crate) struct Resolution<'s> {
    /// What belongs to the whole client.
    pub(crate) common: Common<'s>,
    /// The refresh operation, if the spec has one and it resolved.
    pub(crate) refresh: Option<ResolvedOp<'s, TokenRefresh>>,
    /// The spec has a refresh operation that did not come this far.
    pub(crate) refresh_lost: bool,
    /// The grant operations that resolved.
    pub(crate) grants: Vec<ResolvedOp<'s, TokenGrant>>,
    /// The revocation operation, if the spec maps one and it resolved.
    pub(crate) revocation: Option<ResolvedOp<'s, TokenRevoke>>,
}

/// One token operation, resolved.
pub(crate) struct ResolvedOp<'s, E> {
    /// Where it is, and its extension.
    pub(crate) found: Found<'s, E>,
    /// Its header, query and path parameters.
    pub(crate) params: Vec<Param>,
    /// Its client authentication, by security scheme.
    pub(crate) auth: Option<Auth>,
    /// Its request body; `None` when it has none.
    pub(crate) body: Option<BodyParts>,
    /// Its documented responses.
    pub(crate) responses: Vec<ResponseCase>,
}

/// Every located operation resolved, with the servers.
pub(crate) fn resolve<'s>(located: Located<'s>, errors: &mut SpecErrors) -> Resolution<'s> {
    let Located {
        spec,
        refresh,
        refresh_lost,
        grants,
        revocation,
    } = located;
    let components = spec.api.components.as_ref().map(|c| &c.schemas);
    let mut types = TypeBuilder::new(&spec.file, components);
    // The names the printer uses for its own items; schemas named so get another name.
    types.reserve_names(&["Client", "ClientBuilder"]);
    let mut config = Vec::new();
    let servers = servers::servers(spec, errors);
    let server_variables = servers::server_variables(spec, &mut types, &mut config, errors);
    let host_patterns = servers::host_patterns(spec, &server_variables, errors);
    let had_refresh = refresh.is_some();
    let mut notes = Vec::new();
    let refresh = refresh
        .and_then(|found| operation(spec, found, &mut types, &mut config, &mut notes, errors));
    let grants = grants
        .into_iter()
        .filter_map(|found| operation(spec, found, &mut types, &mut config, &mut notes, errors))
        .collect();
    let revocation = revocation
        .and_then(|found| operation(spec, found, &mut types, &mut config, &mut notes, errors));
    Resolution {
        revocation,
        refresh_lost: refresh_lost || (had_refresh && refresh.is_none()),
        refresh,
        grants,
        common: Common {
            spec,
            servers,
            server_variables,
            host_patterns,
            types,
            config,
            notes,
        },
    }
}

/// What every token operation is made of, whatever it serves: its parameters (knowing where
/// the refresh token goes, for the refresh operation), its path, its client authentication, its
/// body and its responses. `None` when its body could not be read.
fn operation<'s, E: TokenExtension>(
    spec: &Spec,
    found: Found<'s, E>,
    types: &mut TypeBuilder<'_>,
    config: &mut Vec<ConfigField>,
    notes: &mut Vec<SpecError>,
    errors: &mut SpecErrors,
) -> Option<ResolvedOp<'s, E>> {
    let place = found.ext.place();
    let (values, generate) = found.ext.values();
    let fixed = params::Fixed {
        at: found.request_at(),
        values,
        generate,
    };
    let params = params::Reader {
        spec,
        op_pointer: &found.pointer,
        place: place.as_ref(),
        fixed: &fixed,
        types,
        config,
        errors,
    }
    .params(found.op);
    params::check_path(spec, &found.pointer, &found.path, &params, errors);
    let auth = auth::auth(spec, &found.pointer, found.op, config, notes, errors);
    let in_body = matches!(place, Some(RefreshPlace::Body { .. }));
    let body = body::request_body(
        spec,
        &found.pointer,
        found.op,
        &found.name,
        in_body,
        types,
        errors,
    );
    let responses =
        responses::responses(spec, &found.pointer, found.op, &found.name, types, errors);
    Some(ResolvedOp {
        body: body?,
        found,
        params,
        auth,
        responses,
    })
}
