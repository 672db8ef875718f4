//! Load shedding: at most `MAX_INFLIGHT_CALLS` unary calls run at once; past
//! that a call is answered RESOURCE_EXHAUSTED at once, before any work, and
//! the server serves normally again as soon as the burst is over. Streams are
//! not counted here: they are long-lived and have their own limit
//! (`MAX_STREAMS`, enforced by the feed).
//!
//! Not tower's `GlobalConcurrencyLimitLayer` + `LoadShedLayer`: they count
//! every call, and a stream that never ends would hold its permit for good.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tokio::sync::Semaphore;
use tower::{Layer, Service};

use super::methods::is_long_lived;

#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    permits: Arc<Semaphore>,
}

impl AdmissionLayer {
    pub fn new(max_inflight_calls: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_inflight_calls)),
        }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            permits: self.permits.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Admission<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Admission<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Calls that live as long as the client wants: never shed, never
        // counted.
        if is_long_lived(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let status = tonic::Status::from(crate::error::Error::ResourceExhausted(
                "the server is at its limit of calls in flight; retry with backoff".into(),
            ));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(permit);
            response
        })
    }
}
