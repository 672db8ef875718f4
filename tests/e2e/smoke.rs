//! The quick-start path: the sample imported with the CLI, read over gRPC.

use crate::common::*;
use article_service::proto::{GetArticleRequest, get_article_request::Key};

#[tokio::test]
async fn sample_article_is_served_as_imported() {
    let database = fresh_database_with_sample().await;
    let server = TestServer::start_with(ServerOptions::new(&database)).await;
    let mut client = server.client().await;

    let article = client
        .get_article(GetArticleRequest {
            key: Some(Key::Slug(SAMPLE_SLUG.into())),
            ..Default::default()
        })
        .await
        .expect("GetArticle")
        .into_inner()
        .article
        .expect("an article");
    assert_eq!(article.title, SAMPLE_TITLE);
    assert_eq!(article.byline, "7Dnews London");
    assert_eq!(
        article.published_at.map(|t| (t.seconds, t.nanos)),
        Some((1_577_788_200, 0))
    );
    let paragraphs: Vec<&str> = article.body.split("\n\n").collect();
    assert_eq!(paragraphs.len(), 6);
    assert!(paragraphs[2].contains("countries\u{2019} security"));
    let tags: Vec<(&str, &str)> = article
        .tags
        .iter()
        .map(|t| (t.slug.as_str(), t.name.as_str()))
        .collect();
    assert_eq!(tags, [("us-canada", "US & Canada"), ("russia", "Russia")]);
    assert_eq!(article.revision, 1);
    let sample = std::fs::read_to_string(SAMPLE).unwrap();
    for paragraph in paragraphs {
        assert!(sample.contains(paragraph), "paragraph changed: {paragraph}");
    }
}
