//! The article lifecycle (contract Part 2) against the real binary and a real
//! PostgreSQL: states and what the public sees, embargo releases (within the
//! bound, once with two replicas, and when no replica ran), withdrawal
//! (every public read, caches included, on both replicas), the change feed
//! (order, revisions, tombstones, tag filter before/after, from_beginning,
//! tokens bound to their RPC), the snapshot-then-changes property, views.

use std::time::{Duration, Instant};

use crate::common::change_copy::ChangeCopy;
use crate::common::*;
use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::get_article_request::Key;
use article_service::proto::{
    Article, ArticleChange, ArticleState, ArticleView, ChangeType, GetArticleRequest,
    ListArticlesByTagRequest, ListTagsRequest, PublishArticleRequest, StreamArticleChangesRequest,
    StreamArticleChangesResponse, StreamNewArticlesRequest, WithdrawArticleRequest,
    withdraw_article_request,
};
use tonic::transport::Channel;
use tonic::{Code, Streaming};
use tonic_types::StatusExt;

/// The contract's bound for releases and withdrawals to reach every replica.
const BOUND: Duration = Duration::from_secs(2);

const PUBLISHED: i32 = ArticleState::Published as i32;
const SCHEDULED: i32 = ArticleState::Scheduled as i32;
const WITHDRAWN: i32 = ArticleState::Withdrawn as i32;

fn in_seconds(seconds: f64) -> prost_types::Timestamp {
    let at = time::OffsetDateTime::now_utc() + Duration::from_secs_f64(seconds);
    prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: i32::try_from(at.nanosecond() / 1_000 * 1_000).unwrap_or(0),
    }
}

fn scheduled(title: &str, tags: &[&str], seconds: f64) -> PublishArticleRequest {
    PublishArticleRequest {
        published_at: Some(in_seconds(seconds)),
        ..article(title, tags)
    }
}

async fn withdraw(
    client: &mut ArticleServiceClient<Channel>,
    slug: &str,
    reason: &str,
) -> Result<Article, tonic::Status> {
    client
        .withdraw_article(authorized(WithdrawArticleRequest {
            key: Some(withdraw_article_request::Key::Slug(slug.to_owned())),
            reason: reason.to_owned(),
        }))
        .await
        .map(|response| response.into_inner().article.expect("an article"))
}

async fn preview(client: &mut ArticleServiceClient<Channel>, slug: &str) -> Article {
    client
        .get_article(authorized(GetArticleRequest {
            key: Some(Key::Slug(slug.to_owned())),
            ..Default::default()
        }))
        .await
        .expect("preview")
        .into_inner()
        .article
        .expect("an article")
}

async fn first_page(client: &mut ArticleServiceClient<Channel>, tag: &str) -> Vec<String> {
    client
        .list_articles_by_tag(ListArticlesByTagRequest {
            tag: tag.to_owned(),
            ..Default::default()
        })
        .await
        .expect("ListArticlesByTag")
        .into_inner()
        .articles
        .into_iter()
        .map(|article| article.slug)
        .collect()
}

async fn tag_slugs_listed(client: &mut ArticleServiceClient<Channel>) -> Vec<(String, i64)> {
    client
        .list_tags(ListTagsRequest::default())
        .await
        .expect("ListTags")
        .into_inner()
        .tags
        .into_iter()
        .map(|summary| {
            (
                summary.tag.map(|tag| tag.slug).unwrap_or_default(),
                summary.article_count,
            )
        })
        .collect()
}

/// Nothing but heartbeats for `quiet`.
async fn assert_no_change(stream: &mut Streaming<StreamArticleChangesResponse>, quiet: Duration) {
    let deadline = Instant::now() + quiet;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.message()).await {
            Err(_) => return,
            Ok(Ok(Some(message))) => {
                assert_eq!(message.change, None, "no change expected")
            }
            Ok(other) => panic!("the stream ended: {other:?}"),
        }
    }
}

fn summary(changes: &[ArticleChange]) -> Vec<(i32, String, i64)> {
    changes
        .iter()
        .map(|change| {
            let article = change.article.clone().unwrap_or_default();
            (change.r#type, article.slug, article.revision)
        })
        .collect()
}

const P: i32 = ChangeType::Published as i32;
const U: i32 = ChangeType::Updated as i32;
const W: i32 = ChangeType::Withdrawn as i32;

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_article_is_hidden_then_released_within_the_bound() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut new_articles = FeedReader::open(&mut client, &["Embargo"], "").await;
    let mut change_stream = changes(&mut client, StreamArticleChangesRequest::default())
        .await
        .expect("stream");

    let stored = publish(&mut client, scheduled("Budget leaks", &["Embargo"], 3.0)).await;
    assert!(stored.created);
    let stored = stored.article.expect("article");
    assert_eq!(stored.state, SCHEDULED);
    let release_at = stored.published_at.expect("published_at");
    // The release is timed where it arrives, whatever the checks below take.
    let first_change = tokio::spawn(async move {
        let (received, _) = read_changes(&mut change_stream, 1, WAIT).await;
        (received, std::time::SystemTime::now(), change_stream)
    });

    // Public reads: nothing of it.
    let status = get_by_slug(&mut client, &stored.slug).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.get_error_details().error_info().is_none());
    assert!(first_page(&mut client, "embargo").await.is_empty());
    assert!(tag_slugs_listed(&mut client).await.is_empty());
    // Editors' preview: the whole article, SCHEDULED.
    let previewed = preview(&mut client, &stored.slug).await;
    assert_eq!(
        (previewed.state, &previewed.body),
        (SCHEDULED, &stored.body)
    );
    let wrong = client
        .get_article(with_token(
            GetArticleRequest {
                key: Some(Key::Slug(stored.slug.clone())),
                ..Default::default()
            },
            "wrong-token",
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);

    // Released: on both streams, once, within the bound of published_at.
    let (received, released_at, mut change_stream) = first_change.await.expect("the reader");
    let release_at_system =
        std::time::UNIX_EPOCH + Duration::new(release_at.seconds as u64, release_at.nanos as u32);
    let lateness = released_at
        .duration_since(release_at_system)
        .expect("not before its time");
    assert!(lateness < BOUND, "released {lateness:?} after published_at");
    assert_eq!(summary(&received), vec![(P, stored.slug.clone(), 1)]);
    let change = &received[0];
    assert_eq!(change.change_time, Some(release_at));
    let article = change.article.clone().expect("article");
    assert_eq!(
        article,
        Article {
            state: PUBLISHED,
            ..stored.clone()
        }
    );
    new_articles
        .read_articles(1, WAIT)
        .await
        .expect("new article");
    assert_eq!(new_articles.articles, vec![article.clone()]);

    // Public reads now serve it.
    assert_eq!(
        get_by_slug(&mut client, &stored.slug).await.ok(),
        Some(article)
    );
    assert_eq!(
        first_page(&mut client, "Embargo").await,
        vec![stored.slug.clone()]
    );
    assert_eq!(
        tag_slugs_listed(&mut client).await,
        vec![("embargo".to_owned(), 1)]
    );
    assert_no_change(&mut change_stream, Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_release_each_article_once() {
    let database_url = fresh_database().await;
    let first = TestServer::start_with(ServerOptions::new(&database_url)).await;
    let second = TestServer::start_with(ServerOptions::new(&database_url)).await;
    let mut client = first.client().await;
    let mut other = second.client().await;
    let mut on_first = changes(&mut client, StreamArticleChangesRequest::default())
        .await
        .expect("stream");
    let mut on_second = changes(&mut other, StreamArticleChangesRequest::default())
        .await
        .expect("stream");
    let mut slugs = Vec::new();
    for i in 0..5 {
        let stored = publish(
            &mut client,
            scheduled(&unique_title(&format!("Embargo {i}")), &["Two"], 2.0),
        )
        .await;
        slugs.push(stored.article.expect("article").slug);
    }
    for stream in [&mut on_first, &mut on_second] {
        let (received, _) = read_changes(stream, 5, WAIT).await;
        let mut released: Vec<String> = received
            .iter()
            .map(|change| {
                assert_eq!(change.r#type, P);
                change.article.clone().unwrap_or_default().slug
            })
            .collect();
        released.sort();
        let mut expected = slugs.clone();
        expected.sort();
        assert_eq!(released, expected);
        assert_no_change(stream, Duration::from_millis(1500)).await;
    }
    let pool = pool(&database_url).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM article_changes")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rows, 5, "one change per article, whatever the replicas");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embargo_that_ended_while_no_replica_ran_is_released_at_start() {
    let database_url = fresh_database().await;
    // Imported while no server runs, as NDJSON published `seconds` ahead.
    let file = std::env::temp_dir().join(format!("embargo-{}.ndjson", uuid::Uuid::new_v4()));
    let import_ahead = |seconds: u64| {
        let at = (time::OffsetDateTime::now_utc() + Duration::from_secs(seconds))
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format");
        std::fs::write(
            &file,
            format!(
                "{{\"slug\":\"quiet-release\",\"title\":\"Quiet\",\"body\":\"Body.\",\"tags\":[\"Night\"],\"published_at\":\"{at}\"}}\n"
            ),
        )
        .expect("write");
        run_cli(
            &database_url,
            &["import", file.to_str().unwrap_or_default()],
        )
    };
    let output = import_ahead(1);
    assert!(output.status.success(), "{output:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Its time has come by the database's clock: it is public, though not
    // released yet, so it cannot go back under embargo.
    let output = import_ahead(3600);
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("article quiet-release is public"),
        "{stderr}"
    );

    let server = TestServer::start_with(ServerOptions::new(&database_url)).await;
    let mut client = server.client().await;
    eventually("released at start", BOUND, || {
        let mut client = client.clone();
        async move { get_by_slug(&mut client, "quiet-release").await.is_ok() }
    })
    .await;
    let mut stream = changes(&mut client, from_beginning(&[]))
        .await
        .expect("stream");
    let (received, _) = read_changes(&mut stream, 1, WAIT).await;
    assert_eq!(summary(&received), vec![(P, "quiet-release".to_owned(), 1)]);
    assert_eq!(
        received[0].change_time,
        received[0].article.as_ref().and_then(|a| a.published_at),
        "dated at the end of the embargo"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_withdrawal_leaves_every_public_read_on_both_replicas() {
    let database_url = fresh_database().await;
    let first = TestServer::start_with(ServerOptions::new(&database_url)).await;
    let second = TestServer::start_with(ServerOptions::new(&database_url)).await;
    let mut client = first.client().await;
    let mut other = second.client().await;
    let stored = publish_new(&mut client, "Retracted", &["Legal"]).await;
    let keep = publish_new(&mut client, "Kept", &["Legal"]).await;
    // Read everywhere first, so that both caches hold it.
    for reader in [&mut client, &mut other] {
        for _ in 0..2 {
            assert!(get_by_slug(reader, &stored.slug).await.is_ok());
            assert_eq!(
                first_page(reader, "legal").await,
                vec![keep.slug.clone(), stored.slug.clone()]
            );
        }
    }

    let withdrawn = withdraw(&mut client, &stored.slug, "legal kill")
        .await
        .expect("withdraw");
    assert_eq!(
        (withdrawn.state, withdrawn.revision, &withdrawn.body),
        (WITHDRAWN, 2, &stored.body)
    );
    let moved = |article: &Article| {
        let at = article.updated_at.expect("updated_at");
        (at.seconds, at.nanos)
    };
    assert!(
        moved(&withdrawn) > moved(&stored),
        "updated_at moves: {:?} -> {:?}",
        stored.updated_at,
        withdrawn.updated_at
    );
    // At once on the replica that handled it.
    let status = get_by_slug(&mut client, &stored.slug).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .expect("ErrorInfo");
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("ARTICLE_WITHDRAWN", "newsroom.content.v1")
    );
    assert_eq!(
        get_by_id(&mut client, &stored.id).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        first_page(&mut client, "legal").await,
        vec![keep.slug.clone()]
    );
    assert_eq!(
        tag_slugs_listed(&mut client).await,
        vec![("legal".to_owned(), 1)]
    );
    // Within the bound on the other, its cache included.
    let started = Instant::now();
    eventually("the other replica drops it", BOUND, || {
        let mut other = other.clone();
        let slug = stored.slug.clone();
        let keep = keep.slug.clone();
        async move {
            get_by_slug(&mut other, &slug).await.is_err()
                && first_page(&mut other, "legal").await == vec![keep]
        }
    })
    .await;
    assert!(started.elapsed() < BOUND);

    // Idempotent.
    let again = withdraw(&mut other, &stored.slug, "again")
        .await
        .expect("withdraw");
    assert_eq!((again.state, again.revision), (WITHDRAWN, 2));
    // Preview still sees it, WITHDRAWN.
    assert_eq!(preview(&mut other, &stored.slug).await.state, WITHDRAWN);

    // Published again: an update, revision +1 even with the same content.
    let request = PublishArticleRequest {
        slug: stored.slug.clone(),
        title: stored.title.clone(),
        body: stored.body.clone(),
        byline: stored.byline.clone(),
        tags: vec!["Legal".into()],
        ..Default::default()
    };
    let restored = publish(&mut client, request).await;
    assert!(!restored.created);
    let restored = restored.article.expect("article");
    assert_eq!((restored.state, restored.revision), (PUBLISHED, 3));
    assert_eq!(
        get_by_slug(&mut client, &stored.slug).await.ok(),
        Some(restored)
    );

    // Withdrawn, then published again with a future `published_at`: back
    // under embargo, SCHEDULED, and not public.
    withdraw(&mut client, &stored.slug, "again")
        .await
        .expect("withdraw");
    let rescheduled = publish(
        &mut client,
        PublishArticleRequest {
            slug: stored.slug.clone(),
            published_at: Some(in_seconds(3600.0)),
            ..article("Retracted, rescheduled", &["Legal"])
        },
    )
    .await;
    assert!(!rescheduled.created);
    let rescheduled = rescheduled.article.expect("article");
    assert_eq!((rescheduled.state, rescheduled.revision), (SCHEDULED, 5));
    assert_eq!(
        get_by_slug(&mut client, &stored.slug)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(preview(&mut client, &stored.slug).await.state, SCHEDULED);
}

#[tokio::test(flavor = "multi_thread")]
async fn withdrawal_requests_are_checked_like_publishing() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let request = || WithdrawArticleRequest {
        key: Some(withdraw_article_request::Key::Slug(
            "no-such-article".into(),
        )),
        reason: String::new(),
    };
    let missing = client.withdraw_article(request()).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    let wrong = client
        .withdraw_article(with_token(request(), "not-the-token"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    // Credentials before validation: an invalid request without them
    // learns nothing about the rules.
    let invalid = || WithdrawArticleRequest {
        key: None,
        reason: "x".repeat(501),
    };
    for status in [
        client.withdraw_article(invalid()).await.unwrap_err(),
        client
            .withdraw_article(with_token(invalid(), "not-the-token"))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    for (what, key) in [
        ("no key", None),
        (
            "an empty slug",
            Some(withdraw_article_request::Key::Slug(String::new())),
        ),
        (
            "an empty id",
            Some(withdraw_article_request::Key::Id(String::new())),
        ),
    ] {
        let status = client
            .withdraw_article(authorized(WithdrawArticleRequest {
                key,
                reason: String::new(),
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    }
    let unknown = client
        .withdraw_article(authorized(request()))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let long = WithdrawArticleRequest {
        reason: "x".repeat(501),
        ..request()
    };
    let status = client.withdraw_article(authorized(long)).await.unwrap_err();
    assert_eq!(
        (status.code(), bad_request_fields(&status)),
        (Code::InvalidArgument, vec!["reason".to_owned()])
    );
    let bad_id = WithdrawArticleRequest {
        key: Some(withdraw_article_request::Key::Id("not-a-uuid".into())),
        reason: String::new(),
    };
    let status = client
        .withdraw_article(authorized(bad_id))
        .await
        .unwrap_err();
    assert_eq!(bad_request_fields(&status), vec!["id".to_owned()]);

    let disabled =
        TestServer::start_with(ServerOptions::new(&server.database_url).without_publish_token())
            .await;
    let mut disabled_client = disabled.client().await;
    for request in [
        authorized(request()),
        authorized(invalid()),
        tonic::Request::new(invalid()),
    ] {
        let status = disabled_client.withdraw_article(request).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }

    // A public article cannot move back under embargo.
    let stored = publish_new(&mut client, "Out", &[]).await;
    let status = client
        .publish_article(authorized(PublishArticleRequest {
            slug: stored.slug,
            published_at: Some(in_seconds(3600.0)),
            ..article("Out again", &[])
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_carry_each_revision_and_a_withdrawal_hides_what_came_before() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut new_articles = FeedReader::open(&mut client, &[], "").await;
    let zero = publish_new(&mut client, "Zero", &[]).await;
    new_articles.read_articles(1, WAIT).await.expect("zero");
    let token_before = new_articles.token.clone();
    let mut live = changes(&mut client, StreamArticleChangesRequest::default())
        .await
        .expect("stream");
    let first = publish_new(&mut client, "Revisions", &["Alpha"]).await;
    let mut revisions = vec![first.clone()];
    for (i, tags) in [(2, vec!["Alpha"]), (3, vec!["Beta"])] {
        let updated = publish(
            &mut client,
            PublishArticleRequest {
                slug: first.slug.clone(),
                body: format!("Revision {i}."),
                ..article(&first.title, &tags)
            },
        )
        .await
        .article
        .expect("article");
        assert_eq!(updated.revision, i);
        revisions.push(updated);
    }
    let other = publish_new(&mut client, "Bystander", &["Gamma"]).await;
    let (received, live_token) = read_changes(&mut live, 4, WAIT).await;
    assert_eq!(
        summary(&received),
        vec![
            (P, first.slug.clone(), 1),
            (U, first.slug.clone(), 2),
            (U, first.slug.clone(), 3),
            (P, other.slug.clone(), 1),
        ]
    );
    // Each change carries its revision's content, also when read later.
    let mut replay = changes(&mut client, from_beginning(&[]))
        .await
        .expect("stream");
    let (replayed, _) = read_changes(&mut replay, 5, WAIT).await;
    assert_eq!(summary(&replayed[..1]), vec![(P, zero.slug.clone(), 1)]);
    assert_eq!(&replayed[1..], &received[..]);
    let articles: Vec<Article> = replayed.iter().filter_map(|c| c.article.clone()).collect();
    assert_eq!(&articles[1..4], &revisions[..]);

    // Tag filter: before or after the change.
    let mut alpha = changes(&mut client, from_beginning(&["alpha"]))
        .await
        .expect("stream");
    let (alpha_changes, _) = read_changes(&mut alpha, 3, WAIT).await;
    assert_eq!(
        summary(&alpha_changes),
        vec![
            (P, first.slug.clone(), 1),
            (U, first.slug.clone(), 2),
            (U, first.slug.clone(), 3),
        ],
        "the update that left Alpha reaches Alpha's consumers"
    );
    assert_no_change(&mut alpha, Duration::from_millis(500)).await;

    // Withdrawn: a tombstone; later readers no longer see what came before.
    withdraw(&mut client, &first.slug, "retraction")
        .await
        .expect("withdraw");
    let (tombstone, _) = read_changes(&mut live, 1, WAIT).await;
    assert_eq!(summary(&tombstone), vec![(W, first.slug.clone(), 4)]);
    assert_eq!(tombstone[0].reason, "retraction");
    let dead = tombstone[0].article.clone().expect("tombstone");
    assert_eq!(
        dead,
        Article {
            id: first.id.clone(),
            slug: first.slug.clone(),
            tags: revisions[2].tags.clone(),
            revision: 4,
            updated_at: dead.updated_at,
            state: WITHDRAWN,
            ..Article::default()
        }
    );
    let mut after = changes(&mut client, from_beginning(&[]))
        .await
        .expect("stream");
    let (after_changes, _) = read_changes(&mut after, 3, WAIT).await;
    assert_eq!(
        summary(&after_changes),
        vec![
            (P, zero.slug.clone(), 1),
            (P, other.slug.clone(), 1),
            (W, first.slug.clone(), 4)
        ]
    );
    // The tombstone reaches Alpha's consumers though it was withdrawn from Beta.
    let mut alpha = changes(&mut client, from_beginning(&["Alpha"]))
        .await
        .expect("stream");
    let (alpha_changes, _) = read_changes(&mut alpha, 1, WAIT).await;
    assert_eq!(summary(&alpha_changes), vec![(W, first.slug.clone(), 4)]);
    // Resuming from a token issued before the withdrawal: the same.
    let mut resumed = changes(
        &mut client,
        StreamArticleChangesRequest {
            resume_token: live_token,
            ..Default::default()
        },
    )
    .await
    .expect("stream");
    let (resumed_changes, _) = read_changes(&mut resumed, 1, WAIT).await;
    assert_eq!(summary(&resumed_changes), vec![(W, first.slug.clone(), 4)]);
    // StreamNewArticles skips an article withdrawn since it became public.
    let mut resumed_new = FeedReader::open(&mut client, &[], &token_before).await;
    resumed_new
        .read_articles(1, WAIT)
        .await
        .expect("the bystander");
    assert_eq!(resumed_new.ids(), vec![other.id.clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_bound_to_their_rpc() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish_new(&mut client, "Token", &["Bound"]).await;
    let page = client
        .list_articles_by_tag(ListArticlesByTagRequest {
            tag: "bound".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("page")
        .into_inner();
    assert!(!page.changes_token.is_empty());
    let mut feed = FeedReader::open(&mut client, &[], "").await;
    publish_new(&mut client, "Token 2", &["Bound"]).await;
    feed.read_articles(1, WAIT).await.expect("one");
    let new_articles_token = feed.token.clone();

    let on_changes = |token: &str| StreamArticleChangesRequest {
        resume_token: token.to_owned(),
        ..Default::default()
    };
    for token in [new_articles_token.as_str(), "garbage"] {
        let status = changes(&mut client, on_changes(token)).await.unwrap_err();
        assert_eq!(bad_request_fields(&status), vec!["resume_token".to_owned()]);
    }
    let status = client
        .stream_new_articles(StreamNewArticlesRequest {
            resume_token: page.changes_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_request_fields(&status), vec!["resume_token".to_owned()]);
    let both = StreamArticleChangesRequest {
        from_beginning: true,
        ..on_changes(&page.changes_token)
    };
    let status = changes(&mut client, both).await.unwrap_err();
    assert_eq!(
        bad_request_fields(&status),
        vec!["from_beginning".to_owned()]
    );
    // The changes token resumes the change stream.
    let mut stream = changes(&mut client, on_changes(&page.changes_token))
        .await
        .expect("stream");
    let (received, _) = read_changes(&mut stream, 1, WAIT).await;
    assert_eq!(received[0].r#type, P);
    // A tag filter over 200 characters is refused.
    let status = changes(
        &mut client,
        StreamArticleChangesRequest {
            tags: vec!["t".repeat(201)],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(bad_request_fields(&status), vec!["tags".to_owned()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_basic_view_leaves_out_the_body_everywhere() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut new_basic = client
        .stream_new_articles(StreamNewArticlesRequest {
            view: ArticleView::Basic as i32,
            ..Default::default()
        })
        .await
        .expect("stream")
        .into_inner();
    let stored = publish_new(&mut client, "Basic", &["Views"]).await;
    let basic = Article {
        body: String::new(),
        ..stored.clone()
    };
    for _ in 0..2 {
        // The second read comes from the cache.
        let got = client
            .get_article(GetArticleRequest {
                key: Some(Key::Slug(stored.slug.clone())),
                view: ArticleView::Basic as i32,
            })
            .await
            .expect("get")
            .into_inner()
            .article;
        assert_eq!(got.as_ref(), Some(&basic));
        assert_eq!(
            get_by_slug(&mut client, &stored.slug).await.ok().as_ref(),
            Some(&stored)
        );
        let page = client
            .list_articles_by_tag(ListArticlesByTagRequest {
                tag: "views".into(),
                view: ArticleView::Basic as i32,
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        assert_eq!(page.articles, vec![basic.clone()]);
    }
    opening_heartbeat(&mut new_basic).await;
    let message = tokio::time::timeout(WAIT, new_basic.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("a message");
    assert_eq!(message.article, Some(basic.clone()));
    let mut stream = changes(
        &mut client,
        StreamArticleChangesRequest {
            view: ArticleView::Basic as i32,
            from_beginning: true,
            ..Default::default()
        },
    )
    .await
    .expect("stream");
    let (received, _) = read_changes(&mut stream, 1, WAIT).await;
    assert_eq!(received[0].article, Some(basic));
    let status = client
        .get_article(GetArticleRequest {
            key: Some(Key::Slug(stored.slug)),
            view: 7,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_request_fields(&status), vec!["view".to_owned()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_then_its_changes_gives_exactly_the_public_articles() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut slugs = Vec::new();
    for i in 0..12 {
        let tags: &[&str] = if i % 3 == 0 {
            &["Snap", "Other"]
        } else {
            &["Snap"]
        };
        slugs.push(
            publish_new(&mut client, &format!("Snap {i}"), tags)
                .await
                .slug,
        );
    }
    // Page the tag while a writer publishes, updates, re-tags and withdraws.
    let writer = {
        let mut client = client.clone();
        let slugs = slugs.clone();
        tokio::spawn(async move {
            for (i, slug) in slugs.iter().enumerate() {
                match i % 4 {
                    0 => {
                        withdraw(&mut client, slug, "gone").await.expect("withdraw");
                    }
                    1 => {
                        let tags: &[&str] = if i % 8 == 1 { &["Other"] } else { &["Snap"] };
                        let request = PublishArticleRequest {
                            slug: slug.clone(),
                            body: format!("Changed {i}."),
                            ..article(&format!("Changed {i}"), tags)
                        };
                        publish(&mut client, request).await;
                    }
                    2 => {
                        publish_new(&mut client, &format!("Fresh {i}"), &["Snap"]).await;
                    }
                    _ => {
                        publish(
                            &mut client,
                            scheduled(&unique_title("Later"), &["Snap"], 1.0),
                        )
                        .await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };
    let mut copy = ChangeCopy::new("snap consumer", Some("snap"));
    let mut page_token = String::new();
    let mut changes_token = String::new();
    loop {
        let page = client
            .list_articles_by_tag(ListArticlesByTagRequest {
                tag: "snap".into(),
                page_size: 2,
                page_token,
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        if changes_token.is_empty() {
            changes_token = page.changes_token.clone();
        }
        assert_eq!(page.changes_token, changes_token, "one token per session");
        for article in page.articles {
            copy.hold(article);
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    writer.await.expect("writer");
    // The scheduled ones come out (each 1 s after it was stored), so that the
    // stream's quiet below means the end of the changes.
    let database = pool(&server.database_url).await;
    eventually(
        "every embargo released",
        Duration::from_secs(15),
        || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM articles WHERE state = 2")
                .fetch_one(&database)
                .await
                .expect("pending embargoes")
                == 0
        },
    )
    .await;
    let mut stream = changes(
        &mut client,
        StreamArticleChangesRequest {
            tags: vec!["snap".into()],
            resume_token: changes_token,
            ..Default::default()
        },
    )
    .await
    .expect("stream");
    // Apply until the stream is quiet.
    loop {
        match tokio::time::timeout(Duration::from_millis(1500), stream.message()).await {
            Ok(Ok(Some(message))) => {
                if let Some(change) = message.change {
                    copy.apply(&change);
                }
            }
            Ok(other) => panic!("the stream ended: {other:?}"),
            Err(_) => break,
        }
    }
    let (public, _) = list_all_by_tag(&mut client, "snap", 100).await;
    let mut expected: Vec<Article> = public;
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(copy.sorted(), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn change_streams_are_not_calls_in_flight() {
    let database = fresh_database().await;
    let server =
        TestServer::start_with(ServerOptions::new(&database).env("MAX_INFLIGHT_CALLS", "2")).await;
    let mut client = server.client().await;
    let mut open = Vec::new();
    let mut new_articles = Vec::new();
    for _ in 0..3 {
        open.push(
            changes(&mut client, StreamArticleChangesRequest::default())
                .await
                .expect("a change stream"),
        );
        new_articles.push(
            open_stream(&mut client, &[], "")
                .await
                .expect("a new-articles stream"),
        );
    }
    // Unary calls still have both slots.
    for _ in 0..3 {
        let status = get_by_slug(&mut client, "no-such-article")
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    }
    let stored = publish_new(&mut client, "Still served", &[]).await;
    for stream in &mut open {
        let (received, _) = read_changes(stream, 1, WAIT).await;
        assert_eq!(summary(&received), vec![(P, stored.slug.clone(), 1)]);
    }
    for stream in &mut new_articles {
        opening_heartbeat(stream).await;
        let Read::Message(message) = read_one(stream, WAIT).await else {
            panic!("the new article");
        };
        assert_eq!(
            message.article.map(|article| article.id),
            Some(stored.id.clone())
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_edits_are_quiet_and_new_articles_come_as_first_public() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut new_articles = FeedReader::open(&mut client, &[], "").await;
    let marker = publish_new(&mut client, "Marker", &[]).await;
    new_articles
        .read_articles(1, WAIT)
        .await
        .expect("the marker");
    let before = new_articles.token.clone();
    let mut live = changes(&mut client, StreamArticleChangesRequest::default())
        .await
        .expect("stream");

    // Edits of a SCHEDULED article: a new revision each, nothing sent.
    let stored = publish(&mut client, scheduled("Quiet", &["Later"], 3600.0))
        .await
        .article
        .expect("article");
    let edit = |body: &str, published_at| PublishArticleRequest {
        slug: stored.slug.clone(),
        body: body.to_owned(),
        published_at,
        ..article("Quiet", &["Later"])
    };
    let edited = publish(&mut client, edit("Edited.", None))
        .await
        .article
        .expect("article");
    assert_eq!((edited.state, edited.revision), (SCHEDULED, 2));
    assert_no_change(&mut live, Duration::from_millis(700)).await;
    // Moved to now: released at once, as that revision.
    let released = publish(&mut client, edit("Out now.", Some(in_seconds(0.0))))
        .await
        .article
        .expect("article");
    assert_eq!((released.state, released.revision), (PUBLISHED, 3));
    let (received, _) = read_changes(&mut live, 1, BOUND).await;
    assert_eq!(summary(&received), vec![(P, stored.slug.clone(), 3)]);
    assert_eq!(received[0].article.as_ref(), Some(&released));

    // Updated after: StreamNewArticles still sends it as it first became
    // public (from a token before it), the change stream sends the update.
    let updated = publish(&mut client, edit("Corrected.", None))
        .await
        .article
        .expect("article");
    assert_eq!(updated.revision, 4);
    let (received, _) = read_changes(&mut live, 1, WAIT).await;
    assert_eq!(summary(&received), vec![(U, stored.slug.clone(), 4)]);
    let mut resumed = FeedReader::open(&mut client, &[], &before).await;
    resumed
        .read_articles(1, WAIT)
        .await
        .expect("the new article");
    assert_eq!(resumed.articles, vec![released]);
    assert_ne!(resumed.ids(), vec![marker.id]);

    // Withdrawing a SCHEDULED article sends nothing either.
    let other = publish(&mut client, scheduled("Never out", &[], 3600.0))
        .await
        .article
        .expect("article");
    let withdrawn = withdraw(&mut client, &other.slug, "spiked")
        .await
        .expect("withdraw");
    assert_eq!((withdrawn.state, withdrawn.revision), (WITHDRAWN, 2));
    assert_no_change(&mut live, Duration::from_millis(700)).await;
}
