//! Health Watch and reflection streams end with UNAVAILABLE at shutdown, as
//! the feed streams do: the contract says open streams end so, and a stream
//! left open (a debugging session's reflection stream) would hold the
//! graceful shutdown until its grace period is over.
//!
//! The services themselves (tonic-health, tonic-reflection) have no way to
//! end their streams with a status, so their response bodies are wrapped:
//! once the server is stopping, a body sends what its service has ready
//! (a Watch its NOT_SERVING), then UNAVAILABLE trailers.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::body::Body;
use tonic::server::NamedService;
use tower::Service;

use super::bodies::trailers;
use crate::error::Error;

/// `inner`, whose streams end with UNAVAILABLE once `stopping` is cancelled.
#[derive(Clone)]
pub struct EndsOnShutdown<S> {
    inner: S,
    stopping: CancellationToken,
}

impl<S> EndsOnShutdown<S> {
    pub fn new(inner: S, stopping: CancellationToken) -> Self {
        Self { inner, stopping }
    }
}

impl<S: NamedService> NamedService for EndsOnShutdown<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<Request<Body>> for EndsOnShutdown<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let stopped = self.stopping.clone().cancelled_owned();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| {
                Body::new(EndingBody {
                    body,
                    stopped: Box::pin(stopped),
                    ended: false,
                })
            }))
        })
    }
}

pin_project_lite::pin_project! {
    struct EndingBody {
        #[pin]
        body: Body,
        stopped: Pin<Box<WaitForCancellationFutureOwned>>,
        ended: bool,
    }
}

impl HttpBody for EndingBody {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        // What the service has ready goes first, its own end included.
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.stopped.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        *this.ended = true;
        let status = tonic::Status::from(Error::Unavailable("the server is shutting down".into()));
        Poll::Ready(Some(Ok(Frame::trailers(trailers(&status)))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
