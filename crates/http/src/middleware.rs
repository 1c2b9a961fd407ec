//! The `reqwest-middleware` `Middleware`: [`AuthMiddleware`], the same core as the tower layer.

use crate::{AuthConfig, Connection, TokenSource};
use http::Extensions;
use reqwest_middleware::reqwest::{Request, Response};
use reqwest_middleware::{Error, Middleware, Next, Result};
use std::sync::Arc;
use tokenkit::ManagerError;

/// Adds the token to every request and heals a refusal once (see the crate docs). The
/// connection of a pool goes in the request's extensions (`.with_extension(Connection::new(..))`
/// on reqwest-middleware's request builder).
#[derive(Debug)]
pub struct AuthMiddleware<T> {
    source: Arc<T>,
    config: Arc<AuthConfig>,
}

impl<T: TokenSource> AuthMiddleware<T> {
    /// A middleware taking tokens from `source` for requests to `hosts` (see
    /// [`AllowedHosts`](crate::AllowedHosts)), with the default [`AuthConfig`] otherwise.
    pub fn new(source: T, hosts: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        Self::with_config(source, AuthConfig::for_hosts(hosts))
    }

    /// Like [`AuthMiddleware::new`], configured.
    pub fn with_config(source: T, config: AuthConfig) -> Self {
        Self {
            source: Arc::new(source),
            config: Arc::new(config),
        }
    }
}

#[async_trait::async_trait]
impl<T: TokenSource> Middleware for AuthMiddleware<T> {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let url = request.url();
        self.config
            .check(Some(url.scheme()), url.host_str(), url.port())
            .map_err(Error::middleware)?;
        let connection = extensions.get::<Connection>().cloned();
        let credential = self
            .source
            .credential(connection.as_ref())
            .await
            .map_err(Error::middleware)?;
        let value = self
            .config
            .value(&credential.token, credential.token_type.as_deref())
            .map_err(Error::middleware)?;
        request
            .headers_mut()
            .insert(self.config.header.clone(), value);
        // A streaming body cannot be cloned: such a request is not retried.
        let replay = request.try_clone();
        let response = next.clone().run(request, extensions).await?;
        let Some(mut replay) = replay.filter(|_| (self.config.rejected)(response.status())) else {
            return Ok(response);
        };
        match self
            .source
            .rejected(connection.as_ref(), &credential.token)
            .await
        {
            Ok(renewed) => {
                let value = self
                    .config
                    .value(&renewed.token, renewed.token_type.as_deref())
                    .map_err(Error::middleware)?;
                replay
                    .headers_mut()
                    .insert(self.config.header.clone(), value);
                next.run(replay, extensions).await
            }
            Err(ManagerError::TokenRejected) => Ok(response),
            Err(e) => Err(Error::middleware(e)),
        }
    }
}
