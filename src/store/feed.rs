//! Reads of the feed: articles in store order (see `articles` for why feed
//! positions are safe to page through).

use sqlx::PgExecutor;

use super::articles::{ArticleRow, select_articles};
use super::{Role, Store};
use crate::domain::article::Article;
use crate::error::Result;

impl Store {
    /// The newest feed position stored (0 when there is none).
    pub async fn feed_head(&self) -> Result<i64> {
        self.bounded(async {
            let mut conn = self.acquire(Role::Primary).await?;
            self.feed_head_on(&mut *conn).await
        })
        .await
    }

    pub(super) async fn feed_head_on(&self, executor: impl PgExecutor<'_>) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT coalesce(max(feed_position), 0) FROM articles")
                .fetch_one(executor)
                .await?,
        )
    }

    /// Up to `limit` articles with positions in `(after, up_to]`, in store
    /// order; only those having one of `tag_slugs` unless it is empty.
    pub async fn feed_after(
        &self,
        after: i64,
        up_to: i64,
        tag_slugs: &[String],
        limit: u32,
    ) -> Result<Vec<Article>> {
        self.bounded(async {
            let mut conn = self.acquire(Role::Primary).await?;
            let rows: Vec<ArticleRow> = sqlx::query_as(select_articles!(
                "articles a WHERE a.feed_position > $1 AND a.feed_position <= $2 ",
                "AND (cardinality($3::text[]) = 0 OR a.tag_slugs && $3::text[]) ",
                "ORDER BY a.feed_position LIMIT $4"
            ))
            .bind(after)
            .bind(up_to)
            .bind(tag_slugs)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
            Ok(rows.into_iter().map(Article::from).collect())
        })
        .await
    }
}
