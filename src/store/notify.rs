//! Notifications between replicas: what the write path sends at commit, and
//! the one LISTEN connection per process that hears them.
//!
//! A notification is a wake-up, never the data: `PgListener` drops whatever
//! is sent while it reconnects, so listeners re-read the change log from
//! their own position after every reconnect and on a safety tick.

use std::time::Duration;

use sqlx::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use uuid::Uuid;

use super::Store;
use crate::error::Result;

/// Wakes every replica's feed listener: the payload is the newest change
/// position the notifying transaction wrote (a hint only).
const FEED_CHANNEL: &str = "article_feed";

/// Tells every replica which stored articles changed, so that their read
/// caches drop them: the ids, comma-separated, or `*` (anything may have
/// changed) when they would not fit in a notification. The trigger on a
/// hand deletion (migration 20261208000000) sends `*` here too.
const CHANGES_CHANNEL: &str = "article_changes";

/// Ids one change notification names, at most (37 bytes each, within
/// PostgreSQL's 8,000-byte payload limit).
const MAX_CHANGED_IDS_PER_NOTIFICATION: usize = 200;

/// How long the LISTEN connection may take to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// What a notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Changes were written, up to this position if the payload said.
    NewChanges { up_to: Option<i64> },
    /// These articles changed; `None`: any may have.
    ArticlesChanged(Option<Vec<Uuid>>),
}

/// Sends the wake-up for changes up to `position` (delivered at commit).
async fn notify_new_changes(conn: &mut PgConnection, position: i64) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(FEED_CHANNEL)
        .bind(position.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Tells read caches that these articles changed (delivered at commit).
async fn notify_articles_changed(conn: &mut PgConnection, ids: &[Uuid]) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind(changed_payload(ids))
        .execute(conn)
        .await?;
    Ok(())
}

/// Which articles a write changed, for every replica's read cache and feed.
pub(super) async fn notify_write(
    conn: &mut PgConnection,
    changed_ids: &[Uuid],
    newest_position: Option<i64>,
) -> Result<()> {
    if !changed_ids.is_empty() {
        notify_articles_changed(conn, changed_ids).await?;
    }
    if let Some(position) = newest_position {
        notify_new_changes(conn, position).await?;
    }
    Ok(())
}

fn changed_payload(changed: &[Uuid]) -> String {
    if changed.len() > MAX_CHANGED_IDS_PER_NOTIFICATION {
        return "*".to_owned();
    }
    changed
        .iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse(channel: &str, payload: &str) -> Notification {
    if channel == CHANGES_CHANNEL {
        let ids: Option<Vec<Uuid>> = payload
            .split(',')
            .map(|id| Uuid::try_parse(id).ok())
            .collect();
        Notification::ArticlesChanged(ids)
    } else {
        Notification::NewChanges {
            up_to: payload.parse().ok(),
        }
    }
}

/// Connects LISTEN connections, outside the request pool.
pub struct Notifications {
    /// Two connections, because a dropped `PgListener` hands its (possibly
    /// dead) connection back in a background task: the replacement must not
    /// wait for that.
    pool: PgPool,
}

impl Store {
    /// LISTEN connections to the primary this store's pool connects to.
    pub fn notifications(&self) -> Notifications {
        Notifications::new((*self.pool.connect_options()).clone())
    }
}

impl Notifications {
    fn new(options: PgConnectOptions) -> Self {
        Self {
            pool: PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(3))
                .connect_lazy_with(options),
        }
    }

    /// A listening connection on both channels. On a lost connection it
    /// reports the loss instead of reconnecting by itself: the caller
    /// reconnects and re-reads from its position.
    pub async fn listen(&self) -> Result<Listener> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.eager_reconnect(false);
        listener.listen_all([FEED_CHANNEL, CHANGES_CHANNEL]).await?;
        Ok(Listener { listener })
    }
}

/// One LISTEN connection.
pub struct Listener {
    listener: PgListener,
}

impl Listener {
    /// The next notification; `None` when the connection was lost.
    pub async fn recv(&mut self) -> Result<Option<Notification>> {
        Ok(self
            .listener
            .try_recv()
            .await?
            .map(|notification| parse(notification.channel(), notification.payload())))
    }

    /// Whether the connection answers: one to a host that vanished can stay
    /// silent for ever instead of failing. Notifications that arrive
    /// meanwhile are kept for `recv`.
    pub async fn answers(&mut self) -> bool {
        let ping = sqlx::query("SELECT 1").execute(&mut self.listener);
        matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let ids = vec![Uuid::from_u128(1), Uuid::from_u128(2)];
        assert_eq!(
            parse(CHANGES_CHANNEL, &changed_payload(&ids)),
            Notification::ArticlesChanged(Some(ids))
        );
        let many: Vec<Uuid> = (0..=MAX_CHANGED_IDS_PER_NOTIFICATION as u128)
            .map(Uuid::from_u128)
            .collect();
        assert_eq!(changed_payload(&many), "*");
        assert_eq!(
            parse(CHANGES_CHANNEL, "*"),
            Notification::ArticlesChanged(None)
        );
        assert_eq!(
            parse(FEED_CHANNEL, "42"),
            Notification::NewChanges { up_to: Some(42) }
        );
        assert_eq!(
            parse(FEED_CHANNEL, ""),
            Notification::NewChanges { up_to: None }
        );
    }
}
