//! StreamNewArticles and StreamArticleChanges: the request checked, then a
//! subscription to the feed (`feed`), its errors mapped to statuses here.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio::time::Instant;
use tonic::Status;

use super::service::ArticleApi;
use crate::domain::article::resolve_tag_name;
use crate::domain::token::Token;
use crate::error::{Error, Result};
use crate::feed::{Start, StreamMessage};
use crate::proto::{StreamArticleChangesRequest, StreamNewArticlesRequest};
use crate::wire::{EncodedChangeResponse, EncodedStreamResponse, view_from_proto};
use prost::bytes::Bytes;

/// Tags one stream may filter on, at most.
pub const MAX_STREAM_TAGS: usize = 100;

/// A feed stream: its messages framed for the wire (`wire::frame`), as
/// `server::feed_streams` sends them.
pub type FramedStream = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;

/// A stream's tag filter: each tag resolved to its slug, repeats dropped.
fn tag_filter(tags: &[String]) -> Result<Vec<String>> {
    if tags.len() > MAX_STREAM_TAGS {
        return Err(Error::invalid(
            "tags",
            format!("a stream filters on at most {MAX_STREAM_TAGS} tags"),
        ));
    }
    let mut tag_slugs = Vec::with_capacity(tags.len());
    for tag in tags {
        let (_, slug) = resolve_tag_name("tags", tag)?;
        if !tag_slugs.contains(&slug) {
            tag_slugs.push(slug);
        }
    }
    Ok(tag_slugs)
}

impl ArticleApi {
    pub(super) async fn subscribe_new_articles(
        &self,
        request: StreamNewArticlesRequest,
        ends_at: Option<Instant>,
    ) -> Result<FramedStream> {
        let tag_slugs = tag_filter(&request.tags)?;
        let view = view_from_proto(request.view)?;
        let start = match request.resume_token.as_str() {
            "" => Start::Now,
            token => {
                self.open_token(
                    "resume_token",
                    token,
                    "resume_token was not issued by StreamNewArticles",
                    |token| match token {
                        Token::Resume { feed_position } => Some(Start::After(feed_position)),
                        _ => None,
                    },
                )
                .await?
            }
        };
        self.subscribe::<EncodedStreamResponse>(tag_slugs, start, view, ends_at)
            .await
    }

    pub(super) async fn subscribe_changes(
        &self,
        request: StreamArticleChangesRequest,
        ends_at: Option<Instant>,
    ) -> Result<FramedStream> {
        let tag_slugs = tag_filter(&request.tags)?;
        let view = view_from_proto(request.view)?;
        let start = match (request.resume_token.as_str(), request.from_beginning) {
            ("", false) => Start::Now,
            ("", true) => Start::After(0),
            (_, true) => {
                return Err(Error::invalid(
                    "from_beginning",
                    "give either from_beginning or a resume_token, not both",
                ));
            }
            (token, false) => {
                self.open_token(
                    "resume_token",
                    token,
                    "resume_token was not issued by StreamArticleChanges or ListArticlesByTag",
                    |token| match token {
                        Token::Changes { position } => Some(Start::After(position)),
                        _ => None,
                    },
                )
                .await?
            }
        };
        self.subscribe::<EncodedChangeResponse>(tag_slugs, start, view, ends_at)
            .await
    }

    async fn subscribe<M: StreamMessage>(
        &self,
        tag_slugs: Vec<String>,
        start: Start,
        view: crate::wire::View,
        ends_at: Option<Instant>,
    ) -> Result<FramedStream> {
        let subscription = self
            .feed
            .subscribe::<M>(tag_slugs, start, view)
            .await?
            .ending_at(ends_at);
        Ok(Box::pin(
            subscription
                .into_stream()
                .map(|message| message.map_err(Status::from)),
        ))
    }
}
