//! The process's one LISTEN connection, and the fan-out it drives.

use std::sync::Arc;
use std::time::Duration;

use super::{BroadcastTokens, ChangePayload, Feed, FeedEvent, FeedItem, Retained};
use crate::domain::lifecycle::ChangeKind;
use crate::domain::token::Token;
use crate::metrics::{FEED_DELIVERED, FEED_HEAD, FEED_LAG, FEED_LISTENING, LISTENER_RECONNECTS};
use crate::store::{BatchLimits, ChangeFilter, Notification};

/// Runs until shutdown: keeps a LISTEN connection (outside the request pool)
/// and broadcasts every change once.
pub async fn run_listener(feed: Feed) {
    let notifications = feed.store.notifications();
    let mut position: Option<i64> = None;
    let mut lag = Lag::default();
    let mut retained = Retained::new(feed.settings.buffer_bytes);
    let reconnects = metrics::counter!(LISTENER_RECONNECTS);
    reconnects.absolute(0);
    // Not listening until the first connection.
    metrics::gauge!(FEED_LISTENING).set(0.0);
    let mut connected_before = false;
    let mut backoff = Duration::from_millis(100);
    while !feed.shutdown.is_cancelled() {
        let mut listener = match notifications.listen().await {
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
        set_listening(&feed, true);
        // Whatever was stored while we were not listening (and a database
        // restored meanwhile).
        check_head(&feed, &mut position, &mut lag).await;
        catch_up(&feed, &mut position, &mut lag, &mut retained).await;
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
                    catch_up(&feed, &mut position, &mut lag, &mut retained).await;
                    // A connection to a host that vanished can stay silent
                    // forever instead of failing: make sure it answers.
                    if !listener.answers().await {
                        tracing::warn!("feed listener connection does not answer; reconnecting");
                        set_listening(&feed, false);
                        break;
                    }
                }
                notification = listener.recv() => match notification {
                    Ok(Some(Notification::ArticlesChanged(Some(ids)))) => {
                        feed.cache.articles_changed(&ids);
                    }
                    Ok(Some(Notification::ArticlesChanged(None))) => feed.cache.clear(),
                    Ok(Some(Notification::NewChanges { up_to: hint })) => {
                        // The newest position the notifying transaction
                        // wrote: a burst of notifications costs one read,
                        // not one each.
                        if let Some(hint) = hint {
                            feed.store.saw_committed(hint);
                            lag.stored_at_least(hint);
                        }
                        if hint.is_none_or(|hint| position.is_none_or(|last| hint > last)) {
                            catch_up(&feed, &mut position, &mut lag, &mut retained).await;
                        }
                    }
                    Ok(None) => {
                        tracing::warn!("feed listener lost its connection; reconnecting");
                        set_listening(&feed, false);
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "feed listener failed; reconnecting");
                        set_listening(&feed, false);
                        break;
                    }
                },
            }
        }
    }
}

/// Whether the LISTEN connection is up: the read cache serves only while
/// it is (it hears of changes through it), and `article_feed_listening`
/// shows it, since a listener that cannot connect at all moves no other
/// series (its lag is read through that connection).
fn set_listening(feed: &Feed, listening: bool) {
    feed.cache.set_listening(listening);
    metrics::gauge!(FEED_LISTENING).set(if listening { 1.0 } else { 0.0 });
}

/// Positions never go back, so a head below what we broadcast means the
/// database lost changes (a restore from a backup). New articles will take
/// those positions again: follow the feed from the head, and tell every
/// subscription to do the same. Checked after every reconnect (a restore
/// restarts the database) and on the safety tick; articles stored after a
/// restore but before the check are taken as seen.
async fn check_head(feed: &Feed, position: &mut Option<i64>, lag: &mut Lag) {
    let Some(last) = *position else { return };
    let head = match feed.store.change_head().await {
        Ok(head) => head,
        Err(error) => {
            tracing::warn!(%error, "feed listener cannot read the feed head");
            return;
        }
    };
    feed.store.saw_committed(head);
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
        feed.shared_frames.clear();
        let _ = feed.sender.send(Arc::new(FeedItem {
            previous_position: head,
            position: head,
            tag_slugs: Vec::new(),
            event: FeedEvent::Rewound,
        }));
    }
}

/// Broadcasts every change written after `position`. The first successful
/// call only learns the current head: changes written before the process
/// started are not new to anyone subscribed to it.
async fn catch_up(feed: &Feed, position: &mut Option<i64>, lag: &mut Lag, retained: &mut Retained) {
    let tokens = match feed.tokens.codec().await {
        Ok(tokens) => tokens,
        Err(error) => {
            tracing::warn!(%error, "feed listener cannot load the token key");
            return;
        }
    };
    let Some(mut last) = *position else {
        match feed.store.change_head().await {
            Ok(head) => {
                *position = Some(head);
                feed.store.saw_committed(head);
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
        let batch = match feed
            .store
            .changes_after(
                last,
                i64::MAX,
                &[],
                ChangeFilter::All,
                // Encoded once for every stream, in both views.
                true,
                // No more at once than the broadcast keeps.
                BatchLimits {
                    changes: feed.settings.batch_size,
                    bytes: feed.settings.buffer_bytes,
                },
            )
            .await
        {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "feed listener cannot read new changes; will retry");
                break;
            }
        };
        // Noted before the cache forgets: a read that misses from now on
        // does not fill it from a read database that is behind.
        if let Some(newest) = batch.changes.last() {
            feed.store.saw_committed(newest.position);
        }
        forget_cached(feed, &batch.changes);
        for change in batch.changes {
            let payload = ChangePayload::new(
                &change,
                &BroadcastTokens {
                    new_articles: tokens.seal(&Token::Resume {
                        feed_position: change.position,
                    }),
                    changes: tokens.seal(&Token::Changes {
                        position: change.position,
                    }),
                },
            );
            if change.kind == ChangeKind::Withdrawn {
                // A takedown is never served again: streams that lag within
                // the broadcast and reach the article's earlier changes
                // read them from the database, which leaves them out.
                retained.forget_article(change.article.id);
            }
            let item = FeedItem {
                previous_position: last,
                position: change.position,
                event: FeedEvent::Change(retained.keep(change.article.id, payload)),
                tag_slugs: change.filter_tags,
            };
            last = item.position;
            // No receiver is fine: nobody is subscribed.
            let _ = feed.sender.send(Arc::new(item));
        }
        *position = Some(last);
        lag.delivered(last);
        if !batch.more {
            break;
        }
    }
}

/// What the changes make stale in this replica's read cache: the first
/// pages of a newly public article's tags; for any other change, the article
/// and every first page (an update may remove a tag; changes are rare). The
/// replica that wrote a change dropped the same already.
fn forget_cached(feed: &Feed, changes: &[crate::domain::lifecycle::Change]) {
    let mut published_tags: Vec<String> = Vec::new();
    let mut changed_ids = Vec::new();
    for change in changes {
        match change.kind {
            ChangeKind::Published => published_tags.extend(change.filter_tags.iter().cloned()),
            ChangeKind::Updated | ChangeKind::Withdrawn => changed_ids.push(change.article.id),
        }
    }
    if !published_tags.is_empty() {
        published_tags.sort_unstable();
        published_tags.dedup();
        feed.cache.new_article_tagged(&published_tags);
    }
    if !changed_ids.is_empty() {
        feed.cache.articles_changed(&changed_ids);
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
