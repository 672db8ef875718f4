//! gRPC handlers: proto <-> domain, nothing else. Rules live in `domain`,
//! SQL in `store`, the live feed in `feed`; the server around the handlers
//! (layers, connections, health) in `server`.

mod auth;
mod connection_info;
pub mod convert;
mod deadline;
mod service;
mod status;
pub mod wire;

pub use auth::PublishAuth;
pub use connection_info::ConnectionInfo;
pub use service::ArticleApi;
