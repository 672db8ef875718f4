//! Compiles `proto/` without a system `protoc`: protox parses the files into a
//! descriptor set, tonic-prost-build generates the Rust code from it, and the
//! same descriptor set is written out for gRPC server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/newsroom/content/v1/article_service.proto";
    println!("cargo:rerun-if-changed=proto");

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

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
