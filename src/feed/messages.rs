//! What each stream sends: StreamNewArticles sends an article when it first
//! becomes public, StreamArticleChanges every change. Both follow the same
//! change log and broadcast; this is all that differs.

use super::ChangePayload;
use crate::domain::lifecycle::Change;
use crate::domain::token::Token;
use crate::store::ChangeFilter;
use crate::wire::{
    EncodedChangeResponse, EncodedStreamResponse, View, article_to_proto, encode_article,
    encode_change,
};

/// A stream's message type, and how it is built.
pub trait StreamMessage: Send + 'static {
    /// Which changes the stream reads from the database.
    const FILTER: ChangeFilter;

    /// The resume token of a position.
    fn token(position: i64) -> Token;

    /// A message without a change, carrying the stream's position.
    fn heartbeat(resume_token: String) -> Self;

    /// The message of a broadcast change, if the stream sends it.
    fn from_broadcast(payload: &ChangePayload, view: View) -> Option<Self>
    where
        Self: Sized;

    /// The message of a change read from the database.
    fn from_change(change: &Change, view: View, resume_token: String) -> Self;
}

impl StreamMessage for EncodedStreamResponse {
    const FILTER: ChangeFilter = ChangeFilter::NewArticles;

    fn token(position: i64) -> Token {
        Token::Resume {
            feed_position: position,
        }
    }

    fn heartbeat(resume_token: String) -> Self {
        Self {
            article: None,
            resume_token,
        }
    }

    fn from_broadcast(payload: &ChangePayload, view: View) -> Option<Self> {
        Some(Self {
            article: Some(payload.change.new_article(view)?),
            resume_token: payload.new_articles_token.clone(),
        })
    }

    fn from_change(change: &Change, view: View, resume_token: String) -> Self {
        Self {
            article: Some(encode_article(
                &view.apply(article_to_proto(&change.article)),
            )),
            resume_token,
        }
    }
}

impl StreamMessage for EncodedChangeResponse {
    const FILTER: ChangeFilter = ChangeFilter::All;

    fn token(position: i64) -> Token {
        Token::Changes { position }
    }

    fn heartbeat(resume_token: String) -> Self {
        Self {
            change: None,
            resume_token,
        }
    }

    fn from_broadcast(payload: &ChangePayload, view: View) -> Option<Self> {
        Some(Self {
            change: Some(payload.change.change(view)),
            resume_token: payload.changes_token.clone(),
        })
    }

    fn from_change(change: &Change, view: View, resume_token: String) -> Self {
        Self {
            change: Some(encode_change(change, view)),
            resume_token,
        }
    }
}
