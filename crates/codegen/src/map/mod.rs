//! Stage 5, map: each operation's token mapping checked against its resolved types: the
//! answers (success and failure pointers, rules, kinds, lifetimes) and the requests (where the
//! refresh token goes, each grant's per-call, fixed and generated values, the client
//! assertion). Input: [`Resolution`]; output: [`Mapping`].

mod answers;
mod refresh;
mod requests;

pub(crate) use refresh::RefreshRules;
pub(crate) use requests::RequestPlan;

use crate::error::{SpecError, SpecErrors};
use crate::extension::{TokenGrant, TokenRefresh, TokenRevoke};
use crate::locate::{Found, TokenExtension};
use crate::model::{Failure, ResponseCase, Success};
use crate::pointer;
use crate::resolve::{Common, Resolution, ResolvedOp};
use crate::types::TypeBuilder;
use openapiv3::Operation as OaOperation;

/// The token operations, their mappings checked.
pub(crate) struct Mapping<'s> {
    /// What belongs to the whole client.
    pub(crate) common: Common<'s>,
    /// The refresh operation, if the spec has one and its mapping holds.
    pub(crate) refresh: Option<MappedRefresh<'s>>,
    /// The spec has a refresh operation that did not come this far.
    pub(crate) refresh_lost: bool,
    /// The grant operations whose mappings hold.
    pub(crate) grants: Vec<MappedOp<'s, TokenGrant>>,
    /// The revocation operation, if its mapping holds, with its request.
    pub(crate) revocation: Option<(ResolvedOp<'s, TokenRevoke>, RequestPlan)>,
}

/// One token operation with its mapping checked.
pub(crate) struct MappedOp<'s, E> {
    /// The operation, resolved.
    pub(crate) op: ResolvedOp<'s, E>,
    /// Where the tokens are in the success response.
    pub(crate) success: Success,
    /// What each documented failure means.
    pub(crate) failures: Vec<Failure>,
    /// The requests the operation sends, before their fields are filled: for the refresh
    /// operation the refresh's own first, then each grant it also serves.
    pub(crate) requests: Vec<RequestPlan>,
    /// The body property that carries a signed client assertion (`private_key_jwt`).
    pub(crate) assertion: Option<String>,
}

/// The refresh operation with its mapping checked, and what only the refresh has.
pub(crate) struct MappedRefresh<'s> {
    /// The operation.
    pub(crate) op: MappedOp<'s, TokenRefresh>,
    /// Rotation, reuse grace, where the token goes.
    pub(crate) rules: RefreshRules,
}

/// Every resolved operation's mapping, checked.
pub(crate) fn map<'s>(resolution: Resolution<'s>, errors: &mut SpecErrors) -> Mapping<'s> {
    let Resolution {
        mut common,
        refresh,
        refresh_lost,
        grants,
        revocation,
    } = resolution;
    let file = common.spec.file.as_str();
    let had_refresh = refresh.is_some();
    let refresh = refresh.and_then(|op| refresh::map(file, op, &mut common.types, errors));
    let grants = grants
        .into_iter()
        .filter_map(|op| grant(file, op, &mut common.types, errors))
        .collect();
    let revocation = revocation.and_then(|op| revoke(file, op, &mut common.types, errors));
    Mapping {
        revocation,
        refresh_lost: refresh_lost || (had_refresh && refresh.is_none()),
        refresh,
        grants,
        common,
    }
}

/// A grant operation's mapping: its answers and its one request.
fn grant<'s>(
    file: &str,
    op: ResolvedOp<'s, TokenGrant>,
    types: &mut TypeBuilder<'_>,
    errors: &mut SpecErrors,
) -> Option<MappedOp<'s, TokenGrant>> {
    let ext = &op.found.ext;
    let ctx = MapCtx::new(file, &op.found, &op.responses);
    let answers = ctx.answers(types, &ext.success, &ext.failures, errors);
    let plan = requests::plan(
        file,
        &op.found.request_at(),
        types,
        op.body.as_ref().map(|b| &b.ty),
        ext.grant,
        &ext.request,
        errors,
    );
    let (Some((success, failures)), Some(plan)) = (answers, plan) else {
        return None;
    };
    let mut requests = vec![plan];
    let assertion = ext.client_assertion.as_deref().and_then(|ptr| {
        let at = pointer::join(&ctx.at, "client-assertion");
        requests::client_assertion(file, &at, types, &mut requests, ptr, errors)
    });
    Some(MappedOp {
        op,
        success,
        failures,
        requests,
        assertion,
    })
}

/// The revocation operation's mapping: its request, and a documented success (RFC 7009
/// answers 200, for a token it never issued too).
fn revoke<'s>(
    file: &str,
    op: ResolvedOp<'s, TokenRevoke>,
    types: &mut TypeBuilder<'_>,
    errors: &mut SpecErrors,
) -> Option<(ResolvedOp<'s, TokenRevoke>, RequestPlan)> {
    let at = op.found.ext_at();
    if !op.responses.iter().any(|r| (200..300).contains(&r.status)) {
        errors.push(
            SpecError::new(
                file,
                &pointer::join(&op.found.pointer, "responses"),
                "the revocation operation documents no success (2xx) answer",
            )
            .hint("RFC 7009 answers 200 with an empty body"),
        );
        return None;
    }
    let body_ty = op.body.as_ref().map(|b| &b.ty);
    let plan = requests::revocation(file, &at, types, body_ty, &op.found.ext, errors)?;
    Some((op, plan))
}

/// Shared state while the mapping is checked.
struct MapCtx<'a> {
    file: &'a str,
    at: String,
    responses: &'a [ResponseCase],
    /// Every status key the spec documents, modelled or not.
    documented: Vec<String>,
    /// The request mapping's key for the token the refresh sends (`refresh-token`, or
    /// `access-token`), for errors.
    token_key: &'static str,
}

impl<'a> MapCtx<'a> {
    /// The context of `found`'s extension.
    fn new<E: TokenExtension>(
        file: &'a str,
        found: &Found<'_, E>,
        responses: &'a [ResponseCase],
    ) -> Self {
        MapCtx {
            file,
            at: found.ext_at(),
            responses,
            documented: documented(found.op),
            token_key: "refresh-token",
        }
    }

    fn error(&self, rel: &str, message: impl Into<String>) -> SpecError {
        SpecError::new(self.file, &format!("{}{rel}", self.at), message)
    }
}

/// Every status key an operation documents, modelled or not.
fn documented(op: &OaOperation) -> Vec<String> {
    op.responses
        .responses
        .keys()
        .map(ToString::to_string)
        .chain(op.responses.default.as_ref().map(|_| "default".to_owned()))
        .collect()
}
