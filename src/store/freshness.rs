//! Reads from a read database (`DATABASE_READ_URL`, e.g. a streaming
//! replica) never show an article older than a change this process knows
//! is committed.
//!
//! A replica serves what it has replayed. Left alone, a read just after a
//! withdrawal could reach a replica that still has the article PUBLISHED,
//! and fill the read cache with it: a takedown served again, on the very
//! replica that took it down. So the store keeps the newest change position
//! this process knows is committed (its own writes, and every change the
//! feed listener reads from the primary), and a read on the read database
//! first asks that database for its newest change: if it has not replayed
//! that far, the read goes to the primary instead. Every public change
//! (PUBLISHED, UPDATED, WITHDRAWN) has a position, so a read that passes the
//! check sees every change this process could know of. A later page asks
//! for its token's snapshot too, which another replica may have taken.
//!
//! Without a read database, reads go to the primary and nothing is checked.
//! After a restore from a backup the primary's positions go back too; until
//! it passes the positions seen before, reads go to the primary.

use std::sync::atomic::Ordering;

use sqlx::PgConnection;
use sqlx::pool::PoolConnection;

use super::changes::change_head_on;
use super::{Role, Store};
use crate::error::Result;
use crate::metrics::READ_FALLBACKS;

impl Store {
    /// Every change up to `position` is committed (this process wrote it,
    /// or read it from the primary).
    pub fn saw_committed(&self, position: i64) {
        self.committed.fetch_max(position, Ordering::AcqRel);
    }

    /// Whether a read on `conn` may miss a change this process knows of,
    /// or one up to `at_least` (a page token's snapshot, which another
    /// replica may have taken): `conn` is the read database's and has not
    /// replayed that far.
    pub(super) async fn is_behind(&self, conn: &mut PgConnection, at_least: i64) -> Result<bool> {
        if self.read_pool.is_none() {
            return Ok(false);
        }
        // Loaded before the head is read: whatever is noted meanwhile was
        // not known when the read began.
        let known = self.committed.load(Ordering::Acquire).max(at_least);
        if known == 0 {
            return Ok(false);
        }
        let behind = change_head_on(&mut *conn).await? < known;
        if behind {
            metrics::counter!(READ_FALLBACKS).increment(1);
        }
        Ok(behind)
    }

    /// A connection for a public read: the read database's, unless it is
    /// behind this process or `at_least` (then the primary's).
    pub(super) async fn acquire_for_read(
        &self,
        at_least: i64,
    ) -> Result<PoolConnection<sqlx::Postgres>> {
        let mut conn = self.acquire(Role::Read).await?;
        if self.is_behind(&mut conn, at_least).await? {
            drop(conn);
            return self.acquire(Role::Primary).await;
        }
        Ok(conn)
    }

    /// A write transaction that wrote changes up to `newest` committed.
    pub(super) fn saw_committed_change(&self, newest: Option<i64>) {
        if let Some(position) = newest {
            self.saw_committed(position);
        }
    }
}
