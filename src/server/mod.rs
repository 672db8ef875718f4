//! The gRPC server around the handlers (`api`): the tower layers every call
//! goes through (call log, admission, the oversized-request code, the
//! feed streams and cached articles sent as framed), the
//! accepted connections, TLS, health and reflection, and the accept loop.
//! It composes `api`; `api` never imports it.

mod accept;
mod admission;
mod bodies;
mod build;
mod cached_reads;
mod call_log;
mod connection;
mod ends_on_shutdown;
mod feed_streams;
mod grpc_web;
mod health;
mod message_size;
mod methods;
mod slot;

pub use accept::raise_open_file_limit;
pub use admission::Limits;
pub use build::{Serving, serve};
pub use connection::{ConnectionTimeouts, ServerConnection, WRITE_BUFFER_BYTES};
pub use health::Health;
