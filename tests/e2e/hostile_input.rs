//! End to end: requests crafted to break the service, against the real binary
//! and a fresh database. Garbage bytes as request bodies (below the generated
//! client, over raw HTTP/2), messages over the size limit, huge and malformed
//! tokens, thousands of stream tags, SQL and LIKE metacharacters and control
//! characters in every string field, and publish tokens in the logs. Each
//! time: a typed error or an exact result, the process still serving, and the
//! tables holding exactly what was stored.

use crate::common::*;

use std::collections::BTreeMap;

use article_service::domain::slug::slugify;
use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::{
    ListArticlesByTagRequest, ListTagsRequest, PublishArticleRequest, StreamNewArticlesRequest,
};
use http_body_util::{BodyExt, Full};
use tonic::codegen::Bytes;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tower::Service;

const SERVICE: &str = "/newsroom.content.v1.ArticleService/";
const METHODS: [&str; 5] = [
    "GetArticle",
    "ListArticlesByTag",
    "StreamNewArticles",
    "PublishArticle",
    "ListTags",
];
/// Every call here is answered at once; anything slower is a hang.
/// The default largest request message (MAX_MESSAGE_BYTES, tonic's default).
const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

// ------------------------------------------------------------------ helpers

/// A gRPC length-prefixed message: compression flag, 4-byte big-endian
/// length, then the bytes.
fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut framed = vec![flag];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// A protobuf length-delimited field (field numbers below 16).
fn bytes_field(number: u8, value: &[u8]) -> Vec<u8> {
    assert!(number < 16 && value.len() < 128);
    let mut field = vec![(number << 3) | 2, u8::try_from(value.len()).unwrap()];
    field.extend_from_slice(value);
    field
}

/// Calls `method` with `body` as the raw HTTP/2 request body (no client
/// encoding in between) and returns the gRPC status the server ended the
/// call with, from the headers (trailers-only) or from the trailers.
async fn raw_call(
    server: &TestServer,
    method: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Status {
    let mut channel = Channel::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("{}{SERVICE}{method}", server.endpoint()))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(tonic::body::Body::new(Full::new(Bytes::from(body))))
        .unwrap();
    let call = async {
        futures::future::poll_fn(|cx| channel.poll_ready(cx))
            .await
            .expect("channel ready");
        let response = channel.call(request).await.expect("an HTTP/2 response");
        assert_eq!(response.status(), http::StatusCode::OK, "{method}");
        if let Some(status) = Status::from_header_map(response.headers()) {
            return status;
        }
        let collected = response.into_body().collect().await.expect("the body");
        let trailers = collected.trailers().cloned().unwrap_or_default();
        Status::from_header_map(&trailers).expect("a grpc-status trailer")
    };
    tokio::time::timeout(WAIT, call)
        .await
        .unwrap_or_else(|_| panic!("{method}: no answer within {WAIT:?}"))
}

/// Extra request headers of a raw call.
type Headers<'a> = Vec<(&'a str, &'a str)>;

/// `authorization` metadata with the right publish token.
fn bearer() -> String {
    format!("Bearer {PUBLISH_TOKEN}")
}

/// Rows of the tables requests write to: (articles, tags, article_tags).
async fn row_counts(database_url: &str) -> (i64, i64, i64) {
    let pool = pool(database_url).await;
    let counts = sqlx::query_as(
        "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM tags), \
         (SELECT count(*) FROM article_tags)",
    )
    .fetch_one(&pool)
    .await
    .expect("count rows");
    pool.close().await;
    counts
}

/// The process still answers health and a real read.
async fn assert_still_serving(server: &TestServer) {
    assert_eq!(server.health().await, SERVING, "health after hostile input");
    let mut client = server.client().await;
    client
        .list_tags(ListTagsRequest::default())
        .await
        .expect("ListTags after hostile input");
}

/// Three articles the hostile requests must neither see wrongly nor change.
async fn publish_fixture(client: &mut ArticleServiceClient<Channel>) {
    for (title, tags) in [
        ("Moscow talks", &["Russia"][..]),
        ("Ottawa and Moscow", &["US & Canada", "Russia"][..]),
        ("Deals", &["100% Real_Deal"][..]),
    ] {
        assert!(publish(client, article(title, tags)).await.created);
    }
}

const FIXTURE_ROWS: (i64, i64, i64) = (3, 3, 4);

// ------------------------------------------------------------ raw garbage

#[tokio::test(flavor = "multi_thread")]
async fn garbage_bodies_get_a_typed_error_on_every_method() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish_fixture(&mut client).await;

    let valid_message = bytes_field(2, b"a-slug");
    let cases: Vec<(&str, Headers, Vec<u8>, Code)> = vec![
        ("no message at all", vec![], Vec::new(), Code::Internal),
        ("a cut frame header", vec![], vec![0, 0, 0], Code::Internal),
        (
            "a frame shorter than its length",
            vec![],
            vec![0, 0, 0, 0, 100, 1, 2, 3],
            Code::Internal,
        ),
        (
            "the compressed flag without grpc-encoding",
            vec![],
            frame(1, &valid_message),
            Code::Internal,
        ),
        (
            "an invalid compression flag",
            vec![],
            frame(7, &valid_message),
            Code::Internal,
        ),
        (
            "an HTTP/1 request as the body",
            vec![],
            b"POST / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Code::Internal,
        ),
        (
            // gzip is taken (the contract's amendment); this is not gzip.
            "gzip that does not decompress",
            vec![("grpc-encoding", "gzip")],
            frame(1, &[0x1f, 0x8b, 0, 0]),
            Code::Internal,
        ),
        (
            "an unknown compression",
            vec![("grpc-encoding", "x-nonsense")],
            frame(1, &valid_message),
            Code::Unimplemented,
        ),
        (
            "a varint that never ends",
            vec![],
            frame(0, &[0xff; 11]),
            Code::Internal,
        ),
        (
            "a field longer than the message",
            vec![],
            frame(0, &[0x0a, 0x7f, b'a']),
            Code::Internal,
        ),
        (
            "wire type 7",
            vec![],
            frame(0, &[0x0f, 0x00]),
            Code::Internal,
        ),
        (
            "field number 0",
            vec![],
            frame(0, &[0x02, 0x00]),
            Code::Internal,
        ),
        (
            "field 1 (a string, or ListTags' int32) as a fixed64",
            vec![],
            frame(0, &[0x09, 1, 2, 3, 4, 5, 6, 7, 8]),
            Code::Internal,
        ),
        (
            "a length over 2^63",
            vec![],
            frame(
                0,
                &[
                    0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
            ),
            Code::Internal,
        ),
    ];
    let authorization = bearer();
    for method in METHODS {
        for (what, headers, body, expected) in &cases {
            // Authorized, so that PublishArticle's refusal is about the bytes.
            let mut headers = headers.clone();
            headers.push(("authorization", &authorization));
            let status = raw_call(&server, method, &headers, body.clone()).await;
            assert_eq!(status.code(), *expected, "{method}, {what}: {status:?}");
        }
    }
    assert_still_serving(&server).await;
    assert_eq!(row_counts(&server.database_url).await, FIXTURE_ROWS);
}

/// Invalid UTF-8 cannot be written in a proto string by a conforming client,
/// but the wire carries any bytes: an invalid sequence, a lone byte, and a
/// lone surrogate (U+D800 encoded as if it were a character).
#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_in_any_string_field_is_refused_when_decoded() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish_fixture(&mut client).await;

    let string_fields: [(&str, &[u8]); 5] = [
        ("GetArticle", &[1, 2]),
        ("ListArticlesByTag", &[1, 3]),
        ("StreamNewArticles", &[1, 2]),
        ("PublishArticle", &[1, 2, 3, 4, 5, 6]),
        ("ListTags", &[2]),
    ];
    let invalid: [&[u8]; 3] = [b"Russia\xc3\x28", b"\xff", b"\xed\xa0\x80"];
    let authorization = bearer();
    for (method, fields) in string_fields {
        for &field in fields {
            for bytes in invalid {
                let body = frame(0, &bytes_field(field, bytes));
                let status =
                    raw_call(&server, method, &[("authorization", &authorization)], body).await;
                assert_eq!(
                    status.code(),
                    Code::Internal,
                    "{method} field {field} = {bytes:?}: {status:?}"
                );
            }
        }
    }
    assert_still_serving(&server).await;
    assert_eq!(row_counts(&server.database_url).await, FIXTURE_ROWS);
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_over_the_default_size_limit_are_resource_exhausted_on_every_method() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish_fixture(&mut client).await;

    // A whole message one byte over the limit (its bytes all sent), and a
    // frame that only claims 4 GiB: refused from the length prefix alone,
    // without waiting for (or allocating) what it announces.
    let over = frame(0, &vec![0; DEFAULT_MAX_MESSAGE_BYTES + 1]);
    let mut claims_4_gib = vec![0, 0xff, 0xff, 0xff, 0xff];
    claims_4_gib.extend_from_slice(&bytes_field(1, b"x"));
    let authorization = bearer();
    for method in METHODS {
        for (what, body) in [("over", over.clone()), ("4 GiB", claims_4_gib.clone())] {
            let status =
                raw_call(&server, method, &[("authorization", &authorization)], body).await;
            assert_eq!(
                status.code(),
                Code::ResourceExhausted,
                "{method}, {what}: {status:?}"
            );
        }
    }
    assert_still_serving(&server).await;
    assert_eq!(row_counts(&server.database_url).await, FIXTURE_ROWS);
}

// ------------------------------------------------------- tokens and tags

#[tokio::test(flavor = "multi_thread")]
async fn huge_and_malformed_tokens_are_invalid_argument() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish_fixture(&mut client).await;

    let megabyte_of_base64 = "A".repeat(1024 * 1024);
    let megabyte_of_anything = "é%\u{0}".repeat(1024 * 1024 / 4);
    let tokens = [
        megabyte_of_base64.as_str(),
        megabyte_of_anything.as_str(),
        "\0",
        "\u{1}\u{2}\u{3}",
        "\u{202e}AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAA\u{200f}",
        "' OR '1'='1",
        "'; DROP TABLE token_keys; --",
        "%",
        "_",
        "\\",
        "AAAA====",
        "AAAA AAAA",
        "AAAA\nAAAA",
    ];
    for token in tokens {
        let shown = format!("{:.40?}", token);
        let status = client
            .list_articles_by_tag(ListArticlesByTagRequest {
                tag: "russia".into(),
                page_size: 1,
                page_token: token.to_owned(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{shown}: {status:?}");
        assert_eq!(bad_request_fields(&status), ["page_token"], "{shown}");

        let status = client
            .list_tags(ListTagsRequest {
                page_size: 1,
                page_token: token.to_owned(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{shown}: {status:?}");
        assert_eq!(bad_request_fields(&status), ["page_token"], "{shown}");

        let status = open_stream(&mut client, &[], token).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{shown}: {status:?}");
        assert_eq!(bad_request_fields(&status), ["resume_token"], "{shown}");
    }
    assert_still_serving(&server).await;
    assert_eq!(row_counts(&server.database_url).await, FIXTURE_ROWS);
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_stream_tags_are_invalid_argument() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let distinct: Vec<String> = (0..10_000).map(|i| format!("tag {i}")).collect();
    let same: Vec<String> = vec!["Russia".to_owned(); 101];
    // 3 MB: under the message size limit, so the tag limit is what refuses it.
    let long: Vec<String> = vec!["x".repeat(10_000); 300];
    for (what, tags) in [
        ("1,000 distinct", &distinct[..1_000]),
        ("10,000 distinct", &distinct[..]),
        ("101 copies of one tag", &same[..]),
        ("300 tags of 10,000 characters", &long[..]),
    ] {
        let status = client
            .stream_new_articles(StreamNewArticlesRequest {
                tags: tags.to_vec(),
                resume_token: String::new(),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_eq!(bad_request_fields(&status), ["tags"], "{what}");
    }
    assert_still_serving(&server).await;
}

// --------------------------------------- metacharacters and control characters

/// Values with a special meaning to SQL, to LIKE patterns, to shells and
/// terminals, or to text layout.
const NASTY: [&str; 26] = [
    "'; DROP TABLE articles; --",
    "\"; DROP TABLE tags; --",
    "Robert'); DELETE FROM article_tags; --",
    "' OR '1'='1",
    "%",
    "_",
    "%_%",
    "\\",
    "\\%",
    "'",
    "''",
    "\"",
    "`$(reboot)`",
    "/* */ --",
    "\u{1}",
    "\u{7f}",
    "\u{1b}[31m",
    "\u{200f}",
    "\u{202e}Russia",
    "\u{feff}",
    "\t\r\n",
    "r%",
    "russi_",
    "Russia%",
    "%russia%",
    "Ottawa\u{0}Moscow",
];

#[tokio::test(flavor = "multi_thread")]
async fn metacharacters_in_read_requests_match_exactly_or_are_refused() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish_fixture(&mut client).await;
    // Tag slug -> titles of the fixture's articles with it.
    let fixture: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("russia", vec!["Moscow talks", "Ottawa and Moscow"]),
        ("us-canada", vec!["Ottawa and Moscow"]),
        ("100-real-deal", vec!["Deals"]),
    ]);

    for value in NASTY {
        let status = get_by_id(&mut client, value).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "id {value:?}");
        assert_eq!(bad_request_fields(&status), ["id"]);
        let status = get_by_slug(&mut client, value).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "slug {value:?}: {status:?}");

        // A tag argument is reduced to its slug and matched exactly: `r%` is
        // the tag "r", which no article has, never a pattern.
        let slug = slugify(value);
        let listed = client
            .list_articles_by_tag(ListArticlesByTagRequest {
                tag: value.to_owned(),
                page_size: 100,
                page_token: String::new(),
                ..Default::default()
            })
            .await;
        let streamed = open_stream(&mut client, &[value], "").await.map(|_| ());
        if slug.is_empty() {
            let status = listed.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "tag {value:?}");
            assert_eq!(bad_request_fields(&status), ["tag"]);
            let status = streamed.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "tags {value:?}");
            assert_eq!(bad_request_fields(&status), ["tags"]);
        } else {
            let page = listed.expect("ListArticlesByTag").into_inner();
            let mut titles: Vec<String> = page.articles.into_iter().map(|a| a.title).collect();
            titles.sort();
            let expected = fixture.get(slug.as_str()).cloned().unwrap_or_default();
            assert_eq!(titles, expected, "tag {value:?} (slug {slug:?})");
            streamed.unwrap_or_else(|status| panic!("tags {value:?}: {status:?}"));
        }
    }
    // ListTags and page tokens are covered by
    // huge_and_malformed_tokens_are_invalid_argument.

    // A stream filtering on `russi%` and `_ussia` (the tags "russi" and
    // "ussia") skips a Russia article and delivers a Russi one.
    let mut reader = FeedReader::open(&mut client, &["russi%", "_ussia"], "").await;
    publish_new(&mut client, "Not for the filter", &["Russia"]).await;
    let wanted = publish_new(&mut client, "For the filter", &["Russi"]).await;
    reader.read_articles(1, WAIT).await.expect("the stream");
    assert_eq!(reader.ids(), [wanted.id]);

    assert_still_serving(&server).await;
    assert_eq!(row_counts(&server.database_url).await, (5, 4, 6));
}

#[tokio::test(flavor = "multi_thread")]
async fn metacharacters_in_every_publish_field_are_stored_exactly_or_refused() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish_fixture(&mut client).await;
    // Article slug -> its tag slugs, as stored so far.
    let mut stored: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut tag_slugs: Vec<String> = ["russia", "us-canada", "100-real-deal"]
        .map(str::to_owned)
        .to_vec();

    for (index, value) in NASTY.iter().copied().enumerate() {
        for field in ["slug", "title", "summary", "body", "byline", "tags"] {
            let slug = format!("nasty-{field}-{index}");
            let mut request = PublishArticleRequest {
                slug: slug.clone(),
                ..article("Hostile", &["Hostile"])
            };
            let has_nul = value.contains('\0');
            let accepted = match field {
                "slug" => {
                    request.slug = value.to_owned();
                    false
                }
                "title" => {
                    request.title = value.to_owned();
                    !has_nul && !value.trim().is_empty()
                }
                "summary" => {
                    request.summary = value.to_owned();
                    !has_nul
                }
                "body" => {
                    request.body = value.to_owned();
                    !has_nul && !value.trim().is_empty()
                }
                "byline" => {
                    request.byline = value.to_owned();
                    !has_nul
                }
                _ => {
                    request.tags = vec![value.to_owned()];
                    !has_nul && !slugify(value).is_empty()
                }
            };
            let result = client.publish_article(authorized(request.clone())).await;
            if !accepted {
                let status = result.unwrap_err();
                assert_eq!(status.code(), Code::InvalidArgument, "{field} {value:?}");
                let mut fields = bad_request_fields(&status);
                fields.dedup();
                assert_eq!(fields, [field], "{field} {value:?}");
                continue;
            }
            let response = result
                .unwrap_or_else(|status| panic!("{field} {value:?}: {status:?}"))
                .into_inner();
            assert!(response.created, "{field} {value:?}");
            let back = get_by_slug(&mut client, &slug).await.expect("stored");
            assert_eq!(
                (&back.title, &back.summary, &back.body, &back.byline),
                (
                    &request.title,
                    &request.summary,
                    &request.body,
                    &request.byline
                ),
                "{field} {value:?}"
            );
            let tags: Vec<String> = back.tags.iter().map(|tag| tag.slug.clone()).collect();
            let expected_tags = vec![slugify(request.tags.first().unwrap())];
            assert_eq!(tags, expected_tags, "{field} {value:?}");
            for tag in &tags {
                if !tag_slugs.contains(tag) {
                    tag_slugs.push(tag.clone());
                }
            }
            stored.insert(slug, tags);
        }
    }

    // Every table holds exactly the fixture and what was accepted.
    let article_tags: usize = stored.values().map(Vec::len).sum();
    let expected = (
        i64::try_from(3 + stored.len()).unwrap(),
        i64::try_from(tag_slugs.len()).unwrap(),
        i64::try_from(4 + article_tags).unwrap(),
    );
    assert_eq!(row_counts(&server.database_url).await, expected);
    let mut listed: Vec<String> = list_all_tags(&mut client, 100)
        .await
        .into_iter()
        .map(|summary| summary.tag.expect("a tag").slug)
        .collect();
    listed.sort();
    tag_slugs.sort();
    assert_eq!(listed, tag_slugs);
    assert_still_serving(&server).await;
}

// ------------------------------------------------------- publish tokens

/// Logs at every level, trace included: neither the right publish token nor
/// any wrong one appears in any line. (tests/logs.rs checks the default
/// level and the call lines; api_publish checks every near miss is refused.)
#[tokio::test(flavor = "multi_thread")]
async fn no_publish_token_reaches_the_logs_at_any_level() {
    let options = ServerOptions::new(&fresh_database().await).env("RUST_LOG", "trace");
    let server = TestServer::start_with(options).await;
    let mut client = server.client().await;

    let wrong = "wrong-7f3e9a1c-token";
    let near_misses = [
        format!("Bearer {}", &PUBLISH_TOKEN[..PUBLISH_TOKEN.len() - 1]),
        format!("Bearer {PUBLISH_TOKEN}0"),
        format!("Bearer {}", PUBLISH_TOKEN.to_uppercase()),
        format!("bearer  {wrong}"),
        PUBLISH_TOKEN.to_owned(),
    ];
    for (index, value) in near_misses.iter().enumerate() {
        let mut request = tonic::Request::new(article(&format!("Refused {index}"), &["Auth"]));
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
        let status = client.publish_article(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{value:?}");
        assert!(!status.message().contains(PUBLISH_TOKEN) && !status.message().contains(wrong));
    }
    // The right token, in the raw path too (a request refused for its bytes).
    assert!(
        publish(&mut client, article("Accepted", &["Auth"]))
            .await
            .created
    );
    let status = raw_call(
        &server,
        "PublishArticle",
        &[("authorization", &bearer())],
        frame(0, &[0xff; 11]),
    )
    .await;
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(row_counts(&server.database_url).await, (1, 1, 1));

    let upper = PUBLISH_TOKEN.to_uppercase();
    let logs = server.logs();
    assert!(
        logs.iter().any(|line| line.contains("TRACE")),
        "trace lines are captured"
    );
    for line in &logs {
        for secret in [PUBLISH_TOKEN, upper.as_str(), wrong] {
            assert!(!line.contains(secret), "a token in the logs: {line}");
        }
    }
}
