//! `ceiling`: the gRPC ceiling reference. A bare tonic server of the
//! ArticleService protocol whose GetArticle returns one fixed article from
//! memory (same size as the corpus's: ~4 KB body, three tags) and whose
//! ListArticlesByTag returns a fixed page of 20 of them; every other method
//! is UNIMPLEMENTED. Nothing real can answer faster through tonic on this
//! machine: no database, no cache lookup, only decoding the request and
//! encoding the response (with prost, on every call, as any tonic server
//! does) over HTTP/2.
//!
//! It routes by path to tonic's own `server::Grpc` with the prost codec,
//! rather than implementing the service's generated server trait: that trait
//! is shaped by the service's build (pre-encoded response types), and the
//! ceiling must stay the plain tonic path whatever the service does.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use article_service::proto::{
    Article, GetArticleRequest, GetArticleResponse, ListArticlesByTagRequest,
    ListArticlesByTagResponse, Tag,
};
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use crate::corpus::tag_name;
use crate::reads::body;

pub async fn ceiling(addr: &str) -> anyhow::Result<()> {
    let addr = addr.parse()?;
    let service = Ceiling::new();
    eprintln!("ceiling: serving on {addr}");
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_shutdown(addr, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// A corpus-like article: tags and field sizes as `corpus` makes them.
fn article(n: u32) -> Article {
    let tags = [0, 7, 311]
        .iter()
        .map(|&rank| {
            let name = tag_name(rank);
            Tag {
                slug: name.to_lowercase().replace(' ', "-"),
                name,
            }
        })
        .collect();
    let seconds = 1_700_000_000 + i64::from(n) * 3_600;
    Article {
        id: format!("0193a7d2-5c1e-7f3a-9b1c-{:012x}", n),
        slug: format!("government-talks-over-energy-prices-and-the-border-{n}"),
        title: format!("Government talks over energy prices and the border {n}"),
        summary: format!("Summary of article {n}."),
        body: body(4_000),
        byline: format!("Desk {}", n % 50),
        tags,
        published_at: Some(prost_types::Timestamp {
            seconds,
            nanos: 123_456_000,
        }),
        updated_at: Some(prost_types::Timestamp {
            seconds: seconds + 60,
            nanos: 654_321_000,
        }),
        revision: 1,
        state: article_service::proto::ArticleState::Published as i32,
    }
}

#[derive(Clone)]
struct Ceiling {
    article: Arc<GetArticleResponse>,
    page: Arc<ListArticlesByTagResponse>,
}

impl Ceiling {
    fn new() -> Self {
        Self {
            article: Arc::new(GetArticleResponse {
                article: Some(article(1)),
            }),
            page: Arc::new(ListArticlesByTagResponse {
                articles: (1..=20).map(article).collect(),
                // Non-empty, so that the driver can "follow" pages to any depth.
                next_page_token: "ceiling-next-page-token-of-a-realistic-length-0123456789".into(),
                ..Default::default()
            }),
        }
    }
}

impl NamedService for Ceiling {
    const NAME: &'static str = "newsroom.content.v1.ArticleService";
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// Answers every request of type `Req` with a clone of one response.
struct Fixed<T>(Arc<T>);

impl<Req, T: Clone + Send + Sync + 'static> UnaryService<Req> for Fixed<T> {
    type Response = T;
    type Future = BoxFuture<Response<T>, Status>;

    fn call(&mut self, _request: Request<Req>) -> Self::Future {
        let response = T::clone(&self.0);
        Box::pin(async move { Ok(Response::new(response)) })
    }
}

impl<B> tower::Service<http::Request<B>> for Ceiling
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let this = self.clone();
        match request.uri().path() {
            "/newsroom.content.v1.ArticleService/GetArticle" => Box::pin(async move {
                let mut grpc =
                    Grpc::new(ProstCodec::<GetArticleResponse, GetArticleRequest>::default());
                Ok(grpc.unary(Fixed(this.article), request).await)
            }),
            "/newsroom.content.v1.ArticleService/ListArticlesByTag" => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<
                    ListArticlesByTagResponse,
                    ListArticlesByTagRequest,
                >::default());
                Ok(grpc.unary(Fixed(this.page), request).await)
            }),
            _ => Box::pin(async move {
                Ok(
                    Status::unimplemented("the ceiling serves GetArticle and ListArticlesByTag")
                        .into_http(),
                )
            }),
        }
    }
}
