//! The feed head as new streams read it: one database read serves every
//! stream that asked before it started.
//!
//! A stream without a resume token starts at the head, read after it joined
//! the broadcast. When thousands of consumers connect at once (a deploy, a
//! network blip), one read each would queue thousands of queries on the
//! pool, each holding a large in-flight query future (measured: 40 KB a
//! stream, most of the server's memory after such a storm). Reads here go
//! one at a time, and a read that started after a stream asked is as good
//! for it as its own.

use std::time::Instant;

use tokio::sync::Mutex;

use crate::error::Result;
use crate::store::Store;

#[derive(Default)]
pub(super) struct SharedHeadRead {
    last: Mutex<Option<HeadRead>>,
}

#[derive(Clone, Copy)]
struct HeadRead {
    started: Instant,
    head: i64,
}

impl SharedHeadRead {
    /// The head as read by a query that started at `asked` or later.
    pub(super) async fn read_since(&self, store: &Store, asked: Instant) -> Result<i64> {
        // Waiters queue in order; the first reads, the others mostly reuse.
        let mut last = self.last.lock().await;
        if let Some(read) = *last
            && read.started >= asked
        {
            return Ok(read.head);
        }
        let started = Instant::now();
        let head = store.change_head().await?;
        *last = Some(HeadRead { started, head });
        Ok(head)
    }
}
