//! End to end: a database that cannot be reached (cut by a TCP proxy, so the
//! PostgreSQL other tests share stays up), and health.

use crate::common::proxy::{BlackHoleProxy, DbProxy, target_of};
use crate::common::*;

use std::future::Future;
use std::time::{Duration, Instant};

use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::{ListArticlesByTagRequest, ListTagsRequest, StreamNewArticlesRequest};
use tonic::Code;
use tonic::transport::Channel;

/// Runs `call`, expects UNAVAILABLE within 5 s (the contract's bound for a
/// call without a deadline).
async fn assert_unavailable<T: std::fmt::Debug>(
    what: &str,
    call: impl Future<Output = Result<T, tonic::Status>>,
) {
    let started = Instant::now();
    // A hang fails the test here rather than stalling it.
    let result = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 30 s"));
    let elapsed = started.elapsed();
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
    assert!(
        elapsed < UNAVAILABLE_WITHIN,
        "{what}: UNAVAILABLE after {elapsed:?}"
    );
}

/// Polls health of "" and of the service until both are `expected`.
async fn wait_for_health(server: &TestServer, expected: i32, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let overall = server.health_of("").await;
        let service = server.health_of("newsroom.content.v1.ArticleService").await;
        if overall == expected && service == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "health is {overall}/{service}, not {expected}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every unary RPC while the database is away, all at once (each waits for
/// the pool's acquire timeout; together they take as long as one).
async fn assert_every_call_unavailable(
    client: &ArticleServiceClient<Channel>,
    slug: &str,
    id: &str,
    page_token: Option<&str>,
) {
    let (mut by_id, mut by_slug, mut list, mut next, mut tags, mut publisher, mut stream) = (
        client.clone(),
        client.clone(),
        client.clone(),
        client.clone(),
        client.clone(),
        client.clone(),
        client.clone(),
    );
    let next_page = async {
        if let Some(page_token) = page_token {
            assert_unavailable(
                "ListArticlesByTag, next page",
                next.list_articles_by_tag(ListArticlesByTagRequest {
                    tag: "Outage".into(),
                    page_size: 1,
                    page_token: page_token.to_owned(),
                    ..Default::default()
                }),
            )
            .await;
        }
    };
    tokio::join!(
        assert_unavailable("GetArticle by id", get_by_id(&mut by_id, id)),
        assert_unavailable("GetArticle by slug", get_by_slug(&mut by_slug, slug)),
        assert_unavailable(
            "ListArticlesByTag",
            list.list_articles_by_tag(ListArticlesByTagRequest {
                tag: "Outage".into(),
                ..ListArticlesByTagRequest::default()
            }),
        ),
        next_page,
        assert_unavailable("ListTags", tags.list_tags(ListTagsRequest::default())),
        assert_unavailable(
            "PublishArticle",
            publisher.publish_article(authorized(article("During the outage", &["Outage"]))),
        ),
        assert_unavailable("StreamNewArticles", async {
            stream
                .stream_new_articles(StreamNewArticlesRequest::default())
                .await
                .map(|_| ())
        }),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_unavailable_and_the_service_recovers_by_itself() {
    let database = fresh_database().await;
    let proxy = DbProxy::start(target_of(&database)).await;
    let server = TestServer::start_with(ServerOptions::new(&proxy.url_for(&database))).await;
    let mut client = server.client().await;
    let before = publish(&mut client, article("Before the outage", &["Outage"]))
        .await
        .article
        .unwrap();
    publish(&mut client, article("Also before", &["Outage"])).await;
    let page_token = page_token_after_one(&mut client, "Outage").await;
    assert!(!page_token.is_empty());
    assert_eq!(server.health_of("").await, SERVING);

    proxy.cut();
    let cut_at = Instant::now();
    assert_every_call_unavailable(&client, &before.slug, &before.id, Some(&page_token)).await;
    let remaining = NOT_SERVING_WITHIN.saturating_sub(cut_at.elapsed());
    wait_for_health(&server, NOT_SERVING, remaining).await;

    proxy.restore();
    let restored_at = Instant::now();
    wait_for_health(&server, SERVING, RECOVERED_WITHIN).await;
    loop {
        match get_by_id(&mut client, &before.id).await {
            Ok(article) => {
                assert_eq!(article, before);
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(
                    restored_at.elapsed() < RECOVERED_WITHIN,
                    "GetArticle still fails {RECOVERED_WITHIN:?} after the database returned"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(restored_at.elapsed() < RECOVERED_WITHIN);
    // Everything works again, on the same server process and channel.
    let next = client
        .list_articles_by_tag(ListArticlesByTagRequest {
            tag: "Outage".into(),
            page_size: 1,
            page_token,
            ..Default::default()
        })
        .await
        .expect("the page token issued before the outage")
        .into_inner();
    assert_eq!(ids(&next.articles), std::slice::from_ref(&before.id));
    let after = publish(&mut client, article("After the outage", &["Outage"])).await;
    assert!(after.created);
    let (all, _) = list_all_by_tag(&mut client, "outage", 0).await;
    assert_eq!(all.len(), 3);
    assert_eq!(
        tag_counts(&list_all_tags(&mut client, 0).await),
        [("outage".to_owned(), "Outage".to_owned(), 3)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_a_deadline_is_answered_unavailable_within_it() {
    let database = fresh_database().await;
    let proxy = DbProxy::start(target_of(&database)).await;
    let server = TestServer::start_with(ServerOptions::new(&proxy.url_for(&database))).await;
    let mut client = server.client().await;
    publish(&mut client, article("Deadline", &["Outage"])).await;
    proxy.cut();
    // Connections are refused at once: UNAVAILABLE, well before the deadline.
    assert_answered_within(
        &mut client,
        &[Duration::from_millis(1_500), Duration::from_secs(3)],
        Code::Unavailable,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_without_its_database_serves_once_it_appears() {
    let database = fresh_database_with_sample().await;
    let proxy = DbProxy::start(target_of(&database)).await;
    proxy.cut();
    let server = TestServer::start_unready(ServerOptions::new(&proxy.url_for(&database))).await;
    let mut client = server.client().await;

    assert_eq!(server.health_of("").await, NOT_SERVING);
    assert_eq!(
        server.health_of("newsroom.content.v1.ArticleService").await,
        NOT_SERVING
    );
    let sample_id = uuid::Uuid::new_v4().to_string();
    assert_every_call_unavailable(&client, SAMPLE_SLUG, &sample_id, None).await;
    // Several health probes have failed by now: still not serving.
    assert_eq!(server.health_of("").await, NOT_SERVING);
    // Argument errors need no database.
    let status = get_by_id(&mut client, "not-a-uuid").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    proxy.restore();
    let restored_at = Instant::now();
    wait_for_health(&server, SERVING, RECOVERED_WITHIN).await;
    let sample = loop {
        match get_by_slug(&mut client, SAMPLE_SLUG).await {
            Ok(article) => break article,
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(restored_at.elapsed() < RECOVERED_WITHIN);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(sample.byline, "7Dnews London");
    assert_eq!(get_by_id(&mut client, &sample.id).await.unwrap(), sample);
    // Tokens need the key from the database: paging works now.
    publish(&mut client, article("Second", &["US & Canada"])).await;
    let (all, pages) = list_all_by_tag(&mut client, "US & Canada", 1).await;
    assert_eq!(all.len(), 2);
    assert_eq!(pages, 2);
    assert_eq!(all[1], sample);
}

/// A database that is not there (not created yet, or being restored) is
/// the deployment's state, not a bug: every call is UNAVAILABLE, never
/// INTERNAL, and health says NOT_SERVING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_does_not_exist_makes_every_call_unavailable() {
    let missing = database_url_named(&format!("missing_{}", uuid::Uuid::new_v4().simple()));
    let server = TestServer::start_unready(ServerOptions::new(&missing)).await;
    let client = server.client().await;
    let id = uuid::Uuid::new_v4().to_string();
    assert_every_call_unavailable(&client, SAMPLE_SLUG, &id, None).await;
    assert_eq!(server.health_of("").await, NOT_SERVING);
    // Operators see which: the health log names the SQLSTATE, and `migrate`
    // gives the database's own reason.
    server.wait_for_log("SQLSTATE 3D000", WAIT).await;
    let output = run_cli(&missing, &["migrate"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[tokio::test]
async fn health_reports_serving_for_both_names_and_not_found_for_others() {
    let server = TestServer::start().await;
    assert_eq!(server.health_of("").await, SERVING);
    assert_eq!(
        server.health_of("newsroom.content.v1.ArticleService").await,
        SERVING
    );
    let channel = Channel::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_is_unavailable_not_a_hang() {
    let database = fresh_database().await;
    let proxy = BlackHoleProxy::start(target_of(&database)).await;
    let server = TestServer::start_with(ServerOptions::new(&proxy.url_for(&database))).await;
    let mut client = server.client().await;
    let before = publish(&mut client, article("Before the partition", &["Outage"]))
        .await
        .article
        .unwrap();
    publish(&mut client, article("Also before", &["Outage"])).await;
    let page_token = page_token_after_one(&mut client, "Outage").await;

    proxy.freeze();
    let frozen_at = Instant::now();
    assert_every_call_unavailable(&client, &before.slug, &before.id, Some(&page_token)).await;
    let remaining = NOT_SERVING_WITHIN.saturating_sub(frozen_at.elapsed());
    wait_for_health(&server, NOT_SERVING, remaining).await;

    proxy.thaw();
    let thawed_at = Instant::now();
    wait_for_health(&server, SERVING, RECOVERED_WITHIN).await;
    loop {
        match get_by_id(&mut client, &before.id).await {
            Ok(article) => {
                assert_eq!(article, before);
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(thawed_at.elapsed() < RECOVERED_WITHIN);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(
        publish(&mut client, article("After the partition", &["Outage"]))
            .await
            .created
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_a_deadline_is_answered_within_it_when_the_database_stops_answering() {
    let database = fresh_database().await;
    let proxy = BlackHoleProxy::start(target_of(&database)).await;
    let server = TestServer::start_with(ServerOptions::new(&proxy.url_for(&database))).await;
    let mut client = server.client().await;
    publish(&mut client, article("Deadline", &["Outage"])).await;
    proxy.freeze();
    // Nothing answers: the caller's deadline runs out first.
    assert_answered_within(
        &mut client,
        &[Duration::from_millis(1_500), Duration::from_secs(2)],
        Code::DeadlineExceeded,
    )
    .await;
}

/// ListTags with each deadline is answered `expected` before the deadline:
/// UNAVAILABLE when the database fails first, DEADLINE_EXCEEDED when the
/// caller's deadline runs out first.
async fn assert_answered_within(
    client: &mut article_service::proto::article_service_client::ArticleServiceClient<
        tonic::transport::Channel,
    >,
    deadlines: &[Duration],
    expected: Code,
) {
    for &deadline in deadlines {
        let mut request = tonic::Request::new(ListTagsRequest::default());
        request.set_timeout(deadline);
        let started = Instant::now();
        let status = tokio::time::timeout(Duration::from_secs(30), client.list_tags(request))
            .await
            .expect("an answer")
            .unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(
            status.code(),
            expected,
            "deadline {deadline:?}: {status:?} after {elapsed:?}"
        );
        assert!(elapsed < deadline, "deadline {deadline:?}: {elapsed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_while_the_database_does_not_answer_serves_once_it_does() {
    let database = fresh_database_with_sample().await;
    let proxy = BlackHoleProxy::start(target_of(&database)).await;
    proxy.freeze();
    let server = TestServer::start_unready(ServerOptions::new(&proxy.url_for(&database))).await;
    let client = server.client().await;
    assert_eq!(server.health_of("").await, NOT_SERVING);
    let id = uuid::Uuid::new_v4().to_string();
    assert_every_call_unavailable(&client, SAMPLE_SLUG, &id, None).await;
    assert_eq!(server.health_of("").await, NOT_SERVING);

    proxy.thaw();
    let thawed_at = Instant::now();
    wait_for_health(&server, SERVING, RECOVERED_WITHIN).await;
    let mut client = client;
    loop {
        match get_by_slug(&mut client, SAMPLE_SLUG).await {
            Ok(article) => {
                assert_eq!(article.byline, "7Dnews London");
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(thawed_at.elapsed() < RECOVERED_WITHIN);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A huge tag with no letter or digit is INVALID_ARGUMENT naming `tag`,
/// like a short one: the error quotes only its beginning, so it fits the
/// response headers that carry it.
#[tokio::test]
async fn a_huge_tag_without_letters_is_invalid_argument() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let status = client
        .list_articles_by_tag(ListArticlesByTagRequest {
            tag: "!".repeat(20_000),
            ..Default::default()
        })
        .await
        .expect_err("no letter or digit");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(bad_request_fields(&status), ["tag"]);
    assert!(status.message().len() < 200, "{}", status.message());
}

/// The token key is made by `migrate`, never by a serving replica: one that
/// finds it missing answers the calls that need it UNAVAILABLE and says why
/// in its log, until the key is back (here: `migrate` makes a new one).
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_token_key_is_unavailable_until_migrate_makes_one() {
    let database = fresh_database_with_sample().await;
    let pool = pool(&database).await;
    let key: Vec<u8> = sqlx::query_scalar("SELECT key FROM token_keys")
        .fetch_one(&pool)
        .await
        .expect("migrate made the key");
    assert_eq!(key.len(), 32);
    sqlx::query("DELETE FROM token_keys")
        .execute(&pool)
        .await
        .expect("lose the key");
    let server = TestServer::start_with(ServerOptions::new(&database)).await;
    let mut client = server.client().await;
    let page = ListArticlesByTagRequest {
        tag: "Russia".into(),
        ..Default::default()
    };
    let status = client
        .list_articles_by_tag(page.clone())
        .await
        .expect_err("no key to sign tokens with");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    server.wait_for_log("the token key is missing", WAIT).await;
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM token_keys")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(none, 0, "the server made no key of its own");

    let output = run_cli(&database, &["migrate"]);
    assert!(output.status.success(), "{output:?}");
    let answered = client.list_articles_by_tag(page).await.expect("a page");
    assert_eq!(answered.into_inner().articles.len(), 1);
    pool.close().await;
}

/// A pod started on a database `migrate` has not prepared (a migration Job
/// that failed or was skipped) stays NOT_SERVING, saying why, so a rollout
/// waits for it instead of replacing working pods; once migrated, it serves.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_without_this_builds_schema_keeps_the_pod_not_serving_until_migrated() {
    let admin: sqlx::postgres::PgConnectOptions = admin_url().parse().expect("DATABASE_URL");
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::ConnectOptions::connect(&admin)
        .await
        .expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("an empty database");
    let database = database_url_named(&name);

    let server = TestServer::start_unready(ServerOptions::new(&database)).await;
    server
        .wait_for_log("the database's schema is behind this build", WAIT)
        .await;
    assert_eq!(server.health().await, NOT_SERVING);
    assert_eq!(
        server.health_of("newsroom.content.v1.ArticleService").await,
        NOT_SERVING
    );

    let output = run_cli(&database, &["migrate"]);
    assert!(output.status.success(), "{output:?}");
    server.wait_until_serving().await;
    let mut client = server.client().await;
    let stored = publish_new(&mut client, "After the migration", &[]).await;
    assert_eq!(
        get_by_slug(&mut client, &stored.slug).await.ok(),
        Some(stored)
    );
}
