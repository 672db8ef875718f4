//! The article lifecycle as pure decisions: what a publish or a withdrawal
//! does to the stored article, and which change (if any) the public sees.
//!
//! The store reads the stored article and the database's clock, asks here,
//! and writes what the decision says; nothing here touches the database.

use time::OffsetDateTime;
use uuid::Uuid;

use super::article::{Article, ArticleState, FieldViolation, TagRef, ValidArticle};

/// Longest withdrawal reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// A change to public content, as StreamArticleChanges names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The article became public.
    Published,
    /// A public article changed.
    Updated,
    /// A public article was taken down.
    Withdrawn,
}

/// One entry of the change log, with the article as of the revision it
/// produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its place in the one order of changes (gap-free, see `store::writes`).
    pub position: i64,
    pub kind: ChangeKind,
    /// The article became public for the first time: the change that
    /// StreamNewArticles sends.
    pub first_public: bool,
    /// When it became visible: its commit, or the end of the embargo.
    pub change_time: OffsetDateTime,
    /// The reason given for a withdrawal; empty otherwise.
    pub reason: String,
    /// The tag slugs a stream's filter matches (`filter_tags`).
    pub filter_tags: Vec<String>,
    pub article: Article,
}

/// The change the public sees when an article goes from `before` (`None`:
/// it did not exist) to `after` with a new revision. Changes to non-public
/// articles are not changes to public content.
pub fn public_change(before: Option<ArticleState>, after: ArticleState) -> Option<ChangeKind> {
    match (before, after) {
        (Some(ArticleState::Published), ArticleState::Published) => Some(ChangeKind::Updated),
        (Some(ArticleState::Published), ArticleState::Withdrawn) => Some(ChangeKind::Withdrawn),
        (_, ArticleState::Published) => Some(ChangeKind::Published),
        _ => None,
    }
}

/// What a publish does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// A new article is stored (revision 1).
    Created(Article),
    /// The stored article is replaced by this new revision.
    Updated(Article),
    /// Nothing changes: the stored article is returned as it is.
    Unchanged,
}

/// Why a publish cannot be applied to the stored article.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishRefused {
    /// A public article cannot move back under embargo.
    PublishedIntoTheFuture,
}

/// Decides a publish. `tags` are the request's tags with their stored
/// display names; `now` is the database's clock (it decides embargoes for
/// every replica alike); `new_id` names the article if one is created.
///
/// - New: SCHEDULED when the request gives a `published_at` later than
///   `now`, else PUBLISHED; an omitted `published_at` is `now`.
/// - WITHDRAWN: published again, always as a new revision, PUBLISHED or
///   SCHEDULED by its `published_at`.
/// - PUBLISHED: a future `published_at` is refused; otherwise a new
///   revision only when something changes.
/// - SCHEDULED: a new revision only when something changes; it stays
///   SCHEDULED while its `published_at` is later than `now` (moving it to
///   the past or now releases it at once).
pub fn decide_publish(
    existing: Option<&Article>,
    request: ValidArticle,
    tags: Vec<TagRef>,
    now: OffsetDateTime,
    new_id: Uuid,
) -> Result<PublishOutcome, PublishRefused> {
    let state_at = |published_at: OffsetDateTime| {
        if published_at > now {
            ArticleState::Scheduled
        } else {
            ArticleState::Published
        }
    };
    let Some(old) = existing else {
        let published_at = request.published_at.unwrap_or(now);
        return Ok(PublishOutcome::Created(Article {
            id: new_id,
            slug: request.slug,
            title: request.title,
            summary: request.summary,
            body: request.body,
            byline: request.byline,
            tags,
            published_at,
            updated_at: now,
            revision: 1,
            state: state_at(published_at),
        }));
    };
    // A SCHEDULED article whose `published_at` has come is PUBLISHED by the
    // contract's rule (the database's clock decides), even before the
    // release job has stored it so: it may not go back under embargo.
    let old_state = match old.state {
        ArticleState::Scheduled if old.published_at <= now => ArticleState::Published,
        stored => stored,
    };
    let published_at = request.published_at.unwrap_or(old.published_at);
    if old_state == ArticleState::Published && request.published_at.is_some() && published_at > now
    {
        return Err(PublishRefused::PublishedIntoTheFuture);
    }
    let candidate = Article {
        title: request.title,
        summary: request.summary,
        body: request.body,
        byline: request.byline,
        tags,
        published_at,
        ..old.clone()
    };
    let state = match old_state {
        // A public article stays public whatever its stored `published_at`
        // (only an explicit future one is refused, above); a due one
        // becomes public with this revision.
        ArticleState::Published => ArticleState::Published,
        ArticleState::Scheduled | ArticleState::Withdrawn => state_at(published_at),
    };
    if old.state != ArticleState::Withdrawn && candidate == *old {
        return Ok(PublishOutcome::Unchanged);
    }
    Ok(PublishOutcome::Updated(Article {
        revision: old.revision + 1,
        updated_at: now,
        state,
        ..candidate
    }))
}

/// A withdrawal's reason: free text of at most `MAX_REASON_CHARS`
/// characters, without NUL (which PostgreSQL text cannot hold); may be empty.
pub fn validate_reason(reason: &str) -> Result<(), FieldViolation> {
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(FieldViolation::new(
            "reason",
            format!("reason is longer than {MAX_REASON_CHARS} characters"),
        ));
    }
    if reason.contains('\0') {
        return Err(FieldViolation::new(
            "reason",
            "reason must not contain NUL characters",
        ));
    }
    Ok(())
}

/// Decides a withdrawal: a PUBLISHED or SCHEDULED article becomes WITHDRAWN
/// as a new revision; a WITHDRAWN one stays as it is (`None`).
pub fn decide_withdraw(existing: &Article, now: OffsetDateTime) -> Option<Article> {
    if existing.state == ArticleState::Withdrawn {
        return None;
    }
    Some(Article {
        revision: existing.revision + 1,
        updated_at: now,
        state: ArticleState::Withdrawn,
        ..existing.clone()
    })
}

/// The tags a change's stream filter matches: the article's tags before and
/// after it (an update that takes an article out of a tag reaches that tag's
/// consumers, who can drop it), without repeats, in order of first mention.
pub fn filter_tags<'a>(
    before: impl IntoIterator<Item = &'a str>,
    after: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for slug in before.into_iter().chain(after) {
        if !tags.iter().any(|tag| tag == slug) {
            tags.push(slug.to_owned());
        }
    }
    tags
}

#[cfg(test)]
mod tests;
