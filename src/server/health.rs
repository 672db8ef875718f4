//! `grpc.health.v1.Health`: SERVING while the database answers, NOT_SERVING
//! while it does not, and from the start of shutdown on. The probe asks on a
//! connection of its own (`store::HealthConnection`): a busy request pool is
//! load, not a lost database.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthReporter;

use crate::proto::article_service_server::SERVICE_NAME;
use crate::store::{HealthConnection, Store};

/// How often health asks the database whether it answers.
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// The statuses the health service reports ("" and the article service),
/// and the probe that keeps them up to date.
pub struct Health {
    reporter: HealthReporter,
    probe: JoinHandle<()>,
}

impl Health {
    /// NOT_SERVING until the probe first sees the database answer.
    pub async fn start(
        store: Store,
        stopping: CancellationToken,
    ) -> (
        Self,
        HealthServer<impl tonic_health::pb::health_server::Health>,
    ) {
        let (reporter, service) = tonic_health::server::health_reporter();
        set_health(&reporter, ServingStatus::NotServing).await;
        let probe = tokio::spawn(report_health(
            store.clone(),
            store.health_connection(),
            reporter.clone(),
            stopping,
        ));
        (Self { reporter, probe }, service)
    }

    /// NOT_SERVING for good. The probe is stopped rather than awaited: it
    /// may be waiting on a database that does not answer, and it must not
    /// turn health back to SERVING afterwards.
    pub async fn stop_serving(&mut self) {
        self.probe.abort();
        let _ = (&mut self.probe).await;
        set_health(&self.reporter, ServingStatus::NotServing).await;
    }
}

/// SERVING while the database answers, NOT_SERVING while it does not.
async fn report_health(
    store: Store,
    mut database: HealthConnection,
    health: HealthReporter,
    stopping: CancellationToken,
) {
    let mut serving = None;
    // Logged whenever the status or its reason changes.
    let mut last_reason: Option<String> = None;
    let mut interval = tokio::time::interval(HEALTH_PROBE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            _ = interval.tick() => {}
        }
        let answer = match database.ping().await {
            Ok(()) => store.pool_can_connect().await,
            failed => failed,
        };
        let healthy = answer.is_ok();
        let reason = answer.as_ref().err().map(ToString::to_string);
        if serving != Some(healthy) || reason != last_reason {
            match &answer {
                Ok(()) => tracing::info!("database answers; serving"),
                Err(error) => tracing::warn!(%error, "database does not answer; not serving"),
            }
            last_reason = reason;
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

/// Sets both names' status, and `article_serving`, which lets an alert see
/// when no replica is SERVING.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    let serving = matches!(status, ServingStatus::Serving);
    metrics::gauge!(crate::metrics::SERVING).set(if serving { 1.0 } else { 0.0 });
    health.set_service_status("", status).await;
    health.set_service_status(SERVICE_NAME, status).await;
}
