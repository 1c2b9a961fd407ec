//! Signed JWT assertions (RFC 7523): the `private_key_jwt` client authentication a spec may
//! declare (§2.2; the client signs a short-lived assertion for each token request instead of
//! sending a secret), and assertions for the JWT-bearer grant (§2.1).

use crate::error::BuildError;
use crate::secret::Secret;
use crate::support::Generate;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How an assertion is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
}

impl SigningAlgorithm {
    fn jose(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::RS256,
            Self::Ps256 => Algorithm::PS256,
            Self::Es256 => Algorithm::ES256,
            Self::Es384 => Algorithm::ES384,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// An application's private key for signing assertions, with its algorithm and the key id
/// (`kid`) the provider knows it by. `Debug` shows neither the key nor anything derived from it.
#[derive(Clone)]
pub struct SigningKey {
    algorithm: SigningAlgorithm,
    key_id: Option<String>,
    key: EncodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A key from its PEM text (PKCS#8 `PRIVATE KEY`, or `RSA PRIVATE KEY` / `EC PRIVATE KEY`),
    /// for `algorithm`. The PEM is a [`Secret`]; an error says what is wrong, never the key.
    pub fn from_pem(
        algorithm: SigningAlgorithm,
        pem: &Secret,
        key_id: Option<String>,
    ) -> Result<Self, BuildError> {
        let bytes = pem.expose().as_bytes();
        let key = match algorithm {
            SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256 => EncodingKey::from_rsa_pem(bytes),
            SigningAlgorithm::Es256 | SigningAlgorithm::Es384 => EncodingKey::from_ec_pem(bytes),
            SigningAlgorithm::EdDsa => EncodingKey::from_ed_pem(bytes),
        }
        .map_err(|_| BuildError {
            reason: format!("the signing key is not a PEM private key for {algorithm:?}"),
        })?;
        Self::checked(algorithm, key, key_id)
    }

    /// A key from PKCS#8 DER bytes (an ECDSA, RSA or Ed25519 key of `algorithm`; an RSA key
    /// may also be PKCS#1 `RSAPrivateKey` DER).
    pub fn from_pkcs8_der(
        algorithm: SigningAlgorithm,
        der: &[u8],
        key_id: Option<String>,
    ) -> Result<Self, BuildError> {
        let key = match algorithm {
            // The signer takes PKCS#1: the RSA key inside a PKCS#8 envelope.
            SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256 => {
                EncodingKey::from_rsa_der(rsa_key_of_pkcs8(der).unwrap_or(der))
            }
            SigningAlgorithm::Es256 | SigningAlgorithm::Es384 => EncodingKey::from_ec_der(der),
            SigningAlgorithm::EdDsa => EncodingKey::from_ed_der(der),
        };
        Self::checked(algorithm, key, key_id)
    }

    /// `key` for `algorithm`, once it has signed: a key of the wrong curve or kind fails here,
    /// when the client is built, not at its first request.
    fn checked(
        algorithm: SigningAlgorithm,
        key: EncodingKey,
        key_id: Option<String>,
    ) -> Result<Self, BuildError> {
        let signing = Self {
            algorithm,
            key_id,
            key,
        };
        signing.sign(&Map::new())?;
        Ok(signing)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The key id sent as the header's `kid`.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// A compact JWS of `claims`, as a secret.
    pub fn sign(&self, claims: &Map<String, Value>) -> Result<Secret, BuildError> {
        let mut header = Header::new(self.algorithm.jose());
        header.kid.clone_from(&self.key_id);
        jsonwebtoken::encode(&header, claims, &self.key)
            .map(Secret::new)
            .map_err(|_| BuildError {
                reason: format!(
                    "the assertion could not be signed with this {:?} key",
                    self.algorithm
                ),
            })
    }
}

/// The `rsaEncryption` algorithm's object identifier (1.2.840.113549.1.1.1), DER-encoded.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (RFC 5208 §5: a sequence of
/// the version, the algorithm and the key as an octet string), when `der` is one for RSA.
fn rsa_key_of_pkcs8(der: &[u8]) -> Option<&[u8]> {
    let (0x30, info, _) = der_item(der)? else {
        return None;
    };
    let (0x02, _, rest) = der_item(info)? else {
        return None;
    };
    let (0x30, algorithm, rest) = der_item(rest)? else {
        return None;
    };
    let (0x06, oid, _) = der_item(algorithm)? else {
        return None;
    };
    let (0x04, key, _) = der_item(rest)? else {
        return None;
    };
    (oid == RSA_ENCRYPTION).then_some(key)
}

/// One DER item of `input`: its tag, its contents and what follows it.
fn der_item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(count)?;
        let len = bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
        (len, rest)
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// The claims of an assertion (RFC 7523 §3). `iat`, `exp` (from the lifetime) and a unique
/// `jti` are added when it is signed.
#[derive(Clone, Debug)]
pub struct AssertionClaims {
    /// `iss`: who signs (for client authentication, the client id).
    pub issuer: String,
    /// `sub`: whom it is about (the client id, or the user or service account a JWT-bearer
    /// grant asks for).
    pub subject: String,
    /// `aud`: the token endpoint's URL (or what the provider's docs name).
    pub audience: String,
    /// How long it is valid; providers accept minutes at most (default 60 s).
    pub lifetime: Duration,
    /// Further claims (`scope`, say).
    pub extra: Map<String, Value>,
}

impl AssertionClaims {
    /// Claims with a 60-second lifetime and nothing extra.
    pub fn new(
        issuer: impl Into<String>,
        subject: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            subject: subject.into(),
            audience: audience.into(),
            lifetime: Duration::from_secs(60),
            extra: Map::new(),
        }
    }

    /// Signs the claims with `key`, now: `iat` is now, `exp` now plus the lifetime, `jti` a
    /// fresh UUID.
    pub fn sign(&self, key: &SigningKey) -> Result<Secret, BuildError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let jti = Generate::Uuid.text().map_err(|_| BuildError {
            reason: "the operating system gave no random bytes for the assertion's jti".into(),
        })?;
        let mut claims = self.extra.clone();
        claims.insert("iss".into(), Value::from(self.issuer.clone()));
        claims.insert("sub".into(), Value::from(self.subject.clone()));
        claims.insert("aud".into(), Value::from(self.audience.clone()));
        claims.insert("iat".into(), Value::from(now));
        claims.insert(
            "exp".into(),
            Value::from(now + self.lifetime.as_secs().max(1)),
        );
        claims.insert("jti".into(), Value::from(jti));
        key.sign(&claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn es256() -> (SigningKey, Vec<u8>) {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                .unwrap();
        let key = SigningKey::from_pkcs8_der(
            SigningAlgorithm::Es256,
            pkcs8.as_ref(),
            Some("key-1".into()),
        )
        .unwrap();
        (key, pair.public_key().as_ref().to_vec())
    }

    #[test]
    fn an_assertion_verifies_and_carries_the_claims() {
        let (key, public) = es256();
        let jwt = AssertionClaims::new("client-1", "client-1", "https://id.example/token")
            .sign(&key)
            .unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "key-1");
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["aud"], "https://id.example/token");
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert_eq!(exp - iat, 60);
        let signed = format!("{}.{}", parts[0], parts[1]);
        let signature_bytes = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &public)
            .verify(signed.as_bytes(), &signature_bytes)
            .expect("the signature verifies with the public key");
        let again = AssertionClaims::new("client-1", "client-1", "aud")
            .sign(&key)
            .unwrap();
        let jti = |jwt: &Secret| -> Value {
            let part = jwt.expose().split('.').nth(1).unwrap().to_owned();
            serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()["jti"]
                .clone()
        };
        assert_ne!(jti(&jwt), jti(&again));
    }

    #[test]
    fn a_bad_key_is_a_build_error_that_shows_no_key() {
        let pem = Secret::new(
            "-----BEGIN PRIVATE KEY-----\nSENTINEL-NOT-A-KEY\n-----END PRIVATE KEY-----\n",
        );
        let err = SigningKey::from_pem(SigningAlgorithm::Es256, &pem, None).unwrap_err();
        assert!(!err.reason.contains("SENTINEL"), "{}", err.reason);
        let (key, _) = es256();
        let debug = format!("{key:?}");
        assert!(
            debug.contains("Es256") && !debug.contains("content"),
            "{debug}"
        );
    }

    #[test]
    fn a_key_of_another_algorithm_is_refused_when_built() {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .unwrap();
        assert!(SigningKey::from_pkcs8_der(SigningAlgorithm::Rs256, pkcs8.as_ref(), None).is_err());
        assert!(
            rsa_key_of_pkcs8(pkcs8.as_ref()).is_none(),
            "an EC key is no RSA key"
        );
        assert!(rsa_key_of_pkcs8(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        assert!(SigningKey::from_pkcs8_der(SigningAlgorithm::Es384, pkcs8.as_ref(), None).is_err());
    }

    #[test]
    fn an_rsa_key_signs_from_pkcs8_and_from_pkcs1() {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        for algorithm in [SigningAlgorithm::Rs256, SigningAlgorithm::Ps256] {
            let key = SigningKey::from_pkcs8_der(algorithm, pkcs8.as_ref(), None)
                .unwrap_or_else(|e| panic!("{algorithm:?}: {e}"));
            assert!(key.sign(&Map::new()).unwrap().expose().split('.').count() == 3);
            let pkcs1 = rsa_key_of_pkcs8(pkcs8.as_ref()).unwrap();
            SigningKey::from_pkcs8_der(algorithm, pkcs1, None).unwrap();
        }
    }
}
