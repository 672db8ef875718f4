//! Compiles the service's contract (`proto/` at the workspace root) without a
//! system `protoc`, as the service's own build.rs does: protox parses it,
//! tonic-prost-build writes the messages and the client (no server).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = "../../proto";
    println!("cargo:rerun-if-changed={root}");
    let descriptors = protox::Compiler::new([root])?
        .include_imports(true)
        .open_file("newsroom/content/v1/article_service.proto")?
        .file_descriptor_set();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(descriptors)?;
    Ok(())
}
