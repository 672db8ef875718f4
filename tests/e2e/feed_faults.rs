//! StreamNewArticles when things go wrong: restarts, several replicas, the
//! database cut off, slow consumers, SIGTERM.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::common::proxy::{DbProxy, target_of};
use crate::common::*;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;

/// Sends SIGTERM and waits for the exit in the background, so the test can
/// watch its streams meanwhile. Yields the server (dropped: killed if still
/// there), the exit status, and how long the exit took.
fn terminate_in_background(
    mut server: TestServer,
    timeout: Duration,
) -> tokio::task::JoinHandle<(TestServer, Option<ExitStatus>, Duration)> {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let status = server.terminate(timeout);
        (server, status, started.elapsed())
    })
}

/// Expects the stream to end with `code` within `timeout`, heartbeats aside.
async fn expect_end(reader: &mut FeedReader, code: Code, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match read_one(&mut reader.stream, left).await {
            Read::Message(message) if message.article.is_none() => reader.record(*message),
            Read::Message(message) => panic!("unexpected article {message:?}"),
            Read::Ended(status) => {
                assert_eq!(status.code(), code, "{status:?}");
                return;
            }
            Read::TimedOut => panic!("the stream did not end within {timeout:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_tokens_survive_a_server_restart() {
    let database = fresh_database().await;
    let mut first = TestServer::start_with(ServerOptions::new(&database)).await;
    let mut client = first.client().await;
    let mut reader = FeedReader::open(&mut client, &[], "").await;
    let mut filtered = FeedReader::open(&mut client, &["Sport"], "").await;
    let a = publish_new(&mut client, "Before restart A", &["Sport"]).await;
    let b = publish_new(&mut client, "Before restart B", &["News"]).await;
    reader.read_articles(2, WAIT).await.unwrap();
    filtered.read_articles(1, WAIT).await.unwrap();

    // A crash: the streams end with an error, never OK.
    first.kill();
    for stream in [&mut reader, &mut filtered] {
        match read_one(&mut stream.stream, WAIT).await {
            Read::Ended(status) => assert_ne!(status.code(), Code::Ok),
            other => panic!("expected the stream to fail, got {other:?}"),
        }
    }

    let second = TestServer::start_with(ServerOptions::new(&database)).await;
    let mut client = second.client().await;
    let c = publish_new(&mut client, "After restart C", &["Sport"]).await;
    let d = publish_new(&mut client, "After restart D", &["News"]).await;

    // Each stream resumes from its last token on the new process.
    let mut resumed = FeedReader::open(&mut client, &[], &reader.token).await;
    resumed.read_articles(2, WAIT).await.unwrap();
    assert_eq!(resumed.ids(), [c.id.clone(), d.id.clone()]);
    let mut resumed_filtered = FeedReader::open(&mut client, &["sport"], &filtered.token).await;
    resumed_filtered.read_articles(1, WAIT).await.unwrap();
    assert_eq!(resumed_filtered.ids(), std::slice::from_ref(&c.id));
    // An older token replays from its own point.
    let mut from_a = FeedReader::open(&mut client, &[], &reader.article_tokens[0]).await;
    from_a.read_articles(3, WAIT).await.unwrap();
    assert_eq!(from_a.ids(), [b.id.clone(), c.id.clone(), d.id.clone()]);

    // And every one of them goes on live.
    let e = publish_new(&mut client, "After restart E", &["Sport"]).await;
    for stream in [&mut resumed, &mut resumed_filtered, &mut from_a] {
        let count = stream.articles.len() + 1;
        stream.read_articles(count, WAIT).await.unwrap();
        assert_eq!(stream.articles.last().unwrap().id, e.id);
    }
    assert_eq!(a.title, reader.articles[0].title);
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_on_one_database_share_the_feed_and_its_tokens() {
    let database = fresh_database().await;
    let one = TestServer::start_with(ServerOptions::new(&database)).await;
    let two = TestServer::start_with(ServerOptions::new(&database)).await;
    let mut client_one = one.client().await;
    let mut client_two = two.client().await;
    let mut on_one = FeedReader::open(&mut client_one, &[], "").await;
    let mut on_two = FeedReader::open(&mut client_two, &[], "").await;
    let mut filtered_on_two = FeedReader::open(&mut client_two, &["Odd"], "").await;

    let mut published = Vec::new();
    for i in 0..10 {
        let client = if i % 2 == 0 {
            &mut client_one
        } else {
            &mut client_two
        };
        let tags: &[&str] = if i % 2 == 0 { &["Even"] } else { &["Odd"] };
        published.push(publish_new(client, &format!("Replica {i}"), tags).await.id);
    }
    on_one.read_articles(10, WAIT).await.unwrap();
    on_two.read_articles(10, WAIT).await.unwrap();
    filtered_on_two.read_articles(5, WAIT).await.unwrap();
    assert_eq!(on_one.ids(), published);
    assert_eq!(on_two.ids(), published);
    assert_eq!(
        filtered_on_two.ids(),
        published
            .iter()
            .skip(1)
            .step_by(2)
            .cloned()
            .collect::<Vec<_>>()
    );
    // The same article has the same token on both.
    assert_eq!(on_one.article_tokens, on_two.article_tokens);

    // A token from one replica resumes on the other.
    let mut moved = FeedReader::open(
        &mut client_one,
        &["odd"],
        &filtered_on_two.article_tokens[1],
    )
    .await;
    moved.read_articles(3, WAIT).await.unwrap();
    assert_eq!(moved.ids(), filtered_on_two.ids()[2..]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_cut_mid_stream_loses_nothing() {
    let database = fresh_database().await;
    let proxy = DbProxy::start(target_of(&database)).await;
    let behind = TestServer::start_with(ServerOptions::new(&proxy.url_for(&database))).await;
    let direct = TestServer::start_with(ServerOptions::new(&database)).await;
    let mut behind_client = behind.client().await;
    let mut direct_client = direct.client().await;

    let mut reader = FeedReader::open(&mut behind_client, &[], "").await;
    let mut filtered = FeedReader::open(&mut behind_client, &["Cut"], "").await;
    let mut published = vec![
        publish_new(&mut direct_client, "Before the cut", &["Cut"])
            .await
            .id,
    ];
    reader.read_articles(1, WAIT).await.unwrap();

    proxy.cut();
    // Stored by the other replica while this one cannot reach the database.
    for i in 0..3 {
        published.push(
            publish_new(&mut direct_client, &format!("During the cut {i}"), &["Cut"])
                .await
                .id,
        );
    }
    // The replica notices.
    let deadline = Instant::now() + Duration::from_secs(20);
    while behind.health().await == ServingStatus::Serving as i32 {
        assert!(Instant::now() < deadline, "health stayed SERVING");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A new stream there cannot start now: UNAVAILABLE, promptly.
    let started = Instant::now();
    let status = tokio::time::timeout(
        Duration::from_secs(8),
        open_stream(&mut behind_client, &[], ""),
    )
    .await
    .expect("no hang")
    .expect_err("no stream without the database");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
    // Nor can a resumed one catch up: it starts (no database needed for
    // that), then ends with UNAVAILABLE, never OK and never a hang.
    let started = Instant::now();
    match tokio::time::timeout(
        Duration::from_secs(8),
        open_stream(&mut behind_client, &[], &reader.article_tokens[0]),
    )
    .await
    .expect("no hang")
    {
        Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        Ok(stream) => {
            let mut resumed = FeedReader::new(stream, "");
            expect_end(&mut resumed, Code::Unavailable, Duration::from_secs(8)).await;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(6));

    proxy.restore();
    for i in 0..2 {
        published.push(
            publish_new(&mut direct_client, &format!("After the cut {i}"), &["Cut"])
                .await
                .id,
        );
    }

    // The open streams either went on or ended with an error; resumed from
    // their last token, they have every article exactly once.
    let endings = reader
        .read_resuming(
            &mut behind_client,
            &[],
            published.len(),
            Duration::from_secs(30),
        )
        .await;
    assert!(endings.iter().all(|status| status.code() != Code::Ok));

    assert_eq!(reader.ids(), published);
    filtered
        .read_resuming(
            &mut behind_client,
            &["cut"],
            published.len(),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(filtered.ids(), published);

    // And live delivery works again on that replica.
    let mut fresh = FeedReader::open(&mut behind_client, &[], "").await;
    let last = publish_new(&mut direct_client, "Back to normal", &[]).await;
    fresh.read_articles(1, WAIT).await.unwrap();
    assert_eq!(fresh.ids(), std::slice::from_ref(&last.id));
    reader
        .read_resuming(&mut behind_client, &[], published.len() + 1, WAIT)
        .await;
    assert_eq!(reader.articles.last().unwrap().id, last.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_consumer_is_caught_up_not_skipped() {
    let server = start_with_a_short_broadcast(&fresh_database().await).await;
    let mut publisher = server.client().await;
    // Each consumer on a connection of its own.
    let mut slow_client = server.client().await;
    let mut slow = FeedReader::open(&mut slow_client, &[], "").await;
    let mut slow_filtered = FeedReader::open(&mut slow_client, &["Half"], "").await;
    let mut fast_client = server.client().await;
    let mut fast = FeedReader::open(&mut fast_client, &[], "").await;

    // The slow streams stop being polled and fall behind the broadcast.
    const COUNT: usize = 120;
    let fast_task = tokio::spawn(async move {
        fast.read_articles(COUNT, Duration::from_secs(60))
            .await
            .unwrap();
        fast
    });
    let published: Vec<String> = publish_a_large_burst(&mut publisher, COUNT)
        .await
        .into_iter()
        .map(|article| article.id)
        .collect();
    let fast = fast_task.await.unwrap();
    assert_eq!(fast.ids(), published);

    // Now the slow ones read: everything, once, in order (or an error and a
    // lossless resume).
    slow.read_resuming(&mut slow_client, &[], COUNT, Duration::from_secs(60))
        .await;
    assert_eq!(slow.ids(), published);
    slow_filtered
        .read_resuming(
            &mut slow_client,
            &["half"],
            COUNT / 2,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(
        slow_filtered.ids(),
        published.iter().step_by(2).cloned().collect::<Vec<_>>()
    );
    assert_some_stream_fell_behind(&server);

    // A replay of all of it, one article per read: the catch-up spans more
    // than one scan window (100 positions with FEED_BATCH_SIZE=1).
    let mut replay = FeedReader::open(&mut publisher, &["half"], &slow.article_tokens[0]).await;
    replay
        .read_articles(COUNT / 2 - 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(replay.ids(), slow_filtered.ids()[1..]);

    // And they go on live.
    let next = publish_new(&mut publisher, "After the flood", &["Half"]).await;
    slow.read_articles(COUNT + 1, WAIT).await.unwrap();
    slow_filtered
        .read_articles(COUNT / 2 + 1, WAIT)
        .await
        .unwrap();
    assert_eq!(slow.articles.last().unwrap().id, next.id);
    assert_eq!(slow_filtered.articles.last().unwrap().id, next.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_open_streams_with_unavailable_and_exits_cleanly() {
    let database = fresh_database().await;
    let grace = Duration::from_secs(10);
    let server =
        TestServer::start_with(ServerOptions::new(&database).env("SHUTDOWN_GRACE", "10")).await;
    let mut client = server.client().await;
    let mut other_client = server.client().await;
    let mut all = FeedReader::open(&mut client, &[], "").await;
    let mut filtered = FeedReader::open(&mut other_client, &["Nothing here"], "").await;
    let first = publish_new(&mut client, "Before SIGTERM", &[]).await;
    all.read_articles(1, WAIT).await.unwrap();
    let mut resumed = FeedReader::open(&mut other_client, &[], &all.article_tokens[0]).await;
    let mut health = HealthClient::new(
        tonic::transport::Channel::from_shared(server.endpoint())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );
    // A debugging session's reflection stream, left open.
    let (reflection_requests, requests) = tokio::sync::mpsc::channel(1);
    let mut reflection = ServerReflectionClient::new(
        tonic::transport::Channel::from_shared(server.endpoint())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
    .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(requests))
    .await
    .unwrap()
    .into_inner();
    reflection_requests
        .send(ServerReflectionRequest {
            message_request: Some(MessageRequest::ListServices(String::new())),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(reflection.message().await.unwrap().is_some());
    drop(first);

    let exit = terminate_in_background(server, grace + Duration::from_secs(5));
    let watch_task = tokio::spawn(async move {
        let mut statuses = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(15), watch.message()).await {
                Ok(Ok(Some(message))) => statuses.push(message.status),
                Ok(Ok(None)) => return (statuses, Code::Ok),
                Ok(Err(status)) => return (statuses, status.code()),
                Err(_) => return (statuses, Code::DeadlineExceeded),
            }
        }
    });
    let reflection_task = tokio::spawn(async move {
        let ended = tokio::time::timeout(Duration::from_secs(15), reflection.message()).await;
        drop(reflection_requests);
        ended.map(|message| message.map_err(|status| status.code()))
    });
    for reader in [&mut all, &mut filtered, &mut resumed] {
        expect_end(reader, Code::Unavailable, Duration::from_secs(3)).await;
    }
    let (_server, status, took) = exit.await.unwrap();
    let status = status.expect("the server exits");
    assert!(status.success(), "{status:?}");
    // Every client let go at once: no need to wait out the grace period.
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    let (statuses, watch_end) = watch_task.await.unwrap();
    assert!(
        statuses.contains(&(ServingStatus::NotServing as i32)),
        "health never turned NOT_SERVING: {statuses:?}"
    );
    // Health and reflection streams end like the feed's.
    assert_eq!(watch_end, Code::Unavailable);
    assert!(
        matches!(reflection_task.await.unwrap(), Ok(Err(Code::Unavailable))),
        "the reflection stream did not end with UNAVAILABLE"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_reads_does_not_hold_up_the_exit() {
    let database = fresh_database().await;
    let grace = Duration::from_secs(3);
    let server =
        TestServer::start_with(ServerOptions::new(&database).env("SHUTDOWN_GRACE", "3")).await;
    let mut publisher = server.client().await;
    let mut stuck_client = server.client().await;
    let _stuck = open_stream(&mut stuck_client, &[], "").await.unwrap();
    let mut reader_client = server.client().await;
    let mut reader = FeedReader::open(&mut reader_client, &[], "").await;

    // More than the stuck stream's window: the server cannot finish it.
    const COUNT: usize = 70;
    let body = "y".repeat(40_000);
    for i in 0..COUNT {
        let mut request = article(&unique_title(&format!("Unread {i}")), &[]);
        request.body = body.clone();
        publish(&mut publisher, request).await;
    }
    reader.read_articles(COUNT, WAIT).await.unwrap();

    let exit = terminate_in_background(server, grace + Duration::from_secs(10));
    expect_end(&mut reader, Code::Unavailable, Duration::from_secs(3)).await;
    let (_server, status, took) = exit.await.unwrap();
    let status = status.expect("the server exits");
    assert!(status.success(), "{status:?}");
    assert!(
        took < grace + Duration::from_millis(1500),
        "exit took {took:?} with a grace of {grace:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_follow_a_database_restored_to_an_earlier_feed() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut reader = FeedReader::open(&mut client, &[], "").await;
    let mut live = FeedReader::open(&mut client, &[], "").await;
    for i in 0..3 {
        publish_new(&mut client, &format!("Lost in the restore {i}"), &["Lost"]).await;
    }
    reader.read_articles(3, WAIT).await.unwrap();
    live.read_articles(3, WAIT).await.unwrap();
    drop(reader.stream);
    // A stream opened at the head, which has only ever known it at 3.
    let mut opened_at_head = FeedReader::open(&mut client, &[], "").await;

    // The database goes back in time (as if restored from a backup taken
    // after the first article): tokens are now ahead of the head, and new
    // articles will take the lost positions again.
    // (Deleting by hand never moves the head back: the restore also brings
    // back the backup's record of the highest position ever deleted.)
    let pool = pool(&server.database_url).await;
    sqlx::query(
        "DELETE FROM articles WHERE feed_position > (SELECT min(feed_position) FROM articles)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE change_log_floor SET position = 0")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    // The server notices (on its safety tick, every 5 s).
    server
        .wait_for_log("the feed head went back", Duration::from_secs(15))
        .await;

    // Both the stream that stayed open and one resumed from a token past the
    // head get the new articles.
    let mut resumed = FeedReader::new(
        open_stream(&mut client, &[], &reader.token).await.unwrap(),
        &reader.token,
    );
    let new = publish_new(&mut client, "After the restore", &[]).await;
    resumed.read_articles(1, WAIT).await.unwrap();
    assert_eq!(resumed.ids(), std::slice::from_ref(&new.id));
    live.read_articles(4, WAIT).await.unwrap();
    assert_eq!(live.articles[3].id, new.id);
    opened_at_head.read_articles(1, WAIT).await.unwrap();
    assert_eq!(opened_at_head.ids(), std::slice::from_ref(&new.id));
}
