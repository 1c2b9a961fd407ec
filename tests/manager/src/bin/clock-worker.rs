//! A process whose clock may be off (the tests run it under `faketime`): it asks its manager
//! once for the access token of one credential in a shared Redis store and prints what came
//! of it, so a test can tell what a replica with a wrong clock makes of the store's marks and
//! times.
//!
//! `clock-worker <base-url> <redis-url> <key>` prints one of `ok`, `in_flight`,
//! `reauthenticate` or `error: <message>`.

use tokenkit::{ClientCredentialsFallback, ManagerConfig, ManagerError, RedisStore, TokenManager};
use tokenkit_manager_tests::{client, fast_config};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base_url, url, key] = args.as_slice() else {
        eprintln!("usage: clock-worker <base-url> <redis-url> <key>");
        std::process::exit(2);
    };
    let store = RedisStore::connect(url, "clock")
        .await
        .expect("redis store");
    // No grant to hide a wrong verdict behind: a connection taken for dead is reported dead.
    let config = ManagerConfig {
        client_credentials_fallback: ClientCredentialsFallback::Never,
        ..fast_config()
    };
    let manager =
        TokenManager::with_config(client(base_url), store, key.as_str(), config).expect("manager");
    // A listener, so that a verdict of dead is marked in the store for the whole fleet.
    let _events = manager.subscribe();
    let outcome = match manager.access_token().await {
        Ok(_) => "ok".to_owned(),
        Err(ManagerError::InFlight) => "in_flight".to_owned(),
        Err(ManagerError::ReAuthenticate { .. }) => "reauthenticate".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    println!("{outcome}");
}
