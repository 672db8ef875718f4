//! What the live broadcast keeps, in bytes.
//!
//! The broadcast's ring counts items, and an item stays in it until every
//! subscription has read it or the ring wraps: one stream that stops
//! reading would pin the last thousands of changes, at a megabyte each for
//! large articles. So the ring carries weak handles, and the listener holds
//! the payloads of the newest changes here, within `FEED_BUFFER_BYTES`. A
//! stream that reaches an item whose payload is gone is that far behind: it
//! catches up from the database, like a stream the ring itself left behind.
//!
//! The same path keeps a takedown from being served again by a stream that
//! lags within the ring: when an article is withdrawn, the listener lets go
//! of its earlier payloads (`forget_article`), so a stream that reaches one
//! after the withdrawal reads from the database, which leaves them out.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use uuid::Uuid;

use super::ChangePayload;
use crate::metrics::FEED_BUFFER_BYTES;

pub(crate) struct Retained {
    /// The newest payloads, oldest first, with the article each is of.
    payloads: VecDeque<(Uuid, Arc<ChangePayload>)>,
    bytes: usize,
    budget: usize,
}

impl Retained {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            payloads: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// Keeps `payload`, letting go of the oldest ones beyond the budget
    /// (never the newest, however large), and returns the handle the
    /// broadcast carries.
    pub(crate) fn keep(&mut self, article_id: Uuid, payload: ChangePayload) -> Weak<ChangePayload> {
        let payload = Arc::new(payload);
        let handle = Arc::downgrade(&payload);
        self.bytes += payload.size();
        self.payloads.push_back((article_id, payload));
        while self.bytes > self.budget && self.payloads.len() > 1 {
            if let Some((_, oldest)) = self.payloads.pop_front() {
                self.bytes -= oldest.size();
            }
        }
        metrics::gauge!(FEED_BUFFER_BYTES).set(self.bytes as f64);
        handle
    }

    /// Lets go of every payload of this article (it was withdrawn): no
    /// stream may send them from memory any more. A stream already sending
    /// one holds it until it is sent.
    pub(crate) fn forget_article(&mut self, article_id: Uuid) {
        let mut freed = 0;
        self.payloads.retain(|(id, payload)| {
            let keep = *id != article_id;
            if !keep {
                freed += payload.size();
            }
            keep
        });
        if freed > 0 {
            self.bytes -= freed;
            metrics::gauge!(FEED_BUFFER_BYTES).set(self.bytes as f64);
        }
    }

    /// Bytes held.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(bytes: usize) -> ChangePayload {
        ChangePayload::of_size_for_tests(bytes)
    }

    #[test]
    fn keeps_the_newest_payloads_within_the_budget() {
        let mut retained = Retained::new(250);
        let first = retained.keep(Uuid::nil(), payload(100));
        let second = retained.keep(Uuid::nil(), payload(100));
        assert_eq!(retained.bytes(), 200);
        assert!(first.upgrade().is_some());
        let third = retained.keep(Uuid::nil(), payload(100));
        // 300 > 250: the oldest goes.
        assert_eq!(retained.bytes(), 200);
        assert!(first.upgrade().is_none());
        assert!(second.upgrade().is_some());
        assert!(third.upgrade().is_some());
    }

    #[test]
    fn keeps_the_newest_even_when_it_alone_is_over_the_budget() {
        let mut retained = Retained::new(10);
        let old = retained.keep(Uuid::nil(), payload(5));
        let large = retained.keep(Uuid::nil(), payload(1_000));
        assert!(old.upgrade().is_none());
        assert!(large.upgrade().is_some());
        assert_eq!(retained.bytes(), 1_000);
    }

    #[test]
    fn a_withdrawn_articles_payloads_are_let_go() {
        let (withdrawn, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut retained = Retained::new(1_000);
        let published = retained.keep(withdrawn, payload(100));
        let kept = retained.keep(other, payload(100));
        let updated = retained.keep(withdrawn, payload(100));
        retained.forget_article(withdrawn);
        assert!(published.upgrade().is_none());
        assert!(updated.upgrade().is_none());
        assert!(kept.upgrade().is_some());
        assert_eq!(retained.bytes(), 100);
    }

    #[test]
    fn a_payload_a_stream_holds_outlives_its_eviction() {
        let mut retained = Retained::new(100);
        let handle = retained.keep(Uuid::nil(), payload(100));
        let held = handle.upgrade();
        retained.keep(Uuid::nil(), payload(100));
        assert!(held.is_some());
        assert!(handle.upgrade().is_some());
        drop(held);
        assert!(handle.upgrade().is_none());
    }
}
