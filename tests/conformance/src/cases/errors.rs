//! What each documented failure becomes: its kind, code and message, what it proves about
//! the request, failures inside a success status, and every rule tripped.

use super::*;

pub(super) fn kind_of(kind: FailureKind) -> ErrorKind {
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
pub(super) fn trip(
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
