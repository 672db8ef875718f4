//! Fair limits: one connection's unfinished calls and streams count against
//! limits of its own, below the instance's, so it cannot lock others out.

use std::time::{Duration, Instant};

use super::{CpuWindow, GET_ARTICLE, GoodClient, RssPeak, cached_article, raw};
use crate::common::*;
use article_service::proto::StreamNewArticlesRequest;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Row "One connection sending 1,000 HEADERS frames a second for unary
/// calls, never the body". Scaled: the instance allows 200 calls, one
/// connection 50; a request message must start within 1 s. The attack runs
/// 5 s at up to 1,000 HEADERS/s. The good client's calls all succeed within
/// 2 s each; RSS stays within 64 MiB of where it started; under half a core.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_sending_headers_without_messages_cannot_lock_others_out() {
    let database = fresh_database().await;
    let server = TestServer::start_with(
        ServerOptions::new(&database)
            .env("MAX_INFLIGHT_CALLS", "200")
            .env("MAX_CALLS_PER_CONNECTION", "50")
            .env("REQUEST_MESSAGE_TIMEOUT_MS", "1000"),
    )
    .await;
    let slug = cached_article(&server, "Headers flood", 0).await;
    let rss_before = server.rss_kib();
    let rss = RssPeak::start(&server);
    let cpu = CpuWindow::start(&server);
    let good = GoodClient::start(&server, &slug).await;

    let mut h2 = raw::connect(server.addr).await;
    let mut answers = Vec::new();
    let mut open_bodies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        for _ in 0..10 {
            let mut ready = h2.clone().ready().await.expect("a stream");
            let request = raw::request(server.addr, GET_ARTICLE, &[]);
            let (response, body) = ready.send_request(request, false).expect("headers");
            // The body is kept open and never sent.
            open_bodies.push(body);
            answers.push(tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(15), raw::read(response))
                    .await
                    .map(|answer| answer.code())
            }));
            h2 = ready;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut refused, mut timed_out) = (0, 0);
    for answer in answers {
        match answer.await.expect("reader") {
            Ok(code) if code == Code::ResourceExhausted as i32 => refused += 1,
            Ok(code) if code == Code::DeadlineExceeded as i32 => timed_out += 1,
            other => panic!("an attacking call ended with {other:?}"),
        }
    }
    // Both limits acted: the connection's slots, and the message timeout
    // that frees them.
    assert!(
        refused > 0 && timed_out > 0,
        "{refused} refused, {timed_out} timed out"
    );
    drop(open_bodies);

    good.finish(30, Duration::from_secs(2)).await;
    cpu.assert_below(0.5);
    rss.assert_within(rss_before, 0, 64).await;
}

/// Row "One connection opening 10,000 StreamNewArticles streams". Scaled:
/// the instance allows 150 streams, one connection 50. One connection opens
/// 80: 50 open, 30 are RESOURCE_EXHAUSTED; other connections still open
/// theirs and are served; closing the first connection's streams frees its
/// slots. RSS within 64 MiB; under half a core.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_cannot_take_every_stream_slot() {
    let database = fresh_database().await;
    let server = TestServer::start_with(
        ServerOptions::new(&database)
            .env("MAX_STREAMS", "150")
            .env("MAX_STREAMS_PER_CONNECTION", "50"),
    )
    .await;
    let slug = cached_article(&server, "Stream slots", 0).await;
    let rss_before = server.rss_kib();
    let rss = RssPeak::start(&server);
    let cpu = CpuWindow::start(&server);
    let good = GoodClient::start(&server, &slug).await;

    let (hostile, refused) = open_streams(&server.client().await, 80).await;
    assert_eq!((hostile.len(), refused), (50, 30));
    let (mut second, refused) = open_streams(&server.client().await, 50).await;
    assert_eq!((second.len(), refused), (50, 0));
    let (third, refused) = open_streams(&server.client().await, 60).await;
    assert_eq!(
        (third.len(), refused),
        (50, 10),
        "the instance is full at 150"
    );

    // The other connections' streams are served.
    let mut publisher = server.client().await;
    let stored = publish_new(&mut publisher, "Served anyway", &[]).await;
    opening_heartbeat(&mut second[0]).await;
    match read_one(&mut second[0], WAIT).await {
        Read::Message(message) => {
            assert_eq!(message.article.expect("an article").id, stored.id);
        }
        other => panic!("{other:?}"),
    }
    // Closing the hostile streams gives their slots back.
    drop(hostile);
    let fourth = server.client().await;
    eventually("a stream slot is free again", WAIT, || {
        let fourth = fourth.clone();
        async move { open_streams(&fourth, 1).await.0.len() == 1 }
    })
    .await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    good.finish(5, Duration::from_secs(2)).await;
    cpu.assert_below(0.5);
    rss.assert_within(rss_before, 0, 64).await;
}

/// Row "30,000 health Watch streams". Scaled: the instance allows 100
/// streams, one connection 40. Watch streams count: one connection gets 40
/// of 60, and once Watch streams fill the instance a feed stream is refused
/// too, until they close. RSS within 64 MiB; under half a core.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_watch_streams_count_against_the_stream_limits() {
    let database = fresh_database().await;
    let server = TestServer::start_with(
        ServerOptions::new(&database)
            .env("MAX_STREAMS", "100")
            .env("MAX_STREAMS_PER_CONNECTION", "40"),
    )
    .await;
    let slug = cached_article(&server, "Watch slots", 0).await;
    let rss_before = server.rss_kib();
    let rss = RssPeak::start(&server);
    let cpu = CpuWindow::start(&server);
    let good = GoodClient::start(&server, &slug).await;

    let (first, refused) = open_watches(&server, 60).await;
    assert_eq!((first.len(), refused), (40, 20));
    let (second, refused) = open_watches(&server, 40).await;
    assert_eq!((second.len(), refused), (40, 0));
    let (third, refused) = open_watches(&server, 40).await;
    assert_eq!(
        (third.len(), refused),
        (20, 20),
        "the instance is full at 100"
    );
    let feed = server.client().await;
    let (streams, refused) = open_streams(&feed, 1).await;
    assert_eq!(
        (streams.len(), refused),
        (0, 1),
        "Watch streams hold the slots"
    );

    drop(first);
    eventually("a feed stream opens once Watch streams close", WAIT, || {
        let feed = feed.clone();
        async move { open_streams(&feed, 1).await.0.len() == 1 }
    })
    .await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    good.finish(5, Duration::from_secs(2)).await;
    cpu.assert_below(0.5);
    rss.assert_within(rss_before, 0, 64).await;
    drop((second, third));
}

/// Opens `count` StreamNewArticles streams over `client`'s one connection;
/// returns the open ones and how many were RESOURCE_EXHAUSTED.
async fn open_streams(
    client: &article_service::proto::article_service_client::ArticleServiceClient<Channel>,
    count: usize,
) -> (
    Vec<tonic::Streaming<article_service::proto::StreamNewArticlesResponse>>,
    usize,
) {
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..count {
        match client
            .clone()
            .stream_new_articles(StreamNewArticlesRequest::default())
            .await
        {
            Ok(stream) => open.push(stream.into_inner()),
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                refused += 1;
            }
        }
    }
    (open, refused)
}

/// Opens `count` health Watch streams over one new connection.
async fn open_watches(
    server: &TestServer,
    count: usize,
) -> (
    Vec<tonic::Streaming<tonic_health::pb::HealthCheckResponse>>,
    usize,
) {
    let channel = Channel::from_shared(server.endpoint())
        .expect("an endpoint")
        .connect()
        .await
        .expect("connect");
    let health = HealthClient::new(channel);
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..count {
        match health
            .clone()
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
        {
            Ok(stream) => open.push(stream.into_inner()),
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                refused += 1;
            }
        }
    }
    (open, refused)
}
