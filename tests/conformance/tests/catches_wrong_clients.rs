//! The suite is only worth something if it fails wrong clients. Each client here is wrong in
//! one way, and the case that should catch it must fail.

use std::time::SystemTime;
use tokenkit::{
    BoxFuture, BuildError, GrantClient, GrantType, HttpConfig, RefreshClient, RefreshError,
    RefreshToken, Rotation, Snippet, TokenSet,
};
use tokenkit_conformance::{Call, Subject, cases};
use tokenkit_vaultist as vaultist;

const SPEC: &str = "specs/vaultist.yaml";

/// Vault.ist's request, sent by hand without the required `partnerId` header.
struct DropsHeader {
    base_url: String,
    http: tokenkit::reqwest::Client,
    typed: vaultist::Client,
}

impl RefreshClient for DropsHeader {
    fn provider(&self) -> &'static str {
        "vaultist"
    }

    fn rotation(&self) -> Rotation {
        vaultist::ROTATION
    }

    fn refresh<'a>(
        &'a self,
        token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<TokenSet, RefreshError>> {
        Box::pin(async move {
            let response = self
                .http
                .post(format!("{}/v1/auth/token", self.base_url))
                .header("grantType", "refresh_token")
                .json(&self.typed.refresh_request(token))
                .send()
                .await
                .map_err(|_| RefreshError::Transport {
                    kind: tokenkit::TransportKind::Connect,
                    maybe_sent: false,
                })?;
            let body: vaultist::TokenResponse =
                response
                    .json()
                    .await
                    .map_err(|_| RefreshError::InvalidBody {
                        status: 200,
                        reason: "not a token response".into(),
                        body: Snippet::default(),
                    })?;
            vaultist::RefreshAccessTokenResponse::Ok(body).into_token_set(SystemTime::now())
        })
    }
}

fn drops_header(base_url: &str, _: HttpConfig) -> Result<Box<dyn RefreshClient>, BuildError> {
    Ok(Box::new(DropsHeader {
        base_url: base_url.to_owned(),
        http: tokenkit::reqwest::Client::new(),
        typed: vaultist::Client::builder(1042).base_url(base_url).build()?,
    }))
}

/// Answers every refresh with a token set, whatever the provider said.
struct IgnoresErrors;

impl RefreshClient for IgnoresErrors {
    fn provider(&self) -> &'static str {
        "vaultist"
    }

    fn rotation(&self) -> Rotation {
        vaultist::ROTATION
    }

    fn refresh<'a>(
        &'a self,
        token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<TokenSet, RefreshError>> {
        Box::pin(async move {
            Ok(TokenSet {
                access_token: "made-up".into(),
                refresh_token: Some(token.clone()),
                expires_at: None,
                token_type: None,
                refresh_expires_at: None,
                extras: Default::default(),
                origin: None,
                issuer: None,
                values: Default::default(),
            })
        })
    }
}

fn ignores_errors(_: &str, _: HttpConfig) -> Result<Box<dyn RefreshClient>, BuildError> {
    Ok(Box::new(IgnoresErrors))
}

/// The real client, but its errors quote the refresh token.
struct Leaks(vaultist::Client);

impl RefreshClient for Leaks {
    fn provider(&self) -> &'static str {
        "vaultist"
    }

    fn rotation(&self) -> Rotation {
        vaultist::ROTATION
    }

    fn refresh<'a>(
        &'a self,
        token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<TokenSet, RefreshError>> {
        Box::pin(async move {
            self.0
                .refresh(token)
                .await
                .map_err(|e| RefreshError::InvalidBody {
                    status: e.status().unwrap_or_default(),
                    reason: format!("refresh of {} failed: {e}", token.expose()),
                    body: Snippet::default(),
                })
        })
    }
}

fn leaks(base_url: &str, http: HttpConfig) -> Result<Box<dyn RefreshClient>, BuildError> {
    let client = vaultist::Client::builder(1042)
        .base_url(base_url)
        .http_config(http)
        .build()?;
    Ok(Box::new(Leaks(client)))
}

fn subject(build: tokenkit_conformance::support::Build) -> Subject {
    Subject {
        name: "vaultist",
        spec: SPEC,
        build,
        call: Call::Refresh,
    }
}

/// Grantbank's client, with grants that send the wrong request: client credentials sent as a
/// password login, and a code exchange that drops the PKCE verifier.
struct WrongGrants(tokenkit_grantbank::Client);

impl RefreshClient for WrongGrants {
    fn provider(&self) -> &'static str {
        "grantbank"
    }

    fn rotation(&self) -> Rotation {
        tokenkit_grantbank::ROTATION
    }

    fn refresh<'a>(
        &'a self,
        token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<TokenSet, RefreshError>> {
        self.0.refresh(token)
    }

    fn grants(&self) -> Option<&dyn GrantClient> {
        Some(self)
    }
}

impl GrantClient for WrongGrants {
    fn grant_types(&self) -> &'static [GrantType] {
        tokenkit_grantbank::GRANTS
    }

    fn client_credentials(&self) -> Option<BoxFuture<'_, Result<TokenSet, RefreshError>>> {
        Some(Box::pin(async move {
            let password = tokenkit::Secret::new("pw");
            self.0.password_grant("svc", &password).await
        }))
    }

    fn exchange_code<'a>(
        &'a self,
        exchange: &'a tokenkit::CodeExchange,
    ) -> Option<BoxFuture<'a, Result<TokenSet, RefreshError>>> {
        Some(Box::pin(self.0.authorization_code_grant(
            &exchange.code,
            &exchange.redirect_uri,
            None,
        )))
    }
}

fn wrong_grants(base_url: &str, http: HttpConfig) -> Result<Box<dyn RefreshClient>, BuildError> {
    let client = tokenkit_grantbank::Client::builder("id", "secret")
        .base_url(base_url)
        .http_config(http)
        .build()?;
    Ok(Box::new(WrongGrants(client)))
}

fn grant_subject(call: Call) -> Subject {
    Subject {
        name: "grantbank",
        spec: "tests/fixtures/specs/grantbank.yaml",
        build: wrong_grants,
        call,
    }
}

#[tokio::test]
async fn the_wrong_grant_request_fails_request_conforms() {
    let reason = cases::request_conforms(&grant_subject(Call::Grant(GrantType::ClientCredentials)))
        .await
        .unwrap_err();
    assert!(reason.contains("not a ClientCredentials grant"), "{reason}");
    let reason = cases::request_conforms(&grant_subject(Call::Grant(GrantType::AuthorizationCode)))
        .await
        .unwrap_err();
    assert!(reason.contains("code_verifier"), "{reason}");
}

#[tokio::test]
async fn a_missing_required_header_fails_request_conforms() {
    let reason = cases::request_conforms(&subject(drops_header))
        .await
        .unwrap_err();
    assert!(reason.contains("partnerId"), "{reason}");
}

#[tokio::test]
async fn ignoring_error_statuses_fails_documented_errors_and_success() {
    let reason = cases::documented_errors(&subject(ignores_errors))
        .await
        .unwrap_err();
    assert!(reason.contains("token set"), "{reason}");
    assert!(cases::success(&subject(ignores_errors)).await.is_err());
    assert!(
        cases::undocumented_status(&subject(ignores_errors))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_token_in_an_error_fails_no_secret_in_output() {
    let reason = cases::no_secret_in_output(&subject(leaks))
        .await
        .unwrap_err();
    assert!(reason.contains("shows in"), "{reason}");
}

#[tokio::test]
async fn the_real_client_passes_the_same_cases() {
    let real = |base_url: &str, http: HttpConfig| -> Result<Box<dyn RefreshClient>, BuildError> {
        Ok(Box::new(
            vaultist::Client::builder(1042)
                .base_url(base_url)
                .http_config(http)
                .build()?,
        ))
    };
    let subject = subject(real);
    cases::request_conforms(&subject).await.unwrap();
    cases::documented_errors(&subject).await.unwrap();
    cases::no_secret_in_output(&subject).await.unwrap();
}
