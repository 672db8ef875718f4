//! article-service: the newsroom's content service.
//!
//! Rooms, outermost first; each imports only rooms below it:
//! - `server`: the process around the handlers: connections, tower layers,
//!   admission, health, reflection, the feed streams' direct path.
//! - `api`: the gRPC handlers, thin: request to domain, to the store, feed
//!   and cache, back to a response.
//! - `feed`: both streams' live broadcast, catch-up and release job.
//! - `cache`: this replica's read cache.
//! - `wire`: proto to and from domain types, and the pre-encoded responses
//!   that the API and the feed both send.
//! - `store`: every SQL statement and LISTEN.
//! - `domain`: the contract's rules as pure functions; imports no other room.
//!
//! Beside them: `config` (the typed configuration, which builds each room's
//! settings), `startup` (builds the rooms, serves, drains), `import` (the
//! `import` command), `error` (the one error type and its status codes),
//! `metrics` and `telemetry`. `main.rs` only parses the command line.

pub mod proto {
    //! Code generated from `proto/` by `build.rs`.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("newsroom.content.v1");
    // `article_service_server`, generated apart (see `build.rs`): the
    // responses that carry articles are `crate::wire`'s pre-encoded ones.
    include!(concat!(env!("OUT_DIR"), "/server/newsroom.content.v1.rs"));

    /// Encoded `FileDescriptorSet` of the service, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/article_service_descriptor.bin"));
}

pub mod api;
pub mod cache;
pub mod config;
pub mod domain;
pub mod error;
pub mod feed;
pub mod import;
pub mod metrics;
pub mod server;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod wire;
