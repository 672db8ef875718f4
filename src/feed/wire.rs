//! The StreamNewArticles message as this server sends it.
//!
//! Every new article goes to every open stream, thousands of them. With the
//! generated `StreamNewArticlesResponse` each stream would clone the whole
//! `Article` (a dozen allocations, the body among them) and encode it again.
//! Instead the article is encoded once, when the message is built, and each
//! stream's message shares those bytes: a stream costs a reference count and
//! the short resume token, and the encoder copies the bytes.
//!
//! Clients see no difference. Protobuf writes an embedded message field as
//! its number with the length-delimited wire type, the length, then the
//! message's encoding; a `bytes` field of the same number holding that
//! encoding is written identically, and an absent one is absent in both. So
//! `EncodedStreamResponse` encodes byte for byte like the
//! `StreamNewArticlesResponse` it stands for (the tests below check it), and
//! the service's descriptors (reflection) still describe the `.proto`.
//! `build.rs` generates the server so that StreamNewArticles sends this type;
//! clients keep the generated one.

use prost::Message;
use prost::bytes::Bytes;

use crate::proto::Article;

/// Wire-compatible with `proto::StreamNewArticlesResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct EncodedStreamResponse {
    /// The encoded `Article` (field `article`); `None` on a heartbeat.
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub article: Option<Bytes>,
    #[prost(string, tag = "2")]
    pub resume_token: String,
}

impl EncodedStreamResponse {
    /// The message of a new article: encodes it (once; clones share it).
    pub fn with_article(article: &Article, resume_token: String) -> Self {
        Self {
            article: Some(Bytes::from(article.encode_to_vec())),
            resume_token,
        }
    }

    /// A message without an article.
    pub fn heartbeat(resume_token: String) -> Self {
        Self {
            article: None,
            resume_token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{StreamNewArticlesResponse, Tag};

    fn article() -> Article {
        Article {
            id: "0195f0c4-6f6e-7a4e-9d1b-3c5e8a2b4d6f".into(),
            slug: "2025-03-01-rates-held".into(),
            title: "Rates held — again".into(),
            summary: String::new(),
            body: "First paragraph.\n\nSecond, with ünïcödé.".repeat(100),
            byline: "Markets desk".into(),
            tags: vec![
                Tag {
                    slug: "economy".into(),
                    name: "Economy".into(),
                },
                Tag {
                    slug: "us-canada".into(),
                    name: "US & Canada".into(),
                },
            ],
            published_at: Some(prost_types::Timestamp {
                seconds: 1_740_787_200,
                nanos: 123_456_000,
            }),
            updated_at: Some(prost_types::Timestamp {
                seconds: 1_740_787_260,
                nanos: 0,
            }),
            revision: 3,
        }
    }

    fn assert_same_wire(sent: &EncodedStreamResponse, expected: &StreamNewArticlesResponse) {
        let bytes = sent.encode_to_vec();
        assert_eq!(bytes, expected.encode_to_vec(), "same bytes on the wire");
        assert_eq!(sent.encoded_len(), expected.encoded_len());
        let decoded = StreamNewArticlesResponse::decode(bytes.as_slice())
            .expect("decodes as the generated message");
        assert_eq!(&decoded, expected);
    }

    #[test]
    fn an_article_message_decodes_as_the_generated_message() {
        let token = "resume-token-of-position-42".to_owned();
        assert_same_wire(
            &EncodedStreamResponse::with_article(&article(), token.clone()),
            &StreamNewArticlesResponse {
                article: Some(article()),
                resume_token: token,
            },
        );
    }

    #[test]
    fn an_empty_article_is_still_present() {
        assert_same_wire(
            &EncodedStreamResponse::with_article(&Article::default(), String::new()),
            &StreamNewArticlesResponse {
                article: Some(Article::default()),
                resume_token: String::new(),
            },
        );
    }

    #[test]
    fn a_heartbeat_decodes_without_an_article() {
        let token = "resume-token-of-position-7".to_owned();
        let heartbeat = EncodedStreamResponse::heartbeat(token.clone());
        assert_same_wire(
            &heartbeat,
            &StreamNewArticlesResponse {
                article: None,
                resume_token: token,
            },
        );
        let decoded = StreamNewArticlesResponse::decode(heartbeat.encode_to_vec().as_slice())
            .expect("decodes");
        assert!(decoded.article.is_none());
    }

    #[test]
    fn clones_share_the_encoded_article() {
        let message = EncodedStreamResponse::with_article(&article(), "t".into());
        let clone = message.clone();
        let (Some(original), Some(cloned)) = (&message.article, &clone.article) else {
            panic!("both carry the article");
        };
        assert_eq!(original.as_ptr(), cloned.as_ptr(), "no copy of the article");
    }
}
