//! End to end: GetArticle, ListArticlesByTag and ListTags against the real
//! binary and a fresh PostgreSQL database, rule by rule of the contract.

use crate::common::*;

use std::collections::HashSet;
use std::time::Duration;

use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::{
    Article, ListArticlesByTagRequest, ListTagsRequest, PublishArticleRequest,
    StreamNewArticlesRequest, WithdrawArticleRequest, get_article_request::Key,
    withdraw_article_request,
};
use tonic::Code;
use tonic::transport::Channel;

async fn list_page(
    client: &mut ArticleServiceClient<Channel>,
    tag: &str,
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<Article>, String), tonic::Status> {
    client
        .list_articles_by_tag(ListArticlesByTagRequest {
            tag: tag.to_owned(),
            page_size,
            page_token: page_token.to_owned(),
            ..Default::default()
        })
        .await
        .map(|response| {
            let page = response.into_inner();
            (page.articles, page.next_page_token)
        })
}

fn assert_invalid(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    assert_eq!(bad_request_fields(&status), [field], "{what}: {status:?}");
}

/// `n` articles in `tag`, published one second apart from 2020-01-01 on.
async fn publish_many(client: &mut ArticleServiceClient<Channel>, tag: &str, n: usize) {
    for i in 0..n {
        let request = PublishArticleRequest {
            published_at: Some(prost_types::Timestamp {
                seconds: 1_577_836_800 + i64::try_from(i).unwrap(),
                nanos: 0,
            }),
            ..article(&format!("Article number {i}"), &[tag])
        };
        assert!(publish(client, request).await.created);
    }
}

/// The order ListArticlesByTag promises: published_at descending, then id
/// descending (UUIDs compare like their lowercase hyphenated text).
fn newest_first(articles: &[Article]) -> Vec<String> {
    let mut sorted: Vec<&Article> = articles.iter().collect();
    sorted.sort_by(|a, b| {
        let key = |x: &Article| {
            let at = x.published_at.unwrap();
            (at.seconds, at.nanos, x.id.clone())
        };
        key(b).cmp(&key(a))
    });
    sorted.iter().map(|article| article.id.clone()).collect()
}

// --------------------------------------------------------------- GetArticle

#[tokio::test]
async fn get_article_by_id_in_any_case_and_by_slug() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let stored = publish(
        &mut client,
        article_at("Get me", &["Getters"], "2021-06-01T12:00:00Z"),
    )
    .await
    .article
    .unwrap();
    assert_eq!(stored.id, stored.id.to_lowercase());
    assert_eq!(stored.slug, "2021-06-01-get-me");

    assert_eq!(get_by_id(&mut client, &stored.id).await.unwrap(), stored);
    assert_eq!(
        get_by_id(&mut client, &stored.id.to_uppercase())
            .await
            .unwrap(),
        stored
    );
    assert_eq!(
        get_by_slug(&mut client, &stored.slug).await.unwrap(),
        stored
    );
}

#[tokio::test]
async fn get_article_unknown_is_not_found() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish(&mut client, article("Present", &["Here"])).await;

    for id in [
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::now_v7().to_string().to_uppercase(),
        uuid::Uuid::nil().to_string(),
    ] {
        let status = get_by_id(&mut client, &id).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "id {id}: {status:?}");
    }
    for slug in ["2021-06-01-absent", "absent", "UPPER-case-slug"] {
        let status = get_by_slug(&mut client, slug).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "slug {slug}: {status:?}");
    }
}

#[tokio::test]
async fn get_article_without_a_usable_key_is_invalid() {
    let server = TestServer::start().await;
    let mut client = server.client().await;

    assert_invalid(get_article(&mut client, None).await, "key", "no key");
    assert_invalid(get_by_id(&mut client, "").await, "id", "empty id");
    assert_invalid(get_by_slug(&mut client, "").await, "slug", "empty slug");
    for id in [
        "not-a-uuid",
        "12345",
        "0190000-0000-7000-8000-000000000001",
        "g1900000-0000-7000-8000-000000000001",
        "01900000-0000-7000-8000-0000000000011",
        " 01900000-0000-7000-8000-000000000001",
    ] {
        assert_invalid(get_by_id(&mut client, id).await, "id", id);
    }
}

// -------------------------------------------------------- ListArticlesByTag

#[tokio::test]
async fn articles_by_tag_are_newest_first_then_by_id_descending() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut published = Vec::new();
    // Equal published_at values, interleaved with distinct ones, so the id
    // tie-break decides within each group.
    for (i, at) in [
        "2020-05-05T10:00:00Z",
        "2020-05-05T10:00:00Z",
        "2021-01-01T00:00:00Z",
        "2020-05-05T10:00:00Z",
        "2019-01-01T00:00:00Z",
        "2021-01-01T00:00:00Z",
        "2020-05-05T10:00:00.000001Z",
        "2020-05-05T10:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        let response = publish(
            &mut client,
            article_at(&format!("Ordered {i}"), &["Order"], at),
        )
        .await;
        published.push(response.article.unwrap());
    }
    // Another tag's articles never show up.
    publish(
        &mut client,
        article_at("Elsewhere", &["Other"], "2025-01-01T00:00:00Z"),
    )
    .await;

    let expected = newest_first(&published);
    let (page, token) = list_page(&mut client, "order", 100, "").await.unwrap();
    assert_eq!(ids(&page), expected);
    assert!(token.is_empty());
    // Articles come whole, as GetArticle returns them.
    for article in &page {
        assert_eq!(&get_by_id(&mut client, &article.id).await.unwrap(), article);
    }
    // The same order, one article per page.
    let (one_by_one, pages) = list_all_by_tag(&mut client, "Order", 1).await;
    assert_eq!(ids(&one_by_one), expected);
    assert_eq!(pages, expected.len());
    // The equal-time group really is ordered by id descending.
    let group: Vec<&Article> = page
        .iter()
        .filter(|a| a.published_at == Some(timestamp("2020-05-05T10:00:00Z")))
        .collect();
    assert_eq!(group.len(), 4);
    assert!(group.windows(2).all(|w| w[0].id > w[1].id));
}

#[tokio::test]
async fn page_size_zero_means_20_and_above_100_means_100() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish_many(&mut client, "Bulk", 105).await;

    let (page, token) = list_page(&mut client, "bulk", 0, "").await.unwrap();
    assert_eq!(page.len(), 20);
    assert!(!token.is_empty());

    for size in [101, 1000, i32::MAX] {
        let (page, token) = list_page(&mut client, "bulk", size, "").await.unwrap();
        assert_eq!(page.len(), 100, "page_size {size}");
        let (rest, last_token) = list_page(&mut client, "bulk", size, &token).await.unwrap();
        assert_eq!(rest.len(), 5);
        assert!(last_token.is_empty());
    }
    let (page, _) = list_page(&mut client, "bulk", 100, "").await.unwrap();
    assert_eq!(page.len(), 100);
    let (page, _) = list_page(&mut client, "bulk", 7, "").await.unwrap();
    assert_eq!(page.len(), 7);

    let (all, pages) = list_all_by_tag(&mut client, "bulk", 0).await;
    assert_eq!(all.len(), 105);
    assert_eq!(pages, 6);
    assert_eq!(ids(&all), newest_first(&all));

    for size in [-1, i32::MIN] {
        assert_invalid(
            list_page(&mut client, "bulk", size, "").await,
            "page_size",
            "negative page_size",
        );
    }
}

#[tokio::test]
async fn tag_resolves_by_slug_or_display_name_in_any_case() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish(
        &mut client,
        article_at("One", &["US & Canada"], "2020-01-01T00:00:00Z"),
    )
    .await;
    publish(
        &mut client,
        article_at("Two", &["Russia", "US & Canada"], "2020-01-02T00:00:00Z"),
    )
    .await;

    let (expected, _) = list_page(&mut client, "us-canada", 0, "").await.unwrap();
    assert_eq!(expected.len(), 2);
    for tag in [
        "US & Canada",
        "us & canada",
        "US-CANADA",
        "Us-Canada",
        "  us   canada! ",
    ] {
        let (page, token) = list_page(&mut client, tag, 0, "").await.unwrap();
        assert_eq!(page, expected, "tag {tag:?}");
        assert!(token.is_empty());
    }

    // A page token issued under one spelling of the tag serves another.
    let (first, token) = list_page(&mut client, "US & Canada", 1, "").await.unwrap();
    let (second, last) = list_page(&mut client, "us-canada", 1, &token)
        .await
        .unwrap();
    assert_eq!(ids(&[first, second].concat()), ids(&expected));
    assert!(last.is_empty());

    for tag in ["", "!!!", "   ", "-", "&"] {
        assert_invalid(list_page(&mut client, tag, 0, "").await, "tag", tag);
    }

    for tag in ["Unknown", "us", "canada", "us-canada-extra"] {
        let (page, token) = list_page(&mut client, tag, 0, "").await.unwrap();
        assert!(page.is_empty(), "tag {tag:?}");
        assert!(token.is_empty(), "tag {tag:?}");
    }
}

#[tokio::test]
async fn following_page_tokens_returns_every_article_once() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish_many(&mut client, "Paged", 23).await;
    let (expected, pages) = list_all_by_tag(&mut client, "paged", 100).await;
    assert_eq!(expected.len(), 23);
    assert_eq!(pages, 1);

    for size in [1, 2, 5, 22, 23, 24] {
        let (all, pages) = list_all_by_tag(&mut client, "paged", size).await;
        assert_eq!(ids(&all), ids(&expected), "page_size {size}");
        let size = usize::try_from(size).unwrap();
        assert_eq!(pages, 23_usize.div_ceil(size), "page_size {size}");
    }

    // page_size changes from page to page.
    let mut seen = Vec::new();
    let mut token = String::new();
    for size in [3, 1, 10, 0, 5] {
        let (page, next) = list_page(&mut client, "paged", size, &token).await.unwrap();
        seen.extend(page);
        token = next;
        if token.is_empty() {
            break;
        }
    }
    assert!(token.is_empty(), "3 + 1 + 10 + 20 covers 23 articles");
    assert_eq!(ids(&seen), ids(&expected));
}

#[tokio::test]
async fn paging_is_stable_while_articles_are_published() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish_many(&mut client, "Stable", 12).await;
    let (expected, _) = list_all_by_tag(&mut client, "stable", 100).await;

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut round = 0;
    loop {
        let (page, next) = list_page(&mut client, "stable", 3, &token).await.unwrap();
        seen.extend(page);
        if next.is_empty() {
            break;
        }
        token = next;
        // Newer, older, and equal to existing times; some in other tags too.
        for (i, at) in [
            "2025-01-01T00:00:00Z",
            "2000-01-01T00:00:00Z",
            "2020-01-01T00:00:05Z",
        ]
        .iter()
        .enumerate()
        {
            publish(
                &mut client,
                article_at(&format!("Late {round} {i}"), &["Stable", "Noise"], at),
            )
            .await;
        }
        round += 1;
    }
    assert_eq!(round, 3);
    assert_eq!(ids(&seen), ids(&expected));
    let unique: HashSet<&String> = seen.iter().map(|a| &a.id).collect();
    assert_eq!(unique.len(), seen.len());

    // A new paging session sees the new articles too.
    let (now, _) = list_all_by_tag(&mut client, "stable", 7).await;
    assert_eq!(now.len(), 12 + 9);
    assert_eq!(ids(&now), newest_first(&now));
}

/// A paging session lists the tag as it was at its snapshot: an article
/// moved to another date, or out of the tag, while the session pages keeps
/// its place of then (exactly once, none skipped, none twice) and shows its
/// revision of then; a new session lists the tag as it is now.
#[tokio::test]
async fn paging_lists_the_tag_as_it_was_when_paging_began() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let at = |hour: u32| format!("2024-03-01T{hour:02}:00:00Z");
    let request = |slug: &str, tags: &[&str], hour: u32| PublishArticleRequest {
        slug: slug.to_owned(),
        ..article_at(&format!("Desk {slug}"), tags, &at(hour))
    };
    let mut originals = Vec::new();
    for (slug, hour) in [("a1", 1), ("a2", 2), ("a3", 3), ("a4", 4), ("a5", 5)] {
        originals.push(
            publish(&mut client, request(slug, &["Desk"], hour))
                .await
                .article
                .unwrap(),
        );
    }
    let slugs = |articles: &[Article]| -> Vec<String> {
        articles
            .iter()
            .map(|article| article.slug.clone())
            .collect()
    };

    let (first, token) = list_page(&mut client, "desk", 2, "").await.unwrap();
    assert_eq!(slugs(&first), ["a5", "a4"]);
    // While the session pages: the oldest moves to the top, the newest
    // (already listed) to the bottom, a3 leaves the tag, a new one comes.
    publish(&mut client, request("a1", &["Desk"], 9)).await;
    publish(&mut client, request("a5", &["Desk"], 0)).await;
    publish(&mut client, request("a3", &["Elsewhere"], 3)).await;
    publish(&mut client, request("a6", &["Desk"], 8)).await;

    let mut seen = first;
    let mut token = token;
    while !token.is_empty() {
        let (page, next) = list_page(&mut client, "desk", 2, &token).await.unwrap();
        seen.extend(page);
        token = next;
    }
    assert_eq!(slugs(&seen), ["a5", "a4", "a3", "a2", "a1"]);
    // Those moved before they were listed show their revision of then
    // (the session's changes_token delivers the move); the others, as
    // they are.
    assert_eq!(
        seen[2..],
        [
            originals[2].clone(),
            originals[1].clone(),
            originals[0].clone()
        ]
    );

    // A new session: the tag as it is now.
    let (now, _) = list_all_by_tag(&mut client, "desk", 2).await;
    assert_eq!(slugs(&now), ["a1", "a6", "a4", "a2", "a5"]);
    let (elsewhere, _) = list_all_by_tag(&mut client, "elsewhere", 2).await;
    assert_eq!(slugs(&elsewhere), ["a3"]);
}

/// A takedown is never served again, also not to a paging session that
/// began before it: an article withdrawn after the snapshot, then published
/// again with other tags (so its listing of then is kept), is left out of
/// the session's later pages rather than shown with its revision of then.
#[tokio::test]
async fn paging_never_shows_a_revision_from_before_a_withdrawal() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let request = |slug: &str, title: &str, tags: &[&str], hour: u32| PublishArticleRequest {
        slug: slug.to_owned(),
        ..article_at(title, tags, &format!("2024-03-01T{hour:02}:00:00Z"))
    };
    publish(
        &mut client,
        request("killed", "Libellous original", &["Desk"], 1),
    )
    .await;
    publish(&mut client, request("kept", "Kept", &["Desk"], 2)).await;
    let (first, token) = list_page(&mut client, "desk", 1, "").await.unwrap();
    assert_eq!(first[0].slug, "kept");
    assert!(!token.is_empty());

    client
        .withdraw_article(authorized(WithdrawArticleRequest {
            key: Some(withdraw_article_request::Key::Slug("killed".to_owned())),
            reason: "legal".to_owned(),
        }))
        .await
        .expect("withdraw");
    let corrected = request("killed", "Corrected", &["Desk", "Corrections"], 1);
    publish(&mut client, corrected).await;

    let (rest, next) = list_page(&mut client, "desk", 1, &token).await.unwrap();
    assert_eq!(rest, Vec::<Article>::new());
    assert_eq!(next, "");
    // A new session lists it as it is now.
    let (now, _) = list_all_by_tag(&mut client, "desk", 10).await;
    let titles: Vec<&str> = now.iter().map(|article| article.title.as_str()).collect();
    assert_eq!(titles, ["Kept", "Corrected"]);
}

/// Every page stays within MAX_PAGE_BYTES (4 MiB) as encoded, so a client
/// with gRPC's default 4 MiB message limit (this test's) reads it: pages of
/// a hundred articles of 42 KB, and pages of large articles moved after the
/// snapshot, which show their (larger) revision of then.
#[tokio::test]
async fn every_page_fits_the_default_message_limit_of_grpc_clients() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for n in 0..100 {
        let mut request = article(&format!("Fat {n}"), &["Fat"]);
        request.body = "x".repeat(41_900);
        publish(&mut client, request).await;
    }
    let (first, token) = list_page(&mut client, "fat", 100, "")
        .await
        .expect("a first page a default client can read");
    let (rest, last) = list_page(&mut client, "fat", 100, &token)
        .await
        .expect("the rest");
    assert_eq!(last, "");
    let mut seen: Vec<String> = first.iter().chain(&rest).map(|a| a.id.clone()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 100);

    let at = |hour: u32| format!("2024-03-01T{hour:02}:00:00Z");
    let large = |n: u32, body: &str, hour: u32| PublishArticleRequest {
        slug: format!("shrink-{n}"),
        body: body.to_owned(),
        ..article_at(&format!("Shrink {n}"), &["Shrink"], &at(hour))
    };
    let big = "y".repeat(1_000_000);
    for n in 1..=6 {
        publish(&mut client, large(n, &big, 10 + n)).await;
    }
    let (first, mut token) = list_page(&mut client, "shrink", 1, "").await.unwrap();
    assert_eq!(first[0].slug, "shrink-6");
    // Every article moves (another date) and shrinks after the snapshot.
    for n in 1..=6 {
        publish(&mut client, large(n, "short", n)).await;
    }
    let mut later = Vec::new();
    while !token.is_empty() {
        let (page, next) = list_page(&mut client, "shrink", 100, &token)
            .await
            .expect("a page a default client can read");
        assert!(page.len() <= 4, "{} articles of 1 MB in a page", page.len());
        later.extend(page);
        token = next;
    }
    let shown: Vec<(String, i64, usize)> = later
        .iter()
        .map(|a| (a.slug.clone(), a.revision, a.body.len()))
        .collect();
    let expected: Vec<(String, i64, usize)> = (1..=5)
        .rev()
        .map(|n| (format!("shrink-{n}"), 1, 1_000_000))
        .collect();
    assert_eq!(shown, expected, "as of the snapshot, each once");
}

#[tokio::test]
async fn an_update_moves_an_article_within_its_tag() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let old = publish(
        &mut client,
        PublishArticleRequest {
            slug: "moving".into(),
            ..article_at("Moving", &["Moves"], "2020-01-01T00:00:00Z")
        },
    )
    .await
    .article
    .unwrap();
    let other = publish(
        &mut client,
        article_at("Still", &["Moves"], "2021-01-01T00:00:00Z"),
    )
    .await
    .article
    .unwrap();
    let (page, _) = list_page(&mut client, "moves", 0, "").await.unwrap();
    assert_eq!(ids(&page), [other.id.clone(), old.id.clone()]);

    let moved = publish(
        &mut client,
        PublishArticleRequest {
            slug: "moving".into(),
            ..article_at("Moving", &["Moves"], "2022-01-01T00:00:00Z")
        },
    )
    .await
    .article
    .unwrap();
    let (page, _) = list_page(&mut client, "moves", 0, "").await.unwrap();
    assert_eq!(page, [moved.clone(), other.clone()]);

    // Dropping the tag drops the article from the tag's pages.
    publish(
        &mut client,
        PublishArticleRequest {
            slug: "moving".into(),
            ..article_at("Moving", &["Elsewhere"], "2022-01-01T00:00:00Z")
        },
    )
    .await;
    let (page, _) = list_page(&mut client, "moves", 0, "").await.unwrap();
    assert_eq!(ids(&page), [other.id]);
    let (page, _) = list_page(&mut client, "elsewhere", 0, "").await.unwrap();
    assert_eq!(ids(&page), [moved.id]);
}

/// A resume token, as StreamNewArticles hands them out.
async fn resume_token(client: &mut ArticleServiceClient<Channel>) -> String {
    let mut stream = client
        .stream_new_articles(StreamNewArticlesRequest::default())
        .await
        .expect("StreamNewArticles")
        .into_inner();
    publish(client, article("Streamed", &["Stream"])).await;
    let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a stream message within 10 s")
        .expect("stream status")
        .expect("a message");
    assert!(!message.resume_token.is_empty());
    message.resume_token
}

/// Every single-character change of `token` (within the URL-safe base64
/// alphabet, and one outside it).
fn alterations(token: &str) -> Vec<String> {
    let mut altered = Vec::new();
    for (index, c) in token.char_indices() {
        for replacement in [if c == 'A' { 'B' } else { 'A' }, '*'] {
            let mut text = token.to_owned();
            text.replace_range(index..index + c.len_utf8(), &replacement.to_string());
            altered.push(text);
        }
    }
    altered.push(format!("{token}A"));
    altered.push(token[..token.len() - 1].to_owned());
    if token.to_uppercase() != token {
        altered.push(token.to_uppercase());
    }
    altered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_and_altered_page_tokens_are_invalid() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish_many(&mut client, "Tokens", 3).await;
    publish(
        &mut client,
        article_at("A", &["Other Tag", "Second"], "2020-01-01T00:00:00Z"),
    )
    .await;
    publish(
        &mut client,
        article_at("B", &["Other Tag", "Third"], "2020-01-02T00:00:00Z"),
    )
    .await;

    let (_, token) = list_page(&mut client, "tokens", 1, "").await.unwrap();
    assert!(!token.is_empty());
    // The genuine token works, again and again.
    for _ in 0..2 {
        let (page, _) = list_page(&mut client, "tokens", 1, &token).await.unwrap();
        assert_eq!(page.len(), 1);
    }

    for altered in alterations(&token) {
        assert_invalid(
            list_page(&mut client, "tokens", 1, &altered).await,
            "page_token",
            &format!("altered token {altered}"),
        );
    }
    for garbage in [
        "garbage",
        "!!!",
        "AAAA",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        " ",
        "null",
        &"A".repeat(5_000),
    ] {
        assert_invalid(
            list_page(&mut client, "tokens", 1, garbage).await,
            "page_token",
            &format!("garbage token {garbage:.40}"),
        );
    }

    // Issued for another tag.
    let (_, other_tag_token) = list_page(&mut client, "Other Tag", 1, "").await.unwrap();
    assert!(!other_tag_token.is_empty());
    assert_invalid(
        list_page(&mut client, "tokens", 1, &other_tag_token).await,
        "page_token",
        "another tag's token",
    );
    // Issued by ListTags.
    let tags_token = tags_page_token_after_one(&mut client).await;
    assert!(!tags_token.is_empty());
    assert_invalid(
        list_page(&mut client, "tokens", 1, &tags_token).await,
        "page_token",
        "a ListTags token",
    );
    // A resume token of StreamNewArticles.
    let resume = resume_token(&mut client).await;
    assert_invalid(
        list_page(&mut client, "tokens", 1, &resume).await,
        "page_token",
        "a resume token",
    );
    assert_invalid(
        list_page(&mut client, "stream", 1, &resume).await,
        "page_token",
        "a resume token",
    );
    // And the other way round: a page token is no resume token.
    let status = client
        .stream_new_articles(StreamNewArticlesRequest {
            tags: Vec::new(),
            resume_token: token.clone(),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(bad_request_fields(&status), ["resume_token"]);
}

// ------------------------------------------------------------------ ListTags

async fn tags_page(
    client: &mut ArticleServiceClient<Channel>,
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<(String, String, i64)>, String), tonic::Status> {
    client
        .list_tags(ListTagsRequest {
            page_size,
            page_token: page_token.to_owned(),
        })
        .await
        .map(|response| {
            let page = response.into_inner();
            (tag_counts(&page.tags), page.next_page_token)
        })
}

fn owned(rows: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
    rows.iter()
        .map(|(slug, name, count)| ((*slug).to_owned(), (*name).to_owned(), *count))
        .collect()
}

#[tokio::test]
async fn list_tags_is_empty_on_an_empty_database() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let (tags, token) = tags_page(&mut client, 0, "").await.unwrap();
    assert!(tags.is_empty());
    assert!(token.is_empty());
}

#[tokio::test]
async fn list_tags_orders_by_slug_in_byte_order() {
    // On a database whose default collation is not byte order.
    let database = fresh_database_with_icu_collation().await;
    let server = TestServer::start_with(ServerOptions::new(&database)).await;
    let mut client = server.client().await;
    let names = [
        "Zebra",
        "apple",
        "Économie",
        "éclair",
        "2024",
        "a-b",
        "Ecole",
        "Zürich",
        "_under",
        "B",
        "東京",
        "ÉCLAIR two",
    ];
    publish(&mut client, article("Sorted", &names)).await;

    let (tags, token) = tags_page(&mut client, 0, "").await.unwrap();
    assert!(token.is_empty());
    let slugs: Vec<&str> = tags.iter().map(|(slug, _, _)| slug.as_str()).collect();
    assert_eq!(
        slugs,
        [
            "2024",
            "a-b",
            "apple",
            "b",
            "ecole",
            "under",
            "zebra",
            "zürich",
            "éclair",
            "éclair-two",
            "économie",
            "東京",
        ]
    );
    // That is Rust's byte-wise order of the slugs.
    let mut sorted = slugs.clone();
    sorted.sort_unstable();
    assert_eq!(slugs, sorted);
    let names_by_slug: Vec<&str> = tags.iter().map(|(_, name, _)| name.as_str()).collect();
    assert_eq!(
        names_by_slug,
        [
            "2024",
            "a-b",
            "apple",
            "B",
            "Ecole",
            "_under",
            "Zebra",
            "Zürich",
            "éclair",
            "ÉCLAIR two",
            "Économie",
            "東京",
        ]
    );
    assert!(tags.iter().all(|(_, _, count)| *count == 1));

    // The same order one tag per page.
    let one_by_one = tag_counts(&list_all_tags(&mut client, 1).await);
    assert_eq!(one_by_one, tags);
}

#[tokio::test]
async fn list_tags_counts_follow_publishes_and_updates() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = |tags: &[&str]| PublishArticleRequest {
        slug: "article-a".into(),
        ..article_at("A", tags, "2020-01-01T00:00:00Z")
    };
    publish(&mut client, a(&["X", "Y"])).await;
    publish(&mut client, article("B", &["Y"])).await;
    // Duplicates within one request count once.
    publish(&mut client, article("C", &["Y", "y", " Y "])).await;
    assert_eq!(
        tags_page(&mut client, 0, "").await.unwrap().0,
        owned(&[("x", "X", 1), ("y", "Y", 3)])
    );

    // A takes Y and Z instead of X and Y: X has no article any more.
    publish(&mut client, a(&["Y", "Z"])).await;
    assert_eq!(
        tags_page(&mut client, 0, "").await.unwrap().0,
        owned(&[("y", "Y", 3), ("z", "Z", 1)])
    );
    // Re-publishing the same thing changes nothing.
    publish(&mut client, a(&["Y", "Z"])).await;
    assert_eq!(
        tags_page(&mut client, 0, "").await.unwrap().0,
        owned(&[("y", "Y", 3), ("z", "Z", 1)])
    );
    // A loses every tag.
    publish(&mut client, a(&[])).await;
    assert_eq!(
        tags_page(&mut client, 0, "").await.unwrap().0,
        owned(&[("y", "Y", 2)])
    );
    // X comes back under another spelling: its first display name stays.
    publish(&mut client, a(&["x"])).await;
    assert_eq!(
        tags_page(&mut client, 0, "").await.unwrap().0,
        owned(&[("x", "X", 1), ("y", "Y", 2)])
    );
    let (page, _) = list_page(&mut client, "x", 0, "").await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(tag_pairs(&page[0]), [("x".to_owned(), "X".to_owned())]);
}

#[tokio::test]
async fn list_tags_pages_like_list_articles_by_tag() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // 6 articles of 20 tags each: 120 tags; tag-00 .. tag-19 are on every article.
    for article_index in 0..6 {
        let tags: Vec<String> = (0..20)
            .map(|i| {
                if i < 5 {
                    format!("Tag {i:03}")
                } else {
                    format!("Tag {:03}", 100 + article_index * 20 + i)
                }
            })
            .collect();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        publish(
            &mut client,
            article(&format!("Tagged {article_index}"), &tags),
        )
        .await;
    }
    let all = tag_counts(&list_all_tags(&mut client, 100).await);
    assert_eq!(all.len(), 5 + 6 * 15);
    assert!(all[..5].iter().all(|(_, _, count)| *count == 6));
    assert!(all[5..].iter().all(|(_, _, count)| *count == 1));
    assert_eq!(all[0].0, "tag-000");
    let slugs: Vec<&String> = all.iter().map(|(slug, _, _)| slug).collect();
    assert!(slugs.windows(2).all(|w| w[0] < w[1]));

    // One more article brings the count above 100.
    let tags: Vec<String> = (0..20).map(|i| format!("Extra {i:02}")).collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    publish(&mut client, article("Extra", &tags)).await;
    let all = tag_counts(&list_all_tags(&mut client, 100).await);
    assert_eq!(all.len(), 115);

    let (page, token) = tags_page(&mut client, 0, "").await.unwrap();
    assert_eq!(page, all[..20]);
    assert!(!token.is_empty());
    for size in [101, i32::MAX] {
        let (page, token) = tags_page(&mut client, size, "").await.unwrap();
        assert_eq!(page, all[..100], "page_size {size}");
        let (rest, last) = tags_page(&mut client, size, &token).await.unwrap();
        assert_eq!(rest, all[100..]);
        assert!(last.is_empty());
    }
    for size in [1, 7, 20, 114, 115] {
        assert_eq!(
            tag_counts(&list_all_tags(&mut client, size).await),
            all,
            "page_size {size}"
        );
    }
    // page_size changes between pages.
    let mut seen = Vec::new();
    let mut token = String::new();
    for size in [1, 50, 3, 0, 100] {
        let (page, next) = tags_page(&mut client, size, &token).await.unwrap();
        seen.extend(page);
        token = next;
        if token.is_empty() {
            break;
        }
    }
    assert!(token.is_empty());
    assert_eq!(seen, all);

    for size in [-1, i32::MIN] {
        assert_invalid(
            tags_page(&mut client, size, "").await,
            "page_size",
            "negative",
        );
    }
}

#[tokio::test]
async fn list_tags_paging_is_stable_while_tags_are_added() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let tags: Vec<String> = (0..10).map(|i| format!("M{i}")).collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    publish(&mut client, article("Base", &tags)).await;
    let before: Vec<String> = tag_counts(&list_all_tags(&mut client, 0).await)
        .into_iter()
        .map(|(slug, _, _)| slug)
        .collect();

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut round = 0;
    loop {
        let (page, next) = tags_page(&mut client, 3, &token).await.unwrap();
        seen.extend(page.into_iter().map(|(slug, _, _)| slug));
        if next.is_empty() {
            break;
        }
        token = next;
        // New tags sorting before, between and after the existing ones.
        let new = [
            format!("A{round}"),
            format!("M{round}5"),
            format!("Z{round}"),
        ];
        let new: Vec<&str> = new.iter().map(String::as_str).collect();
        publish(&mut client, article(&format!("New {round}"), &new)).await;
        round += 1;
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a tag came twice: {seen:?}");
    for slug in &before {
        assert!(seen.contains(slug), "{slug} was skipped: {seen:?}");
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_and_altered_tag_page_tokens_are_invalid() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish(&mut client, article("Tags", &["One", "Two", "Three"])).await;
    let (_, token) = tags_page(&mut client, 1, "").await.unwrap();
    assert!(!token.is_empty());
    let (page, _) = tags_page(&mut client, 1, &token).await.unwrap();
    assert_eq!(page, owned(&[("three", "Three", 1)]));

    for altered in alterations(&token) {
        assert_invalid(
            tags_page(&mut client, 1, &altered).await,
            "page_token",
            &format!("altered token {altered}"),
        );
    }
    for garbage in ["garbage", "!!!", "AAAA", " ", &"A".repeat(5_000)] {
        assert_invalid(
            tags_page(&mut client, 1, garbage).await,
            "page_token",
            &format!("garbage token {garbage:.40}"),
        );
    }
    let (_, articles_token) = list_page(&mut client, "one", 1, "").await.unwrap();
    assert!(articles_token.is_empty(), "one article: one page");
    publish(&mut client, article("Second", &["One"])).await;
    let (_, articles_token) = list_page(&mut client, "one", 1, "").await.unwrap();
    assert!(!articles_token.is_empty());
    assert_invalid(
        tags_page(&mut client, 1, &articles_token).await,
        "page_token",
        "a ListArticlesByTag token",
    );
    let resume = resume_token(&mut client).await;
    assert_invalid(
        tags_page(&mut client, 1, &resume).await,
        "page_token",
        "a resume token",
    );
}

#[tokio::test]
async fn get_article_finds_what_list_articles_by_tag_lists() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let stored = publish(
        &mut client,
        article_at("Findable", &["Find"], "2020-02-02T02:02:02.123456Z"),
    )
    .await
    .article
    .unwrap();
    assert_eq!(
        stored.published_at,
        Some(prost_types::Timestamp {
            seconds: 1_580_608_922,
            nanos: 123_456_000
        })
    );
    let (page, _) = list_page(&mut client, "find", 0, "").await.unwrap();
    assert_eq!(page, std::slice::from_ref(&stored));
    let by_slug = get_article(&mut client, Some(Key::Slug(stored.slug.clone())))
        .await
        .unwrap();
    assert_eq!(by_slug, stored);
}

/// A tag name of `n` characters of four UTF-8 bytes each (Deseret capital
/// letters, which lowercase to other four-byte letters), starting with
/// `first`.
fn wide_tag(first: char, n: usize) -> String {
    std::iter::once(first)
        .chain(std::iter::repeat_n('\u{10400}', n - 1))
        .collect()
}

#[tokio::test]
async fn paging_works_with_the_longest_tags() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let long_tags = [wide_tag('a', 200), wide_tag('b', 200), "x".repeat(200)];
    for (i, tag) in long_tags.iter().enumerate() {
        for j in 0..3 {
            publish(
                &mut client,
                article_at(
                    &format!("Long tag {i} {j}"),
                    &[tag.as_str(), "Short"],
                    &format!("2020-01-0{}T00:00:00Z", j + 1),
                ),
            )
            .await;
        }
    }
    for tag in &long_tags {
        let (all, pages) = list_all_by_tag(&mut client, tag, 1).await;
        assert_eq!(all.len(), 3, "tag of {} bytes", tag.len());
        assert_eq!(pages, 3);
        assert_eq!(ids(&all), newest_first(&all));
    }
    let tags = tag_counts(&list_all_tags(&mut client, 1).await);
    assert_eq!(tags.len(), 4);
    assert_eq!(tags.iter().map(|(_, _, count)| count).sum::<i64>(), 18);
}

/// Concurrent GetArticle misses share database statements (`store::lookups`)
/// and each caller still gets exactly its own answer: by id and by slug,
/// the same key many times at once, and keys that match nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_share_statements_and_each_gets_its_own_answer() {
    // No read cache, so that every call reaches the database; 8 connections
    // give 1 statement slot, so the calls queue behind it and batch.
    let server = TestServer::start_with(
        ServerOptions::new(&fresh_database().await)
            .env("CACHE_MAX_BYTES", "0")
            .env("DATABASE_MAX_CONNECTIONS", "8"),
    )
    .await;
    let mut client = server.client().await;
    let mut stored = Vec::new();
    for n in 0..20 {
        stored.push(publish_new(&mut client, &format!("Batched {n}"), &["Batches"]).await);
    }

    // 300 calls at once: each stored article 5 times by id and 5 by slug,
    // 50 unknown ids and 50 unknown (well-formed) slugs.
    let mut calls = tokio::task::JoinSet::new();
    for round in 0..5 {
        for (n, article) in stored.iter().enumerate() {
            for key in [Key::Id(article.id.clone()), Key::Slug(article.slug.clone())] {
                let mut caller = client.clone();
                calls.spawn(async move { (Some(n), get_article(&mut caller, Some(key)).await) });
            }
        }
        for n in 0..10 {
            let mut caller = client.clone();
            let id = uuid::Uuid::new_v4().to_string();
            calls.spawn(async move { (None, get_article(&mut caller, Some(Key::Id(id))).await) });
            let mut caller = client.clone();
            let slug = format!("2026-01-01-nothing-{round}-{n}");
            calls.spawn(
                async move { (None, get_article(&mut caller, Some(Key::Slug(slug))).await) },
            );
        }
    }
    let (mut found, mut not_found) = (0, 0);
    while let Some(joined) = calls.join_next().await {
        match joined.expect("a call task") {
            (Some(n), answer) => {
                assert_eq!(answer.expect("a stored article"), stored[n]);
                found += 1;
            }
            (None, answer) => {
                assert_eq!(answer.expect_err("unknown").code(), Code::NotFound);
                not_found += 1;
            }
        }
    }
    assert_eq!((found, not_found), (200, 100));

    // Each of the 140 keys went to the database at least once and no call
    // more than once (misses of one key at once share a load), in fewer
    // statements than lookups.
    let lookups = server
        .metric("article_db_lookup_batch_size_sum")
        .await
        .expect("the batch size series");
    let statements = server
        .metric("article_db_lookup_batch_size_count")
        .await
        .expect("the batch size series");
    assert!(
        (140.0..=300.0).contains(&lookups),
        "{lookups} lookups for 140 keys and 300 calls"
    );
    assert!(
        statements < lookups,
        "{statements} statements for {lookups} lookups"
    );
}

/// Public reads that miss one article at the same time share one load: one
/// database lookup and one encoding, whose bytes every caller gets (a
/// crowd asking for a large article just published holds one copy, not
/// one each). A table lock holds the first load until every call arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_misses_of_one_article_share_one_load() {
    let database = fresh_database().await;
    let server =
        TestServer::start_with(ServerOptions::new(&database).env("CACHE_MAX_BYTES", "0")).await;
    let mut client = server.client().await;
    // 100 answers of 100 KB fit one connection's budget of unsent bytes.
    let mut request = article("Crowded", &["Crowds"]);
    request.body = "word ".repeat(20_000);
    let stored = publish(&mut client, request)
        .await
        .article
        .expect("the article");
    let lookups = "article_db_lookup_batch_size_sum";
    let before = server.metric(lookups).await.unwrap_or(0.0);

    let pool = pool(&database).await;
    let mut lock = pool.begin().await.expect("a transaction");
    sqlx::query("LOCK TABLE articles IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("the lock");
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let mut caller = client.clone();
        let slug = stored.slug.clone();
        calls.spawn(async move { get_by_slug(&mut caller, &slug).await });
    }
    // The first load waits for the lock; give the other 99 calls time to
    // arrive and join it.
    let waiting = "SELECT count(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock' \
                   AND query LIKE '%FROM articles%'";
    let started = std::time::Instant::now();
    while sqlx::query_scalar::<_, i64>(waiting)
        .fetch_one(&pool)
        .await
        .expect("pg_stat_activity")
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no load waits for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    lock.rollback().await.expect("the lock released");

    let mut answered = 0;
    while let Some(joined) = calls.join_next().await {
        assert_eq!(joined.expect("a call task").expect("the article"), stored);
        answered += 1;
    }
    assert_eq!(answered, 100);
    assert_eq!(server.metric(lookups).await.unwrap_or(0.0) - before, 1.0);
}

/// GetArticle's lookups keep their connection between statements
/// (`store::lookups`): a kept connection the database dropped meanwhile costs
/// no call (the statement runs again on a connection the pool checks), and
/// kept connections go back to the pool once lookups pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_read_connection_that_died_costs_no_call_and_returns_to_the_pool_when_idle() {
    let database = fresh_database().await;
    let server =
        TestServer::start_with(ServerOptions::new(&database).env("CACHE_MAX_BYTES", "0")).await;
    let mut client = server.client().await;
    let stored = publish_new(&mut client, "Kept connection", &["Kept"]).await;
    assert_eq!(
        get_by_slug(&mut client, &stored.slug).await.expect("read"),
        stored
    );

    // The database ends the session of every connection that ran the
    // lookup (as a restart or an administrator would).
    let pool = pool(&database).await;
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND query LIKE '%WHERE a.slug = $1%'",
    )
    .fetch_all(&pool)
    .await
    .expect("pg_terminate_backend");
    assert_eq!(ended, [true], "one connection ran the lookup");
    for _ in 0..5 {
        assert_eq!(
            get_by_slug(&mut client, &stored.slug).await.expect("read"),
            stored
        );
    }

    // A second after the last lookup, no connection is held.
    server
        .wait_for_metric(
            "article_db_pool_connections{pool=\"primary\",state=\"in_use\"}",
            0.0,
            Duration::from_secs(5),
        )
        .await;
}
