//! End to end: PublishArticle against the real binary and a fresh PostgreSQL
//! database: authentication, derived slugs, idempotent updates, tags,
//! validation, and strings stored exactly as sent.
//!
//! Validation here is one case per status path: INVALID_ARGUMENT with its
//! BadRequest detail naming the field, one representative rule per field
//! (and several fields at once), values at their limits stored and read
//! back, and what needs the server (auth before validation, nothing stored
//! on a refusal, idempotency, concurrency). The pure rules themselves, case
//! by case, are unit tests:
//!
//! - `src/domain/article.rs` (`validate`, `derive_slug`): required fields,
//!   each length limit (characters or bytes, inclusive), NUL in each field,
//!   the slug rule's cases, the tag rules (no letter or digit, at most 20
//!   slugs, 200 characters, names sharing a slug counted once, first name
//!   kept), `published_at` within the years 1 to 9999 in UTC, derived slugs
//!   cut at a dash within 120 characters;
//! - `src/domain/slug.rs`: `slugify`, the article slug syntax, truncation;
//! - `src/wire/convert.rs`: Timestamps that cannot be represented (nanos
//!   outside a second, seconds beyond the year 9999).
//!
//! NUL and metacharacters in every field through the server:
//! `hostile_input.rs`.

use crate::common::*;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::{
    Article, ListArticlesByTagRequest, ListTagsRequest, PublishArticleRequest,
    PublishArticleResponse,
};
use tonic::Code;
use tonic::transport::Channel;

fn with_slug(slug: &str, request: PublishArticleRequest) -> PublishArticleRequest {
    PublishArticleRequest {
        slug: slug.to_owned(),
        ..request
    }
}

async fn try_publish(
    client: &mut ArticleServiceClient<Channel>,
    request: PublishArticleRequest,
) -> Result<PublishArticleResponse, tonic::Status> {
    client
        .publish_article(authorized(request))
        .await
        .map(tonic::Response::into_inner)
}

fn stored(response: PublishArticleResponse) -> Article {
    response.article.expect("the stored article")
}

async fn article_count(database_url: &str) -> i64 {
    let pool = pool(database_url).await;
    let count = sqlx::query_scalar("SELECT count(*) FROM articles")
        .fetch_one(&pool)
        .await
        .expect("count articles");
    pool.close().await;
    count
}

/// Nothing of a refused publish is visible: no article under `slug`, no tag,
/// no row.
async fn assert_nothing_stored(
    server: &TestServer,
    client: &mut ArticleServiceClient<Channel>,
    slug: &str,
) {
    let status = get_by_slug(client, slug).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{slug}: {status:?}");
    let tags = client
        .list_tags(ListTagsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(tags.tags.is_empty(), "{:?}", tags.tags);
    assert_eq!(article_count(&server.database_url).await, 0);
}

fn seconds_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A timestamp in microseconds since the epoch, for comparisons.
fn micros(at: &Option<prost_types::Timestamp>) -> i64 {
    let at = at.as_ref().expect("a timestamp");
    at.seconds * 1_000_000 + i64::from(at.nanos) / 1_000
}

/// The UTC date (YYYY-MM-DD) of a Unix time.
fn utc_date(seconds: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(seconds).unwrap();
    format!(
        "{:04}-{:02}-{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    )
}

// --------------------------------------------------------------------- Auth

#[tokio::test]
async fn publishing_requires_the_exact_bearer_token() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let request = article_at(SAMPLE_TITLE, &["US & Canada"], "2019-12-31T10:30:00Z");

    let status = client
        .publish_article(tonic::Request::new(request.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "no metadata");

    let first = PUBLISH_TOKEN.chars().next().unwrap();
    let one_char_off = format!(
        "{}{}",
        &PUBLISH_TOKEN[..PUBLISH_TOKEN.len() - 1],
        if PUBLISH_TOKEN.ends_with('x') {
            'y'
        } else {
            'x'
        }
    );
    let near_misses = [
        format!("Bearer {one_char_off}"),
        format!("Bearer {}", &PUBLISH_TOKEN[..PUBLISH_TOKEN.len() - 1]),
        format!("Bearer {}", &PUBLISH_TOKEN[1..]),
        format!("Bearer {PUBLISH_TOKEN}x"),
        format!("Bearer x{PUBLISH_TOKEN}"),
        format!("Bearer {}", PUBLISH_TOKEN.to_uppercase()),
        format!(
            "Bearer {}{}",
            first.to_ascii_uppercase(),
            &PUBLISH_TOKEN[1..]
        ),
        format!("Bearer {PUBLISH_TOKEN} {PUBLISH_TOKEN}"),
        format!("Basic {PUBLISH_TOKEN}"),
        format!("Token {PUBLISH_TOKEN}"),
        format!("Bearer{PUBLISH_TOKEN}"),
        PUBLISH_TOKEN.to_owned(),
        "Bearer wrong-token".to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        String::new(),
    ];
    for value in &near_misses {
        let mut call = tonic::Request::new(request.clone());
        call.metadata_mut()
            .insert("authorization", value.parse().unwrap());
        let status = client.publish_article(call).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "authorization {value:?}: {status:?}"
        );
    }
    // The token under another metadata key does not count.
    let mut call = tonic::Request::new(request.clone());
    call.metadata_mut().insert(
        "x-authorization",
        format!("Bearer {PUBLISH_TOKEN}").parse().unwrap(),
    );
    let status = client.publish_article(call).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    assert_nothing_stored(
        &server,
        &mut client,
        "2019-12-31-us-and-russian-leaders-unite-to-combat-terrorism",
    )
    .await;

    // The genuine token still works.
    let response = publish(&mut client, request).await;
    assert!(response.created);
}

#[tokio::test]
async fn auth_is_checked_before_validation() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let invalid = PublishArticleRequest {
        slug: "Not A Slug".into(),
        tags: vec!["!!!".into()],
        ..PublishArticleRequest::default()
    };
    let status = client
        .publish_article(tonic::Request::new(invalid.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(bad_request_fields(&status).is_empty());
    let status = client
        .publish_article(with_token(invalid.clone(), "wrong"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(bad_request_fields(&status).is_empty());
    // With the token, the same request is refused for what it carries.
    let status = try_publish(&mut client, invalid).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = bad_request_fields(&status);
    fields.sort();
    fields.dedup();
    assert_eq!(fields, ["body", "slug", "tags", "title"]);
}

#[tokio::test]
async fn a_server_without_a_publish_token_refuses_every_publish() {
    let database = fresh_database().await;
    let server =
        TestServer::start_with(ServerOptions::new(&database).without_publish_token()).await;
    let mut client = server.client().await;
    let valid = article_at(SAMPLE_TITLE, &["US & Canada"], "2019-12-31T10:30:00Z");
    let invalid = PublishArticleRequest {
        slug: "-".into(),
        ..PublishArticleRequest::default()
    };
    for request in [valid, invalid] {
        for call in [
            tonic::Request::new(request.clone()),
            authorized(request.clone()),
            with_token(request.clone(), "anything"),
            with_token(request.clone(), ""),
        ] {
            let status = client.publish_article(call).await.unwrap_err();
            assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        }
    }
    assert_nothing_stored(
        &server,
        &mut client,
        "2019-12-31-us-and-russian-leaders-unite-to-combat-terrorism",
    )
    .await;
    // Reads still work.
    let status = get_by_slug(&mut client, "anything").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

// ------------------------------------------------------------ Derived slugs

#[tokio::test]
async fn derives_the_contract_example_slug() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let response = publish(
        &mut client,
        PublishArticleRequest {
            summary: "Summary.".into(),
            byline: "7Dnews London".into(),
            ..article_at(
                SAMPLE_TITLE,
                &["US & Canada", "Russia"],
                "2019-12-31T10:30:00Z",
            )
        },
    )
    .await;
    assert!(response.created);
    let article = stored(response);
    assert_eq!(
        article.slug,
        "2019-12-31-us-and-russian-leaders-unite-to-combat-terrorism"
    );
    assert_eq!(article.title, SAMPLE_TITLE);
    assert_eq!(article.summary, "Summary.");
    assert_eq!(article.byline, "7Dnews London");
    assert_eq!(article.revision, 1);
    assert_eq!(
        article.published_at,
        Some(prost_types::Timestamp {
            seconds: 1_577_788_200,
            nanos: 0
        })
    );
    assert_eq!(
        tag_pairs(&article),
        [
            ("us-canada".to_owned(), "US & Canada".to_owned()),
            ("russia".to_owned(), "Russia".to_owned())
        ]
    );
    assert!(uuid::Uuid::try_parse(&article.id).is_ok());
    assert_eq!(article.id, article.id.to_lowercase());
    assert_eq!(
        get_by_slug(&mut client, &article.slug).await.unwrap(),
        article
    );

    // The UTC date counts, not the offset the time was written in.
    let late = stored(
        publish(
            &mut client,
            article_at("Late in the day", &[], "2019-12-31T23:30:00-02:00"),
        )
        .await,
    );
    assert_eq!(late.slug, "2020-01-01-late-in-the-day");
}

#[tokio::test]
async fn an_omitted_published_at_is_the_time_of_the_call() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let before = seconds_now();
    let first = stored(publish(&mut client, article(SAMPLE_TITLE, &["Now"])).await);
    let after = seconds_now();
    let published = first.published_at.unwrap().seconds;
    assert!(
        (before - 1..=after + 1).contains(&published),
        "published_at {published} not within [{before}, {after}]"
    );
    let updated = first.updated_at.unwrap().seconds;
    assert!((before - 1..=after + 1).contains(&updated));
    let dates = [utc_date(before), utc_date(after)];
    let slug_date = &first.slug[..10];
    assert!(dates.iter().any(|date| date == slug_date), "{}", first.slug);
    assert_eq!(slug_date, utc_date(published));
    assert_eq!(
        first.slug,
        format!("{slug_date}-us-and-russian-leaders-unite-to-combat-terrorism")
    );

    // The same request again is the same article: the date is today's again,
    // and the stored published_at is kept.
    let again = publish(&mut client, article(SAMPLE_TITLE, &["Now"])).await;
    if utc_date(seconds_now()) == slug_date {
        assert!(!again.created);
        assert_eq!(stored(again), first);
    }
}

// ------------------------------------------------------- Idempotent updates

#[tokio::test]
async fn the_same_request_twice_is_stored_once() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let request = PublishArticleRequest {
        summary: "Leaders meet.".into(),
        ..article_at(
            SAMPLE_TITLE,
            &["US & Canada", "Russia"],
            "2019-12-31T10:30:00Z",
        )
    };
    let first = publish(&mut client, request.clone()).await;
    assert!(first.created);
    let first = stored(first);
    assert_eq!(first.revision, 1);
    for _ in 0..2 {
        let again = publish(&mut client, request.clone()).await;
        assert!(!again.created);
        assert_eq!(stored(again), first);
    }
    // Given explicitly, the derived slug names the same article.
    let explicit = publish(&mut client, with_slug(&first.slug, request.clone())).await;
    assert!(!explicit.created);
    assert_eq!(stored(explicit), first);

    assert_eq!(article_count(&server.database_url).await, 1);
    let (listed, _) = list_all_by_tag(&mut client, "russia", 0).await;
    assert_eq!(listed, std::slice::from_ref(&first));
    assert_eq!(
        tag_counts(&list_all_tags(&mut client, 0).await),
        [
            ("russia".to_owned(), "Russia".to_owned(), 1),
            ("us-canada".to_owned(), "US & Canada".to_owned(), 1)
        ]
    );
}

#[tokio::test]
async fn a_changed_article_gets_a_new_revision() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let request = article_at(SAMPLE_TITLE, &["Russia"], "2019-12-31T10:30:00Z");
    let first = stored(publish(&mut client, request.clone()).await);

    let changed_body = PublishArticleRequest {
        body: "A corrected body.".into(),
        ..request.clone()
    };
    let second = publish(&mut client, changed_body.clone()).await;
    assert!(!second.created);
    let second = stored(second);
    assert_eq!(second.id, first.id);
    assert_eq!(second.slug, first.slug);
    assert_eq!(second.revision, 2);
    assert_eq!(second.body, "A corrected body.");
    assert_eq!(second.published_at, first.published_at);
    assert!(
        micros(&second.updated_at) > micros(&first.updated_at),
        "{:?} then {:?}",
        first.updated_at,
        second.updated_at
    );
    assert_eq!(get_by_id(&mut client, &first.id).await.unwrap(), second);

    // Unchanged again: same revision, same updated_at.
    let same = publish(&mut client, changed_body).await;
    assert!(!same.created);
    assert_eq!(stored(same), second);

    // Each field counts.
    let mut current = second;
    let changes: Vec<(&str, PublishArticleRequest)> = vec![
        (
            "title",
            with_slug(
                &first.slug,
                PublishArticleRequest {
                    title: "A new title".into(),
                    ..request.clone()
                },
            ),
        ),
        (
            "summary",
            with_slug(
                &first.slug,
                PublishArticleRequest {
                    title: "A new title".into(),
                    summary: "Now with a summary".into(),
                    ..request.clone()
                },
            ),
        ),
        (
            "byline",
            with_slug(
                &first.slug,
                PublishArticleRequest {
                    title: "A new title".into(),
                    summary: "Now with a summary".into(),
                    byline: "Another desk".into(),
                    ..request.clone()
                },
            ),
        ),
        (
            "tags",
            with_slug(
                &first.slug,
                PublishArticleRequest {
                    title: "A new title".into(),
                    summary: "Now with a summary".into(),
                    byline: "Another desk".into(),
                    tags: vec!["Russia".into(), "Diplomacy".into()],
                    ..request.clone()
                },
            ),
        ),
        (
            "tag order",
            with_slug(
                &first.slug,
                PublishArticleRequest {
                    title: "A new title".into(),
                    summary: "Now with a summary".into(),
                    byline: "Another desk".into(),
                    tags: vec!["Diplomacy".into(), "Russia".into()],
                    ..request.clone()
                },
            ),
        ),
        (
            "published_at",
            with_slug(
                &first.slug,
                PublishArticleRequest {
                    title: "A new title".into(),
                    summary: "Now with a summary".into(),
                    byline: "Another desk".into(),
                    tags: vec!["Diplomacy".into(), "Russia".into()],
                    published_at: Some(timestamp("2020-01-01T08:00:00Z")),
                    ..request.clone()
                },
            ),
        ),
    ];
    for (what, change) in changes {
        let response = publish(&mut client, change.clone()).await;
        assert!(!response.created, "{what}");
        let updated = stored(response);
        assert_eq!(updated.id, first.id, "{what}");
        assert_eq!(updated.revision, current.revision + 1, "{what}");
        assert!(
            micros(&updated.updated_at) > micros(&current.updated_at),
            "{what}"
        );
        assert_eq!(updated.title, change.title, "{what}");
        assert_eq!(updated.summary, change.summary, "{what}");
        assert_eq!(updated.byline, change.byline, "{what}");
        let slugs: Vec<&str> = updated.tags.iter().map(|t| t.slug.as_str()).collect();
        let expected: Vec<String> = change.tags.iter().map(|t| t.to_lowercase()).collect();
        assert_eq!(slugs, expected, "{what}");
        // And nothing more happens when it comes again.
        let again = stored(publish(&mut client, change).await);
        assert_eq!(again, updated, "{what} again");
        current = updated;
    }
    assert_eq!(current.revision, 8);
    assert_eq!(current.slug, first.slug, "the slug never changes");
    assert_eq!(
        current.published_at,
        Some(timestamp("2020-01-01T08:00:00Z"))
    );
    assert_eq!(article_count(&server.database_url).await, 1);
}

#[tokio::test]
async fn an_update_with_empty_fields_clears_them() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let full = PublishArticleRequest {
        slug: "clear-me".into(),
        summary: "A summary".into(),
        byline: "A byline".into(),
        ..article_at("Clear me", &["One", "Two"], "2021-03-03T03:03:03Z")
    };
    let first = stored(publish(&mut client, full.clone()).await);
    assert_eq!(first.tags.len(), 2);

    let cleared = publish(
        &mut client,
        PublishArticleRequest {
            summary: String::new(),
            byline: String::new(),
            tags: Vec::new(),
            published_at: None,
            ..full
        },
    )
    .await;
    assert!(!cleared.created);
    let cleared = stored(cleared);
    assert_eq!(cleared.id, first.id);
    assert_eq!(cleared.summary, "");
    assert_eq!(cleared.byline, "");
    assert!(cleared.tags.is_empty());
    assert_eq!(cleared.revision, 2);
    assert_eq!(cleared.published_at, first.published_at);
    assert_eq!(get_by_slug(&mut client, "clear-me").await.unwrap(), cleared);
    assert!(list_all_tags(&mut client, 0).await.is_empty());
    let (listed, _) = list_all_by_tag(&mut client, "one", 0).await;
    assert!(listed.is_empty());
}

#[tokio::test]
async fn an_omitted_published_at_keeps_the_stored_one_on_update() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let original = PublishArticleRequest {
        slug: "kept-date".into(),
        ..article_at("Kept date", &["Dates"], "2018-07-07T07:07:07.654321Z")
    };
    let first = stored(publish(&mut client, original.clone()).await);
    assert_eq!(
        first.published_at,
        Some(prost_types::Timestamp {
            seconds: 1_530_947_227,
            nanos: 654_321_000
        })
    );
    // Same content without published_at: nothing changes.
    let same = publish(
        &mut client,
        PublishArticleRequest {
            published_at: None,
            ..original.clone()
        },
    )
    .await;
    assert!(!same.created);
    assert_eq!(stored(same), first);
    // New body without published_at: updated, date kept.
    let updated = stored(
        publish(
            &mut client,
            PublishArticleRequest {
                published_at: None,
                body: "New body".into(),
                ..original
            },
        )
        .await,
    );
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.published_at, first.published_at);
    let (listed, _) = list_all_by_tag(&mut client, "dates", 0).await;
    assert_eq!(listed, [updated]);
}

#[tokio::test]
async fn an_explicit_slug_creates_then_updates_that_article() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let first = publish(
        &mut client,
        with_slug(
            "my-chosen-slug-2",
            article_at("Chosen", &["Mine"], "2022-02-22T22:22:22Z"),
        ),
    )
    .await;
    assert!(first.created);
    let first = stored(first);
    assert_eq!(first.slug, "my-chosen-slug-2");
    // Not derived from the title.
    let status = get_by_slug(&mut client, "2022-02-22-chosen")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // A different title and date, same slug: the same article, updated.
    let second = publish(
        &mut client,
        with_slug(
            "my-chosen-slug-2",
            article_at("Another title", &["Mine"], "2023-03-03T03:03:03Z"),
        ),
    )
    .await;
    assert!(!second.created);
    let second = stored(second);
    assert_eq!(second.id, first.id);
    assert_eq!(second.title, "Another title");
    assert_eq!(second.revision, 2);
    assert_eq!(second.published_at, Some(timestamp("2023-03-03T03:03:03Z")));

    // Unicode letters are lowercase letters too.
    let unicode = publish(
        &mut client,
        with_slug("économie-2024", article("Économie", &[])),
    )
    .await;
    assert!(unicode.created);
    assert_eq!(stored(unicode).slug, "économie-2024");
    assert_eq!(article_count(&server.database_url).await, 2);
}

// --------------------------------------------------------------------- Tags

#[tokio::test]
async fn a_tag_keeps_the_display_name_it_was_first_stored_with() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let first = stored(publish(&mut client, article("First", &["US & Canada"])).await);
    let second = stored(
        publish(
            &mut client,
            article("Second", &["us & canada", "US-CANADA", "New Tag"]),
        )
        .await,
    );
    assert_eq!(
        tag_pairs(&first),
        [("us-canada".to_owned(), "US & Canada".to_owned())]
    );
    assert_eq!(
        tag_pairs(&second),
        [
            ("us-canada".to_owned(), "US & Canada".to_owned()),
            ("new-tag".to_owned(), "New Tag".to_owned())
        ]
    );
    assert_eq!(get_by_id(&mut client, &second.id).await.unwrap(), second);
    assert_eq!(
        tag_counts(&list_all_tags(&mut client, 0).await),
        [
            ("new-tag".to_owned(), "New Tag".to_owned(), 1),
            ("us-canada".to_owned(), "US & Canada".to_owned(), 2)
        ]
    );
    // Even when the only article that had it lost it, the name stays.
    publish(&mut client, with_slug(&first.slug, article("First", &[]))).await;
    publish(&mut client, with_slug(&second.slug, article("Second", &[]))).await;
    assert!(list_all_tags(&mut client, 0).await.is_empty());
    let third = stored(publish(&mut client, article("Third", &["us canada"])).await);
    assert_eq!(
        tag_pairs(&third),
        [("us-canada".to_owned(), "US & Canada".to_owned())]
    );
}

// --------------------------------------------------------------- Validation

/// Publishes `request` and expects INVALID_ARGUMENT naming exactly `fields`.
async fn assert_refused(
    client: &mut ArticleServiceClient<Channel>,
    what: &str,
    request: PublishArticleRequest,
    fields: &[&str],
) {
    let status = try_publish(client, request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    let mut got = bad_request_fields(&status);
    got.sort();
    got.dedup();
    let mut fields = fields.to_vec();
    fields.sort_unstable();
    assert_eq!(got, fields, "{what}: {status:?}");
}

/// A valid request every validation case starts from; its derived slug is
/// "2019-12-31-refused".
fn base() -> PublishArticleRequest {
    article_at("Refused", &["Refused Tag"], "2019-12-31T10:30:00Z")
}

#[tokio::test]
async fn each_broken_rule_is_invalid_argument_naming_its_field() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // One rule per field; the others are unit tests of `domain::article`.
    let cases: Vec<(&str, PublishArticleRequest, &[&str])> = vec![
        (
            "empty title",
            PublishArticleRequest {
                title: String::new(),
                ..base()
            },
            &["title"],
        ),
        (
            "body of 1 MiB + 1 byte",
            PublishArticleRequest {
                body: "x".repeat(1_048_577),
                ..base()
            },
            &["body"],
        ),
        (
            "summary of 2,001 characters",
            PublishArticleRequest {
                summary: "ß".repeat(2_001),
                ..base()
            },
            &["summary"],
        ),
        (
            "byline of 201 characters",
            PublishArticleRequest {
                byline: "ü".repeat(201),
                ..base()
            },
            &["byline"],
        ),
        (
            "tag !!!",
            PublishArticleRequest {
                tags: vec!["Fine".into(), "!!!".into()],
                ..base()
            },
            &["tags"],
        ),
        (
            "slug with an uppercase letter",
            PublishArticleRequest {
                slug: "Upper".into(),
                ..base()
            },
            &["slug"],
        ),
        (
            "title and body empty",
            PublishArticleRequest {
                title: String::new(),
                body: String::new(),
                ..base()
            },
            &["title", "body"],
        ),
    ];
    for (what, request, fields) in cases {
        assert_refused(&mut client, what, request, fields).await;
    }
    assert_nothing_stored(&server, &mut client, "2019-12-31-refused").await;
    let status = get_by_slug(&mut client, "upper").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn limits_are_inclusive() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let twenty_tags: Vec<String> = (0..20).map(|i| format!("Tag {i}")).collect();
    let at_limits = PublishArticleRequest {
        slug: "a".repeat(120),
        title: "é".repeat(500),
        summary: "ß".repeat(2_000),
        byline: "ü".repeat(200),
        body: "x".repeat(1_048_576),
        tags: twenty_tags.clone(),
        ..base()
    };
    let response = try_publish(&mut client, at_limits.clone())
        .await
        .expect("every value at its limit");
    assert!(response.created);
    let article = stored(response);
    assert_eq!(article.title, at_limits.title);
    assert_eq!(article.summary, at_limits.summary);
    assert_eq!(article.byline, at_limits.byline);
    assert_eq!(article.body.len(), 1_048_576);
    assert_eq!(article.body, at_limits.body);
    let names: Vec<&str> = article.tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, twenty_tags, "20 tags, in the order given");
    assert_eq!(
        get_by_slug(&mut client, &"a".repeat(120)).await.unwrap(),
        article
    );
    // A body of exactly 1 MiB in two-byte characters.
    let multibyte = try_publish(
        &mut client,
        PublishArticleRequest {
            slug: "multibyte-body".into(),
            body: "é".repeat(524_288),
            ..base()
        },
    )
    .await
    .expect("1 MiB of UTF-8");
    assert_eq!(stored(multibyte).body.len(), 1_048_576);
}

#[tokio::test]
async fn strings_are_stored_and_returned_exactly_as_sent() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let sent = PublishArticleRequest {
        slug: String::new(),
        title: "  '; DROP TABLE articles; -- \"Quoted\" \\ back\\slash  ".into(),
        summary: "\r\nSummary with CRLF\r\n and a tab\t ".into(),
        body: " Zürich — 東京 🚀 e\u{301}\r\n\r\nSecond paragraph; DELETE FROM tags;\n\n\u{200b}$1 %s {} \n"
            .into(),
        byline: " 7Dnews London ".into(),
        tags: vec![
            "  O'Brien's; DROP TABLE tags; -- ".into(),
            "\u{1F680} Rockets".into(),
        ],
        published_at: Some(timestamp("2019-12-31T10:30:00Z")),
    };
    let response = publish(&mut client, sent.clone()).await;
    assert!(response.created);
    let article = stored(response);
    assert_eq!(article.title, sent.title);
    assert_eq!(article.summary, sent.summary);
    assert_eq!(article.body, sent.body);
    assert_eq!(article.byline, sent.byline);
    assert_eq!(
        article.slug,
        "2019-12-31-drop-table-articles-quoted-back-slash"
    );
    assert_eq!(
        tag_pairs(&article),
        [
            (
                "o-brien-s-drop-table-tags".to_owned(),
                "O'Brien's; DROP TABLE tags; --".to_owned()
            ),
            ("rockets".to_owned(), "\u{1F680} Rockets".to_owned())
        ]
    );
    let read = get_by_id(&mut client, &article.id).await.unwrap();
    assert_eq!(read, article);
    let (listed, _) = list_all_by_tag(&mut client, "O'Brien's; DROP TABLE tags; --", 0).await;
    assert_eq!(listed, std::slice::from_ref(&article));
    assert_eq!(list_all_tags(&mut client, 0).await.len(), 2);

    // Re-sent byte for byte: the same article, unchanged.
    let again = publish(&mut client, sent.clone()).await;
    assert!(!again.created);
    assert_eq!(stored(again), article);
    // Trailing white space differs: a change.
    let changed = stored(
        publish(
            &mut client,
            PublishArticleRequest {
                byline: " 7Dnews London".into(),
                ..sent
            },
        )
        .await,
    );
    assert_eq!(changed.revision, 2);
    assert_eq!(changed.byline, " 7Dnews London");
}

#[tokio::test]
async fn a_failed_publish_leaves_an_existing_article_untouched() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let original = with_slug("untouched", article("Untouched", &["Kept"]));
    let first = stored(publish(&mut client, original.clone()).await);
    let tags_before = tag_counts(&list_all_tags(&mut client, 0).await);

    let broken_updates = [
        PublishArticleRequest {
            body: String::new(),
            tags: vec!["New".into()],
            ..original.clone()
        },
        PublishArticleRequest {
            tags: vec!["New".into(), "!!!".into()],
            ..original.clone()
        },
        PublishArticleRequest {
            title: "x".repeat(501),
            ..original.clone()
        },
    ];
    for request in broken_updates {
        let status = try_publish(&mut client, request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }
    let status = client
        .publish_article(tonic::Request::new(PublishArticleRequest {
            body: "Unauthorised change".into(),
            ..original
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(get_by_slug(&mut client, "untouched").await.unwrap(), first);
    assert_eq!(
        tag_counts(&list_all_tags(&mut client, 0).await),
        tags_before
    );
    let empty = client
        .list_articles_by_tag(ListArticlesByTagRequest {
            tag: "new".into(),
            ..ListArticlesByTagRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(empty.articles.is_empty());
}

#[tokio::test]
async fn publishing_is_idempotent_under_concurrent_retries() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let request = article_at(SAMPLE_TITLE, &["Retry"], "2019-12-31T10:30:00Z");
    let mut calls = Vec::new();
    for _ in 0..8 {
        let mut client = client.clone();
        let request = request.clone();
        calls.push(tokio::spawn(async move {
            try_publish(&mut client, request).await
        }));
    }
    let mut created = 0;
    let mut articles = Vec::new();
    for call in calls {
        let response = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("publish within 10 s")
            .unwrap()
            .expect("publish");
        created += usize::from(response.created);
        articles.push(stored(response));
    }
    assert_eq!(created, 1, "exactly one call stored it");
    assert!(articles.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(articles[0].revision, 1);
    assert_eq!(article_count(&server.database_url).await, 1);
}

/// A tag name of `n` characters, none repeating a pattern that compresses
/// well (so that a database index sees its full size).
fn varied_tag(n: usize) -> String {
    let mut seed: u64 = 0x5eed;
    (0..n)
        .map(|_| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(b'a' + u8::try_from((seed >> 33) % 26).unwrap())
        })
        .collect()
}

/// The longest tag name (the limit itself is a unit test of
/// `domain::article`) fits the database's tag index.
#[tokio::test]
async fn a_tag_name_of_200_characters_is_stored_and_a_longer_one_named_in_a_read() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // 200 characters after trimming, of four UTF-8 bytes each.
    let widest: String = std::iter::repeat_n('\u{10400}', 200).collect();
    let response = publish(
        &mut client,
        article("Widest tag", &[&format!("  {widest}\t")]),
    )
    .await;
    let widest_article = stored(response);
    assert_eq!(widest_article.tags[0].name, widest);
    assert_eq!(widest_article.tags[0].slug.chars().count(), 200);
    let ok = stored(publish(&mut client, article("Long tag", &[&varied_tag(200)])).await);
    assert_eq!(ok.tags[0].name, varied_tag(200));
    assert_eq!(article_count(&server.database_url).await, 2);
    // Naming a tag that long in a read is no error: no article has it.
    let page = client
        .list_articles_by_tag(ListArticlesByTagRequest {
            tag: varied_tag(3_000),
            ..ListArticlesByTagRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(page.articles.is_empty());
    assert!(page.next_page_token.is_empty());
}

#[tokio::test]
async fn published_at_is_kept_to_the_microsecond() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let request = article_at("Precise", &["Time"], "2019-12-31T10:30:00.123456789Z");
    let first = publish(&mut client, request.clone()).await;
    assert!(first.created);
    let first = stored(first);
    assert_eq!(
        first.published_at,
        Some(prost_types::Timestamp {
            seconds: 1_577_788_200,
            nanos: 123_456_000
        })
    );
    // The finer part does not make a re-publish a change.
    let again = publish(&mut client, request).await;
    assert!(!again.created);
    assert_eq!(stored(again), first);
    let truncated = publish(
        &mut client,
        article_at("Precise", &["Time"], "2019-12-31T10:30:00.123456Z"),
    )
    .await;
    assert_eq!(stored(truncated), first);
    // Timestamps far from now, before 1970 included, come back as sent.
    for at in [
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59.5Z",
        "9999-12-31T23:59:59.999999Z",
    ] {
        let article = stored(publish(&mut client, article_at(&format!("At {at}"), &[], at)).await);
        assert_eq!(article.published_at, Some(timestamp(at)), "{at}");
        assert_eq!(article.slug[..10], at[..10]);
    }
}

#[tokio::test]
async fn a_malformed_published_at_is_invalid_argument() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // Both paths: a Timestamp that cannot be converted (`wire::convert`,
    // whose unit tests have the other cases), and one converted but out of
    // the years 1 to 9999 (`domain::article::validate`).
    for (seconds, nanos) in [
        (0, -1),
        // 10000-01-01T00:00:00Z.
        (253_402_300_800, 0),
        // One second before 0001-01-01T00:00:00Z.
        (-62_135_596_801, 0),
    ] {
        assert_refused(
            &mut client,
            &format!("published_at {seconds}.{nanos}"),
            PublishArticleRequest {
                published_at: Some(prost_types::Timestamp { seconds, nanos }),
                ..base()
            },
            &["published_at"],
        )
        .await;
    }
    assert_nothing_stored(&server, &mut client, "2019-12-31-refused").await;
}

#[tokio::test]
async fn concurrent_first_uses_of_a_tag_agree_on_one_display_name() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let spellings = [
        "Breaking News",
        "breaking news",
        "BREAKING NEWS",
        "Breaking-News",
        " breaking   NEWS ",
        "bReAkInG nEwS",
        "Breaking/News",
        "breaking_news",
    ];
    let mut calls = Vec::new();
    for (i, spelling) in spellings.iter().enumerate() {
        let mut client = client.clone();
        let request = article(&format!("Concurrent {i}"), &[spelling, "Common"]);
        calls.push(tokio::spawn(async move {
            try_publish(&mut client, request).await
        }));
    }
    let mut names = Vec::new();
    for call in calls {
        let response = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("publish within 10 s")
            .unwrap()
            .expect("publish");
        assert!(response.created);
        let article = stored(response);
        assert_eq!(article.tags[0].slug, "breaking-news");
        names.push(article.tags[0].name.clone());
    }
    let first = names[0].clone();
    assert!(names.iter().all(|name| *name == first), "{names:?}");
    let trimmed: Vec<&str> = spellings.iter().map(|s| s.trim()).collect();
    assert!(trimmed.contains(&first.as_str()), "{first:?}");
    let mut client = client;
    assert_eq!(
        tag_counts(&list_all_tags(&mut client, 0).await),
        [
            ("breaking-news".to_owned(), first, 8),
            ("common".to_owned(), "Common".to_owned(), 8)
        ]
    );
}

/// An article deleted by hand (a takedown) takes its `article_tags` rows
/// with it (a trigger: the table has no foreign keys). Its tags' pages no
/// longer list it.
#[tokio::test]
async fn an_article_deleted_by_hand_leaves_no_tag_rows() {
    let server = TestServer::start_with(
        ServerOptions::new(&fresh_database().await).env("CACHE_MAX_BYTES", "0"),
    )
    .await;
    let mut client = server.client().await;
    let kept = publish_new(&mut client, "Kept", &["Takedowns", "World"]).await;
    let taken_down = publish_new(&mut client, "Taken down", &["Takedowns", "Law"]).await;
    let other = publish_new(&mut client, "Other", &["Law"]).await;

    let deleted = delete_by_hand(&server.database_url, &[&taken_down.id, &other.id]).await;
    assert_eq!(deleted, 2);
    let pool = pool(&server.database_url).await;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT article_id::text, tag_slug FROM article_tags ORDER BY tag_slug")
            .fetch_all(&pool)
            .await
            .expect("read the tag rows");
    pool.close().await;
    assert_eq!(
        rows,
        vec![
            (kept.id.clone(), "takedowns".to_owned()),
            (kept.id.clone(), "world".to_owned()),
        ]
    );
    let (listed, _) = list_all_by_tag(&mut client, "takedowns", 10).await;
    assert_eq!(listed, vec![kept]);
    let (listed, _) = list_all_by_tag(&mut client, "law", 10).await;
    assert!(listed.is_empty(), "{listed:?}");
}
