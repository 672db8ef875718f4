//! `/metrics` on METRICS_ADDR: Prometheus text with the service's series
//! after real traffic.

use std::time::{Duration, Instant};

use crate::common::observe::{http_get, metric_value};
use crate::common::*;
use article_service::proto::{
    GetArticleRequest, StreamNewArticlesRequest, get_article_request::Key,
};

async fn scrape_until(addr: &str, what: &str, condition: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = http_get(addr, "/metrics").await;
        if condition(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what} never showed:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_calls_streams_pool_and_build() {
    let server = TestServer::start().await;
    let addr = server.metrics_addr();
    let mut client = server.client().await;

    let created = publish(&mut client, article("Counted", &["Metrics"])).await;
    let slug = created.article.expect("article").slug;
    for _ in 0..3 {
        client
            .get_article(GetArticleRequest {
                key: Some(Key::Slug(slug.clone())),
                ..Default::default()
            })
            .await
            .expect("GetArticle");
    }
    for _ in 0..2 {
        let status = client
            .get_article(GetArticleRequest {
                key: Some(Key::Slug("missing".into())),
                ..Default::default()
            })
            .await
            .expect_err("unknown");
        assert_eq!(status.code(), tonic::Code::NotFound);
    }
    let mut streams = Vec::new();
    for _ in 0..2 {
        streams.push(
            client
                .stream_new_articles(StreamNewArticlesRequest::default())
                .await
                .expect("stream")
                .into_inner(),
        );
    }

    let (status_line, _) = http_get(&addr, "/metrics").await;
    assert_eq!(status_line, "HTTP/1.1 200 OK");
    let (status_line, _) = http_get(&addr, "/other").await;
    assert_eq!(status_line, "HTTP/1.1 404 Not Found");

    let get = "newsroom.content.v1.ArticleService/GetArticle";
    let body = scrape_until(&addr, "two open streams", |body| {
        metric_value(body, "article_feed_open_streams") == Some(2.0)
    })
    .await;
    assert_eq!(
        metric_value(
            &body,
            &format!("grpc_server_handled_total{{grpc_method=\"{get}\",grpc_code=\"OK\"}}")
        ),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        metric_value(
            &body,
            &format!("grpc_server_handled_total{{grpc_method=\"{get}\",grpc_code=\"NOT_FOUND\"}}")
        ),
        Some(2.0)
    );
    assert_eq!(
        metric_value(
            &body,
            "grpc_server_handled_total{grpc_method=\"newsroom.content.v1.ArticleService/PublishArticle\",grpc_code=\"OK\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &body,
            &format!("grpc_server_handling_seconds_count{{grpc_method=\"{get}\"}}")
        ),
        Some(5.0)
    );
    assert!(body.contains(&format!(
        "grpc_server_handling_seconds_bucket{{grpc_method=\"{get}\",le=\"0.005\"}}"
    )));
    assert_eq!(
        metric_value(
            &body,
            &format!(
                "article_service_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&body, "article_db_pool_max_connections{pool=\"primary\"}"),
        Some(16.0)
    );
    assert!(
        metric_value(
            &body,
            "article_db_pool_connections{pool=\"primary\",state=\"idle\"}"
        )
        .is_some()
    );
    assert!(
        metric_value(
            &body,
            "article_db_pool_connections{pool=\"primary\",state=\"in_use\"}"
        )
        .is_some()
    );
    // Every store operation took its connection through the measured
    // acquire (the health probe and the listener add theirs, so at least
    // the six calls'); nobody waits now and no wait timed out.
    assert!(
        metric_value(
            &body,
            "article_db_pool_acquire_seconds_count{pool=\"primary\"}"
        )
        .is_some_and(|count| count >= 6.0),
        "{body}"
    );
    assert!(
        body.contains("article_db_pool_acquire_seconds_bucket{pool=\"primary\",le=\"0.0001\"}")
    );
    assert_eq!(
        metric_value(&body, "article_db_pool_waiting{pool=\"primary\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric_value(
            &body,
            "article_db_pool_acquire_timeouts_total{pool=\"primary\"}"
        ),
        Some(0.0)
    );
    // No read pool without DATABASE_READ_URL.
    assert!(!body.contains("pool=\"read\""), "{body}");
    assert!(
        body.contains("# HELP article_feed_lag_positions "),
        "{body}"
    );

    drop(streams);
    let body = scrape_until(&addr, "streams closed", |body| {
        metric_value(body, "article_feed_open_streams") == Some(0.0)
    })
    .await;
    assert_eq!(
        metric_value(
            &body,
            "grpc_server_handled_total{grpc_method=\"newsroom.content.v1.ArticleService/StreamNewArticles\",grpc_code=\"CANCELLED\"}"
        ),
        Some(2.0)
    );
}

/// The feed's series: the listener's head and delivered positions, their
/// difference (the lag), and its reconnects after the database was cut off.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_feed_lag_and_listener_reconnects() {
    let database_url = fresh_database().await;
    let proxy = proxy::DbProxy::start(proxy::target_of(&database_url)).await;
    let server = TestServer::start_with(ServerOptions::new(&proxy.url_for(&database_url))).await;
    let addr = server.metrics_addr();
    let mut client = server.client().await;

    let mut reader = FeedReader::open(&mut client, &[], "").await;
    for label in ["Lag one", "Lag two"] {
        publish_new(&mut client, label, &["Metrics"]).await;
    }
    reader
        .read_articles(2, Duration::from_secs(10))
        .await
        .expect("both articles");
    let body = scrape_until(&addr, "both articles delivered", |body| {
        metric_value(body, "article_feed_delivered_position") == Some(2.0)
    })
    .await;
    assert_eq!(metric_value(&body, "article_feed_head_position"), Some(2.0));
    assert_eq!(metric_value(&body, "article_feed_lag_positions"), Some(0.0));
    assert_eq!(
        metric_value(&body, "article_feed_listener_reconnects_total"),
        Some(0.0)
    );
    assert_eq!(metric_value(&body, "article_feed_listening"), Some(1.0));

    // Cut: every connection drops, the listener's too, and it keeps trying
    // until the database is back; meanwhile it is not listening.
    proxy.cut();
    eventually("health NOT_SERVING", Duration::from_secs(10), || async {
        server.health().await == NOT_SERVING
    })
    .await;
    scrape_until(&addr, "not listening", |body| {
        metric_value(body, "article_feed_listening") == Some(0.0)
    })
    .await;
    proxy.restore();
    server.wait_until_serving().await;
    scrape_until(&addr, "one reconnect, listening again", |body| {
        metric_value(body, "article_feed_listener_reconnects_total") == Some(1.0)
            && metric_value(body, "article_feed_listening") == Some(1.0)
    })
    .await;

    publish_new(&mut client, "Lag three", &["Metrics"]).await;
    let status = reader
        .read_resuming(&mut client, &[], 3, Duration::from_secs(15))
        .await;
    assert!(status.is_empty(), "the stream survived the cut: {status:?}");
    let body = scrape_until(&addr, "the third article delivered", |body| {
        metric_value(body, "article_feed_delivered_position") == Some(3.0)
    })
    .await;
    assert_eq!(metric_value(&body, "article_feed_head_position"), Some(3.0));
    assert_eq!(metric_value(&body, "article_feed_lag_positions"), Some(0.0));
    assert_eq!(
        metric_value(&body, "article_feed_listener_reconnects_total"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_releases_pending_and_done_and_withdrawals() {
    use article_service::proto::{WithdrawArticleRequest, withdraw_article_request};
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // Far enough ahead (whole seconds: 4 to 5 s) that the release job's
    // next look (within its 1 s poll) comes before the embargo ends, on a
    // busy machine too: the gauge must show both pending first.
    let at = time::OffsetDateTime::now_utc() + Duration::from_secs(5);
    let later = prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: 0,
    };
    for title in ["Soon one", "Soon two"] {
        let request = article_service::proto::PublishArticleRequest {
            published_at: Some(later),
            ..article(title, &["Metrics"])
        };
        publish(&mut client, request).await;
    }
    server
        .wait_for_metric("article_releases_pending", 2.0, Duration::from_secs(3))
        .await;
    server
        .wait_for_metric("article_releases_total", 2.0, WAIT)
        .await;
    server
        .wait_for_metric("article_releases_pending", 0.0, WAIT)
        .await;

    let public = publish(&mut client, article("Taken down", &["Metrics"]))
        .await
        .article
        .expect("article");
    for _ in 0..2 {
        // The second call changes nothing and counts nothing.
        client
            .withdraw_article(authorized(WithdrawArticleRequest {
                key: Some(withdraw_article_request::Key::Id(public.id.clone())),
                reason: "legal".into(),
            }))
            .await
            .expect("withdraw");
    }
    assert_eq!(server.metric("article_withdrawals_total").await, Some(1.0));
}

/// Every series `src/metrics.rs` names is in README.md's metrics table, so
/// operators find each one they see.
#[test]
fn the_readme_lists_every_series() {
    let root = env!("CARGO_MANIFEST_DIR");
    let source = std::fs::read_to_string(format!("{root}/src/metrics.rs")).expect("src/metrics.rs");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let mut names: Vec<&str> = source
        .lines()
        .filter_map(|line| line.strip_prefix("pub const "))
        .filter_map(|line| line.split('"').nth(1))
        .collect();
    names.push("article_service_build_info");
    assert!(names.len() > 20, "{names:?}");
    let missing: Vec<&str> = names
        .into_iter()
        .filter(|name| {
            !readme.contains(&format!("| `{name}`")) && !readme.contains(&format!("| `{name}{{"))
        })
        .collect();
    assert_eq!(missing, Vec::<&str>::new(), "series missing from README.md");
}
