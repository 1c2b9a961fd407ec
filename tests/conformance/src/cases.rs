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

/// Case 1: Each success example becomes exactly its token set.
pub async fn success(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let examples = ctx.success_examples();
    ensure(!examples.is_empty(), || {
        "the spec documents no success example".into()
    })?;
    let success = &ctx.operation().success;
    let keeps_sent = ctx.rotation() == Some(Rotation::Optional);
    for (name, body) in examples {
        let new_refresh = success
            .refresh_token
            .as_ref()
            .and_then(|m| text_at(&body, &m.pointer));
        // What the set's refresh token must be: the example's; else, for a refresh, the one
        // sent where the rotation keeps it, or an error where it does not; for a grant, none.
        let refresh = match (ctx.call(), new_refresh) {
            (_, Some(new)) => Some(new),
            // A provider that refreshes with the access token has no refresh token at all.
            (Call::Refresh, None) if ctx.sends_access_token() => None,
            (Call::Refresh, None) if keeps_sent => Some(SENT.to_owned()),
            (Call::Refresh, None) => {
                let result = refresh_with(
                    &ctx,
                    Reply::Json {
                        status: success.status,
                        body: body.clone(),
                    },
                    &sent(),
                )
                .await;
                let err = expect_err(result, &format!("example {name:?} without a refresh token"))?;
                ensure(err.kind() == ErrorKind::BadResponse, || {
                    format!(
                        "example {name:?} (a refresh answer without a new refresh token, one-time or rotating): {err:?}"
                    )
                })?;
                continue;
            }
            (Call::Grant(_), None) => None,
        };
        let before = SystemTime::now();
        let set = refresh_with(
            &ctx,
            Reply::Json {
                status: success.status,
                body: body.clone(),
            },
            &sent(),
        )
        .await
        .map_err(|e| format!("example {name:?}: {e}"))?;
        let after = SystemTime::now();
        let access = text_at(&body, &success.access_token.pointer);
        ensure(access.as_deref() == Some(set.access_token.expose()), || {
            format!("example {name:?}: the access token is not the example's")
        })?;
        ensure(
            set.refresh_token.as_ref().map(RefreshToken::expose) == refresh.as_deref(),
            || {
                format!(
                    "example {name:?}: the refresh token is not the example's (or the one sent, or none for a grant)"
                )
            },
        )?;
        let token_type = success
            .token_type
            .as_ref()
            .and_then(|m| text_at(&body, &m.pointer));
        ensure(set.token_type == token_type, || {
            format!(
                "example {name:?}: token type {:?}, expected {token_type:?}",
                set.token_type
            )
        })?;
        let expires_in = success
            .expires_in
            .as_ref()
            .and_then(|m| seconds_at(&body, &m.pointer));
        let created_at = success
            .created_at
            .as_ref()
            .and_then(|m| seconds_at(&body, &m.pointer));
        let absolute = instant_at(&body, success.expires_at.as_ref());
        match expires_in {
            _ if absolute.is_some() => ensure(set.expires_at == absolute, || {
                format!(
                    "example {name:?}: expiry {:?}, expected the absolute {absolute:?}",
                    set.expires_at
                )
            })?,
            Some(e) => {
                let earliest = tokenkit::expiry_from(e, created_at, before);
                let latest = tokenkit::expiry_from(e, created_at, after);
                let fits = matches!((set.expires_at, earliest, latest), (Some(at), Some(lo), Some(hi)) if lo <= at && at <= hi);
                ensure(fits, || {
                    format!(
                        "example {name:?}: expiry {:?} is not expires_in {e} from the response",
                        set.expires_at
                    )
                })?;
                let years = Duration::from_secs(2 * 365 * 24 * 3600);
                ensure(set.expires_at.is_some_and(|at| at < after + years), || {
                    format!("example {name:?}: the expiry lies years away")
                })?;
            }
            // The documented lifetime, for an answer that gives none.
            None if success.lifetime.is_some() => {
                let lifetime = Duration::from_secs(success.lifetime.unwrap_or_default());
                let fits = set
                    .expires_at
                    .is_some_and(|at| before + lifetime <= at && at <= after + lifetime);
                ensure(fits, || {
                    format!(
                        "example {name:?}: expiry {:?} is not the documented lifetime {lifetime:?} from the response",
                        set.expires_at
                    )
                })?
            }
            None => ensure(set.expires_at.is_none(), || {
                format!("example {name:?}: an expiry from nowhere")
            })?,
        }
        let refresh_at = instant_at(&body, success.refresh_expires_at.as_ref());
        let refresh_in = success
            .refresh_expires_in
            .as_ref()
            .and_then(|m| seconds_at(&body, &m.pointer));
        // The range the stated expiry may fall in (a relative one depends on receipt), then
        // no later than receipt plus the spec's idle lifetime.
        let stated = match (refresh_at, refresh_in) {
            (Some(at), _) => Some((at, at)),
            (None, Some(e)) => {
                tokenkit::expiry_from(e, None, before).zip(tokenkit::expiry_from(e, None, after))
            }
            (None, None) => None,
        };
        let idle = success.refresh_idle_lifetime.map(|secs| {
            (
                before + Duration::from_secs(secs),
                after + Duration::from_secs(secs),
            )
        });
        let range = match (stated, idle) {
            (Some((lo, hi)), Some((ilo, ihi))) => Some((lo.min(ilo), hi.min(ihi))),
            (a, b) => a.or(b),
        };
        let fits = match range {
            Some((lo, hi)) => set
                .refresh_expires_at
                .is_some_and(|at| lo <= at && at <= hi),
            None => set.refresh_expires_at.is_none(),
        };
        ensure(fits, || {
            format!(
                "example {name:?}: refresh token expiry {:?} is not the response's",
                set.refresh_expires_at
            )
        })?;
    }
    Ok(())
}

/// The absolute time a mapped `expires-at`-like pointer gives in `body`, as the runtime reads
/// it.
fn instant_at(
    body: &Value,
    mapped: Option<&(
        tokenkit_codegen::model::Mapped,
        Option<tokenkit_codegen::extension::TimeFormat>,
    )>,
) -> Option<SystemTime> {
    use tokenkit_codegen::extension::TimeFormat as Spec;
    let (m, format) = mapped?;
    let format = match format {
        None => tokenkit::TimeFormat::Auto,
        Some(Spec::Seconds) => tokenkit::TimeFormat::Seconds,
        Some(Spec::Milliseconds) => tokenkit::TimeFormat::Milliseconds,
        Some(Spec::DateTime) => tokenkit::TimeFormat::DateTime,
    };
    tokenkit::instant_from(body.pointer(&m.pointer)?, format)
}

/// Case 2: The request breaks no rule of the spec and carries the refresh token it was given.
pub async fn request_conforms(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let refreshed = refresh_with(
        &ctx,
        Reply::Example {
            status: ctx.success_status(),
            name: None,
        },
        &sent(),
    )
    .await;
    // The violations first: a strict mock answers a broken request with 422.
    let violations = ctx.mock.violations();
    ensure(violations.is_empty(), || {
        format!("the request breaks the spec: {violations:?}")
    })?;
    refreshed.map_err(|e| e.to_string())?;
    let requests = ctx.mock.requests();
    ensure(requests.len() == 1, || {
        format!("{} requests for one refresh", requests.len())
    })?;
    let request = &requests[0].request;
    let carried = tokenkit_mock::presented_token(&ctx.provider, request);
    let Call::Grant(kind) = ctx.call() else {
        return ensure(carried.as_deref() == Some(SENT), || {
            format!(
                "the request does not carry the refresh token at {:?}",
                ctx.provider.refresh.as_ref().map(|r| &r.place)
            )
        });
    };
    ensure(carried.is_none(), || {
        "a grant request carries a refresh token".into()
    })?;
    let hit = tokenkit_mock::operation_for(&ctx.provider, request);
    let expected = &ctx.operation().operation;
    ensure(std::ptr::eq(&hit.operation, expected), || {
        format!(
            "the {kind:?} grant went to {} {}, not {} {}",
            hit.operation.method, hit.operation.path, expected.method, expected.path
        )
    })?;
    let body = tokenkit_mock::body_json(&ctx.provider, request);
    if hit.is_refresh() {
        // Grants sharing the refresh operation are told apart by their bodies.
        let found = ctx.provider.grant_of(body.as_ref()).map(|g| g.kind);
        ensure(found.map(grant_type) == Some(kind), || {
            format!("the request is not a {kind:?} grant by its spec's mapping: {found:?}")
        })?;
    }
    // Each value the call supplied is where the mapping puts it.
    let grant = ctx
        .provider
        .all_grants()
        .find(|g| grant_type(g.kind) == kind)
        .ok_or("the spec maps no such grant")?;
    for fill in &grant.fill {
        use tokenkit_codegen::model::{FillSource, GrantArg};
        let FillSource::Arg(arg) = fill.source else {
            continue;
        };
        let got = body
            .as_ref()
            .and_then(|b| b.get(&fill.json))
            .and_then(Value::as_str);
        let expected = match arg {
            GrantArg::Code | GrantArg::Password | GrantArg::Assertion => SENT.to_owned(),
            GrantArg::RedirectUri => REDIRECT_URI.to_owned(),
            GrantArg::CodeVerifier => format!("{SENT}-{}", "v".repeat(43)),
            GrantArg::Username => "user@example.com".to_owned(),
        };
        ensure(got == Some(expected.as_str()), || {
            format!(
                "{:?} carries {got:?}, expected the call's {arg:?}",
                fill.json
            )
        })?;
    }
    Ok(())
}

/// The runtime's name of a spec's grant.
fn grant_type(kind: tokenkit_codegen::extension::GrantKind) -> GrantType {
    use tokenkit_codegen::extension::GrantKind;
    match kind {
        GrantKind::ClientCredentials => GrantType::ClientCredentials,
        GrantKind::AuthorizationCode => GrantType::AuthorizationCode,
        GrantKind::Password => GrantType::Password,
        GrantKind::JwtBearer => GrantType::JwtBearer,
    }
}

fn kind_of(kind: FailureKind) -> ErrorKind {
    match kind {
        FailureKind::InvalidGrant => ErrorKind::ReAuthenticate,
        FailureKind::Rejected => ErrorKind::Rejected,
        FailureKind::Transient => ErrorKind::RetryLater,
    }
}

/// Whether an error of `kind` from `failure` proves the request unprocessed: a refusal always,
/// a dead token never, a transient failure as the spec's `unprocessed` says, else by its status
/// (RFC 9110: 408, 425, 429; not 503, which proxies answer after forwarding).
fn expected_unprocessed(failure: &tokenkit_codegen::model::Failure, kind: FailureKind) -> bool {
    match kind {
        FailureKind::Rejected => true,
        FailureKind::InvalidGrant => false,
        FailureKind::Transient => failure
            .unprocessed
            .unwrap_or(matches!(failure.status, 408 | 425 | 429)),
    }
}

/// Checks what `err` says about the request against the mapping (a one-time token may be sent
/// again only after an answer that proves it unspent).
fn check_unprocessed(
    what: &str,
    err: &tokenkit::RefreshError,
    failure: &tokenkit_codegen::model::Failure,
    expected: FailureKind,
) -> Outcome {
    let want = expected_unprocessed(failure, expected);
    ensure(err.proves_unprocessed() == want, || {
        format!(
            "{what}: proves_unprocessed() is {}, the mapping says {want}",
            err.proves_unprocessed()
        )
    })
}

/// Case 3: Every documented error maps to the kind its mapping declares, keeping code and message.
pub async fn documented_errors(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let mut checked = 0;
    for failure in &ctx.operation().failures {
        let mut bodies: Vec<(String, Option<Value>)> = ctx
            .examples(failure.status)
            .into_iter()
            .filter(|(_, body)| failure.when.as_ref().is_none_or(|w| w.matches(body)))
            .map(|(name, body)| (name, Some(body)))
            .collect();
        let has_body = ctx
            .operation()
            .operation
            .responses
            .iter()
            .any(|r| r.status == failure.status && r.body.is_some());
        if bodies.is_empty() {
            ensure(!has_body, || {
                format!(
                    "status {} documents a body but no example of it",
                    failure.status
                )
            })?;
            bodies.push(("no body".into(), None));
        }
        for (name, body) in bodies {
            let reply = match &body {
                Some(b) => Reply::Json {
                    status: failure.status,
                    body: b.clone(),
                },
                None => Reply::Raw {
                    status: failure.status,
                    content_type: None,
                    body: Vec::new(),
                },
            };
            let err = expect_err(
                refresh_with(&ctx, reply, &sent()).await,
                &format!("{} {name:?}", failure.status),
            )?;
            let body = body.unwrap_or(Value::Null);
            let code = failure
                .code
                .as_ref()
                .and_then(|m| text_at(&body, &m.pointer));
            let message = failure
                .message
                .as_ref()
                .and_then(|m| text_at(&body, &m.pointer));
            let expected = failure
                .kinds
                .iter()
                .find(|(c, _)| Some(c) == code.as_ref())
                .map_or(failure.kind, |(_, k)| *k);
            let what = format!("{} example {name:?}", failure.status);
            ensure(err.kind() == kind_of(expected), || {
                format!("{what}: {:?}, expected {:?}", err.kind(), kind_of(expected))
            })?;
            check_unprocessed(&what, &err, failure, expected)?;
            ensure(err.status() == Some(failure.status), || {
                format!("{what}: status {:?}", err.status())
            })?;
            let provider = err.provider_error().cloned().unwrap_or_default();
            ensure(provider.code == code && provider.message == message, || {
                format!(
                    "{what}: provider error {provider:?}, expected code {code:?} message {message:?}"
                )
            })?;
            checked += 1;
        }
    }
    ensure(checked > 0 || ctx.operation().failures.is_empty(), || {
        "no documented error was exercised".into()
    })
}

/// Case 4: A failure inside a success status (an envelope's `success: false`) is an error, never a
/// token set; so is a success body without an access token.
pub async fn failure_inside_success_status(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let status = ctx.success_status();
    let example = ctx.success_example()?;
    for failure in ctx
        .operation()
        .failures
        .iter()
        .filter(|f| f.status == status)
    {
        let Some(when) = &failure.when else {
            continue;
        };
        let tripped = trip(&ctx, &example, failure, when);
        ensure(!tripped.is_empty(), || {
            format!(
                "no body could be made that trips the rule at {}",
                when.mapped.pointer
            )
        })?;
        for body in tripped {
            let expected = expected_kind(failure, &body);
            let err = expect_err(
                refresh_with(&ctx, Reply::Json { status, body }, &sent()).await,
                "a success body flagged as failed",
            )?;
            ensure(err.kind() == kind_of(expected), || {
                format!(
                    "flagged failure: {:?}, expected {:?}",
                    err.kind(),
                    kind_of(expected)
                )
            })?;
        }
    }
    let mut body = example;
    let pointer = &ctx.operation().success.access_token.pointer;
    ensure(remove_at(&mut body, pointer), || {
        format!("the success example has no {pointer}")
    })?;
    let err = expect_err(
        refresh_with(&ctx, Reply::Json { status, body }, &sent()).await,
        "a success body without an access token",
    )?;
    ensure(err.kind() == ErrorKind::BadResponse, || {
        format!("no access token: {:?}", err.kind())
    })
}

/// Case 5a: A status the spec does not document keeps the status and a snippet; where the
/// spec has a `default` response, that response's mapping applies instead.
pub async fn undocumented_status(subject: &Subject) -> Outcome {
    use tokenkit_codegen::model::StatusKey;
    let ctx = Ctx::start(subject).await?;
    let keys: Vec<StatusKey> = ctx
        .operation()
        .operation
        .responses
        .iter()
        .map(|r| r.key)
        .collect();
    let status = [418, 422, 499, 503, 599, 302, 207]
        .into_iter()
        .find(|s| {
            !keys
                .iter()
                .any(|k| *k != StatusKey::Default && k.covers(*s))
        })
        .ok_or("the spec documents every status class; nothing is left undocumented")?;
    let default = ctx
        .operation()
        .failures
        .iter()
        .find(|f| f.key == StatusKey::Default);
    let body = match default {
        Some(f) => serde_json::to_vec(
            &ctx.examples(f.status)
                .into_iter()
                .next()
                .map_or(Value::Null, |(_, b)| b),
        )
        .map_err(|e| e.to_string())?,
        None => br#"{"error":"teapot"}"#.to_vec(),
    };
    let reply = Reply::Raw {
        status,
        content_type: Some("application/json".into()),
        body,
    };
    let err = expect_err(
        refresh_with(&ctx, reply, &sent()).await,
        &status.to_string(),
    )?;
    match (&err, default) {
        (
            RefreshError::UnexpectedStatus {
                status: s, body, ..
            },
            None,
        ) if *s == status && body.as_str().contains("teapot") => Ok(()),
        (other, Some(failure)) => ensure(
            other.status() == Some(status) && other.kind() == kind_of(failure.kind),
            || format!("{status} under `default`: {other:?}"),
        ),
        (other, None) => Err(format!("{status}: {other:?}")),
    }
}

async fn bad_success_body(
    subject: &Subject,
    content_type: Option<&str>,
    body: &[u8],
    what: &str,
) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let status = ctx.success_status();
    let reply = Reply::Raw {
        status,
        content_type: content_type.map(str::to_owned),
        body: body.to_vec(),
    };
    let err = expect_err(refresh_with(&ctx, reply, &sent()).await, what)?;
    match &err {
        RefreshError::InvalidBody { status: s, .. } if *s == status => Ok(()),
        other => Err(format!(
            "{what}: {other:?}, expected InvalidBody with status {status}"
        )),
    }
}

/// Case 5b: Malformed JSON in the success status.
pub async fn malformed_body(subject: &Subject) -> Outcome {
    bad_success_body(
        subject,
        Some("application/json"),
        br#"{"access_token": "#,
        "malformed JSON",
    )
    .await
}

/// Case 5c: An empty success body.
pub async fn empty_body(subject: &Subject) -> Outcome {
    bad_success_body(subject, Some("application/json"), b"", "an empty body").await
}

/// Case 5d: The success example, cut off mid-body.
pub async fn truncated_body(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let status = ctx.success_status();
    let body = serde_json::to_vec(&ctx.success_example()?).map_err(|e| e.to_string())?;
    let err = expect_err(
        refresh_with(&ctx, Reply::Truncated { status, body }, &sent()).await,
        "a truncated body",
    )?;
    ensure(
        err.status() == Some(status) && err.kind() == ErrorKind::BadResponse,
        || format!("truncated body: {err:?}"),
    )
}

/// Case 5e: The success example labelled as HTML.
pub async fn wrong_content_type(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let body = serde_json::to_vec(&ctx.success_example()?).map_err(|e| e.to_string())?;
    drop(ctx);
    bad_success_body(subject, Some("text/html"), &body, "a text/html body").await
}

/// Case 6a: A body that declares more than the cap is refused before it is read.
pub async fn oversized_declared_body(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let status = ctx.success_status();
    let reply = Reply::Endless {
        status,
        bytes: 64 << 20,
        declare_length: true,
    };
    let err = expect_err(refresh_with(&ctx, reply, &sent()).await, "a 64 MiB body")?;
    ensure(matches!(err, RefreshError::BodyTooLarge { .. }), || {
        format!("64 MiB declared: {err:?}")
    })
}

/// Case 6b: A chunked body with no declared length: reading stops at the cap.
pub async fn oversized_streamed_body(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let status = ctx.success_status();
    let offered = 256 << 20;
    let reply = Reply::Endless {
        status,
        bytes: offered,
        declare_length: false,
    };
    let err = expect_err(
        refresh_with(&ctx, reply, &sent()).await,
        "a 256 MiB chunked body",
    )?;
    ensure(
        matches!(err, RefreshError::BodyTooLarge { limit, .. } if limit == HttpConfig::default().max_body),
        || format!("256 MiB streamed: {err:?}"),
    )?;
    // Whatever the kernel buffers aside, the client stopped reading near its cap.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let streamed = ctx.mock.bytes_streamed();
    ensure(streamed < 32 << 20, || {
        format!("the client let the server send {streamed} bytes")
    })
}

/// Case 7a: A server that never answers: a timeout error within the configured timeout.
pub async fn timeout(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    ctx.mock.enqueue(Reply::Silent);
    let http = HttpConfig {
        timeout: Duration::from_millis(300),
        ..quick_http()
    };
    let client = ctx.client(http)?;
    let started = Instant::now();
    let result = call(client.as_ref(), ctx.call(), &sent())
        .await
        .ok_or("the client does not offer the grant")?;
    let err = expect_err(result, "a silent server")?;
    let took = started.elapsed();
    ensure(
        matches!(
            err,
            RefreshError::Transport {
                kind: TransportKind::Timeout,
                maybe_sent: true
            }
        ),
        || format!("silent server: {err:?}"),
    )?;
    ensure(err.is_retryable(), || "a timeout must be retryable".into())?;
    ensure(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        || format!("timed out after {took:?}, configured 300 ms"),
    )
}

/// Case 7b: A connection closed without an answer: a retryable transport error.
pub async fn connection_reset(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let err = expect_err(
        refresh_with(&ctx, Reply::Close, &sent()).await,
        "a closed connection",
    )?;
    ensure(
        matches!(
            err,
            RefreshError::Transport {
                maybe_sent: true,
                ..
            }
        ) && err.is_retryable(),
        || format!("closed connection: {err:?}"),
    )
}

/// Case 8: No token from the request or the response appears in any Debug, Display or error text.
/// The sentinels are short, so the snippet's long-run heuristic cannot be what hides them.
pub async fn no_secret_in_output(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let sent_sentinel = RefreshToken::new("SNTL-rt-1f2e");
    let sentinels = ["SNTL-rt-1f2e", "SNTL-at-3c4d", "SNTL-nrt-5a6b"];
    let success = &ctx.operation().success;
    let status = ctx.success_status();
    let mut body = ctx.success_example()?;
    set_at(
        &mut body,
        &success.access_token.pointer,
        json!(sentinels[1]),
    );
    if let Some(m) = &success.refresh_token {
        set_at(&mut body, &m.pointer, json!(sentinels[2]));
    }
    let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let mut shown = Vec::new();
    let set = refresh_with(
        &ctx,
        Reply::Json {
            status,
            body: body.clone(),
        },
        &sent_sentinel,
    )
    .await;
    ensure(
        set.as_ref()
            .is_ok_and(|s| s.access_token.expose() == sentinels[1]),
        || format!("the sentinel success failed: {set:?}"),
    )?;
    shown.push(format!("{set:?}"));
    let echo = format!(
        r#"{{"echo":"{}","detail":"{} was rejected"}}"#,
        sentinels[0], sentinels[0]
    );
    let mut replies = vec![
        Reply::Raw {
            status: 418,
            content_type: Some("application/json".into()),
            body: echo.clone().into_bytes(),
        },
        Reply::Raw {
            status,
            content_type: Some("text/plain".into()),
            body: bytes.clone(),
        },
        Reply::Truncated {
            status,
            body: bytes.clone(),
        },
        Reply::Raw {
            status,
            content_type: Some("application/json".into()),
            body: bytes[..bytes.len() - 1].to_vec(),
        },
    ];
    for failure in &ctx.operation().failures {
        let mut error_body = ctx
            .examples(failure.status)
            .into_iter()
            .next()
            .map(|(_, b)| b)
            .unwrap_or(Value::Null);
        if let Some(m) = &failure.message {
            set_at(
                &mut error_body,
                &m.pointer,
                json!(format!("token {} is spent", sentinels[0])),
            );
        }
        if let Some(when) = &failure.when
            && !when.matches(&error_body)
            && let Some(tripped) = trip(&ctx, &error_body, failure, when).into_iter().next()
        {
            error_body = tripped;
        }
        replies.push(Reply::Json {
            status: failure.status,
            body: error_body,
        });
    }
    for reply in replies {
        let result = refresh_with(&ctx, reply, &sent_sentinel).await;
        ensure(result.is_err(), || {
            "a broken or failing response gave a token set".into()
        })?;
        if let Err(e) = &result {
            shown.push(format!("{e} | {e:?} | {:?}", e.provider_error()));
        }
    }
    let checked = if ctx.call().sends_secret() {
        &sentinels[..]
    } else {
        &sentinels[1..]
    };
    for text in &shown {
        for sentinel in checked {
            ensure(!text.contains(*sentinel), || {
                format!("{sentinel} shows in {text:?}")
            })?;
        }
    }
    Ok(())
}

/// Case 9: Where the spec lets the new refresh token be absent (or null), the sent one is kept;
/// where it requires one, a body without it is refused rather than half-read.
pub async fn missing_refresh_token(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let status = ctx.success_status();
    let example = ctx.success_example()?;
    if let Call::Grant(kind) = ctx.call() {
        // A grant's answer without a refresh token is a set without one where the schema
        // allows that (client credentials usually get none), a bad response where it does
        // not; never a set holding something made up.
        let Some(mapped) = ctx.operation().success.refresh_token.clone() else {
            return Ok(());
        };
        let mut body = example;
        remove_at(&mut body, &mapped.pointer);
        let result = refresh_with(&ctx, Reply::Json { status, body }, &sent()).await;
        if !may_be_absent(&mapped) {
            let err = expect_err(result, "a grant answer without its required refresh token")?;
            return ensure(err.kind() == ErrorKind::BadResponse, || {
                format!("a {kind:?} answer without its required refresh token: {err:?}")
            });
        }
        let set = result.map_err(|e| format!("a {kind:?} answer without a refresh token: {e}"))?;
        return ensure(set.refresh_token.is_none(), || {
            "a grant answer without a refresh token gave a set with one".into()
        });
    }
    let Some(mapped) = ctx.operation().success.refresh_token.clone() else {
        let set = refresh_with(
            &ctx,
            Reply::Json {
                status,
                body: example,
            },
            &sent(),
        )
        .await
        .map_err(|e| e.to_string())?;
        if ctx.sends_access_token() {
            return ensure(set.refresh_token.is_none(), || {
                "the access token sent became the set's refresh token".into()
            });
        }
        return ensure(
            set.refresh_token.as_ref().map(RefreshToken::expose) == Some(SENT),
            || "the sent refresh token was not kept".into(),
        );
    };
    // An example that already leaves the refresh token out is the "absent" case itself.
    let mut removed = example.clone();
    remove_at(&mut removed, &mapped.pointer);
    let mut nulled = example;
    put_at(&mut nulled, &mapped.pointer, Value::Null);
    // The sent token is kept only where the schema lets it be absent and the rotation policy
    // says the old one stays valid; otherwise the answer is a bad response.
    let keeps = may_be_absent(&mapped) && ctx.rotation() == Some(Rotation::Optional);
    for (what, body) in [("absent", removed), ("null", nulled)] {
        let result = refresh_with(&ctx, Reply::Json { status, body }, &sent()).await;
        if keeps {
            let set = result.map_err(|e| format!("{what} refresh token: {e}"))?;
            ensure(
                set.refresh_token.as_ref().map(RefreshToken::expose) == Some(SENT),
                || format!("{what} refresh token: the sent one was not kept"),
            )?;
        } else {
            let err = expect_err(
                result,
                &format!("{what} refresh token ({:?} rotation)", ctx.rotation()),
            )?;
            ensure(err.kind() == ErrorKind::BadResponse, || {
                format!("{what} refresh token: {err:?}")
            })?;
        }
    }
    Ok(())
}

/// Every `when` rule and every `kinds` code of the mapping is tripped by a body made for it, and
/// the client answers the kind the mapping names (with the code, for `kinds`).
pub async fn every_rule_trips(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let success_status = ctx.success_status();
    let mut tripped = 0;
    for failure in &ctx.operation().failures {
        let documented: Vec<Value> = ctx
            .examples(failure.status)
            .into_iter()
            .map(|(_, b)| b)
            .filter(|b| failure.when.as_ref().is_none_or(|w| w.matches(b)))
            .collect();
        let base = if failure.status == success_status {
            ctx.success_example()?
        } else {
            documented.first().cloned().unwrap_or(Value::Null)
        };
        let mut bodies: Vec<(String, Value)> = Vec::new();
        if let Some(when) = &failure.when {
            for body in trip(&ctx, &base, failure, when) {
                bodies.push((format!("rule at {}", when.mapped.pointer), body));
            }
        }
        if let Some(code_at) = &failure.code {
            for (code, _) in &failure.kinds {
                // A documented example with this code, else the first one made to carry it.
                let mut body = documented
                    .iter()
                    .find(|b| text_at(b, &code_at.pointer).as_deref() == Some(code))
                    .or(documented.first())
                    .cloned()
                    .unwrap_or_else(|| base.clone());
                // The code as the body types it: a number where the example has one.
                let value = match body.pointer(&code_at.pointer) {
                    Some(Value::Number(_)) => code
                        .parse::<i64>()
                        .map_or_else(|_| json!(code), |n| json!(n)),
                    _ => json!(code),
                };
                if put_at(&mut body, &code_at.pointer, value)
                    && failure.when.as_ref().is_none_or(|w| w.matches(&body))
                {
                    bodies.push((format!("code {code:?}"), body));
                }
            }
            ensure(
                failure.kinds.is_empty() || bodies.iter().any(|(n, _)| n.starts_with("code")),
                || format!("no body of status {} could carry a code", failure.status),
            )?;
        }
        for (what, body) in bodies {
            let expected = expected_kind(failure, &body);
            let code = failure
                .code
                .as_ref()
                .and_then(|m| text_at(&body, &m.pointer));
            let reply = Reply::Json {
                status: failure.status,
                body,
            };
            let err = expect_err(refresh_with(&ctx, reply, &sent()).await, &what)?;
            ensure(err.kind() == kind_of(expected), || {
                format!("{what}: {:?}, expected {:?}", err.kind(), kind_of(expected))
            })?;
            check_unprocessed(&what, &err, failure, expected)?;
            if failure.code.is_some() {
                let got = err.provider_error().and_then(|p| p.code.clone());
                ensure(got == code, || {
                    format!("{what}: code {got:?}, expected {code:?}")
                })?;
            }
            tripped += 1;
        }
    }
    let rules = ctx
        .operation()
        .failures
        .iter()
        .map(|f| usize::from(f.when.is_some()) + f.kinds.len())
        .sum::<usize>();
    ensure(tripped >= rules, || {
        format!("{tripped} bodies tripped {rules} rules")
    })
}

/// The kind a failure maps `body` to: by its code where `kinds` names it.
fn expected_kind(failure: &tokenkit_codegen::model::Failure, body: &Value) -> FailureKind {
    let code = failure
        .code
        .as_ref()
        .and_then(|m| text_at(body, &m.pointer));
    failure
        .kinds
        .iter()
        .find(|(c, _)| Some(c) == code.as_ref())
        .map_or(failure.kind, |(_, k)| *k)
}

/// Bodies made from `base` that trip `when`: each `one-of` value, a value other than a
/// `not-equals` one, the field added or removed for `present`. Where `base` cannot hold the
/// value (its parent object is missing), the status's documented examples that trip the rule
/// stand in.
fn trip(
    ctx: &Ctx,
    base: &Value,
    failure: &tokenkit_codegen::model::Failure,
    when: &tokenkit_codegen::model::When,
) -> Vec<Value> {
    use tokenkit_codegen::model::Test;
    let pointer = &when.mapped.pointer;
    let documented: Vec<Value> = ctx
        .examples(failure.status)
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| when.matches(b))
        .collect();
    let with = |value: Value| {
        let mut body = base.clone();
        put_at(&mut body, pointer, value).then_some(body)
    };
    let made: Vec<Option<Value>> = match &when.test {
        Test::Equals(v) => vec![with(v.clone())],
        Test::OneOf(values) => values.iter().map(|v| with(v.clone())).collect(),
        Test::NotEquals(v) => vec![with(other_than(v))],
        Test::Present => {
            let value = documented
                .iter()
                .find_map(|b| b.pointer(pointer).cloned())
                .unwrap_or_else(|| json!("error"));
            vec![with(value)]
        }
        Test::Absent => {
            let mut body = base.clone();
            remove_at(&mut body, pointer);
            vec![Some(body)]
        }
    };
    let made: Vec<Value> = made
        .into_iter()
        .flatten()
        .filter(|b| when.matches(b))
        .collect();
    if made.is_empty() { documented } else { made }
}

/// A JSON value of the same type as `v`, but another.
fn other_than(v: &Value) -> Value {
    match v {
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) => json!(n.as_i64().map_or(1, |i| if i == 1 { 2 } else { 1 })),
        Value::String(s) => json!(format!("{s}-other")),
        _ => json!("other"),
    }
}

/// An empty access token, or an empty new refresh token, is a bad response: a set nobody can
/// use must never be cached or stored.
pub async fn empty_token(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let status = ctx.success_status();
    let example = ctx.success_example()?;
    let success = &ctx.operation().success;
    let mut pointers = vec![("access token", success.access_token.pointer.clone())];
    if let Some(mapped) = &success.refresh_token {
        pointers.push(("new refresh token", mapped.pointer.clone()));
    }
    for (what, pointer) in pointers {
        let mut body = example.clone();
        ensure(put_at(&mut body, &pointer, json!("")), || {
            format!("the success example has no object to hold {pointer}")
        })?;
        let result = refresh_with(&ctx, Reply::Json { status, body }, &sent()).await;
        let err = expect_err(result, &format!("an empty {what}"))?;
        ensure(err.kind() == ErrorKind::BadResponse, || {
            format!("an empty {what}: {err:?}")
        })?;
    }
    Ok(())
}

/// One client serves concurrent refreshes from many tasks.
pub async fn client_is_shareable(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let client: Arc<dyn RefreshClient> = Arc::from(ctx.client(quick_http())?);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let client = Arc::clone(&client);
            let asked = ctx.call();
            tokio::spawn(async move {
                let token = RefreshToken::new(format!("rt-{i}"));
                call(client.as_ref(), asked, &token).await
            })
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(|e| e.to_string())?
            .ok_or("the client does not offer the grant")?
            .map_err(|e| e.to_string())?;
    }
    let requests = ctx.mock.requests().len();
    ensure(requests == 8, || {
        format!("{requests} requests for 8 concurrent calls")
    })?;
    ensure(client.provider() == subject.name, || {
        format!("provider() is {:?}", client.provider())
    })
}

/// Case 19 (providers with grants only): the client says it has no refresh (`refresh_with` is
/// `None`), and a refresh asked of it anyway sends nothing and fails for good, so a token
/// manager gets new sets by the grant instead.
pub async fn refresh_is_refused(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let client = ctx.client(quick_http())?;
    ensure(client.refresh_with().is_none(), || {
        format!("refresh_with() is {:?}", client.refresh_with())
    })?;
    let err = expect_err(
        client.refresh(&sent()).await,
        "a refresh of a grant-only client",
    )?;
    ensure(!err.is_retryable() && err.proves_unprocessed(), || {
        format!("the refusal is retryable or may have been sent: {err:?}")
    })?;
    let requests = ctx.mock.requests().len();
    ensure(requests == 0, || {
        format!("{requests} requests for a refresh that has no operation")
    })?;
    ensure(
        client.grants().is_some_and(|g| !g.grant_types().is_empty()),
        || "the client offers no grant".into(),
    )
}

/// Case 20: Values the spec says are made fresh for each request (`generate`: a request id, a
/// nonce, a timestamp) are in every request, well formed, current, and never the same twice.
pub async fn fresh_values(subject: &Subject) -> Outcome {
    use tokenkit_codegen::extension::GenerateKind;
    use tokenkit_codegen::model::{FillSource, Location, ParamValue};
    let ctx = Ctx::start(subject).await?;
    let op = ctx.operation();
    let fill = match ctx.call() {
        Call::Refresh => op.operation.body.as_ref().map(|b| b.fill.as_slice()),
        Call::Grant(kind) => ctx
            .provider
            .all_grants()
            .find(|g| grant_type(g.kind) == kind)
            .map(|g| g.fill.as_slice()),
    };
    // Where each fresh value is: a header, a query parameter, or a body field.
    let mut wanted: Vec<(Option<Location>, String, GenerateKind)> = op
        .operation
        .params
        .iter()
        .filter_map(|p| match p.value {
            ParamValue::Generated(kind) => Some((Some(p.location), p.name.clone(), kind)),
            _ => None,
        })
        .collect();
    wanted.extend(
        fill.unwrap_or_default()
            .iter()
            .filter_map(|f| match f.source {
                FillSource::Generated { kind, .. } => Some((None, f.json.clone(), kind)),
                _ => None,
            }),
    );
    if wanted.is_empty() {
        return Ok(());
    }
    twice(&ctx).await?;
    let requests = ctx.mock.requests();
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    for (location, name, kind) in wanted {
        let mut seen = Vec::new();
        for recorded in &requests {
            let request = &recorded.request;
            let value = match location {
                Some(Location::Header) => request.header(&name).map(str::to_owned),
                Some(_) => request
                    .query
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone()),
                None => tokenkit_mock::body_json(&ctx.provider, request)
                    .and_then(|b| b.get(&name).cloned())
                    .map(|v| match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    }),
            };
            let value = value.ok_or_else(|| format!("a request has no fresh {name:?}"))?;
            let near = |secs: u64| secs.abs_diff(now.as_secs()) <= 300;
            let well_formed = match kind {
                GenerateKind::Uuid => {
                    value.len() == 36
                        && value.as_bytes()[14] == b'4'
                        && value.matches('-').count() == 4
                }
                GenerateKind::Nonce => value.len() >= 16,
                GenerateKind::UnixSeconds => value.parse::<u64>().is_ok_and(near),
                GenerateKind::UnixMilliseconds => {
                    value.parse::<u64>().is_ok_and(|ms| near(ms / 1000))
                }
                GenerateKind::DateTime => tokenkit::token::parse_rfc3339(&value)
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .is_some_and(|d| near(d.as_secs())),
            };
            ensure(well_formed, || {
                format!("{name:?} is not a current {}: {value:?}", kind.key())
            })?;
            seen.push(value);
        }
        if matches!(kind, GenerateKind::Uuid | GenerateKind::Nonce) {
            ensure(seen.windows(2).all(|w| w[0] != w[1]), || {
                format!("{name:?} was the same in two requests")
            })?;
        }
    }
    Ok(())
}

/// Case 21 (`private_key_jwt`): every request carries, where the spec says, an assertion signed
/// with the application's key (verified with its public key) whose issuer and subject are the
/// client id, whose audience is the token endpoint's URL, that lives a minute, and whose `jti`
/// is never reused; the assertion never appears in an error.
pub async fn client_assertion(subject: &Subject) -> Outcome {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use tokenkit_codegen::model::Auth;
    let ctx = Ctx::start(subject).await?;
    let Some(Auth::PrivateKeyJwt { field, client_id }) = ctx.operation().auth.clone() else {
        return Ok(());
    };
    let expected_id = ctx.provider.config[client_id]
        .example
        .as_str()
        .unwrap_or_default()
        .to_owned();
    twice(&ctx).await?;
    let audience = format!("{}{}", ctx.mock.base_url(), ctx.operation().operation.path);
    let (_, public) = crate::support::signing_pair();
    let mut ids = Vec::new();
    for recorded in ctx.mock.requests() {
        let body = tokenkit_mock::body_json(&ctx.provider, &recorded.request)
            .ok_or("the request has no body")?;
        let jwt = body
            .get(&field)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no assertion in {field:?}"))?;
        let parts: Vec<&str> = jwt.split('.').collect();
        ensure(parts.len() == 3, || {
            "the assertion is not a compact JWS".into()
        })?;
        let decode = |part: &str| -> Result<Value, String> {
            let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string())?;
            serde_json::from_slice(&bytes).map_err(|e| e.to_string())
        };
        let (header, claims) = (decode(parts[0])?, decode(parts[1])?);
        let signature = URL_SAFE_NO_PAD
            .decode(parts[2])
            .map_err(|e| e.to_string())?;
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            public,
        )
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .map_err(|_| "the assertion's signature does not verify with the key".to_owned())?;
        ensure(
            header["alg"] == "ES256" && header["kid"] == "conformance-key",
            || format!("header {header}"),
        )?;
        ensure(
            claims["iss"] == expected_id.as_str() && claims["sub"] == expected_id.as_str(),
            || format!("iss/sub are not the client id {expected_id:?}: {claims}"),
        )?;
        ensure(claims["aud"] == audience.as_str(), || {
            format!(
                "aud is not the token endpoint {audience:?}: {}",
                claims["aud"]
            )
        })?;
        let lifetime = claims["exp"].as_u64().zip(claims["iat"].as_u64());
        ensure(lifetime.is_some_and(|(exp, iat)| exp - iat == 60), || {
            format!("the assertion does not live a minute: {claims}")
        })?;
        ids.push(claims["jti"].clone());
    }
    ensure(
        ids.len() == 2 && ids[0] != ids[1] && ids[0].is_string(),
        || format!("jti {ids:?}"),
    )?;
    // An error echoing the request never shows the assertion.
    let echo = Reply::Raw {
        status: 500,
        content_type: Some("application/json".into()),
        body: serde_json::to_vec(
            &ctx.mock
                .requests()
                .last()
                .and_then(|r| tokenkit_mock::body_json(&ctx.provider, &r.request)),
        )
        .unwrap_or_default(),
    };
    let err = expect_err(refresh_with(&ctx, echo, &sent()).await, "an echoed request")?;
    let jwt_prefix = "eyJ";
    ensure(!format!("{err} {err:?}").contains(jwt_prefix), || {
        format!("an error shows a JWT: {err:?}")
    })
}
