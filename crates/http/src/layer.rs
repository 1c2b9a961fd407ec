//! The tower `Layer`: [`AuthLayer`] over any `Service<http::Request<B>>`.

use crate::{AuthConfig, Connection, TokenSource};
use http::{Request, Response};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokenkit::ManagerError;
use tokenkit::client::BoxFuture;

/// A request body that may be sent again after a refusal: bodies held in memory can, streams
/// cannot (a request with one is not retried, and the API's answer comes back as it was).
pub trait ReplayBody: Sized {
    /// A copy to send again, or `None` when this body cannot be replayed.
    fn try_clone(&self) -> Option<Self>;
}

impl ReplayBody for http_body_util::Full<bytes::Bytes> {
    fn try_clone(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl ReplayBody for http_body_util::Empty<bytes::Bytes> {
    fn try_clone(&self) -> Option<Self> {
        Some(*self)
    }
}

impl ReplayBody for String {
    fn try_clone(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl ReplayBody for bytes::Bytes {
    fn try_clone(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<E> ReplayBody for http_body_util::combinators::BoxBody<bytes::Bytes, E> {
    fn try_clone(&self) -> Option<Self> {
        None
    }
}

impl<E> ReplayBody for http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, E> {
    fn try_clone(&self) -> Option<Self> {
        None
    }
}

impl<L: ReplayBody, R: ReplayBody> ReplayBody for http_body_util::Either<L, R> {
    fn try_clone(&self) -> Option<Self> {
        match self {
            Self::Left(l) => l.try_clone().map(Self::Left),
            Self::Right(r) => r.try_clone().map(Self::Right),
        }
    }
}

/// Adds the token to every request and heals a refusal once (see the crate docs).
#[derive(Clone, Debug)]
pub struct AuthLayer<T> {
    source: Arc<T>,
    config: Arc<AuthConfig>,
}

impl<T: TokenSource> AuthLayer<T> {
    /// A layer taking tokens from `source` (a `TokenManager`, a `TokenPool`, or an `Arc` of
    /// one) for requests to `hosts` (see [`AllowedHosts`](crate::AllowedHosts)), with the
    /// default [`AuthConfig`] otherwise.
    pub fn new(source: T, hosts: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        Self::with_config(source, AuthConfig::for_hosts(hosts))
    }

    /// Like [`AuthLayer::new`], configured.
    pub fn with_config(source: T, config: AuthConfig) -> Self {
        Self {
            source: Arc::new(source),
            config: Arc::new(config),
        }
    }
}

impl<S, T> tower_layer::Layer<S> for AuthLayer<T> {
    type Service = AuthService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            source: Arc::clone(&self.source),
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone, Debug)]
pub struct AuthService<S, T> {
    inner: S,
    source: Arc<T>,
    config: Arc<AuthConfig>,
}

/// What the layered service fails with: the inner service's error, or the token's.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

impl<S, T, B, RB> tower_service::Service<Request<B>> for AuthService<S, T>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<Error>,
    T: TokenSource,
    B: ReplayBody + Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Response<RB>, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The ready service answers this call; a fresh clone waits for the retry's turn.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (source, config) = (Arc::clone(&self.source), Arc::clone(&self.config));
        Box::pin(async move {
            let uri = request.uri();
            config.check(uri.scheme_str(), uri.host(), uri.port_u16())?;
            let connection = request.extensions().get::<Connection>().cloned();
            let credential = source.credential(connection.as_ref()).await?;
            let value = config.value(&credential.token, credential.token_type.as_deref())?;
            request.headers_mut().insert(config.header.clone(), value);
            let replay = replay_of(&request);
            let response = inner.call(request).await.map_err(Into::into)?;
            let Some(mut replay) = replay.filter(|_| (config.rejected)(response.status())) else {
                return Ok(response);
            };
            match source
                .rejected(connection.as_ref(), &credential.token)
                .await
            {
                Ok(renewed) => {
                    let value = config.value(&renewed.token, renewed.token_type.as_deref())?;
                    replay.headers_mut().insert(config.header.clone(), value);
                    // Ready again before the second call, as tower asks.
                    std::future::poll_fn(|cx| inner.poll_ready(cx))
                        .await
                        .map_err(Into::into)?;
                    inner.call(replay).await.map_err(Into::into)
                }
                // Throttled, or no other token: the API's own answer.
                Err(ManagerError::TokenRejected) => Ok(response),
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// A copy of `request` to send again, when its body can be.
fn replay_of<B: ReplayBody>(request: &Request<B>) -> Option<Request<B>> {
    let body = request.body().try_clone()?;
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}
