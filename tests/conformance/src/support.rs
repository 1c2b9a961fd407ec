//! What the cases share: the subject under test, its spec's model, its mock, and readers of the
//! spec's examples.

use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use tokenkit::{BuildError, HttpConfig, RefreshClient};
use tokenkit_codegen::Provider;
use tokenkit_codegen::extension::GrantKind;
use tokenkit_codegen::model::{Mapped, TokenOperation};
use tokenkit_codegen::types::Access;
use tokenkit_mock::MockServer;

/// Builds a provider's client for a base URL and HTTP settings.
pub type Build = fn(&str, HttpConfig) -> Result<Box<dyn RefreshClient>, BuildError>;

pub use tokenkit::GrantType;

/// A provider under test, and the request the cases make.
#[derive(Clone, Copy)]
pub struct Subject {
    /// The provider's name.
    pub name: &'static str,
    /// Its spec, relative to the workspace root.
    pub spec: &'static str,
    /// How to build its client.
    pub build: Build,
    /// The request the cases make.
    pub call: Call,
}

/// What a case asks the client for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// A refresh (`RefreshClient::refresh`).
    Refresh,
    /// A grant (through `RefreshClient::grants`).
    Grant(GrantType),
}

impl Call {
    /// Whether the request carries a per-call secret the cases choose (the refresh token, the
    /// authorization code, the password): client credentials carry none.
    pub fn sends_secret(self) -> bool {
        self != Call::Grant(GrantType::ClientCredentials)
    }
}

/// A case's failure: why.
pub type Outcome = Result<(), String>;

/// Fails with `reason` unless `condition` holds.
pub fn ensure(condition: bool, reason: impl FnOnce() -> String) -> Outcome {
    if condition { Ok(()) } else { Err(reason()) }
}

/// A subject with its spec loaded and its mock running.
pub struct Ctx {
    /// The spec's model: examples, mapping pointers.
    pub provider: Provider,
    /// The mock serving the spec.
    pub mock: MockServer,
    subject: Subject,
}

/// The HTTP settings of the cases: short timeouts, so a silent server fails fast.
pub fn quick_http() -> HttpConfig {
    HttpConfig {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..HttpConfig::default()
    }
}

impl Ctx {
    /// Loads the subject's spec and starts its mock.
    pub async fn start(subject: &Subject) -> Result<Self, String> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(subject.spec);
        let provider = tokenkit_mock::load(&path).map_err(|e| e.to_string())?;
        let mock = MockServer::start(provider.clone())
            .await
            .map_err(|e| format!("the mock did not start: {e}"))?;
        Ok(Self {
            provider,
            mock,
            subject: *subject,
        })
    }

    /// What the cases ask the client for.
    pub fn call(&self) -> Call {
        self.subject.call
    }

    /// The subject's client, pointed at the mock.
    pub fn client(&self, http: HttpConfig) -> Result<Box<dyn RefreshClient>, String> {
        (self.subject.build)(&self.mock.base_url(), http).map_err(|e| e.to_string())
    }

    /// The operation the cases' request goes to, and the mapping of its answers: the refresh
    /// operation, or the grant's (its own, or the refresh operation). (A built provider has at
    /// least one operation; the suite asks only for what its spec maps.)
    pub fn operation(&self) -> &TokenOperation {
        let found = match self.subject.call {
            Call::Refresh => self.provider.refresh_operation(),
            Call::Grant(kind) => self.provider.operation_for(match kind {
                GrantType::ClientCredentials => GrantKind::ClientCredentials,
                GrantType::AuthorizationCode => GrantKind::AuthorizationCode,
                GrantType::Password => GrantKind::Password,
                GrantType::JwtBearer => GrantKind::JwtBearer,
            }),
        };
        found.unwrap_or(&self.provider.operations[0])
    }

    /// Whether the refresh sends the access token (and no refresh token exists).
    pub fn sends_access_token(&self) -> bool {
        self.provider
            .refresh
            .as_ref()
            .is_some_and(|r| r.sends_access_token)
    }

    /// The provider's rotation policy; `None` when it has no refresh operation.
    pub fn rotation(&self) -> Option<tokenkit_codegen::extension::Rotation> {
        self.provider.refresh.as_ref().map(|r| r.rotation)
    }

    /// The success status.
    pub fn success_status(&self) -> u16 {
        self.operation().success.status
    }

    /// The documented examples of `status`.
    pub fn examples(&self, status: u16) -> Vec<(String, Value)> {
        self.operation()
            .operation
            .responses
            .iter()
            .filter(|r| r.status == status)
            .flat_map(|r| r.examples.clone())
            .collect()
    }

    /// Whether a body of `status` is a documented failure (its `when` discriminator matches).
    pub fn is_envelope_failure(&self, status: u16, body: &Value) -> bool {
        self.operation()
            .failures
            .iter()
            .filter(|f| f.status == status)
            .filter_map(|f| f.when.as_ref())
            .any(|when| when.matches(body))
    }

    /// The success examples: the success status's examples that are not failures.
    pub fn success_examples(&self) -> Vec<(String, Value)> {
        let status = self.success_status();
        self.examples(status)
            .into_iter()
            .filter(|(_, body)| !self.is_envelope_failure(status, body))
            .collect()
    }

    /// The first success example, or a reason.
    pub fn success_example(&self) -> Result<Value, String> {
        self.success_examples()
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .ok_or_else(|| "the spec documents no success example".to_owned())
    }
}

/// The text at `pointer`: a string as it is, a number printed.
pub fn text_at(body: &Value, pointer: &str) -> Option<String> {
    match body.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The number of seconds at `pointer`: a number, or a numeric string.
pub fn seconds_at(body: &Value, pointer: &str) -> Option<f64> {
    match body.pointer(pointer)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Sets the value at `pointer`, creating nothing: the parent must exist.
pub fn set_at(body: &mut Value, pointer: &str, value: Value) -> bool {
    match body.pointer_mut(pointer) {
        Some(slot) => {
            *slot = value;
            true
        }
        None => false,
    }
}

/// Sets the value at `pointer`, adding the last key to its object if it is missing.
pub fn put_at(body: &mut Value, pointer: &str, value: Value) -> bool {
    if set_at(body, pointer, value.clone()) {
        return true;
    }
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return false;
    };
    match body.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(key.replace("~1", "/").replace("~0", "~"), value);
            true
        }
        _ => false,
    }
}

/// Removes the value at `pointer`.
pub fn remove_at(body: &mut Value, pointer: &str) -> bool {
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return false;
    };
    let key = key.replace("~1", "/").replace("~0", "~");
    match body.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&key).is_some(),
        _ => false,
    }
}

/// Whether the field a pointer ends at may be absent or null in a valid body (its parents
/// aside: without them the access token is gone too).
pub fn may_be_absent(mapped: &Mapped) -> bool {
    fn walk(access: &Access) -> bool {
        match access {
            Access::Leaf(_) => false,
            Access::Field { optional, next, .. } => match next.as_ref() {
                Access::Leaf(_) => *optional,
                next => walk(next),
            },
            Access::Variants { arms, .. } => arms.iter().filter_map(|(_, a)| a.as_ref()).any(walk),
        }
    }
    walk(&mapped.access)
}

/// The signing key every generated suite builds `private_key_jwt` clients with: one ES256 key
/// per test process, made fresh (never a key written down anywhere).
pub fn signing_key() -> tokenkit::SigningKey {
    signing_pair().0.clone()
}

/// The suite's signing key and its public key (an uncompressed P-256 point), to verify what
/// the clients signed.
pub fn signing_pair() -> &'static (tokenkit::SigningKey, Vec<u8>) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    static PAIR: std::sync::OnceLock<(tokenkit::SigningKey, Vec<u8>)> = std::sync::OnceLock::new();
    PAIR.get_or_init(|| {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("the key just made");
        let key = tokenkit::SigningKey::from_pkcs8_der(
            tokenkit::SigningAlgorithm::Es256,
            pkcs8.as_ref(),
            Some("conformance-key".into()),
        )
        .expect("an ES256 signing key");
        (key, pair.public_key().as_ref().to_vec())
    })
}
