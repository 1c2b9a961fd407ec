//! A connection's own values: the server variables a customer supplies when they connect (a
//! tenant's subdomain, a data region), so that one pool serves many tenants of one provider.
//!
//! The values are stored with the connection's set ([`TokenSet::values`](crate::TokenSet)),
//! and the pool builds that connection's client from them
//! ([`RefreshClient::with_values`](crate::RefreshClient::with_values)), checked as the builder
//! checks its own: no value can move a request to a host or path the spec does not describe.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The server variables a connection sets, by the name the spec gives them (`tenant`,
/// `region`). None is a secret: they name where the provider lives, and they are stored, shown
/// by `tokenkit show` and sent in URLs.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionValues(BTreeMap<String, String>);

/// No values: what a connection of a pool whose client is configured once has.
static NONE: ConnectionValues = ConnectionValues(BTreeMap::new());

impl ConnectionValues {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// A shared empty set, for clients that take no values.
    pub fn none() -> &'static Self {
        &NONE
    }

    /// These values and `name` set to `value`.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// Sets `name` to `value`.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Whether no value is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every (name, value), by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl fmt::Debug for ConnectionValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for ConnectionValues {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// A server variable a connection may set, as the spec declares it: what a connect page asks
/// the customer for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variable {
    /// Its name, as the server URL writes it (`tenant`).
    pub name: &'static str,
    /// The spec's description of it.
    pub description: &'static str,
    /// The value used when none is given; `None` where the spec's default is only a
    /// placeholder, so the customer must give one.
    pub default: Option<&'static str>,
    /// The values it may take, where the spec lists them (`enum`); empty: free text, checked
    /// when the client is built.
    pub choices: &'static [&'static str],
}

impl Variable {
    /// Whether a connection must give it (it has no usable default).
    pub fn required(&self) -> bool {
        self.default.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_ordered_by_name_and_serialize_as_a_map() {
        let values = ConnectionValues::new()
            .with("tenant", "acme")
            .with("region", "us");
        assert_eq!(
            values.iter().collect::<Vec<_>>(),
            [("region", "us"), ("tenant", "acme")]
        );
        let json = serde_json::to_string(&values).unwrap();
        assert_eq!(json, r#"{"region":"us","tenant":"acme"}"#);
        assert_eq!(
            serde_json::from_str::<ConnectionValues>(&json).unwrap(),
            values
        );
        assert!(ConnectionValues::none().is_empty());
    }
}
