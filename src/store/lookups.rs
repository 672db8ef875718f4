//! GetArticle's database reads, batched when the database is busy, on
//! connections kept between statements.
//!
//! # Why
//!
//! A read that misses the cache costs the database little (an index probe
//! and one row) but costs three round trips through sqlx's pool: a ping when
//! the connection is handed out (`test_before_acquire`), the query, and a
//! ping when it is taken back (which sqlx always does). On a small machine
//! those round trips (system calls and context switches on both sides) are
//! most of what a miss costs: at 64 concurrent misses on 2 cores the service
//! did about a third of pgbench's rate for the same statement, and with the
//! pings PostgreSQL spent about 130 us of CPU per key looked up
//! (BENCHMARKS.md).
//!
//! # How
//!
//! Lookups queue; one dispatcher task keeps at most `in_flight` statements
//! running, and whenever one of those slots is free it takes every lookup
//! queued so far (up to [`MAX_BATCH`]) into one statement
//! (`WHERE id = ANY($1)`). There is no timer: a lookup that finds a slot
//! free goes at once, alone, with the single-key statement, so an idle
//! service answers as before, and batches only form while every slot is busy,
//! which is when they pay. Concurrent lookups of one key share its row.
//!
//! When the pool has connections to spare (at least [`KEEP_FROM_POOL_SIZE`]:
//! a slot for every eight), a slot keeps the connection its statement ran
//! on, so the next statement is one round trip. Kept connections go back to
//! the pool (and its checks) when lookups pause for [`RELEASE_WHEN_IDLE`],
//! after [`KEEP_AT_MOST`], and after any error; a statement that fails on a
//! kept connection (the database may have restarted since) runs once more on
//! one the pool checks.
//!
//! Nothing else changes for a caller: the answer is what the single-key
//! statement would have read at some moment after the call began, errors are
//! the store's errors, and the wait is bounded by the operation timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use super::reads::articles_by_keys_on;
use super::{Role, Store};
use crate::domain::article::Article;
use crate::error::{Error, Result};
use crate::metrics::LOOKUP_BATCH_SIZE;

/// Keys one statement asks for, at most.
pub const MAX_BATCH: usize = 128;

/// Lookups waiting for a slot, at most; past it a caller waits to queue
/// (calls in flight are bounded anyway, by `MAX_INFLIGHT_CALLS`).
const QUEUE_CAPACITY: usize = 4096;

/// The smallest pool whose connections lookups keep between statements: in
/// a smaller one, a kept connection would be missed by the other calls.
const KEEP_FROM_POOL_SIZE: u32 = 8;

/// Kept connections go back to the pool when no lookup came for this long.
const RELEASE_WHEN_IDLE: Duration = Duration::from_secs(1);

/// A connection is kept this long at most, then goes back to the pool, so
/// the pool's own rules (lifetime, idle timeout, checks) still apply to it.
const KEEP_AT_MOST: Duration = Duration::from_secs(30);

/// How an article is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArticleKey {
    Id(Uuid),
    Slug(String),
}

struct Lookup {
    key: ArticleKey,
    reply: oneshot::Sender<Result<Option<Article>>>,
}

/// The batched article reads; clones share one dispatcher.
#[derive(Clone)]
pub struct ArticleLookups {
    queue: mpsc::Sender<Lookup>,
    timeout: Duration,
}

impl ArticleLookups {
    /// Starts the dispatcher (on the current Tokio runtime). It runs until
    /// the last clone is dropped.
    pub fn start(store: Store, in_flight: usize) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE_CAPACITY);
        let timeout = store.operation_timeout;
        tokio::spawn(dispatch(store, pending, in_flight.max(1)));
        Self { queue, timeout }
    }

    /// The article with this key, if there is one.
    pub async fn article(&self, key: ArticleKey) -> Result<Option<Article>> {
        let (reply, answer) = oneshot::channel();
        let asked = async {
            self.queue
                .send(Lookup { key, reply })
                .await
                .map_err(|_| Error::Unavailable("the server is shutting down".into()))?;
            answer
                .await
                .map_err(|_| Error::Internal("an article lookup was dropped unanswered".into()))?
        };
        // The wait for a slot and the statement are each bounded by the
        // operation timeout; the caller's whole wait is bounded by one, like
        // any other store call.
        super::within(self.timeout, asked).await
    }
}

/// Takes the queued lookups into a statement whenever a slot is free.
async fn dispatch(store: Store, mut pending: mpsc::Receiver<Lookup>, in_flight: usize) {
    let slots = Arc::new(Semaphore::new(in_flight));
    let kept = Arc::new(Kept::new(store.read_pool_size() >= KEEP_FROM_POOL_SIZE));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut batch = Vec::new();
        let received = if kept.enabled {
            // `recv_many` is cancel safe: a lookup is never lost to the
            // timeout.
            let next = pending.recv_many(&mut batch, MAX_BATCH);
            match tokio::time::timeout(RELEASE_WHEN_IDLE, next).await {
                Ok(received) => received,
                Err(_idle) => {
                    kept.release_all();
                    pending.recv_many(&mut batch, MAX_BATCH).await
                }
            }
        } else {
            pending.recv_many(&mut batch, MAX_BATCH).await
        };
        if received == 0 {
            return; // every sender is gone
        }
        let (store, kept) = (store.clone(), Arc::clone(&kept));
        tokio::spawn(async move {
            answer(&store, &kept, batch).await;
            drop(slot);
        });
    }
}

/// Reads one batch and answers each of its callers.
async fn answer(store: &Store, kept: &Kept, mut batch: Vec<Lookup>) {
    // Callers that gave up (deadline, cancellation) need no row.
    batch.retain(|lookup| !lookup.reply.is_closed());
    if batch.is_empty() {
        return;
    }
    metrics::histogram!(LOOKUP_BATCH_SIZE).record(batch.len() as f64);
    let (ids, slugs) = split_keys(batch.iter().map(|lookup| &lookup.key));
    let read = read(store, kept, &ids, &slugs).await;
    // Alone: its article straight to its caller.
    if batch.len() == 1
        && let Some(Lookup { reply, .. }) = batch.pop()
    {
        let _ = reply.send(read.map(|articles| articles.into_iter().next()));
        return;
    }
    match read {
        Ok(articles) => {
            let found = Found::new(articles);
            for lookup in batch {
                let _ = lookup.reply.send(Ok(found.get(&lookup.key)));
            }
        }
        Err(error) => {
            for lookup in batch {
                let _ = lookup.reply.send(Err(error.clone()));
            }
        }
    }
}

/// The articles with these keys, read on a kept connection when there is
/// one, within the operation timeout; on the primary when the read database
/// is behind this process (`freshness`).
async fn read(store: &Store, kept: &Kept, ids: &[Uuid], slugs: &[String]) -> Result<Vec<Article>> {
    store
        .bounded(async {
            // A kept connection whose statement fails is dropped: back to
            // the pool, which checks it before anyone uses it again.
            if let Some(mut connection) = kept.take()
                && let Ok(read) = read_on(store, &mut connection, ids, slugs).await
            {
                kept.put(connection);
                return on_primary_if_behind(store, read, ids, slugs).await;
            }
            let mut connection = KeptConnection {
                conn: store.acquire(Role::Read).await?,
                since: Instant::now(),
            };
            let read = read_on(store, &mut connection, ids, slugs).await?;
            kept.put(connection);
            on_primary_if_behind(store, read, ids, slugs).await
        })
        .await
}

/// The articles with these keys, read on `connection`; `None` when its
/// database is behind this process.
async fn read_on(
    store: &Store,
    connection: &mut KeptConnection,
    ids: &[Uuid],
    slugs: &[String],
) -> Result<Option<Vec<Article>>> {
    if store.is_behind(&mut connection.conn, 0).await? {
        return Ok(None);
    }
    Ok(Some(
        articles_by_keys_on(&mut connection.conn, ids, slugs).await?,
    ))
}

/// What `read_on` read, or, when its database was behind, the primary's.
async fn on_primary_if_behind(
    store: &Store,
    read: Option<Vec<Article>>,
    ids: &[Uuid],
    slugs: &[String],
) -> Result<Vec<Article>> {
    match read {
        Some(articles) => Ok(articles),
        None => store.articles_by_keys_on_primary(ids, slugs).await,
    }
}

/// The connections the slots keep between statements (at most one a slot:
/// a slot takes one while its statement runs and puts it back after).
struct Kept {
    connections: Mutex<Vec<KeptConnection>>,
    /// Off for small pools: every connection goes back after its statement.
    enabled: bool,
}

struct KeptConnection {
    conn: PoolConnection<Postgres>,
    /// When it was taken from the pool.
    since: Instant,
}

impl Kept {
    fn new(enabled: bool) -> Self {
        Self {
            connections: Mutex::new(Vec::new()),
            enabled,
        }
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, Vec<KeptConnection>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Option<KeptConnection> {
        self.connections().pop()
    }

    /// Keeps `connection` for the next statement, unless it is due back
    /// (dropped, it returns to the pool).
    fn put(&self, connection: KeptConnection) {
        if self.enabled && connection.since.elapsed() < KEEP_AT_MOST {
            self.connections().push(connection);
        }
    }

    /// Gives every kept connection back to the pool.
    fn release_all(&self) {
        self.connections().clear();
    }
}

/// The distinct ids and slugs of `keys`.
fn split_keys<'a>(keys: impl Iterator<Item = &'a ArticleKey>) -> (Vec<Uuid>, Vec<String>) {
    let (mut ids, mut slugs) = (Vec::new(), Vec::new());
    for key in keys {
        match key {
            ArticleKey::Id(id) if !ids.contains(id) => ids.push(*id),
            ArticleKey::Slug(slug) if !slugs.contains(slug) => slugs.push(slug.clone()),
            _ => {}
        }
    }
    (ids, slugs)
}

/// A batch's articles, by id and by slug.
struct Found {
    by_id: HashMap<Uuid, Article>,
    id_by_slug: HashMap<String, Uuid>,
}

impl Found {
    fn new(articles: Vec<Article>) -> Self {
        let id_by_slug = articles
            .iter()
            .map(|article| (article.slug.clone(), article.id))
            .collect();
        let by_id = articles
            .into_iter()
            .map(|article| (article.id, article))
            .collect();
        Self { by_id, id_by_slug }
    }

    fn get(&self, key: &ArticleKey) -> Option<Article> {
        let id = match key {
            ArticleKey::Id(id) => id,
            ArticleKey::Slug(slug) => self.id_by_slug.get(slug)?,
        };
        self.by_id.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keys_keeps_each_key_once_in_its_kind() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let keys = [
            ArticleKey::Id(a),
            ArticleKey::Slug("one".into()),
            ArticleKey::Id(b),
            ArticleKey::Id(a),
            ArticleKey::Slug("one".into()),
            ArticleKey::Slug("two".into()),
        ];
        let (ids, slugs) = split_keys(keys.iter());
        assert_eq!(ids, vec![a, b]);
        assert_eq!(slugs, vec!["one".to_owned(), "two".to_owned()]);
    }
}
