//! Withdrawal: a takedown, written with its tombstone change.

use super::{database_now, fetch_stored, take_write_lock};
use crate::domain::article::Article;
use crate::domain::lifecycle::decide_withdraw;
use crate::error::Result;
use crate::store::Store;
use crate::store::changes::change_head_on;
use crate::store::lookups::ArticleKey;
use crate::store::plan::{TagCounts, WritePlan};
use crate::store::rows::article_columns;

/// What a withdrawal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub article: Article,
    /// The article was withdrawn now (false: it already was).
    pub changed: bool,
}

impl Store {
    /// Withdraws the article with this key (`None`: there is none).
    pub async fn withdraw(&self, key: &ArticleKey, reason: &str) -> Result<Option<Withdrawal>> {
        self.bounded(async {
            let mut tx = self.begin().await?;
            take_write_lock(&mut tx).await?;
            let now = database_now(&mut tx).await?;
            let query = match key {
                ArticleKey::Id(id) => {
                    sqlx::query_as(select_stored_for_update!("a.id = $1")).bind(*id)
                }
                ArticleKey::Slug(slug) => {
                    sqlx::query_as(select_stored_for_update!("a.slug = $1")).bind(slug.clone())
                }
            };
            let existing = fetch_stored(&mut tx, query).await?;
            let Some(old) = existing.into_iter().next() else {
                return Ok(None);
            };
            let Some(withdrawn) = decide_withdraw(&old.article, now) else {
                return Ok(Some(Withdrawal {
                    article: old.article,
                    changed: false,
                }));
            };
            let head = change_head_on(&mut *tx).await?;
            let mut plan = WritePlan::new(head, now);
            let mut counts = TagCounts::default();
            plan.withdraw(&mut tx, &old, &withdrawn, reason, &mut counts)
                .await?;
            let newest = plan.execute(&mut tx).await?;
            counts.apply(&mut tx).await?;
            tx.commit().await?;
            self.saw_committed_change(newest);
            Ok(Some(Withdrawal {
                article: withdrawn,
                changed: true,
            }))
        })
        .await
    }
}
