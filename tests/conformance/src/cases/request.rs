//! What the client sends: a request that keeps the spec's rules, values made fresh per
//! request, signed client assertions, and no refresh where the spec has none.

use super::*;

/// Case 2: The request breaks no rule of the spec and carries the refresh token it was given.
pub async fn request_conforms(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let refreshed = refresh_with(
        &ctx,
        Reply::Example {
            status: ctx.success_status(),
            name: None,
        },
        &sent(),
    )
    .await;
    // The violations first: a strict mock answers a broken request with 422.
    let violations = ctx.mock.violations();
    ensure(violations.is_empty(), || {
        format!("the request breaks the spec: {violations:?}")
    })?;
    refreshed.map_err(|e| e.to_string())?;
    let requests = ctx.mock.requests();
    ensure(requests.len() == 1, || {
        format!("{} requests for one refresh", requests.len())
    })?;
    let request = &requests[0].request;
    let carried = tokenkit_mock::presented_token(&ctx.provider, request);
    let Call::Grant(kind) = ctx.call() else {
        return ensure(carried.as_deref() == Some(SENT), || {
            format!(
                "the request does not carry the refresh token at {:?}",
                ctx.provider.refresh.as_ref().map(|r| &r.place)
            )
        });
    };
    ensure(carried.is_none(), || {
        "a grant request carries a refresh token".into()
    })?;
    let hit = tokenkit_mock::operation_for(&ctx.provider, request);
    let expected = &ctx.operation().operation;
    ensure(std::ptr::eq(&hit.operation, expected), || {
        format!(
            "the {kind:?} grant went to {} {}, not {} {}",
            hit.operation.method, hit.operation.path, expected.method, expected.path
        )
    })?;
    let body = tokenkit_mock::body_json(&ctx.provider, request);
    if hit.is_refresh() {
        // Grants sharing the refresh operation are told apart by their bodies.
        let found = ctx.provider.grant_of(body.as_ref()).map(|g| g.kind);
        ensure(found.map(grant_type) == Some(kind), || {
            format!("the request is not a {kind:?} grant by its spec's mapping: {found:?}")
        })?;
    }
    // Each value the call supplied is where the mapping puts it.
    let grant = ctx
        .provider
        .all_grants()
        .find(|g| grant_type(g.kind) == kind)
        .ok_or("the spec maps no such grant")?;
    for fill in &grant.fill {
        use tokenkit_codegen::model::{FillSource, GrantArg};
        let FillSource::Arg(arg) = fill.source else {
            continue;
        };
        let got = body
            .as_ref()
            .and_then(|b| b.get(&fill.json))
            .and_then(Value::as_str);
        let expected = match arg {
            GrantArg::Code | GrantArg::Password | GrantArg::Assertion => SENT.to_owned(),
            GrantArg::RedirectUri => REDIRECT_URI.to_owned(),
            GrantArg::CodeVerifier => format!("{SENT}-{}", "v".repeat(43)),
            GrantArg::Username => "user@example.com".to_owned(),
            // A revocation's values, never a grant's.
            GrantArg::RevokedToken | GrantArg::TokenTypeHint => continue,
        };
        ensure(got == Some(expected.as_str()), || {
            format!(
                "{:?} carries {got:?}, expected the call's {arg:?}",
                fill.json
            )
        })?;
    }
    Ok(())
}

/// The runtime's name of a spec's grant.
fn grant_type(kind: tokenkit_codegen::extension::GrantKind) -> GrantType {
    use tokenkit_codegen::extension::GrantKind;
    match kind {
        GrantKind::ClientCredentials => GrantType::ClientCredentials,
        GrantKind::AuthorizationCode => GrantType::AuthorizationCode,
        GrantKind::Password => GrantType::Password,
        GrantKind::JwtBearer => GrantType::JwtBearer,
    }
}

/// Case 20: Values the spec says are made fresh for each request (`generate`: a request id, a
/// nonce, a timestamp) are in every request, well formed, current, and never the same twice.
pub async fn fresh_values(subject: &Subject) -> Outcome {
    use tokenkit_codegen::extension::GenerateKind;
    use tokenkit_codegen::model::{FillSource, Location, ParamValue};
    let ctx = Ctx::start(subject).await?;
    let op = ctx.operation();
    let fill = match ctx.call() {
        Call::Refresh => op.operation.body.as_ref().map(|b| b.fill.as_slice()),
        Call::Grant(kind) => ctx
            .provider
            .all_grants()
            .find(|g| grant_type(g.kind) == kind)
            .map(|g| g.fill.as_slice()),
    };
    // Where each fresh value is: a header, a query parameter, or a body field.
    let mut wanted: Vec<(Option<Location>, String, GenerateKind)> = op
        .operation
        .params
        .iter()
        .filter_map(|p| match p.value {
            ParamValue::Generated(kind) => Some((Some(p.location), p.name.clone(), kind)),
            _ => None,
        })
        .collect();
    wanted.extend(
        fill.unwrap_or_default()
            .iter()
            .filter_map(|f| match f.source {
                FillSource::Generated { kind, .. } => Some((None, f.json.clone(), kind)),
                _ => None,
            }),
    );
    if wanted.is_empty() {
        return Ok(());
    }
    twice(&ctx).await?;
    let requests = ctx.mock.requests();
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    for (location, name, kind) in wanted {
        let mut seen = Vec::new();
        for recorded in &requests {
            let request = &recorded.request;
            let value = match location {
                Some(Location::Header) => request.header(&name).map(str::to_owned),
                Some(_) => request
                    .query
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone()),
                None => tokenkit_mock::body_json(&ctx.provider, request)
                    .and_then(|b| b.get(&name).cloned())
                    .map(|v| match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    }),
            };
            let value = value.ok_or_else(|| format!("a request has no fresh {name:?}"))?;
            let near = |secs: u64| secs.abs_diff(now.as_secs()) <= 300;
            let well_formed = match kind {
                GenerateKind::Uuid => {
                    value.len() == 36
                        && value.as_bytes()[14] == b'4'
                        && value.matches('-').count() == 4
                }
                GenerateKind::Nonce => value.len() >= 16,
                GenerateKind::UnixSeconds => value.parse::<u64>().is_ok_and(near),
                GenerateKind::UnixMilliseconds => {
                    value.parse::<u64>().is_ok_and(|ms| near(ms / 1000))
                }
                GenerateKind::DateTime => tokenkit::token::parse_rfc3339(&value)
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .is_some_and(|d| near(d.as_secs())),
            };
            ensure(well_formed, || {
                format!("{name:?} is not a current {}: {value:?}", kind.key())
            })?;
            seen.push(value);
        }
        if matches!(kind, GenerateKind::Uuid | GenerateKind::Nonce) {
            ensure(seen.windows(2).all(|w| w[0] != w[1]), || {
                format!("{name:?} was the same in two requests")
            })?;
        }
    }
    Ok(())
}

/// Case 21 (`private_key_jwt`): every request carries, where the spec says, an assertion signed
/// with the application's key (verified with its public key) whose issuer and subject are the
/// client id, whose audience is the token endpoint's URL, that lives a minute, and whose `jti`
/// is never reused; the assertion never appears in an error.
pub async fn client_assertion(subject: &Subject) -> Outcome {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use tokenkit_codegen::model::Auth;
    let ctx = Ctx::start(subject).await?;
    let Some(Auth::PrivateKeyJwt { field, client_id }) = ctx.operation().auth.clone() else {
        return Ok(());
    };
    let expected_id = ctx.provider.config[client_id]
        .example
        .as_str()
        .unwrap_or_default()
        .to_owned();
    twice(&ctx).await?;
    let audience = format!("{}{}", ctx.mock.base_url(), ctx.operation().operation.path);
    let (_, public) = crate::support::signing_pair();
    let mut ids = Vec::new();
    for recorded in ctx.mock.requests() {
        let body = tokenkit_mock::body_json(&ctx.provider, &recorded.request)
            .ok_or("the request has no body")?;
        let jwt = body
            .get(&field)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no assertion in {field:?}"))?;
        let parts: Vec<&str> = jwt.split('.').collect();
        ensure(parts.len() == 3, || {
            "the assertion is not a compact JWS".into()
        })?;
        let decode = |part: &str| -> Result<Value, String> {
            let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string())?;
            serde_json::from_slice(&bytes).map_err(|e| e.to_string())
        };
        let (header, claims) = (decode(parts[0])?, decode(parts[1])?);
        let signature = URL_SAFE_NO_PAD
            .decode(parts[2])
            .map_err(|e| e.to_string())?;
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            public,
        )
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .map_err(|_| "the assertion's signature does not verify with the key".to_owned())?;
        ensure(
            header["alg"] == "ES256" && header["kid"] == "conformance-key",
            || format!("header {header}"),
        )?;
        ensure(
            claims["iss"] == expected_id.as_str() && claims["sub"] == expected_id.as_str(),
            || format!("iss/sub are not the client id {expected_id:?}: {claims}"),
        )?;
        ensure(claims["aud"] == audience.as_str(), || {
            format!(
                "aud is not the token endpoint {audience:?}: {}",
                claims["aud"]
            )
        })?;
        let lifetime = claims["exp"].as_u64().zip(claims["iat"].as_u64());
        ensure(lifetime.is_some_and(|(exp, iat)| exp - iat == 60), || {
            format!("the assertion does not live a minute: {claims}")
        })?;
        ids.push(claims["jti"].clone());
    }
    ensure(
        ids.len() == 2 && ids[0] != ids[1] && ids[0].is_string(),
        || format!("jti {ids:?}"),
    )?;
    // An error echoing the request never shows the assertion.
    let echo = Reply::Raw {
        status: 500,
        content_type: Some("application/json".into()),
        body: serde_json::to_vec(
            &ctx.mock
                .requests()
                .last()
                .and_then(|r| tokenkit_mock::body_json(&ctx.provider, &r.request)),
        )
        .unwrap_or_default(),
    };
    let err = expect_err(refresh_with(&ctx, echo, &sent()).await, "an echoed request")?;
    let jwt_prefix = "eyJ";
    ensure(!format!("{err} {err:?}").contains(jwt_prefix), || {
        format!("an error shows a JWT: {err:?}")
    })
}

/// Case 19 (providers with grants only): the client says it has no refresh (`refresh_with` is
/// `None`), and a refresh asked of it anyway sends nothing and fails for good, so a token
/// manager gets new sets by the grant instead.
pub async fn refresh_is_refused(subject: &Subject) -> Outcome {
    let ctx = Ctx::start(subject).await?;
    let client = ctx.client(quick_http())?;
    ensure(client.refresh_with().is_none(), || {
        format!("refresh_with() is {:?}", client.refresh_with())
    })?;
    let err = expect_err(
        client.refresh(&sent()).await,
        "a refresh of a grant-only client",
    )?;
    ensure(!err.is_retryable() && err.proves_unprocessed(), || {
        format!("the refusal is retryable or may have been sent: {err:?}")
    })?;
    let requests = ctx.mock.requests().len();
    ensure(requests == 0, || {
        format!("{requests} requests for a refresh that has no operation")
    })?;
    ensure(
        client.grants().is_some_and(|g| !g.grant_types().is_empty()),
        || "the client offers no grant".into(),
    )
}
