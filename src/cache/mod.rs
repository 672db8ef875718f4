//! The read cache: articles and first pages of tags, kept encoded, in memory.
//!
//! Reads dominate, and most go to a few articles and the first page of a few
//! tags. Each is kept as protobuf bytes (`wire`), so a hit costs no
//! database round trip, no conversion and no encoding.
//!
//! What a publish changes is dropped, never updated in place:
//! - on the replica that handled it, before the call returns (`ArticleApi`),
//!   so that replica's next read sees it;
//! - on every replica, through the notification path of the feed
//!   (`feed::listener`): each new article (read from the table, so none is
//!   missed) drops the first pages of its tags; each update's `NOTIFY
//!   article_changes` drops the article and every first page (updates may
//!   remove a tag, and are rare).
//!
//! The bound on how stale a read can be, on any replica: the time for the
//! listener to hear of the change (milliseconds) while it listens. The cache
//! is only used while the listener is connected (`set_listening`): when the
//! connection is lost it stops answering from memory at once, and starts
//! empty on reconnecting, since notifications sent meanwhile are lost.
//! A lost connection that stays silent is noticed by the listener's ping
//! (every 5 s, 3 s to answer). Besides, no entry lives longer than its
//! time to live. The tests in `tests/e2e/cache.rs` hold the service to this.
//!
//! A read that races with a change must not put back what the change just
//! dropped: every drop moves an epoch, and a read fills the cache only if
//! the epoch it saw before asking the database has not moved since (checked
//! after the insert, so that a drop in between removes it again). Reads
//! that miss together share one load (`loads`), keyed by the same epoch.

mod expiring;
mod loads;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prost::bytes::Bytes;
use uuid::Uuid;

use self::expiring::{Expiring, Weight};
pub use self::loads::SharedLoads;
use crate::domain::paging::MAX_PAGE_SIZE;
use crate::metrics::{CACHE_LOOKUPS, CACHE_SIZE_BYTES};

/// A first page of a tag: the encoded articles, and the tokens of its paging
/// session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPage {
    pub articles: Vec<Bytes>,
    pub next_page_token: String,
    pub changes_token: String,
}

/// Which first page: the tag's slug and the page size (1 to `MAX_PAGE_SIZE`).
type PageKey = (String, u32);

/// Tunables of the cache.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Bytes of encoded articles, at most (0 turns the cache off).
    pub article_bytes: u64,
    /// Bytes of encoded first pages, at most.
    pub page_bytes: u64,
    /// How long an entry may be served, at most.
    pub time_to_live: Duration,
}

/// The process's read cache; cheap to clone.
#[derive(Clone)]
pub struct ReadCache {
    /// Moves on every drop (see the module's documentation); kept with the
    /// cache off too, for the loads that key on it.
    epoch: Arc<AtomicU64>,
    inner: Option<Arc<Inner>>,
}

struct Inner {
    /// Articles by id, each framed as a whole GetArticle response
    /// (`wire::frame_article_response`): a hit is sent as it is.
    articles: Expiring<Uuid, Bytes>,
    /// Article ids by slug: a slug never changes its article, so this
    /// needs no invalidation.
    slugs: Expiring<String, Uuid>,
    pages: Expiring<PageKey, Arc<CachedPage>>,
    /// The listener is connected: notifications reach us.
    listening: AtomicBool,
}

/// What a read saw before it asked the database; it fills the cache with it.
#[derive(Debug, Clone, Copy)]
pub struct Epoch(u64);

impl ReadCache {
    pub fn new(settings: CacheSettings) -> Self {
        if settings.article_bytes == 0 {
            return Self::disabled();
        }
        let ttl = settings.time_to_live;
        // Ids are small: a count bound (about 80 bytes each) suffices.
        let slugs = (settings.article_bytes / 1024).max(1024);
        let inner = Inner {
            articles: Expiring::new(settings.article_bytes, settings.article_bytes / 4096, ttl),
            slugs: Expiring::new(slugs, slugs, ttl),
            pages: Expiring::new(settings.page_bytes, settings.page_bytes / 65536, ttl),
            listening: AtomicBool::new(false),
        };
        Self {
            epoch: Arc::default(),
            inner: Some(Arc::new(inner)),
        }
    }

    /// A cache that keeps nothing.
    pub fn disabled() -> Self {
        Self {
            epoch: Arc::default(),
            inner: None,
        }
    }

    /// The cache while it may answer: it is on and hears of changes.
    fn live(&self) -> Option<&Inner> {
        self.inner
            .as_deref()
            .filter(|inner| inner.listening.load(Ordering::SeqCst))
    }

    pub fn article(&self, id: Uuid) -> Option<Bytes> {
        let found = self.live()?.articles.get(&id);
        count_lookup("article", found.is_some());
        found
    }

    pub fn article_id(&self, slug: &str) -> Option<Uuid> {
        self.live()?.slugs.get(slug)
    }

    pub fn first_page(&self, tag_slug: &str, page_size: u32) -> Option<Arc<CachedPage>> {
        let found = self.live()?.pages.get(&PageKeyRef(tag_slug, page_size));
        count_lookup("first_page", found.is_some());
        found
    }

    /// Taken before reading from the database what a fill will keep.
    pub fn epoch(&self) -> Epoch {
        Epoch(self.epoch.load(Ordering::SeqCst))
    }

    pub fn fill_article(&self, seen: Epoch, id: Uuid, slug: &str, encoded: Bytes) {
        let Some(inner) = self.live() else { return };
        inner.slugs.insert(slug.to_owned(), id);
        inner.articles.insert(id, encoded);
        if self.moved_since(seen) {
            inner.articles.remove(&id);
        }
    }

    pub fn fill_first_page(&self, seen: Epoch, tag_slug: &str, page_size: u32, page: CachedPage) {
        let Some(inner) = self.live() else { return };
        inner
            .pages
            .insert((tag_slug.to_owned(), page_size), Arc::new(page));
        if self.moved_since(seen) {
            inner.pages.remove(&PageKeyRef(tag_slug, page_size));
        }
    }

    /// New articles with these tags were stored: their first pages change.
    pub fn new_article_tagged(&self, tag_slugs: &[String]) {
        self.advance();
        let Some(inner) = &self.inner else { return };
        // Every page size a key can have: exact and immediate.
        for tag_slug in tag_slugs {
            for page_size in 1..=MAX_PAGE_SIZE {
                inner.pages.remove(&PageKeyRef(tag_slug, page_size));
            }
        }
    }

    /// These articles were updated: they, and any first page, may have
    /// changed (an update may also remove a tag).
    pub fn articles_changed(&self, ids: &[Uuid]) {
        self.advance();
        let Some(inner) = &self.inner else { return };
        for id in ids {
            inner.articles.remove(id);
        }
        inner.pages.clear();
    }

    /// Anything may have changed.
    pub fn clear(&self) {
        self.advance();
        let Some(inner) = &self.inner else { return };
        inner.articles.clear();
        inner.pages.clear();
    }

    /// The listener hears of changes again (after `clear`), or no longer
    /// does: then nothing is served from memory until it does.
    pub fn set_listening(&self, listening: bool) {
        let Some(inner) = &self.inner else { return };
        if listening {
            self.clear();
        }
        inner.listening.store(listening, Ordering::SeqCst);
        if !listening {
            self.clear();
        }
    }

    /// Updates the size gauges (called by the sampler).
    pub fn report_size(&self) {
        let Some(inner) = &self.inner else { return };
        metrics::gauge!(CACHE_SIZE_BYTES, "kind" => "article").set(inner.articles.weight() as f64);
        metrics::gauge!(CACHE_SIZE_BYTES, "kind" => "first_page").set(inner.pages.weight() as f64);
    }
}

impl ReadCache {
    fn advance(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn moved_since(&self, seen: Epoch) -> bool {
        self.epoch.load(Ordering::SeqCst) != seen.0
    }
}

/// A page key to look up without building its `String`.
#[derive(Hash)]
struct PageKeyRef<'a>(&'a str, u32);

impl quick_cache::Equivalent<PageKey> for PageKeyRef<'_> {
    fn equivalent(&self, (tag_slug, page_size): &PageKey) -> bool {
        self.0 == tag_slug && self.1 == *page_size
    }
}

impl Weight for Bytes {
    fn weight(&self) -> u64 {
        self.len() as u64
    }
}

impl Weight for Uuid {
    fn weight(&self) -> u64 {
        1
    }
}

impl Weight for Arc<CachedPage> {
    fn weight(&self) -> u64 {
        let tokens = self.next_page_token.len() + self.changes_token.len();
        (self.articles.iter().map(Bytes::len).sum::<usize>() + tokens) as u64
    }
}

fn count_lookup(kind: &'static str, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!(CACHE_LOOKUPS, "kind" => kind, "result" => result).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> ReadCache {
        let cache = ReadCache::new(CacheSettings {
            article_bytes: 1 << 20,
            page_bytes: 1 << 20,
            time_to_live: Duration::from_secs(60),
        });
        cache.set_listening(true);
        cache
    }

    fn page(token: &str) -> CachedPage {
        CachedPage {
            articles: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
            next_page_token: token.to_owned(),
            changes_token: String::new(),
        }
    }

    #[test]
    fn a_fill_is_served() {
        let cache = cache();
        let id = Uuid::now_v7();
        cache.fill_article(cache.epoch(), id, "a-slug", Bytes::from_static(b"article"));
        assert_eq!(cache.article(id), Some(Bytes::from_static(b"article")));
        assert_eq!(cache.article_id("a-slug"), Some(id));
        cache.fill_first_page(cache.epoch(), "economy", 20, page("t"));
        assert_eq!(cache.first_page("economy", 20).as_deref(), Some(&page("t")));
        assert_eq!(cache.first_page("economy", 10), None);
    }

    #[test]
    fn a_read_that_raced_with_a_change_fills_nothing() {
        let cache = cache();
        let id = Uuid::now_v7();
        let seen = cache.epoch();
        cache.articles_changed(&[id]);
        cache.fill_article(seen, id, "a-slug", Bytes::from_static(b"old"));
        assert_eq!(cache.article(id), None);
        let seen = cache.epoch();
        cache.new_article_tagged(&["economy".to_owned()]);
        cache.fill_first_page(seen, "economy", 20, page("old"));
        assert_eq!(cache.first_page("economy", 20), None);
    }

    #[test]
    fn a_new_article_drops_the_first_pages_of_its_tags_only() {
        let cache = cache();
        for tag in ["economy", "sport"] {
            cache.fill_first_page(cache.epoch(), tag, 20, page(tag));
        }
        cache.new_article_tagged(&["economy".to_owned()]);
        assert_eq!(cache.first_page("economy", 20), None);
        assert_eq!(
            cache.first_page("sport", 20).as_deref(),
            Some(&page("sport"))
        );
    }

    #[test]
    fn an_update_drops_the_article_and_every_first_page() {
        let cache = cache();
        let (changed, other) = (Uuid::now_v7(), Uuid::now_v7());
        cache.fill_article(cache.epoch(), changed, "changed", Bytes::from_static(b"c"));
        cache.fill_article(cache.epoch(), other, "other", Bytes::from_static(b"o"));
        cache.fill_first_page(cache.epoch(), "sport", 20, page("sport"));
        cache.articles_changed(&[changed]);
        assert_eq!(cache.article(changed), None);
        assert_eq!(cache.article(other), Some(Bytes::from_static(b"o")));
        assert_eq!(cache.first_page("sport", 20), None);
        // The slug still names the same article.
        assert_eq!(cache.article_id("changed"), Some(changed));
    }

    #[test]
    fn nothing_is_served_or_kept_while_not_listening() {
        let cache = cache();
        let id = Uuid::now_v7();
        cache.fill_article(cache.epoch(), id, "a-slug", Bytes::from_static(b"a"));
        cache.set_listening(false);
        assert_eq!(cache.article(id), None);
        cache.fill_article(cache.epoch(), id, "a-slug", Bytes::from_static(b"a"));
        cache.set_listening(true);
        assert_eq!(cache.article(id), None, "starts empty when listening again");
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let cache = ReadCache::new(CacheSettings {
            article_bytes: 0,
            page_bytes: 0,
            time_to_live: Duration::from_secs(60),
        });
        cache.set_listening(true);
        let id = Uuid::now_v7();
        cache.fill_article(cache.epoch(), id, "a-slug", Bytes::from_static(b"a"));
        assert_eq!(cache.article(id), None);
        // Its epoch still moves: loads that share a read key on it.
        let seen = cache.epoch();
        cache.articles_changed(&[id]);
        assert_ne!(cache.epoch().0, seen.0);
    }
}
