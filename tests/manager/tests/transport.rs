//! What the transport does with an application's own HTTP client: it never follows a redirect,
//! whatever the client's builder said, so a token request cannot be resent to another host.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokenkit::{RefreshClient, RefreshToken};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers every request with `answer`; returns its port and a request counter.
async fn answering(answer: String) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (answer, seen) = (answer.clone(), Arc::clone(&seen));
            tokio::spawn(async move {
                let mut buffer = [0u8; 8192];
                if socket.read(&mut buffer).await.unwrap_or(0) > 0 {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let _ = socket.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    (port, count)
}

#[tokio::test]
async fn an_application_s_client_never_follows_a_redirect() {
    let (thief, stolen) =
        answering("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_owned()).await;
    // A builder that follows redirects (reqwest's default policy).
    let (port, _) = answering(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{thief}/steal\r\ncontent-length: 0\r\n\r\n"
    ))
    .await;
    let client = tokenkit_easyship::Client::builder("cid", "cs-SENTINEL")
        .base_url(format!("http://127.0.0.1:{port}"))
        .http_client(tokenkit::reqwest::Client::builder())
        .build()
        .unwrap();
    let err = client
        .refresh(&RefreshToken::new("rt-SENTINEL"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(307), "{err}");
    assert_eq!(
        stolen.load(Ordering::SeqCst),
        0,
        "the request followed the redirect"
    );
}
