//! A stream's reads of the change log while it catches up: one batch at a
//! time, each read in a task of its own, so that the stream sends one
//! batch while the database reads the next (a consumer rebuilding its copy
//! from the beginning would otherwise wait for every read in turn).

use std::sync::Arc;

use prost::bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::task::AbortOnDropHandle;

use super::Feed;
use crate::domain::lifecycle::Change;
use crate::error::{Error, Result};
use crate::store::{BatchLimits, ChangeFilter};

/// Where a read starts, and what it wants.
pub(super) struct ReadFrom {
    /// Every change up to here was delivered or filtered out.
    pub position: i64,
    /// The change log's head as the last read saw it.
    pub known_head: Option<i64>,
    pub tag_slugs: Arc<[String]>,
    pub filter: ChangeFilter,
    pub with_bodies: bool,
    /// Changes to ask for (see [`next_row_limit`]).
    pub row_limit: u32,
}

/// One read of the change log: the matching changes after the stream's
/// position (or the head, if that was past it: see [`not_past`]), up to at
/// most `up_to`.
pub(super) struct Batch {
    pub head: i64,
    pub up_to: i64,
    pub changes: Vec<Change>,
    /// A limit cut the read short of `up_to`.
    pub more: bool,
    /// The byte limit cut it: the database read rows it then left.
    pub cut_by_bytes: bool,
}

impl Batch {
    /// Changes the next read asks for, at most `max`, after this read asked
    /// for `asked` (see [`next_row_limit`]).
    pub fn next_row_limit(&self, asked: u32, max: u32) -> u32 {
        next_row_limit(asked, self.changes.len(), self.cut_by_bytes, max)
    }

    /// The position the stream is at once it has sent `sent` of the changes
    /// (a prefix: the budget may let it send fewer than it read).
    pub fn position_after(&self, sent: usize) -> i64 {
        let more = self.more || sent < self.changes.len();
        match (
            more,
            sent.checked_sub(1).and_then(|last| self.changes.get(last)),
        ) {
            (true, Some(last)) => last.position,
            // Every matching change up to `up_to` is in this batch.
            _ => self.up_to,
        }
    }
}

/// Changes to ask for after a read that asked for `asked` and got `read`.
/// The byte limit cuts a read as its rows arrive, and the database has read
/// and sent the rows past the cut all the same: after a cut, ask for an
/// eighth more than what fitted (a single article over the limit: one);
/// otherwise grow back towards `max`.
fn next_row_limit(asked: u32, read: usize, cut_by_bytes: bool, max: u32) -> u32 {
    let max = max.max(1);
    if cut_by_bytes {
        let fitted = u32::try_from(read).unwrap_or(max);
        (fitted + fitted / 8).clamp(1, max)
    } else {
        asked.saturating_mul(2).clamp(1, max)
    }
}

/// A read in flight; dropping it (the stream ended) stops it.
pub(super) struct Pending {
    read: AbortOnDropHandle<Result<Batch>>,
    /// A read made ahead, while the stream sends the batch before, holds a
    /// batch's worth of `FEED_CATCH_UP_BYTES` until the stream takes it:
    /// every batch read and not yet sent is within the budget, however many
    /// streams stop reading.
    _reserved: Option<OwnedSemaphorePermit>,
}

impl Pending {
    pub async fn batch(self) -> Result<Batch> {
        self.read
            .await
            .map_err(|_| Error::Unavailable("a read of the change log was stopped".into()))?
    }
}

impl Feed {
    /// Starts reading the next batch after `from`, for a stream that waits
    /// for it.
    pub(super) fn read_changes(&self, from: ReadFrom) -> Pending {
        self.spawn_read(from, None)
    }

    /// Starts reading the next batch after `from` while the stream sends
    /// the one before, if a batch's worth of the catch-up budget is left
    /// (else the stream reads when it gets there).
    pub(super) fn read_changes_ahead(&self, from: ReadFrom) -> Option<Pending> {
        let reserved = self.reserve_catch_up_bytes(self.settings.batch_bytes)?;
        Some(self.spawn_read(from, Some(reserved)))
    }

    fn spawn_read(&self, from: ReadFrom, reserved: Option<OwnedSemaphorePermit>) -> Pending {
        let feed = self.clone();
        Pending {
            read: AbortOnDropHandle::new(tokio::spawn(async move { feed.read_batch(from).await })),
            _reserved: reserved,
        }
    }

    async fn read_batch(&self, from: ReadFrom) -> Result<Batch> {
        // Waits its turn (see `FeedSettings::max_catch_ups`); the semaphore
        // is never closed, so the error cannot happen.
        let _turn = self
            .catch_ups
            .acquire()
            .await
            .map_err(|_| Error::Internal("the catch-up semaphore was closed".into()))?;
        // The head is read before the batches that stop at it, and again
        // only once they reached it: a long catch-up costs one statement a
        // batch, not two. Whatever is written meanwhile comes after the
        // head, from the broadcast or the next catch-up.
        let head = match from.known_head {
            Some(head) if head > from.position => head,
            _ => self.store.change_head().await?,
        };
        let start = not_past(from.position, head);
        if head == start {
            return Ok(Batch {
                head,
                up_to: head,
                changes: Vec::new(),
                more: false,
                cut_by_bytes: false,
            });
        }
        let up_to = head.min(start.saturating_add(self.settings.scan_window.max(1)));
        let batch = self
            .store
            .changes_after(
                start,
                up_to,
                &from.tag_slugs,
                from.filter,
                from.with_bodies,
                BatchLimits {
                    changes: from.row_limit.max(1),
                    bytes: self.settings.batch_bytes,
                },
            )
            .await?;
        Ok(Batch {
            head,
            up_to,
            changes: batch.changes,
            more: batch.more,
            cut_by_bytes: batch.cut_by_bytes,
        })
    }

    /// Holds the catch-up budget's share for `messages`, if that much of it
    /// is left.
    pub(super) fn hold_catch_up_bytes(&self, messages: &[Bytes]) -> Option<OwnedSemaphorePermit> {
        self.reserve_catch_up_bytes(messages.iter().map(Bytes::len).sum())
    }

    /// `bytes` of `FEED_CATCH_UP_BYTES` (kept in KiB), if that much is left.
    fn reserve_catch_up_bytes(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        self.catch_up_bytes.clone().try_acquire_many_owned(kib).ok()
    }
}

/// A position no further than the head. Positions never go back, and every
/// token names a position that was written; so a position past the head
/// means the database lost changes (a restore from a backup), and whatever
/// is written above the head from now on is new to this consumer.
pub(super) fn not_past(position: i64, head: i64) -> i64 {
    if position > head {
        tracing::info!(
            position,
            head,
            "resume position is past the feed head; starting at the head"
        );
        return head;
    }
    position
}

#[cfg(test)]
mod tests {
    use super::next_row_limit;

    #[test]
    fn after_a_cut_by_bytes_a_read_asks_for_a_little_more_than_fitted() {
        // 4 KB articles and a 1 MiB batch: about 256 fit of 500 asked.
        assert_eq!(next_row_limit(500, 256, true, 500), 288);
        assert_eq!(next_row_limit(288, 250, true, 500), 281);
        // Articles over the limit: one a read, nothing read for nothing.
        assert_eq!(next_row_limit(500, 1, true, 500), 1);
    }

    #[test]
    fn without_a_cut_the_row_limit_grows_back_to_the_maximum() {
        assert_eq!(next_row_limit(1, 1, false, 500), 2);
        assert_eq!(next_row_limit(296, 40, false, 500), 500);
        assert_eq!(next_row_limit(500, 500, false, 500), 500);
        assert_eq!(next_row_limit(0, 0, false, 0), 1);
    }
}
