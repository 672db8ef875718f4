//! gRPC handlers: proto <-> domain, nothing else. Rules live in `domain`,
//! SQL in `store`, the live feed in `feed`.

mod admission;
mod auth;
mod call_log;
pub mod convert;
mod deadline;
mod service;
mod status;

pub use admission::AdmissionLayer;
pub use auth::PublishAuth;
pub use call_log::CallLogLayer;
pub use service::ArticleApi;
