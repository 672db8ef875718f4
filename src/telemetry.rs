//! Logging, set up once per process (logs go to standard output), and
//! optional OpenTelemetry trace export.
//!
//! Traces are exported over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is set (e.g. `http://otel-collector:4317`); the exporter also honours the
//! SDK's other `OTEL_*` variables (`OTEL_SERVICE_NAME`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`, ...). Unset, no exporter is
//! built and no span is even created (see [`exporting`]).

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// The variable that turns trace export on.
pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Bytes of log lines written in one call, at most.
const LOG_BATCH_BYTES: usize = 64 * 1024;

/// How long the log writer waits after a write before the next: lines
/// gather meanwhile (see [`Paced`]).
const LOG_WRITE_PACE: Duration = Duration::from_millis(2);

/// How long shutdown waits for the last spans to go out.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The tracer provider, when exporting; kept to flush it at shutdown.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber: `RUST_LOG` filters (default `info`),
/// `format` chooses JSON lines or text, and spans go to the OTLP exporter
/// when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Call it inside the Tokio
/// runtime: the gRPC exporter needs one.
///
/// Lines are written to standard output by a thread of their own, in
/// batches: a write per line on the calling thread cost the busiest read
/// path (a line per call, 20,000 a second) a system call each. The thread
/// gathers the lines queued since its last write into one (standard output
/// alone would write each line as it ends), at most one write every
/// [`LOG_WRITE_PACE`]. Never lossy: when the writer falls 128,000 lines
/// behind, callers wait for it. Keep the returned guard
/// until the process ends; dropping it writes what is left.
#[must_use = "dropping the guard stops the log writer"]
pub fn init(format: LogFormat) -> LogWriterGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (stdout, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(Paced::new(std::io::stdout()));
    let logs = match format {
        // Span fields stay out of the lines: a log line looks the same with
        // trace export on or off.
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(stdout)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed(),
        // Colours only for a terminal, never into files or log collectors.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(stdout)
            .with_ansi(std::io::stdout().is_terminal())
            .boxed(),
    };
    let (traces, exporter_error) = match trace_provider() {
        Ok(Some(provider)) => {
            let tracer = provider.tracer("article-service");
            // A second init (tests spawning the app twice) keeps the first.
            let _ = PROVIDER.set(provider);
            (
                Some(tracing_opentelemetry::layer().with_tracer(tracer)),
                None,
            )
        }
        Ok(None) => (None, None),
        Err(error) => (None, Some(error)),
    };
    // A second call (tests spawning the app twice) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init();
    match exporter_error {
        Some(error) => {
            tracing::warn!(%error, "cannot set up trace export; traces are not exported");
        }
        None if exporting() => tracing::info!("exporting traces over OTLP/gRPC"),
        None => {}
    }
    LogWriterGuard { _writer: guard }
}

/// Standard output as the log writer's thread writes it: it flushes each
/// time its queue is empty. A lone line is written at once; after a write, the
/// next waits out [`LOG_WRITE_PACE`] while lines gather in the queue.
/// Without the wait the thread emptied its queue every few lines and slept,
/// and a call's line had to wake it again (a futex call on the worker, a
/// context switch on the thread): under load that cost more than writing.
struct Paced<W: Write> {
    out: std::io::BufWriter<W>,
}

impl<W: Write> Paced<W> {
    fn new(out: W) -> Self {
        Self {
            out: std::io::BufWriter::with_capacity(LOG_BATCH_BYTES, out),
        }
    }
}

impl<W: Write> Write for Paced<W> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.out.write(line)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let started = Instant::now();
        self.out.flush()?;
        std::thread::sleep(LOG_WRITE_PACE.saturating_sub(started.elapsed()));
        Ok(())
    }
}

/// Keeps the log writer running; see [`init`].
pub struct LogWriterGuard {
    _writer: tracing_appender::non_blocking::WorkerGuard,
}

/// Whether spans are exported. The call log creates its span only then, so
/// that without an exporter tracing costs nothing.
pub fn exporting() -> bool {
    PROVIDER.get().is_some()
}

/// Sends the spans still buffered and stops the exporter; waits
/// [`FLUSH_TIMEOUT`] at most. Does nothing when not exporting.
pub async fn flush() {
    let Some(provider) = PROVIDER.get().cloned() else {
        return;
    };
    // Blocking: the SDK waits for its export thread.
    let shutdown =
        tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT));
    match tokio::time::timeout(FLUSH_TIMEOUT + Duration::from_secs(1), shutdown).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => tracing::warn!(%error, "cannot flush the last spans"),
        Ok(Err(error)) => tracing::warn!(%error, "cannot flush the last spans"),
        Err(_) => tracing::warn!("flushing the last spans took too long; some are lost"),
    }
}

/// The provider exporting to `OTEL_EXPORTER_OTLP_ENDPOINT`, if set.
fn trace_provider() -> Result<Option<SdkTracerProvider>, String> {
    let endpoint_set = std::env::var(OTLP_ENDPOINT).is_ok_and(|value| !value.trim().is_empty());
    if !endpoint_set {
        return Ok(None);
    }
    // The endpoint comes from the environment, where the SDK reads it.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|error| error.to_string())?;
    let resource = if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        Resource::builder().build()
    } else {
        Resource::builder()
            .with_service_name("article-service")
            .build()
    };
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_writes_what_is_buffered_then_waits_out_the_pace() {
        let mut paced = Paced::new(Vec::new());
        paced.write_all(b"a line\n").unwrap_or_default();
        let started = Instant::now();
        paced.flush().unwrap_or_default();
        assert!(started.elapsed() >= LOG_WRITE_PACE);
        assert_eq!(paced.out.get_ref().as_slice(), b"a line\n");
    }
}
