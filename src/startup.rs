//! Builds the service (the store, feed and cache, the tasks beside the
//! server, the server itself), runs it, and on the shutdown signal drains
//! it in the order `drain` gives: health, feed streams, the server, health
//! watches, then the wait for calls in flight.

use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{ArticleApi, PublishAuth};
use crate::cache::ReadCache;
use crate::config::ServeConfig;
use crate::feed::{Feed, run_listener, run_releases};
use crate::server::{Health, Serving};
use crate::store::{ArticleLookups, Store, TokenKeys};

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

    /// Serves until `shutdown` resolves, then: health NOT_SERVING, open
    /// streams end with UNAVAILABLE, no new calls, and return within the
    /// configured grace period whatever the clients do.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self { config, listener } = self;
        // First, so that the tasks started below record into it.
        let metrics = crate::metrics::install()?;
        let parts = Parts::build(&config)?;
        let feed_listener = parts.start_beside_server(&config, metrics).await?;
        let (health, health_service) =
            Health::start(parts.store.clone(), parts.stopping.clone()).await;
        let stopping = parts.stopping.clone();
        let mut serving = crate::server::serve(
            listener,
            &config,
            parts.into_api(&config),
            health_service,
            stopping.clone(),
        )?;

        tokio::select! {
            () = shutdown => {}
            result = &mut serving.task => {
                stopping.cancel();
                return result.context("server task failed")?.context("server failed");
            }
        }
        drain(&config, health, stopping, serving).await?;
        feed_listener.abort();
        tracing::info!("stopped");
        crate::telemetry::flush().await;
        Ok(())
    }
}

/// What the handlers work with, built from the configuration.
struct Parts {
    store: Store,
    tokens: TokenKeys,
    cache: ReadCache,
    feed: Feed,
    /// Cancelled at shutdown: feed streams end, background tasks return.
    stopping: CancellationToken,
}

impl Parts {
    fn build(config: &ServeConfig) -> anyhow::Result<Self> {
        let options = config.database.connect_options()?;
        let mut store = Store::connect_lazy(options, &config.pool_settings());
        if let Some(read_options) = config.read_connect_options()? {
            store = store.with_read_pool(read_options, &config.read_pool_settings());
        }
        let tokens = TokenKeys::new(store.clone());
        let stopping = CancellationToken::new();
        let cache = ReadCache::new(config.cache_settings());
        let feed = Feed::new(
            store.clone(),
            tokens.clone(),
            config.feed_settings(),
            cache.clone(),
            stopping.clone(),
        );
        Ok(Self {
            store,
            tokens,
            cache,
            feed,
            stopping,
        })
    }

    /// Starts the feed's listener (returned, to stop it last), the release
    /// job (it stops with the feed), `/metrics` and the gauges' sampling.
    async fn start_beside_server(
        &self,
        config: &ServeConfig,
        metrics: PrometheusHandle,
    ) -> anyhow::Result<JoinHandle<()>> {
        let feed_listener = tokio::spawn(run_listener(self.feed.clone()));
        tokio::spawn(run_releases(self.feed.clone()));
        let metrics_addr =
            crate::metrics::serve(config.metrics_addr, metrics, self.stopping.clone()).await?;
        tracing::info!(%metrics_addr, "metrics listening");
        tokio::spawn(sample_gauges(
            self.store.clone(),
            self.feed.clone(),
            self.cache.clone(),
            self.stopping.clone(),
        ));
        Ok(feed_listener)
    }

    fn into_api(self, config: &ServeConfig) -> ArticleApi {
        let lookups = ArticleLookups::start(self.store.clone(), self.store.lookup_slots());
        ArticleApi::new(
            self.store,
            lookups,
            self.tokens,
            PublishAuth::new(config.publish_token.as_ref()),
            self.feed,
            self.cache,
        )
        .with_request_timeout(config.request_timeout())
        .with_max_page_bytes(usize::try_from(config.max_page_bytes).unwrap_or(usize::MAX))
        .with_connection_age(config.connection_age())
    }
}

/// After the shutdown signal: stops in an order that lets every call end
/// well, and returns within the grace period (which counts from the signal)
/// whatever the clients do.
async fn drain(
    config: &ServeConfig,
    mut health: Health,
    stopping: CancellationToken,
    mut serving: Serving,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(config.shutdown_grace);
    tracing::info!(grace_seconds = config.shutdown_grace, "shutting down");
    // 1. Health first, so that balancers stop sending calls before any
    //    stream ends.
    health.stop_serving().await;
    // 2. Every open stream ends with UNAVAILABLE; new feed streams are
    //    refused.
    stopping.cancel();
    //    So do health watches (after the NOT_SERVING above) and reflection
    //    streams (`server::ends_on_shutdown`).
    // 3. No new connections or calls; in-flight calls may finish. Only now,
    //    after streams were told to end, so that graceful HTTP/2 shutdown
    //    has nothing long-lived to wait for.
    serving.stop.cancel();
    match tokio::time::timeout_at(deadline, &mut serving.task).await {
        Ok(result) => result
            .context("server task failed")?
            .context("server failed")?,
        Err(_) => {
            tracing::warn!("grace period over with calls still open; exiting anyway");
            serving.task.abort();
        }
    }
    Ok(())
}

/// Serves with the given configuration until SIGTERM or Ctrl-C.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    // Each connection is a descriptor; the soft limit (often 1024) would
    // refuse clients long before memory or CPU run out.
    match crate::server::raise_open_file_limit() {
        Ok(limit) => tracing::info!(open_files = limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
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
