//! The client: one HTTP/2 connection (a tonic `Channel`) and typed calls on it.

use std::time::Duration;

use futures::{Stream, TryStreamExt, stream};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::error::Error;
use crate::follow::{Changes, Follower, NewArticles};
use crate::proto::article_service_client::ArticleServiceClient;
use crate::proto::{
    Article, GetArticleRequest, ListArticlesByTagRequest, ListArticlesByTagResponse,
    ListTagsRequest, PublishArticleRequest, PublishArticleResponse, TagSummary,
    WithdrawArticleRequest, get_article_request,
};
use crate::token_store::TokenStore;

/// Per-stream receive window: a whole article (bodies go up to 1 MiB) fits in
/// one window, so a message arrives in large frames without waiting for
/// WINDOW_UPDATEs, and a slow stream cannot hold more than this.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// Per-connection receive window: room for many busy streams at once.
const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;
/// Largest message accepted: well above one page or one article.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// A client of `newsroom.content.v1.ArticleService`. Cheap to clone: clones
/// share the connection, and every method takes `&self`, so many calls and
/// streams can run on one client at once.
#[derive(Clone, Debug)]
pub struct ArticleClient {
    raw: ArticleServiceClient<Channel>,
    publish_token: Option<MetadataValue<Ascii>>,
}

impl ArticleClient {
    /// The endpoint settings this crate uses, for callers that build the
    /// `Channel` themselves (TLS, a load-balanced channel): HTTP/2 windows
    /// large enough for many streams on one connection, keepalive pings so a
    /// dead connection is noticed while a stream waits, a connect timeout.
    pub fn endpoint(uri: impl Into<String>) -> Result<Endpoint, Error> {
        Ok(Endpoint::from_shared(uri.into())?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true))
    }

    /// Connects to `uri` (`http://host:port`) now; fails if it cannot.
    pub async fn connect(uri: impl Into<String>) -> Result<Self, Error> {
        Ok(Self::new(Self::endpoint(uri)?.connect().await?))
    }

    /// Connects on first use, and again whenever the connection is lost: what
    /// a long-running follower wants, since the service may be down when it
    /// starts.
    pub fn connect_lazy(uri: impl Into<String>) -> Result<Self, Error> {
        Ok(Self::new(Self::endpoint(uri)?.connect_lazy()))
    }

    /// A client on a channel the caller built.
    pub fn new(channel: Channel) -> Self {
        Self {
            raw: ArticleServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            publish_token: None,
        }
    }

    /// Sends `authorization: Bearer <token>` on publish, withdraw and
    /// GetArticle (an editor's preview). The token is marked sensitive, so it
    /// never shows in this client's `Debug` output.
    pub fn with_publish_token(mut self, token: &str) -> Result<Self, Error> {
        let mut value: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| Error::InvalidPublishToken)?;
        value.set_sensitive(true);
        self.publish_token = Some(value);
        Ok(self)
    }

    /// The generated client underneath, for anything this type does not wrap.
    pub fn raw(&self) -> ArticleServiceClient<Channel> {
        self.raw.clone()
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.publish_token {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        request
    }

    /// GetArticle by slug.
    pub async fn get_by_slug(&self, slug: &str) -> Result<Article, Error> {
        self.get(get_article_request::Key::Slug(slug.to_owned()))
            .await
    }

    /// GetArticle by id.
    pub async fn get_by_id(&self, id: &str) -> Result<Article, Error> {
        self.get(get_article_request::Key::Id(id.to_owned())).await
    }

    async fn get(&self, key: get_article_request::Key) -> Result<Article, Error> {
        let message = GetArticleRequest {
            key: Some(key),
            ..Default::default()
        };
        read_again_if_cancelled(|| {
            let request = self.request(message.clone());
            let mut raw = self.raw();
            async move { raw.get_article(request).await }
        })
        .await?
        .into_inner()
        .article
        .ok_or(Error::MissingField("article"))
    }

    /// One page of ListArticlesByTag, as the service answers it (with its
    /// `next_page_token` and `changes_token`).
    pub async fn list_page(
        &self,
        request: ListArticlesByTagRequest,
    ) -> Result<ListArticlesByTagResponse, Error> {
        let response = read_again_if_cancelled(|| {
            let mut raw = self.raw();
            let request = request.clone();
            async move { raw.list_articles_by_tag(request).await }
        })
        .await?;
        Ok(response.into_inner())
    }

    /// Every article of `tag`, newest first, following `next_page_token`
    /// page by page as the stream is read (pages of the service's default
    /// size). Each article that had the tag when paging began comes once.
    pub fn list_by_tag(&self, tag: &str) -> impl Stream<Item = Result<Article, Error>> + use<> {
        let client = self.clone();
        let tag = tag.to_owned();
        // The state is the next page's token; `None` once the last page is read.
        stream::try_unfold(Some(String::new()), move |page_token| {
            let client = client.clone();
            let tag = tag.clone();
            async move {
                let Some(page_token) = page_token else {
                    return Ok::<_, Error>(None);
                };
                let page = client
                    .list_page(ListArticlesByTagRequest {
                        tag,
                        page_token,
                        ..Default::default()
                    })
                    .await?;
                let next = (!page.next_page_token.is_empty()).then_some(page.next_page_token);
                Ok(Some((
                    stream::iter(page.articles.into_iter().map(Ok::<_, Error>)),
                    next,
                )))
            }
        })
        .try_flatten()
    }

    /// A snapshot of `tag`: every article it had when paging began, newest
    /// first, and the `changes_token` to follow its changes from that moment
    /// ([`ArticleClient::follow_changes`] with
    /// [`MemoryTokenStore::with_token`](crate::MemoryTokenStore::with_token)
    /// or a store seeded with it): applied by revision, the two make an
    /// exact copy of the tag. Unlike [`ArticleClient::list_by_tag`], it
    /// holds the whole tag in memory.
    pub async fn snapshot(&self, tag: &str) -> Result<(Vec<Article>, String), Error> {
        let mut articles = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .list_page(ListArticlesByTagRequest {
                    tag: tag.to_owned(),
                    page_size: 100,
                    page_token,
                    ..Default::default()
                })
                .await?;
            articles.extend(page.articles);
            if page.next_page_token.is_empty() {
                return Ok((articles, page.changes_token));
            }
            page_token = page.next_page_token;
        }
    }

    /// Every tag with its article count, by slug, following page tokens.
    pub fn list_tags(&self) -> impl Stream<Item = Result<TagSummary, Error>> + use<> {
        let client = self.clone();
        stream::try_unfold(Some(String::new()), move |page_token| {
            let client = client.clone();
            async move {
                let Some(page_token) = page_token else {
                    return Ok::<_, Error>(None);
                };
                let request = ListTagsRequest {
                    page_size: 0,
                    page_token,
                };
                let page = read_again_if_cancelled(|| {
                    let mut raw = client.raw();
                    let request = request.clone();
                    async move { raw.list_tags(request).await }
                })
                .await?
                .into_inner();
                let next = (!page.next_page_token.is_empty()).then_some(page.next_page_token);
                Ok(Some((
                    stream::iter(page.tags.into_iter().map(Ok::<_, Error>)),
                    next,
                )))
            }
        })
        .try_flatten()
    }

    /// PublishArticle (needs [`with_publish_token`](Self::with_publish_token)).
    pub async fn publish(
        &self,
        request: PublishArticleRequest,
    ) -> Result<PublishArticleResponse, Error> {
        Ok(self
            .raw()
            .publish_article(self.request(request))
            .await?
            .into_inner())
    }

    /// WithdrawArticle (needs [`with_publish_token`](Self::with_publish_token));
    /// returns the withdrawn article.
    pub async fn withdraw(&self, request: WithdrawArticleRequest) -> Result<Article, Error> {
        self.raw()
            .withdraw_article(self.request(request))
            .await?
            .into_inner()
            .article
            .ok_or(Error::MissingField("article"))
    }

    /// Follows StreamNewArticles for `tags` (every tag when empty), resuming
    /// from the token in `store`: see [`Follower`].
    pub fn follow_new<S: TokenStore>(&self, tags: &[&str], store: S) -> Follower<NewArticles, S> {
        Follower::new(self.raw(), tags, store)
    }

    /// Follows StreamArticleChanges for `tags` (every tag when empty),
    /// resuming from the token in `store`: see [`Follower`].
    pub fn follow_changes<S: TokenStore>(&self, tags: &[&str], store: S) -> Follower<Changes, S> {
        Follower::new(self.raw(), tags, store)
    }
}

/// Runs a read a second time when the first failed with CANCELLED: what tonic
/// answers for a call it had queued when a GOAWAY arrived (the server's
/// connection age, see the README's "Connection age"), unsent. Reads are safe
/// to repeat; writes are left to the caller.
async fn read_again_if_cancelled<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    match call().await {
        Err(status) if status.code() == tonic::Code::Cancelled => call().await,
        result => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use tonic::{Code, Status};

    /// Calls a read whose answers are `codes` in turn (OK: the call count).
    async fn calls_with(codes: &[Code]) -> (Result<usize, Code>, usize) {
        let calls = Cell::new(0);
        let result = read_again_if_cancelled(|| {
            let n = calls.get();
            calls.set(n + 1);
            let code = codes[n];
            async move {
                match code {
                    Code::Ok => Ok(n + 1),
                    code => Err(Status::new(code, "x")),
                }
            }
        })
        .await;
        (result.map_err(|status| status.code()), calls.get())
    }

    #[tokio::test]
    async fn a_cancelled_read_is_sent_once_more_and_only_once() {
        assert_eq!(calls_with(&[Code::Cancelled, Code::Ok]).await, (Ok(2), 2));
        assert_eq!(
            calls_with(&[Code::Cancelled, Code::Cancelled]).await,
            (Err(Code::Cancelled), 2)
        );
    }

    #[tokio::test]
    async fn other_answers_are_returned_as_they_are() {
        assert_eq!(calls_with(&[Code::Ok]).await, (Ok(1), 1));
        for code in [Code::Unavailable, Code::InvalidArgument, Code::NotFound] {
            assert_eq!(calls_with(&[code]).await, (Err(code), 1));
        }
    }
}
