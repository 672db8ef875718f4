//! A raw HTTP/2 gRPC client (the `h2` crate) that can misbehave exactly as a
//! test needs: headers without a message, a deadline tonic would enforce on
//! its own side, compressed messages, responses it never reads. And what a
//! test measures of the server from outside: CPU time.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use http::{HeaderMap, Request};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// An HTTP/2 connection to `addr`, driven in the background.
pub async fn connect(addr: SocketAddr) -> SendRequest<Bytes> {
    connect_watched(addr).await.0
}

/// As [`connect`], with the task that drives the connection: it ends when
/// the connection closes.
pub async fn connect_watched(addr: SocketAddr) -> (SendRequest<Bytes>, JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (send, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    let driving = tokio::spawn(async move {
        let _ = connection.await;
    });
    (send, driving)
}

/// As [`connect`], with a connection window of 1 GiB: a client that never
/// reads still lets the server send 64 KiB on each of its streams, so the
/// server produces every answer rather than waiting for window.
pub async fn connect_wide(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (send, connection) = h2::client::Builder::new()
        .initial_connection_window_size(1 << 30)
        .handshake(tcp)
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// The headers of a gRPC call of `path`, with `extra` headers.
pub fn request(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("a request")
}

/// A gRPC message frame: the compressed flag, the length, the bytes.
pub fn frame(compressed: bool, message: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(u8::from(compressed));
    let len = u32::try_from(message.len()).expect("a message under 4 GiB");
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    Bytes::from(framed)
}

/// `message` compressed with gzip.
pub fn gzip(message: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(message).expect("compress");
    encoder.finish().expect("compress")
}

/// What came back for one call.
#[derive(Debug)]
pub struct Answer {
    pub headers: HeaderMap,
    pub data: Vec<u8>,
    pub trailers: Option<HeaderMap>,
}

impl Answer {
    /// grpc-status, from the trailers or (trailers-only) the headers.
    pub fn code(&self) -> i32 {
        self.trailers
            .as_ref()
            .and_then(|trailers| trailers.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"))
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
            .expect("a grpc-status")
    }
}

/// Sends a whole call (headers, then `body` with END_STREAM).
pub async fn send(
    send: &mut SendRequest<Bytes>,
    request: Request<()>,
    body: Bytes,
) -> ResponseFuture {
    let mut ready = send
        .clone()
        .ready()
        .await
        .expect("the connection takes a stream");
    let (response, mut stream) = ready.send_request(request, false).expect("send headers");
    stream.send_data(body, true).expect("send the message");
    *send = ready;
    response
}

/// Reads a whole answer, releasing flow-control capacity as it goes.
pub async fn read(response: ResponseFuture) -> Answer {
    let response = response.await.expect("response headers");
    let (parts, mut body) = response.into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("response data");
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.expect("trailers");
    Answer {
        headers: parts.headers,
        data,
        trailers,
    }
}

/// One whole call, read whole.
pub async fn call(
    send_request: &mut SendRequest<Bytes>,
    request: Request<()>,
    body: Bytes,
) -> Answer {
    let response = send(send_request, request, body).await;
    tokio::time::timeout(Duration::from_secs(20), read(response))
        .await
        .expect("an answer within 20 s")
}

/// The CPU time (user + system) the process `pid` has used.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15.
    let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|ticks| u64::try_from(ticks).ok())
        .expect("clock ticks per second");
    Duration::from_millis(ticks * 1_000 / per_second)
}
