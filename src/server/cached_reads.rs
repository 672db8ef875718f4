//! GetArticle answered from the cache with the cache's own bytes.
//!
//! The cache keeps each article framed as a whole GetArticle response
//! (`wire::frame_article_response`). Through tonic, a hit is decoded by its
//! codec, routed, and encoded again: the article copied into a buffer of
//! the call's own (a megabyte for a large article, per call). This layer
//! reads the request's one message itself and, for a public read the cache
//! can answer, sends the cached frame as it is: every call shares the one
//! allocation. Anything else (a miss, preview, a compressed or malformed
//! request, a client to compress responses for) goes to tonic with the bytes
//! already read put back in front of the rest, so its answers, errors
//! included, are tonic's.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::Either;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use prost::Message;
use prost::bytes::{Bytes, BytesMut};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use super::bodies::trailers;
use super::feed_streams::is_plain_grpc;
use crate::api::ArticleApi;
use crate::proto::GetArticleRequest;
use crate::wire::{FRAME_HEADER_LEN, frame_header};

use super::methods::GET_ARTICLE_PATH as GET_ARTICLE;

/// A GetArticle request is a key and a view: one larger than this is left
/// to tonic (and its message size limit) rather than read here.
const MAX_REQUEST_BYTES: usize = 16 * 1024;

#[derive(Clone)]
pub struct CachedReadsLayer {
    api: ArticleApi,
    compress_responses: bool,
}

impl CachedReadsLayer {
    pub fn new(api: ArticleApi, compress_responses: bool) -> Self {
        Self {
            api,
            compress_responses,
        }
    }
}

impl<S> Layer<S> for CachedReadsLayer {
    type Service = CachedReads<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CachedReads {
            inner,
            api: self.api.clone(),
            compress_responses: self.compress_responses,
        }
    }
}

#[derive(Clone)]
pub struct CachedReads<S> {
    inner: S,
    api: ArticleApi,
    compress_responses: bool,
}

type Served<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

impl<S> Service<Request<Body>> for CachedReads<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Served<S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if request.uri().path() != GET_ARTICLE || !is_plain_grpc(&request, self.compress_responses)
        {
            return Either::Left(self.inner.call(request));
        }
        // The service polled ready goes with this call; its clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let api = self.api.clone();
        Either::Right(Box::pin(async move {
            let (parts, mut body) = request.into_parts();
            let read = match first_message(&mut body).await {
                Ok(read) => read,
                Err(status) => return Ok(status.into_http()),
            };
            if let Some(frame) = read
                .message()
                .and_then(|message| GetArticleRequest::decode(message).ok())
                .and_then(|message| api.cached_article_frame(&parts.headers, &message))
            {
                return Ok(one_message(frame));
            }
            let body = Body::new(Replayed {
                read: Some(read.bytes.freeze()),
                after: read.after,
                rest: body,
            });
            inner.call(Request::from_parts(parts, body)).await
        }))
    }
}

/// What was read of a request body: its first message, if it came whole,
/// plain (not compressed) and small, and what followed it.
struct Read {
    bytes: BytesMut,
    /// A frame other than data, met before the message was whole.
    after: Option<Frame<Bytes>>,
}

impl Read {
    /// The message, if the bytes read hold a whole, uncompressed one.
    fn message(&self) -> Option<&[u8]> {
        let (0, len) = frame_header(&self.bytes)? else {
            return None;
        };
        let len = usize::try_from(len).ok()?;
        self.bytes.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len)
    }
}

/// The message length a frame's header declares.
fn declared_len(bytes: &[u8]) -> Option<usize> {
    usize::try_from(frame_header(bytes)?.1).ok()
}

/// Reads the body until its first message is whole, or it is known not to
/// be one this layer answers: larger than `MAX_REQUEST_BYTES`, the body
/// ended first, or a frame other than data came.
async fn first_message(body: &mut Body) -> Result<Read, Status> {
    let mut read = Read {
        bytes: BytesMut::new(),
        after: None,
    };
    loop {
        if let Some(len) = declared_len(&read.bytes)
            && (len > MAX_REQUEST_BYTES || read.bytes.len() >= FRAME_HEADER_LEN + len)
        {
            return Ok(read);
        }
        match body.frame().await {
            None => return Ok(read),
            Some(Err(status)) => return Err(status),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => read.bytes.extend_from_slice(&data),
                Err(frame) => {
                    read.after = Some(frame);
                    return Ok(read);
                }
            },
        }
    }
}

/// A unary response of one framed message, as tonic sends it.
fn one_message(frame: Bytes) -> Response<Body> {
    let frames = [
        Ok::<_, Status>(Frame::data(frame)),
        Ok(Frame::trailers(trailers(&Status::ok("")))),
    ];
    let mut response = Response::new(Body::new(StreamBody::new(futures::stream::iter(frames))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// A request body of which the first bytes were read already: them, then
/// the rest as it comes.
struct Replayed {
    read: Option<Bytes>,
    after: Option<Frame<Bytes>>,
    rest: Body,
}

impl http_body::Body for Replayed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(read) = self.read.take().filter(|read| !read.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(read))));
        }
        if let Some(after) = self.after.take() {
            return Poll::Ready(Some(Ok(after)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.read.as_ref().is_none_or(Bytes::is_empty)
            && self.after.is_none()
            && self.rest.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(flag: u8, message: &[u8]) -> BytesMut {
        let mut bytes = BytesMut::new();
        bytes.extend_from_slice(&[flag]);
        bytes.extend_from_slice(&(message.len() as u32).to_be_bytes());
        bytes.extend_from_slice(message);
        bytes
    }

    #[test]
    fn only_a_whole_uncompressed_message_is_read_as_one() {
        let read = |bytes| Read { bytes, after: None };
        assert_eq!(read(framed(0, b"key")).message(), Some(&b"key"[..]));
        assert_eq!(read(framed(0, b"")).message(), Some(&b""[..]));
        assert_eq!(read(framed(1, b"key")).message(), None);
        let mut cut = framed(0, b"key");
        cut.truncate(6);
        assert_eq!(read(cut).message(), None);
        assert_eq!(read(BytesMut::from(&[0, 0][..])).message(), None);
    }

    #[tokio::test]
    async fn what_was_read_is_put_back_in_front_of_the_rest() {
        let (mut sender, rest) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, Status>>(2);
        sender
            .try_send(Ok(Frame::data(Bytes::from_static(b"rest"))))
            .unwrap_or_default();
        drop(sender);
        let replayed = Replayed {
            read: Some(Bytes::from_static(b"read")),
            after: None,
            rest: Body::new(StreamBody::new(rest)),
        };
        let collected = replayed.collect().await.map(|body| body.to_bytes());
        assert_eq!(collected.ok(), Some(Bytes::from_static(b"readrest")));
    }
}
