//! PostgreSQL's faults, caused for real with worker processes sharing one database (see
//! `faults.rs` for the others): a crash, a stall past the lease, every pooled connection
//! dropped, statements timing out, serialization failures. Each counts what the provider saw
//! (every refresh token sent at most once) and checks that the stored set is still live.

use std::time::Duration;
use tokenkit::PostgresStore;
use tokenkit_manager_tests::Postgres;
use tokenkit_manager_tests::workers::{
    check_provider, check_stored_set_is_live, collect, errors_after, fleet, now_ms, recovery_ms,
    renewed, spawn,
};

/// PostgreSQL killed (SIGKILL) in the middle of a run and started again (crash recovery from
/// its write-ahead log): the fleet serves or fails retryably meanwhile, reuses nothing, and is
/// healthy within 3 s of the database's return (the pool drops the dead connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_crash_mid_run_loses_nothing_and_heals() {
    let mut postgres = Postgres::start();
    let store = PostgresStore::connect(&postgres.url).await.unwrap();
    let arg = format!("postgres:{}", postgres.url);
    let (mock, store, children) = fleet(store, &arg, Duration::from_millis(2), 4, "8", &[]).await;
    renewed(&mock, 5).await;
    postgres.kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    postgres.start_again();
    let back = now_ms();
    let reports = tokio::task::block_in_place(|| collect(children));
    check_provider(&mock, &reports, "postgres crash");
    let recovery = recovery_ms(&reports, back);
    println!("postgres crash: healthy {recovery} ms after PostgreSQL came back");
    assert!(
        recovery <= 3000,
        "errors went on {recovery} ms after PostgreSQL came back:\n{}",
        errors_after(&reports, back)
    );
    check_stored_set_is_live(store, &mock, "postgres crash").await;
}

/// PostgreSQL stopped whole (SIGSTOP to every backend) for 1.5 s, past a 600 ms lease, while
/// forced refreshes run: leases run out at the database's clock while their holders wait, and
/// a holder that goes on writes nothing once another took the lock (fenced in the same
/// statement); no refresh token is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stalled_longer_than_the_lock_never_lets_two_holders_send() {
    let postgres = Postgres::start();
    let store = PostgresStore::connect(&postgres.url).await.unwrap();
    let arg = format!("postgres:{}", postgres.url);
    let short_lease = ["--force", "--lock-ttl-ms", "600"];
    let (mock, store, children) =
        fleet(store, &arg, Duration::from_millis(50), 3, "8", &short_lease).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    postgres.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    postgres.resume();
    let reports = tokio::task::block_in_place(|| collect(children));
    check_provider(&mock, &reports, "postgres stall");
    check_stored_set_is_live(store, &mock, "postgres stall").await;
}

/// Every client connection of the database dropped at once, twice, mid-run
/// (`pg_terminate_backend`, as a failover or an operator's restart of a pooler does): the
/// statements in flight fail retryably, every pool reconnects, nothing is sent twice and
/// the stored set is live (the test's own pool, dropped too, reconnects to check it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pooled_connection_dropped_mid_run_loses_nothing() {
    let postgres = Postgres::start();
    let store = PostgresStore::connect(&postgres.url).await.unwrap();
    let arg = format!("postgres:{}", postgres.url);
    let (mock, store, children) = fleet(store, &arg, Duration::from_millis(2), 3, "6", &[]).await;
    for round in 1..=2 {
        renewed(&mock, round * 5).await;
        let dropped = postgres.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        );
        let dropped: u64 = dropped.parse().unwrap();
        println!("round {round}: {dropped} connections dropped");
        assert!(
            dropped >= 3,
            "the workers' connections were not there to drop"
        );
    }
    let reports = tokio::task::block_in_place(|| collect(children));
    check_provider(&mock, &reports, "connections dropped");
    check_stored_set_is_live(store, &mock, "connections dropped").await;
}

/// The sets' table locked by another session (`LOCK TABLE … ACCESS EXCLUSIVE`, as a careless
/// migration does) for 3 s, past the workers' 2-s statement timeout: their loads, marks and
/// saves are cancelled by the database (retryable errors), nobody sends a token it could not
/// mark, a set whose save timed out is written once the table is free, nothing is reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_timing_out_behind_a_table_lock_lose_nothing() {
    let postgres = Postgres::start();
    let store = PostgresStore::connect(&postgres.url).await.unwrap();
    let arg = format!("postgres:{}", postgres.url);
    let (mock, store, children) = fleet(store, &arg, Duration::from_millis(2), 3, "8", &[]).await;
    renewed(&mock, 5).await;
    let before = mock.authority_stats().refreshes;
    tokio::task::block_in_place(|| {
        postgres.psql(
            "BEGIN; LOCK TABLE tokenkit_sets IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;",
        )
    });
    let during = mock.authority_stats().refreshes - before;
    let reports = tokio::task::block_in_place(|| collect(children));
    let errors: u64 = reports.iter().map(|r| r.errors).sum();
    println!("table locked 3 s: {during} refreshes meanwhile, {errors} retryable errors");
    assert!(errors > 0, "no statement timed out: {reports:?}");
    check_provider(&mock, &reports, "statement timeouts");
    assert!(
        mock.authority_stats().refreshes > before + during,
        "nothing was renewed once the table was free"
    );
    check_stored_set_is_live(store, &mock, "statement timeouts").await;
}

/// A database whose transactions are SERIALIZABLE by default (`ALTER DATABASE … SET
/// default_transaction_isolation`), under forced refreshes of one credential from three
/// processes: concurrent lock takes and writes fail with serialization failures (SQLSTATE
/// 40001, seen in the server's log), which the store retries or reports as retryable; no
/// refresh token is sent twice and the stored set is live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialization_failures_under_concurrent_refreshes_reuse_nothing() {
    let postgres = Postgres::start_with(&[
        "logging_collector=on",
        "log_directory=log",
        "log_min_messages=error",
    ]);
    let url = postgres.database("serial");
    postgres.psql("ALTER DATABASE serial SET default_transaction_isolation TO 'serializable'");
    let store = PostgresStore::connect(&url).await.unwrap();
    let arg = format!("postgres:{url}");
    let (mock, store, mut children) =
        fleet(store, &arg, Duration::from_millis(2), 3, "5", &["--force"]).await;
    // Whether two statements collide is up to the scheduler: on a busy machine the workers
    // start late and overlap less, so they run again (fresh processes, the same provider and
    // database) until the server has logged a failure, ten rounds at most.
    let mut reports = Vec::new();
    let mut failures = 0;
    for round in 1..=10 {
        reports.extend(tokio::task::block_in_place(|| collect(children)));
        failures = postgres.log_lines("could not serialize access");
        println!(
            "serializable: round {round}, {failures} serialization failures in the server's log"
        );
        if failures > 0 || round == 10 {
            break;
        }
        children = (0..3)
            .map(|_| spawn(&mock.base_url(), &arg, "5", &["--force"]))
            .collect();
    }
    check_provider(&mock, &reports, "serializable");
    check_stored_set_is_live(store, &mock, "serializable").await;
    assert!(failures > 0, "no serialization failure happened");
}

/// A failover to a promoted streaming replica. The primary acknowledges a commit only once the
/// replica has applied it (`synchronous_commit = remote_apply`, `synchronous_standby_names =
/// *`: what RELIABILITY.md says a failover needs); it is killed with SIGKILL mid-run and the
/// replica promoted; the workers, on a two-host URL with `target_session_attrs=read-write`,
/// move to it. Every mark and set acknowledged before the kill is on the new primary: no
/// refresh token is sent twice and the stored set is live there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_to_a_promoted_replica_loses_no_acknowledged_mark() {
    let mut primary = Postgres::start_with(&[
        "synchronous_standby_names=*",
        "synchronous_commit=remote_apply",
    ]);
    let replica = Postgres::replica_of(&primary, &[]);
    let url = format!(
        "postgres://tokenkit@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port(),
        replica.port()
    );
    let store = PostgresStore::connect(&url).await.unwrap();
    let arg = format!("postgres:{url}");
    let (mock, store, children) = fleet(store, &arg, Duration::from_millis(2), 3, "8", &[]).await;
    renewed(&mock, 5).await;
    primary.kill();
    let at_kill = mock.authority_stats().refreshes;
    tokio::task::block_in_place(|| replica.promote());
    let promoted = now_ms();
    let reports = tokio::task::block_in_place(|| collect(children));
    check_provider(&mock, &reports, "failover");
    let after = mock.authority_stats().refreshes;
    let recovery = recovery_ms(&reports, promoted);
    println!(
        "failover: {at_kill} refreshes before the kill, {after} in all; healthy {recovery} ms after the promotion"
    );
    assert!(
        after > at_kill,
        "nothing was renewed on the promoted replica"
    );
    check_stored_set_is_live(store, &mock, "failover").await;
}
