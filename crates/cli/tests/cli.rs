//! The operator's tool against real stores: what it shows, what it removes and moves, and that
//! no output of any command holds a token or a store's password (sentinels).

use std::process::Command;
use std::time::{Duration, SystemTime};
use tokenkit::{FileStore, PostgresStore, Reported, TokenSet, TokenStore};
use tokenkit_manager_tests::{Postgres, expired, scratch};

/// Runs `tokenkit` with `args`: whether it succeeded, and everything it printed.
fn tokenkit(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tokenkit"))
        .args(args)
        .output()
        .expect("the tokenkit binary");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !printed.contains("SENTINEL"),
        "tokenkit {args:?} printed a secret:\n{printed}"
    );
    (out.status.success(), printed)
}

fn sentinel_set(i: usize, refresh_left: Duration) -> TokenSet {
    let mut set = expired(&format!("SENTINEL-RT-{i}"));
    set.access_token = format!("SENTINEL-AT-{i}").into();
    set.expires_at = Some(SystemTime::now() + Duration::from_secs(3600));
    set.refresh_expires_at = Some(SystemTime::now() + refresh_left);
    set.extras
        .insert("id_token".to_owned(), "SENTINEL-ID".into());
    set.values = tokenkit::ConnectionValues::new().with("tenant", format!("tenant-{i}"));
    set
}

async fn fill(store: &impl TokenStore) {
    let month = Duration::from_secs(30 * 86_400);
    store
        .save("conn:a", &sentinel_set(1, month), None)
        .await
        .unwrap();
    store
        .save("conn:b", &sentinel_set(2, Duration::from_secs(600)), None)
        .await
        .unwrap();
    store
        .save("conn:c", &sentinel_set(3, month), None)
        .await
        .unwrap();
    let lock = store
        .try_lock("conn:c", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .mark_reported("conn:c", 1, Reported::Dead, &lock)
            .await
            .unwrap()
    );
    lock.release().await;
    store
        .save("other:x", &sentinel_set(4, month), None)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_shows_exports_removes_and_moves_connections() {
    let dir = scratch("cli");
    let files = FileStore::new(&dir).unwrap();
    fill(&files).await;
    let url = format!("file://{}", dir.display());

    let (ok, listed) = tokenkit(&[&url, "list", "conn:"]);
    assert!(ok, "{listed}");
    let line = |key: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("conn:a").contains("healthy"), "{listed}");
    assert!(line("conn:b").contains("expiring"), "{listed}");
    assert!(line("conn:c").contains("dead"), "{listed}");
    assert!(!listed.contains("other:x"), "only the prefix: {listed}");

    let (ok, shown) = tokenkit(&[&url, "show", "conn:c"]);
    assert!(ok, "{shown}");
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["state"], "dead");
    assert_eq!(shown["last_report"]["what"], "dead");
    assert_eq!(shown["has_refresh_token"], true);
    assert!(
        shown["values"]["tenant"]
            .as_str()
            .is_some_and(|t| t.starts_with("tenant-")),
        "the connection's values show: {shown}"
    );

    let (ok, exported) = tokenkit(&[&url, "export"]);
    assert!(ok);
    let exported: Vec<serde_json::Value> = serde_json::from_str(&exported).unwrap();
    assert_eq!(exported.len(), 4);
    assert!(
        exported
            .iter()
            .all(|c| c["refresh_token_left_seconds"].as_i64().unwrap() > 0)
    );

    // Moved to PostgreSQL, then looked at there.
    let postgres = Postgres::start();
    let (ok, moved) = tokenkit(&[&url, "move", &postgres.url, "conn:"]);
    assert!(ok, "{moved}");
    assert!(moved.contains("copied 3"), "{moved}");
    let (ok, there) = tokenkit(&[&postgres.url, "list"]);
    assert!(ok && there.contains("conn:c\tdead"), "{there}");

    let (ok, removed) = tokenkit(&[&postgres.url, "remove", "conn:a"]);
    assert!(ok, "{removed}");
    let store = PostgresStore::connect(&postgres.url).await.unwrap();
    assert!(store.load("conn:a").await.unwrap().is_none());
    let (ok, missing) = tokenkit(&[&postgres.url, "show", "conn:a"]);
    assert!(!ok && missing.contains("no connection"), "{missing}");

    // A store's password never shows, even in its errors.
    let (ok, refused) = tokenkit(&["postgres://u:SENTINEL-PW@127.0.0.1:1/db", "list"]);
    assert!(!ok, "{refused}");
    let (ok, refused) = tokenkit(&["redis://:SENTINEL-PW@127.0.0.1:1/?prefix=p", "list"]);
    assert!(!ok, "{refused}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A store the application seals: read with its key (from a file, the current one first), a
/// move from a plain store into a sealed one, and without the key a clear refusal. The key's
/// own bytes are a sentinel too: no output holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_and_fills_an_encrypted_store_with_its_key() {
    let dir = scratch("cli-sealed");
    let key_file = dir.join("k2.key");
    std::fs::write(&key_file, b"SENTINEL-KEY-0123456789abcdefXYZ").unwrap();
    let old_file = dir.join("k1.key");
    std::fs::write(&old_file, "00".repeat(32)).unwrap();
    let key = |id: &str, file: &std::path::Path| format!("{id}={}", file.display());
    let (current, older) = (key("k2", &key_file), key("k1", &old_file));

    let plain_dir = dir.join("plain");
    let plain = FileStore::new(&plain_dir).unwrap();
    fill(&plain).await;
    let plain_url = format!("file://{}", plain_dir.display());
    let postgres = Postgres::start();

    let (ok, moved) = tokenkit(&[
        "--to-key",
        &current,
        &plain_url,
        "move",
        &postgres.url,
        "conn:",
    ]);
    assert!(ok && moved.contains("copied 3"), "{moved}");
    let rows = postgres.psql("SELECT string_agg(encode(data, 'escape'), '') FROM tokenkit_sets");
    assert!(
        !rows.is_empty() && !rows.contains("SENTINEL"),
        "the rows are sealed: {rows}"
    );

    let (ok, listed) = tokenkit(&["--key", &current, "--key", &older, &postgres.url, "list"]);
    assert!(ok, "{listed}");
    assert!(listed.contains("conn:a\thealthy"), "{listed}");
    assert!(listed.contains("conn:c\tdead"), "{listed}");
    let (ok, shown) = tokenkit(&["--key", &current, &postgres.url, "show", "conn:b"]);
    assert!(ok && shown.contains("\"expiring\""), "{shown}");

    // Without the key the sets show as sealed, with the key that sealed them; with another
    // key nothing opens, and the error says why.
    let (ok, unkeyed) = tokenkit(&[&postgres.url, "list"]);
    assert!(ok && unkeyed.contains("conn:a\tsealed"), "{unkeyed}");
    let (ok, shown) = tokenkit(&[&postgres.url, "show", "conn:a"]);
    assert!(ok && shown.contains("\"sealed_with\": \"k2\""), "{shown}");
    let (ok, refused) = tokenkit(&["--key", &older, &postgres.url, "show", "conn:a"]);
    assert!(!ok && refused.contains("k2"), "{refused}");
    let (ok, short) = tokenkit(&["--key", "k3=/dev/null", &postgres.url, "list"]);
    assert!(!ok && short.contains("32"), "{short}");
    std::fs::remove_dir_all(&dir).unwrap();
}
