//! Token sets in PostgreSQL, shared by every replica of a service that already runs one.
//!
//! Each credential is a row of `tokenkit_sets` (its version, its record, its marks at the
//! database's clock, when its refresh token dies for the keeper's index); a removal leaves the
//! row with its version and no record, so versions never repeat. The refresh lock is a row of
//! `tokenkit_locks` carrying a fencing token and an expiry: every fenced write reads it
//! `FOR SHARE` in the same statement, so an expired holder's write cannot land, and no one
//! takes the lock while a write under it commits.
//!
//! Why a lease row and not an advisory lock: a session's advisory lock belongs to its
//! connection, and a pool hands connections to whoever asks next: the lock would outlive its
//! holder (a connection kept by the pool) or die under it (a connection recycled), and no
//! other connection could release or renew it. A row with a fencing token works from any
//! connection of the pool, survives connections that drop, and frees itself only when its
//! holder stops renewing it. (Migrations take a transaction's advisory lock, which ends with
//! the transaction.)
//!
//! The schema is created and migrated by the store itself: a database written by an older
//! version is upgraded when the store connects; a newer one is refused.

mod lease;
mod listen;
mod sql;
mod token_store;

use super::StoreError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::config::SslMode;

/// How a [`PostgresStore`] connects.
#[derive(Clone)]
pub struct PostgresOptions {
    /// Connections in the pool. Default 16.
    pub pool_size: usize,
    /// How long one statement may run before the database cancels it. Default 2 s.
    pub statement_timeout: Duration,
    /// How long connecting may take. Default 2 s.
    pub connect_timeout: Duration,
    /// A PEM root certificate to trust instead of the system's, for `sslmode=require` and
    /// stricter.
    pub root_certificate: Option<Vec<u8>>,
    /// Whether waiters for another holder's refresh are woken by `LISTEN/NOTIFY` (one more
    /// connection per store, kept open) instead of only polling. Default true; turn it off
    /// behind a pooler that cannot hold a `LISTEN` (PgBouncer's transaction mode).
    pub listen: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            statement_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            root_certificate: None,
            listen: true,
        }
    }
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("root_certificate", &self.root_certificate.is_some())
            .field("listen", &self.listen)
            .finish()
    }
}

/// Token sets in PostgreSQL. See the module docs for the schema and the lock.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// `None` when the options turned listening off.
    listener: Option<std::sync::Arc<listen::Listener>>,
}

impl std::fmt::Debug for PostgresStore {
    // The connection string may hold a password: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("connections", &status.size)
            .finish()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:5432/db`, or
    /// `host=… user=…`; `sslmode=require` for TLS, verified against the system's roots),
    /// creating or upgrading its schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &PostgresOptions::default()).await
    }

    /// [`PostgresStore::connect`] with options.
    pub async fn connect_with(url: &str, options: &PostgresOptions) -> Result<Self, StoreError> {
        // The parse error may quote the string, and the string may hold a password.
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|_| StoreError::new("the PostgreSQL connection string is not valid"))?;
        config.connect_timeout(options.connect_timeout);
        config.options(format!(
            "-c statement_timeout={}",
            options.statement_timeout.as_millis().max(1)
        ));
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let listening = config.clone();
        let (manager, tls) = if config.get_ssl_mode() == SslMode::Disable
            || (config.get_ssl_mode() == SslMode::Prefer && options.root_certificate.is_none())
        {
            let manager = Manager::from_config(config, tokio_postgres::NoTls, manager_config);
            (manager, listen::Tls::None)
        } else {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(options)?);
            let manager = Manager::from_config(config, tls.clone(), manager_config);
            (manager, listen::Tls::Rustls(tls))
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|_| StoreError::new("cannot build the PostgreSQL connection pool"))?;
        let store = Self {
            pool,
            listener: options
                .listen
                .then(|| std::sync::Arc::new(listen::Listener::start(listening, tls))),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Creates the schema, or upgrades one an older version wrote; refuses a newer one.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        // Read committed whatever the database's default: a serializable migration would
        // take its snapshot before the migration lock, and trip over the migration it waited
        // for.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
            .start()
            .await
            .map_err(|e| pg_error("cannot start the migration", &e))?;
        let step = |what: &'static str| move |e: tokio_postgres::Error| pg_error(what, &e);
        tx.execute(sql::MIGRATION_LOCK, &[])
            .await
            .map_err(step("cannot lock the migration"))?;
        tx.batch_execute(sql::META)
            .await
            .map_err(step("cannot create the schema's version table"))?;
        let found: i32 = tx
            .query_opt(sql::META_VERSION, &[])
            .await
            .map_err(step("cannot read the schema's version"))?
            .map_or(0, |row| row.get(0));
        if found > sql::SCHEMA_VERSION {
            return Err(StoreError::new(format!(
                "the database's tokenkit schema is version {found}, newer than this tokenkit's ({}): upgrade tokenkit before connecting it",
                sql::SCHEMA_VERSION
            )));
        }
        for (from, migration) in sql::MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.batch_execute(migration).await.map_err(|e| {
                pg_error(
                    &format!("cannot migrate the schema to version {}", from + 1),
                    &e,
                )
            })?;
        }
        tx.execute(sql::META_SET, &[&sql::SCHEMA_VERSION])
            .await
            .map_err(step("cannot record the schema's version"))?;
        tx.commit()
            .await
            .map_err(step("cannot commit the migration"))
    }

    /// Runs `statement` on a pooled connection, prepared once per connection: sent as text
    /// it would be parsed and planned on every call, a round trip more. The outer error is
    /// the pool's, the inner the statement's.
    async fn query(
        &self,
        statement: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>, StoreError> {
        let client = self.client().await?;
        Ok(match client.prepare_cached(statement).await {
            Ok(prepared) => client.query(&prepared, params).await,
            Err(e) => Err(e),
        })
    }

    /// Runs two statements on one pooled connection in one round trip (pipelined: both are
    /// sent before either answer is read). Each is its own transaction, run in order, so the
    /// second sees what the first committed. The outer error is the pool's, the middle the first
    /// statement's, the inner the second's. Both are prepared first: tokio-postgres sends a
    /// query's messages when it is first polled, and `join!` polls the first one first, so
    /// they leave in order (a preparation still under way could let the second go first).
    async fn query_pair(
        &self,
        (first, first_params): (&str, &[&(dyn tokio_postgres::types::ToSql + Sync)]),
        (second, second_params): (&str, &[&(dyn tokio_postgres::types::ToSql + Sync)]),
    ) -> Result<Result<(Rows, Result<Rows, PgError>), PgError>, StoreError> {
        let client = self.client().await?;
        let prepared = async {
            let first = client.prepare_cached(first).await?;
            let second = client.prepare_cached(second).await?;
            Ok::<_, PgError>((first, second))
        };
        Ok(match prepared.await {
            Ok((first, second)) => {
                let (a, b) = tokio::join!(
                    client.query(&first, first_params),
                    client.query(&second, second_params)
                );
                a.map(|a| (a, b))
            }
            Err(e) => Err(e),
        })
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => {
                pg_error("cannot connect to PostgreSQL", &e)
            }
            deadpool_postgres::PoolError::Timeout(_) => {
                StoreError::new("cannot connect to PostgreSQL: timed out")
            }
            _ => StoreError::new("cannot connect to PostgreSQL"),
        })
    }
}

/// A statement's rows.
type Rows = Vec<tokio_postgres::Row>;
/// A statement's error.
type PgError = tokio_postgres::Error;

/// The rustls client configuration: the given root, or the system's.
fn tls_config(options: &PostgresOptions) -> Result<rustls::ClientConfig, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    match &options.root_certificate {
        Some(pem) => {
            use rustls::pki_types::pem::PemObject;
            let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| StoreError::new("the PostgreSQL root certificate is not PEM"))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|_| StoreError::new("the PostgreSQL root certificate is not valid"))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| StoreError::new("cannot set up TLS for PostgreSQL"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A store error for a failed statement: the SQLSTATE and what it means, never the
/// statement's values (nor the connection string).
fn pg_error(what: &str, error: &tokio_postgres::Error) -> StoreError {
    let class = match error.code().map(|c| c.code()) {
        Some(code) if code.starts_with("08") => "the connection failed",
        Some("57014") => "the statement timed out (statement_timeout)",
        Some("40001") => "a serialization failure",
        Some("40P01") => "a deadlock",
        Some(code) if code.starts_with("28") => "the user name or password was refused",
        Some(code) if code.starts_with("42") => "the schema or a permission is wrong",
        Some(_) => "the database refused it",
        None if error.is_closed() => "the connection is closed",
        None => "no answer from the database",
    };
    let code = error
        .code()
        .map(|c| format!(" [SQLSTATE {}]", c.code()))
        .unwrap_or_default();
    StoreError::new(format!("{what}: {class}{code}"))
}

/// Whether a failed statement may simply be run again: a serialization failure or deadlock.
fn retryable(error: &tokio_postgres::Error) -> bool {
    matches!(error.code().map(|c| c.code()), Some("40001" | "40P01"))
}
