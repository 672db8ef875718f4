//! Builds and runs the gRPC server, and shuts it down in order.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::{
    AdmissionLayer, ArticleApi, CallLogLayer, PublishAuth, oversized_is_resource_exhausted,
};
use crate::cache::ReadCache;
use crate::config::ServeConfig;
use crate::connection::ServerConnection;
use crate::feed::{ConnectionAge, Feed, FeedSettings, run_listener, run_releases};
use crate::proto::article_service_server::ArticleServiceServer;
use crate::store::{ArticleLookups, Store, TokenKeys};

/// The service name health reports on, besides "".
const SERVICE_NAME: &str = "newsroom.content.v1.ArticleService";
/// How long a client has to complete its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often health asks the database whether it answers.
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// A server bound to its address, not yet serving.
pub struct Application {
    config: ServeConfig,
    listener: TcpListener,
}

impl Application {
    /// Binds the gRPC address (port 0 picks a free port).
    pub async fn bind(config: ServeConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.grpc_addr))?;
        Ok(Self { config, listener })
    }

    pub fn grpc_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` resolves, then: health NOT_SERVING, open
    /// streams end with UNAVAILABLE, no new calls, and return within the
    /// configured grace period whatever the clients do.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let config = self.config;
        // First, so that the tasks started below record into it.
        let metrics = crate::metrics::install()?;
        let options = config.database.connect_options()?;
        let mut store = Store::connect_lazy(options.clone(), &config.pool_settings());
        if let Some(read_options) = config.read_connect_options()? {
            store = store.with_read_pool(read_options, &config.read_pool_settings());
        }
        let tokens = TokenKeys::new(store.clone());
        let stopping = CancellationToken::new();
        let cache = ReadCache::new(config.cache_settings());

        let feed = Feed::new(
            store.clone(),
            tokens.clone(),
            FeedSettings {
                heartbeat_interval: Duration::from_secs(config.heartbeat_interval),
                max_streams: config.max_streams,
                // At most 1,000,000, as the flag's parser enforces.
                buffer: usize::try_from(config.feed_buffer).unwrap_or(usize::MAX),
                batch_size: config.feed_batch_size,
                scan_window: i64::from(config.feed_batch_size) * 100,
                ..FeedSettings::default()
            },
            cache.clone(),
            stopping.clone(),
        );
        let listener_task = tokio::spawn(run_listener(feed.clone(), options));
        let release_task = tokio::spawn(run_releases(feed.clone()));

        let metrics_addr =
            crate::metrics::serve(config.metrics_addr, metrics, stopping.clone()).await?;
        tracing::info!(%metrics_addr, "metrics listening");
        tokio::spawn(sample_gauges(
            store.clone(),
            feed.clone(),
            cache.clone(),
            stopping.clone(),
        ));

        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::NotServing).await;
        let health_task = tokio::spawn(report_health(
            store.clone(),
            health.clone(),
            stopping.clone(),
        ));

        // Old grpcurl speaks only v1alpha; newer clients ask for v1.
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let lookups = ArticleLookups::start(store.clone(), store.lookup_slots());
        let api = ArticleApi::new(
            store,
            lookups,
            tokens,
            PublishAuth::new(config.publish_token.as_ref()),
            feed,
            cache,
        )
        .with_request_timeout(Duration::from_millis(config.request_timeout_ms))
        .with_connection_age((config.max_connection_age > 0).then(|| ConnectionAge {
            age: Duration::from_secs(config.max_connection_age),
            grace: Duration::from_secs(config.max_connection_age_grace),
        }));

        let incoming = TcpIncoming::from(self.listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(60)));
        let addr = incoming.local_addr()?;
        // Past the age, its grace and the request timeout, only streams that
        // never end on their own are left (see `ServerConnection::new`).
        let lifetime = (config.max_connection_age > 0).then(|| {
            Duration::from_secs(config.max_connection_age)
                + Duration::from_secs(config.max_connection_age_grace)
                    .max(Duration::from_millis(config.request_timeout_ms))
        });
        let incoming = incoming
            .map(move |accepted| accepted.map(|stream| ServerConnection::new(stream, lifetime)));

        // Stop accepting calls only after streams were told to end, so that
        // graceful HTTP/2 shutdown has nothing long-lived to wait for.
        let server_stop = CancellationToken::new();
        let server = hardened(Server::builder(), &config)?
            .http2_keepalive_interval(Some(Duration::from_secs(config.http2_keepalive_interval)))
            .http2_keepalive_timeout(Some(Duration::from_secs(config.http2_keepalive_timeout)))
            .max_concurrent_streams(Some(config.max_concurrent_streams_per_connection))
            // Logged first, so that shed calls are logged and counted too.
            .layer(CallLogLayer)
            .layer(AdmissionLayer::new(
                usize::try_from(config.max_inflight_calls).unwrap_or(usize::MAX),
            ))
            .layer(tower::util::MapResponseLayer::new(
                oversized_is_resource_exhausted::<tonic::body::Body>,
            ))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(ArticleServiceServer::new(api).max_decoding_message_size(
                usize::try_from(config.max_message_bytes).unwrap_or(usize::MAX),
            ))
            .serve_with_incoming_shutdown(incoming, server_stop.clone().cancelled_owned());
        let mut server = tokio::spawn(server);
        tracing::info!(grpc_addr = %addr, "article-service listening");

        tokio::select! {
            () = shutdown => {}
            result = &mut server => {
                stopping.cancel();
                return result.context("server task failed")?.context("server failed");
            }
        }

        // The grace period counts from the signal.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(config.shutdown_grace);
        tracing::info!(grace_seconds = config.shutdown_grace, "shutting down");
        // 1. Health first, so that balancers stop sending calls before any
        //    stream ends. The probe is stopped rather than awaited: it may be
        //    waiting on a database that does not answer, and it must not
        //    turn health back to SERVING afterwards.
        health_task.abort();
        let _ = health_task.await;
        set_health(&health, ServingStatus::NotServing).await;
        // 2. Every open feed stream ends with UNAVAILABLE; new ones are refused.
        stopping.cancel();
        // 3. No new connections or calls; in-flight calls may finish.
        server_stop.cancel();
        // Health watches are streams too, and would hold the graceful
        // shutdown until the grace period is over: end them. They have seen
        // NOT_SERVING, which stays their last word.
        let mut health = health;
        health.clear_service_status("").await;
        health.clear_service_status(SERVICE_NAME).await;
        match tokio::time::timeout_at(deadline, &mut server).await {
            Ok(result) => result
                .context("server task failed")?
                .context("server failed")?,
            Err(_) => {
                tracing::warn!("grace period over with calls still open; exiting anyway");
                server.abort();
            }
        }
        listener_task.abort();
        release_task.abort();
        tracing::info!("stopped");
        crate::telemetry::flush().await;
        Ok(())
    }
}

/// The server's limits (`REQUEST_TIMEOUT_MS`, `MAX_CONNECTION_AGE`) and TLS
/// (`TLS_CERT`, `TLS_KEY`).
fn hardened(builder: Server, config: &ServeConfig) -> anyhow::Result<Server> {
    // A backstop: handlers answer UNAVAILABLE a little earlier (`deadline`),
    // so this only ends a call whose request is slower to arrive (as
    // CANCELLED). It bounds a stream's set-up, not the stream.
    let mut builder = builder.timeout(Duration::from_millis(config.request_timeout_ms));
    if config.max_connection_age > 0 {
        // Only the age, not tonic's `max_connection_age_grace`: with a grace,
        // tonic 0.14 sends no GOAWAY at the age and just drops the
        // connection when the grace is over, calls and all. Without it, the
        // connection closes once its calls are done: unary calls within the
        // request timeout, feed streams within the grace (`feed`).
        builder = builder.max_connection_age(Duration::from_secs(config.max_connection_age));
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

/// Serves with the given configuration until SIGTERM or Ctrl-C.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let application = Application::bind(config).await?;
    application.run_until(shutdown_signal()).await
}

/// Resolves on SIGTERM (Kubernetes) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// SERVING while the database answers, NOT_SERVING while it does not.
async fn report_health(store: Store, health: HealthReporter, stopping: CancellationToken) {
    let mut serving = None;
    let mut interval = tokio::time::interval(HEALTH_PROBE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            _ = interval.tick() => {}
        }
        let healthy = store.ping().await.is_ok();
        if serving != Some(healthy) {
            if healthy {
                tracing::info!("database answers; serving");
            } else {
                tracing::warn!("database does not answer; not serving");
            }
            let status = if healthy {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            set_health(&health, status).await;
            serving = Some(healthy);
        }
    }
}

/// Samples the gauges that describe state rather than events.
async fn sample_gauges(store: Store, feed: Feed, cache: ReadCache, stopping: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            _ = interval.tick() => {}
        }
        store.sample_pool_metrics();
        metrics::gauge!(crate::metrics::OPEN_STREAMS).set(feed.open_streams() as f64);
        cache.report_size();
    }
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    health.set_service_status(SERVICE_NAME, status).await;
}
