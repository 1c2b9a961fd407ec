//! The manager gets a first (or a new) token set through the provider's grants: client
//! credentials when no refresh token is usable, an authorization code in one call. Against
//! Easyship's spec served by the rotation-enforcing mock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};
use tokenkit::{
    ClientCredentialsFallback, CodeExchange, ErrorKind, ManagerError, MemoryStore, Origin,
    TokenManager, TokenStore,
};
use tokenkit_manager_tests::{RefreshOnly, client, expired, fresh, one_time_provider, own};
use tokenkit_mock::Reply;

/// Asks `manager` for an access token from `callers` tasks at once; returns the tokens.
async fn stampede<C, S>(manager: &TokenManager<C, S>, callers: usize) -> Vec<String>
where
    C: tokenkit::RefreshClient + 'static,
    S: TokenStore + 'static,
{
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.access_token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap().unwrap().expose().to_owned());
    }
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_refresh_token_gets_one_client_credentials_grant_for_ten_thousand_callers() {
    let (mock, first) = one_time_provider(3600, Duration::from_millis(5)).await;
    let store = MemoryStore::new();
    let manager = TokenManager::new(client(&mock.base_url()), store.clone(), "k").unwrap();
    manager.seed(own(expired(&first))).await.unwrap();
    mock.revoke_families();

    let tokens = stampede(&manager, 10_000).await;

    let stats = mock.authority_stats();
    assert_eq!(stats.grants, 1, "one client-credentials grant: {stats:?}");
    assert_eq!(
        stats.rejected, 1,
        "the revoked token was tried once: {stats:?}"
    );
    assert_eq!((stats.refreshes, stats.reuses), (0, 0), "{stats:?}");
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(
        stored.tokens.access_token.expose(),
        tokens[0],
        "stored before served"
    );
    assert_eq!(stored.version, 2);
    // Easyship issues no refresh token for client credentials: none is stored, and the
    // revoked one is gone.
    assert!(stored.tokens.refresh_token.is_none());
    let grants: Vec<_> = mock
        .requests()
        .iter()
        .filter_map(|r| tokenkit_mock::body_json(mock.provider(), &r.request))
        .filter(|b| b["grant_type"] == "client_credentials")
        .collect();
    assert_eq!(grants.len(), 1);
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_store_starts_with_one_client_credentials_grant() {
    let (mock, _) = one_time_provider(3600, Duration::from_millis(5)).await;
    let store = MemoryStore::new();
    let manager = TokenManager::new(client(&mock.base_url()), store.clone(), "k").unwrap();
    let tokens = stampede(&manager, 10_000).await;
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.grants, stats.rejected, stats.refreshes),
        (1, 0, 0),
        "{stats:?}"
    );
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(store.load("k").await.unwrap().unwrap().version, 1);
}

#[tokio::test]
async fn a_refresh_token_past_its_lifetime_is_never_sent() {
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let manager = TokenManager::new(client(&mock.base_url()), MemoryStore::new(), "k").unwrap();
    let mut dead = expired(&first);
    dead.refresh_expires_at = Some(SystemTime::now() - Duration::from_secs(1));
    manager.seed(own(dead)).await.unwrap();
    manager.access_token().await.unwrap();
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.grants, stats.rejected, stats.refreshes),
        (1, 0, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn the_application_s_hook_wins_over_client_credentials() {
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let hook: tokenkit::ReAuthenticate = Arc::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(fresh("at-from-hook", Some("rt-from-hook"))) })
    });
    let manager = TokenManager::new(client(&mock.base_url()), MemoryStore::new(), "k")
        .unwrap()
        .with_reauthenticate(hook);
    manager.seed(own(expired(&first))).await.unwrap();
    mock.revoke_families();
    assert_eq!(
        manager.access_token().await.unwrap().expose(),
        "at-from-hook"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(mock.authority_stats().grants, 0);
}

#[tokio::test]
async fn a_refused_grant_is_an_error_and_leaves_the_store() {
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    let manager = TokenManager::new(client(&mock.base_url()), store.clone(), "k").unwrap();
    manager.seed(own(expired(&first))).await.unwrap();
    mock.revoke_families();
    // The refresh meets the revoked family; the grant meets a wrong client secret.
    let refused = Reply::Example {
        status: 401,
        name: None,
    };
    mock.enqueue(Reply::Json {
        status: 400,
        body: serde_json::json!({"error": "invalid_grant"}),
    });
    mock.enqueue(refused);
    let err = manager.access_token().await.unwrap_err();
    assert!(
        matches!(&err, ManagerError::Refresh(e) if e.kind() == ErrorKind::Rejected),
        "{err:?}"
    );
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(stored.version, 1, "the store is untouched");
    assert_eq!(stored.tokens.refresh_token.unwrap().expose(), first);
}

#[tokio::test]
async fn a_code_seeds_the_store_in_one_call_and_its_refresh_token_works() {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    let manager = TokenManager::new(client(&mock.base_url()), store.clone(), "k").unwrap();
    let exchange = CodeExchange {
        code: "code-from-the-redirect".into(),
        redirect_uri: "https://app.example/callback".into(),
        verifier: None,
    };
    let set = manager.seed_from_code(&exchange).await.unwrap();
    assert!(set.refresh_token.is_some(), "a code grant starts a family");
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(stored.tokens, set, "stored before it is served");
    assert_eq!(manager.access_token().await.unwrap(), set.access_token);
    // Its refresh token is live: a forced refresh spends it once.
    let refreshed = manager.force_refresh().await.unwrap();
    assert_ne!(refreshed, set.access_token);
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.grants, stats.refreshes, stats.reuses),
        (1, 1, 0),
        "{stats:?}"
    );
    let body = tokenkit_mock::body_json(mock.provider(), &mock.requests()[0].request).unwrap();
    assert_eq!(body["grant_type"], "authorization_code");
    assert_eq!(body["code"], "code-from-the-redirect");
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());
}

#[tokio::test]
async fn seeding_from_a_code_needs_a_provider_that_offers_the_grant() {
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let manager = TokenManager::new(
        RefreshOnly(client(&mock.base_url())),
        MemoryStore::new(),
        "k",
    )
    .unwrap();
    let exchange = CodeExchange {
        code: "SNTL-code".into(),
        redirect_uri: "https://app.example/callback".into(),
        verifier: None,
    };
    let err = manager.seed_from_code(&exchange).await.unwrap_err();
    assert!(matches!(err, ManagerError::Config(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("SNTL"));
    assert!(mock.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_its_own_operation_replaces_a_revoked_family_once() {
    // Byelabel's login (`POST /login`, mapped as a client-credentials grant with
    // `x-token-grant`) issues a refresh token: the manager logs in once, then refreshes.
    let spec = tokenkit_manager_tests::workspace().join("specs/byelabel.yaml");
    let mock = tokenkit_mock::MockServer::start(tokenkit_mock::load(spec).unwrap())
        .await
        .unwrap();
    let first = mock.enforce_rotation(3600, Duration::from_millis(5));
    let client = tokenkit_byelabel::Client::builder("ws_3f9a2c", "cid", "cs")
        .base_url(mock.base_url())
        .build()
        .unwrap();
    let store = MemoryStore::new();
    let manager = TokenManager::new(client, store.clone(), "k").unwrap();
    manager.seed(own(expired(&first))).await.unwrap();
    mock.revoke_families();

    let tokens = stampede(&manager, 10_000).await;
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.grants, stats.rejected, stats.refreshes),
        (1, 1, 0),
        "{stats:?}"
    );
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    let logins: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.request.path.ends_with("/login"))
        .collect();
    assert_eq!(logins.len(), 1);
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());
    let stored = store.load("k").await.unwrap().unwrap();
    assert!(
        stored.tokens.refresh_token.is_some(),
        "the login's refresh token is kept"
    );
    assert!(stored.tokens.refresh_expires_at.is_some());
    // The new family refreshes.
    manager.force_refresh().await.unwrap();
    assert_eq!(mock.authority_stats().refreshes, 1);
}

#[test]
fn the_authorization_url_is_the_spec_s_with_this_client_s_values() {
    let client = client("https://127.0.0.1:1");
    let state = tokenkit::AuthorizationState::generate().unwrap();
    // Easyship's code exchange has nowhere to send a PKCE verifier: its URL takes no challenge.
    let url = client
        .authorization_url(
            "https://app.example/callback",
            &["public.shipment:read", "public.rate:read"],
            &state,
        )
        .unwrap();
    assert!(
        url.starts_with(tokenkit_easyship::AUTHORIZATION_URL),
        "{url}"
    );
    for part in [
        "response_type=code",
        "client_id=cid_easyship_example",
        "redirect_uri=https%3A%2F%2Fapp.example%2Fcallback",
        "scope=public.shipment%3Aread+public.rate%3Aread",
        &format!("state={}", state.as_str()),
    ] {
        assert!(url.contains(part), "{part} missing from {url}");
    }
    assert!(!url.contains("code_challenge"), "{url}");
    assert!(
        !url.contains("cs_easyship_example"),
        "the client secret stays out"
    );
    assert!(
        tokenkit_easyship::SCOPES
            .iter()
            .any(|(scope, _)| *scope == "public.shipment:read")
    );
}

#[tokio::test]
async fn a_user_s_connection_never_becomes_the_application_s_own_token() {
    // A user connected by the authorization-code flow; later the family is revoked. Easyship
    // offers client credentials, but that grant's token is the application's, not the user's:
    // the manager asks for re-authentication and leaves the store as it was.
    let (mock, _) = one_time_provider(3600, Duration::ZERO).await;
    let store = MemoryStore::new();
    let manager = TokenManager::new(client(&mock.base_url()), store.clone(), "user-42").unwrap();
    let exchange = CodeExchange {
        code: "code-from-redirect".into(),
        redirect_uri: "https://app.example/callback".into(),
        verifier: None,
    };
    let set = manager.seed_from_code(&exchange).await.unwrap();
    assert_eq!(set.origin, Some(Origin::AuthorizationCode));
    mock.revoke_families();
    let err = manager.force_refresh().await.unwrap_err();
    assert!(
        matches!(err, ManagerError::ReAuthenticate { cause: Some(_) }),
        "{err}"
    );
    let stats = mock.authority_stats();
    assert_eq!(stats.grants, 1, "only the code exchange: {stats:?}");
    let stored = store.load("user-42").await.unwrap().unwrap();
    assert_eq!(
        (stored.version, stored.tokens.origin),
        (1, Some(Origin::AuthorizationCode))
    );

    // Sets the application seeds are its users' too, and refreshed sets keep their origin.
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let manager = TokenManager::new(client(&mock.base_url()), MemoryStore::new(), "k").unwrap();
    manager.seed(expired(&first)).await.unwrap();
    assert_eq!(
        manager.token_set().await.unwrap().origin,
        Some(Origin::Application)
    );
    mock.revoke_families();
    let err = manager.force_refresh().await.unwrap_err();
    assert!(matches!(err, ManagerError::ReAuthenticate { .. }), "{err}");
    assert_eq!(mock.authority_stats().grants, 0);
}

#[tokio::test]
async fn sets_stored_before_origins_were_recorded_keep_working() {
    // No origin: a set with a refresh token is taken for a user's, one without for a
    // client-credentials set (only that grant issues none).
    for (refresh_token, granted) in [(true, false), (false, true)] {
        let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
        let store = MemoryStore::new();
        let mut legacy = expired(&first);
        if !refresh_token {
            legacy.refresh_token = None;
        }
        assert_eq!(
            store.save("k", &legacy, None).await.unwrap(),
            tokenkit::Saved::Written(1)
        );
        mock.revoke_families();
        let manager = TokenManager::new(client(&mock.base_url()), store, "k").unwrap();
        let result = manager.access_token().await;
        assert_eq!(
            result.is_ok(),
            granted,
            "refresh token {refresh_token}: {result:?}"
        );
        assert_eq!(mock.authority_stats().grants, u64::from(granted));
    }
}

#[tokio::test]
async fn the_application_can_let_client_credentials_replace_any_credential() {
    let (mock, first) = one_time_provider(3600, Duration::ZERO).await;
    let config = tokenkit::ManagerConfig {
        client_credentials_fallback: ClientCredentialsFallback::Always,
        ..tokenkit::ManagerConfig::default()
    };
    let manager =
        TokenManager::with_config(client(&mock.base_url()), MemoryStore::new(), "k", config)
            .unwrap();
    manager.seed(expired(&first)).await.unwrap();
    mock.revoke_families();
    manager.force_refresh().await.unwrap();
    // The credential is now the application's own token, and says so.
    assert_eq!(
        manager.token_set().await.unwrap().origin,
        Some(Origin::ClientCredentials)
    );
    assert_eq!(mock.authority_stats().grants, 1);
}

/// Machinebank (a fixture) issues tokens only by client credentials, sent in the query string;
/// its mock mints a new access token per grant.
async fn machine_provider(
    lifetime_secs: i64,
) -> (tokenkit_mock::MockServer, tokenkit_machinebank::Client) {
    let spec = tokenkit_manager_tests::workspace().join("tests/fixtures/specs/machinebank.yaml");
    let provider = tokenkit_mock::load(spec).expect("spec");
    let mock = tokenkit_mock::MockServer::start(provider)
        .await
        .expect("mock");
    mock.enforce_rotation(lifetime_secs, Duration::from_millis(5));
    let client = tokenkit_machinebank::Client::builder("machine-client", "machine-secret")
        .base_url(mock.base_url())
        .build()
        .expect("client");
    (mock, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_with_grants_only_gets_one_grant_per_stale_token_across_two_managers() {
    // Tokens live 4 s, fresh for 3 s of it (the config's skew is 950 ms): each stampede ends
    // well inside one token's life on a busy machine.
    let (mock, client) = machine_provider(4).await;
    let dir = tokenkit_manager_tests::scratch("grant-only");
    let store = tokenkit::FileStore::new(&dir).unwrap();
    let config = tokenkit_manager_tests::fast_config;
    // Two managers over one file store: what two processes on one host share is the lock.
    let a = TokenManager::with_config(client.clone(), store.clone(), "machine", config()).unwrap();
    let b = TokenManager::with_config(client, store.clone(), "machine", config()).unwrap();

    let (first_a, first_b) = tokio::join!(stampede(&a, 500), stampede(&b, 500));
    let stats = mock.authority_stats();
    assert_eq!(stats.grants, 1, "one grant for an empty store: {stats:?}");
    assert!(first_a.iter().chain(&first_b).all(|t| *t == first_a[0]));
    let stored = store.load("machine").await.unwrap().unwrap();
    assert_eq!(
        stored.tokens.access_token.expose(),
        first_a[0],
        "stored before served"
    );
    assert_eq!(stored.tokens.origin, Some(Origin::ClientCredentials));
    assert!(stored.tokens.refresh_token.is_none());

    // Served until it is stale (its expiry less the skew), then one more grant, never a refresh.
    let stale_at = stored.tokens.expires_at.expect("an expiry") - config().skew;
    let wait = stale_at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    let (second_a, second_b) = tokio::join!(stampede(&a, 500), stampede(&b, 500));
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.grants, stats.refreshes, stats.rejected),
        (2, 0, 0),
        "one grant per stale token: {stats:?}"
    );
    assert_ne!(second_a[0], first_a[0]);
    assert!(second_a.iter().chain(&second_b).all(|t| *t == second_a[0]));
    let stored = store.load("machine").await.unwrap().unwrap();
    assert_eq!(stored.tokens.access_token.expose(), second_a[0]);
    assert_eq!(stored.version, 2);
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_provider_with_grants_only_leaves_a_set_the_application_gave_it() {
    // A set the application seeded is not the client's own: with the default fallback, the
    // grant does not replace it; the manager says to re-authenticate instead.
    let (mock, client) = machine_provider(3600).await;
    let manager = TokenManager::new(client, MemoryStore::new(), "k").unwrap();
    let mut set = expired("unused");
    set.refresh_token = None;
    set.origin = Some(Origin::Application);
    manager.seed(set).await.unwrap();
    let err = manager.access_token().await.unwrap_err();
    assert!(
        matches!(err, ManagerError::ReAuthenticate { .. }),
        "{err:?}"
    );
    assert_eq!(mock.authority_stats().grants, 0);
    assert!(mock.requests().is_empty(), "a refresh was attempted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_exchanges_its_access_token_sends_the_current_one_once_per_stale_token() {
    // Exchangebank (a fixture) has no refresh token: a still-valid access token is exchanged
    // for a new one. Its mock counts each access token it issued as a one-time token.
    let spec = tokenkit_manager_tests::workspace().join("tests/fixtures/specs/exchangebank.yaml");
    let mock = tokenkit_mock::MockServer::start(tokenkit_mock::load(spec).unwrap())
        .await
        .unwrap();
    let first = mock.enforce_rotation(1, Duration::from_millis(5));
    let client = tokenkit_exchangebank::Client::builder()
        .base_url(mock.base_url())
        .build()
        .unwrap();
    let store = MemoryStore::new();
    let manager = TokenManager::with_config(
        client,
        store.clone(),
        "k",
        tokenkit_manager_tests::fast_config(),
    )
    .unwrap();
    // Served for a few more milliseconds, so already due for a refresh.
    let mut set = fresh(&first, None);
    set.expires_at = Some(SystemTime::now() + Duration::from_millis(500));
    manager.seed(set).await.unwrap();

    let tokens = stampede(&manager, 1000).await;
    let stats = mock.authority_stats();
    assert_eq!(
        (stats.refreshes, stats.reuses, stats.rejected),
        (1, 0, 0),
        "{stats:?}"
    );
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_ne!(tokens[0], first);
    let requests = mock.requests();
    let sent = tokenkit_mock::presented_token(mock.provider(), &requests[0].request);
    assert_eq!(
        sent.as_deref(),
        Some(first.as_str()),
        "the access token is what a refresh sends"
    );
    let stored = store.load("k").await.unwrap().unwrap();
    assert_eq!(stored.tokens.access_token.expose(), tokens[0]);
    assert!(
        stored.tokens.refresh_token.is_none(),
        "no refresh token exists"
    );

    // The new token, once stale, is exchanged in turn (never the first one again).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = manager.access_token().await.unwrap();
    let stats = mock.authority_stats();
    assert_eq!((stats.refreshes, stats.reuses), (2, 0), "{stats:?}");
    assert_ne!(again.expose(), tokens[0]);
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());
}

#[tokio::test]
async fn an_expired_access_token_is_never_sent_for_an_exchange() {
    let spec = tokenkit_manager_tests::workspace().join("tests/fixtures/specs/exchangebank.yaml");
    let mock = tokenkit_mock::MockServer::start(tokenkit_mock::load(spec).unwrap())
        .await
        .unwrap();
    let client = tokenkit_exchangebank::Client::builder()
        .base_url(mock.base_url())
        .build()
        .unwrap();
    let manager = TokenManager::new(client, MemoryStore::new(), "k").unwrap();
    let mut set = expired("unused");
    set.refresh_token = None;
    manager.seed(set).await.unwrap();
    let err = manager.access_token().await.unwrap_err();
    assert!(
        matches!(err, ManagerError::ReAuthenticate { .. }),
        "{err:?}"
    );
    assert!(
        mock.requests().is_empty(),
        "an expired access token was sent"
    );
}

#[tokio::test]
async fn removing_a_grant_only_credential_revokes_its_access_token() {
    let (mock, client) = machine_provider(3600).await;
    let manager = TokenManager::new(client, tokenkit::MemoryStore::new(), "machine").unwrap();
    let token = manager.access_token().await.unwrap();
    let revocation = manager.revoke_and_remove().await.unwrap();
    assert_eq!(
        revocation,
        tokenkit::Revocation {
            refresh_token: tokenkit::RevokeOutcome::NoToken,
            access_token: tokenkit::RevokeOutcome::Revoked,
        }
    );
    assert_eq!(
        mock.authority_stats().revoked_access,
        1,
        "revoked at the provider"
    );
    let sent = mock.requests().last().unwrap().request.clone();
    assert_eq!(sent.path, "/oauth/revoke");
    let body: Vec<(String, String)> = url::form_urlencoded::parse(&sent.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert!(body.contains(&("token".into(), token.expose().to_owned())));
    assert!(body.contains(&("client_id".into(), "machine-client".into())));
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());
}
