//! Compiles `proto/` with protox (no system `protoc`), generates prost types and
//! pbjson serde impls that keep the proto field names on the wire.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/rindle/ingest/v1/ingest.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptors = protox::compile(protos, ["proto"])?;
    let descriptor_path = out.join("rindle_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;

    prost_build::Config::new().compile_fds(descriptors)?;

    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptor_path)?)?
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .emit_fields()
        .build(&[".rindle"])?;
    Ok(())
}
