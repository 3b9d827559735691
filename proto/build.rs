//! Generates the Rust types of the API from `proto/`.
//!
//! Every message of `rafter.v1` gets serde in the Kubernetes JSON shape: camelCase names,
//! missing fields default, unknown fields are an error, and default values are left out
//! when serialising. A few names differ from plain camelCase in Kubernetes (`podCIDR`,
//! `clusterIP` ...); they are renamed here. Resource maps accept numbers (`cpu: 1`).

const PROTOS: &[&str] = &[
    "proto/rafter/v1/meta.proto",
    "proto/rafter/v1/core.proto",
    "proto/rafter/v1/apps.proto",
    "proto/rafter/v1/rbac.proto",
    "proto/rafter/v1/cluster.proto",
    "proto/rafter/v1/discovery.proto",
    "proto/rafter/raft/v1/raft.proto",
    "proto/rafter/api/v1/api.proto",
    "proto/rafter/agent/v1/agent.proto",
];

include!("src/json_renames.rs");

/// Maps of resource name to quantity, where manifests may write numbers (`cpu: 1`).
const QUANTITY_MAPS: &[&str] = &[
    "ResourceRequirements.limits",
    "ResourceRequirements.requests",
    "NodeStatus.capacity",
    "NodeStatus.allocatable",
    "ResourceQuotaSpec.hard",
    "ResourceQuotaStatus.hard",
    "ResourceQuotaStatus.used",
    "PersistentVolumeSpec.capacity",
    "PersistentVolumeClaimStatus.capacity",
    "LimitRangeItem.max",
    "LimitRangeItem.min",
    "LimitRangeItem.default",
    "LimitRangeItem.default_request",
    "LimitRangeItem.max_limit_request_ratio",
];

/// Single quantity fields that may be written as numbers.
const QUANTITY_FIELDS: &[&str] = &[
    "EmptyDirVolumeSource.size_limit",
    "ResourceFieldSelector.divisor",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::configure()
        .btree_map(".")
        .extern_path(".rafter.v1.IntOrString", "crate::IntOrString")
        // Written by hand, so that a gateway can send list items already encoded.
        .extern_path(
            ".rafter.api.v1.ListResponse",
            "crate::list_response::ListResponse",
        )
        .type_attribute(
            ".rafter.v1",
            "#[derive(serde::Serialize, serde::Deserialize)] \
             #[serde(rename_all = \"camelCase\", default, deny_unknown_fields)]",
        )
        .field_attribute(
            ".rafter.v1",
            "#[serde(skip_serializing_if = \"crate::serde_support::is_default\")]",
        );
    for (field, json) in JSON_RENAMES {
        config = config.field_attribute(
            format!(".rafter.v1.{field}"),
            format!("#[serde(rename = \"{json}\")]"),
        );
    }
    for field in QUANTITY_MAPS {
        config = config.field_attribute(
            format!(".rafter.v1.{field}"),
            "#[serde(deserialize_with = \"crate::serde_support::quantity_map\")]",
        );
    }
    for field in QUANTITY_FIELDS {
        config = config.field_attribute(
            format!(".rafter.v1.{field}"),
            "#[serde(deserialize_with = \"crate::serde_support::quantity_string\")]",
        );
    }
    config = config.field_attribute(
        ".rafter.v1.ManagedFieldsEntry.fields_v1",
        "#[serde(with = \"crate::serde_support::json_text\")]",
    );
    // A CronJob holds a whole Job spec; boxing it keeps `Object` from growing by its size.
    config = config.boxed(".rafter.v1.CronJobSpec.job_template");
    // A workload's pod template spec boxed keeps `Object` at a Pod's size instead of a
    // Job's (1,256 bytes instead of 1,584): every object the informer and the watch cache
    // hold decoded is an `Object`.
    config = config.boxed(".rafter.v1.PodTemplateSpec.spec");
    // Fields most pods leave unset, boxed so an unset one costs a pointer instead of its
    // whole size in every decoded pod the informer and the watch cache hold: three probes
    // and a security context made a `Container` 1,064 bytes however little it set.
    for field in [
        "Container.liveness_probe",
        "Container.readiness_probe",
        "Container.startup_probe",
        "Container.security_context",
        "PodSpec.security_context",
        "PodSpec.dns_config",
        "ContainerStatus.last_state",
        "ContainerState.terminated",
    ] {
        config = config.boxed(format!(".rafter.v1.{field}"));
    }
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    config = config.file_descriptor_set_path(out_dir.join("rafter_descriptor.bin"));
    config.compile_protos(PROTOS, &["proto"])?;
    println!("cargo:rerun-if-changed=src/json_renames.rs");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
