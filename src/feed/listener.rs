//! The process's one LISTEN connection, and the fan-out it drives.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use super::{Feed, FeedItem};
use crate::api::convert::article_to_proto;
use crate::domain::token::Token;
use crate::proto::StreamNewArticlesResponse;
use crate::store::FEED_CHANNEL;

/// Runs until shutdown: keeps a LISTEN connection (outside the request pool)
/// and broadcasts every newly stored article once.
pub async fn run_listener(feed: Feed, options: PgConnectOptions) {
    // A pool of one, of its own: PgListener holds its connection for good and
    // reconnects through this pool.
    let listen_pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options);
    let mut position: Option<i64> = None;
    let mut backoff = Duration::from_millis(100);
    while !feed.shutdown.is_cancelled() {
        let mut listener = match connect(&listen_pool).await {
            Ok(listener) => {
                backoff = Duration::from_millis(100);
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
        // Whatever was stored while we were not listening.
        catch_up(&feed, &mut position).await;
        let mut safety_tick = tokio::time::interval(feed.settings.safety_poll);
        loop {
            tokio::select! {
                _ = feed.shutdown.cancelled() => return,
                _ = safety_tick.tick() => catch_up(&feed, &mut position).await,
                notification = listener.try_recv() => match notification {
                    Ok(Some(_)) => catch_up(&feed, &mut position).await,
                    Ok(None) => {
                        tracing::warn!("feed listener lost its connection; reconnecting");
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "feed listener failed; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}

async fn connect(pool: &sqlx::PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(FEED_CHANNEL).await?;
    Ok(listener)
}

/// Broadcasts every article stored after `position`. The first successful
/// call only learns the current head: articles stored before the process
/// started are not new to anyone subscribed to it.
async fn catch_up(feed: &Feed, position: &mut Option<i64>) {
    let tokens = match feed.tokens.codec().await {
        Ok(tokens) => tokens,
        Err(error) => {
            tracing::warn!(%error, "feed listener cannot load the token key");
            return;
        }
    };
    let Some(mut last) = *position else {
        match feed.store.feed_head().await {
            Ok(head) => *position = Some(head),
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
        for article in articles {
            let item = FeedItem {
                previous_position: last,
                position: article.feed_position,
                tag_slugs: article.tags.iter().map(|tag| tag.slug.clone()).collect(),
                message: StreamNewArticlesResponse {
                    resume_token: tokens.seal(&Token::Resume {
                        feed_position: article.feed_position,
                    }),
                    article: Some(article_to_proto(&article)),
                },
            };
            last = item.position;
            // No receiver is fine: nobody is subscribed.
            let _ = feed.sender.send(Arc::new(item));
        }
        *position = Some(last);
        if !full_batch {
            break;
        }
    }
}
