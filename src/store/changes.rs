//! Reads of the change log, in its one order (see `writes` for why its
//! positions are safe to page through).

use futures::TryStreamExt;
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
            // The row limit in the query (the index scan stops there), the
            // byte limit here, as the rows arrive: the rows past it are
            // sent by the database but never decoded (readers ask for
            // about as many rows as fit, `feed::catch_up`).
            let mut rows = sqlx::query_as::<_, ChangeRow>(select_changes!(
                "WHERE c.position > $1 AND c.position <= $2 ",
                "AND c.position >= coalesce(a.withdrawn_position, 0) ",
                "AND (NOT $3 OR c.first_public) ",
                "AND (cardinality($4::text[]) = 0 OR c.filter_tags && $4::text[]) ",
                "ORDER BY c.position LIMIT $5"
            ))
            .bind(after)
            .bind(up_to)
            .bind(filter == ChangeFilter::NewArticles)
            .bind(tag_slugs)
            .bind(i64::from(limits.changes))
            .bind(with_bodies)
            .fetch(&mut *conn);
            let mut changes = Vec::new();
            let mut body_bytes = 0;
            let mut cut_by_bytes = false;
            while let Some(row) = rows.try_next().await? {
                if !changes.is_empty() && body_bytes >= limits.bytes {
                    cut_by_bytes = true;
                    break;
                }
                let change = Change::try_from(row)?;
                body_bytes += change.article.body.len();
                changes.push(change);
            }
            let more = cut_by_bytes || changes.len() == limits.changes as usize;
            Ok(ChangeBatch {
                changes,
                more,
                cut_by_bytes,
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

/// The change log's head: its highest position, never below the highest
/// one ever deleted (an article deleted by hand takes its changes along;
/// its positions are never given again, since consumers may hold them).
pub(super) async fn change_head_on(executor: impl PgExecutor<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT greatest((SELECT coalesce(max(position), 0) FROM article_changes), \
                (SELECT position FROM change_log_floor))",
    )
    .fetch_one(executor)
    .await?)
}
