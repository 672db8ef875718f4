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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn draft() -> ArticleDraft {
        ArticleDraft {
            title: "US and Russian Leaders Unite to Combat Terrorism".into(),
            body: "One.\n\nTwo.".into(),
            tags: vec!["US & Canada".into(), " Russia ".into()],
            published_at: Some(datetime!(2019-12-31 10:30 UTC)),
            ..ArticleDraft::default()
        }
    }

    fn fields(result: Result<ValidArticle, Vec<FieldViolation>>) -> Vec<&'static str> {
        result
            .err()
            .unwrap_or_default()
            .iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn derives_the_contract_example_slug() {
        let valid = validate(draft(), datetime!(2026-01-01 0:00 UTC)).unwrap();
        assert_eq!(
            valid.slug,
            "2019-12-31-us-and-russian-leaders-unite-to-combat-terrorism"
        );
        assert_eq!(
            valid.tags,
            vec![
                TagRef {
                    slug: "us-canada".into(),
                    name: "US & Canada".into()
                },
                TagRef {
                    slug: "russia".into(),
                    name: "Russia".into()
                },
            ]
        );
    }

    #[test]
    fn derived_slug_uses_the_call_date_without_published_at() {
        let valid = validate(
            ArticleDraft {
                published_at: None,
                ..draft()
            },
            datetime!(2026-11-29 23:59:59 -02:00),
        )
        .unwrap();
        assert_eq!(
            valid.slug,
            "2026-11-30-us-and-russian-leaders-unite-to-combat-terrorism"
        );
        assert_eq!(valid.published_at, None);
    }

    #[test]
    fn derived_slug_is_cut_at_a_dash_within_120_characters() {
        let title = "word ".repeat(40);
        let valid = validate(
            ArticleDraft { title, ..draft() },
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(valid.slug.chars().count(), 120);
        assert!(valid.slug.starts_with("2019-12-31-word-word"));
        assert!(valid.slug.ends_with("-word"));
        let title_without_letters = "!!!".to_owned();
        let with_slug = validate(
            ArticleDraft {
                title: title_without_letters.clone(),
                slug: "given".into(),
                ..draft()
            },
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(with_slug.slug, "given");

        let at = datetime!(2019-12-31 10:30 UTC);
        for (title, title_slug) in [
            // 11 + 22 * 5 - 1 = 120: exactly full, the next '-' falls at 121.
            ("word ".repeat(40), ["word"; 22].join("-")),
            // 7-letter words: 13 fit (114 characters), the 14th would end at 122.
            ("abcdefg ".repeat(20), ["abcdefg"; 13].join("-")),
            // Characters, not bytes: "éléphant" is 8 characters, 10 bytes.
            ("Éléphant ".repeat(20), ["éléphant"; 12].join("-")),
        ] {
            assert_eq!(
                derive_slug(&title, at),
                Some(format!("2019-12-31-{title_slug}")),
                "{title:?}"
            );
        }
        // A first word too long to fit is cut at the 120th character.
        let long_word = derive_slug(&"x".repeat(200), at).unwrap();
        assert_eq!(long_word, format!("2019-12-31-{}", "x".repeat(109)));
        assert_eq!(
            derive_slug(&format!("{} short", "t".repeat(500)), at),
            Some(format!("2019-12-31-{}", "t".repeat(109)))
        );
        assert_eq!(
            derive_slug(&"é".repeat(300), at),
            Some(format!("2019-12-31-{}", "é".repeat(109)))
        );
        // No letter or digit: nothing to derive.
        assert_eq!(derive_slug("!!! ???", datetime!(2020-02-29 0:00 UTC)), None);
        assert_eq!(derive_slug("😀😀😀😀😀", at), None);
        assert_eq!(derive_slug("\u{200f} \u{200e}  ", at), None);
    }

    #[test]
    fn a_title_with_no_letter_or_digit_needs_a_slug() {
        for title in ["😀😀😀😀😀", "\u{200f}  \u{200e} ", "!!! ???"] {
            let violations = validate(
                ArticleDraft {
                    title: title.into(),
                    ..draft()
                },
                OffsetDateTime::UNIX_EPOCH,
            )
            .unwrap_err();
            assert_eq!(
                violations,
                [FieldViolation::new(
                    "title",
                    "title has no letter or digit to derive a slug from: give a slug"
                )],
                "{title:?}"
            );
        }
        // Other violations are reported with it, and a blank title once.
        let violations = validate(
            ArticleDraft {
                title: "   ".into(),
                body: String::new(),
                ..draft()
            },
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap_err();
        let fields: Vec<_> = violations.iter().map(|violation| violation.field).collect();
        assert_eq!(fields, ["title", "body"]);
    }

    #[test]
    fn duplicate_tags_count_once_in_first_order() {
        let tags = vec![
            "Russia".into(),
            "US & Canada".into(),
            "RUSSIA".into(),
            "us-canada".into(),
        ];
        let valid = validate(ArticleDraft { tags, ..draft() }, OffsetDateTime::UNIX_EPOCH).unwrap();
        let slugs: Vec<_> = valid.tags.iter().map(|t| t.slug.as_str()).collect();
        assert_eq!(slugs, ["russia", "us-canada"]);
        let names: Vec<_> = valid.tags.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["Russia", "US & Canada"]);
        let twenty_one_same: Vec<String> = (0..21).map(|_| "Same".to_owned()).collect();
        assert!(
            validate(
                ArticleDraft {
                    tags: twenty_one_same,
                    ..draft()
                },
                OffsetDateTime::UNIX_EPOCH
            )
            .is_ok()
        );
    }

    #[test]
    fn each_rule_names_its_field() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            fields(validate(
                ArticleDraft {
                    title: " \n\t".into(),
                    ..draft()
                },
                now
            )),
            ["title"]
        );
        assert_eq!(
            fields(validate(
                ArticleDraft {
                    title: "é".repeat(501),
                    ..draft()
                },
                now
            )),
            ["title"]
        );
        assert!(
            validate(
                ArticleDraft {
                    title: "é".repeat(500),
                    ..draft()
                },
                now
            )
            .is_ok()
        );
        assert_eq!(
            fields(validate(
                ArticleDraft {
                    body: "  ".into(),
                    ..draft()
                },
                now
            )),
            ["body"]
        );
        assert_eq!(
            fields(validate(
                ArticleDraft {
                    body: "x".repeat(MAX_BODY_BYTES + 1),
                    ..draft()
                },
                now
            )),
            ["body"]
        );
        assert!(
            validate(
                ArticleDraft {
                    body: "x".repeat(MAX_BODY_BYTES),
                    ..draft()
                },
                now
            )
            .is_ok()
        );
        assert_eq!(
            fields(validate(
                ArticleDraft {
                    summary: "s".repeat(2001),
                    ..draft()
                },
                now
            )),
            ["summary"]
        );
        assert_eq!(
            fields(validate(
                ArticleDraft {
                    byline: "b".repeat(201),
                    ..draft()
                },
                now
            )),
            ["byline"]
        );
        let too_many: Vec<String> = (0..21).map(|i| format!("tag {i}")).collect();
        assert_eq!(
            fields(validate(
                ArticleDraft {
                    tags: too_many,
                    ..draft()
                },
                now
            )),
            ["tags"]
        );
        let long_tag = format!(" {} ", "\u{10400}".repeat(MAX_TAG_CHARS + 1));
        assert_eq!(
            fields(validate(
                ArticleDraft {
                    tags: vec![long_tag],
                    ..draft()
                },
                now
            )),
            ["tags"]
        );
        let longest_tag = format!(" {} ", "\u{10400}".repeat(MAX_TAG_CHARS));
        assert!(
            validate(
                ArticleDraft {
                    tags: vec![longest_tag],
                    ..draft()
                },
                now
            )
            .is_ok()
        );
        assert_eq!(
            fields(validate(
                ArticleDraft {
                    tags: vec!["!!!".into()],
                    ..draft()
                },
                now
            )),
            ["tags"]
        );
        assert_eq!(
            fields(validate(
                ArticleDraft {
                    slug: "Bad Slug".into(),
                    ..draft()
                },
                now
            )),
            ["slug"]
        );
        assert_eq!(
            fields(validate(
                ArticleDraft {
                    slug: "a".repeat(121),
                    ..draft()
                },
                now
            )),
            ["slug"]
        );
        assert_eq!(
            fields(validate(
                ArticleDraft {
                    title: String::new(),
                    body: String::new(),
                    ..draft()
                },
                now
            )),
            ["title", "body"]
        );
    }

    /// `fields` of validating the sample draft changed by `change`.
    fn refused(change: impl FnOnce(&mut ArticleDraft)) -> Vec<&'static str> {
        let mut changed = draft();
        change(&mut changed);
        fields(validate(changed, OffsetDateTime::UNIX_EPOCH))
    }

    #[test]
    fn required_and_sized_fields_count_characters_or_bytes_as_documented() {
        // Blank is any Unicode white space.
        assert_eq!(refused(|d| d.title = " \t\r\n\u{3000} ".into()), ["title"]);
        assert_eq!(refused(|d| d.body = String::new()), ["body"]);
        assert_eq!(refused(|d| d.body = "\n\n \t ".into()), ["body"]);
        // The body's limit is in bytes: 1 MiB + 1 byte in 524,289 characters.
        assert_eq!(
            refused(|d| d.body = format!("{}x", "é".repeat(MAX_BODY_BYTES / 2))),
            ["body"]
        );
        assert!(refused(|d| d.body = "é".repeat(MAX_BODY_BYTES / 2)).is_empty());
        // The others' are in characters, inclusive.
        assert_eq!(
            refused(|d| d.summary = "ß".repeat(MAX_SUMMARY_CHARS + 1)),
            ["summary"]
        );
        assert!(refused(|d| d.summary = "ß".repeat(MAX_SUMMARY_CHARS)).is_empty());
        assert_eq!(
            refused(|d| d.byline = "ü".repeat(MAX_BYLINE_CHARS + 1)),
            ["byline"]
        );
        assert!(refused(|d| d.byline = "ü".repeat(MAX_BYLINE_CHARS)).is_empty());
        assert!(refused(|d| d.slug = "a".repeat(120)).is_empty());
    }

    #[test]
    fn slug_rule_cases() {
        for slug in [
            "Upper".to_owned(),
            "a--b".to_owned(),
            "-a".to_owned(),
            "a-".to_owned(),
            "-".to_owned(),
            "a".repeat(121),
            format!("{}-b", "a".repeat(119)),
            "with space".to_owned(),
            "under_score".to_owned(),
            "dot.ted".to_owned(),
            "ÉCONOMIE".to_owned(),
            " leading".to_owned(),
        ] {
            assert_eq!(refused(|d| d.slug = slug.clone()), ["slug"], "{slug:?}");
        }
        for slug in ["économie-2024", "my-chosen-slug-2", "a"] {
            assert!(refused(|d| d.slug = slug.into()).is_empty(), "{slug:?}");
        }
    }

    #[test]
    fn tag_rule_cases() {
        for tags in [
            vec!["Fine".to_owned(), "!!!".to_owned()],
            vec![String::new()],
            vec!["  ".to_owned()],
        ] {
            assert_eq!(refused(|d| d.tags = tags.clone()), ["tags"], "{tags:?}");
        }
        // At most 20 distinct slugs; names sharing a slug count once.
        let twenty: Vec<String> = (0..20).map(|i| format!("Tag {i}")).collect();
        assert!(refused(|d| d.tags = twenty.clone()).is_empty());
        let mut with_duplicates = twenty.clone();
        with_duplicates.extend((0..5).map(|i| format!("TAG {i}")));
        assert!(refused(|d| d.tags = with_duplicates).is_empty());
        let mut twenty_one = twenty;
        twenty_one.push("Tag 20".into());
        assert_eq!(refused(|d| d.tags = twenty_one), ["tags"]);
    }

    #[test]
    fn tags_sharing_a_slug_keep_the_first_name_trimmed() {
        let tags = [
            "  Middle   East ",
            "Russia",
            "middle-east",
            "US & Canada",
            "RUSSIA",
            " us canada ",
            "\tMIDDLE EAST\n",
        ];
        let valid = validate(
            ArticleDraft {
                tags: tags.map(str::to_owned).to_vec(),
                ..draft()
            },
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        let pairs: Vec<(&str, &str)> = valid
            .tags
            .iter()
            .map(|t| (t.slug.as_str(), t.name.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("middle-east", "Middle   East"),
                ("russia", "Russia"),
                ("us-canada", "US & Canada")
            ]
        );
    }

    #[test]
    fn nul_is_refused_in_every_string_field() {
        assert_eq!(refused(|d| d.title = "Nul\0title".into()), ["title"]);
        assert_eq!(refused(|d| d.summary = "\0".into()), ["summary"]);
        assert_eq!(refused(|d| d.body = "Body\0".into()), ["body"]);
        assert_eq!(refused(|d| d.byline = "\0By".into()), ["byline"]);
        assert_eq!(refused(|d| d.tags = vec!["Tag\0Name".into()]), ["tags"]);
        // Also not a valid slug: two violations of the one field.
        assert_eq!(refused(|d| d.slug = "slug\0".into()), ["slug", "slug"]);
    }

    #[test]
    fn published_at_must_lie_within_the_years_1_to_9999_in_utc() {
        let at = |published_at: OffsetDateTime| {
            validate(
                ArticleDraft {
                    published_at: Some(published_at),
                    ..draft()
                },
                OffsetDateTime::UNIX_EPOCH,
            )
        };
        for inside in [
            datetime!(0001-01-01 0:00 UTC),
            datetime!(0001-01-01 00:30 +00:30),
            datetime!(9999-12-31 23:59:59.999999999 UTC),
            datetime!(9999-12-31 23:30 +01:00),
        ] {
            assert!(at(inside).is_ok(), "{inside}");
        }
        for outside in [
            datetime!(0000-12-31 23:59:59.999999999 UTC),
            datetime!(0001-01-01 00:30 +01:00),
            datetime!(-9999-01-01 0:00 UTC),
            // 10000-01-01 in UTC, beyond what `time` holds.
            datetime!(9999-12-31 23:30 -01:00),
        ] {
            let violations = at(outside).unwrap_err();
            assert_eq!(
                violations.iter().map(|v| v.field).collect::<Vec<_>>(),
                ["published_at"],
                "{outside}"
            );
            let description = &violations.first().unwrap().description;
            assert!(
                description.contains("out of range")
                    && description.contains("must lie within the years 1 to 9999"),
                "{description}"
            );
        }
        // Reported along with the other fields' violations.
        assert_eq!(
            fields(validate(
                ArticleDraft {
                    title: String::new(),
                    published_at: Some(datetime!(0000-06-01 0:00 UTC)),
                    ..draft()
                },
                OffsetDateTime::UNIX_EPOCH,
            )),
            ["title", "published_at"]
        );
    }

    #[test]
    fn strings_are_kept_exactly_as_sent() {
        let sent = ArticleDraft {
            slug: "given-slug".into(),
            title: "  Title with spaces  ".into(),
            summary: " summary\n".into(),
            body: "\n body \n".into(),
            byline: " 7Dnews London ".into(),
            ..draft()
        };
        let valid = validate(sent.clone(), OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(valid.slug, "given-slug");
        assert_eq!(valid.title, sent.title);
        assert_eq!(valid.summary, sent.summary);
        assert_eq!(valid.body, sent.body);
        assert_eq!(valid.byline, sent.byline);
    }

    #[test]
    fn published_at_is_truncated_to_microseconds() {
        let at = datetime!(2019-12-31 10:30:00.123456789 UTC);
        let valid = validate(
            ArticleDraft {
                published_at: Some(at),
                ..draft()
            },
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(
            valid.published_at,
            Some(datetime!(2019-12-31 10:30:00.123456 UTC))
        );
    }

    // ---- hostile input: every string of a draft comes from outside ----

    /// Text a hostile publisher might send: anything, or a mix weighted
    /// towards SQL and LIKE metacharacters, control characters, bidi marks.
    fn arb_text(max: usize) -> impl Strategy<Value = String> {
        let nasty = proptest::sample::select(vec![
            "'; DROP TABLE articles; --",
            "%",
            "_",
            "\\",
            "'",
            "\"",
            "\0",
            "\u{1}",
            "\u{200f}",
            "\u{202e}",
            "\u{feff}",
            " ",
            "\n",
            "A",
            "é",
            "7",
        ]);
        prop_oneof![
            proptest::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter),
            proptest::collection::vec(nasty, 0..max.min(12)).prop_map(|parts| parts.concat()),
        ]
    }

    /// Drafts as any caller can build them: `published_at` in UTC, anywhere
    /// `time` can hold it (the years 1 to 9999 are `validate`'s to check).
    fn arb_draft() -> impl Strategy<Value = ArticleDraft> {
        let first = datetime!(0001-01-01 0:00 UTC).unix_timestamp();
        let last = datetime!(9999-12-31 23:59:59 UTC).unix_timestamp();
        let earliest = datetime!(-9999-01-01 0:00 UTC).unix_timestamp();
        let seconds = prop_oneof![9 => first..=last, 1 => earliest..first];
        (
            prop_oneof![arb_text(20), "[a-z0-9]{1,10}(-[a-z0-9]{1,10}){0,3}"],
            arb_text(40),
            arb_text(20),
            arb_text(40),
            arb_text(20),
            proptest::collection::vec(arb_text(12), 0..25),
            proptest::option::of(seconds),
        )
            .prop_map(|(slug, title, summary, body, byline, tags, published_at)| {
                ArticleDraft {
                    slug,
                    title,
                    summary,
                    body,
                    byline,
                    tags,
                    published_at: published_at
                        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok()),
                }
            })
    }

    const FIELDS: [&str; 7] = [
        "slug",
        "title",
        "summary",
        "body",
        "byline",
        "tags",
        "published_at",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn validation_is_total_and_keeps_its_promises(draft in arb_draft()) {
            match validate(draft.clone(), datetime!(2026-01-01 0:00 UTC)) {
                Ok(valid) => {
                    prop_assert!(is_valid_article_slug(&valid.slug), "{:?}", valid.slug);
                    if !draft.slug.is_empty() {
                        prop_assert_eq!(&valid.slug, &draft.slug);
                    }
                    prop_assert_eq!(&valid.title, &draft.title);
                    prop_assert_eq!(&valid.summary, &draft.summary);
                    prop_assert_eq!(&valid.body, &draft.body);
                    prop_assert_eq!(&valid.byline, &draft.byline);
                    prop_assert!(valid.published_at.is_none_or(|at| PUBLISHED_AT_YEARS.contains(&at.year())));
                    prop_assert!(valid.tags.len() <= MAX_TAGS);
                    for (index, tag) in valid.tags.iter().enumerate() {
                        prop_assert!(!tag.slug.is_empty());
                        prop_assert_eq!(&slugify(&tag.name), &tag.slug);
                        prop_assert_eq!(tag.name.trim(), tag.name.as_str());
                        prop_assert!(!tag.name.contains('\0'));
                        let earlier = valid.tags.get(..index).unwrap_or_default();
                        prop_assert!(earlier.iter().all(|other| other.slug != tag.slug));
                    }
                    for text in [&valid.slug, &valid.title, &valid.summary, &valid.body, &valid.byline] {
                        prop_assert!(!text.contains('\0'));
                    }
                }
                Err(violations) => {
                    prop_assert!(!violations.is_empty());
                    for violation in &violations {
                        prop_assert!(FIELDS.contains(&violation.field), "{:?}", violation);
                        prop_assert!(!violation.description.is_empty());
                    }
                }
            }
        }

        /// A tag argument resolves to its slug or to a violation naming the
        /// field; one made only of metacharacters has no slug at all (so a
        /// tag named `%` can never match every tag).
        #[test]
        fn tag_arguments_resolve_or_are_refused(tag in arb_text(30)) {
            match resolve_tag("tag", &tag) {
                Ok(slug) => {
                    prop_assert!(!slug.is_empty());
                    prop_assert_eq!(slug, slugify(&tag));
                }
                Err(violation) => {
                    prop_assert_eq!(violation.field, "tag");
                    prop_assert!(!tag.chars().flat_map(char::to_lowercase).any(char::is_alphanumeric));
                }
            }
        }

        #[test]
        fn derived_slugs_are_valid_for_every_title_and_date(
            title in arb_text(200),
            seconds in datetime!(0001-01-01 0:00 UTC).unix_timestamp()..=datetime!(9999-12-31 23:59:59 UTC).unix_timestamp(),
        ) {
            let at = OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            match derive_slug(&title, at) {
                Some(slug) => {
                    prop_assert!(is_valid_article_slug(&slug), "{:?}", slug);
                    prop_assert!(slug.chars().count() <= 120);
                    // Always something of the title after the date.
                    prop_assert!(slug.chars().count() > 11, "{:?}", slug);
                }
                None => prop_assert_eq!(slugify(&title), ""),
            }
        }
    }

    #[test]
    fn metacharacter_tags_are_refused_not_widened() {
        for tag in ["%", "_", "%%", "\\", "'", "\"", "'; --", "\0", "\u{202e}"] {
            let draft = ArticleDraft {
                tags: vec![tag.to_owned()],
                ..draft()
            };
            let mut refused = fields(validate(draft, OffsetDateTime::UNIX_EPOCH));
            // NUL breaks two rules of the same field.
            refused.dedup();
            assert_eq!(refused, ["tags"], "{tag:?}");
        }
        // Letters among the metacharacters: the slug keeps only the letters.
        assert_eq!(resolve_tag("tag", "a%b_c"), Ok("a-b-c".to_owned()));
        // A huge value is quoted in part only.
        let huge = "!".repeat(100_000);
        let violation = resolve_tag("tag", &huge).unwrap_err();
        assert_eq!(
            violation.description,
            format!("tag {:?}... has no letter or digit", "!".repeat(40))
        );
        assert_eq!(
            resolve_tag("tag", "'; DROP TABLE tags; --"),
            Ok("drop-table-tags".to_owned())
        );
    }
}
