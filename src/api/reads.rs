//! GetArticle, ListArticlesByTag and ListTags: public reads (PUBLISHED
//! articles only, from the cache when it has them) and editors' preview.

use prost::bytes::Bytes;
use tonic::Request;
use uuid::Uuid;

use super::service::ArticleApi;
use crate::cache::CachedPage;
use crate::domain::article::{ArticleState, resolve_tag};
use crate::domain::paging::page_size;
use crate::domain::slug::is_valid_article_slug;
use crate::domain::token::{ArticlePageCursor, TagPageCursor, Token};
use crate::error::{Error, Result};
use crate::proto;
use crate::proto::get_article_request::Key;
use crate::proto::{
    GetArticleRequest, ListArticlesByTagRequest, ListTagsRequest, ListTagsResponse, TagSummary,
};
use crate::store::ArticleKey;
use crate::wire::{
    EncodedGetArticleResponse, EncodedListArticlesByTagResponse, View, article_into_proto,
    article_to_proto, encode_article, frame_article_response, framed_article, tag_to_proto,
    view_from_proto, without_body,
};

/// The article a request names, by GetArticle's rules: neither key, an
/// empty one or an id that is not a UUID is INVALID_ARGUMENT; a slug that
/// breaks the slug rule cannot have been stored (NOT_FOUND).
pub(super) fn article_key(key: Option<Key>) -> Result<ArticleKey> {
    match key {
        None => Err(Error::invalid("key", "give the article's id or its slug")),
        Some(Key::Id(id)) if id.is_empty() => Err(Error::invalid("id", "id is empty")),
        Some(Key::Slug(slug)) if slug.is_empty() => Err(Error::invalid("slug", "slug is empty")),
        Some(Key::Id(id)) => Uuid::try_parse(&id)
            .map(ArticleKey::Id)
            .map_err(|_| Error::invalid("id", "id is not a UUID")),
        Some(Key::Slug(slug)) if !is_valid_article_slug(&slug) => {
            Err(Error::NotFound("no such article".into()))
        }
        Some(Key::Slug(slug)) => Ok(ArticleKey::Slug(slug)),
    }
}

/// A call that carries credentials asks for editors' preview.
pub(crate) fn asks_for_preview(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::AUTHORIZATION)
}

/// A cached article (kept whole) as the view asks.
fn article_in_view(article: Bytes, view: View) -> Result<Bytes> {
    match view {
        View::Full => Ok(article),
        View::Basic => without_body(&article)
            .map_err(|error| Error::Internal(format!("cannot decode an article: {error}"))),
    }
}

/// Cached articles (kept whole) as the view asks.
fn in_view(articles: Vec<Bytes>, view: View) -> Result<Vec<Bytes>> {
    match view {
        View::Full => Ok(articles),
        View::Basic => articles
            .into_iter()
            .map(|article| article_in_view(article, view))
            .collect(),
    }
}

impl ArticleApi {
    /// The answer from the cache, if the request is a valid public read of
    /// an article that is there (tonic's path: compressed calls).
    pub(super) fn cached_article(
        &self,
        request: &Request<GetArticleRequest>,
    ) -> Option<EncodedGetArticleResponse> {
        let framed = self.cached_article_frame(request.metadata().as_ref(), request.get_ref())?;
        Some(EncodedGetArticleResponse {
            article: Some(framed_article(&framed)?),
        })
    }

    /// The answer from the cache as one gRPC frame, ready to send, if the
    /// request is a valid public read of an article that is there. The
    /// cache keeps each article framed in the FULL view: such a hit is the
    /// cache's own bytes.
    pub fn cached_article_frame(
        &self,
        headers: &http::HeaderMap,
        request: &GetArticleRequest,
    ) -> Option<Bytes> {
        if asks_for_preview(headers) {
            return None;
        }
        let view = view_from_proto(request.view).ok()?;
        let id = match &request.key {
            Some(Key::Id(id)) => Uuid::try_parse(id).ok()?,
            Some(Key::Slug(slug)) => self.cache.article_id(slug)?,
            None => return None,
        };
        let framed = self.cache.article(id)?;
        match view {
            View::Full => Some(framed),
            View::Basic => {
                let article = article_in_view(framed_article(&framed)?, view).ok()?;
                Some(frame_article_response(article))
            }
        }
    }

    pub(super) async fn read_article(
        &self,
        request: Request<GetArticleRequest>,
    ) -> Result<EncodedGetArticleResponse> {
        // Credentials before validation, as for writes.
        let preview = asks_for_preview(request.metadata().as_ref());
        if preview {
            self.auth.check(request.metadata())?;
        }
        let request = request.into_inner();
        let view = view_from_proto(request.view)?;
        let key = article_key(request.key)?;
        let article = if preview {
            self.preview_article(key, view).await?
        } else {
            let framed = self.public_article_frame(key).await?;
            let whole = framed_article(&framed)
                .ok_or_else(|| Error::Internal("a framed article does not parse".into()))?;
            article_in_view(whole, view)?
        };
        Ok(EncodedGetArticleResponse {
            article: Some(article),
        })
    }

    /// Editors' preview: the article in any state, as the view asks, from
    /// the primary; never cached or shared with public reads.
    async fn preview_article(&self, key: ArticleKey, view: View) -> Result<Bytes> {
        let article = self
            .store
            .article_on_primary(&key)
            .await?
            .ok_or_else(|| Error::NotFound("no such article".into()))?;
        Ok(encode_article(&view.apply(article_into_proto(article))))
    }

    /// A public read that missed the cache: the article framed as a whole
    /// GetArticle response (FULL view), which fills the cache. Misses of one
    /// key at the same time share one load (`cache::SharedLoads`) and its
    /// bytes, errors included.
    async fn public_article_frame(&self, key: ArticleKey) -> Result<Bytes> {
        let seen = self.cache.epoch();
        let (lookups, cache) = (self.lookups.clone(), self.cache.clone());
        let looked_up = key.clone();
        let load = async move {
            let article = lookups
                .article(looked_up)
                .await?
                .ok_or_else(|| Error::NotFound("no such article".into()))?;
            match article.state {
                ArticleState::Published => {}
                ArticleState::Withdrawn => return Err(Error::Withdrawn),
                ArticleState::Scheduled => return Err(Error::NotFound("no such article".into())),
            }
            let (id, slug) = (article.id, article.slug.clone());
            let framed = frame_article_response(encode_article(&article_into_proto(article)));
            cache.fill_article(seen, id, &slug, framed.clone());
            Ok(framed)
        };
        self.article_loads.load(key, seen, load).await
    }

    /// The first page from the cache, if the request is valid and asks for
    /// a first page that is there.
    pub(super) fn cached_first_page(
        &self,
        request: &ListArticlesByTagRequest,
    ) -> Option<EncodedListArticlesByTagResponse> {
        if !request.page_token.is_empty() {
            return None;
        }
        let view = view_from_proto(request.view).ok()?;
        let tag_slug = resolve_tag("tag", &request.tag).ok()?;
        let limit = page_size(request.page_size).ok()?;
        let page = self.cache.first_page(&tag_slug, limit)?;
        Some(EncodedListArticlesByTagResponse {
            articles: in_view(page.articles.clone(), view).ok()?,
            next_page_token: page.next_page_token.clone(),
            changes_token: page.changes_token.clone(),
        })
    }

    pub(super) async fn read_tag_page(
        &self,
        request: ListArticlesByTagRequest,
    ) -> Result<EncodedListArticlesByTagResponse> {
        let tag_slug = resolve_tag("tag", &request.tag)?;
        let limit = page_size(request.page_size)?;
        let view = view_from_proto(request.view)?;
        let seen = self.cache.epoch();
        let cursor = match request.page_token.as_str() {
            "" => None,
            token => Some(
                self.open_token(
                    "page_token",
                    token,
                    "page_token was not issued by ListArticlesByTag for this tag",
                    |token| match token {
                        Token::ArticlePage(cursor) if cursor.tag_slug == tag_slug => Some(cursor),
                        _ => None,
                    },
                )
                .await?,
            ),
        };
        let first_page = cursor.is_none();
        let page = self
            .store
            .articles_by_tag(&tag_slug, cursor.as_ref(), limit, self.max_page_bytes)
            .await?;
        let codec = self.codec().await?;
        let next_page_token = match page.next_after {
            Some((last_published_at, last_id)) => {
                codec.seal(&Token::ArticlePage(ArticlePageCursor {
                    tag_slug: tag_slug.clone(),
                    snapshot_position: page.snapshot_position,
                    last_published_at,
                    last_id,
                }))
            }
            None => String::new(),
        };
        let changes_token = codec.seal(&Token::Changes {
            position: page.snapshot_position,
        });
        let protos: Vec<proto::Article> = page.articles.iter().map(article_to_proto).collect();
        // Whole: for the cache (a first page, whatever this call's view) and
        // for the FULL view.
        let whole: Option<Vec<Bytes>> =
            (first_page || view == View::Full).then(|| protos.iter().map(encode_article).collect());
        if first_page && let Some(whole) = &whole {
            let page = CachedPage {
                articles: whole.clone(),
                next_page_token: next_page_token.clone(),
                changes_token: changes_token.clone(),
            };
            self.cache.fill_first_page(seen, &tag_slug, limit, page);
        }
        let articles = match (view, whole) {
            (View::Full, Some(whole)) => whole,
            _ => protos
                .into_iter()
                .map(|article| encode_article(&view.apply(article)))
                .collect(),
        };
        Ok(EncodedListArticlesByTagResponse {
            articles,
            next_page_token,
            changes_token,
        })
    }

    pub(super) async fn read_tags(&self, request: ListTagsRequest) -> Result<ListTagsResponse> {
        let limit = page_size(request.page_size)?;
        let after = match request.page_token.as_str() {
            "" => String::new(),
            token => {
                self.open_token(
                    "page_token",
                    token,
                    "page_token was not issued by ListTags",
                    |token| match token {
                        Token::TagPage(cursor) => Some(cursor.last_slug),
                        _ => None,
                    },
                )
                .await?
            }
        };
        let page = self.store.tags_page(&after, limit).await?;
        let next_page_token = match page.tags.last() {
            Some(last) if page.has_more => {
                self.codec().await?.seal(&Token::TagPage(TagPageCursor {
                    last_slug: last.tag.slug.clone(),
                }))
            }
            _ => String::new(),
        };
        Ok(ListTagsResponse {
            tags: page
                .tags
                .iter()
                .map(|count| TagSummary {
                    tag: Some(tag_to_proto(&count.tag)),
                    article_count: count.article_count,
                })
                .collect(),
            next_page_token,
        })
    }
}
