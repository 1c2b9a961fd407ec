//! Encryption at rest for any token store: a copied Redis dump, backup or token directory
//! yields no usable token.
//!
//! Every set is sealed with AES-256-GCM (aws-lc-rs, the crypto rustls already brings) under the
//! application's current key, with a fresh random 96-bit nonce, and bound to its credential's
//! key and its version (the associated data), so a sealed set moved to another credential, or
//! put back under a later version by someone with write access to the store (a rollback to a
//! spent refresh token that no process would take for one), does not open. The
//! key's id travels with the set, so older keys still open the sets they sealed (rotation):
//! sets are re-sealed under the current key at their next write.

use super::Due;
use super::{Reported, Saved, StoreError, StoreLock, Stored, TokenStore};
use crate::client::BoxFuture;
use crate::error::BuildError;
use crate::token::TokenSet;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fmt;
use std::time::Duration;

/// What a sealed set's text starts with: the format, then `<key id>.<version>.<nonce and
/// ciphertext>`.
const PREFIX: &str = "tokenkit-sealed-v2.";

/// The format before versions were bound (`<key id>.<nonce and ciphertext>`, bound to the
/// credential only): still opened, and sealed anew at the set's next write.
const PREFIX_V1: &str = "tokenkit-sealed-v1.";

/// One AES-256 key and its id. `Debug` shows the id only.
#[derive(Clone)]
pub struct EncryptionKey {
    id: String,
    key: std::sync::Arc<LessSafeKey>,
}

impl EncryptionKey {
    /// A key from 32 bytes the application keeps (a secrets manager, an environment variable),
    /// named `id` (1 to 32 of `A-Z a-z 0-9 _ -`): the id is stored with every set it seals,
    /// never the key.
    pub fn new(id: &str, bytes: &[u8]) -> Result<Self, BuildError> {
        let valid_id = !id.is_empty()
            && id.len() <= 32
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_id {
            return Err(BuildError {
                reason: "a key id is 1 to 32 characters of A-Z, a-z, 0-9, _ and -".into(),
            });
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| BuildError {
            reason: format!("key {id:?} has {} bytes; AES-256 needs 32", bytes.len()),
        })?;
        Ok(Self {
            id: id.to_owned(),
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
        })
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey({}, {})", self.id, crate::REDACTED)
    }
}

/// A token store whose sets are encrypted at rest; everything else (versions, marks, locks) is
/// the inner store's.
///
/// ```no_run
/// # fn demo(key_bytes: &[u8], old_bytes: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
/// use tokenkit::{EncryptedStore, EncryptionKey, FileStore};
/// let store = EncryptedStore::new(
///     FileStore::new("/var/lib/my-service/tokens")?,
///     EncryptionKey::new("2026-11", key_bytes)?,
/// )
/// .with_previous(EncryptionKey::new("2026-05", old_bytes)?); // still opens older sets
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct EncryptedStore<S> {
    inner: S,
    current: EncryptionKey,
    previous: Vec<EncryptionKey>,
    read_plaintext: bool,
}

impl<S: fmt::Debug> fmt::Debug for EncryptedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedStore")
            .field("inner", &self.inner)
            .field("current", &self.current)
            .field("previous", &self.previous)
            .finish()
    }
}

impl<S> EncryptedStore<S> {
    /// `inner`, with every set sealed under `current`.
    pub fn new(inner: S, current: EncryptionKey) -> Self {
        Self {
            inner,
            current,
            previous: Vec::new(),
            read_plaintext: false,
        }
    }

    /// Also opens sets sealed under `key` (an earlier key, after a rotation).
    #[must_use]
    pub fn with_previous(mut self, key: EncryptionKey) -> Self {
        self.previous.push(key);
        self
    }

    /// Reads sets stored before encryption was turned on (they are sealed at their next
    /// write). Off by default: a plaintext set where sealed ones are expected is refused.
    #[must_use]
    pub fn read_plaintext(mut self, allow: bool) -> Self {
        self.read_plaintext = allow;
        self
    }

    /// The store underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The set sealed for `key`: one opaque text in place of the access token, and the refresh
    /// token's expiry in the clear (a time, no secret), so that the store underneath can index
    /// it for a keeper.
    fn seal(&self, key: &str, version: u64, tokens: &TokenSet) -> Result<TokenSet, StoreError> {
        let mut sealed = super::record::encode(0, tokens);
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|_| StoreError::new("no randomness for an encryption nonce"))?;
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(key, Some(version)).as_bytes()),
                &mut sealed,
            )
            .map_err(|_| StoreError::new("cannot encrypt the token set"))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        let text = format!(
            "{PREFIX}{}.{version}.{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(blob)
        );
        Ok(TokenSet {
            access_token: text.into(),
            refresh_token: None,
            expires_at: None,
            token_type: None,
            refresh_expires_at: tokens.refresh_expires_at,
            extras: Default::default(),
            origin: None,
            issuer: None,
            values: Default::default(),
        })
    }

    /// The set a sealed one holds; errors name the credential and the key id, never a value.
    fn open(&self, key: &str, stored: Stored) -> Result<Stored, StoreError> {
        let text = stored.tokens.access_token.expose();
        let (rest, bound) = if let Some(rest) = text.strip_prefix(PREFIX) {
            (rest, true)
        } else if let Some(rest) = text.strip_prefix(PREFIX_V1) {
            (rest, false)
        } else {
            if self.read_plaintext {
                return Ok(stored);
            }
            return Err(StoreError::new(format!(
                "the token set of {key:?} is stored unencrypted; refusing it (EncryptedStore::read_plaintext(true) reads sets stored before encryption was turned on)"
            )));
        };
        let (id, blob) = rest.split_once('.').unwrap_or((rest, ""));
        let (sealed_version, blob) = if bound {
            let (version, blob) = blob.split_once('.').unwrap_or(("", blob));
            (version.parse::<u64>().ok(), blob)
        } else {
            (None, blob)
        };
        if bound && sealed_version != Some(stored.version) {
            return Err(StoreError::new(format!(
                "the token set of {key:?} was sealed as version {} but is stored as version {}: put back or moved by someone with access to the store; nothing was changed",
                sealed_version.map_or_else(|| "?".to_owned(), |v| v.to_string()),
                stored.version
            )));
        }
        let Some(found) = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
        else {
            return Err(StoreError::new(format!(
                "the token set of {key:?} was encrypted with key {id:?}, which this store was not given; nothing was changed"
            )));
        };
        let opened = URL_SAFE_NO_PAD
            .decode(blob)
            .ok()
            .filter(|b| b.len() > NONCE_LEN)
            .and_then(|b| {
                let (nonce, sealed) = b.split_at(NONCE_LEN);
                let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
                let mut sealed = sealed.to_vec();
                let plain = found
                    .key
                    .open_in_place(
                        nonce,
                        Aad::from(aad(key, sealed_version).as_bytes()),
                        &mut sealed,
                    )
                    .ok()?;
                super::record::decode(plain).ok()
            });
        let Some(inner) = opened else {
            return Err(StoreError::new(format!(
                "the token set of {key:?} does not open with key {id:?} (a different key under that id, or a set moved from another credential); nothing was changed"
            )));
        };
        Ok(Stored {
            version: stored.version,
            tokens: inner.tokens,
            sending: stored.sending,
            dead: stored.dead,
            expiring: stored.expiring,
            announced: stored.announced,
            read_at: stored.read_at,
        })
    }
}

impl<S: TokenStore> EncryptedStore<S> {
    /// Seals `tokens` as the version the write makes (`expected` + 1) and writes it. A store
    /// that numbers it otherwise (the first set after a removal comes after the removed one)
    /// gets it sealed and written once more as the version after that.
    async fn save_sealed(
        &self,
        key: &str,
        tokens: &TokenSet,
        expected: Option<u64>,
        lock: Option<&StoreLock>,
        release: bool,
    ) -> Result<Saved, StoreError> {
        // A first set may be renumbered (after a removal) and sealed again: only a write that
        // cannot be is the last, which may give the lock up.
        let write = |sealed: TokenSet, expected: Option<u64>| async move {
            match lock {
                Some(lock) if release && expected.is_some() => {
                    self.inner
                        .save_releasing(key, &sealed, expected, lock)
                        .await
                }
                Some(lock) => self.inner.save_fenced(key, &sealed, expected, lock).await,
                None => self.inner.save(key, &sealed, expected).await,
            }
        };
        let version = expected.unwrap_or(0) + 1;
        match write(self.seal(key, version, tokens)?, expected).await? {
            Saved::Written(written) if written != version => {
                write(self.seal(key, written + 1, tokens)?, Some(written)).await
            }
            saved => Ok(saved),
        }
    }
}

impl Stored {
    /// The id of the key that sealed this set, when it was read from an [`EncryptedStore`]'s
    /// inner store without the key (its tokens are ciphertext then); `None` for an open set.
    pub fn sealed_with(&self) -> Option<&str> {
        let text = self.tokens.access_token.expose();
        let rest = text
            .strip_prefix(PREFIX)
            .or_else(|| text.strip_prefix(PREFIX_V1))?;
        rest.split('.').next()
    }
}

/// The associated data: a sealed set opens only as the set of the credential (and, since the
/// v2 format, the version) it was sealed for.
fn aad(key: &str, version: Option<u64>) -> String {
    match version {
        Some(version) => format!("tokenkit token set {key} version {version}"),
        None => format!("tokenkit token set {key}"),
    }
}

impl<S: TokenStore> TokenStore for EncryptedStore<S> {
    fn watch(&self, key: &str) -> super::ChangeWatch {
        self.inner.watch(key)
    }

    /// The inner store's index of refresh-token expiries (kept in the clear).
    fn due<'a>(
        &'a self,
        prefix: &'a str,
        until: std::time::SystemTime,
        after: super::DueAfter<'a>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Due>, StoreError>> {
        self.inner.due(prefix, until, after, limit)
    }

    /// The inner store's claims on its index.
    fn claim_due<'a>(
        &'a self,
        prefix: &'a str,
        until: std::time::SystemTime,
        after: super::DueAfter<'a>,
        limit: usize,
        claim: super::DueClaim<'a>,
    ) -> BoxFuture<'a, Result<Option<super::ClaimedDue>, StoreError>> {
        self.inner.claim_due(prefix, until, after, limit, claim)
    }

    fn release_claims<'a>(
        &'a self,
        keys: &'a [String],
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.release_claims(keys, owner)
    }

    /// The inner store's keys: keys are not encrypted, only the sets.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, StoreError>> {
        self.inner.list(prefix)
    }

    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        Box::pin(async move {
            match self.inner.load(key).await? {
                Some(stored) => self.open(key, stored).map(Some),
                None => Ok(None),
            }
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(self.save_sealed(key, tokens, expected, None, false))
    }

    fn save_fenced<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(self.save_sealed(key, tokens, expected, Some(lock), false))
    }

    fn save_releasing<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(self.save_sealed(key, tokens, expected, Some(lock), true))
    }

    fn restore<'a>(
        &'a self,
        key: &'a str,
        set: &'a Stored,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(async move {
            let sealed = Stored {
                version: set.version,
                tokens: self.seal(key, set.version, &set.tokens)?,
                sending: set.sending,
                dead: set.dead,
                expiring: set.expiring,
                announced: set.announced,
                read_at: None,
            };
            self.inner.restore(key, &sealed, lock).await
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        self.inner.delete(key, lock)
    }

    fn mark_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.inner.mark_sending(key, version, lock)
    }

    fn clear_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.clear_sending(key, version, lock)
    }

    fn mark_reported<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        what: Reported,
        lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.inner.mark_reported(key, version, what, lock)
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        self.inner.try_lock(key, ttl)
    }

    /// The inner store's lock with its set, opened (a set that does not open is left off:
    /// the holder's own load reports why).
    fn try_lock_loading<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        Box::pin(async move {
            let Some(lock) = self.inner.try_lock_loading(key, ttl).await? else {
                return Ok(None);
            };
            let open = lock.take_set().and_then(|s| self.open(key, s).ok());
            Ok(Some(lock.with_set(open)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    /// A set holding `refresh`, its access token `at-<refresh>`.
    fn tokens(refresh: &str) -> TokenSet {
        TokenSet {
            access_token: format!("at-{refresh}").into(),
            refresh_token: Some(refresh.into()),
            expires_at: None,
            token_type: None,
            refresh_expires_at: None,
            extras: Default::default(),
            origin: None,
            issuer: None,
            values: Default::default(),
        }
    }

    fn key(id: &str, byte: u8) -> EncryptionKey {
        EncryptionKey::new(id, &[byte; 32]).unwrap()
    }

    #[test]
    fn keys_are_checked_and_never_shown() {
        assert!(EncryptionKey::new("k", &[0; 16]).is_err());
        assert!(EncryptionKey::new("", &[0; 32]).is_err());
        assert!(EncryptionKey::new("a.b", &[0; 32]).is_err());
        let k = EncryptionKey::new("k-1", &[7; 32]).unwrap();
        assert_eq!(format!("{k:?}"), "EncryptionKey(k-1, [redacted])");
    }

    #[tokio::test]
    async fn a_set_put_back_under_a_later_version_does_not_open() {
        let memory = MemoryStore::new();
        let store = EncryptedStore::new(memory.clone(), key("a", 1));
        let set = tokens;
        assert_eq!(
            store.save("k", &set("rt-1"), None).await.unwrap(),
            Saved::Written(1)
        );
        let spent = memory.load("k").await.unwrap().unwrap();
        store.save("k", &set("rt-2"), Some(1)).await.unwrap();
        // Someone with write access puts version 1's sealed set back as the current version.
        memory.save("k", &spent.tokens, Some(2)).await.unwrap();
        let err = store.load("k").await.unwrap_err();
        assert!(err.message.contains("sealed as version 1"), "{err}");
        assert!(!err.message.contains("rt-1"), "{err}");
        // After a removal the store numbers the next set after the removed one: it is sealed
        // as that version and opens.
        let lock = memory
            .try_lock("k", Duration::from_secs(1))
            .await
            .unwrap()
            .unwrap();
        store.delete("k", &lock).await.unwrap();
        lock.release().await;
        let saved = store.save("k", &set("rt-new"), None).await.unwrap();
        assert!(matches!(saved, Saved::Written(v) if v > 3), "{saved:?}");
        let opened = store.load("k").await.unwrap().unwrap();
        assert_eq!(opened.tokens.refresh_token.unwrap().expose(), "rt-new");
    }

    #[tokio::test]
    async fn a_set_moved_to_another_credential_does_not_open() {
        let memory = MemoryStore::new();
        let store = EncryptedStore::new(memory.clone(), key("a", 1));
        let tokens = tokens("rt-SENTINEL");
        store.save("alice", &tokens, None).await.unwrap();
        let sealed = memory.load("alice").await.unwrap().unwrap();
        memory.save("bob", &sealed.tokens, None).await.unwrap();
        let err = store.load("bob").await.unwrap_err();
        assert!(err.message.contains("does not open"), "{err}");
        assert_eq!(store.load("alice").await.unwrap().unwrap().tokens, tokens);
    }
}
