//! Compiles `proto/` without a system `protoc`: protox parses the files into a
//! descriptor set, tonic-prost-build generates the Rust code from it (in two
//! passes: the server apart, see below), and the same descriptor set is
//! written out for gRPC server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/newsroom/content/v1/article_service.proto";
    println!("cargo:rerun-if-changed=proto");
    // `sqlx::migrate!` embeds migrations/ at compile time, but cargo does not
    // see a new file there by itself (sqlx's documented build.rs line).
    println!("cargo:rerun-if-changed=migrations");

    let descriptors = protox::Compiler::new(["proto"])?
        .include_imports(true)
        .include_source_info(true)
        .open_file(proto)?
        .file_descriptor_set();

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("article_service_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    // The messages and the client, as the .proto says.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(descriptors.clone())?;

    // The server apart, using those messages (`crate::proto`), except that
    // the responses that carry articles carry them already encoded
    // (`crate::wire`, which says why that is wire-compatible). The exact
    // path wins over the package's. `src/lib.rs` includes the result in
    // `proto`.
    let server_dir = out_dir.join("server");
    std::fs::create_dir_all(&server_dir)?;
    let mut server = tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .out_dir(&server_dir)
        .codec_path("crate::wire::ServerCodec")
        .extern_path(".newsroom.content.v1", "crate::proto");
    for (message, encoded) in [
        ("StreamNewArticlesResponse", "Framed"),
        ("StreamArticleChangesResponse", "Framed"),
        ("GetArticleResponse", "EncodedGetArticleResponse"),
        (
            "ListArticlesByTagResponse",
            "EncodedListArticlesByTagResponse",
        ),
    ] {
        server = server.extern_path(
            format!(".newsroom.content.v1.{message}"),
            format!("crate::wire::{encoded}"),
        );
    }
    server.compile_fds(descriptors)?;
    Ok(())
}
