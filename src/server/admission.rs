//! Admission: what one call may take of the server, per instance and per
//! connection, checked before any work; past a limit the call is answered
//! RESOURCE_EXHAUSTED at once, and the server serves normally again as soon
//! as the burst is over.
//!
//! - Unary calls: at most `MAX_INFLIGHT_CALLS` in the instance and
//!   `MAX_CALLS_PER_CONNECTION` on one connection, counted from their
//!   headers (a call whose request message has not arrived counts) until the
//!   last byte of their response is handed to the connection.
//! - Streams (both feed streams, health Watch, reflection): at most
//!   `MAX_STREAMS` in the instance and `MAX_STREAMS_PER_CONNECTION` on one
//!   connection, counted until they end. The feed also counts its own
//!   streams against `MAX_STREAMS`.
//! - Request messages: PublishArticle's credentials are checked before its
//!   request is read; a message larger than `MAX_MESSAGE_BYTES` is refused
//!   from its length prefix, and all messages being received at once share
//!   `MAX_REQUEST_BYTES` (`bodies::MessageBytes`).
//! - Health Check calls are not counted: they are answered from memory,
//!   and a replica at its limits is busy, not unready.
//! - A request message must start to arrive within
//!   `REQUEST_MESSAGE_TIMEOUT_MS` of its headers (`bodies::RequestBody`).
//! - Unary responses not yet written are bounded in bytes per connection and
//!   in total (`bodies::Held`).
//!
//! Not tower's `GlobalConcurrencyLimitLayer` + `LoadShedLayer`: they count
//! every call in one pool, and a stream that never ends would hold its
//! permit for good.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tower::{Layer, Service};

use super::bodies::{ByteBudget, Held, MessageBytes, RequestBody};
use super::methods::{PUBLISH_ARTICLE_PATH, is_health_check, is_long_lived};
use super::slot::Slot;
use crate::api::{ConnectionInfo, ConnectionLoad, PublishAuth, deadline};
use crate::error::Error;

/// Every limit of admission, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub inflight_calls: usize,
    pub calls_per_connection: usize,
    pub streams: usize,
    pub streams_per_connection: usize,
    pub unsent_bytes: usize,
    pub unsent_bytes_per_connection: usize,
    /// Bytes of request messages being received (`MAX_REQUEST_BYTES`).
    pub request_bytes: usize,
    /// The largest request message (`MAX_MESSAGE_BYTES`).
    pub largest_message: usize,
    pub request_message_timeout: Duration,
}

/// The instance's counters, shared by every connection.
#[derive(Debug, Default)]
struct Instance {
    calls: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
    unsent_bytes: Arc<AtomicUsize>,
}

#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    limits: Limits,
    instance: Arc<Instance>,
    /// Bytes of request messages being received, as permits.
    request_bytes: Arc<Semaphore>,
    auth: PublishAuth,
}

impl AdmissionLayer {
    /// `auth`: PublishArticle's credentials are checked before its request
    /// is read, so that only a publisher can make the server take in a
    /// large message.
    pub fn new(limits: Limits, auth: PublishAuth) -> Self {
        Self {
            request_bytes: Arc::new(Semaphore::new(
                limits.request_bytes.min(Semaphore::MAX_PERMITS),
            )),
            limits,
            instance: Arc::default(),
            auth,
        }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            limits: self.limits,
            instance: self.instance.clone(),
            request_bytes: self.request_bytes.clone(),
            auth: self.auth.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Admission<S> {
    inner: S,
    limits: Limits,
    instance: Arc<Instance>,
    request_bytes: Arc<Semaphore>,
    auth: PublishAuth,
}

impl<S> Admission<S> {
    /// The slots a call takes, or why it is refused.
    fn admit(&self, long_lived: bool, load: &ConnectionLoad) -> Result<Vec<Slot>, &'static str> {
        let limits = &self.limits;
        let (instance, connection, instance_limit, connection_limit) = if long_lived {
            (
                &self.instance.streams,
                &load.streams,
                limits.streams,
                limits.streams_per_connection,
            )
        } else {
            (
                &self.instance.calls,
                &load.calls,
                limits.inflight_calls,
                limits.calls_per_connection,
            )
        };
        // The connection's own limit first: a connection past it must not
        // take (even for a moment) what other connections could use.
        let connection = Slot::take(connection, 1, connection_limit).ok_or(if long_lived {
            "this connection has as many streams open as the server allows one connection"
        } else {
            "this connection has as many calls in flight as the server allows one connection"
        })?;
        let instance = Slot::take(instance, 1, instance_limit).ok_or(if long_lived {
            "the server has as many streams open as it allows"
        } else {
            "the server is at its limit of calls in flight"
        })?;
        load.started.fetch_add(1, Ordering::AcqRel);
        Ok(vec![connection, instance])
    }
}

/// DEADLINE_EXCEEDED for a call whose caller's deadline is too short for
/// any work (see `api::deadline::EXPIRED_BELOW`).
fn expired(request: &Request<Body>) -> Option<tonic::Status> {
    let deadline = request
        .headers()
        .get("grpc-timeout")
        .and_then(|value| value.to_str().ok())
        .and_then(deadline::parse_grpc_timeout)?;
    (deadline < deadline::EXPIRED_BELOW).then(|| {
        tonic::Status::from(Error::DeadlineExceeded(format!(
            "the call's deadline of {deadline:?} expired before it could start"
        )))
    })
}

/// The connection a request came over (plaintext or TLS).
pub(super) fn connection_load<B>(request: &Request<B>) -> Option<ConnectionLoad> {
    ConnectionInfo::of(request.extensions()).map(|info| info.load.clone())
}

impl<S> Service<Request<Body>> for Admission<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if let Some(status) = expired(&request) {
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
        let path = request.uri().path();
        if is_health_check(path) {
            return Box::pin(self.inner.call(request));
        }
        if path == PUBLISH_ARTICLE_PATH
            && let Err(error) = self.auth.check_headers(request.headers())
        {
            return Box::pin(std::future::ready(Ok(
                tonic::Status::from(error).into_http()
            )));
        }
        let long_lived = is_long_lived(path);
        // Every accepted connection carries its load; a request without one
        // (none today) is counted against a load of its own.
        let load = connection_load(&request).unwrap_or_default();
        let slots = match self.admit(long_lived, &load) {
            Ok(slots) => slots,
            Err(why) => {
                let status = tonic::Status::from(Error::ResourceExhausted(format!(
                    "{why}; retry with backoff"
                )));
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        };
        let timeout = self.limits.request_message_timeout;
        let max_message = self.limits.largest_message;
        let request_bytes = self.request_bytes.clone();
        let request = request.map(|body| {
            let bytes = MessageBytes::new(max_message, request_bytes);
            Body::new(RequestBody::new(body, timeout, bytes))
        });
        // Streams' bytes are the feed's to bound; unary responses are
        // bounded here.
        let budget = (!long_lived).then(|| ByteBudget {
            connection: load.unsent_bytes.clone(),
            connection_limit: self.limits.unsent_bytes_per_connection,
            instance: self.instance.unsent_bytes.clone(),
            instance_limit: self.limits.unsent_bytes,
            progress: load.progress.clone(),
        });
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            // The slots go with the body: released when its last byte has
            // been handed to the connection, or the call dropped.
            Ok(response.map(|body| Body::new(Held::new(body, slots, budget))))
        })
    }
}
