//! What only the PostgreSQL store has: its schema's migrations, and its connection string's
//! password kept out of every error and `Debug` (the store contract is checked in stores.rs,
//! faults in faults.rs).

use tokenkit::{PostgresStore, TokenStore};
use tokenkit_manager_tests::{Postgres, expired};

#[tokio::test]
async fn no_postgres_error_or_debug_shows_the_password() {
    let postgres = Postgres::start();
    let port = postgres
        .url
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    for url in [
        // A refused login (trust is per user: this one does not exist).
        format!("postgres://nobody:SENTINEL-PW-1@127.0.0.1:{port}"),
        // Nothing listening.
        "postgres://u:SENTINEL-PW-2@127.0.0.1:1/db".to_owned(),
        // Not a connection string at all.
        "postgres://u:SENTINEL-PW-3@[::1/db?sslmode=".to_owned(),
    ] {
        let err = PostgresStore::connect(&url).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("SENTINEL"), "{shown}");
    }
    let url = postgres.url.replace("tokenkit@", "tokenkit:SENTINEL-PW-4@");
    let store = PostgresStore::connect(&url).await.unwrap();
    assert!(!format!("{store:?}").contains("SENTINEL"));
}

#[tokio::test]
async fn the_postgres_store_migrates_its_schema_and_refuses_a_newer_one() {
    let postgres = Postgres::start();
    let store = PostgresStore::connect(&postgres.url).await.unwrap();
    store.save("kept", &expired("rt"), None).await.unwrap();
    // Connecting again (another replica, a restart) finds the schema current and keeps the data.
    let again = PostgresStore::connect(&postgres.url).await.unwrap();
    assert_eq!(again.load("kept").await.unwrap().unwrap().version, 1);
    assert_eq!(
        postgres.psql("SELECT schema_version FROM tokenkit_meta"),
        "1"
    );
    postgres.psql("UPDATE tokenkit_meta SET schema_version = 99");
    let err = PostgresStore::connect(&postgres.url).await.unwrap_err();
    assert!(err.message.contains("newer"), "{err}");
}
