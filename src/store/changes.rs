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

    /// Up to `limit` changes with positions in `(after, up_to]`, in order;
    /// only those whose filter tags meet `tag_slugs` unless it is empty.
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
        limit: u32,
    ) -> Result<Vec<Change>> {
        self.bounded(async {
            let mut conn = self.acquire(Role::Primary).await?;
            let rows: Vec<ChangeRow> = sqlx::query_as(select_changes!(
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
            .bind(i64::from(limit))
            .bind(with_bodies)
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter().map(Change::try_from).collect()
        })
        .await
    }
}

pub(super) async fn change_head_on(executor: impl PgExecutor<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM article_changes")
            .fetch_one(executor)
            .await?,
    )
}
