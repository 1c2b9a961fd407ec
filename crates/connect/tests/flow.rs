//! The connect flow served by its axum router on 127.0.0.1, against the mock's consent page,
//! driven over HTTP as a browser would (cookies by hand, redirects one at a time): a connect,
//! a reconnect, a disconnect, and each attack tried (a forged, replayed or other browser's
//! callback, an expired or reused link, a return URL off the allow-list, a mix-up, a code of
//! another client, a browser that leaves mid-exchange). Then the same in a real browser
//! (Debian's Chromium, headless, through chromedriver): the application's page, the link, the
//! consent page, back to the application; screenshots in `target/browser-screenshots`.

use std::time::Duration;
use tokenkit::ConnectionValues;
use tokenkit::reqwest;
use tokenkit::{MemoryStore, PoolConfig, TokenPool, TokenStore};
use tokenkit_connect::{Connect, ConnectConfig, ConnectError, ConnectEvent, FailReason, Opening};
use tokenkit_manager_tests::{wait_for, workspace};
use tokenkit_mock::MockServer;

struct App {
    connect: Connect,
    mock: MockServer,
    store: MemoryStore,
    pool: TokenPool<tokenkit_tenantbank::Client, MemoryStore>,
    /// The mock's authorization endpoint.
    endpoint: String,
    /// The application's page the customer comes back to.
    back: String,
    events: tokio::sync::broadcast::Receiver<ConnectEvent>,
    _server: tokio::task::JoinHandle<()>,
}

async fn tenant_mock(delay: Duration) -> (MockServer, String) {
    let spec = workspace().join("tests/fixtures/specs/tenantbank.yaml");
    let mock = MockServer::start(tokenkit_mock::load(spec).unwrap())
        .await
        .unwrap();
    mock.enforce_rotation(3600, delay);
    let endpoint = mock.serve_consent().unwrap();
    (mock, endpoint)
}

fn tenant_pool(
    mock: &MockServer,
    endpoint: &str,
    client_id: &str,
    store: &MemoryStore,
) -> TokenPool<tokenkit_tenantbank::Client, MemoryStore> {
    let client = tokenkit_tenantbank::Client::builder("acme", client_id, "tenant-secret")
        .base_url(mock.base_url())
        .authorization_endpoint(endpoint)
        .build()
        .unwrap();
    TokenPool::new(client, store.clone(), PoolConfig::default()).unwrap()
}

/// A pool whose connections each carry their own tenant and region: its requests go to
/// `{tenant}.auth.tenantbank.example` (acme's resolves to the mock, over plain http on
/// 127.0.0.1), its consent to the mock's `/{region}/authorize`.
fn many_tenants_pool(
    mock: &MockServer,
    store: &MemoryStore,
) -> TokenPool<tokenkit_tenantbank::Client, MemoryStore> {
    let client = tokenkit_manager_tests::many_tenants(&[("acme", mock)])
        .authorization_endpoint(format!("{}/{{region}}/authorize", mock.issuer()))
        .build()
        .unwrap();
    TokenPool::new(client, store.clone(), PoolConfig::default()).unwrap()
}

async fn app_with(config: impl FnOnce(&mut ConnectConfig), delay: Duration) -> App {
    app_of(config, delay, false).await
}

/// The application over one Tenantbank pool: one tenant's (the builder's), or, with
/// `tenants`, one whose customers each give their tenant and region on the connect page.
async fn app_of(config: impl FnOnce(&mut ConnectConfig), delay: Duration, tenants: bool) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (mock, endpoint) = tenant_mock(delay).await;
    let store = MemoryStore::new();
    let pool = if tenants {
        many_tenants_pool(&mock, &store)
    } else {
        tenant_pool(&mock, &endpoint, "tenant-client", &store)
    };
    let back = format!("{origin}/app/settings");
    let mut settings = ConnectConfig::new(format!("{origin}/connect"), [format!("{origin}/app")]);
    config(&mut settings);
    let mut connect =
        Connect::builder(settings).provider("tenantbank", pool.clone(), &["offline_access"]);
    if tenants {
        connect = connect.ask_for("tenantbank", &["tenant", "region"]);
    }
    let connect = connect.build().unwrap();
    mock.register_redirect_uri(&connect.redirect_uri());
    let router = axum::Router::new()
        .nest("/connect", connect.router())
        .merge(application(connect.clone(), back.clone()));
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    let events = connect.subscribe();
    App {
        connect,
        mock,
        store,
        pool,
        endpoint,
        back,
        events,
        _server: server,
    }
}

/// The application's own pages: `/app` with a connect button (a fresh link each time) and
/// `/app/settings`, where the customer lands with the outcome.
fn application(connect: Connect, back: String) -> axum::Router {
    use axum::extract::RawQuery;
    use axum::response::Html;
    let home = move || {
        let (connect, back) = (connect.clone(), back.clone());
        async move {
            let link = connect.link("tenantbank", "acme-browser", &back).unwrap();
            Html(format!(
                "<!doctype html><title>App</title><h1>Settings</h1><a id=\"connect\" href=\"{link}\">Connect Tenantbank</a>"
            ))
        }
    };
    let settings = |RawQuery(query): RawQuery| async move {
        let query = query.unwrap_or_default();
        let outcome = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "tokenkit_connect")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        Html(format!(
            "<!doctype html><title>App</title><h1>Settings</h1><p>Tenantbank: <b id=\"status\">{outcome}</b></p>"
        ))
    };
    axum::Router::new()
        .route("/app", axum::routing::get(home))
        .route("/app/settings", axum::routing::get(settings))
}

async fn app() -> App {
    app_with(|_| {}, Duration::ZERO).await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A browser's cookie jar, as far as these tests need one.
#[derive(Default, Clone)]
struct Browser {
    cookies: Vec<String>,
}

impl Browser {
    /// GET `url`: the status and the `Location`, keeping any cookie set.
    async fn get(&mut self, url: &str) -> (u16, Option<String>) {
        let mut request = http().get(url);
        if !self.cookies.is_empty() {
            request = request.header("cookie", self.cookies.join("; "));
        }
        let response = request.send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            let name = pair.split('=').next().unwrap().to_owned();
            self.cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            if !pair.ends_with('=') {
                self.cookies.push(pair);
            }
        }
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        (response.status().as_u16(), location)
    }

    /// POSTs `form` to `url` (a connect page's answers): the status, the `Location` and the
    /// page, keeping any cookie set.
    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> (u16, Option<String>, String) {
        let response = http().post(url).form(form).send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookies.push(pair);
        }
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let status = response.status().as_u16();
        (status, location, response.text().await.unwrap())
    }

    /// Opens the connect link and answers `decision` at the provider: the callback URL the
    /// provider sends the browser back to.
    async fn consent(&mut self, link: &str, decision: &str) -> String {
        let (status, consent_url) = self.get(link).await;
        assert_eq!(status, 303, "the link redirects to the provider");
        consent_at(&consent_url.unwrap(), decision).await
    }
}

/// Answers `decision` on the provider's consent page at `consent_url`: where the provider
/// sends the browser back.
async fn consent_at(consent_url: &str, decision: &str) -> String {
    let page = http().get(consent_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let mut form: Vec<(String, String)> = html
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once("\" value=\"")?;
            let (value, _) = rest.split_once('"')?;
            Some((name.to_owned(), value.replace("&amp;", "&")))
        })
        .collect();
    form.push(("decision".into(), decision.into()));
    let action = consent_url.split('?').next().unwrap();
    let back = http().post(action).form(&form).send().await.unwrap();
    assert_eq!(back.status(), 302);
    back.headers()["location"].to_str().unwrap().to_owned()
}

fn outcome(location: &str) -> String {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "tokenkit_connect")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn next_event(app: &mut App) -> ConnectEvent {
    tokio::time::timeout(Duration::from_secs(20), app.events.recv())
        .await
        .expect("an event")
        .unwrap()
}

#[tokio::test]
async fn a_customer_connects_reconnects_and_disconnects() {
    let mut app = app().await;
    let link = app.connect.link("tenantbank", "acme-1", &app.back).unwrap();
    let mut browser = Browser::default();
    let callback = browser.consent(&link, "approve").await;
    assert!(
        callback.starts_with(&app.connect.redirect_uri()),
        "{callback}"
    );
    let (status, location) = browser.get(&callback).await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    assert!(location.starts_with(&app.back), "{location}");
    assert_eq!(outcome(&location), "connected");
    assert!(
        !location.contains("code=") && !location.contains("state="),
        "{location}"
    );
    assert!(
        browser.cookies.is_empty(),
        "the consent's cookie is cleared"
    );
    assert_eq!(
        next_event(&mut app).await,
        ConnectEvent::Connected {
            provider: "tenantbank".into(),
            connection: "acme-1".into(),
        }
    );
    let first = app.pool.token_set("acme-1").await.unwrap();
    assert!(!location.contains(first.access_token.expose()));

    // A reconnect: the same connection, a new consent, its set replaced in place.
    let link = app.connect.link("tenantbank", "acme-1", &app.back).unwrap();
    let callback = browser.consent(&link, "approve").await;
    let (_, location) = browser.get(&callback).await;
    assert_eq!(outcome(&location.unwrap()), "reconnected");
    assert!(matches!(
        next_event(&mut app).await,
        ConnectEvent::Reconnected { .. }
    ));
    let key = app.pool.key_of("acme-1");
    let stored = app.store.load(&key).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_ne!(stored.tokens.access_token, first.access_token);

    // A disconnect revokes the refresh token (and the access token) at the provider first.
    let live = app.store.load(&key).await.unwrap().unwrap().tokens;
    let revocation = app
        .connect
        .disconnect("tenantbank", "acme-1")
        .await
        .unwrap();
    assert_eq!(
        revocation,
        tokenkit::Revocation {
            refresh_token: tokenkit::RevokeOutcome::Revoked,
            access_token: tokenkit::RevokeOutcome::Revoked,
        }
    );
    assert!(app.store.load(&key).await.unwrap().is_none());
    assert!(matches!(
        next_event(&mut app).await,
        ConnectEvent::Disconnected { revocation: r, .. } if r == revocation
    ));
    assert_eq!(app.mock.authority_stats().revoked, 1, "its family revoked");
    assert_eq!(
        app.mock.authority_stats().revoked_access,
        1,
        "its access token too"
    );
    // The revoked refresh token no longer refreshes at the provider.
    let client = tokenkit_tenantbank::Client::builder("acme", "tenant-client", "tenant-secret")
        .base_url(app.mock.base_url())
        .build()
        .unwrap();
    let refresh_token = live.refresh_token.as_ref().unwrap();
    let sent = tokenkit::RefreshClient::refresh(&client, refresh_token).await;
    assert!(sent.is_err(), "a revoked refresh token still refreshed");
    let stats = app.mock.consent_stats();
    assert_eq!((stats.exchanged, stats.refused.len()), (2, 0), "{stats:?}");
    assert!(
        app.mock.violations().is_empty(),
        "{:?}",
        app.mock.violations()
    );
}

#[tokio::test]
async fn forged_replayed_and_other_browsers_callbacks_exchange_nothing() {
    let app = app().await;
    let mut browser = Browser::default();
    // A forged state.
    let forged = format!(
        "{}?state=forged&code=code-x&iss=x",
        app.connect.redirect_uri()
    );
    assert_eq!(browser.get(&forged).await.0, 400);
    // Another browser delivers the genuine callback (a stolen or planted one).
    let link = app.connect.link("tenantbank", "acme-2", &app.back).unwrap();
    let callback = browser.consent(&link, "approve").await;
    let mut attacker = Browser::default();
    assert_eq!(attacker.get(&callback).await.0, 400);
    // The consent is spent by that try: the genuine browser cannot finish it either.
    assert_eq!(browser.get(&callback).await.0, 400);
    assert_eq!(app.mock.consent_stats().exchanged, 0);
    assert!(!app.pool.is_stored("acme-2").await.unwrap());
    // A finished callback replayed.
    let link = app.connect.link("tenantbank", "acme-3", &app.back).unwrap();
    let callback = browser.consent(&link, "approve").await;
    let cookies = browser.clone();
    assert_eq!(browser.get(&callback).await.0, 303);
    let mut replay = cookies;
    assert_eq!(replay.get(&callback).await.0, 400);
    assert_eq!(app.mock.consent_stats().exchanged, 1);
}

#[tokio::test]
async fn links_are_single_use_short_lived_and_return_only_where_allowed() {
    let app = app().await;
    let link = app.connect.link("tenantbank", "acme-4", &app.back).unwrap();
    let mut browser = Browser::default();
    assert_eq!(browser.get(&link).await.0, 303);
    assert_eq!(browser.get(&link).await.0, 400, "a link opened twice");
    let guessed = format!(
        "{}/link/AAAA",
        app.connect.redirect_uri().trim_end_matches("/callback")
    );
    assert_eq!(browser.get(&guessed).await.0, 400);
    let origin = app.back.trim_end_matches("/app/settings").to_owned();
    for elsewhere in [
        "https://evil.example/app".to_owned(),
        format!("{origin}/app-evil"),
        format!("{origin}/other"),
        "javascript:alert(1)".to_owned(),
    ] {
        let refused = app.connect.link("tenantbank", "acme-4", &elsewhere);
        assert!(
            matches!(refused, Err(ConnectError::ReturnUrlNotAllowed)),
            "{elsewhere}: {refused:?}"
        );
    }
    assert!(matches!(
        app.connect.link("nobank", "acme-4", &app.back),
        Err(ConnectError::UnknownProvider)
    ));

    let short = app_with(
        |c| c.link_lifetime = Duration::from_millis(1),
        Duration::ZERO,
    )
    .await;
    let link = short
        .connect
        .link("tenantbank", "acme-5", &short.back)
        .unwrap();
    // The link's lifetime passing is the event waited for.
    let made = std::time::Instant::now();
    wait_for("the link to expire", Duration::from_secs(5), || {
        made.elapsed() > Duration::from_millis(5)
    })
    .await;
    assert_eq!(
        Browser::default().get(&link).await.0,
        400,
        "an expired link"
    );
}

#[tokio::test]
async fn a_denial_a_mix_up_and_another_client_s_code_store_nothing() {
    let mut app = app().await;
    let mut browser = Browser::default();
    // Denied at the provider.
    let link = app.connect.link("tenantbank", "acme-6", &app.back).unwrap();
    let callback = browser.consent(&link, "deny").await;
    let (_, location) = browser.get(&callback).await;
    assert_eq!(outcome(&location.unwrap()), "denied");
    assert!(matches!(
        next_event(&mut app).await,
        ConnectEvent::Failed { reason: FailReason::Provider(code), .. } if code == "access_denied"
    ));
    // A mix-up: the redirect names another provider's issuer.
    let (other, _) = tenant_mock(Duration::ZERO).await;
    let link = app.connect.link("tenantbank", "acme-7", &app.back).unwrap();
    let callback = browser.consent(&link, "approve").await;
    let mixed = callback.replace(
        &format!("iss={}", percent(&app.mock.issuer())),
        &format!("iss={}", percent(&other.issuer())),
    );
    assert_ne!(mixed, callback);
    let (_, location) = browser.get(&mixed).await;
    assert_eq!(outcome(&location.unwrap()), "failed");
    assert!(matches!(
        next_event(&mut app).await,
        ConnectEvent::Failed {
            reason: FailReason::WrongIssuer,
            ..
        }
    ));
    // A code the provider issued to another client, slipped into this consent's callback.
    let link = app.connect.link("tenantbank", "acme-8", &app.back).unwrap();
    let callback = browser.consent(&link, "approve").await;
    let theirs = {
        let store = MemoryStore::new();
        let pool = tenant_pool(&app.mock, &app.endpoint, "other-client", &store);
        let other = Connect::builder(ConnectConfig::new(
            app.connect.redirect_uri().trim_end_matches("/callback"),
            [app.back.clone()],
        ))
        .provider("tenantbank", pool, &[])
        .build()
        .unwrap();
        let link = other.link("tenantbank", "x", &app.back).unwrap();
        let Opening::Consent(opened) = other.open(link.rsplit('/').next().unwrap()).await.unwrap()
        else {
            panic!("a consent, not a page");
        };
        param(&consent_at(&opened.location, "approve").await, "code")
    };
    let url = url::Url::parse(&callback).unwrap();
    let swapped: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "code" {
                theirs.clone()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let mut swapped_url = url.clone();
    swapped_url.query_pairs_mut().clear().extend_pairs(&swapped);
    let (_, location) = browser.get(swapped_url.as_str()).await;
    assert_eq!(outcome(&location.unwrap()), "failed");
    assert!(matches!(
        next_event(&mut app).await,
        ConnectEvent::Failed {
            reason: FailReason::Exchange(_),
            ..
        }
    ));
    assert_eq!(
        app.mock.consent_stats().refused,
        ["a code issued to another client"]
    );
    for connection in ["acme-6", "acme-7", "acme-8"] {
        assert!(!app.pool.is_stored(connection).await.unwrap());
    }
}

#[tokio::test]
async fn a_browser_that_leaves_mid_exchange_still_gets_its_connection_stored() {
    // The provider takes a second to answer the exchange; the browser gives up after 50 ms.
    let mut app = app_with(|_| {}, Duration::from_secs(1)).await;
    let link = app.connect.link("tenantbank", "acme-9", &app.back).unwrap();
    let mut browser = Browser::default();
    let callback = browser.consent(&link, "approve").await;
    let impatient = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let left = impatient
        .get(&callback)
        .header("cookie", browser.cookies.join("; "))
        .send()
        .await;
    assert!(left.is_err(), "the browser left before the answer");
    assert!(matches!(
        next_event(&mut app).await,
        ConnectEvent::Connected { .. }
    ));
    assert!(app.pool.is_stored("acme-9").await.unwrap());
}

fn percent(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn param(location: &str, name: &str) -> String {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

/// Through a real browser: the application's page, its connect button, the provider's consent
/// page, back to the application's settings with the outcome; the connection stored (and its
/// refresh token live) after approving, nothing stored after denying, a disconnect at the end.
/// Screenshots of the consent and result pages in `target/browser-screenshots`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_browser_a_customer_approves_then_denies() {
    use tokenkit_manager_tests::webdriver::{ChromeDriver, screenshots};
    let mut app = app().await;
    let driver = ChromeDriver::start().await;
    let shots = screenshots();
    let home = app.back.replace("/app/settings", "/app");
    for decision in ["approve", "deny"] {
        let browser = driver.session().await;
        browser.goto(&home).await;
        browser.click("#connect").await;
        browser.wait_for_url(&app.endpoint).await;
        assert!(browser.text("#client").await.contains("tenant-client"));
        browser
            .screenshot(&shots.join(format!("connect-{decision}-1-consent.png")))
            .await;
        browser.click(&format!("#{decision}")).await;
        let landed = browser.wait_for_url(&app.back).await;
        assert!(!landed.contains("code="), "{landed}");
        let status = browser.text("#status").await;
        browser
            .screenshot(&shots.join(format!("connect-{decision}-2-result.png")))
            .await;
        browser.close().await;
        match decision {
            "approve" => {
                assert_eq!(status, "connected");
                assert!(matches!(
                    next_event(&mut app).await,
                    ConnectEvent::Connected { .. }
                ));
                // Stored, and its refresh token works.
                app.pool.force_refresh("acme-browser").await.unwrap();
                assert_eq!(app.mock.authority_stats().refreshes, 1);
            }
            _ => {
                assert_eq!(status, "denied");
                assert!(matches!(
                    next_event(&mut app).await,
                    ConnectEvent::Failed {
                        reason: FailReason::Provider(_),
                        ..
                    }
                ));
            }
        }
    }
    let revocation = app.connect.disconnect("tenantbank", "acme-browser").await;
    assert_eq!(
        revocation.unwrap().refresh_token,
        tokenkit::RevokeOutcome::Revoked
    );
    assert!(!app.pool.is_stored("acme-browser").await.unwrap());
    assert_eq!(app.mock.authority_stats().revoked, 1, "revoked at the mock");
    let stats = app.mock.consent_stats();
    assert_eq!((stats.approved, stats.denied, stats.exchanged), (1, 1, 1));
}

/// The value of `name`'s field on a connect page, where it is an `<input>`.
fn has_field(page: &str, name: &str) -> bool {
    page.contains(&format!("name=\"{name}\""))
}

#[tokio::test]
async fn a_customer_gives_their_tenant_on_the_connect_page_and_a_reconnect_asks_nothing() {
    let mut app = app_of(|_| {}, Duration::ZERO, true).await;
    let mut browser = Browser::default();
    let link = app.connect.link("tenantbank", "t-1", &app.back).unwrap();
    let page = http().get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        has_field(&page, "tenant") && has_field(&page, "region"),
        "{page}"
    );
    assert!(page.contains("<option value=\"eu\" selected>"), "{page}");
    assert!(!has_field(&page, "version"), "only what the page asks for");
    assert!(app.mock.requests().is_empty());

    let (status, consent, _) = browser
        .post(&link, &[("tenant", "acme"), ("region", "eu")])
        .await;
    assert_eq!(status, 303);
    let consent = consent.unwrap();
    assert!(consent.starts_with(&app.endpoint), "{consent}");
    let callback = consent_at(&consent, "approve").await;
    let (_, location) = browser.get(&callback).await;
    assert_eq!(outcome(&location.unwrap()), "connected");
    assert!(matches!(
        next_event(&mut app).await,
        ConnectEvent::Connected { .. }
    ));
    let values = ConnectionValues::new()
        .with("tenant", "acme")
        .with("region", "eu");
    assert_eq!(
        app.pool.stored_values("t-1").await.unwrap(),
        Some(values.clone())
    );
    app.pool.force_refresh("t-1").await.unwrap();
    assert_eq!(app.mock.authority_stats().refreshes, 1, "at acme's host");

    // A reconnect keeps the stored values: no page, straight to the consent.
    let link = app.connect.link("tenantbank", "t-1", &app.back).unwrap();
    let (status, consent) = browser.get(&link).await;
    assert_eq!(status, 303);
    let callback = consent_at(&consent.unwrap(), "approve").await;
    let (_, location) = browser.get(&callback).await;
    assert_eq!(outcome(&location.unwrap()), "reconnected");
    assert_eq!(
        app.pool.stored_values("t-1").await.unwrap(),
        Some(values.clone())
    );
    // Nor may a link change them while the connection is stored.
    let other = ConnectionValues::new().with("tenant", "globex");
    let link = app
        .connect
        .link_with("tenantbank", "t-1", &other, &app.back)
        .unwrap();
    let (status, location) = browser.get(&link).await;
    assert_eq!((status, location), (400, None));
}

#[tokio::test]
async fn a_tenant_value_that_tries_to_change_the_host_is_refused() {
    let mut app = app_of(|_| {}, Duration::ZERO, true).await;
    let hostile = ConnectionValues::new().with("tenant", "evil.example/x");
    assert!(matches!(
        app.connect
            .link_with("tenantbank", "t-2", &hostile, &app.back),
        Err(ConnectError::Values(_))
    ));
    let mut browser = Browser::default();
    let link = app.connect.link("tenantbank", "t-2", &app.back).unwrap();
    for (tenant, region) in [
        ("evil.example#", "eu"),
        ("evil.example/x", "eu"),
        ("me@evil.example", "eu"),
        ("evil.example:8443", "eu"),
        ("acme", "mars"),
        ("", "eu"),
    ] {
        let (status, location, page) = browser
            .post(&link, &[("tenant", tenant), ("region", region)])
            .await;
        assert_eq!((status, location), (400, None), "{tenant:?} {region:?}");
        assert!(page.contains("id=\"error\""), "{page}");
        assert!(!page.contains("<script"), "answers are escaped: {page}");
    }
    assert!(browser.cookies.is_empty(), "no consent started");
    assert!(app.mock.requests().is_empty(), "nothing reached any host");
    // The link is still good for a correct answer; a variable the page does not ask for is
    // not the customer's to set.
    let (status, consent, _) = browser
        .post(
            &link,
            &[("tenant", "acme"), ("region", "eu"), ("version", "v9")],
        )
        .await;
    assert_eq!(status, 303);
    let callback = consent_at(&consent.unwrap(), "approve").await;
    let (_, location) = browser.get(&callback).await;
    assert_eq!(outcome(&location.unwrap()), "connected");
    assert!(matches!(
        next_event(&mut app).await,
        ConnectEvent::Connected { .. }
    ));
    let stored = app.pool.stored_values("t-2").await.unwrap().unwrap();
    assert_eq!(stored.get("version"), None);
    // Used up: the page cannot be answered again.
    let (status, location, _) = browser
        .post(&link, &[("tenant", "acme"), ("region", "eu")])
        .await;
    assert_eq!((status, location), (400, None));
}

#[tokio::test]
async fn a_page_may_only_ask_for_variables_the_spec_declares() {
    let spec = workspace().join("tests/fixtures/specs/tenantbank.yaml");
    let mock = MockServer::start(tokenkit_mock::load(spec).unwrap())
        .await
        .unwrap();
    let pool = many_tenants_pool(&mock, &MemoryStore::new());
    let built = Connect::builder(ConnectConfig::new(
        "http://127.0.0.1:1/connect",
        ["http://127.0.0.1:1/app"],
    ))
    .provider("tenantbank", pool, &[])
    .ask_for("tenantbank", &["tenant", "shard"])
    .build();
    assert!(matches!(built, Err(ConnectError::Config(why)) if why.contains("shard")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_browser_a_customer_gives_their_tenant_and_connects() {
    use tokenkit_manager_tests::webdriver::{ChromeDriver, screenshots};
    let mut app = app_of(|_| {}, Duration::ZERO, true).await;
    let driver = ChromeDriver::start().await;
    let shots = screenshots();
    let home = app.back.replace("/app/settings", "/app");
    let browser = driver.session().await;
    browser.goto(&home).await;
    browser.click("#connect").await;
    browser
        .wait_for_url(&app.connect.redirect_uri().replace("/callback", "/link/"))
        .await;
    browser.type_into("#tenant", "evil.example#").await;
    browser.click("#continue").await;
    assert!(browser.text("#error").await.contains("tenant"));
    browser
        .screenshot(&shots.join("connect-tenant-1-refused.png"))
        .await;
    browser.type_into("#tenant", "acme").await;
    browser
        .screenshot(&shots.join("connect-tenant-2-values.png"))
        .await;
    browser.click("#continue").await;
    browser.wait_for_url(&app.endpoint).await;
    browser
        .screenshot(&shots.join("connect-tenant-3-consent.png"))
        .await;
    browser.click("#approve").await;
    browser.wait_for_url(&app.back).await;
    let status = browser.text("#status").await;
    browser
        .screenshot(&shots.join("connect-tenant-4-result.png"))
        .await;
    browser.close().await;
    assert_eq!(status, "connected");
    assert!(matches!(
        next_event(&mut app).await,
        ConnectEvent::Connected { .. }
    ));
    assert_eq!(
        app.pool.stored_values("acme-browser").await.unwrap(),
        Some(
            ConnectionValues::new()
                .with("tenant", "acme")
                .with("region", "eu")
        )
    );
    app.pool.force_refresh("acme-browser").await.unwrap();
    assert_eq!(app.mock.authority_stats().refreshes, 1);
    let revocation = app.connect.disconnect("tenantbank", "acme-browser").await;
    assert_eq!(
        revocation.unwrap().refresh_token,
        tokenkit::RevokeOutcome::Revoked
    );
    assert_eq!(app.mock.authority_stats().revoked, 1);
    assert_eq!(app.mock.authority_stats().revoked_access, 1);
}
