//! PublishArticle and WithdrawArticle: authenticated, then validated, then
//! stored; the replica that wrote drops what it cached at once.

use time::OffsetDateTime;
use tonic::Request;
use uuid::Uuid;

use super::service::ArticleApi;
use crate::domain::article::{self, ArticleState};
use crate::domain::lifecycle::MAX_REASON_CHARS;
use crate::error::{Error, Result};
use crate::proto::withdraw_article_request::Key;
use crate::proto::{
    PublishArticleRequest, PublishArticleResponse, WithdrawArticleRequest, WithdrawArticleResponse,
};
use crate::store::ArticleKey;
use crate::wire::{article_to_proto, draft_from_proto};

impl ArticleApi {
    pub(super) async fn publish_article(
        &self,
        request: Request<PublishArticleRequest>,
    ) -> Result<PublishArticleResponse> {
        // Authorization before validation: an unauthorized caller learns
        // nothing about the rules.
        self.auth.check(request.metadata())?;
        let now = article::to_storage_precision(OffsetDateTime::now_utc());
        let draft = draft_from_proto(request.into_inner())?;
        let valid = article::validate(draft, now)?;
        let stored = self.store.publish(valid).await?;
        // This replica's next read sees the change; the others hear of it
        // from the database (`cache`).
        if stored.created {
            tracing::info!(
                slug = %stored.article.slug,
                id = %stored.article.id,
                scheduled = stored.article.state == ArticleState::Scheduled,
                "article stored"
            );
            if stored.article.state.is_public() {
                let tag_slugs: Vec<String> = stored
                    .article
                    .tags
                    .iter()
                    .map(|tag| tag.slug.clone())
                    .collect();
                self.cache.new_article_tagged(&tag_slugs);
            }
        } else if stored.changed {
            self.cache.articles_changed(&[stored.article.id]);
        }
        Ok(PublishArticleResponse {
            article: Some(article_to_proto(&stored.article)),
            created: stored.created,
        })
    }

    pub(super) async fn withdraw_article(
        &self,
        request: Request<WithdrawArticleRequest>,
    ) -> Result<WithdrawArticleResponse> {
        self.auth.check(request.metadata())?;
        let request = request.into_inner();
        let key = match request.key {
            None => return Err(Error::invalid("key", "give the article's id or its slug")),
            Some(Key::Id(id)) if id.is_empty() => return Err(Error::invalid("id", "id is empty")),
            Some(Key::Slug(slug)) if slug.is_empty() => {
                return Err(Error::invalid("slug", "slug is empty"));
            }
            Some(Key::Id(id)) => ArticleKey::Id(
                Uuid::try_parse(&id).map_err(|_| Error::invalid("id", "id is not a UUID"))?,
            ),
            Some(Key::Slug(slug)) => ArticleKey::Slug(slug),
        };
        if request.reason.chars().count() > MAX_REASON_CHARS {
            return Err(Error::invalid(
                "reason",
                format!("reason is longer than {MAX_REASON_CHARS} characters"),
            ));
        }
        if request.reason.contains('\0') {
            return Err(Error::invalid(
                "reason",
                "reason must not contain NUL characters",
            ));
        }
        let withdrawal = self
            .store
            .withdraw(&key, &request.reason)
            .await?
            .ok_or_else(|| Error::NotFound("no such article".into()))?;
        if withdrawal.changed {
            // Out of every public read on this replica before we answer.
            self.cache.articles_changed(&[withdrawal.article.id]);
            metrics::counter!(crate::metrics::WITHDRAWALS).increment(1);
            tracing::info!(
                slug = %withdrawal.article.slug,
                id = %withdrawal.article.id,
                "article withdrawn"
            );
        }
        Ok(WithdrawArticleResponse {
            article: Some(article_to_proto(&withdrawal.article)),
        })
    }
}
