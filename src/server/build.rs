//! The server itself: tonic's `Server` with our limits, TLS and layers, the
//! services (ours, health, reflection), and the accept loop.

use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::pb::health_server::HealthServer;

use super::accept::accepting;
use super::admission::{AdmissionLayer, Limits};
use super::cached_reads::CachedReadsLayer;
use super::call_log::CallLogLayer;
use super::connection::ConnectionTimeouts;
use super::ends_on_shutdown::EndsOnShutdown;
use super::feed_streams::FeedStreamsLayer;
use super::grpc_web;
use super::message_size::oversized_is_resource_exhausted;
use crate::api::ArticleApi;
use crate::config::{ResponseCompression, ServeConfig};
use crate::proto::article_service_server::ArticleServiceServer;

/// How long a client has to complete its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server, running on its own task.
pub struct Serving {
    pub task: JoinHandle<Result<(), tonic::transport::Error>>,
    /// Cancelled: no new connections or calls; in-flight calls may finish.
    pub stop: CancellationToken,
}

/// Serves `api`, health and reflection on `listener` from now on; health
/// and reflection streams end once `stopping` is cancelled (the feed's
/// streams end with the feed's own token).
pub fn serve(
    listener: TcpListener,
    config: &ServeConfig,
    api: ArticleApi,
    health: HealthServer<impl tonic_health::pb::health_server::Health>,
    stopping: CancellationToken,
) -> anyhow::Result<Serving> {
    anyhow::ensure!(
        config.max_request_bytes >= config.max_message_bytes,
        "MAX_REQUEST_BYTES ({}) is below MAX_MESSAGE_BYTES ({}): the largest article could never be received",
        config.max_request_bytes,
        config.max_message_bytes
    );
    // Old grpcurl speaks only v1alpha; newer clients ask for v1.
    let reflection_v1 = EndsOnShutdown::new(reflection().build_v1()?, stopping.clone());
    let reflection_v1alpha = EndsOnShutdown::new(reflection().build_v1alpha()?, stopping.clone());
    let health = EndsOnShutdown::new(health, stopping);

    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)));
    let addr = incoming.local_addr()?;
    let incoming = accepting(incoming, connection_timeouts(config));

    let stop = CancellationToken::new();
    let max_message_bytes = usize::try_from(config.max_message_bytes).unwrap_or(usize::MAX);
    let server = hardened(Server::builder(), config)?
        .http2_keepalive_interval(Some(Duration::from_secs(config.http2_keepalive_interval)))
        .http2_keepalive_timeout(Some(Duration::from_secs(config.http2_keepalive_timeout)))
        .max_concurrent_streams(Some(config.max_concurrent_streams_per_connection))
        // gRPC-Web first: every layer below sees the gRPC call it becomes.
        .accept_http1(config.grpc_web)
        .layer(tower::util::option_layer(grpc_web::layer(config)?))
        .layer(tower::util::MapResponseLayer::new(grpc_web::boxed_body))
        // Logged first, so that shed calls are logged and counted too.
        .layer(CallLogLayer)
        .layer(AdmissionLayer::new(limits(config), api.publish_auth()))
        .layer(tower::util::MapResponseLayer::new(
            oversized_is_resource_exhausted::<tonic::body::Body>,
        ))
        // Innermost: the two feed streams and GetArticle's cache hits are
        // answered here, the rest by the services below.
        .layer(FeedStreamsLayer::new(
            api.clone(),
            max_message_bytes,
            config.response_compression == ResponseCompression::Gzip,
        ))
        .layer(CachedReadsLayer::new(
            api.clone(),
            config.response_compression == ResponseCompression::Gzip,
        ))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(articles(api, config))
        .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
    let task = tokio::spawn(server);
    tracing::info!(grpc_addr = %addr, "article-service listening");
    Ok(Serving { task, stop })
}

/// Our service with its message size limit (once decompressed) and
/// compression: gzip requests always, gzip responses when configured (and
/// only to clients that accept them).
fn articles(api: ArticleApi, config: &ServeConfig) -> ArticleServiceServer<ArticleApi> {
    let service = ArticleServiceServer::new(api)
        .max_decoding_message_size(usize::try_from(config.max_message_bytes).unwrap_or(usize::MAX))
        .accept_compressed(CompressionEncoding::Gzip);
    match config.response_compression {
        ResponseCompression::None => service,
        ResponseCompression::Gzip => service.send_compressed(CompressionEncoding::Gzip),
    }
}

/// The server's limits (`REQUEST_TIMEOUT_MS`, `MAX_CONNECTION_AGE`) and TLS
/// (`TLS_CERT`, `TLS_KEY`).
fn hardened(builder: Server, config: &ServeConfig) -> anyhow::Result<Server> {
    // A backstop: handlers answer UNAVAILABLE a little earlier (`deadline`),
    // so this only ends a call whose request is slower to arrive (as
    // CANCELLED). It bounds a stream's set-up, not the stream.
    let mut builder = builder.timeout(config.request_timeout());
    if let Some(connection_age) = config.connection_age() {
        // Only the age, not tonic's `max_connection_age_grace`: with a grace,
        // tonic 0.14 sends no GOAWAY at the age and just drops the
        // connection when the grace is over, calls and all. Without it, the
        // connection closes once its calls are done: unary calls within the
        // request timeout, feed streams within the grace (`feed`).
        builder = builder.max_connection_age(connection_age.age);
    }
    if let Some(tls) = server_tls(config)? {
        builder = builder
            .tls_config(tls)
            .context("TLS_CERT and TLS_KEY do not make a usable certificate and key")?;
    }
    Ok(builder)
}

/// The TLS configuration from `TLS_CERT` and `TLS_KEY`, if both are set
/// (clap refuses one without the other). Errors name the files, never
/// their contents.
fn server_tls(config: &ServeConfig) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (Some(cert_path), Some(key_path)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let cert = std::fs::read(cert_path)
        .with_context(|| format!("cannot read TLS_CERT {}", cert_path.display()))?;
    let key = std::fs::read(key_path)
        .with_context(|| format!("cannot read TLS_KEY {}", key_path.display()))?;
    Ok(Some(
        ServerTlsConfig::new()
            .identity(Identity::from_pem(cert, key))
            .timeout(TLS_HANDSHAKE_TIMEOUT),
    ))
}

/// Reflection knows our service, health, and `google.rpc` error details
/// (so grpcurl can show a BadRequest).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// What admission allows per instance and per connection.
fn limits(config: &ServeConfig) -> Limits {
    let size = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
    Limits {
        inflight_calls: size(config.max_inflight_calls),
        calls_per_connection: size(config.max_calls_per_connection),
        streams: size(config.max_streams),
        streams_per_connection: size(config.max_streams_per_connection),
        unsent_bytes: size(config.max_unsent_bytes),
        unsent_bytes_per_connection: size(config.max_unsent_bytes_per_connection),
        request_bytes: size(config.max_request_bytes),
        largest_message: size(config.max_message_bytes),
        request_message_timeout: Duration::from_millis(config.request_message_timeout_ms),
    }
}

/// When a connection is closed for its age, its silence or its idleness.
fn connection_timeouts(config: &ServeConfig) -> ConnectionTimeouts {
    ConnectionTimeouts {
        lifetime: config.connection_lifetime(),
        handshake: Duration::from_millis(config.handshake_timeout_ms),
        idle: (config.connection_idle_timeout > 0)
            .then(|| Duration::from_secs(config.connection_idle_timeout)),
        stall: (config.response_stall_timeout > 0)
            .then(|| Duration::from_secs(config.response_stall_timeout)),
    }
}
