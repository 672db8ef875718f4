//! Accepting connections without spinning when descriptors run out, and
//! having as many descriptors as the system lets the process have.

use std::io;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::transport::server::TcpIncoming;

use super::connection::{ConnectionTimeouts, ServerConnection};
use crate::metrics::ACCEPT_ERRORS;

/// The first wait after an accept failed for lack of descriptors; it
/// doubles with each failure in a row, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Raises the soft limit of open files to the hard limit: each connection
/// is a descriptor, and the soft limit is often 1024 while the hard one is
/// far higher. Returns the limit now in force.
pub fn raise_open_file_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Whether accepting failed because the process (EMFILE) or the system
/// (ENFILE) is out of file descriptors: retrying at once fails again until
/// a connection closes.
fn out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// The accepted connections of `incoming`, wrapped. When an accept fails for
/// lack of descriptors, the loop waits (backing off) before it tries again,
/// counts it and logs a warning; tonic's own loop would retry at once,
/// spinning a core while every descriptor is held. Other accept errors
/// (a client that reset before it was accepted) are skipped.
pub fn accepting(
    incoming: TcpIncoming,
    timeouts: ConnectionTimeouts,
) -> impl Stream<Item = io::Result<ServerConnection>> {
    async_stream::stream! {
        let mut incoming = incoming;
        let mut backoff = FIRST_BACKOFF;
        while let Some(accepted) = incoming.next().await {
            match accepted {
                Ok(stream) => {
                    backoff = FIRST_BACKOFF;
                    yield Ok(ServerConnection::new(stream, timeouts));
                }
                Err(error) if out_of_descriptors(&error) => {
                    metrics::counter!(ACCEPT_ERRORS, "reason" => "descriptors").increment(1);
                    tracing::warn!(
                        %error,
                        retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                        "cannot accept a connection: out of file descriptors"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(error) => {
                    metrics::counter!(ACCEPT_ERRORS, "reason" => "other").increment(1);
                    tracing::debug!(%error, "accepting a connection failed");
                }
            }
        }
    }
}
