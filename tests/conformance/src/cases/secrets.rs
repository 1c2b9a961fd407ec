//! No token appears in any output.

use super::*;

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
