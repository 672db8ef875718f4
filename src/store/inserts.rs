//! The set-based inserts of a write transaction: one statement per table,
//! whatever the number of rows, each column travelling as one array.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{change_kind_column, state_column};
use crate::domain::article::Article;
use crate::domain::lifecycle::ChangeKind;
use crate::error::Result;

/// `article_tags` rows to insert.
#[derive(Default)]
pub(super) struct Links {
    tags: Vec<String>,
    articles: Vec<Uuid>,
    published: Vec<OffsetDateTime>,
    visible_from: Vec<i64>,
}

impl Links {
    /// The article's rows, listing it for snapshots from `visible_from` on.
    pub fn add(&mut self, article: &Article, visible_from: i64) {
        for tag in &article.tags {
            self.tags.push(tag.slug.clone());
            self.articles.push(article.id);
            self.published.push(article.published_at);
            self.visible_from.push(visible_from);
        }
    }

    pub async fn insert(self, conn: &mut PgConnection) -> Result<()> {
        if self.tags.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO article_tags (tag_slug, article_id, published_at, visible_from) \
             SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::timestamptz[], $4::bigint[])",
        )
        .bind(&self.tags)
        .bind(&self.articles)
        .bind(&self.published)
        .bind(&self.visible_from)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Change log rows to insert, one array per column; filter tags are ragged,
/// so they travel flattened with the (1-based) row they belong to.
#[derive(Default)]
pub(super) struct Changes {
    positions: Vec<i64>,
    article_ids: Vec<Uuid>,
    revisions: Vec<i64>,
    kinds: Vec<i16>,
    first_public: Vec<bool>,
    change_times: Vec<OffsetDateTime>,
    reasons: Vec<String>,
    tag_rows: Vec<i64>,
    tag_slugs: Vec<String>,
}

impl Changes {
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        position: i64,
        article: &Article,
        kind: ChangeKind,
        first_public: bool,
        change_time: OffsetDateTime,
        reason: &str,
        filter: Vec<String>,
    ) {
        self.positions.push(position);
        self.article_ids.push(article.id);
        self.revisions.push(article.revision);
        self.kinds.push(change_kind_column(kind));
        self.first_public.push(first_public);
        self.change_times.push(change_time);
        self.reasons.push(reason.to_owned());
        let row = self.positions.len() as i64;
        for slug in filter {
            self.tag_rows.push(row);
            self.tag_slugs.push(slug);
        }
    }

    /// Inserts the rows; returns the newest position, if any.
    pub async fn insert(self, conn: &mut PgConnection) -> Result<Option<i64>> {
        let Some(&newest) = self.positions.last() else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO article_changes (position, article_id, revision, change_type, \
             first_public, change_time, reason, filter_tags) \
             SELECT c.position, c.article_id, c.revision, c.change_type, c.first_public, \
             c.change_time, c.reason, coalesce(t.slugs, '{}') \
             FROM UNNEST($1::bigint[], $2::uuid[], $3::bigint[], $4::smallint[], $5::bool[], \
             $6::timestamptz[], $7::text[]) WITH ORDINALITY \
             AS c(position, article_id, revision, change_type, first_public, change_time, reason, n) \
             LEFT JOIN (SELECT r, array_agg(s ORDER BY k) AS slugs \
             FROM UNNEST($8::bigint[], $9::text[]) WITH ORDINALITY AS x(r, s, k) GROUP BY r) t \
             ON t.r = c.n",
        )
        .bind(&self.positions)
        .bind(&self.article_ids)
        .bind(&self.revisions)
        .bind(&self.kinds)
        .bind(&self.first_public)
        .bind(&self.change_times)
        .bind(&self.reasons)
        .bind(&self.tag_rows)
        .bind(&self.tag_slugs)
        .execute(&mut *conn)
        .await?;
        Ok(Some(newest))
    }
}

/// New articles as one array per column: PostgreSQL reads binary arrays far
/// faster than it parses the same rows out of JSON (`jsonb_to_recordset`
/// took about half of an import's time, BENCHMARKS.md). Tags are ragged, so
/// they travel flattened with the (1-based) row they belong to.
#[derive(Default)]
pub(super) struct NewRows<'a> {
    ids: Vec<Uuid>,
    slugs: Vec<&'a str>,
    titles: Vec<&'a str>,
    summaries: Vec<&'a str>,
    bodies: Vec<&'a str>,
    bylines: Vec<&'a str>,
    published: Vec<OffsetDateTime>,
    updated: Vec<OffsetDateTime>,
    revisions: Vec<i64>,
    states: Vec<i16>,
    positions: Vec<Option<i64>>,
    tag_rows: Vec<i64>,
    tag_slugs: Vec<&'a str>,
    tag_names: Vec<&'a str>,
}

impl<'a> NewRows<'a> {
    pub fn of(inserts: &'a [(Article, Option<i64>)]) -> Self {
        let mut rows = NewRows::default();
        for (article, feed_position) in inserts {
            rows.ids.push(article.id);
            rows.slugs.push(&article.slug);
            rows.titles.push(&article.title);
            rows.summaries.push(&article.summary);
            rows.bodies.push(&article.body);
            rows.bylines.push(&article.byline);
            rows.published.push(article.published_at);
            rows.updated.push(article.updated_at);
            rows.revisions.push(article.revision);
            rows.states.push(state_column(article.state));
            rows.positions.push(*feed_position);
            let row = rows.ids.len() as i64;
            for tag in &article.tags {
                rows.tag_rows.push(row);
                rows.tag_slugs.push(&tag.slug);
                rows.tag_names.push(&tag.name);
            }
        }
        rows
    }

    pub async fn insert(self, conn: &mut PgConnection) -> Result<()> {
        // In order, so the position and id (v7) indexes grow at their end.
        sqlx::query(
            "INSERT INTO articles (id, slug, title, summary, body, byline, tag_slugs, tag_names, \
             published_at, updated_at, revision, state, feed_position) \
             SELECT a.id, a.slug, a.title, a.summary, a.body, a.byline, \
             coalesce(t.slugs, '{}'), coalesce(t.names, '{}'), \
             a.published_at, a.updated_at, a.revision, a.state, a.feed_position \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::timestamptz[], $8::timestamptz[], $9::bigint[], $10::smallint[], $11::bigint[]) \
             WITH ORDINALITY AS a(id, slug, title, summary, body, byline, published_at, \
             updated_at, revision, state, feed_position, n) \
             LEFT JOIN (SELECT r, array_agg(s ORDER BY k) AS slugs, array_agg(nm ORDER BY k) AS names \
             FROM UNNEST($12::bigint[], $13::text[], $14::text[]) WITH ORDINALITY AS x(r, s, nm, k) \
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
        .bind(self.states)
        .bind(self.positions)
        .bind(self.tag_rows)
        .bind(self.tag_slugs)
        .bind(self.tag_names)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
