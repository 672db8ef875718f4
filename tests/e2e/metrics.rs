//! `/metrics` on METRICS_ADDR: Prometheus text with the service's series
//! after real traffic.

use std::time::{Duration, Instant};

use crate::common::*;
use article_service::proto::{
    GetArticleRequest, StreamNewArticlesRequest, get_article_request::Key,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn metrics_addr(server: &TestServer) -> String {
    server
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"] == "metrics listening")
        .and_then(|line| line["metrics_addr"].as_str().map(str::to_owned))
        .expect("the server logs its metrics address")
}

/// A plain HTTP/1.1 GET; returns the status line and the body.
async fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to metrics");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// The value of the series whose line starts with `series` (name and labels
/// exactly as rendered).
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

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
    let addr = metrics_addr(&server);
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
        value(body, "article_feed_open_streams") == Some(2.0)
    })
    .await;
    assert_eq!(
        value(
            &body,
            &format!("grpc_server_handled_total{{grpc_method=\"{get}\",grpc_code=\"OK\"}}")
        ),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        value(
            &body,
            &format!("grpc_server_handled_total{{grpc_method=\"{get}\",grpc_code=\"NOT_FOUND\"}}")
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &body,
            "grpc_server_handled_total{grpc_method=\"newsroom.content.v1.ArticleService/PublishArticle\",grpc_code=\"OK\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &body,
            &format!("grpc_server_handling_seconds_count{{grpc_method=\"{get}\"}}")
        ),
        Some(5.0)
    );
    assert!(body.contains(&format!(
        "grpc_server_handling_seconds_bucket{{grpc_method=\"{get}\",le=\"0.005\"}}"
    )));
    assert_eq!(
        value(
            &body,
            &format!(
                "article_service_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&body, "article_db_pool_max_connections{pool=\"primary\"}"),
        Some(16.0)
    );
    assert!(
        value(
            &body,
            "article_db_pool_connections{pool=\"primary\",state=\"idle\"}"
        )
        .is_some()
    );
    assert!(
        value(
            &body,
            "article_db_pool_connections{pool=\"primary\",state=\"in_use\"}"
        )
        .is_some()
    );
    // Every store operation took its connection through the measured
    // acquire (the health probe and the listener add theirs, so at least
    // the six calls'); nobody waits now and no wait timed out.
    assert!(
        value(
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
        value(&body, "article_db_pool_waiting{pool=\"primary\"}"),
        Some(0.0)
    );
    assert_eq!(
        value(
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
        value(body, "article_feed_open_streams") == Some(0.0)
    })
    .await;
    assert_eq!(
        value(
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
    let addr = metrics_addr(&server);
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
        value(body, "article_feed_delivered_position") == Some(2.0)
    })
    .await;
    assert_eq!(value(&body, "article_feed_head_position"), Some(2.0));
    assert_eq!(value(&body, "article_feed_lag_positions"), Some(0.0));
    assert_eq!(
        value(&body, "article_feed_listener_reconnects_total"),
        Some(0.0)
    );

    // Cut: every connection drops, the listener's too, and it keeps trying
    // until the database is back.
    proxy.cut();
    eventually("health NOT_SERVING", Duration::from_secs(10), || async {
        server.health().await == NOT_SERVING
    })
    .await;
    proxy.restore();
    server.wait_until_serving().await;
    scrape_until(&addr, "one reconnect", |body| {
        value(body, "article_feed_listener_reconnects_total") == Some(1.0)
    })
    .await;

    publish_new(&mut client, "Lag three", &["Metrics"]).await;
    let status = reader
        .read_resuming(&mut client, &[], 3, Duration::from_secs(15))
        .await;
    assert!(status.is_empty(), "the stream survived the cut: {status:?}");
    let body = scrape_until(&addr, "the third article delivered", |body| {
        value(body, "article_feed_delivered_position") == Some(3.0)
    })
    .await;
    assert_eq!(value(&body, "article_feed_head_position"), Some(3.0));
    assert_eq!(value(&body, "article_feed_lag_positions"), Some(0.0));
    assert_eq!(
        value(&body, "article_feed_listener_reconnects_total"),
        Some(1.0)
    );
}
