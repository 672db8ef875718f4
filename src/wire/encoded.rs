//! The responses that carry articles, with the articles already encoded
//! (see the module above for why they are wire-compatible), and a change
//! encoded once for every stream.

use prost::Message;
use prost::bytes::Bytes;

use super::convert::{View, article_to_proto, change_to_proto};
use crate::domain::lifecycle::Change;
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
    #[prost(string, tag = "3")]
    pub changes_token: String,
}

/// Wire-compatible with `proto::StreamNewArticlesResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct EncodedStreamResponse {
    /// The encoded `Article` (field `article`); `None` on a heartbeat.
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub article: Option<Bytes>,
    #[prost(string, tag = "2")]
    pub resume_token: String,
}

/// Wire-compatible with `proto::StreamArticleChangesResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct EncodedChangeResponse {
    /// The encoded `ArticleChange` (field `change`); `None` on a heartbeat.
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub change: Option<Bytes>,
    #[prost(string, tag = "2")]
    pub resume_token: String,
}

/// An article's encoding, as the responses above and the cache carry it.
pub fn encode_article(article: &Article) -> Bytes {
    Bytes::from(article.encode_to_vec())
}

/// An encoded article without its body (the BASIC view of a cached one).
pub fn without_body(encoded: &[u8]) -> Result<Bytes, prost::DecodeError> {
    Ok(encode_article(
        &View::Basic.apply(Article::decode(encoded)?),
    ))
}

/// One change, encoded once in both views for every stream that sends it:
/// as an `ArticleChange` (StreamArticleChanges) and, when it is the
/// article's first becoming public, as an `Article` (StreamNewArticles).
#[derive(Debug)]
pub struct EncodedChange {
    change_full: Bytes,
    change_basic: Bytes,
    new_article: Option<(Bytes, Bytes)>,
}

impl EncodedChange {
    pub fn new(change: &Change) -> Self {
        let proto_change = change_to_proto(change);
        let change_full = Bytes::from(proto_change.encode_to_vec());
        let change_basic = match &proto_change.article {
            Some(article) if !article.body.is_empty() => {
                let mut basic = proto_change.clone();
                basic.article = Some(View::Basic.apply(article.clone()));
                Bytes::from(basic.encode_to_vec())
            }
            // A tombstone, or an empty body: the same bytes.
            _ => change_full.clone(),
        };
        let new_article = change.first_public.then(|| {
            let article = article_to_proto(&change.article);
            let full = encode_article(&article);
            let basic = encode_article(&View::Basic.apply(article));
            (full, basic)
        });
        Self {
            change_full,
            change_basic,
            new_article,
        }
    }

    /// The encoded `ArticleChange`.
    pub fn change(&self, view: View) -> Bytes {
        match view {
            View::Full => self.change_full.clone(),
            View::Basic => self.change_basic.clone(),
        }
    }

    /// The encoded `Article` StreamNewArticles sends, if this change is
    /// the article's first becoming public.
    pub fn new_article(&self, view: View) -> Option<Bytes> {
        let (full, basic) = self.new_article.as_ref()?;
        Some(match view {
            View::Full => full.clone(),
            View::Basic => basic.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::article::{self, ArticleState, TagRef};
    use crate::domain::lifecycle::ChangeKind;
    use crate::proto::{
        self, ArticleChange, GetArticleResponse, ListArticlesByTagResponse,
        StreamArticleChangesResponse, StreamNewArticlesResponse, Tag,
    };
    use time::macros::datetime;
    use uuid::Uuid;

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
            state: proto::ArticleState::Published as i32,
        }
    }

    fn change(kind: ChangeKind, first_public: bool) -> Change {
        Change {
            position: 42,
            kind,
            first_public,
            change_time: datetime!(2025-03-01 10:00 UTC),
            reason: if kind == ChangeKind::Withdrawn {
                "legal".into()
            } else {
                String::new()
            },
            filter_tags: vec!["economy".into()],
            article: article::Article {
                id: Uuid::from_u128(5),
                slug: "2025-03-01-rates-held".into(),
                title: "Rates held".into(),
                summary: "Again.".into(),
                body: "One.\n\nTwo.".into(),
                byline: "Markets desk".into(),
                tags: vec![TagRef {
                    slug: "economy".into(),
                    name: "Economy".into(),
                }],
                published_at: datetime!(2025-03-01 9:00 UTC),
                updated_at: datetime!(2025-03-01 10:00 UTC),
                revision: 2,
                state: if kind == ChangeKind::Withdrawn {
                    ArticleState::Withdrawn
                } else {
                    ArticleState::Published
                },
            },
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
                changes_token: "changes".into(),
            };
            let expected = ListArticlesByTagResponse {
                articles,
                next_page_token: sent.next_page_token.clone(),
                changes_token: "changes".into(),
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

    #[test]
    fn stream_messages_encode_as_the_generated_messages() {
        let with_article = EncodedStreamResponse {
            article: Some(encode_article(&article(2))),
            resume_token: "token".into(),
        };
        assert_eq!(
            with_article.encode_to_vec(),
            StreamNewArticlesResponse {
                article: Some(article(2)),
                resume_token: "token".into(),
            }
            .encode_to_vec()
        );
        let heartbeat = EncodedStreamResponse {
            article: None,
            resume_token: "token".into(),
        };
        let decoded = StreamNewArticlesResponse::decode(heartbeat.encode_to_vec().as_slice())
            .expect("decodes");
        assert_eq!(decoded.article, None);
        let empty = EncodedStreamResponse {
            article: Some(encode_article(&Article::default())),
            resume_token: String::new(),
        };
        assert_eq!(
            StreamNewArticlesResponse::decode(empty.encode_to_vec().as_slice())
                .ok()
                .and_then(|message| message.article),
            Some(Article::default()),
            "an empty article is still present"
        );
    }

    #[test]
    fn a_change_decodes_as_the_generated_message_in_both_views() {
        let updated = change(ChangeKind::Updated, false);
        let encoded = EncodedChange::new(&updated);
        let expected = change_to_proto(&updated);
        for (view, body) in [(View::Full, "One.\n\nTwo."), (View::Basic, "")] {
            let sent = EncodedChangeResponse {
                change: Some(encoded.change(view)),
                resume_token: "t".into(),
            };
            let decoded = StreamArticleChangesResponse::decode(sent.encode_to_vec().as_slice())
                .expect("decodes");
            let mut want = expected.clone();
            if let Some(article) = want.article.as_mut() {
                article.body = body.into();
            }
            assert_eq!(decoded.change, Some(want));
        }
        assert_eq!(encoded.new_article(View::Full), None, "not a new article");
    }

    #[test]
    fn a_tombstone_carries_only_what_identifies_the_article() {
        let withdrawn = change(ChangeKind::Withdrawn, false);
        let encoded = EncodedChange::new(&withdrawn);
        let decoded = ArticleChange::decode(encoded.change(View::Full)).expect("decodes");
        assert_eq!(decoded.r#type, proto::ChangeType::Withdrawn as i32);
        assert_eq!(decoded.reason, "legal");
        let tombstone = decoded.article.expect("a tombstone");
        assert_eq!(
            tombstone,
            Article {
                id: Uuid::from_u128(5).hyphenated().to_string(),
                slug: "2025-03-01-rates-held".into(),
                tags: vec![Tag {
                    slug: "economy".into(),
                    name: "Economy".into(),
                }],
                updated_at: Some(crate::wire::timestamp(datetime!(2025-03-01 10:00 UTC))),
                revision: 2,
                state: proto::ArticleState::Withdrawn as i32,
                ..Article::default()
            }
        );
        assert_eq!(encoded.change(View::Basic), encoded.change(View::Full));
    }

    #[test]
    fn a_first_publication_is_also_a_new_article() {
        let published = change(ChangeKind::Published, true);
        let encoded = EncodedChange::new(&published);
        let full = Article::decode(encoded.new_article(View::Full).expect("new")).expect("decodes");
        assert_eq!(full, article_to_proto(&published.article));
        let basic =
            Article::decode(encoded.new_article(View::Basic).expect("new")).expect("decodes");
        assert_eq!(basic, View::Basic.apply(full.clone()));
        assert_eq!(
            without_body(&encode_article(&full)).ok(),
            Some(encode_article(&basic))
        );
    }

    #[test]
    fn clones_share_the_encoded_bytes() {
        let encoded = EncodedChange::new(&change(ChangeKind::Published, true));
        assert_eq!(
            encoded.change(View::Full).as_ptr(),
            encoded.change(View::Full).as_ptr()
        );
    }
}
