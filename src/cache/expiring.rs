//! A bounded map whose entries are served for a limited time: quick_cache
//! (S3-FIFO eviction, sharded read locks) with each entry's expiry kept
//! beside it.
//!
//! Every GetArticle hit reads this map twice (slug to id, id to frame), so
//! a read must cost little: here it is a shard's read lock and a probe.
//! moka (kept for the feed's shared frames, which are read far less often)
//! records each read for its eviction policy and makes readers replay the
//! records under a lock: on this path that cost more than the lookups
//! (BENCHMARKS.md, "One cache read a lookup").

use std::hash::Hash;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;
use quick_cache::{Equivalent, OptionsBuilder, Weighter};

/// An entry and the moment it stops being served.
#[derive(Debug, Clone)]
struct Timed<V> {
    value: V,
    expires: Instant,
}

/// What an entry weighs: its bytes, or 1 for an entry counted by number.
pub(super) trait Weight {
    fn weight(&self) -> u64;
}

/// Weighs entries by [`Weight`]; never 0, since quick_cache never evicts
/// an entry that weighs nothing.
#[derive(Debug, Clone, Copy)]
struct ByWeight;

impl<K, V: Weight> Weighter<K, Timed<V>> for ByWeight {
    fn weight(&self, _: &K, entry: &Timed<V>) -> u64 {
        entry.value.weight().max(1)
    }
}

/// An entry heavier than its shard's share of the bound is not kept: each
/// shard has room for the largest entries, a first page of
/// `MAX_PAGE_BYTES` (4 MiB by default) or several 1 MiB articles.
const MIN_SHARD_WEIGHT: u64 = 8 * 1024 * 1024;

/// Shards spread the locks; more than this buys nothing on a pod's cores.
const MAX_SHARDS: u64 = 16;

pub(super) struct Expiring<K, V> {
    entries: Cache<K, Timed<V>, ByWeight>,
    time_to_live: Duration,
}

impl<K: Eq + Hash + Clone, V: Clone + Weight> Expiring<K, V> {
    /// At most `max_weight` in all, `estimated_items` of them or so.
    pub(super) fn new(max_weight: u64, estimated_items: u64, time_to_live: Duration) -> Self {
        let shards = (max_weight / MIN_SHARD_WEIGHT).clamp(1, MAX_SHARDS);
        // A power of two, rounded down so that no shard gets less.
        let shards = 1_u64 << shards.ilog2();
        let options = OptionsBuilder::new()
            .shards(usize::try_from(shards).unwrap_or(1))
            .weight_capacity(max_weight)
            .estimated_items_capacity(usize::try_from(estimated_items).unwrap_or(usize::MAX))
            .build();
        let entries = match options {
            Ok(options) => {
                Cache::with_options(options, ByWeight, Default::default(), Default::default())
            }
            // Every field is set above: `build` cannot refuse them.
            Err(_) => Cache::with_weighter(1, max_weight, ByWeight),
        };
        Self {
            entries,
            time_to_live,
        }
    }

    pub(super) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let entry = self.entries.get(key)?;
        let now = Instant::now();
        if entry.expires > now {
            return Some(entry.value);
        }
        // Expired: gone, unless a fresher fill replaced it meanwhile.
        self.entries.remove_if(key, |entry| entry.expires <= now);
        None
    }

    pub(super) fn insert(&self, key: K, value: V) {
        let expires = Instant::now() + self.time_to_live;
        self.entries.insert(key, Timed { value, expires });
    }

    pub(super) fn remove<Q>(&self, key: &Q)
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.entries.remove(key);
    }

    pub(super) fn clear(&self) {
        self.entries.clear();
    }

    /// The weight of what is kept now.
    pub(super) fn weight(&self) -> u64 {
        self.entries.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Heavy(u64);

    impl Weight for Heavy {
        fn weight(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn an_entry_is_served_until_it_expires() {
        let map = Expiring::new(1 << 20, 16, Duration::from_millis(50));
        map.insert("a".to_owned(), Heavy(10));
        assert_eq!(map.get("a"), Some(Heavy(10)));
        assert_eq!(map.weight(), 10);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(map.get("a"), None);
        assert_eq!(map.weight(), 0, "an expired entry read is removed");
    }

    #[test]
    fn the_bound_holds_and_the_largest_entries_fit_in_a_shard() {
        let map = Expiring::new(48 << 20, 1024, Duration::from_secs(60));
        for key in 0..200_u32 {
            map.insert(key, Heavy(1 << 20));
        }
        assert!(map.weight() <= 48 << 20, "weight {}", map.weight());
        map.insert(1_000, Heavy(4 << 20));
        assert_eq!(map.get(&1_000), Some(Heavy(4 << 20)));
    }

    #[test]
    fn removed_and_cleared_entries_are_gone() {
        let map = Expiring::new(1 << 20, 16, Duration::from_secs(60));
        map.insert(1_u32, Heavy(0));
        map.insert(2, Heavy(5));
        map.remove(&1);
        assert_eq!(map.get(&1), None);
        assert_eq!(map.get(&2), Some(Heavy(5)));
        map.clear();
        assert_eq!((map.get(&2), map.weight()), (None, 0));
    }
}
