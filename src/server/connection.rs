//! Accepted client connections: their writes coalesced, the instant each was
//! accepted (for handlers that must act before the connection's age limit),
//! and the moment it is closed whatever still runs on it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tonic::transport::server::Connected;

use crate::api::ConnectionInfo;

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

pin_project! {
    /// A TCP connection as the gRPC server sees it.
    pub struct ServerConnection {
        #[pin]
        stream: BufWriter<TcpStream>,
        info: ConnectionInfo,
        // When the connection is closed, calls and all (see `new`). Boxed:
        // the server needs connections it can move.
        closes_at: Option<Pin<Box<Sleep>>>,
    }
}

impl ServerConnection {
    /// Wraps a connection just accepted. With a `lifetime`, the connection
    /// fails as if the client had gone that long after it was accepted.
    ///
    /// This is the backstop of `MAX_CONNECTION_AGE`: at the age the server
    /// sends GOAWAY, feed streams end within the grace and unary calls within
    /// the request timeout, and the connection closes once they are done. But
    /// health Watch and reflection streams never end on their own, and would
    /// hold it (and its client) on this replica for good: whatever still runs
    /// at the lifetime is cut, and the client sees its connection fail
    /// (grpc-go and grpc-java: UNAVAILABLE; tonic: UNKNOWN) and reconnects.
    pub fn new(stream: TcpStream, lifetime: Option<std::time::Duration>) -> Self {
        let accepted_at = Instant::now();
        let info = ConnectionInfo {
            local_addr: stream.local_addr().ok(),
            remote_addr: stream.peer_addr().ok(),
            accepted_at,
        };
        Self {
            stream: BufWriter::with_capacity(WRITE_BUFFER_BYTES, stream),
            info,
            closes_at: lifetime
                .map(|lifetime| Box::pin(tokio::time::sleep_until(accepted_at + lifetime))),
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
        let this = self.project();
        // The server always has a read pending, so this is polled (and the
        // timer's wake-up heard) however idle the connection is.
        if let Some(closes_at) = this.closes_at
            && closes_at.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the connection outlived MAX_CONNECTION_AGE and its grace",
            )));
        }
        this.stream.poll_read(cx, buf)
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
