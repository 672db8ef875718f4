//! Publish and `import`: one upsert, by PublishArticle's rules.

use std::collections::{HashMap, HashSet};

use sqlx::PgConnection;
use uuid::Uuid;

use super::{database_now, fetch_stored, take_write_lock};
use crate::domain::article::{Article, TagRef, ValidArticle};
use crate::domain::lifecycle::{PublishOutcome, PublishRefused, decide_publish};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::changes::change_head_on;
use crate::store::plan::{StoredArticle, TagCounts, WritePlan};
use crate::store::rows::article_columns;

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted {
    pub article: Article,
    /// A new article was stored.
    pub created: bool,
    /// Something was written: a new article, or a new revision.
    pub changed: bool,
}

impl Store {
    /// Stores one article by PublishArticle's rules, in its own transaction.
    pub async fn publish(&self, article: ValidArticle) -> Result<Upserted> {
        self.bounded(async {
            let mut tx = self.begin().await?;
            let mut counts = TagCounts::default();
            let (mut stored, newest) = upsert_batch(&mut tx, vec![article], &mut counts)
                .await
                .map_err(|failed| failed.error)?;
            counts.apply(&mut tx).await?;
            tx.commit().await?;
            self.saw_committed_change(newest);
            stored
                .pop()
                .ok_or_else(|| Error::Internal("publish stored nothing".into()))
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
    pub async fn upsert(&mut self, batch: Vec<ValidArticle>) -> Result<Vec<Upserted>, BatchFailed> {
        let (stored, _newest) = upsert_batch(&mut self.tx, batch, &mut self.counts).await?;
        Ok(stored)
    }

    pub async fn commit(mut self) -> Result<()> {
        self.counts.apply(&mut self.tx).await?;
        Ok(self.tx.commit().await?)
    }
}

/// Why a batch was not stored: `refused` is the index, in the batch, of the
/// article whose stored state refused the write (so `import` can name its
/// line); `None` for any other error.
#[derive(Debug)]
pub struct BatchFailed {
    pub error: Error,
    pub refused: Option<usize>,
}

impl From<Error> for BatchFailed {
    fn from(error: Error) -> Self {
        Self {
            error,
            refused: None,
        }
    }
}

/// Splits a batch where a slug repeats, so every chunk sees what the one
/// before it wrote. Also returns the newest change position written.
async fn upsert_batch(
    conn: &mut PgConnection,
    batch: Vec<ValidArticle>,
    counts: &mut TagCounts,
) -> Result<(Vec<Upserted>, Option<i64>), BatchFailed> {
    let mut stored = Vec::with_capacity(batch.len());
    let mut newest = None;
    let mut chunk = Vec::new();
    let mut slugs_in_chunk = HashSet::new();
    for article in batch {
        if !slugs_in_chunk.insert(article.slug.clone()) {
            let (upserted, position) =
                upsert_chunk(conn, std::mem::take(&mut chunk), stored.len(), counts).await?;
            stored.extend(upserted);
            newest = newest.max(position);
            slugs_in_chunk.clear();
            slugs_in_chunk.insert(article.slug.clone());
        }
        chunk.push(article);
    }
    if !chunk.is_empty() {
        let (upserted, position) = upsert_chunk(conn, chunk, stored.len(), counts).await?;
        stored.extend(upserted);
        newest = newest.max(position);
    }
    Ok((stored, newest))
}

/// Stores articles with distinct slugs: a handful of set-based statements,
/// whatever the chunk's size. `offset`: the chunk's first article's index
/// in its batch.
async fn upsert_chunk(
    conn: &mut PgConnection,
    chunk: Vec<ValidArticle>,
    offset: usize,
    counts: &mut TagCounts,
) -> Result<(Vec<Upserted>, Option<i64>), BatchFailed> {
    take_write_lock(conn).await?;
    let now = database_now(conn).await?;
    let slugs: Vec<String> = chunk.iter().map(|article| article.slug.clone()).collect();
    let query = sqlx::query_as(select_stored_for_update!("a.slug = ANY($1)")).bind(slugs);
    let mut existing: HashMap<String, StoredArticle> = fetch_stored(conn, query)
        .await?
        .into_iter()
        .map(|stored| (stored.article.slug.clone(), stored))
        .collect();
    let display_names = store_tags(conn, &chunk).await?;
    let head = change_head_on(&mut *conn).await?;

    let mut plan = WritePlan::new(head, now);
    let mut result = Vec::with_capacity(chunk.len());
    for article in chunk {
        let tags: Vec<TagRef> = article
            .tags
            .iter()
            .map(|tag| TagRef {
                name: display_names
                    .get(&tag.slug)
                    .cloned()
                    .unwrap_or_else(|| tag.name.clone()),
                slug: tag.slug.clone(),
            })
            .collect();
        let old = existing.remove(&article.slug);
        let slug = article.slug.clone();
        let outcome = decide_publish(
            old.as_ref().map(|stored| &stored.article),
            article,
            tags,
            now,
            Uuid::now_v7(),
        )
        .map_err(|PublishRefused::PublishedIntoTheFuture| BatchFailed {
            error: Error::FailedPrecondition(format!(
                "article {slug} is public: withdraw it before moving its published_at into the future"
            )),
            refused: Some(offset + result.len()),
        })?;
        result.push(match (outcome, old) {
            (PublishOutcome::Created(new), _) => {
                plan.insert(&new, counts);
                Upserted {
                    article: new,
                    created: true,
                    changed: true,
                }
            }
            (PublishOutcome::Updated(new), Some(old)) => {
                plan.update(&old, &new, counts);
                Upserted {
                    article: new,
                    created: false,
                    changed: true,
                }
            }
            (PublishOutcome::Unchanged, Some(old)) => Upserted {
                article: old.article,
                created: false,
                changed: false,
            },
            (_, None) => {
                return Err(Error::Internal(
                    "an update was decided for an article that does not exist".into(),
                )
                .into());
            }
        });
    }
    let newest = plan.execute(conn).await?;
    Ok((result, newest))
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
