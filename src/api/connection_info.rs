//! What a handler can learn about its call's connection. Defined here, by
//! the handlers that read it, so that `server` (which fills it in) imports
//! `api` and never the other way round.

use std::net::SocketAddr;

use tokio::time::Instant;

/// From the request's extensions (`request.extensions().get::<ConnectionInfo>()`;
/// under TLS, `TlsConnectInfo<ConnectionInfo>`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    pub local_addr: Option<SocketAddr>,
    pub remote_addr: Option<SocketAddr>,
    /// When the server accepted the connection.
    pub accepted_at: Instant,
}
