//! The hand-written runtime under every generated token-refresh client.
//!
//! - [`TokenSet`]: the normalized result of a refresh, with an absolute expiry.
//! - [`Secret`], [`AccessToken`], [`RefreshToken`]: strings whose `Debug` and `Display` redact.
//! - [`RefreshError`] and [`ErrorKind`]: what failed, classed by what the caller should do.
//! - [`RefreshClient`]: the trait every generated client implements.
//! - [`Transport`] and [`HttpConfig`]: the HTTP defaults the generated clients share (no
//!   redirects, timeouts, a cap on the response body).

pub mod error;
pub mod http;
pub mod mapping;
pub mod refresh;
pub mod secret;
pub mod snippet;
pub mod token;

pub use error::{BuildError, ErrorKind, ProviderError, RefreshError, TransportKind};
pub use http::{HttpConfig, Response, Transport};
pub use refresh::{BoxFuture, RefreshClient, Rotation};
pub use secret::{AccessToken, REDACTED, RefreshToken, Secret};
pub use snippet::Snippet;
pub use token::{TokenSet, expiry_from};

/// Re-exported so generated crates use the same HTTP types as the runtime.
pub use reqwest;
