//! Accepted client connections: their writes coalesced, the instant each was
//! accepted (for handlers that must act before the connection's age limit),
//! its load (for admission), and the moments it is closed: whatever still
//! runs on it at its lifetime, and earlier if it never starts HTTP/2 or
//! holds no call for a long time.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tonic::transport::server::Connected;

use crate::api::{ConnectionInfo, ConnectionLoad};
use crate::metrics::CONNECTIONS_TIMED_OUT;

/// What an HTTP/2 client sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// When a connection is closed for what it did not do.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionTimeouts {
    /// Closed whatever runs on it this long after it was accepted.
    pub lifetime: Option<Duration>,
    /// Closed unless the client's HTTP/2 preface arrived within this.
    pub handshake: Duration,
    /// Closed after holding no call for this long (between one and two
    /// times it: checked once per period).
    pub idle: Option<Duration>,
    /// Closed when its unary responses wait and none moved on for this long
    /// (the client's window stays shut), or its socket took no byte for this
    /// long (the client does not read); checked once per period.
    pub stall: Option<Duration>,
}

/// Which timeout the connection's watch stands for.
#[derive(Debug, Clone, Copy)]
enum Watch {
    /// Bytes of the preface read so far.
    Handshake { read: usize },
    /// Calls started when the watch was last set.
    Idle { started: u64 },
}

/// Bytes a connection gathers before writing them to its socket.
///
/// h2 flushes its writer after each DATA frame of more than 256 bytes
/// (hyperium/h2#902), so a buffer alone gathers nothing: a feed article goes
/// to every stream on a connection, hundreds of 4 KB frames per publish, and
/// each flush would be a system call and, over loopback, the receiver's work
/// done inline. On a plain HTTP/2 connection a flush is therefore owed rather
/// than done: the connection's task is woken, and its next poll, which always
/// reads first, writes what the whole previous poll gathered (see
/// `poll_read`). Bytes go out in writes of up to this size, one task wake-up
/// after h2 handed them over. The buffer's pages are only touched when a
/// burst fills them.
///
/// Sized so that a connection holds no more than h2 handed over in one
/// flush without gathering (its own 16 KiB buffer and a 16 KiB DATA frame):
/// 10,000 connections that each receive a large article at once hold no
/// more than they would without gathering. A 64 KiB buffer gathered no more
/// writes (BENCHMARKS.md).
pub const WRITE_BUFFER_BYTES: usize = 32 * 1024;

pin_project! {
    /// A TCP connection as the gRPC server sees it.
    pub struct ServerConnection {
        #[pin]
        stream: BufWriter<TcpStream>,
        info: ConnectionInfo,
        // When the connection is closed, calls and all (see `new`). Boxed:
        // the server needs connections it can move.
        closes_at: Option<Pin<Box<Sleep>>>,
        watch: Watch,
        // When `watch` is checked; `None`: never again.
        watch_at: Option<Pin<Box<Sleep>>>,
        idle: Option<Duration>,
        stall_at: Option<Pin<Box<Sleep>>>,
        stall: Duration,
        // The response progress counted at the last stall check.
        progress_seen: u64,
        // Since when the socket has refused bytes; `None` while it takes them.
        write_blocked_since: Option<Instant>,
        // Whether flushes are owed rather than done: the client spoke plain
        // HTTP/2 (h2 polls the read side first at every wake-up). Not for
        // HTTP/1 or TLS, whose flushes are done as asked. On such a
        // connection, bytes in the buffer are bytes a flush is owed for.
        gathers_writes: bool,
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
    ///
    /// A client that opens connections and never speaks HTTP/2 on them, or
    /// keeps them without calls, would hold a descriptor each: the
    /// handshake and idle timeouts give them back.
    pub fn new(stream: TcpStream, timeouts: ConnectionTimeouts) -> Self {
        let accepted_at = Instant::now();
        let info = ConnectionInfo {
            local_addr: stream.local_addr().ok(),
            remote_addr: stream.peer_addr().ok(),
            accepted_at,
            load: ConnectionLoad::default(),
        };
        Self {
            stream: BufWriter::with_capacity(WRITE_BUFFER_BYTES, stream),
            info,
            closes_at: timeouts
                .lifetime
                .map(|lifetime| Box::pin(tokio::time::sleep_until(accepted_at + lifetime))),
            watch: Watch::Handshake { read: 0 },
            watch_at: Some(Box::pin(tokio::time::sleep_until(
                accepted_at + timeouts.handshake,
            ))),
            idle: timeouts.idle,
            stall_at: timeouts
                .stall
                .map(|stall| Box::pin(tokio::time::sleep_until(accepted_at + stall))),
            stall: timeouts.stall.unwrap_or_default(),
            progress_seen: 0,
            write_blocked_since: None,
            gathers_writes: false,
        }
    }
}

/// Notes whether a write took bytes or had to wait for the socket.
fn note_write<T>(blocked_since: &mut Option<Instant>, polled: &Poll<io::Result<T>>) {
    match polled {
        Poll::Pending => {
            blocked_since.get_or_insert_with(Instant::now);
        }
        Poll::Ready(_) => *blocked_since = None,
    }
}

/// The error that closes a connection for a timeout, counted by `reason`.
fn timed_out(reason: &'static str, message: &'static str) -> io::Error {
    metrics::counter!(CONNECTIONS_TIMED_OUT, "reason" => reason).increment(1);
    tracing::debug!(reason, "closing a client connection: {message}");
    io::Error::new(io::ErrorKind::TimedOut, message)
}

impl Connected for ServerConnection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

impl AsyncRead for ServerConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut this = self.project();
        // h2 polls reading before writing at each wake-up: the bytes owed by
        // the previous one go out here, gathered.
        if *this.gathers_writes && !this.stream.buffer().is_empty() {
            let polled = this.stream.as_mut().poll_flush(cx);
            note_write(this.write_blocked_since, &polled);
            // Pending: woken again when the socket takes bytes.
            if let Poll::Ready(Err(error)) = polled {
                return Poll::Ready(Err(error));
            }
        }
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
        while let Some(stall_at) = this.stall_at.as_mut()
            && stall_at.as_mut().poll(cx).is_ready()
        {
            let load = &this.info.load;
            let progress = load.progress.load(Ordering::Acquire);
            let waiting = load.unsent_bytes.load(Ordering::Acquire) > 0
                || load.streams_waiting.load(Ordering::Acquire) > 0;
            let now = Instant::now();
            let blocked = this
                .write_blocked_since
                .is_some_and(|since| now.duration_since(since) >= *this.stall);
            if (waiting && progress == *this.progress_seen) || blocked {
                return Poll::Ready(Err(timed_out(
                    "stalled",
                    "the client read nothing for RESPONSE_STALL_TIMEOUT",
                )));
            }
            *this.progress_seen = progress;
            // Polled again by the loop, which registers the timer.
            stall_at.as_mut().reset(now + *this.stall);
        }
        while let Some(watch_at) = this.watch_at.as_mut()
            && watch_at.as_mut().poll(cx).is_ready()
        {
            let load = &this.info.load;
            let started = load.started.load(Ordering::Acquire);
            match this.watch {
                Watch::Handshake { .. } => {
                    return Poll::Ready(Err(timed_out(
                        "handshake",
                        "no HTTP/2 preface within HANDSHAKE_TIMEOUT_MS",
                    )));
                }
                Watch::Idle { started: before } => {
                    let busy = load.calls.load(Ordering::Acquire) > 0
                        || load.streams.load(Ordering::Acquire) > 0;
                    if !busy && started == *before {
                        return Poll::Ready(Err(timed_out(
                            "idle",
                            "no call for CONNECTION_IDLE_TIMEOUT",
                        )));
                    }
                    // Polled again by the loop, which registers the timer.
                    *this.watch = Watch::Idle { started };
                    match this.idle {
                        Some(idle) => watch_at.as_mut().reset(Instant::now() + *idle),
                        None => *this.watch_at = None,
                    }
                }
            }
        }
        let before = buf.filled().len();
        let polled = this.stream.poll_read(cx, buf);
        if let Watch::Handshake { read } = this.watch
            && polled.is_ready()
        {
            let arrived = &buf.filled()[before..];
            if *read == 0 {
                let compared = arrived.len().min(PREFACE.len());
                *this.gathers_writes = compared > 0 && PREFACE.starts_with(&arrived[..compared]);
            }
            *read += arrived.len();
            if *read >= PREFACE.len() {
                let started = this.info.load.started.load(Ordering::Acquire);
                *this.watch = Watch::Idle { started };
                *this.watch_at = this.idle.map(|idle| Box::pin(tokio::time::sleep(idle)));
                if let Some(watch_at) = this.watch_at {
                    // Registers the timer's wake-up.
                    let _ = watch_at.as_mut().poll(cx);
                }
            }
        }
        polled
    }
}

impl AsyncWrite for ServerConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.stream.poll_write(cx, buf);
        note_write(this.write_blocked_since, &polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.stream.poll_write_vectored(cx, bufs);
        note_write(this.write_blocked_since, &polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        if *this.gathers_writes && !this.stream.buffer().is_empty() {
            // Owed until the task's next poll (`poll_read`), which nothing
            // else might bring soon. Waking the task that runs is cheap.
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        let polled = this.stream.poll_flush(cx);
        note_write(this.write_blocked_since, &polled);
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().stream.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const TIMEOUTS: ConnectionTimeouts = ConnectionTimeouts {
        lifetime: None,
        handshake: Duration::from_secs(30),
        idle: None,
        stall: None,
    };

    /// A server side of a fresh loopback connection whose client sent
    /// `first` and the server read it, and the client side.
    async fn connection_after(first: &[u8]) -> (ServerConnection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let mut server = ServerConnection::new(accepted, TIMEOUTS);
        client.write_all(first).await.unwrap();
        let mut read = vec![0; first.len()];
        server.read_exact(&mut read).await.unwrap();
        (server, client)
    }

    /// Whether the client receives `expected` within 200 ms.
    async fn client_receives(client: &mut TcpStream, expected: &[u8]) -> bool {
        let mut received = vec![0; expected.len()];
        tokio::time::timeout(Duration::from_millis(200), client.read_exact(&mut received))
            .await
            .is_ok_and(|read| read.is_ok() && received == expected)
    }

    #[tokio::test]
    async fn on_http2_flushed_bytes_go_out_together_at_the_next_read() {
        let (mut server, mut client) = connection_after(PREFACE).await;
        let frames = [[1_u8; 4096], [2_u8; 4096]];
        for frame in &frames {
            server.write_all(frame).await.unwrap();
            server.flush().await.unwrap();
        }
        assert!(!client_receives(&mut client, &[1; 1]).await);

        // The connection's next poll reads first; nothing arrives to read.
        let mut byte = [0_u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(50), server.read(&mut byte)).await;
        assert!(read.is_err());
        assert!(client_receives(&mut client, &frames.concat()).await);
    }

    #[tokio::test]
    async fn on_http1_a_flush_writes_at_once() {
        let (mut server, mut client) = connection_after(b"POST /x HTTP/1.1\r\n").await;
        server.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        server.flush().await.unwrap();
        assert!(client_receives(&mut client, b"HTTP/1.1 200 OK\r\n").await);
    }

    #[tokio::test]
    async fn shutting_down_writes_what_is_owed() {
        let (mut server, mut client) = connection_after(PREFACE).await;
        server.write_all(b"GOAWAY").await.unwrap();
        server.flush().await.unwrap();
        server.shutdown().await.unwrap();
        assert!(client_receives(&mut client, b"GOAWAY").await);
    }
}
