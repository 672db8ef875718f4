//! Opaque page and resume tokens.
//!
//! A token is `base64url(payload || mac)`: the payload is a small protobuf
//! message (so fields can be added without breaking old tokens) and the MAC
//! is HMAC-SHA256 over it, cut to 16 bytes. The key lives in the database
//! (`store::token_key`), so every replica sharing it accepts every other's
//! tokens, across restarts and upgrades. The payload names what the token is
//! for, so a page token of one RPC is refused by another, and by the stream.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

const MAC_LEN: usize = 16;
const FORMAT_VERSION: u32 = 1;
/// Anything longer is not a token this server issued; refuse it before
/// decoding. The longest token names a tag slug of `MAX_TAG_CHARS` four-byte
/// characters (about 1,150 characters sealed); see the test
/// `the_longest_tokens_fit`.
pub const MAX_TOKEN_LEN: usize = 2048;

/// Where a ListArticlesByTag paging session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArticlePageCursor {
    pub tag_slug: String,
    /// Newest feed position when paging began: later articles are left out,
    /// so no page shifts while articles are published.
    pub snapshot_position: i64,
    pub last_published_at: OffsetDateTime,
    pub last_id: Uuid,
}

/// Where a ListTags paging session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPageCursor {
    pub last_slug: String,
}

/// Every kind of token the service issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    ArticlePage(ArticlePageCursor),
    TagPage(TagPageCursor),
    /// A StreamNewArticles position in the change log: everything up to it
    /// has been seen.
    Resume {
        feed_position: i64,
    },
    /// A StreamArticleChanges position in the change log (also a
    /// ListArticlesByTag `changes_token`). Its own kind, so that a token of
    /// one stream is refused by the other.
    Changes {
        position: i64,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed or was not issued by this service")]
    Invalid,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Payload {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(uint32, tag = "2")]
    kind: u32,
    #[prost(string, tag = "3")]
    tag_slug: String,
    #[prost(int64, tag = "4")]
    snapshot_position: i64,
    #[prost(int64, tag = "5")]
    published_at_micros: i64,
    #[prost(bytes = "vec", tag = "6")]
    article_id: Vec<u8>,
    #[prost(string, tag = "7")]
    last_tag_slug: String,
    #[prost(int64, tag = "8")]
    feed_position: i64,
}

const KIND_ARTICLE_PAGE: u32 = 1;
const KIND_TAG_PAGE: u32 = 2;
const KIND_RESUME: u32 = 3;
const KIND_CHANGES: u32 = 4;

/// Seals and opens tokens with the service's shared key.
#[derive(Clone)]
pub struct TokenCodec {
    mac: HmacSha256,
}

impl std::fmt::Debug for TokenCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCodec { key: <redacted> }")
    }
}

impl TokenCodec {
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of any length.
        let mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        Self { mac }
    }

    pub fn seal(&self, token: &Token) -> String {
        let payload = match token {
            Token::ArticlePage(cursor) => Payload {
                version: FORMAT_VERSION,
                kind: KIND_ARTICLE_PAGE,
                tag_slug: cursor.tag_slug.clone(),
                snapshot_position: cursor.snapshot_position,
                published_at_micros: micros(cursor.last_published_at),
                article_id: cursor.last_id.as_bytes().to_vec(),
                ..Payload::default()
            },
            Token::TagPage(cursor) => Payload {
                version: FORMAT_VERSION,
                kind: KIND_TAG_PAGE,
                last_tag_slug: cursor.last_slug.clone(),
                ..Payload::default()
            },
            Token::Resume { feed_position } => Payload {
                version: FORMAT_VERSION,
                kind: KIND_RESUME,
                feed_position: *feed_position,
                ..Payload::default()
            },
            Token::Changes { position } => Payload {
                version: FORMAT_VERSION,
                kind: KIND_CHANGES,
                feed_position: *position,
                ..Payload::default()
            },
        };
        let mut bytes = prost::Message::encode_to_vec(&payload);
        let tag = self.tag(&bytes);
        bytes.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn open(&self, text: &str) -> Result<Token, TokenError> {
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| TokenError::Invalid)?;
        if bytes.len() < MAC_LEN {
            return Err(TokenError::Invalid);
        }
        let (payload, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac.verify_truncated_left(tag)
            .map_err(|_| TokenError::Invalid)?;
        let payload: Payload = prost::Message::decode(payload).map_err(|_| TokenError::Invalid)?;
        if payload.version != FORMAT_VERSION {
            return Err(TokenError::Invalid);
        }
        match payload.kind {
            KIND_ARTICLE_PAGE => Ok(Token::ArticlePage(ArticlePageCursor {
                tag_slug: payload.tag_slug,
                snapshot_position: payload.snapshot_position,
                last_published_at: from_micros(payload.published_at_micros)?,
                last_id: Uuid::from_slice(&payload.article_id).map_err(|_| TokenError::Invalid)?,
            })),
            KIND_TAG_PAGE => Ok(Token::TagPage(TagPageCursor {
                last_slug: payload.last_tag_slug,
            })),
            KIND_RESUME => Ok(Token::Resume {
                feed_position: payload.feed_position,
            }),
            KIND_CHANGES => Ok(Token::Changes {
                position: payload.feed_position,
            }),
            _ => Err(TokenError::Invalid),
        }
    }

    fn tag(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
    }
}

fn micros(at: OffsetDateTime) -> i64 {
    // Timestamps are stored with microsecond precision, which always fits.
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn from_micros(micros: i64) -> Result<OffsetDateTime, TokenError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|_| TokenError::Invalid)
}

#[cfg(test)]
mod tests;
