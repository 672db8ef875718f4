//! Articles: what a publisher sends (`ArticleDraft`), what passes the
//! contract's validation (`ValidArticle`), and what is stored (`Article`).

use std::ops::RangeInclusive;

use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::slug::{MAX_ARTICLE_SLUG_CHARS, is_valid_article_slug, slugify, truncate_at_dash};

pub const MAX_TITLE_CHARS: usize = 500;
pub const MAX_SUMMARY_CHARS: usize = 2_000;
pub const MAX_BYLINE_CHARS: usize = 200;
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const MAX_TAGS: usize = 20;
/// Longest tag name, in characters, after trimming. Keeps every tag slug
/// within what a database index entry and a page token can hold (at most 4
/// bytes of UTF-8 per character once lowercased).
pub const MAX_TAG_CHARS: usize = 200;
/// The years `published_at` may fall in, in UTC: what RFC 3339 (4-digit
/// years, no year 0) and PostgreSQL's `timestamptz` both represent.
pub const PUBLISHED_AT_YEARS: RangeInclusive<i32> = 1..=9999;

/// A tag as articles carry it: its slug and its display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRef {
    pub slug: String,
    pub name: String,
}

/// A stored article.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    pub id: Uuid,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub body: String,
    pub byline: String,
    pub tags: Vec<TagRef>,
    pub published_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub revision: i64,
    pub state: ArticleState,
}

/// Where an article stands. Public reads show `Published` articles only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArticleState {
    Published,
    /// Stored, public from `published_at` on (embargo).
    Scheduled,
    /// Taken down, until published again.
    Withdrawn,
}

impl ArticleState {
    pub fn is_public(self) -> bool {
        self == Self::Published
    }
}

/// An article as a publisher sends it (PublishArticleRequest, or one record
/// of an import file), before any rule is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArticleDraft {
    /// Empty: derive it from the date and the title.
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub body: String,
    pub byline: String,
    /// Display names, as given.
    pub tags: Vec<String>,
    pub published_at: Option<OffsetDateTime>,
}

/// A draft that passed validation: slug resolved, tags trimmed, resolved to
/// slugs and de-duplicated, `published_at` at the database's precision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidArticle {
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub body: String,
    pub byline: String,
    /// `name` is the name as given here; the stored display name of a tag
    /// that already exists wins over it.
    pub tags: Vec<TagRef>,
    /// None: now for a new article, unchanged for an existing one.
    pub published_at: Option<OffsetDateTime>,
}

/// One broken rule, naming the request field (`google.rpc.BadRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: &'static str,
    pub description: String,
}

impl std::fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Violations as one message: "field: description; field: description".
pub fn describe_violations(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(FieldViolation::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl FieldViolation {
    pub fn new(field: &'static str, description: impl Into<String>) -> Self {
        Self {
            field,
            description: description.into(),
        }
    }
}

/// Characters of a caller's value an error quotes back, at most: all of a
/// huge one would outgrow the response headers that carry the error (and be
/// sent twice: in the message and in its BadRequest detail).
const QUOTED_CHARS: usize = 40;

/// `value` quoted for an error message, cut after [`QUOTED_CHARS`].
fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{:?}...", value.get(..cut).unwrap_or_default()),
        None => format!("{value:?}"),
    }
}

/// Resolves a tag argument (slug or display name, any case) to its slug.
pub fn resolve_tag(field: &'static str, tag: &str) -> Result<String, FieldViolation> {
    let slug = slugify(tag);
    if slug.is_empty() {
        return Err(FieldViolation::new(
            field,
            format!("tag {} has no letter or digit", quoted(tag)),
        ));
    }
    Ok(slug)
}

/// A tag as a request names it (an article's tag, a stream's filter):
/// trimmed, at most [`MAX_TAG_CHARS`] characters, and its slug.
pub fn resolve_tag_name<'a>(
    field: &'static str,
    name: &'a str,
) -> Result<(&'a str, String), FieldViolation> {
    let name = name.trim();
    if name.chars().count() > MAX_TAG_CHARS {
        return Err(FieldViolation::new(
            field,
            format!("a tag name is longer than {MAX_TAG_CHARS} characters"),
        ));
    }
    Ok((name, resolve_tag(field, name)?))
}

/// Truncates to whole microseconds, the precision PostgreSQL stores, so that
/// re-publishing the same timestamp compares equal to the stored one.
pub fn to_storage_precision(at: OffsetDateTime) -> OffsetDateTime {
    let nanos = at.nanosecond();
    at.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(at)
}

/// The slug PublishArticle derives when none is given:
/// `YYYY-MM-DD-<title slug>`, the title's slug cut at its last '-' that keeps
/// the whole within 120 characters, or, when that would leave none of it (a
/// very long first word), at the character that does. `None` for a title with
/// no letter or digit: the date alone would let unrelated headlines of one
/// day overwrite each other.
pub fn derive_slug(title: &str, published_at: OffsetDateTime) -> Option<String> {
    let title_slug = slugify(title);
    if title_slug.is_empty() {
        return None;
    }
    let date = published_at.to_offset(UtcOffset::UTC).date();
    let prefix = format!(
        "{:04}-{:02}-{:02}-",
        date.year(),
        u8::from(date.month()),
        date.day(),
    );
    let room = MAX_ARTICLE_SLUG_CHARS.saturating_sub(prefix.chars().count());
    Some(format!("{prefix}{}", truncate_at_dash(&title_slug, room)))
}

/// Applies every PublishArticle rule to a draft. `now` is the time of the
/// call, used for the derived slug when `published_at` is omitted. All
/// violations are reported, not only the first.
pub fn validate(
    draft: ArticleDraft,
    now: OffsetDateTime,
) -> Result<ValidArticle, Vec<FieldViolation>> {
    let mut violations = Vec::new();

    if draft.title.trim().is_empty() {
        violations.push(FieldViolation::new("title", "title is required"));
    } else if draft.title.chars().count() > MAX_TITLE_CHARS {
        violations.push(FieldViolation::new(
            "title",
            format!("title is longer than {MAX_TITLE_CHARS} characters"),
        ));
    }
    if draft.body.trim().is_empty() {
        violations.push(FieldViolation::new("body", "body is required"));
    } else if draft.body.len() > MAX_BODY_BYTES {
        violations.push(FieldViolation::new(
            "body",
            format!("body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    if draft.summary.chars().count() > MAX_SUMMARY_CHARS {
        violations.push(FieldViolation::new(
            "summary",
            format!("summary is longer than {MAX_SUMMARY_CHARS} characters"),
        ));
    }
    if draft.byline.chars().count() > MAX_BYLINE_CHARS {
        violations.push(FieldViolation::new(
            "byline",
            format!("byline is longer than {MAX_BYLINE_CHARS} characters"),
        ));
    }

    // PostgreSQL text cannot hold NUL; refuse it rather than fail later.
    for (field, value) in [
        ("title", &draft.title),
        ("summary", &draft.summary),
        ("body", &draft.body),
        ("byline", &draft.byline),
        ("slug", &draft.slug),
    ] {
        if value.contains('\0') {
            violations.push(FieldViolation::new(
                field,
                format!("{field} must not contain NUL characters"),
            ));
        }
    }
    if draft.tags.iter().any(|tag| tag.contains('\0')) {
        violations.push(FieldViolation::new(
            "tags",
            "tags must not contain NUL characters",
        ));
    }

    let tags = validate_tags(&draft.tags).unwrap_or_else(|violation| {
        violations.push(violation);
        Vec::new()
    });

    if !draft.slug.is_empty() && !is_valid_article_slug(&draft.slug) {
        violations.push(FieldViolation::new(
            "slug",
            "slug must be 1 to 120 characters: lowercase letters, digits and single '-' between them",
        ));
    }

    if let Some(at) = draft.published_at
        && !is_within_published_at_years(at)
    {
        violations.push(FieldViolation::new(
            "published_at",
            format!(
                "published_at is out of range: a timestamp must lie within the years {} to {} \
                 (UTC)",
                PUBLISHED_AT_YEARS.start(),
                PUBLISHED_AT_YEARS.end()
            ),
        ));
    }

    // A blank title is already reported as required.
    if draft.slug.is_empty() && !draft.title.trim().is_empty() && slugify(&draft.title).is_empty() {
        violations.push(FieldViolation::new(
            "title",
            "title has no letter or digit to derive a slug from: give a slug",
        ));
    }

    let published_at = draft.published_at.map(to_storage_precision);
    if !violations.is_empty() {
        return Err(violations);
    }

    let slug = if draft.slug.is_empty() {
        // Some: the title has a letter or digit (checked above).
        derive_slug(&draft.title, published_at.unwrap_or(now)).unwrap_or_default()
    } else {
        draft.slug
    };
    Ok(ValidArticle {
        slug,
        title: draft.title,
        summary: draft.summary,
        body: draft.body,
        byline: draft.byline,
        tags,
        published_at,
    })
}

/// Whether `at`, taken in UTC, falls within [`PUBLISHED_AT_YEARS`] (false
/// when its UTC date is beyond what `time` can hold).
fn is_within_published_at_years(at: OffsetDateTime) -> bool {
    at.checked_to_offset(UtcOffset::UTC)
        .is_some_and(|utc| PUBLISHED_AT_YEARS.contains(&utc.year()))
}

/// Trims, resolves and de-duplicates tag names (first occurrence wins).
fn validate_tags(names: &[String]) -> Result<Vec<TagRef>, FieldViolation> {
    let mut tags: Vec<TagRef> = Vec::with_capacity(names.len().min(MAX_TAGS));
    for name in names {
        let (name, slug) = resolve_tag_name("tags", name)?;
        if !tags.iter().any(|tag| tag.slug == slug) {
            if tags.len() == MAX_TAGS {
                return Err(FieldViolation::new(
                    "tags",
                    format!("an article has at most {MAX_TAGS} tags"),
                ));
            }
            tags.push(TagRef {
                slug,
                name: name.to_owned(),
            });
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests;
