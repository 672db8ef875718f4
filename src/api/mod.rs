//! gRPC handlers: proto <-> domain, nothing else. Rules live in `domain`,
//! SQL in `store`, the live feed in `feed`; the server around the handlers
//! (layers, connections, health) in `server`.

mod auth;
mod connection_info;
pub mod deadline;
mod reads;
mod service;
mod status;
mod streams;
mod writes;

pub use auth::PublishAuth;
pub use connection_info::{ConnectionInfo, ConnectionLoad};
pub use service::ArticleApi;
pub use streams::{FramedStream, MAX_STREAM_TAGS};
