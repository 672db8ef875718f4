//! PublishArticle and WithdrawArticle: authenticated, then validated, then
//! stored; the replica that wrote drops what it cached at once.

use time::OffsetDateTime;
use tonic::Request;

use super::reads::article_key;
use super::service::ArticleApi;
use crate::domain::article::{self, ArticleState};
use crate::domain::lifecycle::validate_reason;
use crate::error::{Error, Result};
use crate::proto::get_article_request;
use crate::proto::withdraw_article_request::Key;
use crate::proto::{
    PublishArticleRequest, PublishArticleResponse, WithdrawArticleRequest, WithdrawArticleResponse,
};
use crate::wire::{article_to_proto, draft_from_proto};

impl ArticleApi {
    pub(super) async fn publish(
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

    pub(super) async fn withdraw(
        &self,
        request: Request<WithdrawArticleRequest>,
    ) -> Result<WithdrawArticleResponse> {
        self.auth.check(request.metadata())?;
        let request = request.into_inner();
        // The same key as GetArticle's, by the same rules.
        let key = article_key(request.key.map(|key| match key {
            Key::Id(id) => get_article_request::Key::Id(id),
            Key::Slug(slug) => get_article_request::Key::Slug(slug),
        }))?;
        validate_reason(&request.reason)?;
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
