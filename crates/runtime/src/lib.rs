//! The hand-written runtime under every generated token-refresh client.
//!
//! - [`TokenSet`]: the normalized result of a refresh, with an absolute expiry.
//! - [`Secret`], [`AccessToken`], [`RefreshToken`]: strings whose `Debug` and `Display` redact.
//! - [`RefreshError`] and [`ErrorKind`]: what failed, classed by what the caller should do.
//! - [`RefreshClient`]: the trait every generated client implements.
//! - [`Transport`] and [`HttpConfig`]: the HTTP defaults the generated clients share (no
//!   redirects, timeouts, a cap on the response body).
//! - [`TokenManager`]: a valid access token on demand, refreshed once under any concurrency,
//!   persisted to a [`TokenStore`] before anyone sees it.
//!
//! # Choosing a store
//!
//! | deployment | store |
//! |---|---|
//! | one process | [`MemoryStore`], or [`FileStore`] to survive restarts |
//! | several processes on one host | [`FileStore`] on a directory they share |
//! | several hosts or replicas | `RedisStore` (cargo feature `redis`) |

mod clock;
pub mod endpoint;
pub mod error;
pub mod grant;
pub mod http;
pub mod manager;
pub mod mapping;
pub mod refresh;
pub mod secret;
pub mod snippet;
pub mod store;
pub mod token;

pub use endpoint::{Encoding, Endpoint, Operation, TokenPlace};
pub use error::{BuildError, ErrorKind, ProviderError, RefreshError, TransportKind};
pub use grant::{
    AuthorizationState, CodeExchange, GrantClient, GrantType, PasswordLogin, PkceChallenge,
    PkceVerifier, authorization_url,
};
pub use http::{Connection, HttpConfig, Response, Transport, Undocumented};
pub use manager::{
    ClientCredentialsFallback, ManagerConfig, ManagerError, ReAuthenticate, TokenManager,
};
pub use refresh::{BoxFuture, RefreshClient, Rotation};
pub use secret::{AccessToken, REDACTED, RefreshToken, Secret};
pub use snippet::Snippet;
pub use store::{
    EncryptedStore, EncryptionKey, FileStore, MemoryStore, Saved, StoreError, StoreLock, Stored,
    TokenStore,
};
#[cfg(feature = "redis")]
pub use store::{RedisOptions, RedisStore, WaitForReplicas};
pub use token::{Origin, TimeFormat, TokenSet, expiry_from, instant_from};

/// Re-exported so generated crates use the same HTTP types as the runtime.
pub use reqwest;
