//! One stream (StreamNewArticles or StreamArticleChanges): catch up from
//! the database, then follow the broadcast, falling back to the database
//! whenever the broadcast cannot prove it gave us everything.

use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use prost::bytes::Bytes;
use rand::Rng;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::catch_up::{Batch, Pending, ReadFrom, not_past};
use super::{Feed, FeedEvent, FeedItem, StreamMessage};
use crate::domain::token::TokenCodec;
use crate::error::{Error, Result};
use crate::wire::{View, frame};

/// Where a stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the moment of the call.
    Now,
    /// Right after this change position (0: before the first change).
    After(i64),
}

/// An open subscription: created (and counted against the stream limit)
/// before the response headers go out, so nothing written after the client
/// sees them can be missed.
pub struct Subscription<M> {
    feed: Feed,
    tokens: TokenCodec,
    receiver: broadcast::Receiver<Arc<FeedItem>>,
    /// Every change up to here has been delivered or filtered out.
    position: i64,
    tag_slugs: Arc<[String]>,
    view: View,
    /// When the stream ends for its connection's age, if it does.
    ends_at: Option<Instant>,
    /// `position` is the head, just read: nothing to catch up at first.
    at_head: bool,
    /// The change log's head as the catch-up last read it.
    known_head: Option<i64>,
    /// Changes the next catch-up read asks for.
    row_limit: u32,
    _permit: OwnedSemaphorePermit,
    _message: PhantomData<fn() -> M>,
}

/// `MAX_CONNECTION_AGE` and its grace, as they concern streams: the server
/// sends GOAWAY when a connection reaches its age, and each stream on it
/// ends with UNAVAILABLE a little later, within the grace. Not before the
/// GOAWAY: the client would resume on the same connection, only to be ended
/// again. After it, the client resumes on a new connection, maybe to another
/// replica, and the old connection closes once its unary calls are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionAge {
    pub age: Duration,
    pub grace: Duration,
}

impl ConnectionAge {
    /// When a stream on a connection accepted at `accepted_at` ends: at a
    /// random moment from a tenth to half of the grace past the age, so
    /// that the streams of one connection (and of connections accepted
    /// together) do not all resume at once, and the GOAWAY comes first.
    pub fn stream_end(&self, accepted_at: Instant) -> Instant {
        let grace = self.grace.as_secs_f64();
        let past_the_age = rand::rng().random_range(grace * 0.1..=grace * 0.5);
        accepted_at + self.age + Duration::from_secs_f64(past_the_age)
    }
}

impl Feed {
    /// Opens a subscription sending `M`s from `start` on.
    pub async fn subscribe<M: StreamMessage>(
        &self,
        tag_slugs: Vec<String>,
        start: Start,
        view: View,
    ) -> Result<Subscription<M>> {
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
        let joined = std::time::Instant::now();
        let head = self.head_reads.read_since(&self.store, joined).await?;
        // A resume position is settled against the head here, before the
        // response headers go out, so that a change written after the
        // client has them is above the position we start from.
        let (position, at_head) = match start {
            Start::After(position) => (not_past(position, head), false),
            Start::Now => (head, true),
        };
        Ok(Subscription {
            feed: self.clone(),
            tokens,
            receiver,
            position,
            tag_slugs: tag_slugs.into(),
            view,
            ends_at: None,
            at_head,
            known_head: Some(head),
            row_limit: self.settings.batch_size,
            _permit: permit,
            _message: PhantomData,
        })
    }
}

impl<M: StreamMessage> Subscription<M> {
    /// Ends the stream at `at` (see [`ConnectionAge`]).
    pub fn ending_at(self, at: Option<Instant>) -> Self {
        Self {
            ends_at: at,
            ..self
        }
    }

    /// The stream of framed messages (`wire::frame`). It ends only with an error status: on
    /// shutdown, at its end (`ending_at`), or when the database is needed
    /// and cannot be reached.
    pub fn into_stream(mut self) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        async_stream::stream! {
            let feed = self.feed.clone();
            // Polled at every wake-up of the stream, so for every message:
            // with a token of our own (cancelled with the server's) and one
            // future for the whole stream, a poll locks only this stream's
            // node, instead of the node every stream shares, and its waiter
            // stays registered instead of being added and removed each time.
            let shutdown = feed.shutdown.child_token();
            // The server's shutdown or the connection's age, whichever
            // comes first, and the status the stream then ends with.
            let mut shutdown_signal = std::pin::pin!(ending(shutdown.clone(), self.ends_at));
            let wanted: HashSet<String> = self.tag_slugs.iter().cloned().collect();
            // A heartbeat goes out after `heartbeat_interval` without a
            // message. A message only notes the time: the timer is moved
            // when it fires, to what the last message makes due, rather
            // than at every message (a timer-wheel update per message and
            // stream, 10,000 an article at 10,000 streams).
            let silence = feed.settings.heartbeat_interval;
            let mut last_sent = Instant::now();
            let mut heartbeat = std::pin::pin!(tokio::time::sleep_until(last_sent + silence));
            // A stream opened without a token starts at the head: its first
            // message is that position's token, at once. Otherwise a stream
            // the server ends before anything happened (shutdown, the
            // connection's age) would leave its consumer no token, and its
            // next stream would start from a later head: whatever came
            // between would be lost to it.
            if self.at_head {
                yield Ok(self.heartbeat());
            }
            'outer: loop {
                // Catch up from the database, up to its head (a new stream
                // starts there). The next batch is read while this one is
                // sent.
                let mut next_read: Option<Pending> = None;
                while !std::mem::take(&mut self.at_head) {
                    let read = match next_read.take() {
                        Some(read) => read,
                        None => self.feed.read_changes(self.read_from()),
                    };
                    let batch = tokio::select! {
                        biased;
                        error = &mut shutdown_signal => {
                            yield Err(error);
                            return;
                        }
                        batch = read.batch() => batch,
                    };
                    let CatchUp { messages, done, _held } = match batch {
                        Ok(batch) => self.take_batch(batch),
                        Err(error) => {
                            tracing::debug!(%error, position = self.position, "stream cannot catch up; ending it");
                            yield Err(error);
                            return;
                        }
                    };
                    if !done {
                        next_read = self.feed.read_changes_ahead(self.read_from());
                    }
                    if !messages.is_empty() {
                        last_sent = Instant::now();
                    }
                    for message in messages {
                        if shutdown.is_cancelled() {
                            yield Err(shutting_down());
                            return;
                        }
                        yield Ok(message);
                    }
                    if done {
                        self.at_head = true;
                    }
                    // A long catch-up of a rare tag still tells the consumer
                    // how far it got.
                    if last_sent.elapsed() >= silence {
                        last_sent = Instant::now();
                        yield Ok(self.heartbeat());
                    }
                }
                // Live: follow the broadcast while it proves there is no gap.
                loop {
                    tokio::select! {
                        biased;
                        error = &mut shutdown_signal => {
                            yield Err(error);
                            return;
                        }
                        // Before the broadcast, so that a busy stream of
                        // articles the filter skips cannot starve it.
                        () = &mut heartbeat => {
                            if last_sent.elapsed() >= silence {
                                last_sent = Instant::now();
                                heartbeat.as_mut().reset(last_sent + silence);
                                yield Ok(self.heartbeat());
                            } else {
                                heartbeat.as_mut().reset(last_sent + silence);
                            }
                        }
                        received = self.receiver.recv() => match received {
                            Ok(item) => {
                                if let FeedEvent::Rewound = item.event {
                                    // The head we knew may be past the new
                                    // one: read up to it, the catch-up would
                                    // take the positions to come again for
                                    // ones already passed.
                                    self.known_head = None;
                                    if item.position < self.position {
                                        tracing::debug!(
                                            position = self.position,
                                            head = item.position,
                                            "the feed went back; the stream moves back with it"
                                        );
                                        self.position = item.position;
                                    }
                                    continue 'outer;
                                }
                                if item.position <= self.position {
                                    continue; // already delivered by the catch-up
                                }
                                if item.previous_position > self.position {
                                    tracing::debug!(
                                        position = self.position,
                                        broadcast_from = item.previous_position,
                                        "stream is behind the broadcast; catching up from the database"
                                    );
                                    // What it missed may include the feed going back:
                                    // the head is read again.
                                    self.known_head = None;
                                    continue 'outer;
                                }
                                if !(wanted.is_empty() || item.tag_slugs.iter().any(|slug| wanted.contains(slug))) {
                                    self.position = item.position;
                                    continue;
                                }
                                let FeedEvent::Change(payload) = &item.event else {
                                    self.position = item.position;
                                    continue;
                                };
                                let Some(payload) = payload.upgrade() else {
                                    tracing::debug!(
                                        position = self.position,
                                        "the broadcast let go of the change this stream is at; catching up from the database"
                                    );
                                    // What it missed may include the feed going back:
                                    // the head is read again.
                                    self.known_head = None;
                                    continue 'outer;
                                };
                                self.position = item.position;
                                // The frame every stream of this kind and
                                // view shares.
                                if let Some(framed) = payload.frame(M::KIND, self.view) {
                                    drop(payload);
                                    last_sent = Instant::now();
                                    yield Ok(framed);
                                }
                            }
                            Err(RecvError::Lagged(skipped)) => {
                                tracing::debug!(
                                    skipped,
                                    position = self.position,
                                    "stream fell behind the broadcast; catching up from the database"
                                );
                                // What it missed may include the feed going back:
                                // the head is read again.
                                self.known_head = None;
                                continue 'outer;
                            }
                            Err(RecvError::Closed) => {
                                yield Err(shutting_down());
                                return;
                            }
                        },
                    }
                }
            }
        }
    }

    /// A message without an article: everything up to our position has been
    /// delivered or filtered out.
    fn heartbeat(&self) -> Bytes {
        frame(&M::heartbeat(self.tokens.seal(&M::token(self.position))))
    }

    /// Where the next catch-up read starts: the matching changes after our
    /// position, up to the database's head.
    fn read_from(&self) -> ReadFrom {
        ReadFrom {
            position: self.position,
            known_head: self.known_head,
            tag_slugs: self.tag_slugs.clone(),
            filter: M::FILTER,
            with_bodies: self.view == View::Full,
            row_limit: self.row_limit,
        }
    }

    /// Frames a batch, holds its share of the catch-up budget, and moves
    /// our position past what it will send.
    fn take_batch(&mut self, batch: Batch) -> CatchUp {
        let feed = &self.feed;
        self.known_head = Some(batch.head);
        // `row_limit` is still what this batch asked for: it changes only
        // here, and a read made ahead starts after the change.
        self.row_limit = batch.next_row_limit(self.row_limit, feed.settings.batch_size);
        // Where we are once we sent all of it, or only its first change.
        let (after_all, after_first) = (
            batch.position_after(batch.changes.len()),
            batch.position_after(1),
        );
        let mut messages: Vec<Bytes> = batch
            .changes
            .into_iter()
            .map(|change| {
                let position = change.position;
                feed.shared_frames.frame(position, M::KIND, self.view, || {
                    let token = self.tokens.seal(&M::token(position));
                    M::frame_change(change, self.view, token)
                })
            })
            .collect();
        let held = match feed.hold_catch_up_bytes(&messages) {
            Some(held) => {
                self.position = after_all;
                Some(held)
            }
            // Streams that do not read hold the budget: this one goes on a
            // change at a time, rather than waiting for them.
            None => {
                messages.truncate(1);
                self.position = after_first;
                feed.hold_catch_up_bytes(&messages)
            }
        };
        CatchUp {
            messages,
            done: self.position == batch.head,
            _held: held,
        }
    }
}

/// A catch-up read, framed, and its share of `FEED_CATCH_UP_BYTES`, held
/// until the stream has handed every message to the connection.
struct CatchUp {
    messages: Vec<Bytes>,
    /// The head is reached.
    done: bool,
    _held: Option<OwnedSemaphorePermit>,
}

/// Resolves, with the error to end the stream with, on shutdown or at
/// `ends_at`.
async fn ending(shutdown: CancellationToken, ends_at: Option<Instant>) -> Error {
    let aged = async {
        match ends_at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        () = shutdown.cancelled_owned() => shutting_down(),
        () = aged => Error::Unavailable(
            "this connection reached its age limit; resume from your last resume_token on a new connection".into(),
        ),
    }
}

fn shutting_down() -> Error {
    Error::Unavailable("the server is shutting down; resume from your last resume_token".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_ends_within_the_first_half_of_the_grace_after_the_age() {
        let connection_age = ConnectionAge {
            age: Duration::from_secs(300),
            grace: Duration::from_secs(10),
        };
        let accepted_at = Instant::now();
        let earliest = accepted_at + Duration::from_secs(301);
        let latest = accepted_at + Duration::from_secs(305);
        let ends: Vec<Instant> = (0..1_000)
            .map(|_| connection_age.stream_end(accepted_at))
            .collect();
        assert!(ends.iter().all(|end| (earliest..=latest).contains(end)));
        // Spread, not one moment for every stream.
        let first = ends.iter().min().copied();
        let last = ends.iter().max().copied();
        assert!(
            last.zip(first)
                .is_some_and(|(last, first)| last - first > Duration::from_secs(3))
        );
    }
}
