//! The live feed behind StreamNewArticles and StreamArticleChanges: both
//! follow the one change log, each taking what it sends.
//!
//! One listener per process (`listener`) holds the only LISTEN connection.
//! On every NOTIFY (a wake-up, never the data), after every reconnect, and on
//! a slow safety tick, it reads the changes written after the last one it
//! saw, in order, encodes each once, and broadcasts it to every subscription
//! in memory. Each item carries the position before it,
//! so a subscription notices any gap in what it received (it joined late, or
//! lagged behind its bounded buffer) and fills it from the database from its
//! own position (`subscription`). The table is the truth; notifications
//! only make delivery fast.

mod catch_up;
mod head;
mod listener;
mod messages;
mod release;
mod retained;
mod shared_frames;
mod subscription;

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;

use crate::cache::ReadCache;
use crate::store::{Store, TokenKeys};

pub(crate) use retained::Retained;
use shared_frames::SharedFrames;

pub use listener::run_listener;
pub use messages::{BroadcastTokens, StreamKind, StreamMessage};
pub use release::run_releases;
pub use subscription::{ConnectionAge, Start, Subscription};

/// What the listener broadcasts to every subscription.
#[derive(Debug)]
pub struct FeedItem {
    /// The change position the listener broadcast just before this item: a
    /// subscription that has not reached it missed something and reads it
    /// from the database.
    pub previous_position: i64,
    pub position: i64,
    /// The tag slugs a stream's filter matches.
    pub tag_slugs: Vec<String>,
    pub event: FeedEvent,
}

#[derive(Debug)]
pub enum FeedEvent {
    /// The change at `position`, encoded once for all subscribers. Held
    /// weakly: the listener keeps the newest changes' payloads within a
    /// byte budget (`retained`), so a stream that stopped reading pins no
    /// more than that. A stream that finds its payload gone catches up from
    /// the database.
    Change(Weak<ChangePayload>),
    /// The listener follows the feed from `position` on (it has just learned
    /// the head; `previous_position == position`). A subscription behind it
    /// catches up from the database, since no article item will cover the
    /// range before it.
    Following,
    /// The feed head went back to `position`: the database lost articles (a
    /// restore from a backup). Subscriptions past it move back to it, since
    /// whatever is stored above it from now on is new.
    Rewound,
}

/// A broadcast change, framed once for each stream and view
/// (`messages`), shared by every stream that sends it.
#[derive(Debug)]
pub struct ChangePayload {
    frames: [Option<prost::bytes::Bytes>; 4],
}

/// Tunables of the feed.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    pub heartbeat_interval: Duration,
    pub max_streams: usize,
    /// Items a subscription may fall behind before it catches up from the
    /// database instead.
    pub buffer: usize,
    /// Changes per catch-up query.
    pub batch_size: u32,
    /// Encoded bytes the broadcast keeps (`retained`).
    pub buffer_bytes: usize,
    /// Article body bytes per catch-up query (at least one article).
    pub batch_bytes: usize,
    /// Bytes of catch-up batches all streams together hold while they send
    /// them; past it, a stream catches up a change at a time.
    pub catch_up_bytes: usize,
    /// Change positions one catch-up query scans at most, so that a stream
    /// filtering on a rare tag never asks for a scan of the whole table
    /// (which could outlast the operation timeout).
    pub scan_window: i64,
    /// Streams that read from the database at once; the others wait their
    /// turn instead of all failing on the pool's acquire timeout when many
    /// fall behind together (a large import).
    pub max_catch_ups: usize,
    /// How often the listener re-reads the table even without a
    /// notification (a safety net; NOTIFY normally wakes it at once).
    pub safety_poll: Duration,
    /// How long the release job waits at most between two looks for due
    /// embargoes (it sleeps less when one is due sooner).
    pub release_poll: Duration,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(15),
            max_streams: 10_000,
            buffer: 4096,
            batch_size: 500,
            buffer_bytes: 32 * 1024 * 1024,
            batch_bytes: 1024 * 1024,
            catch_up_bytes: 64 * 1024 * 1024,
            scan_window: 50_000,
            max_catch_ups: 8,
            safety_poll: Duration::from_secs(5),
            release_poll: Duration::from_secs(1),
        }
    }
}

/// Shared by the listener and every subscription.
#[derive(Clone)]
pub struct Feed {
    store: Store,
    tokens: TokenKeys,
    settings: FeedSettings,
    sender: broadcast::Sender<Arc<FeedItem>>,
    streams: Arc<Semaphore>,
    catch_ups: Arc<Semaphore>,
    /// `FeedSettings::catch_up_bytes`, in KiB.
    catch_up_bytes: Arc<Semaphore>,
    /// Large catch-up messages, framed once for every stream reading them
    /// (as many bytes as the broadcast keeps).
    shared_frames: Arc<SharedFrames>,
    /// Told by the listener what changed (`cache`).
    cache: ReadCache,
    head_reads: Arc<head::SharedHeadRead>,
    shutdown: CancellationToken,
}

impl Feed {
    pub fn new(
        store: Store,
        tokens: TokenKeys,
        settings: FeedSettings,
        cache: ReadCache,
        shutdown: CancellationToken,
    ) -> Self {
        let (sender, _) = broadcast::channel(settings.buffer.max(1));
        Self {
            store,
            tokens,
            streams: Arc::new(Semaphore::new(settings.max_streams)),
            catch_ups: Arc::new(Semaphore::new(settings.max_catch_ups.max(1))),
            shared_frames: Arc::new(SharedFrames::new(
                u64::try_from(settings.buffer_bytes).unwrap_or(u64::MAX),
            )),
            catch_up_bytes: Arc::new(Semaphore::new(
                (settings.catch_up_bytes / 1024).min(Semaphore::MAX_PERMITS),
            )),
            settings,
            sender,
            cache,
            head_reads: Arc::default(),
            shutdown,
        }
    }

    /// Streams open right now.
    pub fn open_streams(&self) -> usize {
        self.settings.max_streams - self.streams.available_permits()
    }
}
