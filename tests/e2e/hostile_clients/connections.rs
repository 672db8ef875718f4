//! Connections that never speak HTTP/2 or hold no call, and a process out
//! of file descriptors.

use std::time::Duration;

use super::{CpuWindow, GET_ARTICLE, GoodClient, RssPeak, cached_article, raw};
use crate::common::*;
use article_service::proto::{GetArticleRequest, get_article_request::Key};
use prost::Message;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Row "1,100 connections that never send the HTTP/2 preface, server under
/// `ulimit -n 1024`". Scaled: 300 silent connections against an open-file
/// limit of 128 (soft and hard, so the start-up raise cannot lift it) and a
/// handshake timeout of 1 s. The server runs out of descriptors, backs off
/// (counted, logged at warn) rather than spinning, closes the silent
/// connections, and a good client that connects behind them is served
/// within 15 s. Under a third of a core; RSS within 64 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_and_running_out_of_descriptors_never_spins() {
    let database = fresh_database().await;
    let server = TestServer::start_with(
        ServerOptions::new(&database)
            .env("HANDSHAKE_TIMEOUT_MS", "1000")
            .open_files(128),
    )
    .await;
    assert!(
        server
            .logs()
            .iter()
            .any(|line| line.contains("open-file limit") && line.contains("\"open_files\":128")),
        "the start-up logs the limit in force"
    );
    let slug = cached_article(&server, "Descriptors", 0).await;
    let rss_before = server.rss_kib();
    let rss = RssPeak::start(&server);
    let cpu = CpuWindow::start(&server);

    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A good client queued behind them.
    let served = tokio::time::timeout(Duration::from_secs(15), async {
        let mut client = server.client().await;
        get_by_slug(&mut client, &slug).await
    })
    .await
    .expect("the good client is served within 15 s");
    assert_eq!(served.expect("the article").slug, slug);

    // Every silent connection is closed by the server (after its SETTINGS).
    for stream in &mut silent {
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buffer = [0; 256];
            while let Ok(1..) = stream.read(&mut buffer).await {}
        })
        .await;
        assert!(closed.is_ok(), "a silent connection still open after 10 s");
    }
    cpu.assert_below(0.34);
    rss.assert_within(rss_before, 0, 64).await;

    let timed_out = server
        .metric("article_connections_timed_out_total{reason=\"handshake\"}")
        .await
        .unwrap_or(0.0);
    assert!(timed_out >= 300.0, "{timed_out}");
    let accept_errors = server
        .metric("article_accept_errors_total{reason=\"descriptors\"}")
        .await
        .unwrap_or(0.0);
    assert!(accept_errors >= 1.0, "{accept_errors}");
    assert!(
        server
            .logs()
            .iter()
            .any(|line| line.contains("\"level\":\"WARN\"")
                && line.contains("out of file descriptors")),
        "a warning for the failed accepts"
    );
    // And the good client keeps being served.
    let good = GoodClient::start(&server, &slug).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    good.finish(5, Duration::from_secs(2)).await;
}

/// A connection that holds no call for CONNECTION_IDLE_TIMEOUT (1 s here)
/// is closed within twice that; one with a stream open is not.
#[tokio::test]
async fn a_connection_without_calls_is_closed_when_idle() {
    let database = fresh_database().await;
    let server =
        TestServer::start_with(ServerOptions::new(&database).env("CONNECTION_IDLE_TIMEOUT", "1"))
            .await;
    let slug = cached_article(&server, "Idle", 0).await;

    let (mut idle, idle_driver) = raw::connect_watched(server.addr).await;
    let message = GetArticleRequest {
        key: Some(Key::Slug(slug.clone())),
        ..Default::default()
    }
    .encode_to_vec();
    let answer = raw::call(
        &mut idle,
        raw::request(server.addr, GET_ARTICLE, &[]),
        raw::frame(false, &message),
    )
    .await;
    assert_eq!(answer.code(), 0);

    // A connection with a stream open stays, idle as the stream may be.
    let mut busy = server.client().await;
    let mut stream = open_stream(&mut busy, &[], "").await.expect("a stream");
    opening_heartbeat(&mut stream).await;

    tokio::time::timeout(Duration::from_secs(10), idle_driver)
        .await
        .expect("the idle connection is closed within 10 s")
        .expect("the driver");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stored = publish_new(&mut server.client().await, "Still streaming", &[]).await;
    match read_one(&mut stream, WAIT).await {
        Read::Message(message) => assert_eq!(message.article.expect("an article").id, stored.id),
        other => panic!("{other:?}"),
    }
    let idle_closed = server
        .metric("article_connections_timed_out_total{reason=\"idle\"}")
        .await
        .unwrap_or(0.0);
    assert!(idle_closed >= 1.0, "{idle_closed}");
}
