//! What a success becomes: each example exactly its token set, a missing refresh token kept
//! or refused as the spec says, an empty token refused.

use super::*;

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
