//! Generates the tiny KV service a benchmark store member serves (`proto/`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/rafter/bench/v1/bench.proto";
    tonic_prost_build::configure().compile_protos(&[proto], &["proto"])?;
    println!("cargo:rerun-if-changed={proto}");
    Ok(())
}
