//! Many customers' connections in one pool, kept alive by its keeper, against a local mock of
//! Idlebank (a made-up provider whose one-time refresh tokens die 6 seconds after issue unless
//! used). Run it with `cargo run --example connections`.
//!
//! It connects 1,000 customers, uses a few of them, and leaves the rest alone for 15 seconds:
//! without the keeper every untouched connection would be dead by then. One customer then
//! disconnects the application at the provider: the pool says so once, by an event.

use std::time::{Duration, SystemTime};
use tokenkit::{
    KeeperConfig, ManagerConfig, MemoryStore, Origin, PoolConfig, RefreshToken, TokenEvent,
    TokenPool, TokenSet,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/specs/idlebank.yaml"
    );
    let mock = tokenkit_mock::MockServer::start(tokenkit_mock::load(spec)?).await?;
    mock.enforce_rotation(3600, Duration::from_millis(5));
    mock.quiet();
    let client = tokenkit_idlebank::Client::builder("idle-client", "idle-secret")
        .base_url(mock.base_url())
        .build()?;

    // One pool for every customer of this provider, in one store (a RedisStore for several
    // replicas). Renew refresh tokens 3 s before they die.
    let config = PoolConfig {
        manager: ManagerConfig {
            refresh_token_margin: Duration::from_secs(3),
            ..ManagerConfig::default()
        },
        ..PoolConfig::default()
    };
    let pool = TokenPool::new(client, MemoryStore::new(), config)?;

    // What each customer's consent would have stored (here: a family minted by the mock).
    for i in 0..1000 {
        let refresh_token = mock.new_family().ok_or("rotation is enforced")?;
        pool.seed(
            &format!("customer-{i}"),
            TokenSet {
                access_token: "from-the-consent".into(),
                refresh_token: Some(RefreshToken::new(refresh_token)),
                expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
                token_type: Some("Bearer".into()),
                refresh_expires_at: Some(SystemTime::now() + Duration::from_secs(6)),
                extras: Default::default(),
                origin: Some(Origin::Application),
                issuer: None,
                values: Default::default(),
            },
        )
        .await?;
    }
    println!(
        "{} connections stored",
        pool.connections().await?.map_or(0, |c| c.len())
    );

    let keeper = pool.keep(KeeperConfig {
        interval: Duration::from_millis(200),
        per_second: 1000,
        ..KeeperConfig::default()
    })?;
    let token = pool.access_token("customer-7").await?;
    println!("customer-7 is served a token ({token:?}); the others are left alone");

    tokio::time::sleep(Duration::from_secs(15)).await;
    let stats = mock.authority_stats();
    println!(
        "after 15 s: {} refreshes by the keeper, {} connections lost to an expired refresh token, {} in memory now",
        stats.refreshes,
        stats.expired,
        pool.active_connections()
    );

    // A customer disconnects the application at the provider. An application listens to the
    // events as they come (a receiver that falls `event_capacity` behind loses the oldest).
    let mut events = pool.subscribe();
    let listener = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(TokenEvent::ReauthenticationRequired {
                    connection, cause, ..
                }) => {
                    let why = cause.map(|c| c.to_string()).unwrap_or_default();
                    println!("{connection} must connect again ({why})");
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    let stored = pool.token_set("customer-3").await?;
    if let Some(refresh_token) = &stored.refresh_token {
        mock.revoke_family_of(refresh_token.expose());
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    listener.abort();
    keeper.stop();
    Ok(())
}
