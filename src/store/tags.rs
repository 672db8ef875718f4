//! Tags and their article counts.

use super::Store;
use crate::domain::article::TagRef;
use crate::error::Result;

/// A tag with the number of articles that have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCount {
    pub tag: TagRef,
    pub article_count: i64,
}

/// A page of tags; whether another follows.
#[derive(Debug)]
pub struct TagPage {
    pub tags: Vec<TagCount>,
    pub has_more: bool,
}

impl Store {
    /// Tags that at least one article has, by slug in byte order (the
    /// column's "C" collation), after `after_slug`.
    pub async fn tags_page(&self, after_slug: &str, limit: u32) -> Result<TagPage> {
        self.bounded(async {
            let mut conn = self.acquire_for_read(0).await?;
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT slug, name, article_count FROM tags \
                 WHERE article_count > 0 AND slug > $1 ORDER BY slug LIMIT $2",
            )
            .bind(after_slug)
            .bind(i64::from(limit) + 1)
            .fetch_all(&mut *conn)
            .await?;
            let has_more = rows.len() > limit as usize;
            let tags = rows
                .into_iter()
                .take(limit as usize)
                .map(|(slug, name, article_count)| TagCount {
                    tag: TagRef { slug, name },
                    article_count,
                })
                .collect();
            Ok(TagPage { tags, has_more })
        })
        .await
    }
}
