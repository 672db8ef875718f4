//! article-service: the newsroom's content service.
//!
//! Layers, outermost first: `server` (tower layers, connections, health)
//! -> `api` (gRPC handlers) -> `domain` (pure rules) and `feed` (live feed)
//! -> `store` (SQL). `startup` wires them together; `main.rs` only parses
//! the command line.

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
