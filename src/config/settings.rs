//! The settings of each room, built from `serve`'s flags.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use super::{ServeConfig, connect_options};
use crate::cache::CacheSettings;
use crate::feed::{ConnectionAge, FeedSettings};
use crate::store::PoolSettings;

/// The settings of each room `serve` builds, made here and only here: the
/// store, feed and cache never see the configuration. The server, built by
/// `server::build` from it, reads its own flags there.
impl ServeConfig {
    /// The read pool's connection options, when DATABASE_READ_URL is set;
    /// the error never echoes the URL.
    pub fn read_connect_options(&self) -> anyhow::Result<Option<PgConnectOptions>> {
        self.database_read_url
            .as_ref()
            .map(|url| connect_options("DATABASE_READ_URL", url))
            .transpose()
    }

    pub fn read_pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self
                .database_read_max_connections
                .unwrap_or(self.database_max_connections),
            ..self.pool_settings()
        }
    }

    pub fn cache_settings(&self) -> CacheSettings {
        let page_bytes = self.cache_max_bytes / 4;
        CacheSettings {
            article_bytes: self.cache_max_bytes - page_bytes,
            page_bytes,
            time_to_live: Duration::from_secs(self.cache_ttl),
        }
    }

    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.database_max_connections,
            acquire_timeout: Duration::from_millis(self.database_acquire_timeout_ms),
            ..PoolSettings::default()
        }
    }

    pub fn feed_settings(&self) -> FeedSettings {
        FeedSettings {
            heartbeat_interval: Duration::from_secs(self.heartbeat_interval),
            // Each at most 1,000,000, as the flags' parsers enforce.
            max_streams: usize::try_from(self.max_streams).unwrap_or(usize::MAX),
            buffer: usize::try_from(self.feed_buffer).unwrap_or(usize::MAX),
            batch_size: self.feed_batch_size,
            buffer_bytes: usize::try_from(self.feed_buffer_bytes).unwrap_or(usize::MAX),
            batch_bytes: usize::try_from(self.feed_batch_bytes).unwrap_or(usize::MAX),
            catch_up_bytes: usize::try_from(self.feed_catch_up_bytes).unwrap_or(usize::MAX),
            scan_window: i64::from(self.feed_batch_size) * 100,
            ..FeedSettings::default()
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// When feed streams end for their connection's age; `None` with
    /// MAX_CONNECTION_AGE 0.
    pub fn connection_age(&self) -> Option<ConnectionAge> {
        (self.max_connection_age > 0).then(|| ConnectionAge {
            age: Duration::from_secs(self.max_connection_age),
            grace: Duration::from_secs(self.max_connection_age_grace),
        })
    }

    /// When a connection is closed whatever still runs on it: past the age,
    /// its grace and the request timeout, only streams that never end on
    /// their own are left (see `server::ServerConnection::new`).
    pub fn connection_lifetime(&self) -> Option<Duration> {
        self.connection_age()
            .map(|age| age.age + age.grace.max(self.request_timeout()))
    }
}
