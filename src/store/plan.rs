//! What one write transaction changes, collected while deciding and then
//! written set-based: new rows, new revisions (the superseded ones kept in
//! `article_revisions`), the changes made public, tag counts, notifications.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::inserts::{Changes, Links, NewRows};
use super::notify::notify_write;
use super::rows::{StoredArticleRow, state_column};
use crate::domain::article::{Article, TagRef};
use crate::domain::lifecycle::{ChangeKind, filter_tags, public_change};
use crate::error::{Error, Result};

/// A stored article as the write path reads it.
#[derive(Debug, Clone)]
pub(super) struct StoredArticle {
    pub article: Article,
    /// The change at which it first became public; `None`: never yet.
    pub feed_position: Option<i64>,
}

impl TryFrom<StoredArticleRow> for StoredArticle {
    type Error = Error;

    fn try_from(row: StoredArticleRow) -> Result<Self> {
        Ok(Self {
            article: Article::try_from(row.article)?,
            feed_position: row.feed_position,
        })
    }
}

/// The rows a transaction writes.
pub(super) struct WritePlan {
    /// The change log's head when the transaction took the write lock.
    next_position: i64,
    now: OffsetDateTime,
    inserts: Vec<(Article, Option<i64>)>,
    updates: Vec<ArticleRecord>,
    /// Articles whose current row is kept as a superseded revision before
    /// it is updated.
    superseded: Vec<Uuid>,
    /// Articles whose `article_tags` rows are replaced, and the change
    /// position from which the new ones list them.
    relisted: Vec<(Uuid, i64)>,
    links: Links,
    changes: Changes,
    /// Articles that changed, for every replica's read cache.
    changed_ids: Vec<Uuid>,
}

impl WritePlan {
    pub fn new(head: i64, now: OffsetDateTime) -> Self {
        Self {
            next_position: head,
            now,
            inserts: Vec::new(),
            updates: Vec::new(),
            superseded: Vec::new(),
            relisted: Vec::new(),
            links: Links::default(),
            changes: Changes::default(),
            changed_ids: Vec::new(),
        }
    }

    /// Numbers a change made public by this transaction.
    fn change(
        &mut self,
        article: &Article,
        kind: ChangeKind,
        first_public: bool,
        filter: Vec<String>,
        change_time: OffsetDateTime,
        reason: &str,
    ) -> i64 {
        self.next_position += 1;
        self.changes.push(
            self.next_position,
            article,
            kind,
            first_public,
            change_time,
            reason,
            filter,
        );
        self.next_position
    }

    pub fn insert(&mut self, article: &Article, counts: &mut TagCounts) {
        let feed_position = article.state.is_public().then(|| {
            counts.add(&article.tags, 1);
            let filter = filter_tags([], slugs(&article.tags));
            self.change(article, ChangeKind::Published, true, filter, self.now, "")
        });
        self.links.add(article, 0);
        self.inserts.push((article.clone(), feed_position));
    }

    pub fn update(&mut self, old: &StoredArticle, new: &Article, counts: &mut TagCounts) {
        let mut feed_position = old.feed_position;
        match public_change(Some(old.article.state), new.state) {
            Some(ChangeKind::Published) => {
                let first_public = feed_position.is_none();
                let filter = filter_tags([], slugs(&new.tags));
                let position = self.change(
                    new,
                    ChangeKind::Published,
                    first_public,
                    filter,
                    self.now,
                    "",
                );
                feed_position.get_or_insert(position);
            }
            Some(kind) => {
                let filter = filter_tags(slugs(&old.article.tags), slugs(&new.tags));
                self.change(new, kind, false, filter, self.now, "");
            }
            None => {}
        }
        if old.article.state.is_public() {
            counts.add(&old.article.tags, -1);
        }
        if new.state.is_public() {
            counts.add(&new.tags, 1);
        }
        self.supersede(new, feed_position, None, "");
        // A tag's listing changes only when the tags or the date do: the
        // rows before stay for sessions paging an earlier snapshot.
        if !same_listing(&old.article, new) {
            let from = self.next_position;
            self.relisted.push((new.id, from));
            self.links.add(new, from);
        }
    }

    /// A withdrawal; a public article's tombstone reaches every stream that
    /// any of its earlier (now left out) changes reached.
    pub async fn withdraw(
        &mut self,
        conn: &mut PgConnection,
        old: &StoredArticle,
        new: &Article,
        reason: &str,
        counts: &mut TagCounts,
    ) -> Result<()> {
        let mut withdrawn_position = None;
        if old.article.state.is_public() {
            let earlier = earlier_filter_tags(conn, old.article.id).await?;
            let filter = filter_tags(earlier.iter().map(String::as_str), slugs(&new.tags));
            let position = self.change(new, ChangeKind::Withdrawn, false, filter, self.now, reason);
            withdrawn_position = Some(position);
            counts.add(&old.article.tags, -1);
        }
        self.supersede(new, old.feed_position, withdrawn_position, reason);
        Ok(())
    }

    /// A SCHEDULED article whose time has come: PUBLISHED, its change dated
    /// at the end of its embargo.
    pub fn release(&mut self, stored: &StoredArticle, counts: &mut TagCounts) {
        let article = Article {
            state: crate::domain::article::ArticleState::Published,
            ..stored.article.clone()
        };
        let first_public = stored.feed_position.is_none();
        let filter = filter_tags([], slugs(&article.tags));
        let position = self.change(
            &article,
            ChangeKind::Published,
            first_public,
            filter,
            article.published_at,
            "",
        );
        counts.add(&article.tags, 1);
        self.updates.push(ArticleRecord::new(
            &article,
            stored.feed_position.or(Some(position)),
            None,
            None,
        ));
        self.changed_ids.push(article.id);
    }

    /// The article's row becomes `new`; the current one is kept as a
    /// superseded revision.
    fn supersede(
        &mut self,
        new: &Article,
        feed_position: Option<i64>,
        withdrawn_position: Option<i64>,
        reason: &str,
    ) {
        self.superseded.push(new.id);
        let reason =
            (new.state == crate::domain::article::ArticleState::Withdrawn).then_some(reason);
        self.updates.push(ArticleRecord::new(
            new,
            feed_position,
            withdrawn_position,
            reason,
        ));
        self.changed_ids.push(new.id);
    }

    /// Writes the plan, then the notifications (delivered at commit);
    /// returns the newest change position it wrote, if any.
    pub async fn execute(self, conn: &mut PgConnection) -> Result<Option<i64>> {
        if !self.inserts.is_empty() {
            NewRows::of(&self.inserts).insert(conn).await?;
        }
        if !self.superseded.is_empty() {
            sqlx::query(
                "INSERT INTO article_revisions (article_id, revision, slug, title, summary, body, \
                 byline, tag_slugs, tag_names, published_at, updated_at) \
                 SELECT id, revision, slug, title, summary, body, byline, tag_slugs, tag_names, \
                 published_at, updated_at FROM articles WHERE id = ANY($1) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&self.superseded)
            .execute(&mut *conn)
            .await?;
        }
        if !self.updates.is_empty() {
            // Only a timestamp outside RFC 3339's years could fail, and
            // validation refuses those before they reach the store.
            let updates = serde_json::to_string(&self.updates).map_err(|error| {
                Error::Internal(format!("an article row does not serialize: {error}"))
            })?;
            sqlx::query(
                "UPDATE articles a SET title = r.title, summary = r.summary, body = r.body, \
                 byline = r.byline, tag_slugs = r.tag_slugs, tag_names = r.tag_names, \
                 published_at = r.published_at, updated_at = r.updated_at, revision = r.revision, \
                 state = r.state, feed_position = r.feed_position, \
                 withdrawn_position = coalesce(r.withdrawn_position, a.withdrawn_position), \
                 withdrawal_reason = coalesce(r.withdrawal_reason, a.withdrawal_reason) \
                 FROM jsonb_to_recordset($1::jsonb) AS r(id uuid, title text, summary text, body text, \
                 byline text, tag_slugs text[], tag_names text[], published_at timestamptz, \
                 updated_at timestamptz, revision bigint, state smallint, feed_position bigint, \
                 withdrawn_position bigint, withdrawal_reason text) \
                 WHERE a.id = r.id",
            )
            .bind(updates)
            .execute(&mut *conn)
            .await?;
        }
        if !self.relisted.is_empty() {
            let (ids, from): (Vec<Uuid>, Vec<i64>) = self.relisted.iter().copied().unzip();
            // Rows that no snapshot could list yet (opened at this very
            // position) go; the others are closed there.
            sqlx::query(
                "DELETE FROM article_tags t USING UNNEST($1::uuid[], $2::bigint[]) AS r(id, from_position) \
                 WHERE t.article_id = r.id AND t.visible_until IS NULL \
                 AND t.visible_from >= r.from_position",
            )
            .bind(&ids)
            .bind(&from)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE article_tags t SET visible_until = r.from_position \
                 FROM UNNEST($1::uuid[], $2::bigint[]) AS r(id, from_position) \
                 WHERE t.article_id = r.id AND t.visible_until IS NULL",
            )
            .bind(&ids)
            .bind(&from)
            .execute(&mut *conn)
            .await?;
        }
        self.links.insert(conn).await?;
        let newest_position = self.changes.insert(conn).await?;
        notify_write(conn, &self.changed_ids, newest_position).await?;
        Ok(newest_position)
    }
}

/// The changes a withdrawal leaves out (every earlier one of the article)
/// had these filter tags: its tombstone must reach their streams too.
async fn earlier_filter_tags(conn: &mut PgConnection, id: Uuid) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(array_agg(DISTINCT t), '{}') FROM article_changes c, \
         unnest(c.filter_tags) AS t WHERE c.article_id = $1",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?)
}

/// Whether `new` has the place in its tags' listings that `old` had: the
/// same tags and the same `published_at`.
fn same_listing(old: &Article, new: &Article) -> bool {
    fn sorted(tags: &[TagRef]) -> Vec<&str> {
        let mut slugs: Vec<&str> = slugs(tags).collect();
        slugs.sort_unstable();
        slugs
    }
    old.published_at == new.published_at && sorted(&old.tags) == sorted(&new.tags)
}

fn slugs(tags: &[TagRef]) -> impl Iterator<Item = &str> {
    tags.iter().map(|tag| tag.slug.as_str())
}

/// An article row as `jsonb_to_recordset` reads it: one JSON parameter
/// carries a whole chunk, ragged tag arrays included. (Updates are rare next
/// to inserts, which go as arrays: `NewRows`.)
#[derive(Serialize)]
struct ArticleRecord {
    id: Uuid,
    title: String,
    summary: String,
    body: String,
    byline: String,
    tag_slugs: Vec<String>,
    tag_names: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    published_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    revision: i64,
    state: i16,
    feed_position: Option<i64>,
    /// `None` keeps the stored value.
    withdrawn_position: Option<i64>,
    withdrawal_reason: Option<String>,
}

impl ArticleRecord {
    fn new(
        article: &Article,
        feed_position: Option<i64>,
        withdrawn_position: Option<i64>,
        withdrawal_reason: Option<&str>,
    ) -> Self {
        Self {
            id: article.id,
            title: article.title.clone(),
            summary: article.summary.clone(),
            body: article.body.clone(),
            byline: article.byline.clone(),
            tag_slugs: article.tags.iter().map(|tag| tag.slug.clone()).collect(),
            tag_names: article.tags.iter().map(|tag| tag.name.clone()).collect(),
            published_at: article.published_at,
            updated_at: article.updated_at,
            revision: article.revision,
            state: state_column(article.state),
            feed_position,
            withdrawn_position,
            withdrawal_reason: withdrawal_reason.map(str::to_owned),
        }
    }
}

/// Changes to `tags.article_count` (PUBLISHED articles only), by tag slug.
#[derive(Default)]
pub(super) struct TagCounts(HashMap<String, i64>);

impl TagCounts {
    fn add(&mut self, tags: &[TagRef], delta: i64) {
        for tag in tags {
            *self.0.entry(tag.slug.clone()).or_default() += delta;
        }
    }

    /// Writes the changes (one statement) and forgets them.
    pub async fn apply(&mut self, conn: &mut PgConnection) -> Result<()> {
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
