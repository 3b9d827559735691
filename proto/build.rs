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
    use_string_maps(&out_dir.join("rafter.v1.rs"))?;
    println!("cargo:rerun-if-changed=src/json_renames.rs");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}

/// The type prost generates for a `map<string, string>` field (with `btree_map`), and
/// its arguments without whitespace.
const GENERATED_STRING_MAP: &str = "::prost::alloc::collections::BTreeMap<";
const STRING_MAP_ARGUMENTS: &str =
    "::prost::alloc::string::String,::prost::alloc::string::String,>";

/// Makes every `map<string, string>` field of the generated API kinds a
/// `crate::StringMap` (one sorted vector instead of a B-tree, see `src/string_map.rs`),
/// and has the messages holding one derive `Message` against the paths that encode it
/// (`crate::string_map::prost`) and `Debug` from std (prost's own expects a B-tree).
fn use_string_maps(file: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(file)?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    // Where in `out` the derive line of the message being read is.
    let mut derive_at: Option<usize> = None;
    let mut messages_with_maps = Vec::new();
    let mut replaced = 0;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim_start().starts_with("#[derive(") && line.contains("::prost::Message)]") {
            derive_at = Some(out.len());
        }
        if let Some((head, rest)) = line.split_once(GENERATED_STRING_MAP) {
            // The type's arguments, over as many lines as prettyplease wrapped it onto.
            let mut arguments: String = rest.split_whitespace().collect();
            let mut consumed = 1;
            while !arguments.contains('>') && i + consumed < lines.len() {
                arguments.extend(lines[i + consumed].split_whitespace());
                consumed += 1;
            }
            let tail = arguments
                .strip_prefix(STRING_MAP_ARGUMENTS)
                .or_else(|| arguments.strip_prefix(&STRING_MAP_ARGUMENTS.replace(",>", ">")))
                .ok_or_else(|| format!("unexpected map type in generated code: {line}"))?
                .to_owned();
            let Some(at) = derive_at else {
                return Err(format!("map field outside a message: {line}").into());
            };
            if messages_with_maps.last() != Some(&at) {
                messages_with_maps.push(at);
            }
            out.push(format!("{head}crate::StringMap{tail}"));
            replaced += 1;
            i += consumed;
            continue;
        }
        out.push(line.to_owned());
        i += 1;
    }
    if replaced == 0 {
        return Err("no map<string, string> field found in the generated code".into());
    }
    for at in messages_with_maps.into_iter().rev() {
        out.insert(
            at + 1,
            "#[prost(prost_path = \"crate::string_map::prost\")]\n#[prost(skip_debug)]\n#[derive(Debug)]"
                .to_owned(),
        );
    }
    std::fs::write(file, out.join("\n") + "\n")?;
    Ok(())
}
