//! Worker processes of the fault tests (`manager-worker`) sharing a store against a provider
//! that revokes the token family at the first reused refresh token, and the checks every such
//! run must pass.

use crate::{client, expired, one_time_provider};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokenkit::{TokenManager, TokenStore};
use tokenkit_mock::MockServer;

/// What one worker reported.
#[derive(Debug, Default)]
pub struct Report {
    /// Calls it made.
    pub calls: u64,
    /// Retryable errors it saw.
    pub errors: u64,
    /// Errors that were not retryable.
    pub nonretryable: u64,
    /// When it saw its last error (ms since the Unix epoch).
    pub last_error_ms: u128,
    /// Its errors, each `error at <ms>: <message>`, in order.
    pub error_lines: Vec<String>,
}

/// The `manager-worker` binary cargo built beside the running test (`target/<profile>/`, the
/// test itself being in `deps/` below it).
fn worker_exe() -> std::path::PathBuf {
    let test = std::env::current_exe().expect("the test binary's path");
    let profile = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    profile.join("manager-worker")
}

/// A `manager-worker` on `store` for `seconds`, tolerating store errors.
pub fn spawn(base_url: &str, store: &str, seconds: &str, extra: &[&str]) -> Child {
    Command::new(worker_exe())
        .args([base_url, store, seconds, "--tolerate"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker")
}

fn field(line: &str, name: &str) -> u128 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
}

/// Waits for every worker and reads its last line.
pub fn collect(children: Vec<Child>) -> Vec<Report> {
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().expect("worker output");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let line = stdout.lines().last().unwrap_or_default().to_owned();
            assert!(
                out.status.success(),
                "a worker failed: {line} {}",
                stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
            );
            Report {
                calls: field(&line, "calls") as u64,
                errors: field(&line, "errors") as u64,
                nonretryable: field(&line, "nonretryable") as u64,
                last_error_ms: field(&line, "last_error_ms"),
                error_lines: stderr
                    .lines()
                    .filter(|l| l.starts_with("error at "))
                    .map(str::to_owned)
                    .collect(),
            }
        })
        .collect()
}

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// Every refresh token was sent at most once, none was refused, and there were refreshes.
pub fn check_provider(mock: &MockServer, reports: &[Report], what: &str) {
    let stats = mock.authority_stats();
    let calls: u64 = reports.iter().map(|r| r.calls).sum();
    let errors: u64 = reports.iter().map(|r| r.errors).sum();
    println!(
        "{what}: {} processes, {calls} calls, {errors} retryable errors, provider saw {stats:?}",
        reports.len()
    );
    assert_eq!(stats.reuses, 0, "{what}: a refresh token was sent twice");
    assert_eq!(
        stats.rejected, 0,
        "{what}: a spent or revoked token was sent"
    );
    assert!(stats.refreshes >= 3, "{what}: too few refreshes: {stats:?}");
    for r in reports {
        assert_eq!(r.nonretryable, 0, "{what}: {r:?}");
    }
}

/// The set left in the store is live: a new process refreshes with it at once.
pub async fn check_stored_set_is_live(store: impl TokenStore, mock: &MockServer, what: &str) {
    let before = mock.authority_stats();
    let manager = TokenManager::new(client(&mock.base_url()), store, "shared").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    // A write retried after the fault may still be landing.
    let result = loop {
        match manager.force_refresh().await {
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other,
        }
    };
    result.unwrap_or_else(|e| panic!("{what}: the stored set is not live: {e}"));
    let after = mock.authority_stats();
    assert_eq!(after.reuses, 0, "{what}: the stored token had been spent");
    assert_eq!(
        after.rejected, before.rejected,
        "{what}: the stored token was dead"
    );
    // A set from a client-credentials grant has no refresh token: it is renewed by a grant.
    assert_eq!(
        after.refreshes + after.grants,
        before.refreshes + before.grants + 1
    );
}

/// A provider with 1-s one-time tokens answering after `delay`, `store` seeded with its first
/// refresh token, and `workers` worker processes on `store_arg` for `seconds`.
pub async fn fleet<S: TokenStore>(
    store: S,
    store_arg: &str,
    delay: Duration,
    workers: usize,
    seconds: &str,
    extra: &[&str],
) -> (MockServer, S, Vec<Child>) {
    let (mock, first) = one_time_provider(1, delay).await;
    store.save("shared", &expired(&first), None).await.unwrap();
    let children = (0..workers)
        .map(|_| spawn(&mock.base_url(), store_arg, seconds, extra))
        .collect();
    (mock, store, children)
}

/// Waits until the provider has renewed `n` sets in all (a loaded machine starts late and
/// runs slow: a count, not a time).
pub async fn renewed(mock: &MockServer, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while mock.authority_stats().refreshes < n {
        assert!(Instant::now() < deadline, "never renewed {n} sets");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long after `since` (ms since the Unix epoch) the workers still saw errors.
pub fn recovery_ms(reports: &[Report], since: u128) -> u128 {
    reports
        .iter()
        .map(|r| r.last_error_ms.saturating_sub(since))
        .max()
        .unwrap_or(0)
}

/// The workers' errors from `since` on (ms since the Unix epoch), as `+<ms>: <message>`, a
/// few of each kind: what a failed recovery check shows.
pub fn errors_after(reports: &[Report], since: u128) -> String {
    let mut seen = std::collections::BTreeMap::<String, (u128, usize)>::new();
    for line in reports.iter().flat_map(|r| &r.error_lines) {
        let Some((at, message)) = line
            .strip_prefix("error at ")
            .and_then(|rest| rest.split_once(": "))
        else {
            continue;
        };
        let at: u128 = at.parse().unwrap_or(0);
        if at >= since {
            let entry = seen.entry(message.to_owned()).or_insert((at, 0));
            entry.0 = entry.0.max(at);
            entry.1 += 1;
        }
    }
    seen.iter()
        .map(|(message, (last, n))| format!("{n}x, last at +{} ms: {message}", last - since))
        .collect::<Vec<_>>()
        .join("\n")
}
