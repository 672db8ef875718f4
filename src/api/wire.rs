//! GetArticle and ListArticlesByTag responses as this server sends them:
//! articles already encoded, as the read cache keeps them.
//!
//! The same trick as `feed::wire` (see there): a `bytes` field holding an
//! encoded message is written exactly like the message field of the same
//! number, repeated or not, so these encode byte for byte like the
//! generated `GetArticleResponse` and `ListArticlesByTagResponse` (the
//! tests below check it). `build.rs` generates the server with them;
//! clients keep the generated types.

use prost::Message;
use prost::bytes::Bytes;

use crate::proto::Article;

/// Wire-compatible with `proto::GetArticleResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct EncodedGetArticleResponse {
    /// The encoded `Article` (field `article`).
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub article: Option<Bytes>,
}

/// Wire-compatible with `proto::ListArticlesByTagResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct EncodedListArticlesByTagResponse {
    /// Each encoded `Article` (field `articles`).
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub articles: Vec<Bytes>,
    #[prost(string, tag = "2")]
    pub next_page_token: String,
}

/// An article's encoding, as the responses above and the cache carry it.
pub fn encode_article(article: &Article) -> Bytes {
    Bytes::from(article.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{GetArticleResponse, ListArticlesByTagResponse, Tag};

    fn article(n: u8) -> Article {
        Article {
            id: format!("0195f0c4-6f6e-7a4e-9d1b-3c5e8a2b4d{n:02x}"),
            slug: format!("2025-03-01-rates-held-{n}"),
            title: "Rates held — again".into(),
            summary: String::new(),
            body: "First paragraph.\n\nSecond, with ünïcödé.".repeat(100),
            byline: "Markets desk".into(),
            tags: vec![Tag {
                slug: "us-canada".into(),
                name: "US & Canada".into(),
            }],
            published_at: Some(prost_types::Timestamp {
                seconds: 1_740_787_200,
                nanos: 123_456_000,
            }),
            updated_at: None,
            revision: i64::from(n) + 1,
        }
    }

    #[test]
    fn get_article_response_encodes_as_the_generated_message() {
        let sent = EncodedGetArticleResponse {
            article: Some(encode_article(&article(1))),
        };
        let expected = GetArticleResponse {
            article: Some(article(1)),
        };
        assert_eq!(sent.encode_to_vec(), expected.encode_to_vec());
        assert_eq!(
            GetArticleResponse::decode(sent.encode_to_vec().as_slice()).ok(),
            Some(expected)
        );
    }

    #[test]
    fn list_response_encodes_as_the_generated_message() {
        for count in [0u8, 1, 3] {
            let articles: Vec<Article> = (0..count).map(article).collect();
            let sent = EncodedListArticlesByTagResponse {
                articles: articles.iter().map(encode_article).collect(),
                next_page_token: if count == 3 {
                    "next".into()
                } else {
                    String::new()
                },
            };
            let expected = ListArticlesByTagResponse {
                articles,
                next_page_token: sent.next_page_token.clone(),
            };
            assert_eq!(
                sent.encode_to_vec(),
                expected.encode_to_vec(),
                "{count} articles"
            );
            assert_eq!(
                ListArticlesByTagResponse::decode(sent.encode_to_vec().as_slice()).ok(),
                Some(expected)
            );
        }
    }
}
