//! Rows as the statements read them, and how they become domain types.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::article::{Article, ArticleState, TagRef};
use crate::domain::lifecycle::{Change, ChangeKind};
use crate::error::{Error, Result};

/// The columns of `ArticleRow`, in its order, from `articles a`.
macro_rules! article_columns {
    () => {
        concat!(
            "a.id, a.slug, a.title, a.summary, a.body, a.byline, a.tag_slugs, a.tag_names, ",
            "a.published_at, a.updated_at, a.revision, a.state"
        )
    };
}
pub(super) use article_columns;

/// `SELECT` of `ArticleRow`'s columns `FROM` the rest.
macro_rules! select_articles {
    ($($rest:literal),*) => {
        concat!("SELECT ", $crate::store::rows::article_columns!(), " FROM ", $($rest),*)
    };
}
pub(super) use select_articles;

/// An article as a tag's listing reads it, with the `published_at` of its
/// listing row: the article's as of the paging session's snapshot, which
/// orders the listing (and the next page's cursor) for the whole session.
#[derive(sqlx::FromRow)]
pub(super) struct ListedRow {
    #[sqlx(flatten)]
    pub article: ArticleRow,
    pub listed_at: OffsetDateTime,
    /// Set when an update after the snapshot changed the article's tags or
    /// date (the row was closed then).
    pub visible_until: Option<i64>,
}

/// An article's current revision, as read from `articles`.
#[derive(sqlx::FromRow)]
pub(super) struct ArticleRow {
    pub id: Uuid,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub body: String,
    pub byline: String,
    pub tag_slugs: Vec<String>,
    pub tag_names: Vec<String>,
    pub published_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub revision: i64,
    pub state: i16,
}

impl ArticleRow {
    /// The most bytes the article takes in an encoded response, whatever
    /// the view (page cuts must not depend on it): its text, and for the
    /// rest (id, timestamps, revision, state, every field's tag and length)
    /// a bound, so that a page within `MAX_PAGE_BYTES` fits the 4 MiB that
    /// gRPC clients accept by default.
    pub(super) fn encoded_bytes_at_most(&self) -> usize {
        // The id (38), two timestamps (2 x 24), revision (11), state (2),
        // six text fields' tags and lengths (6 x 6) and the article's own
        // (6): 141; each tag's message, tag and lengths: 3 x 6.
        const FIXED: usize = 144;
        const PER_TAG: usize = 18;
        FIXED + PER_TAG * self.tag_slugs.len() + self.text_bytes()
    }

    fn text_bytes(&self) -> usize {
        [
            &self.slug,
            &self.title,
            &self.summary,
            &self.body,
            &self.byline,
        ]
        .iter()
        .map(|text| text.len())
        .chain(
            self.tag_slugs
                .iter()
                .chain(&self.tag_names)
                .map(String::len),
        )
        .sum()
    }
}

impl TryFrom<ArticleRow> for Article {
    type Error = Error;

    fn try_from(row: ArticleRow) -> Result<Self> {
        Ok(Self {
            id: row.id,
            slug: row.slug,
            title: row.title,
            summary: row.summary,
            body: row.body,
            byline: row.byline,
            tags: tags(row.tag_slugs, row.tag_names),
            published_at: row.published_at,
            updated_at: row.updated_at,
            revision: row.revision,
            state: state_from_column(row.state)?,
        })
    }
}

/// An article's row with what only the write path needs.
#[derive(sqlx::FromRow)]
pub(super) struct StoredArticleRow {
    #[sqlx(flatten)]
    pub article: ArticleRow,
    pub feed_position: Option<i64>,
}

/// Rows to articles; a row the schema's CHECK should have refused is a bug.
pub(super) fn articles(rows: Vec<ArticleRow>) -> Result<Vec<Article>> {
    rows.into_iter().map(Article::try_from).collect()
}

fn tags(slugs: Vec<String>, names: Vec<String>) -> Vec<TagRef> {
    slugs
        .into_iter()
        .zip(names)
        .map(|(slug, name)| TagRef { slug, name })
        .collect()
}

pub(super) fn state_from_column(state: i16) -> Result<ArticleState> {
    match state {
        STATE_PUBLISHED => Ok(ArticleState::Published),
        STATE_SCHEDULED => Ok(ArticleState::Scheduled),
        STATE_WITHDRAWN => Ok(ArticleState::Withdrawn),
        other => Err(Error::Internal(format!("unknown article state {other}"))),
    }
}

pub(super) const STATE_PUBLISHED: i16 = 1;
pub(super) const STATE_SCHEDULED: i16 = 2;
pub(super) const STATE_WITHDRAWN: i16 = 3;

pub(super) fn state_column(state: ArticleState) -> i16 {
    match state {
        ArticleState::Published => STATE_PUBLISHED,
        ArticleState::Scheduled => STATE_SCHEDULED,
        ArticleState::Withdrawn => STATE_WITHDRAWN,
    }
}

pub(super) fn change_kind_column(kind: ChangeKind) -> i16 {
    match kind {
        ChangeKind::Published => 1,
        ChangeKind::Updated => 2,
        ChangeKind::Withdrawn => 3,
    }
}

fn change_kind_from_column(kind: i16) -> Result<ChangeKind> {
    match kind {
        1 => Ok(ChangeKind::Published),
        2 => Ok(ChangeKind::Updated),
        3 => Ok(ChangeKind::Withdrawn),
        other => Err(Error::Internal(format!("unknown change type {other}"))),
    }
}

/// A change with its article as of the change's revision: from
/// `article_revisions` when a later revision superseded it, else from the
/// article's row (`coalesce` works column by column: every column of
/// `article_revisions` is NOT NULL).
/// `$6`: whether to read the bodies.
macro_rules! select_changes {
    ($($rest:literal),*) => {
        concat!(
            "SELECT c.position, c.change_type, c.first_public, c.change_time, c.reason, ",
            "c.filter_tags, a.id, a.slug, c.revision, ",
            "CASE c.change_type WHEN 3 THEN 3 ELSE 1 END::smallint AS state, ",
            "coalesce(r.title, a.title) AS title, coalesce(r.summary, a.summary) AS summary, ",
            "CASE WHEN $6 THEN coalesce(r.body, a.body) ELSE '' END AS body, ",
            "coalesce(r.byline, a.byline) AS byline, ",
            "coalesce(r.tag_slugs, a.tag_slugs) AS tag_slugs, ",
            "coalesce(r.tag_names, a.tag_names) AS tag_names, ",
            "coalesce(r.published_at, a.published_at) AS published_at, ",
            "coalesce(r.updated_at, a.updated_at) AS updated_at ",
            "FROM article_changes c JOIN articles a ON a.id = c.article_id ",
            "LEFT JOIN article_revisions r ON r.article_id = c.article_id AND r.revision = c.revision ",
            $($rest),*
        )
    };
}
pub(super) use select_changes;

/// A change, its article as of the change's revision (`state`: what the
/// change made it, PUBLISHED or WITHDRAWN).
#[derive(sqlx::FromRow)]
pub(super) struct ChangeRow {
    position: i64,
    change_type: i16,
    first_public: bool,
    change_time: OffsetDateTime,
    reason: String,
    filter_tags: Vec<String>,
    #[sqlx(flatten)]
    article: ArticleRow,
}

impl TryFrom<ChangeRow> for Change {
    type Error = Error;

    fn try_from(row: ChangeRow) -> Result<Self> {
        Ok(Self {
            position: row.position,
            kind: change_kind_from_column(row.change_type)?,
            first_public: row.first_public,
            change_time: row.change_time,
            reason: row.reason,
            filter_tags: row.filter_tags,
            article: Article::try_from(row.article)?,
        })
    }
}
