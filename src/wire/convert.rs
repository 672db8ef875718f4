//! Conversions between the proto messages and the domain types.

use prost_types::Timestamp;
use time::OffsetDateTime;

use crate::domain::article::{Article, ArticleDraft, ArticleState, FieldViolation, TagRef};
use crate::domain::lifecycle::{Change, ChangeKind};
use crate::proto;

pub fn article_to_proto(article: &Article) -> proto::Article {
    article_into_proto(article.clone())
}

/// The article, moved into its message (no copy of its text).
pub fn article_into_proto(article: Article) -> proto::Article {
    proto::Article {
        state: state_to_proto(article.state) as i32,
        id: article.id.hyphenated().to_string(),
        slug: article.slug,
        title: article.title,
        summary: article.summary,
        body: article.body,
        byline: article.byline,
        tags: article.tags.into_iter().map(tag_into_proto).collect(),
        published_at: Some(timestamp(article.published_at)),
        updated_at: Some(timestamp(article.updated_at)),
        revision: article.revision,
    }
}

/// A withdrawn article as the change feed shows it: `id`, `slug`, `tags`,
/// `revision`, `updated_at` and `state` only.
fn tombstone_into_proto(article: Article) -> proto::Article {
    proto::Article {
        id: article.id.hyphenated().to_string(),
        slug: article.slug,
        tags: article.tags.into_iter().map(tag_into_proto).collect(),
        updated_at: Some(timestamp(article.updated_at)),
        revision: article.revision,
        state: proto::ArticleState::Withdrawn as i32,
        ..proto::Article::default()
    }
}

/// A change, its article as the change's type shows it (whole, or a
/// tombstone).
pub fn change_to_proto(change: &Change) -> proto::ArticleChange {
    change_into_proto(change.clone())
}

/// A change moved into its message (no copy of its text).
pub fn change_into_proto(change: Change) -> proto::ArticleChange {
    let (kind, article) = match change.kind {
        ChangeKind::Published => (
            proto::ChangeType::Published,
            article_into_proto(change.article),
        ),
        ChangeKind::Updated => (
            proto::ChangeType::Updated,
            article_into_proto(change.article),
        ),
        ChangeKind::Withdrawn => (
            proto::ChangeType::Withdrawn,
            tombstone_into_proto(change.article),
        ),
    };
    proto::ArticleChange {
        r#type: kind as i32,
        article: Some(article),
        change_time: Some(timestamp(change.change_time)),
        reason: change.reason,
    }
}

fn state_to_proto(state: ArticleState) -> proto::ArticleState {
    match state {
        ArticleState::Published => proto::ArticleState::Published,
        ArticleState::Scheduled => proto::ArticleState::Scheduled,
        ArticleState::Withdrawn => proto::ArticleState::Withdrawn,
    }
}

/// How much of an article a read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    Full,
    /// Every field but `body`.
    Basic,
}

/// A request's `view`. Unknown values are refused rather than guessed at.
pub fn view_from_proto(view: i32) -> Result<View, FieldViolation> {
    match proto::ArticleView::try_from(view) {
        Ok(proto::ArticleView::Basic) => Ok(View::Basic),
        Ok(proto::ArticleView::Unspecified | proto::ArticleView::Full) => Ok(View::Full),
        Err(_) => Err(FieldViolation::new(
            "view",
            "view must be ARTICLE_VIEW_BASIC, ARTICLE_VIEW_FULL or unspecified",
        )),
    }
}

impl View {
    /// The article as this view shows it (BASIC: every field but `body`).
    pub fn apply(self, mut article: proto::Article) -> proto::Article {
        if self == View::Basic {
            article.body.clear();
        }
        article
    }
}

pub fn tag_to_proto(tag: &TagRef) -> proto::Tag {
    tag_into_proto(tag.clone())
}

fn tag_into_proto(tag: TagRef) -> proto::Tag {
    proto::Tag {
        slug: tag.slug,
        name: tag.name,
    }
}

pub fn timestamp(at: OffsetDateTime) -> Timestamp {
    let nanos = at.unix_timestamp_nanos();
    Timestamp {
        seconds: at.unix_timestamp(),
        // Always within 0..1e9, so the conversion cannot fail.
        nanos: i32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
    }
}

/// A request timestamp, converted: refused only when it cannot be
/// represented at all (nanos outside a second, or seconds beyond the years
/// `time` holds, -9999 to 9999). Whether a representable one is in range is
/// a rule of the field's own (`published_at`: `domain::article::validate`).
pub fn from_timestamp(
    field: &'static str,
    at: &Timestamp,
) -> Result<OffsetDateTime, FieldViolation> {
    let invalid = || FieldViolation::new(field, "timestamp must lie within the years 1 to 9999");
    let nanos = u32::try_from(at.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000)
        .ok_or_else(invalid)?;
    OffsetDateTime::from_unix_timestamp(at.seconds)
        .map_err(|_| invalid())?
        .replace_nanosecond(nanos)
        .map_err(|_| invalid())
}

pub fn draft_from_proto(
    request: proto::PublishArticleRequest,
) -> Result<ArticleDraft, FieldViolation> {
    let published_at = request
        .published_at
        .as_ref()
        .map(|at| from_timestamp("published_at", at))
        .transpose()?;
    Ok(ArticleDraft {
        slug: request.slug,
        title: request.title,
        summary: request.summary,
        body: request.body,
        byline: request.byline,
        tags: request.tags,
        published_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn timestamps_round_trip() {
        for at in [
            datetime!(2019-12-31 10:30:00.123456 UTC),
            datetime!(1969-12-31 23:59:59.5 UTC),
            datetime!(0001-01-01 0:00 UTC),
        ] {
            assert_eq!(from_timestamp("published_at", &timestamp(at)), Ok(at));
        }
        assert_eq!(
            timestamp(datetime!(1969-12-31 23:59:59.5 UTC)),
            Timestamp {
                seconds: -1,
                nanos: 500_000_000
            }
        );
    }

    #[test]
    fn unrepresentable_timestamps_are_refused() {
        for at in [
            Timestamp {
                seconds: 0,
                nanos: -1,
            },
            Timestamp {
                seconds: 0,
                nanos: 1_000_000_000,
            },
            Timestamp {
                seconds: i64::MAX,
                nanos: 0,
            },
            Timestamp {
                seconds: i64::MIN,
                nanos: 0,
            },
            // 10000-01-01T00:00:00Z.
            Timestamp {
                seconds: 253_402_300_800,
                nanos: 0,
            },
        ] {
            assert_eq!(
                from_timestamp("published_at", &at).map_err(|v| v.field),
                Err("published_at")
            );
        }
    }

    #[test]
    fn a_representable_timestamp_out_of_the_year_range_is_left_to_validation() {
        // One second before 0001-01-01T00:00:00Z: year 0, which `time` holds.
        let request = proto::PublishArticleRequest {
            title: "Title".into(),
            body: "Body.".into(),
            published_at: Some(Timestamp {
                seconds: -62_135_596_801,
                nanos: 0,
            }),
            ..proto::PublishArticleRequest::default()
        };
        let draft = draft_from_proto(request).unwrap();
        assert_eq!(draft.published_at, Some(datetime!(0000-12-31 23:59:59 UTC)));
        let violations =
            crate::domain::article::validate(draft, OffsetDateTime::UNIX_EPOCH).unwrap_err();
        let fields: Vec<&str> = violations.iter().map(|v| v.field).collect();
        assert_eq!(fields, ["published_at"]);
    }
}
