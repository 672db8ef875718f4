//! The write path: publish and `import` (one upsert), withdrawal, and the
//! release of embargoed articles. Each reads the stored articles and the
//! database's clock, lets `domain::lifecycle` decide, and writes the result
//! with the changes it makes public (`plan`).
//!
//! # Why change positions have no gaps a reader could skip
//!
//! Every transaction that writes changes first takes the transaction-scoped
//! advisory lock `WRITE_LOCK_KEY`, then reads the highest change position
//! and numbers its changes after it. The lock is held until commit, and
//! PostgreSQL makes a commit visible before it releases the transaction's
//! locks. So when a transaction reads the head, every lower position is
//! already committed and visible, and positions become visible in increasing
//! order across all replicas: a reader that has seen position P can never
//! later see a change below P. Numbering is contiguous, and a transaction
//! that rolls back leaves no hole, since nobody else numbered meanwhile.
//!
//! The same lock makes a release happen once cluster-wide: a replica that
//! gets it after another released an article finds it PUBLISHED already.
//! The cost is that writes are serialised across the cluster for the last
//! part of their transaction; a newsroom publishes a few articles a second,
//! and `import` amortises the lock over thousands of articles per statement.

/// Stored articles, with what only the write path needs, locked for this
/// transaction.
macro_rules! select_stored_for_update {
    ($($condition:literal),*) => {
        concat!(
            "SELECT ", article_columns!(), ", a.feed_position ",
            "FROM articles a WHERE ", $($condition),*, " FOR UPDATE"
        )
    };
}

mod release;
mod upsert;
mod withdraw;

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::plan::StoredArticle;
use super::rows::StoredArticleRow;
use crate::error::Result;

pub use release::Schedule;
pub use upsert::{BatchFailed, ImportTransaction, Upserted};
pub use withdraw::Withdrawal;

/// Serialises change numbering (any constant works; "ArtFeed1" in ASCII).
const WRITE_LOCK_KEY: i64 = 0x4172_7446_6565_6431;

/// Takes the write lock (see the module's documentation).
pub(super) async fn take_write_lock(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITE_LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The database's clock, which decides embargoes for every replica alike.
/// Read after the lock, so change times follow change positions.
pub(super) async fn database_now(conn: &mut PgConnection) -> Result<OffsetDateTime> {
    Ok(sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *conn)
        .await?)
}

pub(super) type StoredQuery<'q> =
    sqlx::query::QueryAs<'q, sqlx::Postgres, StoredArticleRow, sqlx::postgres::PgArguments>;

pub(super) async fn fetch_stored(
    conn: &mut PgConnection,
    query: StoredQuery<'_>,
) -> Result<Vec<StoredArticle>> {
    let rows = query.fetch_all(&mut *conn).await?;
    rows.into_iter().map(StoredArticle::try_from).collect()
}
