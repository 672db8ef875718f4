//! Overload: past MAX_INFLIGHT_CALLS, calls are answered RESOURCE_EXHAUSTED at
//! once, nothing hangs, and the server serves normally after the burst.

use std::time::{Duration, Instant};

use crate::common::*;
use article_service::proto::{GetArticleRequest, get_article_request::Key};

/// The key of the advisory lock that serialises feed positions
/// (`store::writes::WRITE_LOCK_KEY`): holding it makes publishes wait.
const FEED_LOCK_KEY: i64 = 0x4172_7446_6565_6431;

#[tokio::test(flavor = "multi_thread")]
async fn calls_past_the_limit_are_shed_at_once_and_service_resumes() {
    let database = fresh_database().await;
    let server =
        TestServer::start_with(ServerOptions::new(&database).env("MAX_INFLIGHT_CALLS", "2")).await;
    let mut client = server.client().await;

    // Two publishes that cannot finish while the test holds the feed lock.
    let blocker = pool(&database).await;
    let mut lock = hold_feed_lock(&blocker).await;
    let mut held = Vec::new();
    for n in 0..2 {
        let mut publisher = server.client().await;
        held.push(tokio::spawn(async move {
            publisher
                .publish_article(authorized(article(&format!("Held {n}"), &[])))
                .await
        }));
    }
    // Wait until both are in the database, waiting for the lock.
    wait_for_lock_waiters(&blocker, 2, "the publishes never reached the lock").await;

    // The third call is refused at once.
    let started = Instant::now();
    let status = client
        .get_article(GetArticleRequest {
            key: Some(Key::Slug("any-slug".into())),
            ..Default::default()
        })
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "shed after {:?}",
        started.elapsed()
    );

    // Streams are not counted against the unary limit.
    client
        .stream_new_articles(article_service::proto::StreamNewArticlesRequest::default())
        .await
        .expect("a stream opens while unary calls are at their limit");
    // Nor is health: a pod at its limit is busy, not unready (the kubelet's
    // probe would take it out of every Service).
    assert_eq!(
        server.health_of("newsroom.content.v1.ArticleService").await,
        SERVING
    );

    // The burst ends: the held publishes complete, and calls are served again.
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(FEED_LOCK_KEY)
        .execute(&mut *lock)
        .await
        .unwrap();
    for publish in held {
        let response = publish.await.unwrap().expect("held publish completes");
        assert!(response.into_inner().created);
    }
    let status = client
        .get_article(GetArticleRequest {
            key: Some(Key::Slug("any-slug".into())),
            ..Default::default()
        })
        .await
        .expect_err("unknown slug");
    assert_eq!(status.code(), tonic::Code::NotFound);
}

/// A request pool with no free connection is load, not a lost database: the
/// health probe asks on a connection of its own, so the pod stays SERVING
/// (were it taken out of its Service, its load would move to replicas just
/// as busy). Calls that find the pool busy get UNAVAILABLE meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_request_pool_leaves_the_pod_serving() {
    let database = fresh_database().await;
    let server = TestServer::start_with(
        ServerOptions::new(&database)
            .env("DATABASE_MAX_CONNECTIONS", "1")
            .env("DATABASE_ACQUIRE_TIMEOUT_MS", "200"),
    )
    .await;

    // A publish holds the pool's one connection, waiting for the feed lock,
    // until its operation times out (4 s).
    let blocker = pool(&database).await;
    let mut lock = hold_feed_lock(&blocker).await;
    let mut publisher = server.client().await;
    let held = tokio::spawn(async move {
        publisher
            .publish_article(authorized(article("Holds the pool", &[])))
            .await
    });
    wait_for_lock_waiters(&blocker, 1, "the publish never reached the lock").await;
    let saturated = Instant::now();

    // The pool is busy: a read that needs the database waits 200 ms and
    // gets UNAVAILABLE.
    let mut client = server.client().await;
    let status = client
        .get_article(GetArticleRequest {
            key: Some(Key::Slug("not-cached".into())),
            ..Default::default()
        })
        .await
        .expect_err("no connection free");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");

    // Past a probe (every 2 s), health still answers SERVING.
    tokio::time::sleep(Duration::from_millis(2_300).saturating_sub(saturated.elapsed())).await;
    assert_eq!(server.health().await, SERVING);
    assert_eq!(
        server.health_of("newsroom.content.v1.ArticleService").await,
        SERVING
    );

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(FEED_LOCK_KEY)
        .execute(&mut *lock)
        .await
        .unwrap();
    let _ = held.await.unwrap();
}

/// Holds the feed lock on a connection of `pool` until it is unlocked.
async fn hold_feed_lock(pool: &sqlx::PgPool) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
    let mut lock = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(FEED_LOCK_KEY)
        .execute(&mut *lock)
        .await
        .unwrap();
    lock
}

/// Waits (5 s at most) until `count` statements of this database wait for a lock.
async fn wait_for_lock_waiters(pool: &sqlx::PgPool, count: i64, otherwise: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting == count {
            return;
        }
        assert!(Instant::now() < deadline, "{otherwise}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
