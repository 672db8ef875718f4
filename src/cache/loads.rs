//! Reads that miss the cache together share one load.
//!
//! Without it, calls that miss one article at the same moment each read it
//! from the database and each encode their own copy: 300 clients asking for
//! a 1 MiB article just published hold 300 copies at once, which no byte
//! budget counts. With it, the first miss loads and every miss that arrives
//! while it runs waits for its answer and shares its bytes.
//!
//! A miss joins a load only if both saw the same cache epoch: a call that
//! arrives after a change (a withdrawal this replica handled, or a
//! notification from another) starts a load of its own, so no call is
//! answered with what was read before a change it must see.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared, WeakShared};

use super::Epoch;

type Running<V> = Shared<BoxFuture<'static, V>>;
type Loads<K, V> = Mutex<HashMap<(K, u64), WeakShared<BoxFuture<'static, V>>>>;

/// Loads in flight by key and epoch; clones share them.
pub struct SharedLoads<K, V> {
    running: Arc<Loads<K, V>>,
}

impl<K, V> Clone for SharedLoads<K, V> {
    fn clone(&self) -> Self {
        Self {
            running: self.running.clone(),
        }
    }
}

impl<K, V> Default for SharedLoads<K, V> {
    fn default() -> Self {
        Self {
            running: Arc::default(),
        }
    }
}

impl<K, V> SharedLoads<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// `load`'s answer, or that of the load of `key` already running since
    /// the same epoch (`seen`, taken before anything was read). The load
    /// runs while any of its callers waits for it, and stops when the last
    /// one gives up.
    pub fn load<F>(&self, key: K, seen: Epoch, load: F) -> Running<V>
    where
        F: Future<Output = V> + Send + 'static,
    {
        let slot = (key, seen.0);
        let mut running = lock(&self.running);
        if let Some(joined) = running.get(&slot).and_then(WeakShared::upgrade) {
            return joined;
        }
        // Done or abandoned, the load takes its entry out: the next miss
        // starts afresh and the map holds only loads that run.
        let ended = Ended {
            running: Arc::downgrade(&self.running),
            slot: Some(slot.clone()),
        };
        let started = async move {
            let _ended = ended;
            load.await
        }
        .boxed()
        .shared();
        if let Some(weak) = started.downgrade() {
            running.insert(slot, weak);
        }
        started
    }

    /// Loads running now (for tests).
    #[cfg(test)]
    fn running(&self) -> usize {
        lock(&self.running).len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding it; were it poisoned, the map is still
    // whole (each step leaves it consistent).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes a load's entry out of the map when the load is dropped: finished,
/// or abandoned by every caller. Should a new load of the same key and
/// epoch have taken the entry in the moment between (the old one's last
/// handle going while a miss looked it up), this removes the new one's:
/// later misses then load on their own, which costs sharing, not answers.
struct Ended<K: Eq + Hash, V> {
    running: Weak<Loads<K, V>>,
    slot: Option<(K, u64)>,
}

impl<K: Eq + Hash, V> Drop for Ended<K, V> {
    fn drop(&mut self) {
        if let (Some(running), Some(slot)) = (self.running.upgrade(), self.slot.take()) {
            lock(&running).remove(&slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A load that counts its runs and answers once `release` is notified.
    fn counted(
        runs: &Arc<AtomicUsize>,
        release: &Arc<tokio::sync::Notify>,
        answer: u32,
    ) -> impl Future<Output = u32> + Send + 'static {
        let (runs, release) = (runs.clone(), release.clone());
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            release.notified().await;
            answer
        }
    }

    #[tokio::test]
    async fn concurrent_misses_of_one_key_share_one_load() {
        let loads = SharedLoads::<&str, u32>::default();
        let (runs, release) = (Arc::default(), Arc::new(tokio::sync::Notify::new()));
        let waiting: Vec<_> = (0..10)
            .map(|answer| tokio::spawn(loads.load("a", Epoch(7), counted(&runs, &release, answer))))
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(loads.running(), 1);
        release.notify_waiters();
        let mut answers = Vec::new();
        for waited in waiting {
            answers.extend(waited.await.ok());
        }
        assert_eq!(answers.len(), 10);
        assert!(
            answers.iter().all(|answer| *answer == answers[0]),
            "every caller gets the one load's answer: {answers:?}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(loads.running(), 0, "a finished load leaves the map");
    }

    #[tokio::test]
    async fn a_miss_after_a_change_or_of_another_key_loads_on_its_own() {
        let loads = SharedLoads::<&str, u32>::default();
        let (runs, release) = (Arc::default(), Arc::new(tokio::sync::Notify::new()));
        let first = tokio::spawn(loads.load("a", Epoch(1), counted(&runs, &release, 1)));
        let after_change = tokio::spawn(loads.load("a", Epoch(2), counted(&runs, &release, 2)));
        let other_key = tokio::spawn(loads.load("b", Epoch(1), counted(&runs, &release, 3)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(loads.running(), 3);
        release.notify_waiters();
        assert_eq!(first.await.ok(), Some(1));
        assert_eq!(after_change.await.ok(), Some(2));
        assert_eq!(other_key.await.ok(), Some(3));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_load_every_caller_abandoned_stops_and_the_next_miss_starts_afresh() {
        let loads = SharedLoads::<&str, u32>::default();
        let (runs, release) = (Arc::default(), Arc::new(tokio::sync::Notify::new()));
        let abandoned = tokio::spawn(loads.load("a", Epoch(1), counted(&runs, &release, 1)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        abandoned.abort();
        let _ = abandoned.await;
        assert_eq!(loads.running(), 0);
        let next = tokio::spawn(loads.load("a", Epoch(1), counted(&runs, &release, 2)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.notify_waiters();
        assert_eq!(next.await.ok(), Some(2));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
