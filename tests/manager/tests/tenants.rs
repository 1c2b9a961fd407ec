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

#[test]
fn no_tenant_value_can_change_the_host() {
    for smuggled in [
        "evil.example/x",
        "evil.example#",
        "evil.example?",
        "me@evil.example",
        "evil.example:8443",
        "..",
        "",
        "acme%2eevil",
    ] {
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
