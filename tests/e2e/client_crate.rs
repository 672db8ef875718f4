//! The Rust client crate (crates/article-client) against the real binary:
//! paging as a Stream, followers that resume from their stored token across a
//! server restart, that apply every kind of change, and that give up at once
//! on a status that retrying cannot fix.

use std::time::Duration;

use article_client::proto::{
    PublishArticleRequest, WithdrawArticleRequest, withdraw_article_request,
};
use article_client::{
    ArticleChange, ArticleClient, ChangeType, Error, MemoryTokenStore, Reconnect, TokenStore,
};
use futures::TryStreamExt;
use tokio::sync::mpsc;
use tonic::Code;

use crate::common::*;

/// Reconnects quickly, so the tests do not wait on backoff.
const QUICK: Reconnect = Reconnect {
    initial: Duration::from_millis(50),
    max: Duration::from_millis(300),
    jitter: true,
};

async fn client_of(server: &TestServer) -> ArticleClient {
    ArticleClient::connect(server.endpoint())
        .await
        .expect("connect")
        .with_publish_token(PUBLISH_TOKEN)
        .expect("a header-safe token")
}

fn request(title: &str, tags: &[&str]) -> PublishArticleRequest {
    PublishArticleRequest {
        title: title.to_owned(),
        body: format!("Body of {title}."),
        tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
        ..Default::default()
    }
}

/// Publishes a new article; returns its slug.
async fn publish_slug(client: &ArticleClient, title: &str, tags: &[&str]) -> String {
    let response = client.publish(request(title, tags)).await.expect("publish");
    assert!(response.created, "{title} is new");
    response.article.expect("the stored article").slug
}

/// Receives `count` items, failing the test if they do not come within WAIT
/// each.
async fn receive<T>(events: &mut mpsc::UnboundedReceiver<T>, count: usize) -> Vec<T> {
    let mut received = Vec::new();
    while received.len() < count {
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Some(event)) => received.push(event),
            Ok(None) => panic!("the follower stopped after {} events", received.len()),
            Err(_) => panic!("{} of {count} events within {WAIT:?}", received.len()),
        }
    }
    received
}

/// Runs `follow_new` in the background, sending each article's slug.
fn follow_new_slugs(
    client: &ArticleClient,
    store: MemoryTokenStore,
) -> (
    mpsc::UnboundedReceiver<String>,
    tokio::task::JoinHandle<Result<std::convert::Infallible, Error>>,
) {
    let (sender, slugs) = mpsc::unbounded_channel();
    let follower = client.follow_new(&[], store).reconnect(QUICK);
    let task = tokio::spawn(follower.run(move |article| {
        let sent = sender.send(article.slug);
        async move { sent }
    }));
    (slugs, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn list_by_tag_follows_page_tokens_across_page_boundaries() {
    let server = TestServer::start().await;
    let client = client_of(&server).await;
    // 45 articles: three pages of the default 20, published one second apart
    // so that newest first is one exact order.
    let mut slugs = Vec::new();
    for i in 0..45 {
        let at = timestamp(&format!("2024-03-01T10:{:02}:{:02}Z", i / 60, i % 60));
        let response = client
            .publish(PublishArticleRequest {
                published_at: Some(at),
                ..request(&format!("Paged {i}"), &["Paging"])
            })
            .await
            .expect("publish");
        slugs.push(response.article.expect("an article").slug);
    }
    publish_slug(&client, "Another tag", &["Elsewhere"]).await;
    slugs.reverse();

    let listed: Vec<String> = client
        .list_by_tag("paging")
        .map_ok(|article| article.slug)
        .try_collect()
        .await
        .expect("list_by_tag");
    assert_eq!(listed, slugs);

    let none: Vec<_> = client
        .list_by_tag("no-such-tag")
        .try_collect()
        .await
        .expect("an unknown tag is an empty list");
    assert!(none.is_empty());
    let error = client
        .list_by_tag("!!!")
        .try_collect::<Vec<_>>()
        .await
        .expect_err("a tag with no letter or digit");
    assert_eq!(
        error.status().map(tonic::Status::code),
        Some(Code::InvalidArgument)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn follow_new_resumes_from_its_stored_token_across_a_server_kill_and_restart() {
    let database = fresh_database().await;
    let mut first = TestServer::start_with(ServerOptions::new(&database)).await;
    let addr = first.addr;
    let client = client_of(&first).await;

    // The store starts from a known point: the token of a seed article read
    // on a stream of the test's own, so nothing is missed before the
    // follower's subscription is in place.
    let mut raw = first.client().await;
    let mut reader = FeedReader::open(&mut raw, &[], "").await;
    publish_slug(&client, "Seed", &["News"]).await;
    reader.read_articles(1, WAIT).await.expect("the seed");
    let store = MemoryTokenStore::with_token(reader.token.clone());

    let (mut slugs, follower) = follow_new_slugs(&client, store.clone());
    let mut published = Vec::new();
    for i in 0..3 {
        published.push(publish_slug(&client, &format!("Before kill {i}"), &["News"]).await);
    }
    let mut received = receive(&mut slugs, 3).await;
    assert_eq!(received, published);

    // A crash, then a new process on the same address (a Service in front of
    // replicas): the follower reconnects by itself and resumes.
    first.kill();
    drop(first);
    let second =
        TestServer::start_with(ServerOptions::new(&database).env("GRPC_ADDR", &addr.to_string()))
            .await;
    for i in 0..3 {
        published.push(publish_slug(&client, &format!("After restart {i}"), &["News"]).await);
    }
    received.extend(receive(&mut slugs, 3).await);
    assert_eq!(received, published, "none lost, none twice");

    // The follower stops; the next one resumes from what the first stored.
    follower.abort();
    assert!(follower.await.expect_err("aborted").is_cancelled());
    published.push(publish_slug(&client, "While stopped", &["News"]).await);
    let (mut slugs, follower) = follow_new_slugs(&client, store.clone());
    assert_eq!(receive(&mut slugs, 1).await, [published[6].clone()]);
    let live = publish_slug(&client, "Live again", &["News"]).await;
    assert_eq!(receive(&mut slugs, 1).await, [live]);
    follower.abort();
    drop(second);
}

#[tokio::test(flavor = "multi_thread")]
async fn follow_changes_applies_published_updated_and_withdrawn() {
    let server = TestServer::start().await;
    let client = client_of(&server).await;
    let (sender, mut changes) = mpsc::unbounded_channel::<ArticleChange>();
    let store = MemoryTokenStore::new();
    // From the beginning: every change of this fresh database, in order,
    // whenever the follower's subscription is in place.
    let follower = tokio::spawn(
        client
            .follow_changes(&["Desk"], store.clone())
            .from_beginning()
            .reconnect(QUICK)
            .run(move |change| {
                let sent = sender.send(change);
                async move { sent }
            }),
    );

    let kept = publish_slug(&client, "Kept", &["Desk"]).await;
    let mut corrected = request("Corrected", &["Desk"]);
    let first = client.publish(corrected.clone()).await.expect("publish");
    let slug = first.article.expect("an article").slug;
    corrected.slug = slug.clone();
    corrected.body = "Corrected body.".to_owned();
    client.publish(corrected).await.expect("update");
    publish_slug(&client, "Other desk", &["Elsewhere"]).await;
    client
        .withdraw(WithdrawArticleRequest {
            key: Some(withdraw_article_request::Key::Slug(slug.clone())),
            reason: "legal".to_owned(),
        })
        .await
        .expect("withdraw");

    let received = receive(&mut changes, 4).await;
    let summary: Vec<(ChangeType, String, i64, String)> = received
        .iter()
        .map(|change| {
            let article = change.article.clone().expect("an article");
            (
                change.r#type(),
                article.slug,
                article.revision,
                change.reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (ChangeType::Published, kept.clone(), 1, String::new()),
            (ChangeType::Published, slug.clone(), 1, String::new()),
            (ChangeType::Updated, slug.clone(), 2, String::new()),
            (ChangeType::Withdrawn, slug.clone(), 3, "legal".to_owned()),
        ]
    );
    assert_eq!(
        received[2]
            .article
            .as_ref()
            .map(|article| article.body.as_str()),
        Some("Corrected body.")
    );

    // Applied by revision, the copy holds exactly the tag's public articles.
    let mut copy = std::collections::BTreeMap::new();
    for change in &received {
        let article = change.article.clone().expect("an article");
        if change.r#type() == ChangeType::Withdrawn {
            copy.remove(&article.slug);
        } else {
            copy.insert(article.slug.clone(), article);
        }
    }
    assert_eq!(copy.keys().cloned().collect::<Vec<_>>(), [kept]);
    // The stored token is that of the last change handled (or a later
    // heartbeat's): resuming from it sends nothing old.
    assert!(store.token().is_some_and(|token| !token.is_empty()));
    follower.abort();
}

/// `snapshot` pages the whole tag and gives the token its changes follow
/// from: what was published before it comes in the snapshot, what after
/// it on the follower, nothing twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_then_its_changes_make_a_copy_of_the_tag() {
    let server = TestServer::start().await;
    let client = client_of(&server).await;
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(publish_slug(&client, &format!("Snapshot {i}"), &["Snap"]).await);
    }
    let (articles, changes_token) = client.snapshot("Snap").await.expect("snapshot");
    let slugs: Vec<String> = articles.into_iter().map(|article| article.slug).collect();
    before.reverse();
    assert_eq!(slugs, before, "newest first");
    assert!(!changes_token.is_empty());

    let after = publish_slug(&client, "After the snapshot", &["Snap"]).await;
    let (sender, mut changes) = mpsc::unbounded_channel::<ArticleChange>();
    let follower = tokio::spawn(
        client
            .follow_changes(&["Snap"], MemoryTokenStore::with_token(changes_token))
            .reconnect(QUICK)
            .run(move |change| {
                let sent = sender.send(change);
                async move { sent }
            }),
    );
    let received = receive(&mut changes, 1).await;
    assert_eq!(
        received[0].article.as_ref().map(|article| &article.slug),
        Some(&after)
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), changes.recv())
            .await
            .is_err(),
        "nothing more"
    );
    follower.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_the_service_rejects_ends_the_follower_at_once_without_retrying() {
    let server = TestServer::start().await;
    let client = client_of(&server).await;
    // A page token on StreamNewArticles, and garbage on StreamArticleChanges.
    publish_slug(&client, "Paged", &["Desk"]).await;
    publish_slug(&client, "Paged too", &["Desk"]).await;
    let page = client
        .list_page(article_client::proto::ListArticlesByTagRequest {
            tag: "desk".to_owned(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("a page");
    assert!(!page.next_page_token.is_empty());
    // Reconnect waits of a minute: a retry would outlast WAIT.
    let patient = Reconnect {
        initial: Duration::from_secs(60),
        max: Duration::from_secs(60),
        jitter: false,
    };

    let mut store = MemoryTokenStore::with_token(page.next_page_token.clone());
    let ended = tokio::time::timeout(
        WAIT,
        client
            .follow_new(&[], store.clone())
            .reconnect(patient)
            .run(|_| async { Ok::<_, Error>(()) }),
    )
    .await
    .expect("returns without retrying");
    let status = ended
        .expect_err("never Ok")
        .status()
        .cloned()
        .expect("a status");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    // The rejected token is left as it was.
    assert_eq!(store.load().await.unwrap(), Some(page.next_page_token));

    let ended = tokio::time::timeout(
        WAIT,
        client
            .follow_changes(&[], MemoryTokenStore::with_token("not-a-token"))
            .reconnect(patient)
            .run(|_| async { Ok::<_, Error>(()) }),
    )
    .await
    .expect("returns without retrying");
    let status = ended
        .expect_err("never Ok")
        .status()
        .cloned()
        .expect("a status");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // The changes token of a page is a StreamArticleChanges token: bound to
    // that RPC, so StreamNewArticles rejects it.
    let ended = tokio::time::timeout(
        WAIT,
        client
            .follow_new(&[], MemoryTokenStore::with_token(page.changes_token))
            .reconnect(patient)
            .run(|_| async { Ok::<_, Error>(()) }),
    )
    .await
    .expect("returns without retrying");
    assert_eq!(
        ended
            .expect_err("never Ok")
            .status()
            .map(tonic::Status::code),
        Some(Code::InvalidArgument)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_started_before_the_server_retries_until_it_is_up() {
    // A free port, with nothing listening on it yet: connections are refused.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let client = ArticleClient::connect_lazy(format!("http://{addr}"))
        .expect("an endpoint")
        .with_publish_token(PUBLISH_TOKEN)
        .expect("a header-safe token");
    let (sender, mut changes) = mpsc::unbounded_channel::<ArticleChange>();
    let follower = tokio::spawn(
        client
            .follow_changes(&[], MemoryTokenStore::new())
            .from_beginning()
            .reconnect(QUICK)
            .run(move |change| {
                let sent = sender.send(change);
                async move { sent }
            }),
    );
    // Refused a few times meanwhile (each within the connect timeout).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!follower.is_finished(), "connection errors are retried");

    let server = TestServer::start_with(
        ServerOptions::new(&fresh_database().await).env("GRPC_ADDR", &addr.to_string()),
    )
    .await;
    let slug = publish_slug(&client, "First", &["Desk"]).await;
    let received = receive(&mut changes, 1).await;
    assert_eq!(
        received[0]
            .article
            .as_ref()
            .map(|article| article.slug.clone()),
        Some(slug)
    );
    follower.abort();
    drop(server);
}
