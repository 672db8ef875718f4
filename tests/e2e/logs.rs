//! JSON logs: one object per line, a line per call with its method, status
//! code, duration and request id, and no secret anywhere.

use std::time::{Duration, Instant};

use crate::common::*;
use article_service::proto::{
    GetArticleRequest, ListTagsRequest, StreamNewArticlesRequest, get_article_request::Key,
};
use serde_json::Value;

/// The call lines of `method` logged so far.
fn call_lines(server: &TestServer, method: &str) -> Vec<Value> {
    server
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["rpc.method"] == format!("/newsroom.content.v1.ArticleService/{method}")
        })
        .collect()
}

async fn wait_for_call_lines(server: &TestServer, method: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = call_lines(server, method);
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_line_is_json_and_every_call_is_logged() {
    let server = TestServer::start().await;
    let mut client = server.client().await;

    let mut request = tonic::Request::new(GetArticleRequest {
        key: Some(Key::Slug("no-such-article".into())),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-request-id", "req-42".parse().unwrap());
    let response = client.get_article(request).await.expect_err("unknown slug");
    assert_eq!(response.code(), tonic::Code::NotFound);
    assert_eq!(
        response
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-42")
    );

    client
        .list_tags(ListTagsRequest::default())
        .await
        .expect("ListTags");
    publish(&mut client, article("Logged article", &["Logs"])).await;
    let denied = client
        .publish_article(with_token(article("Denied", &[]), "wrong-token-value"))
        .await
        .expect_err("wrong token");
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    // A stream the client abandons.
    let stream = client
        .stream_new_articles(StreamNewArticlesRequest::default())
        .await
        .expect("stream");
    drop(stream);

    let get = wait_for_call_lines(&server, "GetArticle", 1).await;
    assert_eq!(get.len(), 1, "{get:?}");
    assert_eq!(get[0]["grpc.code"], 5);
    assert_eq!(get[0]["grpc.status"], "NotFound");
    assert_eq!(get[0]["request_id"], "req-42");
    assert_eq!(get[0]["level"], "INFO");
    assert!(
        get[0]["duration_ms"]
            .as_f64()
            .is_some_and(|ms| (0.0..5_000.0).contains(&ms))
    );
    assert!(
        get[0]["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(get[0]["message"].is_string());

    let tags = wait_for_call_lines(&server, "ListTags", 1).await;
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0]["grpc.code"], 0);
    assert_eq!(
        tags[0]["request_id"].as_str().map(str::len),
        Some(32),
        "a generated id"
    );

    let publishes = wait_for_call_lines(&server, "PublishArticle", 2).await;
    let codes: Vec<&Value> = publishes.iter().map(|line| &line["grpc.code"]).collect();
    assert_eq!(codes, [&Value::from(0), &Value::from(16)]);
    assert_eq!(publishes[1]["level"], "WARN");

    let streams = wait_for_call_lines(&server, "StreamNewArticles", 1).await;
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0]["grpc.status"], "Cancelled");

    let logs = server.logs();
    for line in &logs {
        let parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        for field in ["timestamp", "level", "message"] {
            assert!(parsed.get(field).is_some(), "{field} missing: {line}");
        }
        assert!(
            !line.contains(PUBLISH_TOKEN),
            "the publish token leaked: {line}"
        );
        assert!(
            !line.contains("wrong-token-value"),
            "a token leaked: {line}"
        );
    }
}

#[tokio::test]
async fn the_database_password_never_reaches_the_logs() {
    // A password on a server nobody listens on: connection errors are logged.
    let url = "postgres://article:Pa55-w0rd-XYZ@127.0.0.1:1/articles";
    let server = TestServer::start_unready(ServerOptions::new(url)).await;
    let mut client = server.client().await;
    let status = client
        .get_article(GetArticleRequest {
            key: Some(Key::Slug("anything".into())),
            ..Default::default()
        })
        .await
        .expect_err("no database");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(!status.message().contains("Pa55"));
    // The health line.
    server.wait_for_log("not serving", WAIT).await;
    for line in server.logs() {
        assert!(
            !line.contains("Pa55-w0rd-XYZ"),
            "the password leaked: {line}"
        );
    }
}

/// A call the client gives up on while its handler still waits (here on a
/// table an administrator locked) is logged, and counted, as CANCELLED.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_abandoned_before_its_answer_is_logged_as_cancelled() {
    let server = TestServer::start_with(
        ServerOptions::new(&fresh_database().await).env("CACHE_MAX_BYTES", "0"),
    )
    .await;
    let mut client = server.client().await;
    let pool = pool(&server.database_url).await;
    let mut lock = pool.begin().await.expect("a transaction");
    sqlx::query("LOCK TABLE articles IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock");

    let mut request = tonic::Request::new(GetArticleRequest {
        key: Some(Key::Slug("waits-on-the-lock".into())),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-request-id", "abandoned-1".parse().unwrap());
    let abandoned =
        tokio::time::timeout(Duration::from_millis(500), client.get_article(request)).await;
    assert!(
        abandoned.is_err(),
        "answered despite the lock: {abandoned:?}"
    );

    let lines = wait_for_call_lines(&server, "GetArticle", 1).await;
    lock.rollback().await.expect("unlock");
    pool.close().await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["request_id"], "abandoned-1");
    assert_eq!(lines[0]["grpc.status"], "Cancelled");
    assert_eq!(
        server
            .metric(
                "grpc_server_handled_total{grpc_method=\"newsroom.content.v1.ArticleService/GetArticle\",grpc_code=\"CANCELLED\"}"
            )
            .await,
        Some(1.0)
    );
}
