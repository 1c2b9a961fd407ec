//! The provider's side of a customer's consent, as the mock plays it: the consent page, the
//! redirect back with a code (or `access_denied`), and the token endpoint's checks of each code
//! (once, by its client, with its redirect URI and a verifier that matches its challenge). Driven
//! over HTTP the way a browser would, through the clients' generic `GrantClient::consent_url`.

use std::time::Duration;
use tokenkit::reqwest;
use tokenkit::{
    AuthorizationState, CodeExchange, ConsentRequest, GrantClient, MemoryStore, PkceVerifier,
    TokenManager, TokenStore,
};
use tokenkit_manager_tests::workspace;
use tokenkit_mock::MockServer;

const REDIRECT: &str = "https://app.example/connect/callback";

async fn tenantbank() -> (MockServer, String) {
    let spec = workspace().join("tests/fixtures/specs/tenantbank.yaml");
    let mock = MockServer::start(tokenkit_mock::load(spec).unwrap())
        .await
        .unwrap();
    mock.enforce_rotation(3600, Duration::ZERO);
    let endpoint = mock.serve_consent().expect("an authorization code flow");
    (mock, endpoint)
}

fn tenant_client(mock: &MockServer, endpoint: &str, id: &str) -> tokenkit_tenantbank::Client {
    tokenkit_tenantbank::Client::builder("acme", id, "tenant-secret")
        .base_url(mock.base_url())
        .authorization_endpoint(endpoint)
        .build()
        .unwrap()
}

/// A browser that follows nothing by itself.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The hidden inputs of a consent page's form.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once("\" value=\"")?;
            let (value, _) = rest.split_once('"')?;
            Some((name.to_owned(), unescape(value)))
        })
        .collect()
}

/// Opens `consent_url`, answers `decision` on its page, and returns where the provider sends
/// the browser back.
async fn consent(consent_url: &str, decision: &str) -> url::Url {
    let page = browser().get(consent_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let action = url::Url::parse(consent_url).unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"approve\"") && html.contains("id=\"deny\""));
    let mut form = hidden_inputs(&html);
    form.push(("decision".into(), decision.into()));
    let back = browser()
        .post(action.as_str().split('?').next().unwrap())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 302);
    let location = back.headers()["location"].to_str().unwrap().to_owned();
    url::Url::parse(&location).unwrap()
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// What an application starts a connect with: a state, a verifier where the client sends
/// one, and the consent URL built generically.
fn start(client: &dyn GrantClient) -> (AuthorizationState, Option<PkceVerifier>, String) {
    let state = AuthorizationState::generate().unwrap();
    let verifier = client
        .sends_pkce_verifier()
        .then(|| PkceVerifier::generate().unwrap());
    let challenge = verifier.as_ref().map(PkceVerifier::challenge);
    let url = client
        .consent_url(&ConsentRequest {
            redirect_uri: REDIRECT,
            scopes: &["offline_access"],
            state: &state,
            challenge: challenge.as_ref(),
        })
        .expect("an authorization code flow")
        .unwrap();
    (state, verifier, url)
}

#[tokio::test]
async fn an_approved_consent_gives_one_code_that_seeds_a_connection_once() {
    let (mock, endpoint) = tenantbank().await;
    let client = tenant_client(&mock, &endpoint, "tenant-client");
    let (state, verifier, url) = start(&client);
    assert!(verifier.is_some(), "tenantbank's exchange sends a verifier");
    assert!(url.starts_with(&endpoint), "{url}");
    let back = consent(&url, "approve").await;
    assert_eq!(
        back.as_str().split('?').next(),
        Some(REDIRECT),
        "sent back to the redirect URI"
    );
    assert!(state.matches(&param(&back, "state").unwrap()));
    assert_eq!(param(&back, "iss"), Some(mock.issuer()));
    let code = param(&back, "code").expect("a code");

    let store = MemoryStore::new();
    let manager = TokenManager::new(client, store.clone(), "conn:acme").unwrap();
    let exchange = CodeExchange {
        code: code.clone().into(),
        redirect_uri: REDIRECT.into(),
        verifier,
    };
    let set = manager.seed_from_code(&exchange).await.unwrap();
    assert!(set.refresh_token.is_some());
    assert!(store.load("conn:acme").await.unwrap().is_some());
    // The same code again (a replayed callback): refused, and the connection it made is
    // revoked with it (RFC 6749 §4.1.2).
    let replayed = tenant_client(&mock, &endpoint, "tenant-client")
        .authorization_code_grant(&code.into(), REDIRECT, exchange.verifier.as_ref())
        .await;
    assert!(replayed.is_err());
    assert!(
        manager.force_refresh().await.is_err(),
        "the replayed code's family still refreshes"
    );
    let stats = mock.consent_stats();
    assert_eq!((stats.pages, stats.approved, stats.exchanged), (1, 1, 1));
    assert_eq!(stats.refused, ["a code presented a second time"]);
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());
}

#[tokio::test]
async fn the_token_endpoint_refuses_a_code_for_anything_it_was_not_issued_for() {
    let (mock, endpoint) = tenantbank().await;
    let client = tenant_client(&mock, &endpoint, "tenant-client");
    // Each attempt gets a code of its own, then spends it the wrong way.
    let cases: [(&str, &str); 5] = [
        ("another client", "a code issued to another client"),
        ("another redirect", "a redirect URI other than the code's"),
        (
            "another verifier",
            "a verifier that does not match the code's challenge",
        ),
        (
            "no verifier",
            "no verifier for a code issued with a challenge",
        ),
        ("a made-up code", "a code this provider never issued"),
    ];
    for (attack, _) in &cases {
        let (_, verifier, url) = start(&client);
        let code = param(&consent(&url, "approve").await, "code").unwrap();
        let other = PkceVerifier::generate().unwrap();
        let (sender, code, redirect, verifier) = match *attack {
            "another client" => ("other-client", code, REDIRECT, verifier),
            "another redirect" => ("tenant-client", code, "https://evil.example/cb", verifier),
            "another verifier" => ("tenant-client", code, REDIRECT, Some(other)),
            "no verifier" => ("tenant-client", code, REDIRECT, None),
            _ => (
                "tenant-client",
                "code-guessed".to_owned(),
                REDIRECT,
                verifier,
            ),
        };
        let result = tenant_client(&mock, &endpoint, sender)
            .authorization_code_grant(&code.into(), redirect, verifier.as_ref())
            .await;
        assert!(result.is_err(), "{attack}: exchanged");
    }
    let stats = mock.consent_stats();
    let expected: Vec<&str> = cases.iter().map(|(_, why)| *why).collect();
    assert_eq!(stats.refused, expected);
    assert_eq!(stats.exchanged, 0);
    assert_eq!(mock.authority_stats().grants, 0, "no tokens issued");
}

#[tokio::test]
async fn a_denied_consent_sends_the_customer_back_with_access_denied() {
    let (mock, endpoint) = tenantbank().await;
    let client = tenant_client(&mock, &endpoint, "tenant-client");
    let (state, _, url) = start(&client);
    let back = consent(&url, "deny").await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert!(state.matches(&param(&back, "state").unwrap()));
    assert_eq!(param(&back, "code"), None);
    assert_eq!(mock.consent_stats().denied, 1);
}

#[tokio::test]
async fn a_bad_authorization_request_is_never_redirected_to_an_unregistered_uri() {
    let (mock, endpoint) = tenantbank().await;
    mock.register_redirect_uri(REDIRECT);
    let client = tenant_client(&mock, &endpoint, "tenant-client");
    let state = AuthorizationState::generate().unwrap();
    let elsewhere = client
        .authorization_url("https://evil.example/cb", &[], &state, None)
        .unwrap();
    let page = browser().get(&elsewhere).send().await.unwrap();
    assert_eq!(
        page.status(),
        400,
        "an unregistered redirect URI gets a page"
    );
    // A registered one with the wrong response type goes back with the error.
    let (_, _, url) = start(&client);
    let token_flow = url.replace("response_type=code", "response_type=token");
    let back = browser().get(&token_flow).send().await.unwrap();
    assert_eq!(back.status(), 302);
    let location = back.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert!(location.contains("error=unsupported_response_type"));
    assert_eq!(mock.consent_stats().pages, 0);
}

#[tokio::test]
async fn a_provider_without_pkce_gets_no_challenge_and_its_code_works_once() {
    let provider = tokenkit_mock::load(workspace().join("specs/easyship.yaml")).unwrap();
    let mock = MockServer::start(provider).await.unwrap();
    mock.enforce_rotation(3600, Duration::ZERO);
    let endpoint = mock.serve_consent().unwrap();
    let client = tokenkit_easyship::Client::builder("cid_easyship_example", "cs_easyship_example")
        .base_url(mock.base_url())
        .authorization_endpoint(&endpoint)
        .build()
        .unwrap();
    let (_, verifier, url) = start(&client);
    assert!(
        verifier.is_none() && !url.contains("code_challenge"),
        "{url}"
    );
    let code = param(&consent(&url, "approve").await, "code").unwrap();
    let exchange = CodeExchange {
        code: code.into(),
        redirect_uri: REDIRECT.into(),
        verifier: None,
    };
    let manager = TokenManager::new(client, MemoryStore::new(), "k").unwrap();
    manager.seed_from_code(&exchange).await.unwrap();
    assert!(manager.seed_from_code(&exchange).await.is_err());
    assert_eq!(mock.consent_stats().exchanged, 1);
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());
}

/// A removal revokes the refresh token and the access token at the provider's revocation
/// operation (RFC 7009) before it deletes the set; a provider that fails the revocation still
/// loses the connection here (and says so), and a spec without a revocation operation sends
/// nothing.
#[tokio::test]
async fn a_removal_revokes_at_the_provider_first_and_removes_whatever_it_answers() {
    use tokenkit::{PoolConfig, RevokeOutcome, TokenPool};
    let (mock, endpoint) = tenantbank().await;
    let store = MemoryStore::new();
    let pool = TokenPool::new(
        tenant_client(&mock, &endpoint, "tenant-client"),
        store.clone(),
        PoolConfig::default(),
    )
    .unwrap();
    let seeded = |family: String| tokenkit_manager_tests::fresh("at-live", Some(&family));
    let family = mock.new_family().unwrap();
    pool.seed("kept-then-revoked", seeded(family.clone()))
        .await
        .unwrap();
    let revocation = pool.revoke_and_remove("kept-then-revoked").await.unwrap();
    assert_eq!(revocation.refresh_token, RevokeOutcome::Revoked);
    assert_eq!(revocation.access_token, RevokeOutcome::Revoked);
    assert_eq!(mock.authority_stats().revoked, 1);
    assert!(!pool.is_stored("kept-then-revoked").await.unwrap());
    // The provider's answer to the revocation: refused (its family stays alive there).
    let other = mock.new_family().unwrap();
    pool.seed("refused", seeded(other)).await.unwrap();
    mock.enqueue(tokenkit_mock::Reply::Raw {
        status: 503,
        content_type: None,
        body: b"SENTINEL-REVOKE-BODY".to_vec(),
    });
    let revocation = pool.revoke_and_remove("refused").await.unwrap();
    assert!(
        matches!(revocation.refresh_token, RevokeOutcome::Failed(_)),
        "{revocation:?}"
    );
    assert!(!pool.is_stored("refused").await.unwrap(), "removed anyway");
    // Which requests went out: each revocation names its token and its type.
    let revokes: Vec<Vec<(String, String)>> = mock
        .requests()
        .iter()
        .filter(|r| r.request.path.ends_with("/oauth2/revoke"))
        .map(|r| tokenkit_mock::http::form_pairs(std::str::from_utf8(&r.request.body).unwrap()))
        .collect();
    let hints: Vec<&str> = revokes
        .iter()
        .filter_map(|pairs| pairs.iter().find(|(k, _)| k == "token_type_hint"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        hints,
        [
            "refresh_token",
            "access_token",
            "refresh_token",
            "access_token"
        ]
    );
    assert!(revokes[0].contains(&("token".to_owned(), family)));
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());
    // The mock holds revocations to the spec too: one without the client's credentials is
    // refused, and revokes nothing.
    let before = mock.authority_stats().revoked;
    let loose = browser()
        .post(format!("{}/oauth2/revoke", mock.base_url()))
        .form(&[("token", mock.new_family().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(loose.status(), 422);
    assert_eq!(mock.authority_stats().revoked, before);

    // Easyship's spec maps no revocation: nothing is sent, the connection is removed.
    let (easy, _) = tokenkit_manager_tests::one_time_provider(3600, Duration::ZERO).await;
    let pool = TokenPool::new(
        tokenkit_manager_tests::client(&easy.base_url()),
        MemoryStore::new(),
        PoolConfig::default(),
    )
    .unwrap();
    pool.seed("plain", seeded(easy.new_family().unwrap()))
        .await
        .unwrap();
    let revocation = pool.revoke_and_remove("plain").await.unwrap();
    assert_eq!(revocation.refresh_token, RevokeOutcome::NotOffered);
    assert!(easy.requests().is_empty());
    assert!(!pool.is_stored("plain").await.unwrap());
}
