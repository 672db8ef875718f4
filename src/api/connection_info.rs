//! What a handler can learn about its call's connection. Defined here, by
//! the handlers that read it, so that `server` (which fills it in) imports
//! `api` and never the other way round.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use tokio::time::Instant;

/// From the request's extensions (`request.extensions().get::<ConnectionInfo>()`;
/// under TLS, `TlsConnectInfo<ConnectionInfo>`).
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub local_addr: Option<SocketAddr>,
    pub remote_addr: Option<SocketAddr>,
    /// When the server accepted the connection.
    pub accepted_at: Instant,
    /// What the connection holds of the server, shared by its calls.
    pub load: ConnectionLoad,
}

impl ConnectionInfo {
    /// The connection info a request's extensions carry, plaintext or TLS.
    pub fn of(extensions: &http::Extensions) -> Option<&ConnectionInfo> {
        extensions.get::<ConnectionInfo>().or_else(|| {
            extensions
                .get::<tonic::transport::server::TlsConnectInfo<ConnectionInfo>>()
                .map(|info| info.get_ref())
        })
    }
}

/// The connection's share of the server, counted by the server's admission
/// (per-connection limits) and read by the connection itself (idle timeout).
#[derive(Debug, Clone, Default)]
pub struct ConnectionLoad {
    /// Unary calls in flight, from their headers to their last byte handed
    /// to the connection.
    pub calls: Arc<AtomicUsize>,
    /// Calls that live as long as their client wants (streams).
    pub streams: Arc<AtomicUsize>,
    /// Bytes of unary responses handed over and not yet written.
    pub unsent_bytes: Arc<AtomicUsize>,
    /// Calls started on the connection, ever.
    pub started: Arc<AtomicU64>,
    /// Pieces of unary responses and feed stream messages handed to the
    /// connection, ever: it stands still while the client's window stays
    /// shut.
    pub progress: Arc<AtomicU64>,
    /// Feed streams whose last message HTTP/2 has not taken in full yet
    /// (it waits for the client's window).
    pub streams_waiting: Arc<AtomicUsize>,
}
