//! `serve`'s flags and their variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use secrecy::SecretString;

use super::{DatabaseConfig, parse_secret};

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// PostgreSQL URL the read RPCs (GetArticle, ListArticlesByTag,
    /// ListTags) use, e.g. a streaming replica; unset: DATABASE_URL. Writes,
    /// the live feed, token keys and health stay on DATABASE_URL.
    #[arg(long, env = "DATABASE_READ_URL", hide_env_values = true, value_parser = parse_secret)]
    pub database_read_url: Option<SecretString>,

    /// Database connections of the read pool (only with DATABASE_READ_URL);
    /// unset: DATABASE_MAX_CONNECTIONS.
    #[arg(long, env = "DATABASE_READ_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub database_read_max_connections: Option<u32>,

    /// Address of the gRPC server.
    #[arg(long, env = "GRPC_ADDR", default_value = "0.0.0.0:50051")]
    pub grpc_addr: SocketAddr,

    /// Address of the Prometheus endpoint (/metrics).
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,

    /// Bearer token that PublishArticle requires; unset disables publishing.
    #[arg(long, env = "PUBLISH_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub publish_token: Option<SecretString>,

    /// Seconds between SIGTERM and exit, at most.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub shutdown_grace: u64,

    /// Database connections of the request pool (the feed listener has one more
    /// of its own).
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub database_max_connections: u32,

    /// Milliseconds a call waits for a database connection before UNAVAILABLE.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT_MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub database_acquire_timeout_ms: u64,

    /// Seconds between heartbeats on an idle feed stream (StreamNewArticles
    /// or StreamArticleChanges; the contract promises at most 30).
    #[arg(long, env = "HEARTBEAT_INTERVAL", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=30))]
    pub heartbeat_interval: u64,

    /// Unary calls in flight, at most; more get RESOURCE_EXHAUSTED at once.
    #[arg(long, env = "MAX_INFLIGHT_CALLS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_inflight_calls: u64,

    /// Open streams (both feed streams, health Watch, reflection), at most;
    /// more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "MAX_STREAMS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_streams: u64,

    /// Feed items a feed stream may fall behind the live
    /// broadcast before it catches up from the database instead.
    #[arg(long, env = "FEED_BUFFER", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub feed_buffer: u64,

    /// Articles per database read when a stream catches up (after a resume
    /// token, a lag or a gap); one read scans at most 100 times as many
    /// feed positions.
    #[arg(long, env = "FEED_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub feed_batch_size: u32,

    /// Bytes of encoded changes the live broadcast keeps for streams that
    /// have not sent them yet; a stream further behind catches up from the
    /// database. Bounds what slow and stalled readers hold together.
    #[arg(long, env = "FEED_BUFFER_BYTES", default_value_t = 32 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub feed_buffer_bytes: u64,

    /// Article body bytes per database read when a stream catches up (at
    /// least one article, however large): what a stream catching up holds
    /// at most besides its HTTP/2 window and the message being sent.
    #[arg(long, env = "FEED_BATCH_BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub feed_batch_bytes: u64,

    /// Bytes of catch-up batches all streams together hold while sending
    /// them; past it (streams that do not read hold it), a stream catches
    /// up a change at a time instead of waiting.
    #[arg(long, env = "FEED_CATCH_UP_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub feed_catch_up_bytes: u64,

    /// HTTP/2 streams one connection may have open at once.
    #[arg(
        long,
        env = "MAX_CONCURRENT_STREAMS_PER_CONNECTION",
        default_value_t = 10_000
    )]
    pub max_concurrent_streams_per_connection: u32,

    /// Seconds between HTTP/2 keepalive pings to each client.
    #[arg(long, env = "HTTP2_KEEPALIVE_INTERVAL", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub http2_keepalive_interval: u64,

    /// Seconds a keepalive ping may go unanswered before the connection is closed.
    #[arg(long, env = "HTTP2_KEEPALIVE_TIMEOUT", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub http2_keepalive_timeout: u64,

    /// Milliseconds a call may take, at most, whatever deadline its caller
    /// set (at most the contract's 5 s): a database that does not answer
    /// gives UNAVAILABLE within it. A feed stream is bounded only while
    /// it is set up, not for the life of the stream.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(10..=5_000))]
    pub request_timeout_ms: u64,

    /// Bytes a request message may have once decoded; a larger one gets
    /// RESOURCE_EXHAUSTED. The default holds the largest valid article
    /// (a 1 MiB body and its other fields) four times over.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(64 * 1024..=64 * 1024 * 1024))]
    pub max_message_bytes: u64,

    /// Seconds a client connection lives before the server asks its client
    /// to reconnect (HTTP/2 GOAWAY), so that load spreads over replicas
    /// that started since; 0: connections live as long as their clients
    /// want.
    #[arg(long, env = "MAX_CONNECTION_AGE", default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=2_592_000))]
    pub max_connection_age: u64,

    /// Seconds after a connection's GOAWAY within which its feed
    /// streams end with UNAVAILABLE (each at a random moment, so that their
    /// clients do not all resume at once), to resume on a new connection.
    #[arg(long, env = "MAX_CONNECTION_AGE_GRACE", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub max_connection_age_grace: u64,

    /// PEM file of the server's certificate chain; with TLS_KEY, the gRPC
    /// port speaks TLS only. Unset (both): plaintext.
    #[arg(long, env = "TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file of the private key of TLS_CERT.
    #[arg(long, env = "TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve gRPC-Web (over HTTP/1.1 and HTTP/2) on the gRPC port beside
    /// gRPC, for browsers. Off: HTTP/2 gRPC only.
    #[arg(long, env = "GRPC_WEB", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub grpc_web: bool,

    /// Origins whose pages may call over gRPC-Web (CORS), comma-separated,
    /// e.g. https://live.example.com; "*": any. Empty: no CORS headers, so
    /// browsers call only from the server's own origin. Needs GRPC_WEB.
    #[arg(long, env = "GRPC_WEB_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub grpc_web_allowed_origins: Vec<String>,

    /// Bytes of encoded articles and first pages of tags the read cache
    /// keeps, at most (three quarters articles, a quarter pages); 0 turns
    /// it off. A miss costs the database far more than a hit costs the
    /// service: 128 MiB (about 24,000 articles of 4 KB) halved the misses
    /// of 64 MiB under skewed reads (BENCHMARKS.md).
    #[arg(long, env = "CACHE_MAX_BYTES", default_value_t = 128 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(0..=1 << 40))]
    pub cache_max_bytes: u64,

    /// Seconds a cached article or page is served, at most. Changes reach
    /// every replica's cache through the database's notifications within
    /// milliseconds; this bounds staleness even if that path fails
    /// unnoticed.
    #[arg(long, env = "CACHE_TTL", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub cache_ttl: u64,

    /// Unary calls in flight on one client connection, at most (a call whose
    /// request message has not arrived yet counts); more get
    /// RESOURCE_EXHAUSTED. Keep it below MAX_INFLIGHT_CALLS, so that one
    /// connection cannot take every slot.
    #[arg(long, env = "MAX_CALLS_PER_CONNECTION", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_calls_per_connection: u64,

    /// Streams (both feed streams, health Watch, reflection) open on one
    /// client connection, at most; more get RESOURCE_EXHAUSTED. Every stream
    /// also counts against MAX_STREAMS.
    #[arg(long, env = "MAX_STREAMS_PER_CONNECTION", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_streams_per_connection: u64,

    /// Milliseconds a call's request message may take to start arriving
    /// after its headers; later, the call ends with DEADLINE_EXCEEDED.
    #[arg(long, env = "REQUEST_MESSAGE_TIMEOUT_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub request_message_timeout_ms: u64,

    /// Bytes of unary responses not yet written to one client connection,
    /// at most: a response that would go past it (while another waits) is
    /// answered RESOURCE_EXHAUSTED instead. One response is always allowed.
    #[arg(long, env = "MAX_UNSENT_BYTES_PER_CONNECTION", default_value_t = 16 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_unsent_bytes_per_connection: u64,

    /// Bytes of unary responses not yet written to all clients, at most;
    /// as MAX_UNSENT_BYTES_PER_CONNECTION.
    #[arg(long, env = "MAX_UNSENT_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_unsent_bytes: u64,

    /// Bytes of request messages being received, across all clients, at
    /// most (each counted at its declared size from its first bytes until
    /// the call ends); past it, RESOURCE_EXHAUSTED. At least
    /// MAX_MESSAGE_BYTES, so that the largest article can always be sent.
    #[arg(long, env = "MAX_REQUEST_BYTES", default_value_t = 32 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(64 * 1024..=1 << 32))]
    pub max_request_bytes: u64,

    /// Milliseconds a new connection has to send the HTTP/2 preface before
    /// it is closed.
    #[arg(long, env = "HANDSHAKE_TIMEOUT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub handshake_timeout_ms: u64,

    /// Seconds a connection may hold no call before it is closed (checked
    /// once per period, so it closes within twice this); 0: never.
    #[arg(long, env = "CONNECTION_IDLE_TIMEOUT", default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub connection_idle_timeout: u64,

    /// Seconds a connection may hold unary responses that make no progress
    /// (the client's window stays shut), or have its socket take no byte
    /// (the client does not read), before it is closed: its calls end with
    /// an error. Checked once per period; 0: never.
    #[arg(long, env = "RESPONSE_STALL_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub response_stall_timeout: u64,

    /// Bytes one ListArticlesByTag response takes at most, encoded: a page
    /// of large articles holds fewer than page_size (always at least one),
    /// and its next_page_token continues after the last one it holds. The
    /// default fits the 4 MiB gRPC clients accept by default.
    #[arg(long, env = "MAX_PAGE_BYTES", default_value_t = 4 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_page_bytes: u64,

    /// Compression of responses to clients that accept it: none or gzip.
    /// Requests compressed with gzip are always accepted.
    #[arg(long, env = "RESPONSE_COMPRESSION", value_enum, default_value_t = ResponseCompression::None)]
    pub response_compression: ResponseCompression,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResponseCompression {
    None,
    Gzip,
}
