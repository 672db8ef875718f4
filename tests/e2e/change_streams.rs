//! StreamArticleChanges keeps every promise of StreamNewArticles (contract
//! Part 2): tokens checked alike, tag filters checked alike, heartbeats that
//! move past what the filter skips, a slow consumer caught up and never
//! skipped, UNAVAILABLE on SIGTERM. The two streams share their code; these
//! tests make sure the change stream is wired to all of it.

use std::time::{Duration, Instant};

use crate::common::*;
use article_service::proto::{
    ArticleChange, ListArticlesByTagRequest, StreamArticleChangesRequest,
    StreamArticleChangesResponse,
};
use tonic::{Code, Streaming};

fn resuming(token: &str) -> StreamArticleChangesRequest {
    StreamArticleChangesRequest {
        resume_token: token.to_owned(),
        ..Default::default()
    }
}

fn filtered(tags: &[&str]) -> StreamArticleChangesRequest {
    StreamArticleChangesRequest {
        tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
        ..Default::default()
    }
}

fn slugs(changes: &[ArticleChange]) -> Vec<String> {
    changes
        .iter()
        .map(|change| change.article.clone().unwrap_or_default().slug)
        .collect()
}

/// The next message, heartbeat or change, within `timeout`.
async fn next_message(
    stream: &mut Streaming<StreamArticleChangesResponse>,
    timeout: Duration,
) -> StreamArticleChangesResponse {
    match tokio::time::timeout(timeout, stream.message()).await {
        Ok(Ok(Some(message))) => message,
        other => panic!("expected a message within {timeout:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn altered_foreign_and_page_tokens_are_invalid_change_tokens() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut stream = changes(&mut client, StreamArticleChangesRequest::default())
        .await
        .expect("a change stream");
    publish_new(&mut client, "One", &["Tagged"]).await;
    publish_new(&mut client, "Two", &["Tagged"]).await;
    let (_, good) = read_changes(&mut stream, 2, WAIT).await;

    let page_token = page_token_after_one(&mut client, "tagged").await;
    assert!(!page_token.is_empty());
    let tags_token = tags_page_token_after_one(&mut client).await;
    let mut cases = tampered_tokens(&good);
    cases.push(("article page token", page_token));
    if !tags_token.is_empty() {
        cases.push(("tag page token", tags_token));
    }
    for (what, token) in cases {
        let status = changes(&mut client, resuming(&token))
            .await
            .err()
            .unwrap_or_else(|| panic!("{what} resume token was accepted"));
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_eq!(bad_request_fields(&status), ["resume_token"], "{what}");
    }

    // Nor is a change token a page token, whether from the stream or from a
    // page's `changes_token`.
    let first = client
        .list_articles_by_tag(ListArticlesByTagRequest {
            tag: "tagged".to_owned(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("a page")
        .into_inner();
    for (what, token) in [
        ("changes_token", first.changes_token),
        ("stream", good.clone()),
    ] {
        let status = client
            .list_articles_by_tag(ListArticlesByTagRequest {
                tag: "tagged".to_owned(),
                page_size: 1,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect_err("a change token as a page token");
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_eq!(bad_request_fields(&status), ["page_token"], "{what}");
    }

    // The good token still resumes, right after the second change.
    let mut resumed = changes(&mut client, resuming(&good))
        .await
        .expect("a valid token");
    let third = publish_new(&mut client, "Three", &["Tagged"]).await;
    let (received, _) = read_changes(&mut resumed, 1, WAIT).await;
    assert_eq!(slugs(&received), [third.slug]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tag_filters_are_invalid_on_change_streams() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for tags in BAD_TAG_FILTERS {
        let status = changes(&mut client, filtered(tags)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{tags:?}");
        assert_eq!(bad_request_fields(&status), ["tags"], "{tags:?}");
    }
    let many = too_many_tags();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let status = changes(&mut client, filtered(&many)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_request_fields(&status), ["tags"]);
    changes(&mut client, filtered(&many[..100]))
        .await
        .expect("100 tags");
}

/// An idle filtered change stream gets heartbeats, and some heartbeat soon
/// carries a token past the changes its filter skipped: resuming from it
/// without a filter gives the next change, not a skipped one.
#[tokio::test(flavor = "multi_thread")]
async fn idle_change_streams_get_heartbeats_that_move_past_skipped_changes() {
    let database = fresh_database().await;
    let server =
        TestServer::start_with(ServerOptions::new(&database).env("HEARTBEAT_INTERVAL", "1")).await;
    let mut client = server.client().await;
    let mut rare = changes(&mut client, filtered(&["Rare"]))
        .await
        .expect("a change stream");
    opening_heartbeat(&mut rare).await;

    let started = Instant::now();
    for _ in 0..2 {
        let message = next_message(&mut rare, Duration::from_secs(5)).await;
        assert_eq!(message.change, None, "a heartbeat has no change");
        assert!(!message.resume_token.is_empty());
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "not too often"
    );

    let mut skipped = Vec::new();
    for i in 0..3 {
        skipped.push(
            publish_new(&mut client, &format!("Common {i}"), &["Common"])
                .await
                .slug,
        );
    }
    let deadline = Instant::now() + WAIT;
    let mut attempt = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "no heartbeat moved past the skipped changes"
        );
        let heartbeat = next_message(&mut rare, Duration::from_secs(5)).await;
        assert_eq!(heartbeat.change, None, "nothing matches the filter");
        attempt += 1;
        let mut resumed = changes(&mut client, resuming(&heartbeat.resume_token))
            .await
            .expect("the heartbeat's token resumes");
        let marker = publish_new(&mut client, &format!("Marker {attempt}"), &["Common"]).await;
        let (received, _) = read_changes(&mut resumed, 1, WAIT).await;
        let first = slugs(&received).remove(0);
        if first == marker.slug {
            break;
        }
        // An earlier heartbeat: only skipped changes or earlier markers
        // may follow it.
        assert!(
            skipped.contains(&first) || first.contains("marker"),
            "unexpected first change {first}"
        );
    }

    let wanted = publish_new(&mut client, "Finally", &["rare"]).await;
    let (received, _) = read_changes(&mut rare, 1, WAIT).await;
    assert_eq!(slugs(&received), [wanted.slug]);
}

/// A change stream whose consumer stops reading falls behind the live
/// broadcast and is caught up from the database: every change, once, in
/// order, whatever was published meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_change_consumer_is_caught_up_not_skipped() {
    let server = start_with_a_short_broadcast(&fresh_database().await).await;
    let mut publisher = server.client().await;
    let mut slow_client = server.client().await;
    let mut slow = changes(&mut slow_client, StreamArticleChangesRequest::default())
        .await
        .expect("a change stream");
    let mut slow_filtered = changes(&mut slow_client, filtered(&["Half"]))
        .await
        .expect("a change stream");

    const COUNT: usize = 120;
    let published: Vec<String> = publish_a_large_burst(&mut publisher, COUNT)
        .await
        .into_iter()
        .map(|article| article.slug)
        .collect();

    let (received, _) = read_changes(&mut slow, COUNT, Duration::from_secs(60)).await;
    assert_eq!(slugs(&received), published);
    let (received, _) = read_changes(&mut slow_filtered, COUNT / 2, Duration::from_secs(60)).await;
    assert_eq!(
        slugs(&received),
        published.iter().step_by(2).cloned().collect::<Vec<_>>()
    );
    assert_some_stream_fell_behind(&server);

    // And they go on live.
    let next = publish_new(&mut publisher, "After the flood", &["Half"]).await;
    for stream in [&mut slow, &mut slow_filtered] {
        let (received, _) = read_changes(stream, 1, WAIT).await;
        assert_eq!(slugs(&received), std::slice::from_ref(&next.slug));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_open_change_streams_with_unavailable() {
    let database = fresh_database().await;
    let mut server =
        TestServer::start_with(ServerOptions::new(&database).env("SHUTDOWN_GRACE", "10")).await;
    let mut client = server.client().await;
    let mut live = changes(&mut client, StreamArticleChangesRequest::default())
        .await
        .expect("a change stream");
    let mut quiet = changes(&mut client, filtered(&["Nothing here"]))
        .await
        .expect("a change stream");
    let first = publish_new(&mut client, "Before SIGTERM", &[]).await;
    let (received, _) = read_changes(&mut live, 1, WAIT).await;
    assert_eq!(slugs(&received), std::slice::from_ref(&first.slug));
    let mut replay = changes(&mut client, from_beginning(&[]))
        .await
        .expect("a change stream");
    let (received, _) = read_changes(&mut replay, 1, WAIT).await;
    assert_eq!(slugs(&received), [first.slug]);

    let exit = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let status = server.terminate(Duration::from_secs(15));
        (server, status, started.elapsed())
    });
    for stream in [&mut live, &mut quiet, &mut replay] {
        let deadline = Instant::now() + Duration::from_secs(3);
        let status = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, stream.message()).await {
                Ok(Ok(Some(message))) => assert_eq!(message.change, None, "no change expected"),
                Ok(Ok(None)) => panic!("the stream ended with OK"),
                Ok(Err(status)) => break status,
                Err(_) => panic!("the stream did not end within 3 s"),
            }
        };
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    let (_server, status, took) = exit.await.expect("the exit");
    let status = status.expect("the server exits");
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
}

/// An article deleted by hand takes its changes along, but its positions
/// are never given again: a change written after the deletion reaches live
/// streams and streams resuming from a token of the deleted article's
/// change, on both feed streams, and ListTags stops counting it.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_after_a_deletion_by_hand_still_reaches_every_stream() {
    let server = TestServer::start_with(
        ServerOptions::new(&fresh_database().await).env("CACHE_MAX_BYTES", "0"),
    )
    .await;
    let mut client = server.client().await;
    let mut live = changes(&mut client, StreamArticleChangesRequest::default())
        .await
        .expect("a stream");
    let mut live_new = FeedReader::open(&mut client, &[], "").await;
    let first = publish_new(&mut client, "Stays", &["Hand"]).await;
    let deleted = publish_new(&mut client, "Deleted by hand", &["Hand"]).await;
    let (seen, deleted_token) = read_changes(&mut live, 2, WAIT).await;
    assert_eq!(slugs(&seen), [first.slug.clone(), deleted.slug.clone()]);
    live_new
        .read_articles(2, WAIT)
        .await
        .expect("the new articles");
    let deleted_new_token = live_new.article_tokens[1].clone();

    assert_eq!(
        delete_by_hand(&server.database_url, &[&deleted.id]).await,
        1
    );
    let after = publish_new(&mut client, "After the deletion", &["Hand"]).await;

    let (seen, _) = read_changes(&mut live, 1, WAIT).await;
    assert_eq!(slugs(&seen), vec![after.slug.clone()]);
    let mut resumed = changes(&mut client, resuming(&deleted_token))
        .await
        .expect("resume");
    let (seen, _) = read_changes(&mut resumed, 1, WAIT).await;
    assert_eq!(slugs(&seen), vec![after.slug.clone()]);
    live_new
        .read_articles(3, WAIT)
        .await
        .expect("the new article");
    assert_eq!(live_new.ids()[2], after.id);
    let mut resumed_new = FeedReader::open(&mut client, &[], &deleted_new_token).await;
    resumed_new.read_articles(1, WAIT).await.expect("resumed");
    assert_eq!(resumed_new.ids(), vec![after.id.clone()]);

    let counts = tag_counts(&list_all_tags(&mut client, 100).await);
    assert_eq!(counts, [("hand".to_owned(), "Hand".to_owned(), 2)]);
}
