//! Tests of `lifecycle`.

use super::*;
use time::Duration;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-12-06 12:00 UTC);

fn tag(slug: &str) -> TagRef {
    TagRef {
        slug: slug.into(),
        name: slug.to_uppercase(),
    }
}

fn request(published_at: Option<OffsetDateTime>) -> ValidArticle {
    ValidArticle {
        slug: "2026-12-06-rates-held".into(),
        title: "Rates held".into(),
        summary: String::new(),
        body: "One.\n\nTwo.".into(),
        byline: "Markets desk".into(),
        tags: vec![tag("economy")],
        published_at,
    }
}

fn stored(state: ArticleState, published_at: OffsetDateTime) -> Article {
    Article {
        id: Uuid::from_u128(7),
        slug: "2026-12-06-rates-held".into(),
        title: "Rates held".into(),
        summary: String::new(),
        body: "One.\n\nTwo.".into(),
        byline: "Markets desk".into(),
        tags: vec![tag("economy")],
        published_at,
        updated_at: NOW - Duration::hours(1),
        revision: 3,
        state,
    }
}

fn decide(existing: Option<&Article>, request: ValidArticle) -> PublishOutcome {
    let tags = request.tags.clone();
    decide_publish(existing, request, tags, NOW, Uuid::from_u128(9))
        .unwrap_or_else(|refused| panic!("refused: {refused:?}"))
}

#[test]
fn a_new_article_is_public_unless_its_time_is_later_than_now() {
    for (published_at, state) in [
        (None, ArticleState::Published),
        (Some(NOW - Duration::days(1)), ArticleState::Published),
        (Some(NOW), ArticleState::Published),
        (
            Some(NOW + Duration::microseconds(1)),
            ArticleState::Scheduled,
        ),
    ] {
        let PublishOutcome::Created(article) = decide(None, request(published_at)) else {
            panic!("created");
        };
        assert_eq!(article.state, state, "{published_at:?}");
        assert_eq!(article.revision, 1);
        assert_eq!(article.id, Uuid::from_u128(9));
        assert_eq!(article.updated_at, NOW);
        assert_eq!(article.published_at, published_at.unwrap_or(NOW));
    }
}

#[test]
fn the_same_content_changes_nothing_unless_the_article_was_withdrawn() {
    let at = NOW - Duration::days(1);
    for state in [ArticleState::Published, ArticleState::Scheduled] {
        let old = stored(state, at);
        assert_eq!(
            decide(Some(&old), request(Some(at))),
            PublishOutcome::Unchanged
        );
        assert_eq!(decide(Some(&old), request(None)), PublishOutcome::Unchanged);
    }
    let withdrawn = stored(ArticleState::Withdrawn, at);
    let PublishOutcome::Updated(article) = decide(Some(&withdrawn), request(None)) else {
        panic!("published again");
    };
    assert_eq!(
        (article.revision, article.state, article.updated_at),
        (4, ArticleState::Published, NOW)
    );
}

#[test]
fn a_withdrawn_article_published_again_with_a_future_time_is_scheduled() {
    let withdrawn = stored(ArticleState::Withdrawn, NOW - Duration::days(1));
    let later = NOW + Duration::hours(2);
    let PublishOutcome::Updated(article) = decide(Some(&withdrawn), request(Some(later))) else {
        panic!("updated");
    };
    assert_eq!(
        (article.state, article.published_at),
        (ArticleState::Scheduled, later)
    );
}

#[test]
fn a_change_raises_the_revision_and_keeps_the_stored_time_when_omitted() {
    let at = NOW - Duration::days(1);
    let old = stored(ArticleState::Published, at);
    let changed = ValidArticle {
        title: "Rates held again".into(),
        ..request(None)
    };
    let PublishOutcome::Updated(article) = decide(Some(&old), changed) else {
        panic!("updated");
    };
    assert_eq!(article.title, "Rates held again");
    assert_eq!(article.published_at, at);
    assert_eq!(
        (article.revision, article.updated_at, article.id),
        (4, NOW, old.id)
    );
    assert_eq!(article.state, ArticleState::Published);
}

#[test]
fn a_public_article_cannot_move_into_the_future() {
    let old = stored(ArticleState::Published, NOW - Duration::days(1));
    let tags = vec![tag("economy")];
    assert_eq!(
        decide_publish(
            Some(&old),
            request(Some(NOW + Duration::seconds(1))),
            tags,
            NOW,
            Uuid::nil()
        ),
        Err(PublishRefused::PublishedIntoTheFuture)
    );
}

#[test]
fn a_scheduled_article_is_released_when_its_time_moves_to_now_or_earlier() {
    let old = stored(ArticleState::Scheduled, NOW + Duration::days(1));
    let PublishOutcome::Updated(article) = decide(Some(&old), request(Some(NOW))) else {
        panic!("updated");
    };
    assert_eq!(article.state, ArticleState::Published);
    let moved_later = request(Some(NOW + Duration::days(2)));
    let PublishOutcome::Updated(article) = decide(Some(&old), moved_later) else {
        panic!("updated");
    };
    assert_eq!(
        (article.state, article.revision),
        (ArticleState::Scheduled, 4)
    );
}

/// Stored SCHEDULED but due (the release job has not run yet): it is
/// PUBLISHED by the database's clock, so it cannot go back under
/// embargo, and an edit releases it.
#[test]
fn a_due_scheduled_article_is_public_to_an_update() {
    let due = stored(ArticleState::Scheduled, NOW - Duration::seconds(1));
    let tags = vec![tag("economy")];
    assert_eq!(
        decide_publish(
            Some(&due),
            request(Some(NOW + Duration::hours(1))),
            tags,
            NOW,
            Uuid::nil()
        ),
        Err(PublishRefused::PublishedIntoTheFuture)
    );
    let edited = ValidArticle {
        body: "Edited.".into(),
        ..request(None)
    };
    let PublishOutcome::Updated(article) = decide(Some(&due), edited) else {
        panic!("updated");
    };
    assert_eq!(
        (article.state, article.revision, article.published_at),
        (ArticleState::Published, 4, due.published_at)
    );
}

#[test]
fn withdrawing_raises_the_revision_once() {
    let old = stored(ArticleState::Published, NOW - Duration::days(1));
    let withdrawn = decide_withdraw(&old, NOW).expect("withdrawn");
    assert_eq!(
        (withdrawn.state, withdrawn.revision, withdrawn.updated_at),
        (ArticleState::Withdrawn, 4, NOW)
    );
    assert_eq!(withdrawn.body, old.body, "editors still see the content");
    assert_eq!(decide_withdraw(&withdrawn, NOW), None);
    let scheduled = stored(ArticleState::Scheduled, NOW + Duration::days(1));
    assert_eq!(
        decide_withdraw(&scheduled, NOW).map(|article| article.state),
        Some(ArticleState::Withdrawn)
    );
}

#[test]
fn a_reason_has_at_most_500_characters_and_no_nul() {
    assert_eq!(validate_reason(""), Ok(()));
    assert_eq!(validate_reason(&"é".repeat(MAX_REASON_CHARS)), Ok(()));
    for reason in ["é".repeat(MAX_REASON_CHARS + 1), "legal\0".to_owned()] {
        assert_eq!(
            validate_reason(&reason).map_err(|violation| violation.field),
            Err("reason")
        );
    }
}

#[test]
fn only_changes_to_public_content_are_changes() {
    use ArticleState::*;
    let cases = [
        (None, Published, Some(ChangeKind::Published)),
        (None, Scheduled, None),
        (Some(Scheduled), Scheduled, None),
        (Some(Scheduled), Published, Some(ChangeKind::Published)),
        (Some(Scheduled), Withdrawn, None),
        (Some(Published), Published, Some(ChangeKind::Updated)),
        (Some(Published), Withdrawn, Some(ChangeKind::Withdrawn)),
        (Some(Withdrawn), Published, Some(ChangeKind::Published)),
        (Some(Withdrawn), Scheduled, None),
    ];
    for (before, after, change) in cases {
        assert_eq!(
            public_change(before, after),
            change,
            "{before:?} -> {after:?}"
        );
    }
}

#[test]
fn filter_tags_are_before_and_after_without_repeats() {
    assert_eq!(
        filter_tags(["a", "b"], ["b", "c", "a"]),
        vec!["a".to_owned(), "b".into(), "c".into()]
    );
    assert!(filter_tags([], []).is_empty());
}
