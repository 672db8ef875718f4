//! Requests at the edge of what a client may send: an expired deadline, a
//! compressed message, huge stream tag filters, titles that derive no slug.

use std::io::Read;
use std::time::Duration;

use super::{GET_ARTICLE, raw};
use crate::common::*;
use article_service::proto::{
    GetArticleRequest, GetArticleResponse, StreamArticleChangesRequest, StreamNewArticlesRequest,
    get_article_request::Key,
};
use prost::Message;
use tonic::Code;

fn get_by_slug_message(slug: &str) -> Vec<u8> {
    GetArticleRequest {
        key: Some(Key::Slug(slug.to_owned())),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Row "Deadline of 1 ns on a cache miss": DEADLINE_EXCEEDED, the caller's
/// own doing, not UNAVAILABLE (which would blame a healthy database).
#[tokio::test]
async fn an_expired_caller_deadline_is_deadline_exceeded_on_a_cache_miss() {
    let server = TestServer::start().await;
    let mut h2 = raw::connect(server.addr).await;
    // No such article: every read is a miss that asks the database.
    let message = raw::frame(false, &get_by_slug_message("no-such-article"));
    for timeout in ["1n", "1u", "1m"] {
        let request = raw::request(server.addr, GET_ARTICLE, &[("grpc-timeout", timeout)]);
        let answer = raw::call(&mut h2, request, message.clone()).await;
        assert_eq!(
            answer.code(),
            Code::DeadlineExceeded as i32,
            "{timeout}: {answer:?}"
        );
    }
    let request = raw::request(server.addr, GET_ARTICLE, &[("grpc-timeout", "5S")]);
    let answer = raw::call(&mut h2, request, message).await;
    assert_eq!(answer.code(), Code::NotFound as i32, "{answer:?}");
}

/// Row "gzip-compressed request": accepted, the size limit applies to the
/// message once decompressed, and responses are compressed only when the
/// operator turns it on and the client accepts gzip.
#[tokio::test]
async fn gzip_requests_are_accepted_and_limited_once_decompressed() {
    let database = fresh_database().await;
    let server =
        TestServer::start_with(ServerOptions::new(&database).env("MAX_MESSAGE_BYTES", "65536"))
            .await;
    let mut client = server.client().await;
    let stored = publish(&mut client, article("Compressed", &["Gzip"]))
        .await
        .article
        .expect("the article");
    let gzip_headers = [("grpc-encoding", "gzip"), ("grpc-accept-encoding", "gzip")];

    let mut h2 = raw::connect(server.addr).await;
    let compressed = raw::gzip(&get_by_slug_message(&stored.slug));
    let request = raw::request(server.addr, GET_ARTICLE, &gzip_headers);
    let answer = raw::call(&mut h2, request, raw::frame(true, &compressed)).await;
    assert_eq!(answer.code(), 0, "{answer:?}");
    // Not configured: the answer is not compressed.
    assert_eq!(answer.headers.get("grpc-encoding"), None);
    assert_eq!(answer.data[0], 0);
    let response = GetArticleResponse::decode(&answer.data[5..]).expect("a response");
    assert_eq!(response.article.expect("the article"), stored);

    // 100,000 bytes once decompressed (a few hundred on the wire), over
    // the 65,536 allowed.
    let bomb = raw::gzip(&get_by_slug_message(&"a".repeat(100_000)));
    assert!(bomb.len() < 1_000, "{}", bomb.len());
    let request = raw::request(server.addr, GET_ARTICLE, &gzip_headers);
    let answer = raw::call(&mut h2, request, raw::frame(true, &bomb)).await;
    assert_eq!(answer.code(), Code::ResourceExhausted as i32, "{answer:?}");

    // Configured: compressed for a client that accepts gzip, not for others.
    let compressing =
        TestServer::start_with(ServerOptions::new(&database).env("RESPONSE_COMPRESSION", "gzip"))
            .await;
    let mut h2 = raw::connect(compressing.addr).await;
    let request = raw::request(compressing.addr, GET_ARTICLE, &gzip_headers);
    let answer = raw::call(&mut h2, request, raw::frame(true, &compressed)).await;
    assert_eq!(answer.code(), 0, "{answer:?}");
    assert_eq!(answer.headers["grpc-encoding"], "gzip");
    assert_eq!(answer.data[0], 1, "the compressed flag");
    let mut decompressed = Vec::new();
    flate2::read::GzDecoder::new(&answer.data[5..])
        .read_to_end(&mut decompressed)
        .expect("gzip");
    let response = GetArticleResponse::decode(decompressed.as_slice()).expect("a response");
    assert_eq!(response.article.expect("the article"), stored);
    let plain = raw::frame(false, &get_by_slug_message(&stored.slug));
    let answer = raw::call(
        &mut h2,
        raw::request(compressing.addr, GET_ARTICLE, &[]),
        plain,
    )
    .await;
    assert_eq!(answer.code(), 0, "{answer:?}");
    assert_eq!(answer.headers.get("grpc-encoding"), None);
    assert_eq!(answer.data[0], 0);
}

/// Row "StreamNewArticles with 100 tags of 40 KB each": INVALID_ARGUMENT
/// `tags`, on both streams, as PublishArticle's 200-character rule.
#[tokio::test]
async fn stream_tag_filters_over_200_characters_are_refused() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let huge: Vec<String> = (0..100)
        .map(|n| format!("{n}{}", "t".repeat(40_000)))
        .collect();
    let status = client
        .stream_new_articles(StreamNewArticlesRequest {
            tags: huge.clone(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(bad_request_fields(&status), ["tags"]);
    let status = client
        .stream_article_changes(StreamArticleChangesRequest {
            tags: huge,
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(bad_request_fields(&status), ["tags"]);
    // 200 characters is allowed.
    let stream = client
        .stream_new_articles(StreamNewArticlesRequest {
            tags: vec!["é".repeat(200)],
            ..Default::default()
        })
        .await;
    assert!(stream.is_ok(), "{:?}", stream.err());
}

/// Row "Three different headlines of one day without slug": a title with no
/// letter or digit derives no slug (INVALID_ARGUMENT `title`); a very long
/// first word is cut at the 120th character, not at the date.
#[tokio::test]
async fn titles_that_derive_no_slug_are_refused_and_long_words_are_cut() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let day = "2026-12-06T10:00:00Z";
    for title in ["😀😀😀😀😀", "\u{200f}   \u{200e} "] {
        let status = client
            .publish_article(authorized(article_at(title, &["Slugs"], day)))
            .await
            .expect_err(title);
        assert_eq!(status.code(), Code::InvalidArgument, "{title:?}");
        assert_eq!(bad_request_fields(&status), ["title"], "{title:?}");
    }
    let long = publish(&mut client, article_at(&"t".repeat(500), &["Slugs"], day)).await;
    assert!(long.created);
    let slug = long.article.expect("the article").slug;
    assert_eq!(slug, format!("2026-12-06-{}", "t".repeat(109)));
    // The emoji headline with a slug of its own is fine.
    let mut with_slug = article_at("😀😀😀😀😀", &["Slugs"], day);
    with_slug.slug = "emoji-headline".into();
    let stored = publish(&mut client, with_slug).await;
    assert!(stored.created);
    assert_eq!(stored.article.expect("the article").slug, "emoji-headline");
    // Nothing was stored under the bare date.
    let status = get_by_slug(&mut client, "2026-12-06")
        .await
        .expect_err("none");
    assert_eq!(status.code(), Code::NotFound);
}

/// A cached article is answered from the cache's own bytes by a layer that
/// reads the request itself (`server::cached_reads`): the answer must not
/// depend on how the request's bytes arrive, and whatever that layer does
/// not answer (preview, an oversized message) gets tonic's answer.
#[tokio::test]
async fn a_cached_article_is_answered_alike_however_its_request_arrives() {
    let database = fresh_database().await;
    let server =
        TestServer::start_with(ServerOptions::new(&database).env("MAX_MESSAGE_BYTES", "65536"))
            .await;
    let slug = super::cached_article(&server, "Arrives in pieces", 20_000).await;
    let stored = get_by_slug(&mut server.client().await, &slug)
        .await
        .expect("the article");
    let message = raw::frame(false, &get_by_slug_message(&slug));
    let mut h2 = raw::connect(server.addr).await;

    let whole = raw::call(
        &mut h2,
        raw::request(server.addr, GET_ARTICLE, &[]),
        message.clone(),
    )
    .await;
    assert_eq!(whole.code(), 0, "{whole:?}");
    let response = GetArticleResponse::decode(&whole.data[5..]).expect("a response");
    assert_eq!(response.article.as_ref(), Some(&stored));

    // The frame's header cut in two, then the rest; and the message with
    // END_STREAM in an empty DATA frame of its own.
    for pieces in [
        vec![message.slice(..1), message.slice(1..5), message.slice(5..)],
        vec![message.clone(), bytes::Bytes::new()],
    ] {
        let mut ready = h2.clone().ready().await.expect("a stream");
        let request = raw::request(server.addr, GET_ARTICLE, &[]);
        let (response, mut stream) = ready.send_request(request, false).expect("headers");
        let last = pieces.len() - 1;
        let mut sent = 0;
        for (n, piece) in pieces.into_iter().enumerate() {
            let len = piece.len();
            // Once the message is whole the server may answer and end the
            // stream (as tonic does) before END_STREAM goes out.
            if let Err(error) = stream.send_data(piece, n == last) {
                assert!(sent >= message.len(), "{error}");
            }
            sent += len;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let answer = raw::read(response).await;
        assert_eq!(answer.code(), 0, "{answer:?}");
        assert_eq!(answer.data, whole.data);
    }

    let basic = GetArticleRequest {
        key: Some(Key::Slug(slug.clone())),
        view: article_service::proto::ArticleView::Basic as i32,
    };
    let request = raw::request(server.addr, GET_ARTICLE, &[]);
    let answer = raw::call(&mut h2, request, raw::frame(false, &basic.encode_to_vec())).await;
    let article = GetArticleResponse::decode(&answer.data[5..])
        .expect("a response")
        .article
        .expect("the article");
    assert_eq!((article.body.as_str(), &article.title), ("", &stored.title));

    // Preview asks for the publish token (none is configured here).
    let request = raw::request(
        server.addr,
        GET_ARTICLE,
        &[("authorization", "Bearer not-the-token")],
    );
    let answer = raw::call(&mut h2, request, message.clone()).await;
    assert_eq!(answer.code(), Code::Unauthenticated as i32, "{answer:?}");

    // Over MAX_MESSAGE_BYTES uncompressed: tonic's refusal.
    let oversized = raw::frame(false, &get_by_slug_message(&"a".repeat(100_000)));
    let request = raw::request(server.addr, GET_ARTICLE, &[]);
    let answer = raw::call(&mut h2, request, oversized).await;
    assert_eq!(answer.code(), Code::ResourceExhausted as i32, "{answer:?}");
}

/// Opens a call and sends `first` of its body (no END_STREAM): the rest is
/// the caller's to send on the returned stream.
async fn open_call(
    h2: &mut h2::client::SendRequest<bytes::Bytes>,
    request: http::Request<()>,
    first: bytes::Bytes,
) -> (h2::client::ResponseFuture, h2::SendStream<bytes::Bytes>) {
    let mut ready = h2.clone().ready().await.expect("a stream");
    let (response, mut stream) = ready.send_request(request, false).expect("headers");
    stream.send_data(first, false).expect("the first bytes");
    *h2 = ready;
    (response, stream)
}

/// The grpc-status of an answer's headers (trailers-only), within 3 s.
async fn answered_at_once(response: h2::client::ResponseFuture) -> i32 {
    let response = tokio::time::timeout(Duration::from_secs(3), response)
        .await
        .expect("answered without the rest of the message")
        .expect("headers");
    response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a trailers-only answer")
}

/// What a client makes the server take in of requests is bounded before
/// the message is read: a message larger than MAX_MESSAGE_BYTES is refused
/// from its length prefix; PublishArticle without the token is refused
/// before its body; and messages being received together stay within
/// MAX_REQUEST_BYTES (one that would go past is refused, the others go on).
#[tokio::test(flavor = "multi_thread")]
async fn request_messages_are_bounded_before_they_are_read() {
    let server = TestServer::start_with(
        ServerOptions::new(&fresh_database().await)
            .env("MAX_MESSAGE_BYTES", "65536")
            .env("MAX_REQUEST_BYTES", "65536"),
    )
    .await;
    let publish_path = "/newsroom.content.v1.ArticleService/PublishArticle";
    let bearer = format!("Bearer {PUBLISH_TOKEN}");
    let mut h2 = raw::connect(server.addr).await;

    // A GetArticle declaring 200 KiB: refused from its first 5 bytes.
    let prefix = bytes::Bytes::from([&[0u8][..], &204_800u32.to_be_bytes()[..]].concat());
    let (response, _held) =
        open_call(&mut h2, raw::request(server.addr, GET_ARTICLE, &[]), prefix).await;
    assert_eq!(
        answered_at_once(response).await,
        Code::ResourceExhausted as i32
    );

    // A PublishArticle without the token: refused before any body.
    let (response, _held) = open_call(
        &mut h2,
        raw::request(
            server.addr,
            publish_path,
            &[("authorization", "Bearer wrong")],
        ),
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(
        answered_at_once(response).await,
        Code::Unauthenticated as i32
    );

    // A publisher's 60 KB article, half sent: its bytes are taken...
    let mut large = article("Received slowly", &["Budget"]);
    large.body = "b".repeat(60_000);
    let framed = raw::frame(false, &large.encode_to_vec());
    let auth = [("authorization", bearer.as_str())];
    let (slow, mut rest) = open_call(
        &mut h2,
        raw::request(server.addr, publish_path, &auth),
        framed.slice(..30_000),
    )
    .await;
    // (The server takes them as the bytes reach the call's task.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...so another 10 KB one does not fit beside it.
    let mut small = article("Too many bytes at once", &["Budget"]);
    small.body = "s".repeat(10_000);
    let answer = raw::call(
        &mut h2,
        raw::request(server.addr, publish_path, &auth),
        raw::frame(false, &small.encode_to_vec()),
    )
    .await;
    assert_eq!(
        answer.code(),
        Code::ResourceExhausted as i32,
        "{:?}",
        answer.headers
    );
    // The first goes on and is stored; then the budget is free again.
    rest.send_data(framed.slice(30_000..), true)
        .expect("the rest");
    let answer = tokio::time::timeout(Duration::from_secs(10), raw::read(slow))
        .await
        .expect("the slow publish ends");
    assert_eq!(answer.code(), 0, "{:?}", answer.trailers);
    let answer = raw::call(
        &mut h2,
        raw::request(server.addr, publish_path, &auth),
        raw::frame(false, &small.encode_to_vec()),
    )
    .await;
    assert_eq!(answer.code(), 0, "{:?}", answer.trailers);
}
