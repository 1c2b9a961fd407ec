//! The token manager with a generated client, against a local mock of Easyship that enforces
//! one-time refresh tokens. Run it with `cargo run --example token_manager`.
//!
//! It seeds a file store as a login would, then has 200 tasks ask for an access token at once
//! (one refresh happens), then keeps asking for a few seconds while the 2-second tokens rotate.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};
use tokenkit::{FileStore, ManagerConfig, RefreshToken, TokenManager, TokenSet};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_target(false).init();

    // A local Easyship: the spec's own mock, issuing tokens that live 2 s.
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/easyship.yaml");
    let provider = tokenkit_mock::load(spec)?;
    let mock = tokenkit_mock::MockServer::start(provider).await?;
    let first_refresh_token = mock.enforce_rotation(2, Duration::from_millis(20));

    // The generated client, pointed at the mock instead of api.easyship.com.
    let client = tokenkit_easyship::Client::builder("my-client-id", "my-client-secret")
        .base_url(mock.base_url())
        .build()?;

    // A file store: survives restarts, shared by every process on this host.
    let dir = std::env::temp_dir().join(format!("tokenkit-example-{}", std::process::id()));
    let store = FileStore::new(&dir)?;
    let config = ManagerConfig {
        skew: Duration::from_millis(500),
        ..ManagerConfig::default()
    };
    let manager = TokenManager::with_config(client, store, "easyship-production", config)?;

    // What a login would have stored: an expired access token and a refresh token.
    manager
        .seed(TokenSet {
            access_token: "expired".into(),
            refresh_token: Some(RefreshToken::new(first_refresh_token)),
            expires_at: Some(SystemTime::now()),
            token_type: Some("Bearer".into()),
            refresh_expires_at: None,
            extras: Default::default(),
            origin: None,
            issuer: None,
            values: Default::default(),
        })
        .await?;

    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.access_token().await })
        })
        .collect();
    let mut distinct = HashSet::new();
    for task in tasks {
        distinct.insert(task.await??.expose().to_owned());
    }
    println!(
        "200 concurrent callers got {} distinct token(s); the provider saw {} refresh(es)",
        distinct.len(),
        mock.authority_stats().refreshes
    );

    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let token = manager.access_token().await?;
        // Debug and Display of secrets print [redacted]; expose() is the explicit way out.
        println!("access token {token} = {}", token.expose());
    }
    let stats = mock.authority_stats();
    println!(
        "provider: {} refreshes, {} reused refresh tokens, {} rejected",
        stats.refreshes, stats.reuses, stats.rejected
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
