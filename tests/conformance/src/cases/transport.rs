//! The connection: a server that never answers, one that hangs up, and one client shared
//! across tasks.

use super::*;

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
