//! Secret strings that cannot be printed by accident.
//!
//! Every token and client secret travels in one of these types. `Debug` and `Display` print
//! `[redacted]`; the only way to the characters is [`Secret::expose`], which is easy to grep for.
//! Serde sees the real value, because the wire and the token stores need it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What every secret type prints instead of its value.
pub const REDACTED: &str = "[redacted]";

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret characters. Every call site is a place where the value may leave
            /// the process: keep them few.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), REDACTED)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(REDACTED)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self)
            }
        }
    };
}

secret_type!(
    /// Any secret string: a field of a request or response that the spec marks as sensitive.
    Secret
);
secret_type!(
    /// An access token: sent to the provider's other APIs as a credential.
    AccessToken
);
secret_type!(
    /// A refresh token: exchanged for a new access token. Some providers accept each one once.
    RefreshToken
);

impl From<Secret> for AccessToken {
    fn from(value: Secret) -> Self {
        Self(value.0)
    }
}

impl From<Secret> for RefreshToken {
    fn from(value: Secret) -> Self {
        Self(value.0)
    }
}

impl From<&RefreshToken> for Secret {
    fn from(value: &RefreshToken) -> Self {
        Self(value.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTINEL: &str = "SENTINEL-b1e2c3d4";

    #[test]
    fn debug_and_display_redact() {
        let values = [
            format!("{:?}", Secret::new(SENTINEL)),
            format!("{}", Secret::new(SENTINEL)),
            format!("{:?}", AccessToken::new(SENTINEL)),
            format!("{:#?}", RefreshToken::new(SENTINEL)),
            format!("{}", RefreshToken::new(SENTINEL)),
        ];
        for shown in values {
            assert!(!shown.contains(SENTINEL), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
    }

    #[test]
    fn serde_round_trips_the_real_value() {
        let json = serde_json::to_string(&Secret::new(SENTINEL)).unwrap();
        assert_eq!(json, format!("\"{SENTINEL}\""));
        let back: RefreshToken = serde_json::from_str(&json).unwrap();
        assert_eq!(back.expose(), SENTINEL);
    }
}
