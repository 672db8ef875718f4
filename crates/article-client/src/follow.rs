//! Followers of the two streams: open, hand each event to the caller, store
//! its token, and on a retryable end reconnect from the stored token.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;

use tonic::transport::Channel;

use crate::error::{BoxError, Error};
use crate::proto::article_service_client::ArticleServiceClient;
use crate::proto::{
    Article, ArticleChange, ArticleView, StreamArticleChangesRequest, StreamArticleChangesResponse,
    StreamNewArticlesRequest, StreamNewArticlesResponse,
};
use crate::reconnect::Reconnect;
use crate::token_store::TokenStore;

mod sealed {
    pub trait Sealed {}
}

/// One of the service's two streams. Implemented by [`NewArticles`] and
/// [`Changes`] only.
pub trait Feed: sealed::Sealed {
    /// What the handler is given.
    type Event: Send;
    #[doc(hidden)]
    type Response: Send + 'static;
    #[doc(hidden)]
    fn open(
        client: ArticleServiceClient<Channel>,
        options: &Options,
        resume_token: String,
    ) -> impl Future<Output = Result<tonic::Streaming<Self::Response>, tonic::Status>> + Send;
    /// The event (none for a heartbeat) and the message's resume token.
    #[doc(hidden)]
    fn split(response: Self::Response) -> (Option<Self::Event>, String);
}

/// StreamNewArticles: each new article once, in the order articles became
/// public. The handler gets each [`Article`].
#[derive(Debug)]
pub enum NewArticles {}

/// StreamArticleChanges: every change to public content (PUBLISHED, UPDATED,
/// WITHDRAWN). The handler gets each [`ArticleChange`].
#[derive(Debug)]
pub enum Changes {}

impl sealed::Sealed for NewArticles {}
impl sealed::Sealed for Changes {}

/// What a follower asks the service for.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct Options {
    tags: Vec<String>,
    view: ArticleView,
    from_beginning: bool,
}

impl Feed for NewArticles {
    type Event = Article;
    type Response = StreamNewArticlesResponse;

    async fn open(
        mut client: ArticleServiceClient<Channel>,
        options: &Options,
        resume_token: String,
    ) -> Result<tonic::Streaming<Self::Response>, tonic::Status> {
        let request = StreamNewArticlesRequest {
            tags: options.tags.clone(),
            resume_token,
            view: options.view as i32,
        };
        Ok(client.stream_new_articles(request).await?.into_inner())
    }

    fn split(response: Self::Response) -> (Option<Article>, String) {
        (response.article, response.resume_token)
    }
}

impl Feed for Changes {
    type Event = ArticleChange;
    type Response = StreamArticleChangesResponse;

    async fn open(
        mut client: ArticleServiceClient<Channel>,
        options: &Options,
        resume_token: String,
    ) -> Result<tonic::Streaming<Self::Response>, tonic::Status> {
        let request = StreamArticleChangesRequest {
            tags: options.tags.clone(),
            // `from_beginning` counts only while there is no token to resume from.
            from_beginning: options.from_beginning && resume_token.is_empty(),
            resume_token,
            view: options.view as i32,
        };
        Ok(client.stream_article_changes(request).await?.into_inner())
    }

    fn split(response: Self::Response) -> (Option<ArticleChange>, String) {
        (response.change, response.resume_token)
    }
}

impl<S: TokenStore> Follower<Changes, S> {
    /// With no stored token, start before the first change ever made (every
    /// change, from the first) instead of now: how a new copy is built.
    pub fn from_beginning(mut self) -> Self {
        self.options.from_beginning = true;
        self
    }
}

/// Follows one stream for as long as it is polled, from the token its
/// [`TokenStore`] holds (from now on, when it holds none).
///
/// For every message, in order: the handler gets the event (heartbeats, which
/// carry none, skip this), and once the handler returns `Ok` the message's
/// token is stored. So each event is handed over once per stored token:
///
/// - While the process lives, no event is handed over twice and none is
///   skipped, across any number of reconnects (the follower resumes from the
///   last token it stored, and the service resumes without gap or duplicate).
/// - Across a crash, or the future being dropped, between the handler's
///   return and the store's: the stored token is the previous one, so the next
///   run hands that one event over again. Delivery is at least once; it is
///   exactly once for a handler that is idempotent per event (apply changes by
///   revision, as the contract says) or that keeps its effect and the token in
///   one transaction of its own [`TokenStore`].
///
/// A handler error stops the follower without storing that event's token, so
/// the next run starts with the same event.
///
/// With no stored token the stream starts now (or, for [`Changes`] with
/// [`from_beginning`](Follower::from_beginning), at the first change). The
/// server's first message on such a stream, sent at once, brings the token
/// of that moment; a reconnect before it arrives starts from a later moment:
/// what is published while such a follower is not yet connected is not its
/// to see.
/// Seed the store (a `changes_token` from a page, say) to start from a
/// point of your own.
///
/// Reconnects follow [`Reconnect`]: its statuses are retried forever with
/// backoff, every other one ends [`run`](Self::run) with [`Error::Status`]
/// (a token the service rejects is INVALID_ARGUMENT, never retried).
#[derive(Debug)]
pub struct Follower<F: Feed, S> {
    client: ArticleServiceClient<Channel>,
    options: Options,
    reconnect: Reconnect,
    store: S,
    feed: PhantomData<F>,
}

impl<F: Feed, S: TokenStore> Follower<F, S> {
    pub(crate) fn new(client: ArticleServiceClient<Channel>, tags: &[&str], store: S) -> Self {
        Self {
            client,
            options: Options {
                tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
                view: ArticleView::Unspecified,
                from_beginning: false,
            },
            reconnect: Reconnect::default(),
            store,
            feed: PhantomData,
        }
    }

    /// How much of each article to receive (BASIC leaves out `body`).
    pub fn view(mut self, view: ArticleView) -> Self {
        self.options.view = view;
        self
    }

    /// The reconnect policy (default: [`Reconnect::default`]).
    pub fn reconnect(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Runs until the handler or the store fails or the stream ends with a
    /// status that is not retried; to stop it otherwise, drop the future (a
    /// `tokio::select!` with a shutdown signal, say).
    pub async fn run<H, Fut, E>(mut self, mut handler: H) -> Result<Infallible, Error>
    where
        H: FnMut(F::Event) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<BoxError>,
    {
        let mut token = self
            .store
            .load()
            .await
            .map_err(Error::TokenStore)?
            .unwrap_or_default();
        let mut waits = self.reconnect.waits();
        loop {
            let ended = match F::open(self.client.clone(), &self.options, token.clone()).await {
                Err(status) => status,
                Ok(mut stream) => loop {
                    match stream.message().await {
                        Ok(Some(message)) => {
                            waits = self.reconnect.waits();
                            let (event, next) = F::split(message);
                            if let Some(event) = event {
                                handler(event)
                                    .await
                                    .map_err(|error| Error::Handler(error.into()))?;
                            }
                            if !next.is_empty() {
                                self.store.store(&next).await.map_err(Error::TokenStore)?;
                                token = next;
                            }
                        }
                        // The contract says this never happens while the
                        // service runs; a proxy may still do it.
                        Ok(None) => break tonic::Status::unavailable("the stream ended with OK"),
                        Err(status) => break status,
                    }
                },
            };
            if !Reconnect::retries(&ended) {
                return Err(Error::Status(ended));
            }
            let wait = waits.next().unwrap_or(self.reconnect.max);
            tracing::warn!(
                code = ?ended.code(),
                message = ended.message(),
                wait_ms = wait.as_millis(),
                "article-client: stream ended, reconnecting"
            );
            tokio::time::sleep(wait).await;
        }
    }
}
