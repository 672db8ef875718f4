//! DATABASE_READ_URL: GetArticle, ListArticlesByTag and ListTags read from
//! the read database; publishing, the live feed and health stay on
//! DATABASE_URL. (Without it, every other test runs on one pool.)

use std::time::Duration;

use crate::common::*;
use article_service::proto::{
    ArticleState, GetArticleRequest, ListArticlesByTagRequest, PublishArticleRequest,
    WithdrawArticleRequest, get_article_request, withdraw_article_request,
};

/// A password the read URLs carry, which must never be shown.
const PASSWORD: &str = "Read-Pa55-Q7";

/// A PostgreSQL URL with [`PASSWORD`] at a port nobody listens on:
/// connecting is refused, so the pool retries until its acquire timeout.
fn refused_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    format!("postgres://reader:{PASSWORD}@127.0.0.1:{port}/articles")
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_come_from_the_read_database_and_writes_go_to_the_primary() {
    let primary = fresh_database().await;
    let replica = fresh_database().await;
    let output = run_cli(&replica, &["import", SAMPLE]);
    assert!(output.status.success(), "{output:?}");
    let server = TestServer::start_with(
        ServerOptions::new(&primary)
            .env("DATABASE_READ_URL", &replica)
            .env("DATABASE_READ_MAX_CONNECTIONS", "3"),
    )
    .await;
    let mut client = server.client().await;

    // Published to the primary, and out on the feed, which follows it.
    let mut reader = FeedReader::open(&mut client, &[], "").await;
    let published = publish_new(&mut client, "Primary only", &["Desk"]).await;
    reader
        .read_articles(1, Duration::from_secs(10))
        .await
        .expect("the feed");
    assert_eq!(reader.ids(), vec![published.id.clone()]);
    assert_eq!(store_order(&primary).await, vec![published.id.clone()]);

    // Reads see the read database: the sample is there, the new article not.
    let missing = get_by_slug(&mut client, &published.slug)
        .await
        .expect_err("not in the read database");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let sample = get_by_slug(&mut client, SAMPLE_SLUG)
        .await
        .expect("the sample, from the read database");
    assert_eq!(sample.slug, SAMPLE_SLUG);
    let replica_tags: Vec<String> =
        sqlx::query_scalar("SELECT slug FROM tags WHERE article_count > 0 ORDER BY slug")
            .fetch_all(&pool(&replica).await)
            .await
            .expect("the read database's tags");
    assert!(!replica_tags.is_empty());
    let listed: Vec<String> = list_all_tags(&mut client, 100)
        .await
        .into_iter()
        .map(|summary| summary.tag.expect("a tag").slug)
        .collect();
    assert_eq!(listed, replica_tags);
    let (desk, _) = list_all_by_tag(&mut client, "desk", 10).await;
    assert!(desk.is_empty(), "{desk:?}");

    // Four reads, each one connection from the read pool.
    server
        .wait_for_metric(
            "article_db_pool_max_connections{pool=\"read\"}",
            3.0,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(
        server
            .metric("article_db_pool_acquire_seconds_count{pool=\"read\"}")
            .await,
        Some(4.0)
    );
    assert_eq!(
        server
            .metric("article_db_pool_acquire_timeouts_total{pool=\"read\"}")
            .await,
        Some(0.0)
    );
}

/// A read database that has not replayed a withdrawal (here: one that never
/// will, a copy of the primary made before it) serves no read of the
/// withdrawn article: not on the replica that took it down, at once, and not
/// on another one once its feed listener heard of the change; neither keeps
/// it in its cache. Reads go to the primary meanwhile, and say so in
/// `article_db_read_fallbacks_total`.
#[tokio::test(flavor = "multi_thread")]
async fn a_withdrawal_is_never_served_from_a_read_database_that_is_behind() {
    let primary = fresh_database_with_sample().await;
    let primary_name = url::Url::parse(&primary).expect("a URL").path()[1..].to_owned();
    let replica = fresh_database_created_with(&format!("TEMPLATE {primary_name}")).await;
    let options = || ServerOptions::new(&primary).env("DATABASE_READ_URL", &replica);
    let handling = TestServer::start_with(options()).await;
    let other = TestServer::start_with(options()).await;
    let mut handling_client = handling.client().await;
    let mut other_client = other.client().await;

    // Both serve the sample from the read database, and cache it and its
    // tag's first page.
    let sample = get_by_slug(&mut handling_client, SAMPLE_SLUG)
        .await
        .expect("the sample");
    let tag = sample.tags[0].slug.clone();
    for client in [&mut handling_client, &mut other_client] {
        for _ in 0..2 {
            let read = get_by_slug(client, SAMPLE_SLUG).await.expect("the sample");
            assert_eq!(read.slug, SAMPLE_SLUG);
            let (page, _) = list_all_by_tag(client, &tag, 10).await;
            assert_eq!(page.len(), 1);
        }
    }
    assert_eq!(
        handling.metric("article_db_read_fallbacks_total").await,
        Some(0.0)
    );

    handling_client
        .withdraw_article(authorized(WithdrawArticleRequest {
            key: Some(withdraw_article_request::Key::Slug(SAMPLE_SLUG.to_owned())),
            reason: "legal".to_owned(),
        }))
        .await
        .expect("withdraw");

    // At once on the replica that handled it.
    let status = get_by_slug(&mut handling_client, SAMPLE_SLUG)
        .await
        .expect_err("withdrawn");
    assert_eq!(status.code(), tonic::Code::NotFound);
    let (page, _) = list_all_by_tag(&mut handling_client, &tag, 10).await;
    assert!(page.is_empty(), "{page:?}");
    // Within 2 s on the other.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let read = get_by_slug(&mut other_client, SAMPLE_SLUG).await;
        let (page, _) = list_all_by_tag(&mut other_client, &tag, 10).await;
        if read
            .as_ref()
            .is_err_and(|status| status.code() == tonic::Code::NotFound)
            && page.is_empty()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still served after 2 s: {read:?}, {page:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And it stays so: what they read again comes from the primary.
    for (server, client) in [
        (&handling, &mut handling_client),
        (&other, &mut other_client),
    ] {
        for _ in 0..3 {
            let status = get_by_slug(client, SAMPLE_SLUG)
                .await
                .expect_err("withdrawn");
            assert_eq!(status.code(), tonic::Code::NotFound);
            let (page, _) = list_all_by_tag(client, &tag, 10).await;
            assert!(page.is_empty(), "{page:?}");
        }
        let fallbacks = server
            .metric("article_db_read_fallbacks_total")
            .await
            .expect("the fallbacks counter");
        // At least the three GetArticle calls just made (NOT_FOUND is
        // never cached; the empty first page read from the primary is).
        assert!(fallbacks >= 3.0, "{fallbacks}");
    }
}

/// Editors' preview reads the primary: a SCHEDULED article and its edits
/// (which make no change a read database could be checked against) show at
/// once, while public reads keep using the read database, which here never
/// has them.
#[tokio::test(flavor = "multi_thread")]
async fn editors_preview_reads_the_primary() {
    let primary = fresh_database().await;
    let replica = fresh_database().await;
    let server =
        TestServer::start_with(ServerOptions::new(&primary).env("DATABASE_READ_URL", &replica))
            .await;
    let mut client = server.client().await;
    let scheduled = article_at("Embargoed preview", &["Desk"], "2099-01-01T00:00:00Z");
    let slug = publish(&mut client, scheduled.clone())
        .await
        .article
        .expect("the stored article")
        .slug;
    let edited = PublishArticleRequest {
        slug: slug.clone(),
        body: "The edited body.".to_owned(),
        ..scheduled
    };
    publish(&mut client, edited).await;

    let previewed = client
        .get_article(authorized(GetArticleRequest {
            key: Some(get_article_request::Key::Slug(slug.clone())),
            ..Default::default()
        }))
        .await
        .expect("the preview, from the primary")
        .into_inner()
        .article
        .expect("an article");
    assert_eq!(previewed.state, ArticleState::Scheduled as i32);
    assert_eq!(previewed.body, "The edited body.");
    let public = get_by_slug(&mut client, &slug)
        .await
        .expect_err("not public");
    assert_eq!(public.code(), tonic::Code::NotFound);
}

/// The read database going away costs the reads that need it: they answer
/// UNAVAILABLE, publishing goes on, health stays SERVING; reads recover
/// with it.
///
/// The reads checked during the cut are of an article and a tag page never
/// read before, so never in the read cache: a cached answer during the
/// outage is allowed (README, "Read cache"), and whether the first read
/// filled the cache races with the publish's own notification.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_database_outage_fails_reads_only() {
    let database = fresh_database().await;
    let proxy = proxy::DbProxy::start(proxy::target_of(&database)).await;
    let server = TestServer::start_with(
        ServerOptions::new(&database).env("DATABASE_READ_URL", &proxy.url_for(&database)),
    )
    .await;
    let mut client = server.client().await;
    let before = publish_new(&mut client, "Before the cut", &["Desk"]).await;
    get_by_slug(&mut client, &before.slug)
        .await
        .expect("read through the proxy");
    let never_read = publish_new(&mut client, "Never read", &["Unread desk"]).await;

    proxy.cut();
    for _ in 0..2 {
        let status = get_by_slug(&mut client, &never_read.slug)
            .await
            .expect_err("the read database is gone");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    }
    let status = client
        .list_articles_by_tag(article_service::proto::ListArticlesByTagRequest {
            tag: "unread-desk".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("the read database is gone");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let status = client
        .list_tags(article_service::proto::ListTagsRequest::default())
        .await
        .expect_err("the read database is gone");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let during = publish_new(&mut client, "During the cut", &["Desk"]).await;
    // Longer than the 2 s health probe interval.
    for _ in 0..6 {
        assert_eq!(server.health().await, SERVING);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    proxy.restore();
    eventually("reads recover", Duration::from_secs(10), || {
        let mut client = client.clone();
        let slug = during.slug.clone();
        async move { get_by_slug(&mut client, &slug).await.is_ok() }
    })
    .await;
}

/// A read pool that cannot connect waits its acquire timeout, answers
/// UNAVAILABLE and counts the timeout under `pool="read"`.
#[tokio::test(flavor = "multi_thread")]
async fn read_pool_acquire_timeouts_are_counted() {
    let database = fresh_database().await;
    let server = TestServer::start_with(
        ServerOptions::new(&database)
            .env("DATABASE_READ_URL", &refused_url())
            .env("DATABASE_ACQUIRE_TIMEOUT_MS", "200"),
    )
    .await;
    let mut client = server.client().await;
    let published = publish_new(&mut client, "Unreadable", &["Desk"]).await;
    for _ in 0..3 {
        let status = get_by_slug(&mut client, &published.slug)
            .await
            .expect_err("no read database");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(!status.message().contains(PASSWORD));
    }
    assert_eq!(
        server
            .metric("article_db_pool_acquire_timeouts_total{pool=\"read\"}")
            .await,
        Some(3.0)
    );
    assert_eq!(
        server
            .metric("article_db_pool_acquire_seconds_count{pool=\"read\"}")
            .await,
        Some(3.0)
    );
    assert_eq!(
        server
            .metric("article_db_pool_acquire_timeouts_total{pool=\"primary\"}")
            .await,
        Some(0.0)
    );
    assert_eq!(server.health().await, SERVING);
    for line in server.logs() {
        assert!(!line.contains(PASSWORD), "the password leaked: {line}");
    }
}

/// An unparsable DATABASE_READ_URL stops `serve` with a message that names
/// the variable, not its value; `--help` does not show the value either.
#[test]
fn a_bad_read_url_fails_without_showing_its_password() {
    let bad = format!("postgres://reader:{PASSWORD}@127.0.0.1:notaport/articles");
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .env("DATABASE_URL", database_url_named("unused"))
            .env("DATABASE_READ_URL", &bad)
            .env("GRPC_ADDR", "127.0.0.1:0")
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .output()
            .expect("run article-service")
    };
    let served = run(&["serve"]);
    assert!(!served.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&served.stdout),
        String::from_utf8_lossy(&served.stderr)
    );
    assert!(
        text.contains("DATABASE_READ_URL is not a valid PostgreSQL URL"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
    let help = run(&["serve", "--help"]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("DATABASE_READ_URL"), "{help}");
    assert!(!help.contains(PASSWORD), "{help}");
}

/// A later page needs its session's snapshot, whichever replica began the
/// session: a replica whose read database is behind the page token's
/// snapshot, and which has not heard of those changes itself (its primary
/// cut off here), goes to the primary for it, and answers UNAVAILABLE when
/// it cannot, never a page from the stale copy.
#[tokio::test(flavor = "multi_thread")]
async fn a_later_page_never_reads_a_database_behind_its_snapshot() {
    let primary = fresh_database_with_sample().await;
    let primary_name = url::Url::parse(&primary).expect("a URL").path()[1..].to_owned();
    let stale_copy = fresh_database_created_with(&format!("TEMPLATE {primary_name}")).await;
    let primary_proxy = proxy::DbProxy::start(proxy::target_of(&primary)).await;
    let lagging = TestServer::start_with(
        ServerOptions::new(&primary_proxy.url_for(&primary)).env("DATABASE_READ_URL", &stale_copy),
    )
    .await;
    primary_proxy.cut();

    let current = TestServer::start_with(ServerOptions::new(&primary)).await;
    let mut client = current.client().await;
    for i in 0..3 {
        publish_new(
            &mut client,
            &format!("After the copy {i}"),
            &["Snapshot desk"],
        )
        .await;
    }
    let first = client
        .list_articles_by_tag(ListArticlesByTagRequest {
            tag: "snapshot-desk".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("page 1")
        .into_inner();
    assert_eq!(first.articles.len(), 1);

    let status = lagging
        .client()
        .await
        .list_articles_by_tag(ListArticlesByTagRequest {
            tag: "snapshot-desk".into(),
            page_size: 1,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .expect_err("only the primary has the session's snapshot");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
}
