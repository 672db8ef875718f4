//! The health probe's own connection to the primary.
//!
//! Not one of the request pool's: a pool that is busy (every connection
//! held by calls waiting on a slow statement or a lock) means the pod is
//! loaded, not that the database is gone. Were the probe to wait in that
//! pool's queue, a burst would turn the pod NOT_SERVING, the kubelet would
//! take it out of every Service, and its load would move to the other
//! replicas, loaded the same way: one burst could empty the Service. Calls
//! that find the pool busy get UNAVAILABLE and retry elsewhere; health
//! answers the question of whether this pod can reach its database at all.
//!
//! And whether the database has this build's schema: a pod started before
//! `migrate` ran (a failed or skipped migration Job, a tool that applies
//! everything at once) would answer most calls INTERNAL on a missing table
//! or column. Until the newest migration it embeds is applied it stays
//! NOT_SERVING, so a rollout waits instead of replacing working pods.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::Store;
use crate::error::{Error, Result};

/// One connection, opened on the first ping and again after any failure.
pub struct HealthConnection {
    options: PgConnectOptions,
    connection: Option<PgConnection>,
    /// Bounds a ping, its connect included.
    timeout: Duration,
    /// Set once this connection saw the schema migrated (checked again on
    /// a new connection: the database may have been restored meanwhile).
    schema_migrated: bool,
    /// The last answer was the schema's, not a failure of the connection.
    schema_behind: bool,
}

impl Store {
    /// The health probe's connection, to the primary this store's pool
    /// connects to.
    pub fn health_connection(&self) -> HealthConnection {
        HealthConnection {
            options: (*self.pool.connect_options()).clone(),
            connection: None,
            timeout: self.operation_timeout,
            schema_migrated: false,
            schema_behind: false,
        }
    }

    /// Whether the request pool can open a connection when it would need
    /// one: with room left and none idle. A pool that is full is load (no
    /// check); one that cannot connect (the database refuses new
    /// connections: `max_connections` reached, a role's limit) fails every
    /// call that needs a new connection, so the pod must not be SERVING.
    pub async fn pool_can_connect(&self) -> Result<()> {
        let room = self.pool.size() < self.pool.options().get_max_connections();
        if !room || self.pool.num_idle() > 0 {
            return Ok(());
        }
        self.bounded(async {
            drop(self.acquire(super::Role::Primary).await?);
            Ok(())
        })
        .await
    }
}

impl HealthConnection {
    /// Whether the database answers a query on this connection within the
    /// operation timeout. A failed or late ping drops the connection, so
    /// the next one starts from a fresh connect rather than from a socket
    /// in an unknown state.
    pub async fn ping(&mut self) -> Result<()> {
        self.schema_behind = false;
        let answer = super::within(self.timeout, self.query_one()).await;
        // A schema behind is an answer: the connection stays.
        if answer.is_err() && !self.schema_behind {
            // Closed in the background: a dead peer must not hold the probe.
            if let Some(connection) = self.connection.take() {
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(1), connection.close()).await;
                });
            }
        }
        answer
    }

    async fn query_one(&mut self) -> Result<()> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            empty => {
                self.schema_migrated = false;
                empty.insert(PgConnection::connect_with(&self.options).await?)
            }
        };
        if self.schema_migrated {
            sqlx::query("SELECT 1").execute(&mut *connection).await?;
            return Ok(());
        }
        let embedded: Vec<i64> = super::MIGRATOR
            .iter()
            .map(|migration| migration.version)
            .collect();
        // Every embedded migration applied (a database newer than this
        // build, during a rolling update, has more: fine).
        let missing: Option<i64> = sqlx::query_scalar(
            "SELECT max(v) FROM unnest($1::bigint[]) AS e(v) \
             WHERE NOT EXISTS (SELECT 1 FROM _sqlx_migrations m WHERE m.version = e.v AND m.success)",
        )
        .bind(&embedded)
        .fetch_one(&mut *connection)
                .await
                .or_else(|error| match &error {
                    // Never migrated: the table does not exist yet.
                    sqlx::Error::Database(database)
                        if database.code().as_deref() == Some("42P01") =>
                    {
                        Ok(embedded.iter().copied().max())
                    }
                    _ => Err(error),
                })?;
        let Some(missing) = missing else {
            self.schema_migrated = true;
            return Ok(());
        };
        self.schema_behind = true;
        Err(Error::Unavailable(format!(
            "the database's schema is behind this build: migration {missing} is not applied; \
             run `article-service migrate`"
        )))
    }
}
