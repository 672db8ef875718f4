//! One StreamNewArticles stream: catch up from the database, then follow the
//! broadcast, falling back to the database whenever the broadcast cannot
//! prove it gave us everything.

use std::collections::HashSet;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::broadcast::{self, error::RecvError};
use tonic::Status;

use super::{Feed, FeedItem};
use crate::api::convert::article_to_proto;
use crate::domain::token::{Token, TokenCodec};
use crate::error::{Error, Result};
use crate::proto::StreamNewArticlesResponse;

/// An open subscription: created (and counted against the stream limit)
/// before the response headers go out, so nothing stored after the client
/// sees them can be missed.
pub struct Subscription {
    feed: Feed,
    tokens: TokenCodec,
    receiver: broadcast::Receiver<Arc<FeedItem>>,
    /// Every article up to here has been delivered or filtered out.
    position: i64,
    tag_slugs: Arc<[String]>,
    _permit: OwnedSemaphorePermit,
}

impl Feed {
    /// Opens a subscription starting after `resume_position`, or at the
    /// current head when there is none.
    pub async fn subscribe(
        &self,
        tag_slugs: Vec<String>,
        resume_position: Option<i64>,
    ) -> Result<Subscription> {
        if self.shutdown.is_cancelled() {
            return Err(Error::Unavailable("the server is shutting down".into()));
        }
        let tokens = self.tokens.codec().await?.clone();
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            Error::ResourceExhausted(
                "too many open streams on this server; retry later or on another replica".into(),
            )
        })?;
        // Receive first, then read the head: whatever commits after the head
        // was read reaches the receiver.
        let receiver = self.sender.subscribe();
        let position = match resume_position {
            Some(position) => position,
            None => self.store.feed_head().await?,
        };
        Ok(Subscription {
            feed: self.clone(),
            tokens,
            receiver,
            position,
            tag_slugs: tag_slugs.into(),
            _permit: permit,
        })
    }
}

impl Subscription {
    /// The stream of messages. It ends only with an error status: on
    /// shutdown, or when the database is needed and cannot be reached.
    pub fn into_stream(
        mut self,
    ) -> impl Stream<Item = Result<StreamNewArticlesResponse, Status>> + Send + 'static {
        async_stream::stream! {
            let feed = self.feed.clone();
            let wanted: HashSet<String> = self.tag_slugs.iter().cloned().collect();
            let mut heartbeat = tokio::time::interval_at(
                tokio::time::Instant::now() + feed.settings.heartbeat_interval,
                feed.settings.heartbeat_interval,
            );
            heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            'outer: loop {
                // Catch up from the database, up to its head.
                loop {
                    if feed.shutdown.is_cancelled() {
                        yield Err(shutting_down());
                        return;
                    }
                    match self.catch_up_batch().await {
                        Ok((messages, done)) => {
                            if !messages.is_empty() {
                                heartbeat.reset();
                            }
                            for message in messages {
                                yield Ok(message);
                            }
                            if done {
                                break;
                            }
                        }
                        Err(error) => {
                            yield Err(Status::from(error));
                            return;
                        }
                    }
                }
                // Live: follow the broadcast while it proves there is no gap.
                loop {
                    tokio::select! {
                        biased;
                        _ = feed.shutdown.cancelled() => {
                            yield Err(shutting_down());
                            return;
                        }
                        received = self.receiver.recv() => match received {
                            Ok(item) => {
                                if item.position <= self.position {
                                    continue; // already delivered by the catch-up
                                }
                                if item.previous_position > self.position {
                                    continue 'outer; // a gap: fill it from the database
                                }
                                self.position = item.position;
                                let Some(message) = &item.message else { continue };
                                if wanted.is_empty() || item.tag_slugs.iter().any(|slug| wanted.contains(slug)) {
                                    heartbeat.reset();
                                    yield Ok(message.clone());
                                }
                            }
                            Err(RecvError::Lagged(_)) => continue 'outer,
                            Err(RecvError::Closed) => {
                                yield Err(shutting_down());
                                return;
                            }
                        },
                        _ = heartbeat.tick() => {
                            yield Ok(StreamNewArticlesResponse {
                                article: None,
                                resume_token: self.tokens.seal(&Token::Resume { feed_position: self.position }),
                            });
                        }
                    }
                }
            }
        }
    }

    /// One batch of matching articles after our position, up to the
    /// database's head; `true` once the head is reached.
    async fn catch_up_batch(&mut self) -> Result<(Vec<StreamNewArticlesResponse>, bool)> {
        let feed = &self.feed;
        let head = feed.store.feed_head().await?;
        if head <= self.position {
            return Ok((Vec::new(), true));
        }
        let articles = feed
            .store
            .feed_after(
                self.position,
                head,
                &self.tag_slugs,
                feed.settings.batch_size,
            )
            .await?;
        let full_batch = articles.len() == feed.settings.batch_size as usize;
        let messages = articles
            .iter()
            .map(|article| StreamNewArticlesResponse {
                article: Some(article_to_proto(article)),
                resume_token: self.tokens.seal(&Token::Resume {
                    feed_position: article.feed_position,
                }),
            })
            .collect();
        self.position = match (full_batch, articles.last()) {
            (true, Some(last)) => last.feed_position,
            // Every matching article up to the head is in this batch.
            _ => head,
        };
        Ok((messages, !full_batch))
    }
}

fn shutting_down() -> Status {
    Status::unavailable("the server is shutting down; resume from your last resume_token")
}
