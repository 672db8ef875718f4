//! Articles: reads, and the one write path shared by PublishArticle and
//! `import`.
//!
//! # Why feed positions have no gaps a reader could skip
//!
//! Every transaction that stores new articles first takes the
//! transaction-scoped advisory lock `FEED_LOCK_KEY`, then reads the highest
//! feed position and numbers its new articles after it. The lock is held
//! until commit, and PostgreSQL makes a commit visible before it releases the
//! transaction's locks. So when a transaction reads the head, every lower
//! position is already committed and visible, and positions become visible in
//! increasing order across all replicas: a reader that has seen position P
//! can never later see a new article below P. Numbering is contiguous, and a
//! transaction that rolls back leaves no hole, since nobody else numbered
//! meanwhile.
//!
//! The cost is that stores are serialised across the cluster for the last
//! part of their transaction; a newsroom publishes a few articles a second,
//! and `import` amortises the lock over thousands of articles per statement.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Role, Store};
use crate::domain::article::{Article, TagRef, ValidArticle};
use crate::domain::token::ArticlePageCursor;
use crate::error::Result;

/// Serialises feed position assignment (any constant works; this is
/// "ArtFeed1" in ASCII).
const FEED_LOCK_KEY: i64 = 0x4172_7446_6565_6431;

/// The NOTIFY channel that wakes every replica's feed listener. The payload
/// is only a hint: listeners re-read the table from their own position.
pub const FEED_CHANNEL: &str = "article_feed";

/// The NOTIFY channel that tells every replica which stored articles an
/// update changed, so that their read caches drop them. Updates are not on
/// the feed, so this is their only path. The payload is the changed ids,
/// comma-separated, or `*` (anything may have changed) when they would not
/// fit in a notification.
pub const CHANGES_CHANNEL: &str = "article_changes";

/// Ids one change notification names, at most (37 bytes each, within
/// PostgreSQL's 8,000-byte payload limit).
const MAX_CHANGED_IDS_PER_NOTIFICATION: usize = 200;

/// The columns of `ArticleRow`, in its order.
macro_rules! select_articles {
    ($($rest:literal),*) => {
        concat!(
            "SELECT a.id, a.slug, a.title, a.summary, a.body, a.byline, a.tag_slugs, a.tag_names, ",
            "a.published_at, a.updated_at, a.revision, a.feed_position FROM ",
            $($rest),*
        )
    };
}
pub(super) use select_articles;

#[derive(sqlx::FromRow)]
pub(super) struct ArticleRow {
    id: Uuid,
    slug: String,
    title: String,
    summary: String,
    body: String,
    byline: String,
    tag_slugs: Vec<String>,
    tag_names: Vec<String>,
    published_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    revision: i64,
    feed_position: i64,
}

impl From<ArticleRow> for Article {
    fn from(row: ArticleRow) -> Self {
        let tags = row
            .tag_slugs
            .into_iter()
            .zip(row.tag_names)
            .map(|(slug, name)| TagRef { slug, name })
            .collect();
        Self {
            id: row.id,
            slug: row.slug,
            title: row.title,
            summary: row.summary,
            body: row.body,
            byline: row.byline,
            tags,
            published_at: row.published_at,
            updated_at: row.updated_at,
            revision: row.revision,
            feed_position: row.feed_position,
        }
    }
}

/// One page of a tag's articles.
#[derive(Debug)]
pub struct ArticlePage {
    pub articles: Vec<Article>,
    /// Whether more articles follow the last one of this page.
    pub has_more: bool,
    /// The newest feed position included in this paging session.
    pub snapshot_position: i64,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted {
    pub article: Article,
    /// A new article was stored (it goes out on the feed).
    pub created: bool,
    /// Something was written: a new article, or an update that changed it
    /// (its revision went up).
    pub changed: bool,
}

impl Store {
    pub async fn article_by_id(&self, id: Uuid) -> Result<Option<Article>> {
        self.bounded(async {
            let mut conn = self.acquire(Role::Read).await?;
            let row: Option<ArticleRow> =
                sqlx::query_as(select_articles!("articles a WHERE a.id = $1"))
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
            Ok(row.map(Article::from))
        })
        .await
    }

    pub async fn article_by_slug(&self, slug: &str) -> Result<Option<Article>> {
        self.bounded(async {
            let mut conn = self.acquire(Role::Read).await?;
            let row: Option<ArticleRow> =
                sqlx::query_as(select_articles!("articles a WHERE a.slug = $1"))
                    .bind(slug)
                    .fetch_optional(&mut *conn)
                    .await?;
            Ok(row.map(Article::from))
        })
        .await
    }

    /// The articles with these ids or these slugs, in no particular order
    /// (unknown keys are simply absent): the batched lookups of
    /// `store::lookups`, one statement per kind of key.
    pub(super) async fn articles_by_keys(
        &self,
        ids: &[Uuid],
        slugs: &[String],
    ) -> Result<Vec<Article>> {
        self.bounded(async {
            let mut conn = self.acquire(Role::Read).await?;
            let mut rows: Vec<ArticleRow> = Vec::with_capacity(ids.len() + slugs.len());
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
            Ok(rows.into_iter().map(Article::from).collect())
        })
        .await
    }

    /// A page of the tag's articles, newest first (`published_at` then `id`,
    /// both descending), after `cursor` when given. Keyset paging on the
    /// `article_tags` primary key: the cost does not depend on the depth.
    pub async fn articles_by_tag(
        &self,
        tag_slug: &str,
        cursor: Option<&ArticlePageCursor>,
        limit: u32,
    ) -> Result<ArticlePage> {
        self.bounded(async {
            let mut conn = self.acquire(Role::Read).await?;
            let snapshot_position = match cursor {
                Some(cursor) => cursor.snapshot_position,
                None => self.feed_head_on(&mut *conn).await?,
            };
            // One more row than asked tells whether another page follows.
            let fetch = i64::from(limit) + 1;
            let rows: Vec<ArticleRow> = match cursor {
                None => {
                    sqlx::query_as(select_articles!(
                        "article_tags t JOIN articles a ON a.id = t.article_id ",
                        "WHERE t.tag_slug = $1 AND a.feed_position <= $2 ",
                        "ORDER BY t.published_at DESC, t.article_id DESC LIMIT $3"
                    ))
                    .bind(tag_slug)
                    .bind(snapshot_position)
                    .bind(fetch)
                    .fetch_all(&mut *conn)
                    .await?
                }
                Some(cursor) => {
                    sqlx::query_as(select_articles!(
                        "article_tags t JOIN articles a ON a.id = t.article_id ",
                        "WHERE t.tag_slug = $1 AND a.feed_position <= $2 ",
                        "AND (t.published_at, t.article_id) < ($3, $4) ",
                        "ORDER BY t.published_at DESC, t.article_id DESC LIMIT $5"
                    ))
                    .bind(tag_slug)
                    .bind(snapshot_position)
                    .bind(cursor.last_published_at)
                    .bind(cursor.last_id)
                    .bind(fetch)
                    .fetch_all(&mut *conn)
                    .await?
                }
            };
            let mut articles: Vec<Article> = rows.into_iter().map(Article::from).collect();
            let has_more = articles.len() > limit as usize;
            articles.truncate(limit as usize);
            Ok(ArticlePage {
                articles,
                has_more,
                snapshot_position,
            })
        })
        .await
    }

    /// Stores one article by PublishArticle's rules, in its own transaction.
    pub async fn publish(&self, article: ValidArticle, now: OffsetDateTime) -> Result<Upserted> {
        self.bounded(async {
            let mut tx = self.begin().await?;
            let mut counts = TagCounts::default();
            let mut stored = upsert_batch(&mut tx, vec![article], now, &mut counts).await?;
            counts.apply(&mut tx).await?;
            tx.commit().await?;
            stored
                .pop()
                .ok_or_else(|| crate::error::Error::Internal("publish stored nothing".into()))
        })
        .await
    }

    /// Opens a transaction for `import`: everything written through it is
    /// stored at `commit`, or not at all. Not bounded by the operation
    /// timeout: a large file takes as long as it takes.
    pub async fn begin_import(&self) -> Result<ImportTransaction> {
        let mut tx = self.begin().await?;
        // A batch's parameters (megabytes of bodies) are held by the
        // statements that read them; past work_mem (4 MB by default) that
        // goes through temporary files.
        sqlx::query("SET LOCAL work_mem = '64MB'")
            .execute(&mut *tx)
            .await?;
        Ok(ImportTransaction {
            tx,
            counts: TagCounts::default(),
        })
    }
}

/// A file's worth of imported articles, stored all-or-nothing.
pub struct ImportTransaction {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    /// Tag count changes of every batch so far, written once at commit:
    /// nobody sees the counts before then, and updating the same tag rows
    /// batch after batch would leave thousands of dead row versions, which
    /// every later lookup of those tags in this transaction must step over.
    counts: TagCounts,
}

impl ImportTransaction {
    /// Stores a batch by PublishArticle's rules; later duplicates of a slug
    /// update what earlier ones stored.
    pub async fn upsert(
        &mut self,
        batch: Vec<ValidArticle>,
        now: OffsetDateTime,
    ) -> Result<Vec<Upserted>> {
        upsert_batch(&mut self.tx, batch, now, &mut self.counts).await
    }

    pub async fn commit(mut self) -> Result<()> {
        self.counts.apply(&mut self.tx).await?;
        Ok(self.tx.commit().await?)
    }
}

/// Splits a batch where a slug repeats, so every chunk sees what the one
/// before it wrote.
async fn upsert_batch(
    conn: &mut PgConnection,
    batch: Vec<ValidArticle>,
    now: OffsetDateTime,
    counts: &mut TagCounts,
) -> Result<Vec<Upserted>> {
    let mut stored = Vec::with_capacity(batch.len());
    let mut chunk = Vec::new();
    let mut slugs_in_chunk = HashSet::new();
    for article in batch {
        if !slugs_in_chunk.insert(article.slug.clone()) {
            stored.extend(upsert_chunk(conn, std::mem::take(&mut chunk), now, counts).await?);
            slugs_in_chunk.clear();
            slugs_in_chunk.insert(article.slug.clone());
        }
        chunk.push(article);
    }
    if !chunk.is_empty() {
        stored.extend(upsert_chunk(conn, chunk, now, counts).await?);
    }
    Ok(stored)
}

/// Stores articles with distinct slugs: a handful of set-based statements,
/// whatever the chunk's size. The result says which were created, updated
/// (`!created && changed`: their ids are the ones whose readers must drop
/// what they hold) and left unchanged; the tag count changes go to `counts`.
async fn upsert_chunk(
    conn: &mut PgConnection,
    chunk: Vec<ValidArticle>,
    now: OffsetDateTime,
    counts: &mut TagCounts,
) -> Result<Vec<Upserted>> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(FEED_LOCK_KEY)
        .execute(&mut *conn)
        .await?;

    let slugs: Vec<&str> = chunk.iter().map(|article| article.slug.as_str()).collect();
    let existing: Vec<ArticleRow> = sqlx::query_as(select_articles!(
        "articles a WHERE a.slug = ANY($1) FOR UPDATE"
    ))
    .bind(&slugs)
    .fetch_all(&mut *conn)
    .await?;
    let mut existing: HashMap<String, Article> = existing
        .into_iter()
        .map(|row| (row.slug.clone(), Article::from(row)))
        .collect();

    let display_names = store_tags(conn, &chunk).await?;
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(feed_position), 0) FROM articles")
        .fetch_one(&mut *conn)
        .await?;

    let mut plan = WritePlan::default();
    let mut stored = Vec::with_capacity(chunk.len());
    for article in chunk {
        let tags: Vec<TagRef> = article
            .tags
            .into_iter()
            .map(|tag| TagRef {
                name: display_names.get(&tag.slug).cloned().unwrap_or(tag.name),
                slug: tag.slug,
            })
            .collect();
        let upserted = match existing.remove(&article.slug) {
            None => {
                let position = head + 1 + plan.inserted;
                let new = Article {
                    id: Uuid::now_v7(),
                    slug: article.slug,
                    title: article.title,
                    summary: article.summary,
                    body: article.body,
                    byline: article.byline,
                    tags,
                    published_at: article.published_at.unwrap_or(now),
                    updated_at: now,
                    revision: 1,
                    feed_position: position,
                };
                plan.insert(&new, counts);
                Upserted {
                    article: new,
                    created: true,
                    changed: true,
                }
            }
            Some(old) => {
                let updated = Article {
                    title: article.title,
                    summary: article.summary,
                    body: article.body,
                    byline: article.byline,
                    tags,
                    published_at: article.published_at.unwrap_or(old.published_at),
                    ..old.clone()
                };
                if updated == old {
                    Upserted {
                        article: old,
                        created: false,
                        changed: false,
                    }
                } else {
                    let updated = Article {
                        revision: old.revision + 1,
                        updated_at: now,
                        ..updated
                    };
                    plan.update(&old, &updated, counts)?;
                    Upserted {
                        article: updated,
                        created: false,
                        changed: true,
                    }
                }
            }
        };
        stored.push(upserted);
    }
    plan.execute(conn, &stored).await?;
    Ok(stored)
}

/// Creates the chunk's tags that do not exist yet (the first name given
/// becomes the display name) and returns every display name by slug.
async fn store_tags(
    conn: &mut PgConnection,
    chunk: &[ValidArticle],
) -> Result<HashMap<String, String>> {
    let mut slugs = Vec::new();
    let mut names = Vec::new();
    let mut seen = HashSet::new();
    for tag in chunk.iter().flat_map(|article| &article.tags) {
        if seen.insert(tag.slug.as_str()) {
            slugs.push(tag.slug.as_str());
            names.push(tag.name.as_str());
        }
    }
    if slugs.is_empty() {
        return Ok(HashMap::new());
    }
    // ORDER BY keeps the request's order, so the first name given wins.
    sqlx::query(
        "INSERT INTO tags (slug, name) \
         SELECT slug, name FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS t(slug, name, n) \
         ORDER BY n ON CONFLICT (slug) DO NOTHING",
    )
    .bind(&slugs)
    .bind(&names)
    .execute(&mut *conn)
    .await?;
    // A join, not `slug = ANY($1)`: the statement's cached plan may come
    // from when `tags` was tiny, a sequential scan comparing every row with
    // every slug given.
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.slug, t.name FROM UNNEST($1::text[]) AS s(slug) JOIN tags t ON t.slug = s.slug",
    )
    .bind(&slugs)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// An updated article row as `jsonb_to_recordset` reads it: one JSON
/// parameter carries a whole chunk, ragged tag arrays included. (Updates are
/// rare next to inserts, which go as arrays: `NewRows`.)
#[derive(Serialize)]
struct ArticleRecord<'a> {
    id: Uuid,
    slug: &'a str,
    title: &'a str,
    summary: &'a str,
    body: &'a str,
    byline: &'a str,
    tag_slugs: Vec<&'a str>,
    tag_names: Vec<&'a str>,
    #[serde(with = "time::serde::rfc3339")]
    published_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    revision: i64,
    feed_position: i64,
}

impl<'a> From<&'a Article> for ArticleRecord<'a> {
    fn from(article: &'a Article) -> Self {
        Self {
            id: article.id,
            slug: &article.slug,
            title: &article.title,
            summary: &article.summary,
            body: &article.body,
            byline: &article.byline,
            tag_slugs: article.tags.iter().map(|tag| tag.slug.as_str()).collect(),
            tag_names: article.tags.iter().map(|tag| tag.name.as_str()).collect(),
            published_at: article.published_at,
            updated_at: article.updated_at,
            revision: article.revision,
            feed_position: article.feed_position,
        }
    }
}

/// The rows a chunk inserts and changes, written set-based at the end.
#[derive(Default)]
struct WritePlan {
    /// New articles so far (they are the `created` ones of the chunk's result).
    inserted: i64,
    updates: Vec<serde_json::Value>,
    /// Articles whose `article_tags` rows are replaced.
    retagged: Vec<Uuid>,
    link_tags: Vec<String>,
    link_articles: Vec<Uuid>,
    link_published: Vec<OffsetDateTime>,
    newest_position: Option<i64>,
}

impl WritePlan {
    fn insert(&mut self, article: &Article, counts: &mut TagCounts) {
        self.inserted += 1;
        self.link(article);
        counts.add(&article.tags, 1);
        self.newest_position = Some(article.feed_position);
    }

    fn update(&mut self, old: &Article, new: &Article, counts: &mut TagCounts) -> Result<()> {
        self.updates.push(record(new)?);
        self.retagged.push(new.id);
        self.link(new);
        counts.add(&old.tags, -1);
        counts.add(&new.tags, 1);
        Ok(())
    }

    fn link(&mut self, article: &Article) {
        for tag in &article.tags {
            self.link_tags.push(tag.slug.clone());
            self.link_articles.push(article.id);
            self.link_published.push(article.published_at);
        }
    }

    /// Writes the plan; `stored` is the chunk's result, whose `created`
    /// articles are the rows to insert.
    async fn execute(self, conn: &mut PgConnection, stored: &[Upserted]) -> Result<()> {
        if self.inserted > 0 {
            NewRows::of(stored).insert(conn).await?;
        }
        if !self.updates.is_empty() {
            sqlx::query(
                "UPDATE articles a SET title = r.title, summary = r.summary, body = r.body, \
                 byline = r.byline, tag_slugs = r.tag_slugs, tag_names = r.tag_names, \
                 published_at = r.published_at, updated_at = r.updated_at, revision = r.revision \
                 FROM jsonb_to_recordset($1) AS r(id uuid, title text, summary text, body text, \
                 byline text, tag_slugs text[], tag_names text[], published_at timestamptz, \
                 updated_at timestamptz, revision bigint) \
                 WHERE a.id = r.id",
            )
            .bind(serde_json::Value::Array(self.updates))
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM article_tags WHERE article_id = ANY($1)")
                .bind(&self.retagged)
                .execute(&mut *conn)
                .await?;
            // Delivered at commit, like the feed's; read caches drop these.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(changes_payload(&self.retagged))
                .execute(&mut *conn)
                .await?;
        }
        if !self.link_tags.is_empty() {
            sqlx::query(
                "INSERT INTO article_tags (tag_slug, article_id, published_at) \
                 SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::timestamptz[])",
            )
            .bind(&self.link_tags)
            .bind(&self.link_articles)
            .bind(&self.link_published)
            .execute(&mut *conn)
            .await?;
        }
        if let Some(position) = self.newest_position {
            // Delivered at commit; a wake-up only (see feed::listener).
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(FEED_CHANNEL)
                .bind(position.to_string())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

/// New articles as one array per column: PostgreSQL reads binary arrays far
/// faster than it parses the same rows out of JSON (about half of an
/// import's time went to `jsonb_to_recordset` before). Tags are ragged, so
/// they travel flattened with the (1-based) row they belong to.
#[derive(Default)]
struct NewRows<'a> {
    ids: Vec<Uuid>,
    slugs: Vec<&'a str>,
    titles: Vec<&'a str>,
    summaries: Vec<&'a str>,
    bodies: Vec<&'a str>,
    bylines: Vec<&'a str>,
    published: Vec<OffsetDateTime>,
    updated: Vec<OffsetDateTime>,
    revisions: Vec<i64>,
    positions: Vec<i64>,
    tag_rows: Vec<i64>,
    tag_slugs: Vec<&'a str>,
    tag_names: Vec<&'a str>,
}

impl<'a> NewRows<'a> {
    fn of(stored: &'a [Upserted]) -> Self {
        let mut rows = NewRows::default();
        for article in stored.iter().filter(|upserted| upserted.created) {
            let article = &article.article;
            rows.ids.push(article.id);
            rows.slugs.push(&article.slug);
            rows.titles.push(&article.title);
            rows.summaries.push(&article.summary);
            rows.bodies.push(&article.body);
            rows.bylines.push(&article.byline);
            rows.published.push(article.published_at);
            rows.updated.push(article.updated_at);
            rows.revisions.push(article.revision);
            rows.positions.push(article.feed_position);
            let row = rows.ids.len() as i64;
            for tag in &article.tags {
                rows.tag_rows.push(row);
                rows.tag_slugs.push(&tag.slug);
                rows.tag_names.push(&tag.name);
            }
        }
        rows
    }

    async fn insert(self, conn: &mut PgConnection) -> Result<()> {
        // In feed order, so the position and id (v7) indexes grow at their end.
        sqlx::query(
            "INSERT INTO articles (id, slug, title, summary, body, byline, tag_slugs, tag_names, \
             published_at, updated_at, revision, feed_position) \
             SELECT a.id, a.slug, a.title, a.summary, a.body, a.byline, \
             coalesce(t.slugs, '{}'), coalesce(t.names, '{}'), \
             a.published_at, a.updated_at, a.revision, a.feed_position \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::timestamptz[], $8::timestamptz[], $9::bigint[], $10::bigint[]) WITH ORDINALITY \
             AS a(id, slug, title, summary, body, byline, published_at, updated_at, revision, \
             feed_position, n) \
             LEFT JOIN (SELECT r, array_agg(s ORDER BY k) AS slugs, array_agg(nm ORDER BY k) AS names \
             FROM UNNEST($11::bigint[], $12::text[], $13::text[]) WITH ORDINALITY AS x(r, s, nm, k) \
             GROUP BY r) t ON t.r = a.n \
             ORDER BY a.n",
        )
        .bind(self.ids)
        .bind(self.slugs)
        .bind(self.titles)
        .bind(self.summaries)
        .bind(self.bodies)
        .bind(self.bylines)
        .bind(self.published)
        .bind(self.updated)
        .bind(self.revisions)
        .bind(self.positions)
        .bind(self.tag_rows)
        .bind(self.tag_slugs)
        .bind(self.tag_names)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Changes to `tags.article_count`, by tag slug.
#[derive(Default)]
struct TagCounts(HashMap<String, i64>);

impl TagCounts {
    fn add(&mut self, tags: &[TagRef], delta: i64) {
        for tag in tags {
            *self.0.entry(tag.slug.clone()).or_default() += delta;
        }
    }

    /// Writes the changes (one statement) and forgets them.
    async fn apply(&mut self, conn: &mut PgConnection) -> Result<()> {
        let (slugs, deltas): (Vec<String>, Vec<i64>) = std::mem::take(&mut self.0)
            .into_iter()
            .filter(|(_, delta)| *delta != 0)
            .unzip();
        if !slugs.is_empty() {
            sqlx::query(
                "UPDATE tags t SET article_count = t.article_count + d.delta \
                 FROM UNNEST($1::text[], $2::bigint[]) AS d(slug, delta) WHERE t.slug = d.slug",
            )
            .bind(&slugs)
            .bind(&deltas)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// The payload of a change notification (see `CHANGES_CHANNEL`).
fn changes_payload(changed: &[Uuid]) -> String {
    if changed.len() > MAX_CHANGED_IDS_PER_NOTIFICATION {
        return "*".to_owned();
    }
    changed
        .iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn record(article: &Article) -> Result<serde_json::Value> {
    // Only a timestamp outside RFC 3339's years can fail here, and the API
    // refuses those before they reach the store.
    serde_json::to_value(ArticleRecord::from(article))
        .map_err(|error| crate::error::Error::Internal(format!("cannot encode article: {error}")))
}
