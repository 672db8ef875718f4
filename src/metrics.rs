//! Prometheus metrics: recorded with the `metrics` facade, rendered by
//! `metrics-exporter-prometheus`, served as text at `/metrics` on
//! `METRICS_ADDR`.
//!
//! The series are the constants below; `describe` gives each its `# HELP`
//! line, and README.md ("Operations", Metrics) lists them for operators.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const CALLS: &str = "grpc_server_handled_total";
pub const CALL_SECONDS: &str = "grpc_server_handling_seconds";
pub const OPEN_STREAMS: &str = "article_feed_open_streams";
pub const LISTENER_RECONNECTS: &str = "article_feed_listener_reconnects_total";
pub const FEED_LISTENING: &str = "article_feed_listening";
pub const FEED_HEAD: &str = "article_feed_head_position";
pub const FEED_DELIVERED: &str = "article_feed_delivered_position";
pub const POOL_CONNECTIONS: &str = "article_db_pool_connections";
pub const POOL_MAX: &str = "article_db_pool_max_connections";
pub const FEED_LAG: &str = "article_feed_lag_positions";
pub const POOL_ACQUIRE_SECONDS: &str = "article_db_pool_acquire_seconds";
pub const POOL_WAITING: &str = "article_db_pool_waiting";
pub const POOL_ACQUIRE_TIMEOUTS: &str = "article_db_pool_acquire_timeouts_total";
pub const READ_FALLBACKS: &str = "article_db_read_fallbacks_total";
pub const CACHE_LOOKUPS: &str = "article_cache_lookups_total";
pub const CACHE_SIZE_BYTES: &str = "article_cache_size_bytes";
pub const LOOKUP_BATCH_SIZE: &str = "article_db_lookup_batch_size";
pub const RELEASES: &str = "article_releases_total";
pub const RELEASES_PENDING: &str = "article_releases_pending";
pub const WITHDRAWALS: &str = "article_withdrawals_total";
pub const FEED_BUFFER_BYTES: &str = "article_feed_buffer_bytes";
pub const SERVING: &str = "article_serving";
pub const ACCEPT_ERRORS: &str = "article_accept_errors_total";
pub const CONNECTIONS_TIMED_OUT: &str = "article_connections_timed_out_total";

/// Latency buckets, in seconds: sub-millisecond reads to multi-second
/// timeouts.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Connection wait buckets, in seconds: an idle connection takes
/// microseconds, a new one milliseconds, a busy pool up to the acquire
/// timeout (3 s by default).
const ACQUIRE_BUCKETS: &[f64] = &[
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Articles per batched GetArticle statement (`store::lookups`): 1 while
/// the database keeps up, more while every statement slot is busy.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Installs the process's recorder. Once per process; a second call (tests
/// that build two servers in one process) reuses nothing and fails, which
/// callers may ignore.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(CALL_SECONDS.to_owned()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(POOL_ACQUIRE_SECONDS.to_owned()),
            ACQUIRE_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Full(LOOKUP_BATCH_SIZE.to_owned()), BATCH_BUCKETS)?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    describe();
    metrics::gauge!("article_service_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

/// The `# HELP` lines.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        FEED_BUFFER_BYTES,
        "Bytes of encoded changes the live broadcast holds for streams (at most FEED_BUFFER_BYTES, or the newest change alone)."
    );
    describe_counter!(CALLS, "gRPC calls finished, by method and status code.");
    describe_counter!(
        ACCEPT_ERRORS,
        "Failed accepts of client connections, by reason (descriptors: the process or system is \
         out of file descriptors; other)."
    );
    describe_counter!(
        CONNECTIONS_TIMED_OUT,
        "Client connections closed for a timeout, by reason (handshake, idle, stalled)."
    );
    describe_counter!(
        CACHE_LOOKUPS,
        "Read cache lookups, by kind (article, first_page) and result (hit, miss)."
    );
    describe_gauge!(
        CACHE_SIZE_BYTES,
        "Bytes of encoded messages in the read cache, by kind (article, first_page)."
    );
    describe_histogram!(
        CALL_SECONDS,
        metrics::Unit::Seconds,
        "gRPC call latency (a stream's whole life)."
    );
    describe_counter!(
        RELEASES,
        "Embargoed articles this replica released (made public at their published_at)."
    );
    describe_gauge!(
        RELEASES_PENDING,
        "SCHEDULED articles stored, waiting for their published_at (as this replica last read)."
    );
    describe_counter!(
        WITHDRAWALS,
        "Articles this replica withdrew (WithdrawArticle calls that changed something)."
    );
    describe_gauge!(
        OPEN_STREAMS,
        "Feed streams (StreamNewArticles and StreamArticleChanges) open now."
    );
    describe_gauge!(
        FEED_LISTENING,
        "1 while the feed's LISTEN connection is up, else 0 (streams then get nothing new and the read cache serves nothing)."
    );
    describe_counter!(
        LISTENER_RECONNECTS,
        "Times the feed's LISTEN connection was re-established after it was lost."
    );
    describe_gauge!(
        FEED_HEAD,
        "Newest stored feed position this process knows of (read by its listener, or \
         announced by a notification)."
    );
    describe_gauge!(
        FEED_DELIVERED,
        "Newest feed position this process's listener has broadcast to its streams."
    );
    describe_gauge!(
        FEED_LAG,
        "Feed lag of this process: newest stored feed position minus the newest one it \
         has broadcast to its streams (0 when every stored article went out)."
    );
    describe_gauge!(
        POOL_CONNECTIONS,
        "Database connections of a pool, in use or idle."
    );
    describe_gauge!(POOL_MAX, "Size limit of a database pool.");
    describe_histogram!(
        POOL_ACQUIRE_SECONDS,
        metrics::Unit::Seconds,
        "Time a store operation waited for a pooled database connection."
    );
    describe_gauge!(
        POOL_WAITING,
        "Store operations waiting for a pooled database connection now."
    );
    describe_counter!(
        POOL_ACQUIRE_TIMEOUTS,
        "Waits for a pooled database connection that timed out (the call got UNAVAILABLE)."
    );
    describe_counter!(
        READ_FALLBACKS,
        "Reads sent to the primary because the read database had not replayed a change this process knows of."
    );
    describe_histogram!(
        LOOKUP_BATCH_SIZE,
        "Articles asked for per GetArticle database statement (batched while the database is busy)."
    );
    describe_gauge!(
        SERVING,
        "1 while this process's gRPC health is SERVING (the database answers), else 0."
    );
    describe_gauge!(
        "article_service_build_info",
        "Always 1; the version as a label."
    );
}

/// Binds `addr` (port 0 picks one) and serves `/metrics` until `stop`.
///
/// Not the exporter's own listener (`with_http_listener`): it does not say
/// which port it bound (tests ask for port 0 and read it from the log), and
/// it answers every path with the metrics rather than 404.
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let mut upkeep = tokio::time::interval(Duration::from_secs(5));
        loop {
            let (stream, _) = tokio::select! {
                () = stop.cancelled() => return,
                _ = upkeep.tick() => {
                    handle.run_upkeep();
                    continue;
                }
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "metrics listener cannot accept");
                        // Out of descriptors, accept fails at once until one
                        // is free: wait rather than spin.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let handle = handle.clone();
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let handle = handle.clone();
                    async move { Ok::<_, Infallible>(respond(&request, &handle)) }
                });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(bound)
}

fn respond(
    request: &Request<hyper::body::Incoming>,
    handle: &PrometheusHandle,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = if request.uri().path() == "/metrics" {
        (StatusCode::OK, "text/plain; version=0.0.4", handle.render())
    } else {
        (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics\n".to_owned(),
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
