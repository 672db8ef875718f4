//! The operations kit against the real binary: every series that the alerting
//! rules and the Grafana dashboard in deploy/components/monitoring query is
//! one the service exports, and `article_serving` (the "no SERVING replica"
//! alert's series) follows health through a database outage.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::observe::metric_value;
use crate::common::proxy::{DbProxy, target_of};
use crate::common::*;
use article_service::proto::{
    GetArticleRequest, StreamNewArticlesRequest, get_article_request::Key,
};

const MONITORING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/components/monitoring");
const QUERIED_FILES: [&str; 2] = [
    "article-service.rules.yaml",
    "article-service-dashboard.json",
];

/// The service's series names in `text`: identifiers that start with one of
/// its prefixes (a query's metric, or a name a description mentions).
fn series_names_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("article_") || word.starts_with("grpc_server_"))
        .map(str::to_owned)
        .collect()
}

/// The names in a Prometheus text exposition: each family's (from its
/// `# TYPE` line) and each sample's (a histogram's `_bucket`, `_sum` and
/// `_count` series).
fn exported_names(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(family) => family.split(' ').next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        })
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Scrapes until `check` finds nothing wrong; fails the test with what it
/// found wrong last after `within`.
async fn scrape_until(
    server: &TestServer,
    within: Duration,
    check: impl Fn(&str) -> Result<(), String>,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let body = server.scrape().await;
        match check(&body) {
            Ok(()) => return body,
            Err(wrong) => assert!(
                Instant::now() < deadline,
                "after {within:?}: {wrong}\n{body}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn serving_is(value: f64) -> impl Fn(&str) -> Result<(), String> {
    move |body| match metric_value(body, "article_serving") {
        Some(v) if v == value => Ok(()),
        other => Err(format!("article_serving is {other:?}, not {value}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_the_alerts_and_the_dashboard_query_is_exported() {
    let mut queried = BTreeSet::new();
    for file in QUERIED_FILES {
        let path = format!("{MONITORING}/{file}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        queried.extend(series_names_in(&text));
    }
    // The extraction found what the alerts are about, so an empty or broken
    // scan cannot pass.
    for alerted in [
        "article_feed_lag_positions",
        "article_feed_listener_reconnects_total",
        "article_db_pool_acquire_timeouts_total",
        "grpc_server_handled_total",
        "article_serving",
        "grpc_server_handling_seconds_bucket",
        "article_cache_lookups_total",
    ] {
        assert!(
            queried.contains(alerted),
            "{alerted} not found in {queried:?}"
        );
    }

    let server = TestServer::start().await;
    let mut client = server.client().await;
    let created = publish(&mut client, article("Monitored", &["Monitoring"])).await;
    let slug = created.article.expect("article").slug;
    for _ in 0..2 {
        client
            .get_article(GetArticleRequest {
                key: Some(Key::Slug(slug.clone())),
                ..Default::default()
            })
            .await
            .expect("GetArticle");
    }
    let _stream = client
        .stream_new_articles(StreamNewArticlesRequest::default())
        .await
        .expect("StreamNewArticles")
        .into_inner();

    let body = scrape_until(&server, Duration::from_secs(30), |body| {
        let exported = exported_names(body);
        let missing: Vec<_> = queried.difference(&exported).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("queried but not exported: {missing:?}"))
        }
    })
    .await;
    // Set before health turns SERVING, which the harness waited for.
    assert_eq!(metric_value(&body, "article_serving"), Some(1.0), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn article_serving_is_0_while_the_database_is_unreachable_and_1_again_after() {
    let database = fresh_database().await;
    let proxy = DbProxy::start(target_of(&database)).await;
    let server = TestServer::start_with(ServerOptions::new(&proxy.url_for(&database))).await;
    scrape_until(&server, Duration::from_secs(30), serving_is(1.0)).await;

    proxy.cut();
    scrape_until(&server, Duration::from_secs(60), serving_is(0.0)).await;
    assert_ne!(
        server.health().await,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    proxy.restore();
    scrape_until(&server, Duration::from_secs(60), serving_is(1.0)).await;
    server.wait_until_serving().await;
}
