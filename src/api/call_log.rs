//! One log line per call: RPC method, gRPC status code, duration and request
//! id (the caller's `x-request-id`, or a new one, echoed in the response).
//!
//! A tower layer rather than code in each handler, so that every call is
//! logged the same way, including those tonic answers itself (unknown
//! methods, undecodable requests). A gRPC status arrives either in the
//! response headers (errors without a body) or in the trailers after the
//! body; a stream the client abandons is logged as CANCELLED when its body is
//! dropped.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tonic::Code;
use tower::{Layer, Service};

const REQUEST_ID: &str = "x-request-id";

/// Adds [`CallLog`] to a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallLogLayer;

impl<S> Layer<S> for CallLogLayer {
    type Service = CallLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLog { inner }
    }
}

#[derive(Debug, Clone)]
pub struct CallLog<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CallLog<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body,
{
    type Response = Response<LoggedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let request_id = request
            .headers()
            .get(REQUEST_ID)
            .filter(|value| value.len() <= 128 && value.to_str().is_ok())
            .cloned()
            .unwrap_or_else(new_request_id);
        request.headers_mut().insert(REQUEST_ID, request_id.clone());
        let call = Call {
            method: request.uri().path().to_owned(),
            request_id: request_id.clone(),
            started: Instant::now(),
            logged: false,
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            response.headers_mut().insert(REQUEST_ID, request_id);
            let mut call = call;
            if let Some(code) = grpc_code(response.headers()) {
                call.finish(code); // an error without a body
            }
            Ok(response.map(|body| LoggedBody { body, call }))
        })
    }
}

fn new_request_id() -> HeaderValue {
    let id = uuid::Uuid::new_v4().simple().to_string();
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn grpc_code(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Some(Code::from_i32(value.parse().ok()?))
}

struct Call {
    method: String,
    request_id: HeaderValue,
    started: Instant,
    logged: bool,
}

impl Call {
    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.logged, true) {
            return;
        }
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let request_id = self.request_id.to_str().unwrap_or_default();
        match code {
            Code::Ok | Code::NotFound | Code::Cancelled => tracing::info!(
                rpc.method = %self.method, grpc.code = code as i32, grpc.status = ?code,
                duration_ms, request_id, "call finished"
            ),
            Code::Internal | Code::Unknown | Code::DataLoss => tracing::error!(
                rpc.method = %self.method, grpc.code = code as i32, grpc.status = ?code,
                duration_ms, request_id, "call failed"
            ),
            _ => tracing::warn!(
                rpc.method = %self.method, grpc.code = code as i32, grpc.status = ?code,
                duration_ms, request_id, "call failed"
            ),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response body, watched for the trailers that carry the status.
    pub struct LoggedBody<B> {
        #[pin]
        body: B,
        call: Call,
    }

    impl<B> PinnedDrop for LoggedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before its trailers: the client went away.
            this.project().call.finish(Code::Cancelled);
        }
    }
}

impl<B: Body> Body for LoggedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_code) {
                    this.call.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.call.finish(Code::Internal),
            Poll::Ready(None) => this.call.finish(Code::Ok),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
