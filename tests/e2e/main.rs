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
mod changes_concurrency;
mod faults;
mod feed;
mod feed_concurrency;
mod feed_faults;
mod grpcurl;
mod hardening;
mod hostile_clients;
mod hostile_input;
mod import_cli;
mod lifecycle;
mod lifecycle_faults;
mod logs;
mod metrics;
mod overload;
mod read_pool;
mod smoke;
mod telemetry;
