//! StreamNewArticles and StreamArticleChanges, sent as the feed frames them.
//!
//! tonic encodes each message of a stream into a buffer of the call's own:
//! for a change broadcast to 10,000 streams that is 10,000 copies, and a
//! client that stops reading keeps its copy in the HTTP/2 send buffer (a
//! megabyte for a large article; a thousand stalled streams held 2 GB). The
//! feed frames each change once (`wire::frame`), so this layer answers the
//! two streaming methods itself and hands those frames to HTTP/2 as they
//! are: every stream sends the same bytes, and a stalled one pins the shared
//! frame. The request is decoded, and the status sent, as tonic does; a
//! compressed request, or a client to compress responses for
//! (`RESPONSE_COMPRESSION=gzip`), is left to tonic's own implementation of
//! the same methods (`api::service`), which copies.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use futures::future::Either;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use http_body::Frame;
use prost::bytes::Bytes;
use tonic::Status;
use tonic::body::Body;
use tonic::codec::Streaming;
use tonic::metadata::MetadataMap;
use tonic_prost::ProstDecoder;
use tower::{Layer, Service};

use super::admission::connection_load;
use super::bodies::trailers;
use crate::api::{ArticleApi, ConnectionLoad, FramedStream};
use crate::error::Error;
use crate::proto::{StreamArticleChangesRequest, StreamNewArticlesRequest};

use super::methods::{
    STREAM_ARTICLE_CHANGES_PATH as CHANGES, STREAM_NEW_ARTICLES_PATH as NEW_ARTICLES,
};

#[derive(Clone)]
pub struct FeedStreamsLayer {
    api: ArticleApi,
    max_message_bytes: usize,
    /// `RESPONSE_COMPRESSION=gzip`: a client that accepts gzip gets tonic's
    /// path, which compresses.
    compress_responses: bool,
}

impl FeedStreamsLayer {
    pub fn new(api: ArticleApi, max_message_bytes: usize, compress_responses: bool) -> Self {
        Self {
            api,
            max_message_bytes,
            compress_responses,
        }
    }
}

impl<S> Layer<S> for FeedStreamsLayer {
    type Service = FeedStreams<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FeedStreams {
            inner,
            api: self.api.clone(),
            max_message_bytes: self.max_message_bytes,
            compress_responses: self.compress_responses,
        }
    }
}

#[derive(Clone)]
pub struct FeedStreams<S> {
    inner: S,
    api: ArticleApi,
    max_message_bytes: usize,
    compress_responses: bool,
}

#[derive(Clone, Copy)]
enum Method {
    NewArticles,
    Changes,
}

type Served<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

impl<S, ReqBody> Service<Request<ReqBody>> for FeedStreams<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>>,
    S::Error: Send + 'static,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Error: Into<tonic::codegen::StdError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Served<S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let Some(method) = framed_method(&request, self.compress_responses) else {
            return Either::Left(self.inner.call(request));
        };
        let api = self.api.clone();
        let max_message_bytes = self.max_message_bytes;
        Either::Right(Box::pin(async move {
            Ok(serve(api, method, request, max_message_bytes).await)
        }))
    }
}

/// The streaming method this layer serves, if `request` is a plain gRPC
/// call of one whose responses go uncompressed.
fn framed_method<B>(request: &Request<B>, compress_responses: bool) -> Option<Method> {
    let method = match request.uri().path() {
        NEW_ARTICLES => Method::NewArticles,
        CHANGES => Method::Changes,
        _ => return None,
    };
    is_plain_grpc(request, compress_responses).then_some(method)
}

/// A gRPC call (POST, gRPC content type) whose request is not compressed
/// and whose responses are not to be (`compress_responses`: the server
/// compresses for clients that accept gzip): one the layers that send
/// framed bytes themselves may answer.
pub(super) fn is_plain_grpc<B>(request: &Request<B>, compress_responses: bool) -> bool {
    let headers = request.headers();
    let grpc = headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| value == "application/grpc" || value == "application/grpc+proto");
    let uncompressed = headers
        .get("grpc-encoding")
        .is_none_or(|value| value == "identity");
    let compressed_responses = compress_responses
        && headers
            .get_all("grpc-accept-encoding")
            .iter()
            .any(|value| value.to_str().is_ok_and(|value| value.contains("gzip")));
    request.method() == http::Method::POST && grpc && uncompressed && !compressed_responses
}

async fn serve<B>(
    api: ArticleApi,
    method: Method,
    request: Request<B>,
    max_message_bytes: usize,
) -> Response<Body>
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    let load = connection_load(&request);
    let opened = match method {
        Method::NewArticles => {
            let request = decode::<StreamNewArticlesRequest, _>(request, max_message_bytes).await;
            match request {
                Ok(request) => api.open_new_articles_stream(request).await,
                Err(status) => Err(status),
            }
        }
        Method::Changes => {
            let request =
                decode::<StreamArticleChangesRequest, _>(request, max_message_bytes).await;
            match request {
                Ok(request) => api.open_changes_stream(request).await,
                Err(status) => Err(status),
            }
        }
    };
    match opened {
        Ok(stream) => {
            let mut response = Response::new(Body::new(FramedBody {
                stream,
                finished: false,
                load,
                waiting: false,
            }));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            response
        }
        Err(status) => status.into_http(),
    }
}

/// The request with its one message, decoded as tonic decodes it (size
/// limit included).
async fn decode<M, B>(
    request: Request<B>,
    max_message_bytes: usize,
) -> Result<tonic::Request<M>, Status>
where
    M: prost::Message + Default + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    let (parts, body) = request.into_parts();
    let mut messages = Streaming::new_request(
        ProstDecoder::<M>::default(),
        body,
        None,
        Some(max_message_bytes),
    );
    let message = messages
        .message()
        .await?
        .ok_or_else(|| Status::from(Error::Internal("the request carries no message".into())))?;
    Ok(tonic::Request::from_parts(
        MetadataMap::from_headers(parts.headers),
        parts.extensions,
        message,
    ))
}

/// The stream's frames as the response body, then its status as trailers.
///
/// hyper asks for the next frame only once HTTP/2 has room for more of
/// this stream: from handing a frame over until the next ask, the stream
/// counts as waiting on its connection (`ConnectionLoad::streams_waiting`),
/// and each ask as progress. A connection that holds a waiting stream
/// without progress for `RESPONSE_STALL_TIMEOUT` is closed (`connection`):
/// hyper can end a stream whose client stopped reading no other way, and
/// its consumer resumes from its last token.
struct FramedBody {
    stream: FramedStream,
    finished: bool,
    load: Option<ConnectionLoad>,
    /// A frame was handed over and not followed by an ask yet.
    waiting: bool,
}

impl FramedBody {
    fn asked(&mut self) {
        if std::mem::take(&mut self.waiting)
            && let Some(load) = &self.load
        {
            load.streams_waiting.fetch_sub(1, Ordering::AcqRel);
            load.progress.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn handed_over(&mut self) {
        if let Some(load) = &self.load {
            self.waiting = true;
            load.streams_waiting.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl Drop for FramedBody {
    fn drop(&mut self) {
        if self.waiting
            && let Some(load) = &self.load
        {
            load.streams_waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl http_body::Body for FramedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.asked();
        if self.finished {
            return Poll::Ready(None);
        }
        let status = match ready!(self.stream.as_mut().poll_next(cx)) {
            Some(Ok(framed)) => {
                self.handed_over();
                return Poll::Ready(Some(Ok(Frame::data(framed))));
            }
            Some(Err(status)) => status,
            None => Status::ok(""),
        };
        self.finished = true;
        Poll::Ready(Some(Ok(Frame::trailers(trailers(&status)))))
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }
}
