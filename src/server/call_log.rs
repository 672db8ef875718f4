//! One log line per call: RPC method, gRPC status code, duration and request
//! id (the caller's `x-request-id`, or a new one, echoed in the response).
//!
//! A tower layer rather than code in each handler, so that every call is
//! logged the same way, including those tonic answers itself (unknown
//! methods, undecodable requests). A gRPC status arrives either in the
//! response headers (errors without a body) or in the trailers after the
//! body; a call that ends without either (the client went away while its
//! handler still ran, or mid-stream; tonic's own timeout dropped it) is
//! logged as CANCELLED when its record is dropped.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use metrics::SharedString;
use tonic::Code;
use tower::{Layer, Service};

use super::methods::is_offered;

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
        let method = request.uri().path().to_owned();
        let span = call_span(&method, &request_id);
        let call = Call {
            method,
            request_id: request_id.clone(),
            started: Instant::now(),
            logged: false,
            span: span.clone(),
        };
        let response = span.in_scope(|| self.inner.call(request));
        let response = tracing::Instrument::instrument(response, span);
        Box::pin(async move {
            let mut response = response.await?;
            response
                .headers_mut()
                .insert(REQUEST_ID, never_indexed(request_id));
            let mut call = call;
            if let Some(code) = grpc_code(response.headers()) {
                call.finish(code); // an error without a body
            }
            Ok(response.map(|body| LoggedBody { body, call }))
        })
    }
}

/// A random (v4) UUID from the thread's generator: `Uuid::new_v4` asks the
/// kernel for every one, a system call a call.
fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .simple()
        .to_string();
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The id as HPACK should send it: literally, never indexed. An id is not
/// seen twice on a connection, so indexing it only churns both ends'
/// tables: each response's id inserted, older ones evicted, and each new id
/// compared with every id still in the table (5.6% of the service's CPU
/// under the Zipf reads, BENCHMARKS.md).
fn never_indexed(mut request_id: HeaderValue) -> HeaderValue {
    request_id.set_sensitive(true);
    request_id
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
    /// The call's trace span ([`call_span`]); ends when the call does.
    span: tracing::Span,
}

/// A span for the whole call (for a stream, its whole life), with the
/// OpenTelemetry RPC attributes and the request id; exported when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set, not even created otherwise.
fn call_span(path: &str, request_id: &HeaderValue) -> tracing::Span {
    if !crate::telemetry::exporting() {
        return tracing::Span::none();
    }
    let name = path.trim_start_matches('/');
    let (service, method) = name.split_once('/').unwrap_or(("", name));
    tracing::info_span!(
        "rpc",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = tracing::field::Empty,
        request_id = request_id.to_str().unwrap_or_default(),
    )
}

impl Call {
    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.logged, true) {
            return;
        }
        self.end_span(code);
        let elapsed = self.started.elapsed().as_secs_f64();
        let method = metric_label(&self.method);
        metrics::counter!(crate::metrics::CALLS, "grpc_method" => method.clone(), "grpc_code" => code_name(code))
            .increment(1);
        metrics::histogram!(crate::metrics::CALL_SECONDS, "grpc_method" => method).record(elapsed);
        let duration_ms = elapsed * 1000.0;
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

impl Drop for Call {
    fn drop(&mut self) {
        // Never finished: the call was dropped before its status was known.
        self.finish(Code::Cancelled);
    }
}

impl Call {
    /// Records the outcome and ends the span. Errors are the server-side
    /// codes of the OpenTelemetry RPC conventions (a NOT_FOUND is an answer).
    fn end_span(&mut self, code: Code) {
        let span = std::mem::replace(&mut self.span, tracing::Span::none());
        span.record("rpc.grpc.status_code", code as i64);
        if matches!(
            code,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        ) {
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// The method as a metric label: the methods this server offers by name,
/// anything else (a client may send any path) as one value, so a client
/// cannot create series at will.
fn metric_label(path: &str) -> SharedString {
    if is_offered(path) {
        SharedString::from(path.trim_start_matches('/').to_owned())
    } else {
        SharedString::const_str("other")
    }
}

/// The canonical name of a status code, as gRPC's other servers label it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

pin_project_lite::pin_project! {
    /// The response body, watched for the trailers that carry the status
    /// (dropped before them, its `Call` logs CANCELLED).
    pub struct LoggedBody<B> {
        #[pin]
        body: B,
        call: Call,
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

#[cfg(test)]
mod tests {
    use super::{never_indexed, new_request_id};

    #[test]
    fn an_echoed_id_keeps_its_value_and_is_never_indexed() {
        let id = new_request_id();
        let echoed = never_indexed(id.clone());
        assert!(echoed.is_sensitive());
        assert_eq!(echoed.as_bytes(), id.as_bytes());
    }

    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let first = new_request_id();
        let second = new_request_id();
        assert_ne!(first, second);
        for id in [first, second] {
            let id = uuid::Uuid::try_parse(id.to_str().unwrap_or_default()).unwrap_or_default();
            assert_eq!(id.get_version(), Some(uuid::Version::Random));
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        }
    }
}
