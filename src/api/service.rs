//! `newsroom.content.v1.ArticleService`: thin handlers.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use prost::bytes::Bytes;
use time::OffsetDateTime;
use tokio::time::Instant;
use tonic::transport::server::TlsConnectInfo;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::auth::PublishAuth;
use super::connection_info::ConnectionInfo;
use super::convert::{article_to_proto, draft_from_proto, tag_to_proto};
use super::deadline;
use super::wire::{EncodedGetArticleResponse, EncodedListArticlesByTagResponse, encode_article};
use crate::cache::{CachedPage, Epoch, ReadCache};
use crate::domain::article::{self, Article, resolve_tag};
use crate::domain::paging::page_size;
use crate::domain::slug::is_valid_article_slug;
use crate::domain::token::{ArticlePageCursor, TagPageCursor, Token};
use crate::error::{Error, Result};
use crate::feed::{ConnectionAge, EncodedStreamResponse, Feed};
use crate::proto::article_service_server::ArticleService;
use crate::proto::{
    GetArticleRequest, ListArticlesByTagRequest, ListTagsRequest, ListTagsResponse,
    PublishArticleRequest, PublishArticleResponse, StreamNewArticlesRequest, TagSummary,
    get_article_request::Key,
};
use crate::store::{ArticleKey, ArticleLookups, Store, TokenKeys};

/// Tags one stream may filter on, at most.
pub const MAX_STREAM_TAGS: usize = 100;

#[derive(Clone)]
pub struct ArticleApi {
    store: Store,
    /// GetArticle's database reads, batched while the database is busy.
    lookups: ArticleLookups,
    tokens: TokenKeys,
    auth: PublishAuth,
    feed: Feed,
    cache: ReadCache,
    /// The server's request timeout, which caps every call's budget.
    request_timeout: Duration,
    /// When feed streams end for their connection's age; `None`: never.
    connection_age: Option<ConnectionAge>,
}

impl ArticleApi {
    pub fn new(
        store: Store,
        tokens: TokenKeys,
        auth: PublishAuth,
        feed: Feed,
        cache: ReadCache,
    ) -> Self {
        Self {
            lookups: ArticleLookups::start(store.clone(), store.lookup_slots()),
            store,
            tokens,
            auth,
            feed,
            cache,
            request_timeout: deadline::DEFAULT_TIMEOUT,
            connection_age: None,
        }
    }

    /// Feed streams end for their connection's age (see [`ConnectionAge`]).
    pub fn with_connection_age(self, connection_age: Option<ConnectionAge>) -> Self {
        Self {
            connection_age,
            ..self
        }
    }

    /// When a feed stream of the call with these extensions ends: from when
    /// its connection was accepted, or, should that be unknown, from now.
    fn stream_end(&self, extensions: &tonic::Extensions) -> Option<Instant> {
        let connection_age = self.connection_age?;
        let accepted_at = extensions
            .get::<ConnectionInfo>()
            .map(|info| info.accepted_at)
            .or_else(|| {
                extensions
                    .get::<TlsConnectInfo<ConnectionInfo>>()
                    .map(|info| info.get_ref().accepted_at)
            })
            .unwrap_or_else(Instant::now);
        Some(connection_age.stream_end(accepted_at))
    }

    /// Calls take at most `timeout` (see `deadline`).
    pub fn with_request_timeout(self, timeout: Duration) -> Self {
        Self {
            request_timeout: timeout,
            ..self
        }
    }

    /// How long the call with this metadata may take.
    fn budget(&self, metadata: &tonic::metadata::MetadataMap) -> Duration {
        deadline::budget(metadata, self.request_timeout)
    }

    async fn get_article(&self, request: GetArticleRequest) -> Result<EncodedGetArticleResponse> {
        let found = match request.key {
            None => return Err(Error::invalid("key", "give the article's id or its slug")),
            Some(Key::Id(id)) if id.is_empty() => return Err(Error::invalid("id", "id is empty")),
            Some(Key::Slug(slug)) if slug.is_empty() => {
                return Err(Error::invalid("slug", "slug is empty"));
            }
            Some(Key::Id(id)) => {
                let id =
                    Uuid::try_parse(&id).map_err(|_| Error::invalid("id", "id is not a UUID"))?;
                let seen = self.cache.epoch();
                let found = self.lookups.article(ArticleKey::Id(id)).await?;
                found.map(|article| self.keep(seen, &article))
            }
            // A slug that breaks the slug rule cannot have been stored.
            Some(Key::Slug(slug)) if !is_valid_article_slug(&slug) => None,
            Some(Key::Slug(slug)) => {
                let seen = self.cache.epoch();
                let found = self.lookups.article(ArticleKey::Slug(slug)).await?;
                found.map(|article| self.keep(seen, &article))
            }
        };
        let article = found.ok_or_else(|| Error::NotFound("no such article".into()))?;
        Ok(EncodedGetArticleResponse {
            article: Some(article),
        })
    }

    /// The article from the cache, if the request is valid and it is there.
    fn cached_article(&self, request: &GetArticleRequest) -> Option<Bytes> {
        let id = match &request.key {
            Some(Key::Id(id)) => Uuid::try_parse(id).ok()?,
            Some(Key::Slug(slug)) => self.cache.article_id(slug)?,
            None => return None,
        };
        self.cache.article(id)
    }

    /// The first page from the cache, if the request is valid and asks for
    /// a first page that is there.
    fn cached_first_page(
        &self,
        request: &ListArticlesByTagRequest,
    ) -> Option<EncodedListArticlesByTagResponse> {
        if !request.page_token.is_empty() {
            return None;
        }
        let tag_slug = resolve_tag("tag", &request.tag).ok()?;
        let limit = page_size(request.page_size).ok()?;
        let page = self.cache.first_page(&tag_slug, limit)?;
        Some(EncodedListArticlesByTagResponse {
            articles: page.articles.clone(),
            next_page_token: page.next_page_token.clone(),
        })
    }

    /// Encodes an article read from the database, and caches it.
    fn keep(&self, seen: Epoch, article: &Article) -> Bytes {
        let encoded = encode_article(&article_to_proto(article));
        self.cache
            .fill_article(seen, article.id, &article.slug, encoded.clone());
        encoded
    }

    async fn list_articles_by_tag(
        &self,
        request: ListArticlesByTagRequest,
    ) -> Result<EncodedListArticlesByTagResponse> {
        let tag_slug = resolve_tag("tag", &request.tag)?;
        let limit = page_size(request.page_size)?;
        let seen = self.cache.epoch();
        let cursor = match request.page_token.as_str() {
            "" => None,
            token => match self.tokens.codec().await?.open(token) {
                Ok(Token::ArticlePage(cursor)) if cursor.tag_slug == tag_slug => Some(cursor),
                _ => {
                    return Err(Error::invalid(
                        "page_token",
                        "page_token was not issued by ListArticlesByTag for this tag",
                    ));
                }
            },
        };
        let first_page = cursor.is_none();
        let page = self
            .store
            .articles_by_tag(&tag_slug, cursor.as_ref(), limit)
            .await?;
        let next_page_token = match page.articles.last() {
            Some(last) if page.has_more => {
                self.tokens
                    .codec()
                    .await?
                    .seal(&Token::ArticlePage(ArticlePageCursor {
                        tag_slug: tag_slug.clone(),
                        snapshot_position: page.snapshot_position,
                        last_published_at: last.published_at,
                        last_id: last.id,
                    }))
            }
            _ => String::new(),
        };
        let articles: Vec<Bytes> = page
            .articles
            .iter()
            .map(|article| encode_article(&article_to_proto(article)))
            .collect();
        if first_page {
            let page = CachedPage {
                articles: articles.clone(),
                next_page_token: next_page_token.clone(),
            };
            self.cache.fill_first_page(seen, &tag_slug, limit, page);
        }
        Ok(EncodedListArticlesByTagResponse {
            articles,
            next_page_token,
        })
    }

    async fn list_tags(&self, request: ListTagsRequest) -> Result<ListTagsResponse> {
        let limit = page_size(request.page_size)?;
        let after = match request.page_token.as_str() {
            "" => String::new(),
            token => match self.tokens.codec().await?.open(token) {
                Ok(Token::TagPage(cursor)) => cursor.last_slug,
                _ => {
                    return Err(Error::invalid(
                        "page_token",
                        "page_token was not issued by ListTags",
                    ));
                }
            },
        };
        let page = self.store.tags_page(&after, limit).await?;
        let next_page_token = match page.tags.last() {
            Some(last) if page.has_more => {
                self.tokens
                    .codec()
                    .await?
                    .seal(&Token::TagPage(TagPageCursor {
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

    async fn publish_article(
        &self,
        request: Request<PublishArticleRequest>,
    ) -> Result<PublishArticleResponse> {
        // Authorization before validation: an unauthorized caller learns
        // nothing about the rules.
        self.auth.check(request.metadata())?;
        let now = article::to_storage_precision(OffsetDateTime::now_utc());
        let draft = draft_from_proto(request.into_inner())?;
        let valid = article::validate(draft, now)?;
        let stored = self.store.publish(valid, now).await?;
        // This replica's next read sees the change; the others hear of it
        // from the database (`cache`).
        if stored.created {
            tracing::info!(slug = %stored.article.slug, id = %stored.article.id, "article stored");
            let tag_slugs: Vec<String> = stored
                .article
                .tags
                .iter()
                .map(|tag| tag.slug.clone())
                .collect();
            self.cache.new_article_tagged(&tag_slugs);
        } else if stored.changed {
            self.cache.articles_changed(&[stored.article.id]);
        }
        Ok(PublishArticleResponse {
            article: Some(article_to_proto(&stored.article)),
            created: stored.created,
        })
    }

    async fn stream_new_articles(
        &self,
        request: StreamNewArticlesRequest,
        ends_at: Option<Instant>,
    ) -> Result<<Self as ArticleService>::StreamNewArticlesStream> {
        if request.tags.len() > MAX_STREAM_TAGS {
            return Err(Error::invalid(
                "tags",
                format!("a stream filters on at most {MAX_STREAM_TAGS} tags"),
            ));
        }
        let mut tag_slugs = Vec::with_capacity(request.tags.len());
        for tag in &request.tags {
            let slug = resolve_tag("tags", tag)?;
            if !tag_slugs.contains(&slug) {
                tag_slugs.push(slug);
            }
        }
        let resume_position = match request.resume_token.as_str() {
            "" => None,
            token => match self.tokens.codec().await?.open(token) {
                Ok(Token::Resume { feed_position }) => Some(feed_position),
                _ => {
                    return Err(Error::invalid(
                        "resume_token",
                        "resume_token was not issued by StreamNewArticles",
                    ));
                }
            },
        };
        let subscription = self
            .feed
            .subscribe(tag_slugs, resume_position)
            .await?
            .ending_at(ends_at);
        Ok(Box::pin(subscription.into_stream()))
    }
}

/// Each call runs within its budget (`deadline`): the caller's deadline, or
/// the request timeout (the contract's 5 s), less a margin for the answer to
/// travel.
#[tonic::async_trait]
impl ArticleService for ArticleApi {
    async fn get_article(
        &self,
        request: Request<GetArticleRequest>,
    ) -> Result<Response<EncodedGetArticleResponse>, Status> {
        // A hit answers here. The database path's future is large (the
        // queries' state): boxed, so that this one stays small to move.
        if let Some(article) = self.cached_article(request.get_ref()) {
            return Ok(Response::new(EncodedGetArticleResponse {
                article: Some(article),
            }));
        }
        let budget = self.budget(request.metadata());
        let response =
            deadline::within(budget, Box::pin(self.get_article(request.into_inner()))).await?;
        Ok(Response::new(response))
    }

    async fn list_articles_by_tag(
        &self,
        request: Request<ListArticlesByTagRequest>,
    ) -> Result<Response<EncodedListArticlesByTagResponse>, Status> {
        // As in get_article.
        if let Some(page) = self.cached_first_page(request.get_ref()) {
            return Ok(Response::new(page));
        }
        let budget = self.budget(request.metadata());
        let response = deadline::within(
            budget,
            Box::pin(self.list_articles_by_tag(request.into_inner())),
        )
        .await?;
        Ok(Response::new(response))
    }

    /// Messages of `StreamNewArticlesResponse`, each article encoded once
    /// for every stream (`feed::wire`).
    type StreamNewArticlesStream =
        Pin<Box<dyn Stream<Item = Result<EncodedStreamResponse, Status>> + Send>>;

    /// The budget bounds setting the stream up, not the stream.
    async fn stream_new_articles(
        &self,
        request: Request<StreamNewArticlesRequest>,
    ) -> Result<Response<Self::StreamNewArticlesStream>, Status> {
        let budget = self.budget(request.metadata());
        let ends_at = self.stream_end(request.extensions());
        let stream = deadline::within(
            budget,
            self.stream_new_articles(request.into_inner(), ends_at),
        )
        .await?;
        Ok(Response::new(stream))
    }

    async fn publish_article(
        &self,
        request: Request<PublishArticleRequest>,
    ) -> Result<Response<PublishArticleResponse>, Status> {
        let budget = self.budget(request.metadata());
        let response = deadline::within(budget, self.publish_article(request)).await?;
        Ok(Response::new(response))
    }

    async fn list_tags(
        &self,
        request: Request<ListTagsRequest>,
    ) -> Result<Response<ListTagsResponse>, Status> {
        let budget = self.budget(request.metadata());
        let response = deadline::within(budget, self.list_tags(request.into_inner())).await?;
        Ok(Response::new(response))
    }
}
