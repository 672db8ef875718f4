//! StreamNewArticles against the real server: live delivery, tag filters,
//! resume tokens, argument checks, heartbeats and the stream limit.

use std::time::{Duration, Instant};

use crate::common::*;
use article_service::proto::StreamArticleChangesRequest;
use tonic::Code;

fn titles(reader: &FeedReader) -> Vec<String> {
    reader.articles.iter().map(|a| a.title.clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn live_articles_arrive_once_in_store_order() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut reader = FeedReader::open(&mut client, &[], "").await;

    let mut published = Vec::new();
    for i in 0..5 {
        published.push(publish_new(&mut client, &format!("Live {i}"), &["World"]).await);
    }
    reader.read_articles(5, WAIT).await.expect("five articles");

    let ids: Vec<String> = published.iter().map(|a| a.id.clone()).collect();
    assert_eq!(reader.ids(), ids);
    assert_eq!(reader.ids(), store_order(&server.database_url).await);
    // The article as PublishArticle returned it, each with its own token.
    assert_eq!(reader.articles, published);
    let distinct: std::collections::HashSet<&String> = reader.article_tokens.iter().collect();
    assert_eq!(distinct.len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn tag_filters_match_slug_or_name_in_any_case() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut by_name = FeedReader::open(&mut client, &["US & Canada"], "").await;
    let mut by_lowercase_name = FeedReader::open(&mut client, &["us & canada"], "").await;
    let mut by_upper_slug = FeedReader::open(&mut client, &["RUSSIA"], "").await;
    let mut either = FeedReader::open(&mut client, &["us-canada", "Économie", "russia"], "").await;
    let mut everything = FeedReader::open(&mut client, &[], "").await;

    let a = publish_new(&mut client, "Washington", &["US & Canada"]).await;
    let b = publish_new(&mut client, "Moscow", &["Russia"]).await;
    let c = publish_new(&mut client, "Untagged", &[]).await;
    let d = publish_new(&mut client, "Summit", &["Russia", "us-canada"]).await;
    let e = publish_new(&mut client, "Markets", &["économie"]).await;
    let f = publish_new(&mut client, "Elsewhere", &["Asia"]).await;

    everything.read_articles(6, WAIT).await.unwrap();
    assert_eq!(
        everything.ids(),
        [&a, &b, &c, &d, &e, &f].map(|x| x.id.clone())
    );
    for reader in [&mut by_name, &mut by_lowercase_name] {
        reader.read_articles(2, WAIT).await.unwrap();
        assert_eq!(reader.ids(), [a.id.clone(), d.id.clone()]);
    }
    by_upper_slug.read_articles(2, WAIT).await.unwrap();
    assert_eq!(by_upper_slug.ids(), [b.id.clone(), d.id.clone()]);
    either.read_articles(4, WAIT).await.unwrap();
    assert_eq!(
        either.ids(),
        [&a, &b, &d, &e].map(|x| x.id.clone()),
        "{:?}",
        titles(&either)
    );

    // Nothing else follows on the filtered streams: the next article each
    // gets is a later one that matches.
    let g = publish_new(&mut client, "Later", &["Russia", "US & Canada", "Économie"]).await;
    for reader in [&mut by_name, &mut by_lowercase_name] {
        reader.read_articles(3, WAIT).await.unwrap();
        assert_eq!(reader.articles[2].id, g.id);
    }
    by_upper_slug.read_articles(3, WAIT).await.unwrap();
    assert_eq!(by_upper_slug.articles[2].id, g.id);
    either.read_articles(5, WAIT).await.unwrap();
    assert_eq!(either.articles[4].id, g.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_are_not_new_articles() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut reader = FeedReader::open(&mut client, &["Politics"], "").await;

    let first = article(&unique_title("Original"), &["Politics"]);
    let stored = publish(&mut client, first.clone()).await;
    assert!(stored.created);
    let mut changed = first.clone();
    changed.body = "A corrected body.".into();
    changed.tags.push("Europe".into());
    let updated = publish(&mut client, changed).await;
    assert!(!updated.created);
    assert_eq!(updated.article.as_ref().unwrap().revision, 2);
    let unchanged = publish(&mut client, first).await;
    assert!(!unchanged.created);
    let next = publish_new(&mut client, "Next", &["Politics"]).await;

    reader.read_articles(2, WAIT).await.unwrap();
    assert_eq!(
        reader.ids(),
        [stored.article.unwrap().id.clone(), next.id.clone()]
    );
    // A replay from the first article's token skips the updates too.
    let mut replay = FeedReader::open(&mut client, &[], &reader.article_tokens[0]).await;
    let last = publish_new(&mut client, "Last", &[]).await;
    replay.read_articles(2, WAIT).await.unwrap();
    assert_eq!(replay.ids(), [next.id, last.id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_resume_token_starts_at_the_call() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for i in 0..3 {
        publish_new(&mut client, &format!("Before {i}"), &["World"]).await;
    }
    let mut reader = FeedReader::open(&mut client, &[], "").await;
    let mut filtered = FeedReader::open(&mut client, &["world"], "").await;
    let after = publish_new(&mut client, "After", &["World"]).await;
    reader.read_articles(1, WAIT).await.unwrap();
    filtered.read_articles(1, WAIT).await.unwrap();
    assert_eq!(reader.ids(), std::slice::from_ref(&after.id));
    assert_eq!(filtered.ids(), [after.id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_token_replays_exactly_what_came_after_it_then_goes_live() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut reader = FeedReader::open(&mut client, &[], "").await;
    let mut published = Vec::new();
    for i in 0..6 {
        let tags: &[&str] = if i % 2 == 0 { &["Even"] } else { &["Odd"] };
        published.push(publish_new(&mut client, &format!("Article {i}"), tags).await);
    }
    reader.read_articles(6, WAIT).await.unwrap();
    let ids: Vec<String> = published.iter().map(|a| a.id.clone()).collect();
    assert_eq!(reader.ids(), ids);

    // From each article's token: exactly the articles after it.
    for (index, token) in reader.article_tokens.iter().enumerate() {
        let rest = ids.len() - index - 1;
        let mut replay = FeedReader::open(&mut client, &[], token).await;
        replay.read_articles(rest, WAIT).await.unwrap();
        assert_eq!(replay.ids(), ids[index + 1..], "after article {index}");
        // The replayed tokens are the ones the live stream gave.
        assert_eq!(replay.article_tokens, reader.article_tokens[index + 1..]);
    }

    // With a tag filter: only the matching ones after the token.
    let mut odd = FeedReader::open(&mut client, &["odd"], &reader.article_tokens[1]).await;
    odd.read_articles(2, WAIT).await.unwrap();
    assert_eq!(odd.ids(), [ids[3].clone(), ids[5].clone()]);
    let mut replay_all = FeedReader::open(&mut client, &[], &reader.article_tokens[0]).await;
    replay_all.read_articles(5, WAIT).await.unwrap();

    // Then live, with no gap and no duplicate at the seam.
    let live_odd = publish_new(&mut client, "Live odd", &["Odd"]).await;
    let live_even = publish_new(&mut client, "Live even", &["Even"]).await;
    odd.read_articles(3, WAIT).await.unwrap();
    assert_eq!(odd.articles[2].id, live_odd.id);
    replay_all.read_articles(7, WAIT).await.unwrap();
    let mut expected = ids[1..].to_vec();
    expected.extend([live_odd.id.clone(), live_even.id.clone()]);
    assert_eq!(replay_all.ids(), expected);

    // The newest article's token replays nothing; what follows is live.
    let mut at_head = FeedReader::open(&mut client, &[], &replay_all.token).await;
    let newest = publish_new(&mut client, "Newest", &[]).await;
    at_head.read_articles(1, WAIT).await.unwrap();
    assert_eq!(at_head.ids(), std::slice::from_ref(&newest.id));
    // And the filtered stream skipped the even one without a duplicate.
    let newest_odd = publish_new(&mut client, "Newest odd", &["odd"]).await;
    odd.read_articles(4, WAIT).await.unwrap();
    assert_eq!(odd.articles[3].id, newest_odd.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_altered_and_page_tokens_are_invalid_resume_tokens() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut reader = FeedReader::open(&mut client, &[], "").await;
    publish_new(&mut client, "One", &["Tagged"]).await;
    publish_new(&mut client, "Two", &["Tagged"]).await;
    reader.read_articles(2, WAIT).await.unwrap();
    let good = reader.token.clone();

    let page_token = page_token_after_one(&mut client, "tagged").await;
    assert!(!page_token.is_empty());
    let tags_token = tags_page_token_after_one(&mut client).await;

    let mut cases = tampered_tokens(&good);
    cases.push(("article page token", page_token));
    if !tags_token.is_empty() {
        cases.push(("tag page token", tags_token));
    }
    for (what, token) in cases {
        let status = open_stream(&mut client, &[], &token)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what} resume token was accepted"));
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_eq!(bad_request_fields(&status), ["resume_token"], "{what}");
    }
    // The good token still works.
    open_stream(&mut client, &[], &good)
        .await
        .expect("a valid token");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tag_filters_are_invalid_arguments() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for tags in BAD_TAG_FILTERS {
        let status = open_stream(&mut client, tags, "").await.err().unwrap();
        assert_eq!(status.code(), Code::InvalidArgument, "{tags:?}");
        assert_eq!(bad_request_fields(&status), ["tags"], "{tags:?}");
    }
    let many = too_many_tags();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let status = open_stream(&mut client, &many, "").await.err().unwrap();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_request_fields(&status), ["tags"]);
    // A hundred is fine.
    open_stream(&mut client, &many[..100], "")
        .await
        .expect("100 tags");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_filtered_streams_get_heartbeats_that_move_past_skipped_articles() {
    let database = fresh_database().await;
    let server =
        TestServer::start_with(ServerOptions::new(&database).env("HEARTBEAT_INTERVAL", "1")).await;
    let mut client = server.client().await;
    let mut rare = FeedReader::open(&mut client, &["Rare"], "").await;
    opening_heartbeat(&mut rare.stream).await;

    // Idle: heartbeats about every second, without an article.
    let started = tokio::time::Instant::now();
    for _ in 0..2 {
        match read_one(&mut rare.stream, Duration::from_secs(5)).await {
            Read::Message(message) => {
                assert!(message.article.is_none(), "a heartbeat has no article");
                rare.record(*message);
            }
            other => panic!("expected a heartbeat, got {other:?}"),
        }
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "not too often"
    );

    // Articles the filter skips.
    let mut skipped = Vec::new();
    for i in 0..3 {
        skipped.push(publish_new(&mut client, &format!("Common {i}"), &["Common"]).await);
    }

    // Some heartbeat soon carries a token past the skipped articles: resuming
    // from it without a filter yields the next article, not a skipped one.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut attempt = 0;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no heartbeat moved past the skipped articles"
        );
        let message = match read_one(&mut rare.stream, Duration::from_secs(5)).await {
            Read::Message(message) => message,
            other => panic!("expected a heartbeat, got {other:?}"),
        };
        assert!(message.article.is_none(), "nothing matches the filter");
        let token = message.resume_token.clone();
        rare.record(*message);

        attempt += 1;
        let mut resumed = FeedReader::open(&mut client, &[], &token).await;
        let marker = publish_new(&mut client, &format!("Marker {attempt}"), &["Common"]).await;
        resumed.read_articles(1, WAIT).await.unwrap();
        if resumed.articles[0].id == marker.id {
            break;
        }
        // An earlier heartbeat: it may only precede skipped articles, in order.
        assert!(
            skipped.iter().any(|a| a.id == resumed.articles[0].id)
                || resumed.articles[0].title.starts_with("Marker"),
            "unexpected first article {:?}",
            resumed.articles[0].title
        );
    }

    // The filtered stream still delivers what matches, and only that.
    let wanted = publish_new(&mut client, "Finally", &["rare"]).await;
    rare.read_articles(1, WAIT).await.unwrap();
    assert_eq!(rare.ids(), [wanted.id]);
}

/// A heartbeat follows `HEARTBEAT_INTERVAL` of silence: articles arriving
/// more often than that push it back, and it comes once they stop.
#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_wait_for_a_whole_interval_without_messages() {
    let database = fresh_database().await;
    let server =
        TestServer::start_with(ServerOptions::new(&database).env("HEARTBEAT_INTERVAL", "2")).await;
    let mut client = server.client().await;
    let mut reader = FeedReader::open(&mut client, &[], "").await;
    opening_heartbeat(&mut reader.stream).await;
    let mut publisher = client.clone();
    let published = tokio::spawn(async move {
        let mut ids = Vec::new();
        for i in 0..10 {
            ids.push(
                publish_new(&mut publisher, &format!("Steady {i}"), &["Steady"])
                    .await
                    .id,
            );
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        ids
    });

    // Every message with the time since the one before it.
    let mut last = tokio::time::Instant::now();
    let mut received: Vec<(Option<String>, Duration)> = Vec::new();
    while received
        .iter()
        .filter(|(article, _)| article.is_some())
        .count()
        < 10
    {
        let Read::Message(message) = read_one(&mut reader.stream, WAIT).await else {
            panic!("the stream stopped before 10 articles");
        };
        received.push((message.article.map(|article| article.id), last.elapsed()));
        last = tokio::time::Instant::now();
    }
    let Read::Message(after) = read_one(&mut reader.stream, Duration::from_secs(10)).await else {
        panic!("no heartbeat after the articles");
    };
    assert!(after.article.is_none());
    let silence = last.elapsed();
    assert!(
        silence >= Duration::from_secs(1),
        "the heartbeat came {silence:?} after the last article"
    );

    let ids = published.await.expect("the publisher");
    let articles: Vec<_> = received.iter().filter_map(|(id, _)| id.clone()).collect();
    assert_eq!(articles, ids);
    // While articles came every 400 ms, a heartbeat could only follow a
    // late one (a loaded machine): never less than half the interval after
    // the message before it.
    for (id, gap) in &received {
        if id.is_none() {
            assert!(
                *gap >= Duration::from_secs(1),
                "a heartbeat {gap:?} after a message"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_past_the_limit_are_refused_until_one_closes() {
    let database = fresh_database().await;
    let server =
        TestServer::start_with(ServerOptions::new(&database).env("MAX_STREAMS", "2")).await;
    let mut client = server.client().await;
    let first = open_stream(&mut client, &[], "")
        .await
        .expect("first stream");
    let mut second = FeedReader::open(&mut client, &["world"], "").await;

    let status = open_stream(&mut client, &[], "")
        .await
        .expect_err("a third stream is refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Also on another connection.
    let mut other_client = server.client().await;
    let status = open_stream(&mut other_client, &[], "")
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::ResourceExhausted);
    // Unary calls are not affected.
    publish_new(&mut other_client, "Still publishing", &["World"]).await;
    second.read_articles(1, WAIT).await.unwrap();

    // Once a stream closes, a new one is accepted (after the server notices
    // the cancellation).
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut third = loop {
        match open_stream(&mut other_client, &[], "").await {
            Ok(stream) => break FeedReader::new(stream, ""),
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the closed stream was never released"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let status = open_stream(&mut client, &[], "")
        .await
        .expect_err("full again");
    assert_eq!(status.code(), Code::ResourceExhausted);
    let next = publish_new(&mut client, "After the limit", &["World"]).await;
    third.read_articles(1, WAIT).await.unwrap();
    second.read_articles(2, WAIT).await.unwrap();
    assert_eq!(third.ids(), std::slice::from_ref(&next.id));
    assert_eq!(second.articles[1].id, next.id);
}

/// A stream opened without a token sends the head's token at once, as a
/// heartbeat: a consumer whose stream ends before anything else happened
/// (shutdown, the connection's age) resumes from it and misses nothing
/// stored meanwhile. Both RPCs.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_opened_without_a_token_sends_one_at_once() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut stream = open_stream(&mut client, &[], "").await.expect("a stream");
    let mut changes_stream = changes(&mut client, StreamArticleChangesRequest::default())
        .await
        .expect("a change stream");
    // Well before the first heartbeat (15 s).
    let opened = Instant::now();
    let token = opening_heartbeat(&mut stream).await;
    let changes_token = opening_heartbeat(&mut changes_stream).await;
    assert!(opened.elapsed() < Duration::from_secs(5));
    drop((stream, changes_stream));

    let stored = publish_new(&mut client, "Stored between streams", &[]).await;
    let mut resumed = FeedReader::open(&mut client, &[], &token).await;
    resumed.read_articles(1, WAIT).await.unwrap();
    assert_eq!(resumed.ids(), std::slice::from_ref(&stored.id));
    let mut resumed = changes(
        &mut client,
        StreamArticleChangesRequest {
            resume_token: changes_token,
            ..Default::default()
        },
    )
    .await
    .expect("resumed");
    let (received, _) = read_changes(&mut resumed, 1, WAIT).await;
    assert_eq!(
        received[0].article.as_ref().map(|article| &article.id),
        Some(&stored.id)
    );
}
