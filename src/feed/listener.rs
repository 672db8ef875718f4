//! The process's one LISTEN connection, and the fan-out it drives.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use super::{EncodedStreamResponse, Feed, FeedEvent, FeedItem};
use crate::api::convert::article_to_proto;
use crate::domain::token::Token;
use crate::metrics::{FEED_DELIVERED, FEED_HEAD, FEED_LAG, LISTENER_RECONNECTS};
use crate::store::{CHANGES_CHANNEL, FEED_CHANNEL};

/// How long the LISTEN connection may take to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs until shutdown: keeps a LISTEN connection (outside the request pool)
/// and broadcasts every newly stored article once.
pub async fn run_listener(feed: Feed, options: PgConnectOptions) {
    // A pool of its own for the LISTEN connection. Two connections, because
    // a dropped PgListener hands its (possibly dead) connection back in a
    // background task: the replacement must not wait for that.
    let listen_pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options);
    let mut position: Option<i64> = None;
    let mut lag = Lag::default();
    let reconnects = metrics::counter!(LISTENER_RECONNECTS);
    reconnects.absolute(0);
    let mut connected_before = false;
    let mut backoff = Duration::from_millis(100);
    while !feed.shutdown.is_cancelled() {
        let mut listener = match connect(&listen_pool).await {
            Ok(listener) => {
                backoff = Duration::from_millis(100);
                // The first connection is not a reconnect; every later one
                // follows a loss.
                if std::mem::replace(&mut connected_before, true) {
                    reconnects.increment(1);
                }
                listener
            }
            Err(error) => {
                tracing::warn!(%error, "feed listener cannot connect; retrying");
                tokio::select! {
                    _ = feed.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        // Changes notified while we were not listening are lost: the read
        // cache starts again from empty.
        feed.cache.set_listening(true);
        // Whatever was stored while we were not listening (and a database
        // restored meanwhile).
        check_head(&feed, &mut position, &mut lag).await;
        catch_up(&feed, &mut position, &mut lag).await;
        let mut safety_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + feed.settings.safety_poll,
            feed.settings.safety_poll,
        );
        safety_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = feed.shutdown.cancelled() => return,
                _ = safety_tick.tick() => {
                    check_head(&feed, &mut position, &mut lag).await;
                    catch_up(&feed, &mut position, &mut lag).await;
                    // A connection to a host that vanished can stay silent
                    // forever instead of failing: make sure it answers.
                    if !answers(&mut listener).await {
                        tracing::warn!("feed listener connection does not answer; reconnecting");
                        feed.cache.set_listening(false);
                        break;
                    }
                }
                notification = listener.try_recv() => match notification {
                    Ok(Some(notification)) if notification.channel() == CHANGES_CHANNEL => {
                        articles_changed(&feed, notification.payload());
                    }
                    Ok(Some(notification)) => {
                        // The payload is the newest position the notifying
                        // transaction stored: a burst of notifications costs
                        // one read, not one each.
                        let hint = notification.payload().parse::<i64>().ok();
                        if let Some(hint) = hint {
                            lag.stored_at_least(hint);
                        }
                        if hint.is_none_or(|hint| position.is_none_or(|last| hint > last)) {
                            catch_up(&feed, &mut position, &mut lag).await;
                        }
                    }
                    Ok(None) => {
                        tracing::warn!("feed listener lost its connection; reconnecting");
                        feed.cache.set_listening(false);
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "feed listener failed; reconnecting");
                        feed.cache.set_listening(false);
                        break;
                    }
                },
            }
        }
    }
}

async fn connect(pool: &sqlx::PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // On a lost connection return at once: we reconnect here, and catch up
    // from the table once listening again.
    listener.eager_reconnect(false);
    listener.listen_all([FEED_CHANNEL, CHANGES_CHANNEL]).await?;
    Ok(listener)
}

/// An `article_changes` notification: the ids of updated articles, or `*`.
fn articles_changed(feed: &Feed, payload: &str) {
    let ids: Option<Vec<uuid::Uuid>> = payload
        .split(',')
        .map(|id| uuid::Uuid::try_parse(id).ok())
        .collect();
    match ids {
        Some(ids) => feed.cache.articles_changed(&ids),
        None => feed.cache.clear(),
    }
}

async fn answers(listener: &mut PgListener) -> bool {
    // Notifications that arrive meanwhile are buffered for `try_recv`.
    let ping = sqlx::query("SELECT 1").execute(&mut *listener);
    matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(_)))
}

/// Positions never go back, so a head below what we broadcast means the
/// database lost articles (a restore from a backup). New articles will take
/// those positions again: follow the feed from the head, and tell every
/// subscription to do the same. Checked after every reconnect (a restore
/// restarts the database) and on the safety tick; articles stored after a
/// restore but before the check are taken as seen.
async fn check_head(feed: &Feed, position: &mut Option<i64>, lag: &mut Lag) {
    let Some(last) = *position else { return };
    let head = match feed.store.feed_head().await {
        Ok(head) => head,
        Err(error) => {
            tracing::warn!(%error, "feed listener cannot read the feed head");
            return;
        }
    };
    lag.stored(head);
    if head < last {
        tracing::warn!(
            head,
            broadcast_up_to = last,
            "the feed head went back (database restored?); following it from the head"
        );
        *position = Some(head);
        lag.delivered(head);
        feed.cache.clear();
        let _ = feed.sender.send(Arc::new(FeedItem {
            previous_position: head,
            position: head,
            tag_slugs: Vec::new(),
            event: FeedEvent::Rewound,
        }));
    }
}

/// Broadcasts every article stored after `position`. The first successful
/// call only learns the current head: articles stored before the process
/// started are not new to anyone subscribed to it.
async fn catch_up(feed: &Feed, position: &mut Option<i64>, lag: &mut Lag) {
    let tokens = match feed.tokens.codec().await {
        Ok(tokens) => tokens,
        Err(error) => {
            tracing::warn!(%error, "feed listener cannot load the token key");
            return;
        }
    };
    let Some(mut last) = *position else {
        match feed.store.feed_head().await {
            Ok(head) => {
                *position = Some(head);
                lag.stored(head);
                lag.delivered(head);
                // A subscription opened before now read a head of its own,
                // which may be older: articles stored in between would wait
                // for the next article's gap check. The marker sends any
                // such subscription to the database at once.
                let _ = feed.sender.send(Arc::new(FeedItem {
                    previous_position: head,
                    position: head,
                    tag_slugs: Vec::new(),
                    event: FeedEvent::Following,
                }));
            }
            Err(error) => tracing::warn!(%error, "feed listener cannot read the feed head"),
        }
        return;
    };
    loop {
        let articles = match feed
            .store
            .feed_after(last, i64::MAX, &[], feed.settings.batch_size)
            .await
        {
            Ok(articles) => articles,
            Err(error) => {
                tracing::warn!(%error, "feed listener cannot read new articles; will retry");
                break;
            }
        };
        let full_batch = articles.len() == feed.settings.batch_size as usize;
        // Reads of these tags' first pages must see the new articles.
        let mut tag_slugs: Vec<String> = articles
            .iter()
            .flat_map(|article| article.tags.iter().map(|tag| tag.slug.clone()))
            .collect();
        tag_slugs.sort_unstable();
        tag_slugs.dedup();
        if !articles.is_empty() {
            feed.cache.new_article_tagged(&tag_slugs);
        }
        for article in articles {
            let item = FeedItem {
                previous_position: last,
                position: article.feed_position,
                tag_slugs: article.tags.iter().map(|tag| tag.slug.clone()).collect(),
                event: FeedEvent::Article(EncodedStreamResponse::with_article(
                    &article_to_proto(&article),
                    tokens.seal(&Token::Resume {
                        feed_position: article.feed_position,
                    }),
                )),
            };
            last = item.position;
            // No receiver is fine: nobody is subscribed.
            let _ = feed.sender.send(Arc::new(item));
        }
        *position = Some(last);
        lag.delivered(last);
        if !full_batch {
            break;
        }
    }
}

/// The feed lag of this process, as metrics: the newest stored position it
/// knows of (read from the table, or announced by a notification's payload)
/// and the newest it has broadcast. Per process: each replica's listener
/// reads and broadcasts on its own.
#[derive(Debug, Default)]
struct Lag {
    head: i64,
    delivered: i64,
}

impl Lag {
    /// The head as just read from the table (it may have gone back).
    fn stored(&mut self, head: i64) {
        self.head = head;
        self.publish();
    }

    /// A position known to be stored, so the head is at least there.
    fn stored_at_least(&mut self, position: i64) {
        self.head = self.head.max(position);
        self.publish();
    }

    /// Everything up to `position` went out; it is stored, too.
    fn delivered(&mut self, position: i64) {
        self.delivered = position;
        self.head = self.head.max(position);
        self.publish();
    }

    fn publish(&self) {
        metrics::gauge!(FEED_HEAD).set(self.head as f64);
        metrics::gauge!(FEED_DELIVERED).set(self.delivered as f64);
        metrics::gauge!(FEED_LAG).set((self.head - self.delivered).max(0) as f64);
    }
}
