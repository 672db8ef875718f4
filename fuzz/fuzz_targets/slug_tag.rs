//! Tag names and slugs: every string a request or a file can carry. The
//! first byte is a length limit for `truncate_at_dash`; the rest, as text, is
//! slugified, checked as an article slug, resolved as a tag argument and, one
//! tag per line, validated as an article's tags.
#![no_main]

use article_service::domain::article::{ArticleDraft, resolve_tag, validate};
use article_service::domain::slug::{is_valid_article_slug, slugify, truncate_at_dash};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let Some((&max, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);

    let slug = slugify(&text);
    assert_eq!(slugify(&slug), slug);
    assert!(slug.chars().all(|c| c == '-' || c.is_alphanumeric()));
    assert!(!slug.starts_with('-') && !slug.ends_with('-') && !slug.contains("--"));
    assert_eq!(
        is_valid_article_slug(&slug),
        (1..=120).contains(&slug.chars().count())
    );
    if is_valid_article_slug(&text) {
        assert_eq!(slug, text);
    }
    let cut = truncate_at_dash(&slug, usize::from(max));
    assert!(cut.chars().count() <= usize::from(max) && slug.starts_with(cut));

    match resolve_tag("tag", &text) {
        Ok(resolved) => assert_eq!(resolved, slug),
        Err(violation) => assert!(slug.is_empty() && violation.field == "tag"),
    }

    let draft = ArticleDraft {
        title: "Title".into(),
        body: "Body.".into(),
        tags: text.lines().map(str::to_owned).collect(),
        ..ArticleDraft::default()
    };
    if let Ok(valid) = validate(draft, OffsetDateTime::UNIX_EPOCH) {
        assert!(valid.tags.iter().all(|tag| slugify(&tag.name) == tag.slug));
    }
});
