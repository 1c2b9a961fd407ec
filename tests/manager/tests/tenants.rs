//! A provider on a per-customer host: the spec's server variables are builder values, filled
//! into the base URL and the authorization URL, and no value can move the request to another
//! host. Against Tenantbank (a fixture: `https://{tenant}.auth.tenantbank.example/{region}`).

use tokenkit::{AuthorizationState, RefreshClient, RefreshToken};
use tokenkit_tenantbank::{Client, Region};

fn client(tenant: &str) -> Client {
    Client::builder(tenant, "tenant-client", "tenant-secret")
        .build()
        .expect("client")
}

#[test]
fn the_tenant_is_a_required_value_and_the_region_has_its_default() {
    assert_eq!(
        client("acme").base_url(),
        "https://acme.auth.tenantbank.example/eu/v2"
    );
    let us = Client::builder("acme-2", "tenant-client", "tenant-secret")
        .region(Region::Us)
        .version("v3")
        .build()
        .unwrap();
    assert_eq!(
        us.base_url(),
        "https://acme-2.auth.tenantbank.example/us/v3"
    );
    let smuggled = Client::builder("acme", "tenant-client", "tenant-secret")
        .version("v2/../../admin")
        .build();
    assert!(
        smuggled.is_err(),
        "a free variable is checked like the tenant"
    );
}

/// Values that would move a request to another host or path, were they filled in as given.
const SMUGGLED: &[&str] = &[
    "evil.example/x",
    "evil.example#",
    "evil.example?",
    "me@evil.example",
    "evil.example:8443",
    "..",
    "",
    "acme%2eevil",
];

#[test]
fn no_tenant_value_can_change_the_host() {
    for &smuggled in SMUGGLED {
        let built = Client::builder(smuggled, "tenant-client", "tenant-secret").build();
        let err = built.expect_err(smuggled);
        assert!(
            err.reason.contains("tenant"),
            "{smuggled:?}: {}",
            err.reason
        );
    }
}

#[test]
fn the_authorization_url_is_on_the_tenant_s_host() {
    let state = AuthorizationState::new("state-1").unwrap();
    let url = client("acme")
        .authorization_url(
            "https://app.example/callback",
            &["offline_access"],
            &state,
            None,
        )
        .unwrap();
    assert!(
        url.starts_with("https://acme.auth.tenantbank.example/eu/authorize?"),
        "{url}"
    );
}

#[tokio::test]
async fn an_application_s_base_url_wins_and_the_refresh_goes_there() {
    let spec = tokenkit_manager_tests::workspace().join("tests/fixtures/specs/tenantbank.yaml");
    let mock = tokenkit_mock::MockServer::start(tokenkit_mock::load(spec).unwrap())
        .await
        .unwrap();
    let client = Client::builder("acme", "tenant-client", "tenant-secret")
        .base_url(mock.base_url())
        .build()
        .unwrap();
    assert_eq!(client.base_url(), mock.base_url());
    let set = client.refresh(&RefreshToken::new("rt-1")).await.unwrap();
    assert_eq!(set.access_token.expose(), "at-tenantbank-2");
    assert_eq!(mock.requests().len(), 1);
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());
}

// Connections with their own values: one pool serves many tenants, each connection's requests
// go to its own tenant's host, and no value, stored or given, moves a token to another one.

use std::time::Duration;
use tokenkit::{ConnectionValues, ManagerError, MemoryStore, PoolConfig, TokenPool, TokenStore};
use tokenkit_manager_tests::{expired, workspace};

use tokenkit_mock::MockServer;

/// Two tenants' hosts, each a mock of Tenantbank on 127.0.0.1 (the names resolve to them), and
/// a client whose base URL is the spec's with plain http: each connection's `tenant` picks
/// the host its requests go to.
async fn two_tenants() -> (MockServer, MockServer, Client) {
    let spec = workspace().join("tests/fixtures/specs/tenantbank.yaml");
    let acme = MockServer::start(tokenkit_mock::load(&spec).unwrap())
        .await
        .unwrap();
    let globex = MockServer::start(tokenkit_mock::load(&spec).unwrap())
        .await
        .unwrap();
    let client = tokenkit_manager_tests::many_tenants(&[("acme", &acme), ("globex", &globex)])
        .build()
        .unwrap();
    (acme, globex, client)
}

fn tenant(name: &str) -> ConnectionValues {
    ConnectionValues::new().with("tenant", name)
}

/// The refresh tokens a mock was sent.
fn refreshed_with(mock: &MockServer) -> Vec<String> {
    mock.requests()
        .iter()
        .filter_map(|r| {
            url::form_urlencoded::parse(&r.request.body)
                .find(|(k, _)| k == "refresh_token")
                .map(|(_, v)| v.into_owned())
        })
        .collect()
}

#[test]
fn a_connection_s_values_rebuild_the_client_checked_as_the_builder_checks() {
    let base = client("acme");
    let us = base
        .with_values(&tenant("globex").with("region", "us"))
        .unwrap();
    assert_eq!(
        us.base_url(),
        "https://globex.auth.tenantbank.example/us/v2"
    );
    assert_eq!(
        us.values(),
        &tenant("globex").with("region", "us"),
        "the client knows the values it was built with"
    );
    assert_eq!(
        base.base_url(),
        "https://acme.auth.tenantbank.example/eu/v2"
    );
    assert!(base.values().is_empty());
    let state = AuthorizationState::new("state-1").unwrap();
    let url = us
        .authorization_url("https://app.example/cb", &[], &state, None)
        .unwrap();
    assert!(
        url.starts_with("https://globex.auth.tenantbank.example/us/authorize?"),
        "{url}"
    );
    let off_list = base.with_values(&tenant("acme").with("region", "mars"));
    assert!(off_list.unwrap_err().reason.contains("eu, us, ap"));
    let unknown = base.with_values(&ConnectionValues::new().with("tenat", "acme"));
    assert!(unknown.unwrap_err().reason.contains("\"tenat\""));
    assert_eq!(
        RefreshClient::variables(&base),
        tokenkit_tenantbank::VARIABLES
    );
    let names: Vec<&str> = tokenkit_tenantbank::VARIABLES
        .iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["tenant", "region", "version"]);
    assert!(tokenkit_tenantbank::VARIABLES[0].required());
    assert_eq!(
        tokenkit_tenantbank::VARIABLES[1].choices,
        ["eu", "us", "ap"]
    );
}

#[test]
fn no_connection_value_can_change_the_host() {
    let base = client("acme");
    for &smuggled in SMUGGLED {
        let err = base.with_values(&tenant(smuggled)).expect_err(smuggled);
        assert!(
            err.reason.contains("tenant"),
            "{smuggled:?}: {}",
            err.reason
        );
        let err = base
            .with_values(&tenant("acme").with("version", format!("v2/{smuggled}")))
            .expect_err(smuggled);
        assert!(
            err.reason.contains("version"),
            "{smuggled:?}: {}",
            err.reason
        );
    }
    // Where the spec bounds the host (`x-host-pattern`), a value off it is refused too.
    let domains = tokenkit_domainbank::Client::builder(
        "acme.domainbank.example",
        "domain-client",
        "domain-secret",
    )
    .build()
    .unwrap();
    let own = domains
        .with_values(&ConnectionValues::new().with("domain", "globex.domainbank.example"))
        .unwrap();
    assert_eq!(own.base_url(), "https://globex.domainbank.example/eu/v2");
    for elsewhere in [
        "evil.example",
        "domainbank.example.evil.example",
        "xdomainbank.example",
    ] {
        let err = domains
            .with_values(&ConnectionValues::new().with("domain", elsewhere))
            .expect_err(elsewhere);
        assert!(
            err.reason.contains("does not allow"),
            "{elsewhere}: {}",
            err.reason
        );
    }
}

#[tokio::test]
async fn one_pool_sends_each_connection_s_refresh_to_its_own_tenant() {
    let (acme, globex, client) = two_tenants().await;
    let store = MemoryStore::new();
    let pool = TokenPool::new(client.clone(), store.clone(), PoolConfig::default()).unwrap();
    assert!(
        pool.seed_with("a", &tenant("acme"), expired("rt-acme"))
            .await
            .unwrap()
    );
    assert!(
        pool.seed_with("g", &tenant("globex"), expired("rt-globex"))
            .await
            .unwrap()
    );
    pool.access_token("a").await.unwrap();
    pool.access_token("g").await.unwrap();
    assert_eq!(refreshed_with(&acme), ["rt-acme"]);
    assert_eq!(refreshed_with(&globex), ["rt-globex"]);
    assert!(acme.violations().is_empty() && globex.violations().is_empty());

    // The values are stored with the set, and a pool made later (a restart, another replica)
    // reads them: the connection's next refresh goes to its own tenant again.
    let stored = store.load(&pool.key_of("g")).await.unwrap().unwrap();
    assert_eq!(stored.tokens.values, tenant("globex"));
    assert_eq!(
        pool.stored_values("g").await.unwrap(),
        Some(tenant("globex"))
    );
    let mut due = stored.tokens.clone();
    due.expires_at = Some(std::time::SystemTime::now() - Duration::from_secs(1));
    store
        .save(&pool.key_of("g"), &due, Some(stored.version))
        .await
        .unwrap();
    let restarted = TokenPool::new(client, store.clone(), PoolConfig::default()).unwrap();
    restarted.access_token("g").await.unwrap();
    assert_eq!(
        refreshed_with(&acme),
        ["rt-acme"],
        "nothing of globex went to acme"
    );
    assert_eq!(refreshed_with(&globex).len(), 2);
}

#[tokio::test]
async fn a_stored_value_changed_by_hand_sends_nothing_anywhere() {
    let (acme, globex, client) = two_tenants().await;
    let store = MemoryStore::new();
    let pool = TokenPool::new(client.clone(), store.clone(), PoolConfig::default()).unwrap();
    pool.seed_with("a", &tenant("acme"), expired("rt-acme"))
        .await
        .unwrap();
    let key = pool.key_of("a");
    let stored = store.load(&key).await.unwrap().unwrap();

    // The set names acme's host as its issuer; values that point at globex are refused.
    let mut moved = stored.tokens.clone();
    moved.values = tenant("globex");
    store
        .save(&key, &moved, Some(stored.version))
        .await
        .unwrap();
    let fresh_pool = TokenPool::new(client.clone(), store.clone(), PoolConfig::default()).unwrap();
    let err = fresh_pool.access_token("a").await.unwrap_err();
    assert!(matches!(err, ManagerError::OtherIssuer { .. }), "{err}");

    // A value that would change the host's shape is refused before any client is built.
    let mut hostile = moved.clone();
    hostile.values = tenant("evil.example/x");
    store
        .save(&key, &hostile, Some(stored.version + 1))
        .await
        .unwrap();
    let fresh_pool = TokenPool::new(client.clone(), store.clone(), PoolConfig::default()).unwrap();
    let err = fresh_pool.access_token("a").await.unwrap_err();
    assert!(matches!(err, ManagerError::Values(_)), "{err}");

    // The same host, another region: the issuer matches, the values do not.
    let mut region = stored.tokens.clone();
    region.values = tenant("acme").with("region", "us");
    store
        .save(&key, &region, Some(stored.version + 2))
        .await
        .unwrap();
    let manager = tokenkit::TokenManager::new(
        client.with_values(&tenant("acme")).unwrap(),
        store.clone(),
        key.clone(),
    )
    .unwrap();
    let err = manager.access_token().await.unwrap_err();
    assert!(matches!(err, ManagerError::OtherValues), "{err}");
    assert!(acme.requests().is_empty() && globex.requests().is_empty());
}

#[tokio::test]
async fn a_stored_connection_keeps_its_values_until_it_is_removed() {
    let (acme, globex, client) = two_tenants().await;
    let store = MemoryStore::new();
    let pool = TokenPool::new(client.clone(), store.clone(), PoolConfig::default()).unwrap();
    pool.seed_with("c", &tenant("acme"), expired("rt-acme"))
        .await
        .unwrap();
    let err = pool
        .replace_with("c", &tenant("globex"), expired("rt-globex"))
        .await
        .unwrap_err();
    assert!(matches!(err, ManagerError::OtherIssuer { .. }), "{err}");
    assert!(
        !pool
            .seed_with("c", &tenant("globex"), expired("rt-globex"))
            .await
            .unwrap_or(false)
    );
    assert_eq!(pool.stored_values("c").await.unwrap(), Some(tenant("acme")));
    let refused = pool
        .seed_with("d", &tenant("evil.example#"), expired("rt-x"))
        .await;
    assert!(matches!(refused, Err(ManagerError::Values(_))));
    assert!(!pool.is_stored("d").await.unwrap());

    // A replace without values keeps the stored ones.
    pool.replace("c", expired("rt-acme-2")).await.unwrap();
    assert_eq!(pool.stored_values("c").await.unwrap(), Some(tenant("acme")));
    pool.force_refresh("c").await.unwrap();
    assert_eq!(refreshed_with(&acme), ["rt-acme-2"]);

    // Another process disconnects it and connects it again at globex: this pool's manager in
    // memory was made for acme, and is made again from the store.
    let other = TokenPool::new(client, store.clone(), PoolConfig::default()).unwrap();
    other.remove("c").await.unwrap();
    other
        .seed_with("c", &tenant("globex"), expired("rt-globex"))
        .await
        .unwrap();
    pool.force_refresh("c").await.unwrap();
    assert_eq!(refreshed_with(&globex), ["rt-globex"]);
    assert_eq!(refreshed_with(&acme), ["rt-acme-2"]);
}
