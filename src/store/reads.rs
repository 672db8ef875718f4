//! Article reads: by key (every state: callers decide what the public may
//! see) and a tag's public articles, page by page.

use futures::TryStreamExt;
use futures::stream::BoxStream;
use sqlx::PgConnection;

use super::changes::change_head_on;
use super::rows::{ArticleRow, articles, select_articles};
use super::{Role, Store};
use crate::domain::article::Article;
use crate::domain::token::ArticlePageCursor;
use crate::error::Result;

/// One page of a tag's articles.
#[derive(Debug)]
pub struct ArticlePage {
    pub articles: Vec<Article>,
    /// Whether more articles follow the last one of this page.
    pub has_more: bool,
    /// The change log's head when this paging session began: articles that
    /// became public after it are left out, and the session's changes token
    /// resumes there.
    pub snapshot_position: i64,
}

impl Store {
    /// A page of the tag's PUBLISHED articles, newest first (`published_at`
    /// then `id`, both descending), after `cursor` when given. Keyset paging
    /// on the `article_tags` primary key: the cost does not depend on the
    /// depth.
    pub async fn articles_by_tag(
        &self,
        tag_slug: &str,
        cursor: Option<&ArticlePageCursor>,
        limit: u32,
        max_bytes: usize,
    ) -> Result<ArticlePage> {
        self.bounded(async {
            let mut conn = self.acquire_for_read().await?;
            let snapshot_position = match cursor {
                Some(cursor) => cursor.snapshot_position,
                None => change_head_on(&mut *conn).await?,
            };
            // One more row than asked tells whether another page follows.
            let fetch = i64::from(limit) + 1;
            let rows: BoxStream<'_, sqlx::Result<ArticleRow>> = match cursor {
                None => sqlx::query_as(select_articles!(
                    "article_tags t JOIN articles a ON a.id = t.article_id ",
                    "WHERE t.tag_slug = $1 AND a.feed_position <= $2 AND a.state = 1 ",
                    "ORDER BY t.published_at DESC, t.article_id DESC LIMIT $3"
                ))
                .bind(tag_slug)
                .bind(snapshot_position)
                .bind(fetch)
                .fetch(&mut *conn),
                Some(cursor) => sqlx::query_as(select_articles!(
                    "article_tags t JOIN articles a ON a.id = t.article_id ",
                    "WHERE t.tag_slug = $1 AND a.feed_position <= $2 AND a.state = 1 ",
                    "AND (t.published_at, t.article_id) < ($3, $4) ",
                    "ORDER BY t.published_at DESC, t.article_id DESC LIMIT $5"
                ))
                .bind(tag_slug)
                .bind(snapshot_position)
                .bind(cursor.last_published_at)
                .bind(cursor.last_id)
                .bind(fetch)
                .fetch(&mut *conn),
            };
            let (rows, has_more) = take_within(rows, limit as usize, max_bytes).await?;
            let articles = articles(rows)?;
            Ok(ArticlePage {
                articles,
                has_more,
                snapshot_position,
            })
        })
        .await
    }
}

/// Rows read one at a time until `limit` or `max_bytes` of article text
/// (always at least one row), and whether more rows followed. The rows past
/// the cut are not kept: a page of large articles holds only the budget.
async fn take_within(
    mut rows: BoxStream<'_, sqlx::Result<ArticleRow>>,
    limit: usize,
    max_bytes: usize,
) -> Result<(Vec<ArticleRow>, bool)> {
    let mut taken = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = rows.try_next().await? {
        let size = row.text_bytes();
        if taken.len() == limit || (!taken.is_empty() && bytes.saturating_add(size) > max_bytes) {
            return Ok((taken, true));
        }
        bytes = bytes.saturating_add(size);
        taken.push(row);
    }
    Ok((taken, false))
}

impl Store {
    /// `articles_by_keys_on` on the primary: for lookups whose read
    /// database is behind (`freshness`).
    pub(super) async fn articles_by_keys_on_primary(
        &self,
        ids: &[uuid::Uuid],
        slugs: &[String],
    ) -> Result<Vec<Article>> {
        let mut conn = self.acquire(Role::Primary).await?;
        articles_by_keys_on(&mut conn, ids, slugs).await
    }
}

/// The articles with these ids or these slugs, in no particular order
/// (unknown keys are simply absent): the reads of `store::lookups`, on the
/// connection it keeps. One key alone is read with the single-key statement;
/// more with one statement per kind of key.
pub(super) async fn articles_by_keys_on(
    conn: &mut PgConnection,
    ids: &[uuid::Uuid],
    slugs: &[String],
) -> Result<Vec<Article>> {
    let rows: Vec<ArticleRow> = match (ids, slugs) {
        ([id], []) => sqlx::query_as(select_articles!("articles a WHERE a.id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .into_iter()
            .collect(),
        ([], [slug]) => sqlx::query_as(select_articles!("articles a WHERE a.slug = $1"))
            .bind(slug)
            .fetch_optional(&mut *conn)
            .await?
            .into_iter()
            .collect(),
        _ => {
            let mut rows = Vec::with_capacity(ids.len() + slugs.len());
            if !ids.is_empty() {
                rows.extend(
                    sqlx::query_as(select_articles!("articles a WHERE a.id = ANY($1)"))
                        .bind(ids)
                        .fetch_all(&mut *conn)
                        .await?,
                );
            }
            if !slugs.is_empty() {
                rows.extend(
                    sqlx::query_as::<_, ArticleRow>(select_articles!(
                        "articles a WHERE a.slug = ANY($1)"
                    ))
                    .bind(slugs)
                    .fetch_all(&mut *conn)
                    .await?,
                );
            }
            rows
        }
    };
    articles(rows)
}
