//! `newsroom.content.v1.ArticleService`: the handlers' shared state, and the
//! trait impl that gives each call its budget and hands it to its family
//! (`reads`, `writes`, `streams`).

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, TryStreamExt};
use prost::bytes::Bytes;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::auth::PublishAuth;
use super::connection_info::ConnectionInfo;
use super::deadline;
use super::streams::FramedStream;
use crate::cache::{ReadCache, SharedLoads};
use crate::domain::token::{Token, TokenCodec};
use crate::error::{Error, Result};
use crate::feed::{ConnectionAge, Feed};
use crate::proto::article_service_server::ArticleService;
use crate::proto::{
    GetArticleRequest, ListArticlesByTagRequest, ListTagsRequest, ListTagsResponse,
    PublishArticleRequest, PublishArticleResponse, StreamArticleChangesRequest,
    StreamNewArticlesRequest, WithdrawArticleRequest, WithdrawArticleResponse,
};
use crate::store::{ArticleKey, ArticleLookups, Store, TokenKeys};
use crate::wire::{EncodedGetArticleResponse, EncodedListArticlesByTagResponse, Framed};

#[derive(Clone)]
pub struct ArticleApi {
    pub(super) store: Store,
    /// GetArticle's database reads, batched while the database is busy.
    pub(super) lookups: ArticleLookups,
    pub(super) tokens: TokenKeys,
    pub(super) auth: PublishAuth,
    pub(super) feed: Feed,
    pub(super) cache: ReadCache,
    /// Public GetArticle misses in flight, shared by key (`cache::loads`).
    pub(super) article_loads: SharedLoads<ArticleKey, Result<Bytes>>,
    /// The server's request timeout, which caps every call's budget.
    request_timeout: Duration,
    /// When feed streams end for their connection's age; `None`: never.
    connection_age: Option<ConnectionAge>,
    /// Bytes of article text one ListArticlesByTag page holds, at most
    /// (always at least one article).
    pub(super) max_page_bytes: usize,
}

/// `MAX_PAGE_BYTES`'s default: 4 MiB, three of the largest articles.
pub const DEFAULT_MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

impl ArticleApi {
    pub fn new(
        store: Store,
        lookups: ArticleLookups,
        tokens: TokenKeys,
        auth: PublishAuth,
        feed: Feed,
        cache: ReadCache,
    ) -> Self {
        Self {
            store,
            lookups,
            tokens,
            auth,
            feed,
            cache,
            article_loads: SharedLoads::default(),
            request_timeout: deadline::DEFAULT_TIMEOUT,
            connection_age: None,
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
        }
    }

    /// Feed streams end for their connection's age (see [`ConnectionAge`]).
    pub fn with_connection_age(self, connection_age: Option<ConnectionAge>) -> Self {
        Self {
            connection_age,
            ..self
        }
    }

    /// A ListArticlesByTag page holds at most `bytes` of article text.
    pub fn with_max_page_bytes(self, bytes: usize) -> Self {
        Self {
            max_page_bytes: bytes,
            ..self
        }
    }

    /// The publish token's check, for the server to apply before it reads
    /// a PublishArticle request (`server::admission`).
    pub fn publish_auth(&self) -> PublishAuth {
        self.auth.clone()
    }

    /// Calls take at most `timeout` (see `deadline`).
    pub fn with_request_timeout(self, timeout: Duration) -> Self {
        Self {
            request_timeout: timeout,
            ..self
        }
    }

    /// When a feed stream of the call with these extensions ends: from when
    /// its connection was accepted, or, should that be unknown, from now.
    fn stream_end(&self, extensions: &tonic::Extensions) -> Option<Instant> {
        let connection_age = self.connection_age?;
        let accepted_at = ConnectionInfo::of(extensions)
            .map(|info| info.accepted_at)
            .unwrap_or_else(Instant::now);
        Some(connection_age.stream_end(accepted_at))
    }

    /// How long the call with this metadata may take.
    fn budget(&self, metadata: &tonic::metadata::MetadataMap) -> deadline::Budget {
        deadline::budget(metadata, self.request_timeout)
    }

    /// The token codec, with the key every replica shares.
    pub(super) async fn codec(&self) -> Result<TokenCodec> {
        Ok(self.tokens.codec().await?.clone())
    }

    /// Opens a token a client sent back in `field`: it must be one this
    /// service sealed and `accept` must take it; anything else is
    /// INVALID_ARGUMENT with `refusal` as the description.
    pub(super) async fn open_token<T>(
        &self,
        field: &'static str,
        text: &str,
        refusal: &'static str,
        accept: impl FnOnce(Token) -> Option<T>,
    ) -> Result<T> {
        self.codec()
            .await?
            .open(text)
            .ok()
            .and_then(accept)
            .ok_or_else(|| Error::invalid(field, refusal))
    }
}

/// A feed stream as the generated server sends it.
pub type TonicStream = Pin<Box<dyn Stream<Item = Result<Framed, Status>> + Send>>;

impl ArticleApi {
    /// StreamNewArticles: the stream, set up within the call's budget.
    pub async fn open_new_articles_stream(
        &self,
        request: Request<StreamNewArticlesRequest>,
    ) -> Result<FramedStream, Status> {
        let budget = self.budget(request.metadata());
        let ends_at = self.stream_end(request.extensions());
        Ok(deadline::within(
            budget,
            self.subscribe_new_articles(request.into_inner(), ends_at),
        )
        .await?)
    }

    /// StreamArticleChanges: the stream, set up within the call's budget.
    pub async fn open_changes_stream(
        &self,
        request: Request<StreamArticleChangesRequest>,
    ) -> Result<FramedStream, Status> {
        let budget = self.budget(request.metadata());
        let ends_at = self.stream_end(request.extensions());
        Ok(deadline::within(
            budget,
            self.subscribe_changes(request.into_inner(), ends_at),
        )
        .await?)
    }
}

/// Each call runs within its budget (`deadline`): the caller's deadline, or
/// the request timeout (the contract's 5 s), less a margin for the answer to
/// travel. For streams the budget bounds setting the stream up.
#[tonic::async_trait]
impl ArticleService for ArticleApi {
    async fn get_article(
        &self,
        request: Request<GetArticleRequest>,
    ) -> Result<Response<EncodedGetArticleResponse>, Status> {
        // A hit answers here. The database path's future is large (the
        // queries' state): boxed, so that this one stays small to move.
        if let Some(response) = self.cached_article(&request) {
            return Ok(Response::new(response));
        }
        let budget = self.budget(request.metadata());
        let response = deadline::within(budget, Box::pin(self.read_article(request))).await?;
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
        let response =
            deadline::within(budget, Box::pin(self.read_tag_page(request.into_inner()))).await?;
        Ok(Response::new(response))
    }

    /// Served by `server::feed_streams`, which sends the frames as they
    /// are; here only for the calls it leaves to tonic (a compressed
    /// request), which copies each into its own buffer.
    type StreamNewArticlesStream = TonicStream;

    async fn stream_new_articles(
        &self,
        request: Request<StreamNewArticlesRequest>,
    ) -> Result<Response<Self::StreamNewArticlesStream>, Status> {
        let stream = self.open_new_articles_stream(request).await?;
        Ok(Response::new(Box::pin(stream.map_ok(Framed))))
    }

    type StreamArticleChangesStream = TonicStream;

    async fn stream_article_changes(
        &self,
        request: Request<StreamArticleChangesRequest>,
    ) -> Result<Response<Self::StreamArticleChangesStream>, Status> {
        let stream = self.open_changes_stream(request).await?;
        Ok(Response::new(Box::pin(stream.map_ok(Framed))))
    }

    async fn publish_article(
        &self,
        request: Request<PublishArticleRequest>,
    ) -> Result<Response<PublishArticleResponse>, Status> {
        let budget = self.budget(request.metadata());
        let response = deadline::within(budget, self.publish(request)).await?;
        Ok(Response::new(response))
    }

    async fn withdraw_article(
        &self,
        request: Request<WithdrawArticleRequest>,
    ) -> Result<Response<WithdrawArticleResponse>, Status> {
        let budget = self.budget(request.metadata());
        let response = deadline::within(budget, self.withdraw(request)).await?;
        Ok(Response::new(response))
    }

    async fn list_tags(
        &self,
        request: Request<ListTagsRequest>,
    ) -> Result<Response<ListTagsResponse>, Status> {
        let budget = self.budget(request.metadata());
        let response = deadline::within(budget, self.read_tags(request.into_inner())).await?;
        Ok(Response::new(response))
    }
}
