//! gRPC handlers: proto <-> domain, nothing else. Rules live in `domain`,
//! SQL in `store`, the live feed in `feed`.

mod admission;
mod auth;
mod call_log;
mod deadline;
mod message_size;
mod reads;
mod service;
mod status;
mod streams;
mod writes;

pub use admission::AdmissionLayer;
pub use auth::PublishAuth;
pub use call_log::CallLogLayer;
pub use message_size::oversized_is_resource_exhausted;
pub use service::ArticleApi;
pub use streams::MAX_STREAM_TAGS;
