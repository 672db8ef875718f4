//! End to end with grpcurl (1.8.6, which speaks only reflection v1alpha):
//! what an operator sees with `list`, `describe` and calls by JSON. And the
//! same reflection over v1, which newer clients use.

use crate::common::*;

use serde_json::{Value, json};

const SERVICE: &str = "newsroom.content.v1.ArticleService";

/// Calls `method` of the service with a JSON request; the JSON response.
fn call_json(server: &TestServer, options: &[&str], method: &str, request: &Value) -> Value {
    let data = request.to_string();
    let mut all = vec!["-emit-defaults", "-d", &data];
    all.extend_from_slice(options);
    let (ok, stdout, stderr) = grpcurl_call(server, &all, &[&format!("{SERVICE}/{method}")]);
    assert!(ok, "grpcurl {method}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

async fn sample_server() -> TestServer {
    TestServer::start_with(ServerOptions::new(&fresh_database_with_sample().await)).await
}

#[tokio::test]
async fn list_shows_the_service_and_health() {
    let server = TestServer::start().await;
    let (ok, stdout, stderr) = grpcurl_call(&server, &[], &["list"]);
    assert!(ok, "{stderr}");
    let services: Vec<&str> = stdout.lines().collect();
    assert!(services.contains(&SERVICE), "{stdout}");
    assert!(services.contains(&"grpc.health.v1.Health"), "{stdout}");

    let (ok, stdout, stderr) = grpcurl_call(&server, &[], &["list", SERVICE]);
    assert!(ok, "{stderr}");
    let mut methods: Vec<&str> = stdout.lines().collect();
    methods.sort_unstable();
    assert_eq!(
        methods,
        [
            "newsroom.content.v1.ArticleService.GetArticle",
            "newsroom.content.v1.ArticleService.ListArticlesByTag",
            "newsroom.content.v1.ArticleService.ListTags",
            "newsroom.content.v1.ArticleService.PublishArticle",
            "newsroom.content.v1.ArticleService.StreamArticleChanges",
            "newsroom.content.v1.ArticleService.StreamNewArticles",
            "newsroom.content.v1.ArticleService.WithdrawArticle",
        ]
    );
}

#[tokio::test]
async fn describe_shows_the_seven_rpcs() {
    let server = TestServer::start().await;
    let (ok, stdout, stderr) = grpcurl_call(&server, &[], &["describe", SERVICE]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("newsroom.content.v1.ArticleService is a service:"),
        "{stdout}"
    );
    // grpcurl lists them by name.
    let rpcs: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("rpc "))
        .collect();
    let m = ".newsroom.content.v1.";
    assert_eq!(
        rpcs,
        [
            format!("rpc GetArticle ( {m}GetArticleRequest ) returns ( {m}GetArticleResponse );"),
            format!(
                "rpc ListArticlesByTag ( {m}ListArticlesByTagRequest ) returns ( {m}ListArticlesByTagResponse );"
            ),
            format!("rpc ListTags ( {m}ListTagsRequest ) returns ( {m}ListTagsResponse );"),
            format!(
                "rpc PublishArticle ( {m}PublishArticleRequest ) returns ( {m}PublishArticleResponse );"
            ),
            format!(
                "rpc StreamArticleChanges ( {m}StreamArticleChangesRequest ) returns ( stream {m}StreamArticleChangesResponse );"
            ),
            format!(
                "rpc StreamNewArticles ( {m}StreamNewArticlesRequest ) returns ( stream {m}StreamNewArticlesResponse );"
            ),
            format!(
                "rpc WithdrawArticle ( {m}WithdrawArticleRequest ) returns ( {m}WithdrawArticleResponse );"
            ),
        ]
    );

    // Messages resolve too, with the contract's fields.
    let (ok, article, stderr) =
        grpcurl_call(&server, &[], &["describe", "newsroom.content.v1.Article"]);
    assert!(ok, "{stderr}");
    for field in [
        "string id = 1;",
        "string slug = 2;",
        "string title = 3;",
        "string summary = 4;",
        "string body = 5;",
        "string byline = 6;",
        "repeated .newsroom.content.v1.Tag tags = 7;",
        ".google.protobuf.Timestamp published_at = 8;",
        ".google.protobuf.Timestamp updated_at = 9;",
        "int64 revision = 10;",
    ] {
        assert!(article.contains(field), "{field} in {article}");
    }
}

#[tokio::test]
async fn health_check_is_serving() {
    let server = TestServer::start().await;
    let check = "grpc.health.v1.Health/Check";
    let named = format!(r#"{{"service":"{SERVICE}"}}"#);
    for options in [&[][..], &["-d", named.as_str()][..]] {
        let (ok, stdout, stderr) = grpcurl_call(&server, options, &[check]);
        assert!(ok, "{stderr}");
        let response: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(response, json!({"status": "SERVING"}));
    }
}

#[tokio::test]
async fn get_article_shows_the_imported_sample() {
    let server = sample_server().await;
    let response = call_json(&server, &[], "GetArticle", &json!({"slug": SAMPLE_SLUG}));
    let article = &response["article"];
    assert_eq!(article["slug"], SAMPLE_SLUG);
    assert_eq!(
        article["title"],
        "US and Russian Leaders Unite to Combat Terrorism"
    );
    assert_eq!(article["byline"], "7Dnews London");
    assert_eq!(article["publishedAt"], "2019-12-31T10:30:00Z");
    assert_eq!(article["revision"], "1");
    assert_eq!(
        article["tags"],
        json!([
            {"slug": "us-canada", "name": "US & Canada"},
            {"slug": "russia", "name": "Russia"}
        ])
    );
    let body = article["body"].as_str().unwrap();
    assert_eq!(body.split("\n\n").count(), 6);
    assert!(body.starts_with("President Putin has discussed"));
    let id = article["id"].as_str().unwrap();
    assert!(uuid::Uuid::try_parse(id).is_ok());

    // The same article by its id, and as the only one of its tag.
    let by_id = call_json(
        &server,
        &[],
        "GetArticle",
        &json!({"id": id.to_uppercase()}),
    );
    assert_eq!(&by_id["article"], article);
    let page = call_json(
        &server,
        &[],
        "ListArticlesByTag",
        &json!({"tag": "US & Canada"}),
    );
    assert_eq!(page["articles"], json!([article]));
    assert_eq!(page["nextPageToken"], "");
    let tags = call_json(&server, &[], "ListTags", &json!({}));
    assert_eq!(
        tags["tags"],
        json!([
            {"tag": {"slug": "russia", "name": "Russia"}, "articleCount": "1"},
            {"tag": {"slug": "us-canada", "name": "US & Canada"}, "articleCount": "1"}
        ])
    );
}

#[tokio::test]
async fn invalid_argument_shows_the_bad_request_detail() {
    let server = TestServer::start().await;
    let (ok, stdout, stderr) = grpcurl_call(
        &server,
        &["-d", r#"{"id":"not-a-uuid"}"#],
        &[&format!("{SERVICE}/GetArticle")],
    );
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("Code: InvalidArgument"), "{stderr}");
    let detail = stderr
        .lines()
        .find_map(|line| line.trim().strip_prefix("1)"))
        .unwrap_or_else(|| panic!("no detail in {stderr}"));
    let detail: Value = serde_json::from_str(detail.trim()).unwrap();
    assert_eq!(detail["@type"], "type.googleapis.com/google.rpc.BadRequest");
    assert_eq!(detail["fieldViolations"][0]["field"], "id");
    assert_eq!(detail["fieldViolations"].as_array().unwrap().len(), 1);

    let (ok, _, stderr) = grpcurl_call(
        &server,
        &["-d", r#"{"tag":"!!!","pageSize":-1}"#],
        &[&format!("{SERVICE}/ListArticlesByTag")],
    );
    assert!(!ok);
    assert!(stderr.contains("Code: InvalidArgument"), "{stderr}");
    assert!(stderr.contains("google.rpc.BadRequest"), "{stderr}");
    assert!(stderr.contains(r#""field":"tag""#), "{stderr}");
}

#[tokio::test]
async fn publish_with_grpcurl_needs_the_token() {
    let server = TestServer::start().await;
    let request = json!({
        "title": "Hello from grpcurl",
        "body": "First paragraph.\n\nSecond one.",
        "byline": "Dev Desk",
        "tags": ["US & Canada"],
        "publishedAt": "2024-02-29T12:00:00Z"
    });
    let method = format!("{SERVICE}/PublishArticle");
    let (ok, _, stderr) = grpcurl_call(&server, &["-d", &request.to_string()], &[&method]);
    assert!(!ok);
    assert!(stderr.contains("Code: Unauthenticated"), "{stderr}");

    let header = format!("authorization: Bearer {PUBLISH_TOKEN}");
    let response = call_json(&server, &["-H", &header], "PublishArticle", &request);
    assert_eq!(response["created"], true);
    assert_eq!(response["article"]["slug"], "2024-02-29-hello-from-grpcurl");
    assert_eq!(response["article"]["publishedAt"], "2024-02-29T12:00:00Z");
    assert_eq!(response["article"]["summary"], "");
    let again = call_json(&server, &["-H", &header], "PublishArticle", &request);
    assert_eq!(again["created"], false);
    assert_eq!(again["article"], response["article"]);
}

#[tokio::test]
async fn reflection_v1_serves_the_same_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::start().await;
    let channel = tonic::transport::Channel::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol(SERVICE.into()),
    ]
    .map(|message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    });
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("a list of services");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&SERVICE.to_owned()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("the service's file");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}
