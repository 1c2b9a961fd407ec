//! The hand-written runtime under every generated token-refresh client.
//!
//! - [`TokenSet`]: the normalized result of a refresh, with an absolute expiry.
//! - [`Secret`], [`AccessToken`], [`RefreshToken`]: strings whose `Debug` and `Display` redact.
//! - [`RefreshError`] and [`ErrorKind`]: what failed, classed by what the caller should do.
//! - [`RefreshClient`] and [`GrantClient`]: the traits every generated client implements
//!   (module [`client`]).
//! - [`PkceVerifier`], [`AuthorizationState`], [`authorization_url`]: the authorization-code
//!   flow's helpers (module [`authorization`]).
//! - [`HttpConfig`]: the HTTP settings a client's builder takes (no redirects, timeouts, a cap
//!   on the response body).
//! - [`TokenManager`]: a valid access token on demand, refreshed once under any concurrency,
//!   persisted to a [`TokenStore`] before anyone sees it.
//! - [`support`]: what generated code calls (the endpoint, the transport, the mapping
//!   functions, the builder and trait macros); applications need none of it.
//!
//! # Choosing a store
//!
//! | deployment | store |
//! |---|---|
//! | one process | [`MemoryStore`], or [`FileStore`] to survive restarts |
//! | several processes on one host | [`FileStore`] on a directory they share |
//! | several hosts or replicas | `RedisStore` (cargo feature `redis`), or `PostgresStore` (cargo feature `postgres`) |

pub mod assertion;
pub mod authorization;
pub mod client;
mod clock;
pub mod error;
pub mod events;
pub mod keeper;
pub mod manager;
pub mod pool;
pub mod secret;
pub mod snippet;
pub mod store;
pub mod support;
pub mod token;
pub mod values;

pub use assertion::{AssertionClaims, SigningAlgorithm, SigningKey};
pub use authorization::{
    AuthorizationState, ConsentRequest, PkceChallenge, PkceVerifier, authorization_url,
};
pub use client::{
    BoxFuture, CodeExchange, GrantClient, GrantType, PasswordLogin, RefreshClient, RefreshWith,
    Rotation, TokenTypeHint,
};
pub use error::{BuildError, ErrorKind, ProviderError, RefreshError, TransportKind};
pub use events::TokenEvent;
pub use keeper::{Keeper, KeeperConfig, KeeperStats};
pub use manager::{
    ClientCredentialsFallback, ManagerConfig, ManagerError, ReAuthenticate, Revocation,
    RevokeOutcome, TokenManager,
};
pub use pool::{PoolConfig, TokenPool};
pub use secret::{AccessToken, REDACTED, RefreshToken, Secret};
pub use snippet::Snippet;
pub use store::{
    ChangeWatch, ClaimedDue, Copied, Due, DueAfter, DueClaim, EncryptedStore, EncryptionKey,
    FileStore, MemoryStore, Reported, Saved, StoreError, StoreLock, Stored, TokenStore,
    copy_connections,
};
#[cfg(feature = "postgres")]
pub use store::{PostgresOptions, PostgresStore};
#[cfg(feature = "redis")]
pub use store::{RedisOptions, RedisStore, WaitForReplicas};
pub use support::http::HttpConfig;
pub use token::{Origin, TimeFormat, TokenSet, expiry_from, instant_from};
pub use values::{ConnectionValues, Variable};

/// Re-exported so generated crates use the same HTTP types as the runtime.
pub use reqwest;
