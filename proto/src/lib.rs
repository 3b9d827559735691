//! # Layout
//!
//! Rafter's API schema and everything that turns text into typed objects:
//!
//! | module | owns |
//! |---|---|
//! | [`v1`] | the generated resource kinds (`Pod`, `Deployment` ...) with serde in the Kubernetes JSON shape |
//! | [`api`] | the generated public gRPC services, `Resources` and `Cluster` |
//! | [`raft`] | the generated internal `Raft` service masters use between themselves |
//! | [`agent`] | the generated internal `AgentLogs` service node agents serve to the gateways |
//! | `cron` | [`CronSchedule`]: a CronJob's schedule in its time zone, the next tick after an instant |
//! | `cidr` | IPv4 networks ([`Ipv4Cidr`]): parsing, membership, address arithmetic |
//! | `json_renames` | the fields whose JSON name is not the camelCase of the proto name ([`JSON_RENAMES`]) |
//! | `int_or_string` | [`IntOrString`] (`targetPort: 8080` or `http`, `maxSurge: 25%`) |
//! | `kind` | the registry of kinds ([`Kind`]) and [`Object`], a typed object of any kind |
//! | `manifest` | YAML/JSON documents into [`Object`]s, with errors naming source, document and field |
//! | `quantity` | exact resource quantities ([`Quantity`]) |
//! | `selector` | label and field selectors ([`Selector`], [`FieldSelector`]): parsing, matching, printing |
//! | `serde_support` | serde glue named from `build.rs` |
//! | [`string_map`] | [`StringMap`], the API's string-to-string maps as one sorted vector, and their protobuf encoding |
//! | [`validation`] | [`validate`]: every problem of an object at once, each with its field path ([`FieldError`]) |
//! | `defaults` | [`apply_defaults`]: Kubernetes' defaults for fields left empty, never overwriting |
//! | [`quota`] | what an object charges against a ResourceQuota's hard keys (gateway and controller share it) |
//!
//! This crate does no I/O and holds no state: it parses, validates and serialises.

mod cidr;
mod cron;
mod defaults;
mod footprint;
mod int_or_string;
mod json_renames;
mod kind;
mod list_response;
mod manifest;
mod options;
mod patch_type;
mod quantity;
pub mod quota;
mod selector;
mod serde_support;
pub mod string_map;
mod timestamp;
pub mod validation;
mod watch;
pub mod well_known;

#[cfg(test)]
mod list_response_test;
#[cfg(test)]
mod round_trip_test;
#[cfg(test)]
mod string_map_test;

pub use cidr::{CidrError, Ipv4Cidr};
pub use cron::{CronSchedule, ScheduleError};
pub use defaults::{apply_defaults, image_pull_policy, DEFAULT_AFFINITY_TIMEOUT_SECONDS};
pub use footprint::decoded_bytes;
pub use int_or_string::{IntOrString, IntOrStringError};
pub use json_renames::JSON_RENAMES;

/// The protobuf descriptors of every `.proto` file (with their comments), for what
/// describes the schema at run time (the REST API's OpenAPI documents).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rafter_descriptor.bin"));
pub use kind::{Kind, KindError, KindInfo, Object};
pub use manifest::{parse_manifests, parse_object, Document, ManifestError, MAX_MANIFEST_BYTES};
pub use options::{DeleteOptions, ListOptions, OptionError, Propagation, ReadConsistency};
pub use patch_type::{PatchType, UnsupportedPatchType, MERGE_PATCH, STRATEGIC_MERGE_PATCH};
pub use quantity::{Quantity, QuantityError, QuantityFormat};
pub use selector::{
    supported_fields, FieldOperator, FieldRequirement, FieldSelector, Operator, Requirement,
    Selector, SelectorError,
};
pub use string_map::StringMap;
pub use timestamp::Timestamp;
pub use validation::{validate, FieldError, FieldErrorKind};
pub use watch::{WatchEvent, WatchEventType};

/// The generated code, nested as the protobuf packages are so cross-package paths resolve.
mod generated {
    /// The public API kinds (package `rafter.v1`).
    pub mod v1 {
        tonic::include_proto!("rafter.v1");
    }

    pub mod api {
        /// The public gRPC services (package `rafter.api.v1`).
        pub mod v1 {
            tonic::include_proto!("rafter.api.v1");

            pub use crate::list_response::{EncodedItem, ListResponse};
        }
    }

    pub mod raft {
        /// The internal Raft transport between masters (package `rafter.raft.v1`).
        pub mod v1 {
            tonic::include_proto!("rafter.raft.v1");
        }
    }

    pub mod agent {
        /// The internal service node agents serve to the gateways (package `rafter.agent.v1`).
        pub mod v1 {
            tonic::include_proto!("rafter.agent.v1");
        }
    }
}

/// The internal services node agents serve to the gateways: `AgentLogs`, `AgentMetrics`
/// and `AgentStreams` (exec) (package `rafter.agent.v1`).
pub use generated::agent::v1 as agent;

/// The public gRPC API: the `Resources` and `Cluster` services (package `rafter.api.v1`).
pub use generated::api::v1 as api;
/// The internal Raft transport between masters (package `rafter.raft.v1`).
pub use generated::raft::v1 as raft;
/// The public API kinds (package `rafter.v1`).
pub use generated::v1;
