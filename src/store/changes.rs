//! Reads of the change log, in its one order (see `writes` for why its
//! positions are safe to page through).

use sqlx::PgExecutor;

use super::rows::{ChangeRow, select_changes};
use super::{Role, Store};
use crate::domain::lifecycle::Change;
use crate::error::Result;

/// Which changes a reader wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeFilter {
    /// Every change (StreamArticleChanges).
    All,
    /// Only an article's first becoming public (StreamNewArticles).
    NewArticles,
}

impl Store {
    /// The newest change position (0 when there is none).
    pub async fn change_head(&self) -> Result<i64> {
        self.bounded(async {
            let mut conn = self.acquire(Role::Primary).await?;
            change_head_on(&mut *conn).await
        })
        .await
    }

    /// Changes with positions in `(after, up_to]`, in order: at most
    /// `limits.changes` of them, and no more than fit in `limits.bytes` of
    /// article bodies (always at least one, however large); only those
    /// whose filter tags meet `tag_slugs` unless it is empty.
    /// Leaves out every change of an article from before its latest
    /// withdrawal: a takedown is never served again. Without `with_bodies`,
    /// every body is empty (the BASIC view: nothing to read or send).
    pub async fn changes_after(
        &self,
        after: i64,
        up_to: i64,
        tag_slugs: &[String],
        filter: ChangeFilter,
        with_bodies: bool,
        limits: BatchLimits,
    ) -> Result<ChangeBatch> {
        self.bounded(async {
            let mut conn = self.acquire(Role::Primary).await?;
            // The row limit first (the index scan stops there), then the
            // running size of the bodies over those rows; the body sizes
            // come from the stored (possibly compressed) values, so the
            // rows cut off are never read in full.
            let rows: Vec<SizedChangeRow> = sqlx::query_as(concat!(
                "SELECT * FROM (",
                "SELECT limited.*, count(*) OVER () AS batch_rows, ",
                "sum(octet_length(limited.body)) OVER (ORDER BY limited.position) ",
                "- octet_length(limited.body) AS bytes_before ",
                "FROM (",
                select_changes!(
                    "WHERE c.position > $1 AND c.position <= $2 ",
                    "AND c.position >= coalesce(a.withdrawn_position, 0) ",
                    "AND (NOT $3 OR c.first_public) ",
                    "AND (cardinality($4::text[]) = 0 OR c.filter_tags && $4::text[]) ",
                    "ORDER BY c.position LIMIT $5"
                ),
                ") limited) sized WHERE bytes_before < $7 ORDER BY position"
            ))
            .bind(after)
            .bind(up_to)
            .bind(filter == ChangeFilter::NewArticles)
            .bind(tag_slugs)
            .bind(i64::from(limits.changes))
            .bind(with_bodies)
            .bind(i64::try_from(limits.bytes).unwrap_or(i64::MAX).max(1))
            .fetch_all(&mut *conn)
            .await?;
            let read = rows.first().map_or(0, |row| row.batch_rows);
            let cut_short = i64::try_from(rows.len()).unwrap_or(i64::MAX) < read;
            let changes = rows
                .into_iter()
                .map(|row| Change::try_from(row.change))
                .collect::<Result<Vec<_>>>()?;
            let more = cut_short || changes.len() == limits.changes as usize;
            Ok(ChangeBatch {
                changes,
                more,
                cut_by_bytes: cut_short,
            })
        })
        .await
    }
}

/// How much one read of the change log returns at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub changes: u32,
    /// Article body bytes.
    pub bytes: usize,
}

/// One read of the change log.
#[derive(Debug)]
pub struct ChangeBatch {
    pub changes: Vec<Change>,
    /// A limit cut the read short: changes may follow the last one before
    /// `up_to`. Otherwise every matching change up to `up_to` is here.
    pub more: bool,
    /// The byte limit cut the read short: rows past it were read, and left.
    pub cut_by_bytes: bool,
}

#[derive(sqlx::FromRow)]
struct SizedChangeRow {
    #[sqlx(flatten)]
    change: ChangeRow,
    batch_rows: i64,
}

pub(super) async fn change_head_on(executor: impl PgExecutor<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM article_changes")
            .fetch_one(executor)
            .await?,
    )
}
