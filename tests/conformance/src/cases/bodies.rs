//! Bodies the spec does not describe: undocumented statuses, malformed, empty, cut-off and
//! mislabelled bodies, and bodies over the cap.

use super::*;

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
