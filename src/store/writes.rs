//! The write path: publish and `import` (one upsert), withdrawal, and the
//! release of embargoed articles. Each reads the stored articles and the
//! database's clock, lets `domain::lifecycle` decide, and writes the result
//! with the changes it makes public (`plan`).
//!
//! # Why change positions have no gaps a reader could skip
//!
//! Every transaction that writes changes first takes the transaction-scoped
//! advisory lock `WRITE_LOCK_KEY`, then reads the highest change position
//! and numbers its changes after it. The lock is held until commit, and
//! PostgreSQL makes a commit visible before it releases the transaction's
//! locks. So when a transaction reads the head, every lower position is
//! already committed and visible, and positions become visible in increasing
//! order across all replicas: a reader that has seen position P can never
//! later see a change below P. Numbering is contiguous, and a transaction
//! that rolls back leaves no hole, since nobody else numbered meanwhile.
//!
//! The same lock makes a release happen once cluster-wide: a replica that
//! gets it after another released an article finds it PUBLISHED already.
//! The cost is that writes are serialised across the cluster for the last
//! part of their transaction; a newsroom publishes a few articles a second,
//! and `import` amortises the lock over thousands of articles per statement.

use std::collections::{HashMap, HashSet};

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::changes::change_head_on;
use super::lookups::ArticleKey;
use super::plan::{StoredArticle, TagCounts, WritePlan};
use super::rows::{StoredArticleRow, article_columns};
use super::{Role, Store};
use crate::domain::article::{Article, TagRef, ValidArticle};
use crate::domain::lifecycle::{PublishOutcome, PublishRefused, decide_publish, decide_withdraw};
use crate::error::{Error, Result};

/// Stored articles, with what only the write path needs, locked for this
/// transaction.
macro_rules! select_stored_for_update {
    ($($condition:literal),*) => {
        concat!(
            "SELECT ", article_columns!(), ", a.feed_position ",
            "FROM articles a WHERE ", $($condition),*, " FOR UPDATE"
        )
    };
}

/// Serialises change numbering (any constant works; "ArtFeed1" in ASCII).
const WRITE_LOCK_KEY: i64 = 0x4172_7446_6565_6431;

/// Due articles one release transaction makes public, at most.
const RELEASE_BATCH: i64 = 500;

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted {
    pub article: Article,
    /// A new article was stored.
    pub created: bool,
    /// Something was written: a new article, or a new revision.
    pub changed: bool,
}

/// What a withdrawal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub article: Article,
    /// The article was withdrawn now (false: it already was).
    pub changed: bool,
}

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

    /// Withdraws the article with this key (`None`: there is none).
    pub async fn withdraw(&self, key: &ArticleKey, reason: &str) -> Result<Option<Withdrawal>> {
        self.bounded(async {
            let mut tx = self.begin().await?;
            take_write_lock(&mut tx).await?;
            let now = database_now(&mut tx).await?;
            let query = match key {
                ArticleKey::Id(id) => {
                    sqlx::query_as(select_stored_for_update!("a.id = $1")).bind(*id)
                }
                ArticleKey::Slug(slug) => {
                    sqlx::query_as(select_stored_for_update!("a.slug = $1")).bind(slug.clone())
                }
            };
            let existing = fetch_stored(&mut tx, query).await?;
            let Some(old) = existing.into_iter().next() else {
                return Ok(None);
            };
            let Some(withdrawn) = decide_withdraw(&old.article, now) else {
                return Ok(Some(Withdrawal {
                    article: old.article,
                    changed: false,
                }));
            };
            let head = change_head_on(&mut *tx).await?;
            let mut plan = WritePlan::new(head, now);
            let mut counts = TagCounts::default();
            plan.withdraw(&mut tx, &old, &withdrawn, reason, &mut counts)
                .await?;
            let newest = plan.execute(&mut tx).await?;
            counts.apply(&mut tx).await?;
            tx.commit().await?;
            self.saw_committed_change(newest);
            Ok(Some(Withdrawal {
                article: withdrawn,
                changed: true,
            }))
        })
        .await
    }

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

/// Takes the write lock (see the module's documentation).
async fn take_write_lock(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITE_LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The database's clock, which decides embargoes for every replica alike.
/// Read after the lock, so change times follow change positions.
async fn database_now(conn: &mut PgConnection) -> Result<OffsetDateTime> {
    Ok(sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *conn)
        .await?)
}

type StoredQuery<'q> =
    sqlx::query::QueryAs<'q, sqlx::Postgres, StoredArticleRow, sqlx::postgres::PgArguments>;

async fn fetch_stored(
    conn: &mut PgConnection,
    query: StoredQuery<'_>,
) -> Result<Vec<StoredArticle>> {
    let rows = query.fetch_all(&mut *conn).await?;
    rows.into_iter().map(StoredArticle::try_from).collect()
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
