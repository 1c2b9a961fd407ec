//! Getting the first token, with no refresh token yet: the client-credentials grant and the
//! authorization-code flow with PKCE, through the generated Easyship client and the token
//! manager, against a local mock of Easyship. Run it with `cargo run --example first_token`.

use std::time::Duration;
use tokenkit::{AuthorizationState, CodeExchange, MemoryStore, TokenManager, TokenStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A local Easyship built from its spec; it issues tokens that live an hour.
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/easyship.yaml");
    let mock = tokenkit_mock::MockServer::start(tokenkit_mock::load(spec)?).await?;
    mock.enforce_rotation(3600, Duration::ZERO);
    let client = || {
        tokenkit_easyship::Client::builder("my-client-id", "my-client-secret")
            .scope("public.shipment:read")
            .base_url(mock.base_url())
            .build()
    };

    // 1. Machine to machine: nothing stored, no hook. The manager's first call gets a set by
    //    the client-credentials grant the spec maps, stores it, then serves it.
    let store = MemoryStore::new();
    let manager = TokenManager::new(client()?, store.clone(), "m2m")?;
    let token = manager.access_token().await?;
    println!(
        "client credentials: access token {token}; stored version {:?}",
        store.load("m2m").await?.map(|s| s.version)
    );

    // 2. On behalf of a user: send them to the authorization URL with a state, kept in their
    //    session. Easyship's docs show no PKCE, so its client takes no challenge (a client
    //    whose spec maps `code-verifier` takes `Some(&verifier.challenge())`).
    let state = AuthorizationState::generate()?;
    let url = client()?.authorization_url(
        "https://app.example/callback",
        &["public.shipment:read"],
        &state,
    )?;
    println!("send the user to {url}");

    // The provider redirects back with `?code=…&state=…`. Check the state, then exchange the
    // code: one call stores the set, refresh token included, under the store's lock.
    let (code, returned_state) = ("code-from-the-redirect", state.as_str().to_owned());
    if !state.matches(&returned_state) {
        return Err("the redirect's state is not ours".into());
    }
    let user = TokenManager::new(client()?, MemoryStore::new(), "user-42")?;
    let set = user
        .seed_from_code(&CodeExchange {
            code: code.into(),
            redirect_uri: "https://app.example/callback".into(),
            // Easyship's spec maps no PKCE verifier; a spec that maps `code-verifier` sends one.
            verifier: None,
        })
        .await?;
    println!("authorization code: {set:?}");

    // From here on the manager refreshes with the user's refresh token as usual.
    let refreshed = user.force_refresh().await?;
    let stats = mock.authority_stats();
    println!(
        "refreshed to {refreshed}; the provider answered {} grant(s) and {} refresh(es), {} reuse(s)",
        stats.grants, stats.refreshes, stats.reuses
    );
    Ok(())
}
