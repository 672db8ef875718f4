//! Taking connections from the pools, measured: every store operation gets
//! its connection here, so the wait for one (the first sign of a pool that
//! is too small or a database that is too slow) shows in the metrics.

use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use super::Store;
use crate::error::Result;
use crate::metrics::{
    POOL_ACQUIRE_SECONDS, POOL_ACQUIRE_TIMEOUTS, POOL_CONNECTIONS, POOL_MAX, POOL_WAITING,
    READ_FALLBACKS,
};

/// Which pool, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// `DATABASE_URL`: writes, the feed, token keys, health, and the reads
    /// when there is no read pool.
    Primary,
    /// `DATABASE_READ_URL`: GetArticle, ListArticlesByTag, ListTags.
    Read,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Read => "read",
        }
    }
}

/// Counts one waiter for as long as it lives, so that an acquire abandoned
/// half-way (its call was cancelled) is not counted forever.
struct Waiting(metrics::Gauge);

impl Waiting {
    fn start(role: Role) -> Self {
        let gauge = metrics::gauge!(POOL_WAITING, "pool" => role.label());
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

impl Store {
    /// The pool behind `role`: the read pool falls back to the primary.
    pub(super) fn pool_for(&self, role: Role) -> &PgPool {
        match (role, &self.read_pool) {
            (Role::Read, Some(read)) => read,
            _ => &self.pool,
        }
    }

    /// A connection from the pool that serves `role`, its wait recorded
    /// under the pool that actually served it.
    pub(super) async fn acquire(&self, role: Role) -> Result<PoolConnection<Postgres>> {
        let role = if self.read_pool.is_some() {
            role
        } else {
            Role::Primary
        };
        let pool = self.pool_for(role);
        let _waiting = Waiting::start(role);
        let started = Instant::now();
        let acquired = pool.acquire().await;
        metrics::histogram!(POOL_ACQUIRE_SECONDS, "pool" => role.label())
            .record(started.elapsed().as_secs_f64());
        if matches!(acquired, Err(sqlx::Error::PoolTimedOut)) {
            metrics::counter!(POOL_ACQUIRE_TIMEOUTS, "pool" => role.label()).increment(1);
        }
        Ok(acquired?)
    }

    /// Samples each pool's gauges (called every second). Also makes every
    /// series exist from the start, zero until something happens.
    pub fn sample_pool_metrics(&self) {
        let mut pools = vec![(Role::Primary, &self.pool)];
        if let Some(read) = &self.read_pool {
            pools.push((Role::Read, read));
            metrics::counter!(READ_FALLBACKS).increment(0);
        }
        for (role, pool) in pools {
            let label = role.label();
            let size = f64::from(pool.size());
            let idle = pool.num_idle() as f64;
            metrics::gauge!(POOL_CONNECTIONS, "pool" => label, "state" => "in_use")
                .set(size - idle);
            metrics::gauge!(POOL_CONNECTIONS, "pool" => label, "state" => "idle").set(idle);
            metrics::gauge!(POOL_MAX, "pool" => label)
                .set(f64::from(pool.options().get_max_connections()));
            metrics::gauge!(POOL_WAITING, "pool" => label).increment(0.0);
            metrics::counter!(POOL_ACQUIRE_TIMEOUTS, "pool" => label).increment(0);
        }
    }
}
