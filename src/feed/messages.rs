//! What each stream sends: StreamNewArticles sends an article when it first
//! becomes public, StreamArticleChanges every change. Both follow the same
//! change log and broadcast; this is all that differs.

use prost::bytes::Bytes;

use super::ChangePayload;
use crate::domain::lifecycle::Change;
use crate::domain::token::Token;
use crate::store::ChangeFilter;
use crate::wire::{self, EncodedChange, EncodedChangeResponse, EncodedStreamResponse, View, frame};

/// Which stream a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    NewArticles,
    Changes,
}

/// A broadcast change's resume tokens, one for each stream.
pub struct BroadcastTokens {
    pub new_articles: String,
    pub changes: String,
}

impl ChangePayload {
    /// Frames `change` for each stream and view, once for every stream.
    pub fn new(change: &Change, tokens: &BroadcastTokens) -> Self {
        let encoded = EncodedChange::new(change);
        let framed = |kind, view| match kind {
            StreamKind::NewArticles => {
                EncodedStreamResponse::from_broadcast(&encoded, tokens, view).map(|m| frame(&m))
            }
            StreamKind::Changes => {
                EncodedChangeResponse::from_broadcast(&encoded, tokens, view).map(|m| frame(&m))
            }
        };
        let frames = [
            framed(StreamKind::NewArticles, View::Full),
            framed(StreamKind::NewArticles, View::Basic),
            framed(StreamKind::Changes, View::Full),
            framed(StreamKind::Changes, View::Basic),
        ];
        Self { frames }
    }

    /// The framed message a stream of `kind` in `view` sends, if any.
    pub fn frame(&self, kind: StreamKind, view: View) -> Option<Bytes> {
        let slot = match (kind, view) {
            (StreamKind::NewArticles, View::Full) => 0,
            (StreamKind::NewArticles, View::Basic) => 1,
            (StreamKind::Changes, View::Full) => 2,
            (StreamKind::Changes, View::Basic) => 3,
        };
        self.frames[slot].clone()
    }

    /// A payload of `bytes` bytes, for tests of what holds payloads.
    #[cfg(test)]
    pub fn of_size_for_tests(bytes: usize) -> Self {
        Self {
            frames: [Some(Bytes::from(vec![0; bytes])), None, None, None],
        }
    }

    /// Bytes held, for the broadcast's budget.
    pub fn size(&self) -> usize {
        self.frames.iter().flatten().map(Bytes::len).sum()
    }
}

/// A stream's message type, and how it is built.
pub trait StreamMessage: prost::Message + Send + 'static {
    /// Which changes the stream reads from the database.
    const FILTER: ChangeFilter;

    /// Which of a broadcast change's frames the stream sends.
    const KIND: StreamKind;

    /// The resume token of a position.
    fn token(position: i64) -> Token;

    /// A message without a change, carrying the stream's position.
    fn heartbeat(resume_token: String) -> Self;

    /// The message of a broadcast change, if the stream sends it.
    fn from_broadcast(change: &EncodedChange, tokens: &BroadcastTokens, view: View) -> Option<Self>
    where
        Self: Sized;

    /// The framed message of a change read from the database
    /// (`wire::frame_new_article`, `wire::frame_change`).
    fn frame_change(change: Change, view: View, resume_token: String) -> Bytes;
}

impl StreamMessage for EncodedStreamResponse {
    const FILTER: ChangeFilter = ChangeFilter::NewArticles;
    const KIND: StreamKind = StreamKind::NewArticles;

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

    fn from_broadcast(
        change: &EncodedChange,
        tokens: &BroadcastTokens,
        view: View,
    ) -> Option<Self> {
        Some(Self {
            article: Some(change.new_article(view)?),
            resume_token: tokens.new_articles.clone(),
        })
    }

    fn frame_change(change: Change, view: View, resume_token: String) -> Bytes {
        wire::frame_new_article(change, view, resume_token)
    }
}

impl StreamMessage for EncodedChangeResponse {
    const FILTER: ChangeFilter = ChangeFilter::All;
    const KIND: StreamKind = StreamKind::Changes;

    fn token(position: i64) -> Token {
        Token::Changes { position }
    }

    fn heartbeat(resume_token: String) -> Self {
        Self {
            change: None,
            resume_token,
        }
    }

    fn from_broadcast(
        change: &EncodedChange,
        tokens: &BroadcastTokens,
        view: View,
    ) -> Option<Self> {
        Some(Self {
            change: Some(change.change(view)),
            resume_token: tokens.changes.clone(),
        })
    }

    fn frame_change(change: Change, view: View, resume_token: String) -> Bytes {
        wire::frame_change(change, view, resume_token)
    }
}
