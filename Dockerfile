# syntax=docker/dockerfile:1
#
# article-service container image: `docker build -t article-service .`
#
# Runs `serve` by default; the same image runs the migrations as a Job by overriding the
# arguments (`args: ["migrate"]`). Runs as the distroless `nonroot` user (65532), with no
# shell and no package manager. Linted by hadolint in `make test`, which also builds the
# release binary with the same cargo command as below (no Docker engine is needed for that).
#
# In production pin both base images by digest (e.g. `rust:1-bookworm@sha256:...`) and let a
# bot bump them; the tags below float with Rust releases and Debian security updates.

# --- build ----------------------------------------------------------------------------
# Debian 12 (glibc 2.36), the same release as the runtime image, so the binary's glibc
# requirement is met. build.rs compiles proto/ with protox: no protoc is needed.
FROM rust:1-bookworm AS builder
WORKDIR /src

# 1. Dependencies only, on placeholder sources: this layer is reused until Cargo.toml,
#    Cargo.lock, build.rs or proto/ change. The workspace's other members (the benchmark
#    harness's loadgen, the Rust client) are never built here, but cargo reads their
#    manifests, and wants the source files they name.
COPY Cargo.toml Cargo.lock build.rs ./
COPY crates/loadgen/Cargo.toml crates/loadgen/
COPY crates/article-client/Cargo.toml crates/article-client/
COPY proto/ proto/
RUN mkdir -p src crates/loadgen/src crates/article-client/src \
    && echo 'fn main() {}' > src/main.rs \
    && echo '' > src/lib.rs \
    && echo 'fn main() {}' > crates/loadgen/src/main.rs \
    && echo '' > crates/article-client/src/lib.rs \
    && cargo build --release --locked --bin article-service \
    && rm -rf src

# 2. The service itself. `touch` makes cargo rebuild the crate even when the copied files
#    are older than the placeholder build's outputs.
COPY migrations/ migrations/
COPY src/ src/
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin article-service \
    && install -D -m 0755 target/release/article-service /out/article-service

# --- runtime --------------------------------------------------------------------------
# glibc, libgcc and CA certificates; no shell. TLS to PostgreSQL is rustls (no OpenSSL).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/article-service /usr/local/bin/article-service
USER 65532:65532
# 50051: gRPC (GRPC_ADDR); 9090: Prometheus /metrics (METRICS_ADDR).
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/article-service"]
CMD ["serve"]
