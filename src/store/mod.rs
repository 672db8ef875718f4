//! PostgreSQL storage: every SQL statement of the service lives below this
//! module, next to the code that uses it.

mod changes;
mod freshness;
mod health;
mod inserts;
mod lookups;
mod notify;
mod plan;
mod pool;
mod reads;
mod rows;
mod tags;
mod token_key;
mod writes;

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

pub use changes::{BatchLimits, ChangeBatch, ChangeFilter};
pub use health::HealthConnection;
pub use lookups::{ArticleKey, ArticleLookups};
pub use notify::{Listener, Notification, Notifications};
pub use reads::ArticlePage;
pub use tags::{TagCount, TagPage};
pub use token_key::TokenKeys;
pub use writes::{BatchFailed, ImportTransaction, Schedule, Upserted, Withdrawal};

use pool::Role;

use crate::error::{Error, Result};

/// Migrations embedded in the binary, so `migrate` works from any directory.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How the pool talks to the database.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a call waits for a connection before it fails with
    /// UNAVAILABLE (sqlx's default of 30 s would outlive any client deadline).
    pub acquire_timeout: Duration,
    /// Upper bound on one store operation, so a database that stops
    /// answering gives UNAVAILABLE instead of a hang.
    pub operation_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(4),
        }
    }
}

/// The database, as the rest of the service sees it.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    /// Where the read RPCs read (`DATABASE_READ_URL`, e.g. a replica); the
    /// primary pool when unset.
    read_pool: Option<PgPool>,
    /// The newest change position this process knows is committed
    /// (`freshness`), shared by every clone.
    committed: Arc<AtomicI64>,
    operation_timeout: Duration,
}

impl Store {
    /// A pool that connects lazily: the server starts (and reports
    /// NOT_SERVING) even while the database is down, and recovers when it
    /// returns.
    pub fn connect_lazy(options: PgConnectOptions, settings: &PoolSettings) -> Self {
        Self::from_pool(lazy_pool(options, settings), settings.operation_timeout)
    }

    /// Adds a pool of its own for the read RPCs (GetArticle,
    /// ListArticlesByTag, ListTags), connected lazily like the primary one:
    /// a read database that is down makes those calls UNAVAILABLE and
    /// nothing else.
    pub fn with_read_pool(mut self, options: PgConnectOptions, settings: &PoolSettings) -> Self {
        self.read_pool = Some(lazy_pool(options, settings));
        self
    }

    pub fn from_pool(pool: PgPool, operation_timeout: Duration) -> Self {
        Self {
            pool,
            read_pool: None,
            committed: Arc::new(AtomicI64::new(0)),
            operation_timeout,
        }
    }

    /// How many batched article statements (`lookups`) run at once: an
    /// eighth of the read pool (2 of the default 16), at least 1. Fewer slots
    /// make larger batches; on 2 cores, 2 slots measured best (BENCHMARKS.md),
    /// and the rest of the pool stays free for the other reads.
    pub fn lookup_slots(&self) -> usize {
        (self.read_pool_size() as usize / 8).max(1)
    }

    /// Connections the pool behind the read RPCs may open.
    fn read_pool_size(&self) -> u32 {
        self.pool_for(Role::Read).options().get_max_connections()
    }

    /// Opens a transaction on the primary.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        // What `Pool::begin` does, with the acquire measured.
        let conn = self.acquire(Role::Primary).await?;
        Ok(sqlx::Transaction::begin(conn, None).await?)
    }

    /// Runs one store operation within the operation timeout.
    ///
    /// The operation is boxed before anything awaits it: a query's future
    /// (sqlx's, with its buffers and the pool's acquire) runs to tens of
    /// kilobytes, and unboxed it would be part of every caller's future,
    /// held for the whole call, also by callers that never run it: when
    /// thousands of consumers open their streams at once, their handlers
    /// wait together for one shared head read (`feed::head`), and each
    /// would hold room for a query (about 43 KB) it never runs. Boxed, only
    /// the query that runs takes that room.
    fn bounded<'a, T: 'a>(
        &'a self,
        operation: impl Future<Output = Result<T>> + 'a,
    ) -> impl Future<Output = Result<T>> + 'a {
        within(self.operation_timeout, Box::pin(operation))
    }
}

/// `operation`'s answer, or UNAVAILABLE once `limit` has passed: a database
/// that stops answering is a call's failure, never its hang.
async fn within<T>(limit: Duration, operation: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(limit, operation)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Unavailable(
                "the database did not answer in time".into(),
            ))
        })
}

fn lazy_pool(options: PgConnectOptions, settings: &PoolSettings) -> PgPool {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(Duration::from_secs(300))
        .after_connect(|conn, _| Box::pin(async move { without_parallel_plans(conn).await }))
        .connect_lazy_with(options)
}

/// Every statement of the service is small, indexed and waited on by a
/// caller: a parallel plan's worker start-up costs more than it saves, and
/// takes cores from concurrent calls. The planner picks one for a catch-up
/// read of the change log (a LIMIT over a wide range of positions): 25 ms
/// for 500 changes with one worker, 3.7 ms without (BENCHMARKS.md). Set once
/// per connection, at connect (not in the URL's startup options, which
/// connection poolers such as PgBouncer refuse).
async fn without_parallel_plans(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET max_parallel_workers_per_gather = 0")
        .execute(conn)
        .await
        .map(|_| ())
}

/// `article-service migrate`: connects (waiting up to 10 s for a
/// connection) and applies the migrations.
pub async fn migrate(options: PgConnectOptions) -> anyhow::Result<()> {
    // A migration's ALTER that waits behind a long reader (a dump, an
    // import) holds up every query on its table meanwhile: better to fail
    // after a few seconds (the Job retries) than to stall the serving pods.
    // Set once connected, not as a startup parameter, which connection
    // poolers (PgBouncer) refuse.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET lock_timeout = '5s'")
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect_with(options)
        .await
        // With sqlx's own message (it names no password): for a command run
        // by an operator, the database's reason is the diagnosis.
        .map_err(|error| {
            let detail = error.to_string();
            anyhow::anyhow!(
                "cannot connect to the database: {} ({detail})",
                Error::from(error)
            )
        })?;
    if let Err(error) = run_migrations(&pool).await {
        if waited_for_a_lock(&error) {
            return Err(error.context(
                "a lock was not granted within 5 s: another `migrate` is running, or a long \
                 transaction holds a table a migration alters; the migration that waited \
                 changed nothing. Run `migrate` again (the Job retries by itself)",
            ));
        }
        return Err(error);
    }
    tracing::info!("migrations applied");
    Ok(())
}

/// Whether `error` is PostgreSQL's `lock_not_available` (the lock timeout).
fn waited_for_a_lock(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let database = match cause.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(database)) => Some(database),
            _ => cause
                .downcast_ref::<sqlx::migrate::MigrateError>()
                .and_then(|migrate| match migrate {
                    sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(database)) => {
                        Some(database)
                    }
                    _ => None,
                }),
        };
        database.is_some_and(|database| database.code().as_deref() == Some("55P03"))
    })
}

/// Applies the migrations on `pool`, then makes the token key if none is
/// stored (`token_key`): what `migrate` does once connected, and what a
/// fresh database needs before it is served.
pub async fn run_migrations(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await?;
    if token_key::make_token_key_if_missing(pool).await? {
        tracing::info!(
            "made the token key, none being stored: tokens signed with an earlier one, if there \
             was one, are refused"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::MIGRATOR;

    /// A migration a database has applied must never change (sqlx refuses
    /// to start on a checksum that differs), nor disappear: the embedded
    /// ones are exactly those listed, with the same checksums.
    #[test]
    fn merged_migrations_never_change() {
        let listed: Vec<(i64, String)> = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/merged-migrations.txt"
        ))
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (version, checksum) = line.split_once(' ').expect("version checksum");
            (version.parse().expect("a version"), checksum.to_owned())
        })
        .collect();
        let embedded: Vec<(i64, String)> = MIGRATOR
            .iter()
            .map(|migration| {
                let checksum = migration
                    .checksum
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect();
                (migration.version, checksum)
            })
            .collect();
        assert_eq!(
            embedded, listed,
            "a merged migration changed or went missing, or a new one is not listed in \
             tests/fixtures/merged-migrations.txt (append it: version, then `sha384sum` of its file)"
        );
    }
}
