//! Responses nobody reads: the server holds at most its byte budgets of
//! them, per connection and in total.

use std::time::Duration;

use super::{CpuWindow, GET_ARTICLE, GoodClient, RssPeak, cached_article, raw};
use crate::common::*;
use article_service::proto::{
    GetArticleRequest, ListArticlesByTagRequest, get_article_request::Key,
};
use prost::Message;
use tonic::Code;

const LIST_ARTICLES_BY_TAG: &str = "/newsroom.content.v1.ArticleService/ListArticlesByTag";

/// Row "300 GetArticle calls of a 1 MB article, never read". Three
/// connections send 100 calls each and never read an answer (each stream's
/// window stays at 64 KiB; the connection's is wide, so that every answer
/// is produced). Budgets: 4 MiB
/// of unsent responses per connection, 16 MiB in all (more than the three
/// connections can hold, so that the good client's 1 MB answers fit). Each
/// connection gets at most 4 answers' data (the budget, and one past it
/// when nothing else waits), the rest RESOURCE_EXHAUSTED; RSS stays within
/// 16 MiB + 64 MiB of where it started; the good client is served within
/// 2 s a call; under half a core. The stalled answers end with an error
/// once RESPONSE_STALL_TIMEOUT (3 s here) passed twice at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_nobody_reads_stay_within_the_byte_budgets() {
    let database = fresh_database().await;
    let server = TestServer::start_with(
        ServerOptions::new(&database)
            .env(
                "MAX_UNSENT_BYTES_PER_CONNECTION",
                &(4 * 1024 * 1024).to_string(),
            )
            .env("MAX_UNSENT_BYTES", &(16 * 1024 * 1024).to_string())
            .env("RESPONSE_STALL_TIMEOUT", "3"),
    )
    .await;
    let slug = cached_article(&server, "Never read", 1_000_000).await;
    let rss_before = server.rss_kib();
    let rss = RssPeak::start(&server);
    let cpu = CpuWindow::start(&server);
    let good = GoodClient::start(&server, &slug).await;

    let message = raw::frame(
        false,
        &GetArticleRequest {
            key: Some(Key::Slug(slug.clone())),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let (mut held, mut connections) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let mut h2 = raw::connect_wide(server.addr).await;
        let mut responses = Vec::new();
        for _ in 0..100 {
            let request = raw::request(server.addr, GET_ARTICLE, &[]);
            responses.push(raw::send(&mut h2, request, message.clone()).await);
        }
        // Headers, then either data that is never read (held) or trailers
        // with the refusal; nothing else.
        let (mut with_data, mut refused) = (0, 0);
        for response in responses {
            let response = tokio::time::timeout(Duration::from_secs(20), response)
                .await
                .expect("headers within 20 s")
                .expect("headers");
            let mut body = response.into_body();
            match tokio::time::timeout(Duration::from_secs(5), body.data()).await {
                // Kept unread: its window stays shut.
                Ok(Some(Ok(_))) => {
                    with_data += 1;
                    held.push(body);
                }
                Ok(None) => {
                    let trailers = body.trailers().await.expect("trailers").expect("some");
                    assert_eq!(
                        trailers["grpc-status"],
                        (Code::ResourceExhausted as i32).to_string().as_str()
                    );
                    refused += 1;
                }
                other => panic!("neither data nor a refusal: {other:?}"),
            }
        }
        assert!(with_data <= 5, "{with_data} answers held on one connection");
        assert_eq!(with_data + refused, 100);
        connections.push(h2);
    }
    // The stalled answers end with an error (their connection is closed).
    for mut body in held {
        let ended = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match body.data().await {
                    Some(Ok(_)) => {}
                    other => return other.map(|result| result.map(|_| ())),
                }
            }
        })
        .await
        .expect("a stalled answer ends within 15 s");
        assert!(matches!(ended, Some(Err(_))), "{ended:?}");
    }
    let stalled = server
        .metric("article_connections_timed_out_total{reason=\"stalled\"}")
        .await
        .unwrap_or(0.0);
    assert_eq!(stalled, 3.0);
    good.finish(20, Duration::from_secs(2)).await;
    cpu.assert_below(0.5);
    rss.assert_within(rss_before, 16, 64).await;
    drop(connections);
}

/// Row "8 ListArticlesByTag calls with page_size 100 over 1 MB articles,
/// never read". Scaled: 10 articles of 1 MB in a tag, MAX_PAGE_BYTES 3 MiB.
/// Paging with page_size 100 returns every article once, in order, at most
/// 3 a page; 8 connections asking for such pages and never reading hold
/// at most 8 pages' worth (24 MiB) plus a 64 MiB margin; the good client is
/// served within 2 s a call; under half a core; the stalled pages end with
/// an error after RESPONSE_STALL_TIMEOUT (3 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_large_articles_are_cut_by_bytes_and_never_read_ones_are_bounded() {
    let database = fresh_database().await;
    let server = TestServer::start_with(
        ServerOptions::new(&database)
            .env("MAX_PAGE_BYTES", &(3 * 1024 * 1024).to_string())
            .env("RESPONSE_STALL_TIMEOUT", "3"),
    )
    .await;
    let mut client = server.client().await;
    let mut stored = Vec::new();
    for n in 0..10 {
        let mut request = article(&format!("Large {n}"), &["Large"]);
        request.body = format!("{n} {}", "word ".repeat(200_000));
        stored.push(publish(&mut client, request).await.article.expect("stored"));
    }
    let (all, pages) = list_all_by_tag(&mut client, "Large", 100).await;
    assert_eq!(pages, 4, "3 articles of 1 MB in 3 MiB, then the last one");
    let newest_first: Vec<String> = stored.iter().rev().map(|a| a.id.clone()).collect();
    assert_eq!(ids(&all), newest_first);

    let slug = stored[0].slug.clone();
    get_by_slug(&mut client, &slug).await.expect("cached");
    let rss_before = server.rss_kib();
    let rss = RssPeak::start(&server);
    let cpu = CpuWindow::start(&server);
    let good = GoodClient::start(&server, &slug).await;
    let message = raw::frame(
        false,
        &ListArticlesByTagRequest {
            tag: "Large".into(),
            page_size: 100,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut h2 = raw::connect_wide(server.addr).await;
        let request = raw::request(server.addr, LIST_ARTICLES_BY_TAG, &[]);
        let response = raw::send(&mut h2, request, message.clone()).await;
        let mut body = tokio::time::timeout(Duration::from_secs(20), response)
            .await
            .expect("headers within 20 s")
            .expect("headers")
            .into_body();
        assert!(matches!(body.data().await, Some(Ok(_))), "the page starts");
        held.push((h2, body));
    }
    for (_, mut body) in held {
        let ended = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match body.data().await {
                    Some(Ok(_)) => {}
                    other => return other.map(|result| result.map(|_| ())),
                }
            }
        })
        .await
        .expect("a stalled page ends within 15 s");
        assert!(matches!(ended, Some(Err(_))), "{ended:?}");
    }
    good.finish(20, Duration::from_secs(2)).await;
    cpu.assert_below(0.5);
    rss.assert_within(rss_before, 24, 64).await;
}
