//! The release of embargoed articles, decided by the database's clock, once
//! cluster-wide (the write lock: see the module above).

use super::{database_now, fetch_stored, take_write_lock};
use crate::error::Result;
use crate::store::changes::change_head_on;
use crate::store::plan::{TagCounts, WritePlan};
use crate::store::rows::article_columns;
use crate::store::{Role, Store};

/// Due articles one release transaction makes public, at most.
const RELEASE_BATCH: i64 = 500;

/// Embargoed articles, as the release job sees them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// SCHEDULED articles stored now.
    pub pending: i64,
    /// Seconds until the earliest is due, by the database's clock (0 or
    /// less: due now); `None` when there is none.
    pub next_due_in: Option<f64>,
}

impl Store {
    /// Makes public every SCHEDULED article whose `published_at` has come,
    /// by the database's clock; returns how many. Any replica may call it at
    /// any time: each article is released once.
    pub async fn release_due(&self) -> Result<usize> {
        self.bounded(async {
            let mut conn = self.acquire(Role::Primary).await?;
            // Cheap, and without the write lock: most calls find nothing.
            let due: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM articles \
                 WHERE state = 2 AND published_at <= clock_timestamp())",
            )
            .fetch_one(&mut *conn)
            .await?;
            drop(conn);
            if !due {
                return Ok(0);
            }
            let mut tx = self.begin().await?;
            take_write_lock(&mut tx).await?;
            // Oldest first, so that changes follow the embargoes' order.
            let query = sqlx::query_as(select_stored_for_update!(
                "a.state = 2 AND a.published_at <= clock_timestamp() ",
                "ORDER BY a.published_at, a.id LIMIT $1"
            ))
            .bind(RELEASE_BATCH);
            let due = fetch_stored(&mut tx, query).await?;
            if due.is_empty() {
                return Ok(0);
            }
            let now = database_now(&mut tx).await?;
            let head = change_head_on(&mut *tx).await?;
            let mut plan = WritePlan::new(head, now);
            let mut counts = TagCounts::default();
            for article in &due {
                plan.release(article, &mut counts);
            }
            let newest = plan.execute(&mut tx).await?;
            counts.apply(&mut tx).await?;
            tx.commit().await?;
            self.saw_committed_change(newest);
            Ok(due.len())
        })
        .await
    }

    /// How many articles are SCHEDULED, and when the next is due.
    pub async fn schedule(&self) -> Result<Schedule> {
        self.bounded(async {
            let mut conn = self.acquire(Role::Primary).await?;
            let (pending, next_due_in): (i64, Option<f64>) = sqlx::query_as(
                "SELECT count(*), \
                 extract(epoch FROM min(published_at) - clock_timestamp())::float8 \
                 FROM articles WHERE state = 2",
            )
            .fetch_one(&mut *conn)
            .await?;
            Ok(Schedule {
                pending,
                next_due_in,
            })
        })
        .await
    }
}
