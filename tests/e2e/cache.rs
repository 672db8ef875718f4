//! The read cache's consistency bound (`src/cache`): the replica that stored
//! a change serves it on its next read; every other replica within
//! `OTHER_REPLICA_BOUND` while its listener is connected; and a replica that
//! lost its listener serves nothing from memory until it listens again.

use std::time::{Duration, Instant};

use crate::common::proxy::{DbProxy, target_of};
use crate::common::*;
use article_service::proto::{ListArticlesByTagRequest, PublishArticleRequest};
use tonic::Code;

/// What the README promises for other replicas (a notification's trip,
/// milliseconds in practice), with room for a loaded test machine.
const OTHER_REPLICA_BOUND: Duration = Duration::from_secs(2);

const ARTICLE_HITS: &str = r#"article_cache_lookups_total{kind="article",result="hit"}"#;
const PAGE_HITS: &str = r#"article_cache_lookups_total{kind="first_page",result="hit"}"#;

async fn first_page_titles(
    client: &mut article_service::proto::article_service_client::ArticleServiceClient<
        tonic::transport::Channel,
    >,
    tag: &str,
) -> Vec<String> {
    client
        .list_articles_by_tag(ListArticlesByTagRequest {
            tag: tag.into(),
            page_size: 0,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .expect("a first page")
        .into_inner()
        .articles
        .into_iter()
        .map(|article| article.title)
        .collect()
}

/// Waits until GetArticle of `id` answers with `title`; fails the test
/// after `within`.
async fn wait_for_title(
    what: &str,
    within: Duration,
    client: &article_service::proto::article_service_client::ArticleServiceClient<
        tonic::transport::Channel,
    >,
    id: &str,
    title: &str,
) {
    eventually(what, within, || {
        let mut client = client.clone();
        async move {
            get_by_id(&mut client, id)
                .await
                .is_ok_and(|article| article.title == title)
        }
    })
    .await;
}

/// The update of an article: same slug, another title.
fn retitled(article: &article_service::proto::Article, title: &str) -> PublishArticleRequest {
    PublishArticleRequest {
        slug: article.slug.clone(),
        title: title.into(),
        summary: article.summary.clone(),
        body: article.body.clone(),
        byline: article.byline.clone(),
        tags: article.tags.iter().map(|tag| tag.name.clone()).collect(),
        published_at: article.published_at,
    }
}

/// Reads `article` by id and slug, and `tag`'s first page, until they are
/// served from the cache (asserted on the hit counters). The cache serves
/// once the server's listener listens, shortly after it starts.
async fn warm(server: &TestServer, article: &article_service::proto::Article, tag: &str) {
    let client = server.client().await;
    let served_from_memory = server.metric(ARTICLE_HITS).await.unwrap_or(0.0);
    eventually("the cache serves", Duration::from_secs(10), || {
        let mut client = client.clone();
        let id = article.id.clone();
        async move {
            get_by_id(&mut client, &id).await.expect("by id");
            server.metric(ARTICLE_HITS).await.unwrap_or(0.0) > served_from_memory
        }
    })
    .await;
    // A change's notification heard late (a busy machine) drops what a
    // read just filled: warm until a whole round is served from memory.
    eventually(
        "reads by id and slug and the first page are hits",
        Duration::from_secs(10),
        || {
            let mut client = client.clone();
            async move {
                let article_hits = server.metric(ARTICLE_HITS).await.unwrap_or(0.0);
                let page_hits = server.metric(PAGE_HITS).await.unwrap_or(0.0);
                get_by_id(&mut client, &article.id).await.expect("by id");
                get_by_slug(&mut client, &article.slug)
                    .await
                    .expect("by slug");
                // The second read of the page is a hit; the first is too
                // once an earlier round filled it.
                first_page_titles(&mut client, tag).await;
                first_page_titles(&mut client, tag).await;
                server.metric(ARTICLE_HITS).await == Some(article_hits + 2.0)
                    && server
                        .metric(PAGE_HITS)
                        .await
                        .is_some_and(|hits| hits >= page_hits + 1.0)
            }
        },
    )
    .await;
}

#[tokio::test]
async fn the_replica_that_stored_a_change_serves_it_on_the_next_read() {
    let database = fresh_database().await;
    let server = TestServer::start_with(ServerOptions::new(&database)).await;
    let mut client = server.client().await;
    let first = publish_new(&mut client, "Cached first", &["Cache Tag"]).await;
    warm(&server, &first, "cache-tag").await;

    publish(&mut client, retitled(&first, "Cached first, corrected")).await;
    let second = publish_new(&mut client, "Cached second", &["Cache Tag"]).await;

    // No waiting: the very next reads.
    let by_id = get_by_id(&mut client, &first.id).await.expect("by id");
    let by_slug = get_by_slug(&mut client, &first.slug)
        .await
        .expect("by slug");
    assert_eq!(by_id.title, "Cached first, corrected");
    assert_eq!(by_id.revision, 2);
    assert_eq!(by_slug, by_id);
    assert_eq!(
        first_page_titles(&mut client, "Cache Tag").await,
        vec![second.title.clone(), "Cached first, corrected".to_owned()]
    );
}

#[tokio::test]
async fn other_replicas_serve_a_change_within_the_bound() {
    let database = fresh_database().await;
    let writer = TestServer::start_with(ServerOptions::new(&database)).await;
    let reader = TestServer::start_with(ServerOptions::new(&database)).await;
    let mut writing = writer.client().await;
    let mut reading = reader.client().await;
    let first = publish_new(&mut writing, "Replicated first", &["Replicas"]).await;
    warm(&reader, &first, "replicas").await;

    // An update: not on the feed, announced on article_changes.
    let changed_at = Instant::now();
    publish(
        &mut writing,
        retitled(&first, "Replicated first, corrected"),
    )
    .await;
    wait_for_title(
        "the other replica serves the update",
        OTHER_REPLICA_BOUND,
        &reading,
        &first.id,
        "Replicated first, corrected",
    )
    .await;
    println!(
        "update seen by the other replica after {:?}",
        changed_at.elapsed()
    );
    let by_slug = get_by_slug(&mut reading, &first.slug)
        .await
        .expect("by slug");
    assert_eq!(by_slug.revision, 2);

    // A new article: on the feed, which drops its tags' first pages.
    warm(&reader, &by_slug, "replicas").await;
    let second = publish_new(&mut writing, "Replicated second", &["Replicas"]).await;
    eventually(
        "the other replica's first page shows the new article",
        OTHER_REPLICA_BOUND,
        || {
            let mut reading = reading.clone();
            let expected = vec![
                second.title.clone(),
                "Replicated first, corrected".to_owned(),
            ];
            async move { first_page_titles(&mut reading, "Replicas").await == expected }
        },
    )
    .await;
}

#[tokio::test]
async fn a_replica_that_cannot_hear_changes_serves_nothing_from_memory() {
    let database = fresh_database().await;
    let proxy = DbProxy::start(target_of(&database)).await;
    let writer = TestServer::start_with(ServerOptions::new(&database)).await;
    let reader = TestServer::start_with(ServerOptions::new(&proxy.url_for(&database))).await;
    let mut writing = writer.client().await;
    let mut reading = reader.client().await;
    let article = publish_new(&mut writing, "Unheard", &["Quiet"]).await;
    warm(&reader, &article, "quiet").await;

    // The reader loses the database, its listener with it; a change made
    // meanwhile is never announced to it.
    proxy.cut();
    eventually(
        "no answer from memory without the listener",
        Duration::from_secs(10),
        || {
            let mut reading = reading.clone();
            let id = article.id.clone();
            async move {
                get_by_id(&mut reading, &id)
                    .await
                    .map_err(|status| status.code())
                    == Err(Code::Unavailable)
            }
        },
    )
    .await;
    publish(&mut writing, retitled(&article, "Unheard, corrected")).await;

    proxy.restore();
    wait_for_title(
        "the reader recovers with the change",
        Duration::from_secs(20),
        &reading,
        &article.id,
        "Unheard, corrected",
    )
    .await;
    assert_eq!(
        get_by_slug(&mut reading, &article.slug)
            .await
            .map(|article| article.revision)
            .ok(),
        Some(2)
    );
}

#[tokio::test]
async fn a_cache_of_zero_bytes_reads_the_database_every_time() {
    let database = fresh_database().await;
    let server =
        TestServer::start_with(ServerOptions::new(&database).env("CACHE_MAX_BYTES", "0")).await;
    let mut client = server.client().await;
    let article = publish_new(&mut client, "Uncached", &["Off"]).await;
    for _ in 0..3 {
        assert_eq!(
            get_by_id(&mut client, &article.id)
                .await
                .map(|a| a.title)
                .ok(),
            Some(article.title.clone())
        );
    }
    assert_eq!(server.metric(ARTICLE_HITS).await, None);
}

/// An article deleted by hand leaves every replica's cache within the
/// bound: GetArticle by id and slug and its tag's first page, which were
/// served from memory, no longer show it.
#[tokio::test]
async fn an_article_deleted_by_hand_leaves_every_cache() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let kept = publish_new(&mut client, "Kept beside", &["Erased"]).await;
    let erased = publish_new(&mut client, "Erased by hand", &["Erased"]).await;
    warm(&server, &erased, "erased").await;

    assert_eq!(delete_by_hand(&server.database_url, &[&erased.id]).await, 1);
    eventually("the deletion leaves the cache", OTHER_REPLICA_BOUND, || {
        let mut client = client.clone();
        let (id, slug) = (erased.id.clone(), erased.slug.clone());
        let kept_title = kept.title.clone();
        async move {
            get_by_id(&mut client, &id)
                .await
                .is_err_and(|status| status.code() == Code::NotFound)
                && get_by_slug(&mut client, &slug)
                    .await
                    .is_err_and(|status| status.code() == Code::NotFound)
                && first_page_titles(&mut client, "erased").await == vec![kept_title]
        }
    })
    .await;
}
