//! Article reads: by key (every state: callers decide what the public may
//! see) and a tag's public articles, page by page.

use std::collections::HashMap;

use futures::TryStreamExt;
use futures::stream::BoxStream;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::changes::change_head_on;
use super::lookups::ArticleKey;
use super::rows::{ArticleRow, ListedRow, article_columns, articles, select_articles};
use super::{Role, Store};
use crate::domain::article::Article;
use crate::domain::token::ArticlePageCursor;
use crate::error::Result;

/// One page of a tag's articles.
#[derive(Debug)]
pub struct ArticlePage {
    pub articles: Vec<Article>,
    /// Where the next page starts, when more articles follow the last one:
    /// its listing date (its `published_at` as of the snapshot) and id.
    pub next_after: Option<(OffsetDateTime, Uuid)>,
    /// The change log's head when this paging session began: the tag is
    /// listed as it was then (articles that became public after it are left
    /// out), and the session's changes token resumes there.
    pub snapshot_position: i64,
}

impl Store {
    /// A page of the tag's PUBLISHED articles as the tag was listed at the
    /// session's snapshot: newest first (the listing's `published_at` then
    /// `id`, both descending), after `cursor` when given. An article whose
    /// tags or date changed after the snapshot keeps its place of then
    /// (its listing rows are closed at the change, not deleted) and shows
    /// its revision of then, so that the change reaches a consumer who
    /// applies the session's changes by revision; any other article shows
    /// its current revision. Keyset paging on the `article_tags` primary
    /// key: the cost does not depend on the depth.
    pub async fn articles_by_tag(
        &self,
        tag_slug: &str,
        cursor: Option<&ArticlePageCursor>,
        limit: u32,
        max_bytes: usize,
    ) -> Result<ArticlePage> {
        self.bounded(async {
            // A later page needs a database that has its session's
            // snapshot, whichever replica began the session.
            let at_least = cursor.map_or(0, |cursor| cursor.snapshot_position);
            let mut conn = self.acquire_for_read(at_least).await?;
            let snapshot_position = match cursor {
                Some(cursor) => cursor.snapshot_position,
                None => change_head_on(&mut *conn).await?,
            };
            // One more row than asked tells whether another page follows.
            let fetch = i64::from(limit) + 1;
            let rows: BoxStream<'_, sqlx::Result<ListedRow>> = match cursor {
                None => sqlx::query_as(select_listed!(
                    "ORDER BY t.published_at DESC, t.article_id DESC LIMIT $3"
                ))
                .bind(tag_slug)
                .bind(snapshot_position)
                .bind(fetch)
                .fetch(&mut *conn),
                Some(cursor) => sqlx::query_as(select_listed!(
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
            // The response's tokens and framing beside the articles.
            let budget = max_bytes.saturating_sub(RESPONSE_BYTES);
            let (rows, has_more) = take_within(rows, limit as usize, budget).await?;
            let moved: Vec<Uuid> = rows
                .iter()
                .filter(|row| row.visible_until.is_some())
                .map(|row| row.article.id)
                .collect();
            let mut as_listed = if moved.is_empty() {
                HashMap::new()
            } else {
                revisions_at(&mut conn, &moved, snapshot_position).await?
            };
            // A moved article shows its revision of then, which may be
            // larger than the row the budget counted: the page is cut again
            // on what it sends. One without a public revision at the
            // snapshot (withdrawn then, public again since), or withdrawn
            // since then, is left out.
            let mut shown = Vec::with_capacity(rows.len());
            let mut bytes = PageBytes::new(budget);
            let (mut covered, mut cut) = (None, false);
            for row in rows {
                let place = (row.listed_at, row.article.id);
                let article = match row.visible_until {
                    None => Some(row.article),
                    Some(_) => as_listed.remove(&row.article.id),
                };
                if let Some(article) = article {
                    if !bytes.take(&article) {
                        cut = true;
                        break;
                    }
                    shown.push(article);
                }
                covered = Some(place);
            }
            Ok(ArticlePage {
                articles: articles(shown)?,
                next_after: covered.filter(|_| has_more || cut),
                snapshot_position,
            })
        })
        .await
    }
}

/// The public revision each of these articles had at the snapshot
/// `position`, for those that had one and whose content may still be shown:
/// the revision of its latest change up to there, unless that was its
/// withdrawal, or the article was withdrawn after it (a takedown is never
/// served again, even when the article was published again since: it then
/// comes back with its new revision only, through the session's changes).
/// Every article asked for changed after the snapshot, so that revision is
/// a superseded one.
async fn revisions_at(
    conn: &mut PgConnection,
    ids: &[Uuid],
    position: i64,
) -> Result<HashMap<Uuid, ArticleRow>> {
    let rows: Vec<ArticleRow> = sqlx::query_as(
        "SELECT r.article_id AS id, r.slug, r.title, r.summary, r.body, r.byline, r.tag_slugs, \
         r.tag_names, r.published_at, r.updated_at, r.revision, 1::smallint AS state \
         FROM (SELECT DISTINCT ON (article_id) article_id, position, revision, change_type \
               FROM article_changes WHERE article_id = ANY($1) AND position <= $2 \
               ORDER BY article_id, position DESC) c \
         JOIN articles a ON a.id = c.article_id \
         JOIN article_revisions r ON r.article_id = c.article_id AND r.revision = c.revision \
         WHERE c.change_type <> 3 AND c.position >= coalesce(a.withdrawn_position, 0)",
    )
    .bind(ids)
    .bind(position)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|row| (row.id, row)).collect())
}

/// A tag's listing at a snapshot: `$1` the tag, `$2` the snapshot position;
/// the rows that list an article then, of articles public since then and
/// PUBLISHED now.
macro_rules! select_listed {
    ($($rest:literal),*) => {
        concat!(
            "SELECT ", article_columns!(), ", t.published_at AS listed_at, t.visible_until ",
            "FROM article_tags t JOIN articles a ON a.id = t.article_id ",
            "WHERE t.tag_slug = $1 AND t.visible_from <= $2 ",
            "AND (t.visible_until IS NULL OR t.visible_until > $2) ",
            "AND a.feed_position <= $2 AND a.state = 1 ",
            $($rest),*
        )
    };
}
use select_listed;

/// Room for a page response's own fields (its two tokens and framing)
/// within `MAX_PAGE_BYTES`.
const RESPONSE_BYTES: usize = 1024;

/// A page's byte budget as articles are put on it: each takes its encoded
/// size, and the first always fits, however large.
struct PageBytes {
    taken: usize,
    budget: usize,
    empty: bool,
}

impl PageBytes {
    fn new(budget: usize) -> Self {
        Self {
            taken: 0,
            budget,
            empty: true,
        }
    }

    /// Puts `article` on the page if it fits.
    fn take(&mut self, article: &ArticleRow) -> bool {
        let taken = self.taken.saturating_add(article.encoded_bytes_at_most());
        if !self.empty && taken > self.budget {
            return false;
        }
        (self.taken, self.empty) = (taken, false);
        true
    }
}

/// Rows read one at a time until `limit` or `max_bytes` of encoded articles
/// (always at least one row), and whether more rows followed. The rows past
/// the cut are not kept: a page of large articles holds only the budget.
async fn take_within(
    mut rows: BoxStream<'_, sqlx::Result<ListedRow>>,
    limit: usize,
    max_bytes: usize,
) -> Result<(Vec<ListedRow>, bool)> {
    let mut taken = Vec::new();
    let mut bytes = PageBytes::new(max_bytes);
    while let Some(row) = rows.try_next().await? {
        if taken.len() == limit || !bytes.take(&row.article) {
            return Ok((taken, true));
        }
        taken.push(row);
    }
    Ok((taken, false))
}

impl Store {
    /// The article with this key in any state, read on the primary: for
    /// editors' preview, which must show an edit (say of a SCHEDULED
    /// article, which makes no change a read database could be checked
    /// against) as soon as it is committed.
    pub async fn article_on_primary(&self, key: &ArticleKey) -> Result<Option<Article>> {
        self.bounded(async {
            let (ids, slugs) = match key {
                ArticleKey::Id(id) => (std::slice::from_ref(id), &[][..]),
                ArticleKey::Slug(slug) => (&[][..], std::slice::from_ref(slug)),
            };
            let mut conn = self.acquire(Role::Primary).await?;
            Ok(articles_by_keys_on(&mut conn, ids, slugs).await?.pop())
        })
        .await
    }

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
