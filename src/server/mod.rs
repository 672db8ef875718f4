//! The gRPC server around the handlers (`api`): the tower layers every call
//! goes through (call log, load shedding, the oversized-request code, the
//! feed streams sent as framed), the
//! accepted connections, TLS, health and reflection, and the accept loop.
//! It composes `api`; `api` never imports it.

mod admission;
mod build;
mod call_log;
mod connection;
mod feed_streams;
mod grpc_web;
mod health;
mod message_size;
mod methods;

pub use build::{Serving, serve};
pub use connection::{ServerConnection, WRITE_BUFFER_BYTES};
pub use health::Health;
