//! gRPC handlers: proto <-> domain, nothing else. Rules live in `domain`,
//! SQL in `store`, the live feed in `feed`.

mod auth;
pub mod convert;
mod deadline;
mod service;
mod status;

pub use auth::PublishAuth;
pub use service::ArticleApi;
