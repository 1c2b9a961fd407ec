//! The cases. Each takes a [`Subject`], reads what to expect from its spec, and returns `Err`
//! with a reason when the client does something else.

use crate::support::{
    Call, Ctx, Outcome, Subject, ensure, may_be_absent, put_at, quick_http, remove_at, seconds_at,
    set_at, text_at,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokenkit::{
    CodeExchange, ErrorKind, GrantType, HttpConfig, PasswordLogin, PkceVerifier, RefreshClient,
    RefreshError, RefreshToken, TokenSet, TransportKind,
};
use tokenkit_codegen::extension::{FailureKind, Rotation};
use tokenkit_mock::Reply;

mod answers;
mod bodies;
mod errors;
mod request;
mod secrets;
mod transport;

use errors::{kind_of, trip};

pub use answers::{empty_token, missing_refresh_token, success};
pub use bodies::{
    empty_body, malformed_body, oversized_declared_body, oversized_streamed_body, truncated_body,
    undocumented_status, wrong_content_type,
};
pub use errors::{documented_errors, every_rule_trips, failure_inside_success_status};
pub use request::{client_assertion, fresh_values, refresh_is_refused, request_conforms};
pub use secrets::no_secret_in_output;
pub use transport::{client_is_shareable, connection_reset, timeout};

const SENT: &str = "rt-conformance-sent";

fn sent() -> RefreshToken {
    RefreshToken::new(SENT)
}

/// The redirect URI of the cases' code exchanges.
pub const REDIRECT_URI: &str = "https://app.example/callback";

/// Makes the case's request once with `reply` queued: a refresh with `token`, or a grant whose
/// per-call secrets (code, PKCE verifier, password) carry `token`'s text.
async fn refresh_with(
    ctx: &Ctx,
    reply: Reply,
    token: &RefreshToken,
) -> Result<TokenSet, RefreshError> {
    ctx.mock.enqueue(reply);
    let unbuilt = RefreshError::Transport {
        kind: TransportKind::Request,
        maybe_sent: false,
    };
    let client = ctx.client(quick_http()).map_err(|_| unbuilt.clone())?;
    call(client.as_ref(), ctx.call(), token)
        .await
        .unwrap_or(Err(unbuilt))
}

/// Makes the case's request twice, answered with the success example each time (what a case
/// compares across requests: values made fresh per request).
async fn twice(ctx: &Ctx) -> Result<(), String> {
    let body = ctx.success_example()?;
    for _ in 0..2 {
        let reply = Reply::Json {
            status: ctx.success_status(),
            body: body.clone(),
        };
        refresh_with(ctx, reply, &sent())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The case's request on `client`; `None` when the client does not offer the grant.
async fn call(
    client: &dyn RefreshClient,
    call: Call,
    token: &RefreshToken,
) -> Option<Result<TokenSet, RefreshError>> {
    let grant = match call {
        Call::Refresh => return Some(client.refresh(token).await),
        Call::Grant(kind) => kind,
    };
    let grants = client.grants()?;
    let secret = token.expose();
    match grant {
        GrantType::ClientCredentials => Some(grants.client_credentials()?.await),
        GrantType::AuthorizationCode => {
            let exchange = CodeExchange {
                code: secret.into(),
                redirect_uri: REDIRECT_URI.into(),
                verifier: PkceVerifier::parse(&format!("{secret}-{}", "v".repeat(43))).ok(),
            };
            Some(grants.exchange_code(&exchange)?.await)
        }
        GrantType::Password => {
            let login = PasswordLogin {
                username: "user@example.com".into(),
                password: secret.into(),
            };
            Some(grants.password(&login)?.await)
        }
        GrantType::JwtBearer => Some(grants.jwt_bearer(&secret.into())?.await),
    }
}

fn expect_err(result: Result<TokenSet, RefreshError>, what: &str) -> Result<RefreshError, String> {
    match result {
        Ok(set) => Err(format!(
            "{what}: got a token set {set:?} instead of an error"
        )),
        Err(e) => Ok(e),
    }
}
