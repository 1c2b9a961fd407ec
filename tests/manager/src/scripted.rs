//! A scripted client, for decisions that depend on exactly what failed.

use super::*;
use tokenkit::{BoxFuture, FileStore, RefreshClient, RefreshError, Rotation, TransportKind};

/// A scripted client, for the decisions that depend on exactly what failed.
pub struct Scripted {
    /// The rotation it declares.
    pub rotation: Rotation,
    /// The answers still to give, last first.
    pub answers: std::sync::Mutex<Vec<Result<TokenSet, RefreshError>>>,
    /// The refresh tokens sent so far.
    pub sent: std::sync::Mutex<Vec<String>>,
    /// Runs before answering: lets a test play "another process".
    pub before: Box<dyn Fn(usize) + Send + Sync>,
    /// The provider's reuse grace (the spec's `reuse-grace`), if any.
    pub grace: Option<Duration>,
}

impl Scripted {
    /// A client that gives `answers` in order.
    pub fn new(rotation: Rotation, mut answers: Vec<Result<TokenSet, RefreshError>>) -> Self {
        answers.reverse();
        Self {
            rotation,
            answers: answers.into(),
            sent: Vec::new().into(),
            before: Box::new(|_| {}),
            grace: None,
        }
    }

    /// The refresh tokens sent, in order.
    pub fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

impl RefreshClient for Scripted {
    fn provider(&self) -> &'static str {
        "scripted"
    }

    fn rotation(&self) -> Rotation {
        self.rotation
    }

    fn reuse_grace(&self) -> Option<Duration> {
        self.grace
    }

    fn refresh<'a>(
        &'a self,
        token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<TokenSet, RefreshError>> {
        let n = {
            let mut sent = self.sent.lock().unwrap();
            sent.push(token.expose().to_owned());
            sent.len()
        };
        (self.before)(n);
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop()
            .expect("a scripted answer");
        Box::pin(async move { answer })
    }
}

/// A timeout after the request may have been sent.
pub fn timeout() -> RefreshError {
    RefreshError::Transport {
        kind: TransportKind::Timeout,
        maybe_sent: true,
    }
}

/// The default configuration with a 1 ms backoff.
pub fn quick() -> ManagerConfig {
    ManagerConfig {
        backoff: Duration::from_millis(1),
        ..ManagerConfig::default()
    }
}

/// The stored set of `k` and its version (not its marks: a failure may mark it).
pub async fn stored_set(store: &FileStore) -> (u64, tokenkit::TokenSet) {
    let stored = tokenkit::TokenStore::load(store, "k")
        .await
        .unwrap()
        .expect("a stored set");
    (stored.version, stored.tokens)
}
