//! The integration and end-to-end tests, one test binary (`cargo test --test
//! e2e`; `cargo test --test e2e feed::` runs one area). Each module is an area;
//! `common` is the harness they share: a fresh database per test, the real
//! `article-service` binary on a random port, gRPC clients, grpcurl, and the
//! proxies and private clusters that make database faults.

mod common;

mod api_errors;
mod api_publish;
mod api_reads;
mod cache;
mod change_streams;
mod changes_concurrency;
mod client_crate;
mod faults;
mod feed;
mod feed_concurrency;
mod feed_faults;
mod grpc_web;
mod grpcurl;
mod hardening;
mod hostile_clients;
mod hostile_input;
mod import_cli;
mod interop;
mod lifecycle;
mod lifecycle_faults;
mod logs;
mod metrics;
mod monitoring;
mod overload;
mod read_pool;
mod smoke;
mod stalled_streams;
mod telemetry;
