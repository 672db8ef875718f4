//! Accepted client connections: their writes coalesced, and the instant each
//! was accepted, for handlers that must act before the connection's age limit.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tonic::transport::server::Connected;

/// Bytes a connection gathers before writing them to its socket.
///
/// h2 writes each DATA frame of more than 256 bytes with a write call of its
/// own (hyperium/h2#902). A feed article goes to every stream on a
/// connection: hundreds of 4 KB frames per publish, each a system call and,
/// over loopback, the receiver's work done inline. Gathered here, they go out
/// in writes of this size; h2 flushes whenever it has nothing more to send,
/// so a lone response waits for nothing. The buffer's pages are only touched
/// when a burst fills them.
pub const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// What a handler can learn about its call's connection, from the request's
/// extensions (`request.extensions().get::<ConnectionInfo>()`; under TLS,
/// `TlsConnectInfo<ConnectionInfo>`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    pub local_addr: Option<SocketAddr>,
    pub remote_addr: Option<SocketAddr>,
    /// When the server accepted the connection.
    pub accepted_at: Instant,
}

pin_project! {
    /// A TCP connection as the gRPC server sees it.
    pub struct ServerConnection {
        #[pin]
        stream: BufWriter<TcpStream>,
        info: ConnectionInfo,
    }
}

impl ServerConnection {
    /// Wraps a connection just accepted.
    pub fn new(stream: TcpStream) -> Self {
        let info = ConnectionInfo {
            local_addr: stream.local_addr().ok(),
            remote_addr: stream.peer_addr().ok(),
            accepted_at: Instant::now(),
        };
        Self {
            stream: BufWriter::with_capacity(WRITE_BUFFER_BYTES, stream),
            info,
        }
    }
}

impl Connected for ServerConnection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info
    }
}

impl AsyncRead for ServerConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().stream.poll_read(cx, buf)
    }
}

impl AsyncWrite for ServerConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().stream.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().stream.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().stream.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().stream.poll_shutdown(cx)
    }
}
