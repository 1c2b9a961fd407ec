//! A provider that enforces rotation, for testing token managers: fresh tokens on every
//! success, each refresh token accepted once (or again within the spec's `reuse-grace`), and
//! reuse punished by revoking the family.

use crate::{Reply, example_of, http::Request};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokenkit_codegen::Provider;
use tokenkit_codegen::extension::{FailureKind, GrantKind};
use tokenkit_codegen::model::TokenOperation;

/// What the provider has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthorityStats {
    /// Refreshes answered with new tokens.
    pub refreshes: u64,
    /// Refresh tokens presented a second time (each revoked its family).
    pub reuses: u64,
    /// Refresh tokens refused for another reason: unknown, or of a revoked family.
    pub rejected: u64,
    /// Grants answered with new tokens (client credentials, code exchanges, logins).
    pub grants: u64,
    /// Refresh tokens presented again within the spec's `reuse-grace` and accepted (a
    /// resend the provider's docs allow, not a reuse).
    pub grace_resends: u64,
    /// Refresh tokens presented after the spec's `refresh-idle-lifetime` (dead: answered
    /// invalid-grant): connections lost because nobody refreshed them in time.
    pub expired: u64,
    /// Tokens revoked at the spec's revocation operation (`x-token-revoke`, RFC 7009), each
    /// of a family the provider issued (its family revoked with it).
    pub revoked: u64,
    /// Access tokens it issued that were revoked there (the family, where there is one, goes
    /// with the refresh token's revocation).
    pub revoked_access: u64,
}

#[derive(Clone, Copy)]
struct Issued {
    family: u64,
    /// When it was first accepted.
    used: Option<Instant>,
    /// When it was issued.
    issued: Instant,
}

pub(crate) struct Authority {
    /// Refreshes answered, by family.
    pub(crate) by_family: HashMap<u64, u64>,
    lifetime_secs: i64,
    delay: Duration,
    tokens: HashMap<String, Issued>,
    /// Every access token it issued and nobody revoked.
    access: std::collections::HashSet<String>,
    revoked: Vec<u64>,
    families: u64,
    serial: u64,
    pub(crate) stats: AuthorityStats,
}

impl Authority {
    pub(crate) fn new(lifetime_secs: i64, delay: Duration) -> Self {
        Self {
            by_family: HashMap::new(),
            lifetime_secs,
            delay,
            tokens: HashMap::new(),
            access: std::collections::HashSet::new(),
            revoked: Vec::new(),
            families: 0,
            serial: 0,
            stats: AuthorityStats::default(),
        }
    }

    fn mint(&mut self, prefix: &str) -> String {
        self.serial += 1;
        format!("{prefix}-{:06}", self.serial)
    }

    /// Starts a token family; returns its first refresh token.
    pub(crate) fn mint_family(&mut self) -> String {
        self.families += 1;
        let token = self.mint("rt");
        self.tokens.insert(
            token.clone(),
            Issued {
                family: self.families,
                used: None,
                issued: Instant::now(),
            },
        );
        token
    }

    /// Revokes the family of `token`; `false` when no family issued it.
    pub(crate) fn revoke_family_of(&mut self, token: &str) -> bool {
        match self.tokens.get(token) {
            Some(issued) => {
                self.revoked.push(issued.family);
                true
            }
            None => false,
        }
    }

    /// A revocation (RFC 7009) of `token`: its family is revoked where the provider issued
    /// it; the answer is 200 either way (§2.2).
    pub(crate) fn revoke_token(&mut self, token: &str) {
        let access = self.access.remove(token);
        if access {
            self.stats.revoked_access += 1;
        }
        // An access token that is exchanged for the next set belongs to a family too.
        if self.revoke_family_of(token) && !access {
            self.stats.revoked += 1;
        }
    }

    /// Revokes family `family`.
    pub(crate) fn revoke_family(&mut self, family: u64) {
        self.revoked.push(family);
    }

    /// How many families were started so far (the last one's number).
    pub(crate) fn families(&self) -> u64 {
        self.families
    }

    /// Revokes every family issued so far: their refresh tokens answer invalid-grant.
    pub(crate) fn revoke_all(&mut self) {
        self.revoked.extend(1..=self.families);
    }

    /// The reply to a refresh or grant request.
    pub(crate) fn answer(&mut self, provider: &Provider, request: &Request) -> Reply {
        let answering = crate::operation_for(provider, request);
        let presented = crate::presented_token(provider, request);
        // A request to a grant's own operation is that grant; one to the refresh operation
        // without a refresh token is the grant its body is.
        let grant = match answering.grant.as_ref() {
            Some(g) => Some(g),
            None => presented
                .is_none()
                .then(|| provider.grant_of(crate::body_json(provider, request).as_ref()))
                .flatten(),
        };
        let issued = presented.as_ref().and_then(|t| self.tokens.get(t).copied());
        // A refresh token unused for the spec's idle lifetime is dead.
        let idle = provider
            .refresh
            .as_ref()
            .and_then(|r| r.idle_lifetime)
            .map(Duration::from_secs);
        let died = issued.is_some_and(|i| idle.is_some_and(|idle| i.issued.elapsed() > idle));
        // A provider that refreshes with the access token: each access token it issues is the
        // next one-time token of its family.
        let sends_access = provider
            .refresh
            .as_ref()
            .is_some_and(|r| r.sends_access_token);
        let reply = match issued {
            _ if grant.is_some() => {
                let kind = grant.map(|g| g.kind);
                self.grant(answering, kind, sends_access)
            }
            Some(_) if died => {
                self.stats.expired += 1;
                dead(provider)
            }
            Some(Issued {
                family, used: None, ..
            }) if !self.revoked.contains(&family) => {
                if let Some(t) = presented.as_ref().and_then(|t| self.tokens.get_mut(t)) {
                    t.used = Some(Instant::now());
                }
                self.stats.refreshes += 1;
                *self.by_family.entry(family).or_default() += 1;
                self.issue(answering, Some(family), sends_access)
            }
            // The spec's reuse grace: a spent token still works for a while after its first use.
            Some(Issued {
                family,
                used: Some(at),
                ..
            }) if !self.revoked.contains(&family)
                && provider
                    .refresh
                    .as_ref()
                    .and_then(|r| r.reuse_grace)
                    .is_some_and(|secs| at.elapsed() < Duration::from_secs(secs)) =>
            {
                self.stats.grace_resends += 1;
                self.issue(answering, Some(family), sends_access)
            }
            Some(Issued {
                family,
                used: Some(_),
                ..
            }) => {
                self.stats.reuses += 1;
                self.revoked.push(family);
                dead(provider)
            }
            _ => {
                self.stats.rejected += 1;
                dead(provider)
            }
        };
        Reply::Delayed {
            delay: self.delay,
            reply: Box::new(reply),
        }
    }

    /// The answer to a grant: RFC 6749 §4.4.3, no refresh token for client credentials where
    /// the answer may lack one; the other grants (and a login whose answer requires one) start
    /// a family.
    fn grant(
        &mut self,
        answering: &TokenOperation,
        kind: Option<GrantKind>,
        sends_access: bool,
    ) -> Reply {
        self.stats.grants += 1;
        let optional = answering
            .success
            .refresh_token
            .as_ref()
            .is_none_or(|m| m.access.may_be_absent());
        let family = match kind {
            Some(GrantKind::ClientCredentials) if optional && !sends_access => None,
            _ => {
                self.families += 1;
                Some(self.families)
            }
        };
        self.issue(answering, family, sends_access)
    }

    /// A success answer with a fresh access token and, for a family, its next refresh token.
    fn issue(
        &mut self,
        answering: &TokenOperation,
        family: Option<u64>,
        sends_access: bool,
    ) -> Reply {
        let success = &answering.success;
        let mut body =
            example_of(&answering.operation, success.status, None).unwrap_or_else(|| json!({}));
        let access = self.mint("at");
        self.access.insert(access.clone());
        if let (true, Some(family)) = (sends_access, family) {
            self.tokens.insert(
                access.clone(),
                Issued {
                    family,
                    used: None,
                    issued: Instant::now(),
                },
            );
        }
        set(&mut body, &success.access_token.pointer, json!(access));
        if let (Some(m), None) = (&success.refresh_token, family) {
            remove(&mut body, &m.pointer);
        }
        if let (Some(m), Some(family)) = (&success.refresh_token, family) {
            let next = self.mint("rt");
            self.tokens.insert(
                next.clone(),
                Issued {
                    family,
                    used: None,
                    issued: Instant::now(),
                },
            );
            set(&mut body, &m.pointer, json!(next));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        if let Some(m) = &success.expires_in {
            let as_text = body.pointer(&m.pointer).is_some_and(Value::is_string);
            let value = if as_text {
                json!(self.lifetime_secs.to_string())
            } else {
                json!(self.lifetime_secs)
            };
            set(&mut body, &m.pointer, value);
        }
        if let Some(m) = &success.created_at {
            set(&mut body, &m.pointer, json!(now));
        }
        Reply::Json {
            status: success.status,
            body,
        }
    }
}

/// The spec's first documented invalid-grant answer.
pub(crate) fn dead(provider: &Provider) -> Reply {
    let Some(refresh) = provider.refresh_operation() else {
        return Reply::Raw {
            status: 400,
            content_type: None,
            body: Vec::new(),
        };
    };
    let failure = refresh.failures.iter().find(|f| {
        f.kind == FailureKind::InvalidGrant
            || f.kinds.iter().any(|(_, k)| *k == FailureKind::InvalidGrant)
    });
    let Some(failure) = failure else {
        return Reply::Raw {
            status: 400,
            content_type: None,
            body: Vec::new(),
        };
    };
    let mut body = refresh
        .operation
        .responses
        .iter()
        .find(|r| r.status == failure.status)
        .and_then(|r| {
            r.examples
                .iter()
                .map(|(_, v)| v.clone())
                .find(|v| failure.when.as_ref().is_none_or(|w| w.matches(v)))
        })
        .unwrap_or(Value::Null);
    if let Some((code, _)) = failure
        .kinds
        .iter()
        .find(|(_, k)| *k == FailureKind::InvalidGrant)
        && let Some(m) = &failure.code
    {
        set(&mut body, &m.pointer, json!(code));
    }
    if body.is_null() {
        Reply::Raw {
            status: failure.status,
            content_type: None,
            body: Vec::new(),
        }
    } else {
        Reply::Json {
            status: failure.status,
            body,
        }
    }
}

fn remove(body: &mut Value, pointer: &str) {
    if let Some((parent, key)) = pointer.rsplit_once('/')
        && let Some(Value::Object(map)) = body.pointer_mut(parent)
    {
        map.remove(&key.replace("~1", "/").replace("~0", "~"));
    }
}

fn set(body: &mut Value, pointer: &str, value: Value) {
    if let Some(slot) = body.pointer_mut(pointer) {
        *slot = value;
    }
}
