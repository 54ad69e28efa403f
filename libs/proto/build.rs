//! Compiles every bounded context's protos with protox (no system protoc needed), writes one
//! descriptor set per context for server reflection, and generates the tonic code.

use std::path::PathBuf;

use prost::Message;

/// (package directory under proto/, descriptor file name)
const CONTEXTS: &[(&str, &str)] = &[
    ("inventory/stock/v1", "stock_descriptor.bin"),
    ("inventory/allocation/v1", "allocation_descriptor.bin"),
    ("inventory/replenishment/v1", "replenishment_descriptor.bin"),
    (
        "inventory/reconciliation/v1",
        "reconciliation_descriptor.bin",
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", root.display());

    // google.rpc error details: descriptors only (tonic-types has the Rust types), so
    // reflection clients can decode the details of every error.
    let details = protox::compile(["google/rpc/error_details.proto"], [&root])?;
    std::fs::write(
        out_dir.join("error_details_descriptor.bin"),
        details.encode_to_vec(),
    )?;

    for (package_dir, descriptor_name) in CONTEXTS {
        let dir = root.join(package_dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
            .collect();
        files.sort();
        let relative: Vec<PathBuf> = files
            .iter()
            .map(|f| f.strip_prefix(&root).map(PathBuf::from))
            .collect::<Result<_, _>>()?;
        let fds = protox::compile(&relative, [&root])?;
        std::fs::write(out_dir.join(descriptor_name), fds.encode_to_vec())?;
        // Maps as BTreeMap: a HashMap encodes its entries in random order, so the same
        // request would fingerprint differently on a retry (see idempotency in the runtime).
        tonic_prost_build::configure()
            .btree_map(".")
            // google.rpc.Status (a batch entry's error) is tonic-types' own type.
            .extern_path(".google.rpc", "::tonic_types::pb")
            .build_client(true)
            .build_server(true)
            .compile_fds(fds)?;
    }
    Ok(())
}
