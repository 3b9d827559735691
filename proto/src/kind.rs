//! The registry of kinds: for each kind its API group and version, plural resource name,
//! scope and short names, and [`Object`], a typed object of any kind.
//!
//! Owns the mapping between names users type (`deploy`, `pods`, `Deployment`,
//! `deployments.apps`) and kinds, and the check of a manifest's `apiVersion`. It does not
//! parse text (see `manifest`) or validate contents (see `validation`).

use prost::Message;

use crate::v1::ObjectMeta;
use crate::{api, v1};

/// Static facts about one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    /// The kind.
    pub kind: Kind,
    /// The kind's name as written in manifests (`Deployment`).
    pub name: &'static str,
    /// The API group ("" for the core group).
    pub group: &'static str,
    /// The served version (`v1`).
    pub version: &'static str,
    /// The plural resource name (`deployments`).
    pub plural: &'static str,
    /// Whether objects of this kind live in a namespace.
    pub namespaced: bool,
    /// Short names accepted on the command line (`deploy`).
    pub short_names: &'static [&'static str],
}

impl KindInfo {
    /// The `apiVersion` this kind is served as (`apps/v1`, or `v1` for the core group).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Why a kind or an `apiVersion` was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    /// The kind is not one the API serves.
    #[error("unknown kind {name:?}{hint}")]
    UnknownKind {
        /// The kind as written.
        name: String,
        /// A suggestion, starting with "; " when present.
        hint: String,
    },
    /// The `apiVersion` names a group or version that does not serve this kind.
    #[error("{message}")]
    WrongApiVersion {
        /// What was wrong and the apiVersion to use instead.
        message: String,
    },
}

macro_rules! kinds {
    ($( $variant:ident => $group:literal, $version:literal, $plural:literal, $namespaced:literal, [$($short:literal),*] ;)*) => {
        /// Every kind the API serves.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind {
            $(
                #[doc = concat!("`", $group, "/", $version, "` ", stringify!($variant))]
                $variant,
            )*
        }

        const KIND_INFO: &[KindInfo] = &[
            $(KindInfo {
                kind: Kind::$variant,
                name: stringify!($variant),
                group: $group,
                version: $version,
                plural: $plural,
                namespaced: $namespaced,
                short_names: &[$($short),*],
            },)*
        ];

        /// A typed object of any kind.
        #[derive(Clone, Debug, PartialEq)]
        // reason: a Pod is the largest kind (~1.2 KB) and the commonest; boxing each kind
        // would add an allocation per object. Caches hold objects behind an `Arc`, and
        // workloads box their pod template's spec so no kind outgrows a Pod.
        #[allow(clippy::large_enum_variant)]
        pub enum Object {
            $(
                #[doc = concat!("A ", stringify!($variant), ".")]
                $variant(v1::$variant),
            )*
        }

        impl Object {
            /// The object's kind.
            pub fn kind(&self) -> Kind {
                match self {
                    $(Object::$variant(_) => Kind::$variant,)*
                }
            }

            /// The object's metadata (an empty one when the object has none).
            pub fn metadata(&self) -> &ObjectMeta {
                match self {
                    $(Object::$variant(o) => o.metadata.as_ref().unwrap_or(&EMPTY_META),)*
                }
            }

            /// The object's metadata, created empty when missing.
            pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(Object::$variant(o) => o.metadata.get_or_insert_with(ObjectMeta::default),)*
                }
            }

            /// Sets `apiVersion` and `kind` to the served ones.
            pub fn set_type_meta(&mut self) {
                let info = self.kind().info();
                let api_version = info.api_version();
                match self {
                    $(Object::$variant(o) => {
                        o.api_version = api_version;
                        o.kind = info.name.to_owned();
                    })*
                }
            }

            /// An object of `kind` with every field at its default.
            pub fn empty(kind: Kind) -> Object {
                match kind {
                    $(Kind::$variant => Object::$variant(v1::$variant::default()),)*
                }
            }

            /// The protobuf encoding of the object (what the store keeps).
            pub fn encode_to_vec(&self) -> Vec<u8> {
                match self {
                    $(Object::$variant(o) => o.encode_to_vec(),)*
                }
            }

            /// Decodes an object of a known kind from its protobuf encoding.
            pub fn decode(kind: Kind, bytes: &[u8]) -> Result<Object, prost::DecodeError> {
                Ok(match kind {
                    $(Kind::$variant => Object::$variant(v1::$variant::decode(bytes)?),)*
                })
            }

            /// The object in the Kubernetes JSON shape.
            pub fn to_json_value(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self {
                    $(Object::$variant(o) => serde_json::to_value(o),)*
                }
            }

            /// Appends the object in the Kubernetes JSON shape to `out`, with no JSON tree in
            /// between (what a large list is written with).
            pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
                match self {
                    $(Object::$variant(o) => serde_json::to_writer(out, o),)*
                }
            }

            /// The object as YAML in the Kubernetes shape.
            pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
                match self {
                    $(Object::$variant(o) => serde_yaml::to_string(o),)*
                }
            }

            /// Builds an object of a known kind from its Kubernetes JSON form (after a patch,
            /// for instance); the error names the bad field's path.
            pub fn from_json_value(kind: Kind, value: serde_json::Value) -> Result<Object, String> {
                Object::deserialize_kind(kind, value).map_err(|e| format!("{}: {}", e.path(), e.inner()))
            }

            /// Builds an object of a known kind straight from its Kubernetes JSON text, with no
            /// JSON tree in between (what a write through the REST API is read with); the
            /// error names the bad field's path. Trailing text after the object is an error.
            pub fn from_json_slice(kind: Kind, bytes: &[u8]) -> Result<Object, String> {
                let mut deserializer = serde_json::Deserializer::from_slice(bytes);
                let object = Object::deserialize_kind(kind, &mut deserializer)
                    .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
                deserializer.end().map_err(|e| e.to_string())?;
                Ok(object)
            }

            /// The object's `apiVersion` and `kind` as they were sent (empty when absent).
            pub fn type_meta(&self) -> (&str, &str) {
                match self {
                    $(Object::$variant(o) => (o.api_version.as_str(), o.kind.as_str()),)*
                }
            }

            /// Deserialises an object of a known kind, reporting the path of a bad field.
            pub(crate) fn deserialize_kind<'de, D>(
                kind: Kind,
                deserializer: D,
            ) -> Result<Object, serde_path_to_error::Error<D::Error>>
            where
                D: serde::Deserializer<'de>,
            {
                Ok(match kind {
                    $(Kind::$variant => Object::$variant(serde_path_to_error::deserialize(deserializer)?),)*
                })
            }
        }

        impl From<Object> for api::TypedObject {
            fn from(object: Object) -> api::TypedObject {
                api::TypedObject {
                    kind: Some(match object {
                        $(Object::$variant(o) => api::typed_object::Kind::$variant(o),)*
                    }),
                }
            }
        }

        impl TryFrom<api::TypedObject> for Object {
            type Error = KindError;

            fn try_from(typed: api::TypedObject) -> Result<Object, KindError> {
                match typed.kind {
                    $(Some(api::typed_object::Kind::$variant(o)) => Ok(Object::$variant(o)),)*
                    None => Err(KindError::UnknownKind {
                        name: String::new(),
                        hint: "; the request carries no object".to_owned(),
                    }),
                }
            }
        }

        $(
            impl From<v1::$variant> for Object {
                fn from(o: v1::$variant) -> Object {
                    Object::$variant(o)
                }
            }
        )*
    };
}

kinds! {
    Namespace => "", "v1", "namespaces", false, ["ns"];
    Node => "", "v1", "nodes", false, ["no"];
    Pod => "", "v1", "pods", true, ["po"];
    Binding => "", "v1", "bindings", true, [];
    Service => "", "v1", "services", true, ["svc"];
    Endpoints => "", "v1", "endpoints", true, ["ep"];
    ConfigMap => "", "v1", "configmaps", true, ["cm"];
    Secret => "", "v1", "secrets", true, [];
    ServiceAccount => "", "v1", "serviceaccounts", true, ["sa"];
    ResourceQuota => "", "v1", "resourcequotas", true, ["quota"];
    PersistentVolume => "", "v1", "persistentvolumes", false, ["pv"];
    PersistentVolumeClaim => "", "v1", "persistentvolumeclaims", true, ["pvc"];
    Event => "", "v1", "events", true, ["ev"];
    ReplicaSet => "apps", "v1", "replicasets", true, ["rs"];
    Deployment => "apps", "v1", "deployments", true, ["deploy"];
    DaemonSet => "apps", "v1", "daemonsets", true, ["ds"];
    Job => "batch", "v1", "jobs", true, [];
    CertificateSigningRequest => "certificates.k8s.io", "v1", "certificatesigningrequests", false, ["csr"];
    Role => "rbac.authorization.k8s.io", "v1", "roles", true, [];
    ClusterRole => "rbac.authorization.k8s.io", "v1", "clusterroles", false, [];
    RoleBinding => "rbac.authorization.k8s.io", "v1", "rolebindings", true, [];
    ClusterRoleBinding => "rbac.authorization.k8s.io", "v1", "clusterrolebindings", false, [];
    StorageClass => "storage.k8s.io", "v1", "storageclasses", false, ["sc"];
    Lease => "coordination.k8s.io", "v1", "leases", true, [];
    NetworkPolicy => "networking.k8s.io", "v1", "networkpolicies", true, ["netpol"];
    Ingress => "networking.k8s.io", "v1", "ingresses", true, ["ing"];
    EndpointSlice => "discovery.k8s.io", "v1", "endpointslices", true, [];
    CronJob => "batch", "v1", "cronjobs", true, ["cj"];
    LimitRange => "", "v1", "limitranges", true, ["limits"];
}

static EMPTY_META: ObjectMeta = ObjectMeta {
    name: String::new(),
    generate_name: String::new(),
    namespace: String::new(),
    uid: String::new(),
    resource_version: String::new(),
    generation: 0,
    creation_timestamp: None,
    deletion_timestamp: None,
    deletion_grace_period_seconds: None,
    labels: crate::StringMap::new(),
    annotations: crate::StringMap::new(),
    owner_references: Vec::new(),
    finalizers: Vec::new(),
    self_link: String::new(),
    managed_fields: Vec::new(),
};

/// API versions Kubernetes once served for a kind and no longer does, with what replaced
/// them. Manifests in these versions are refused with a message naming the current one.
const REMOVED_VERSIONS: &[(Kind, &str)] = &[
    (Kind::Deployment, "extensions/v1beta1"),
    (Kind::Deployment, "apps/v1beta1"),
    (Kind::Deployment, "apps/v1beta2"),
    (Kind::ReplicaSet, "extensions/v1beta1"),
    (Kind::ReplicaSet, "apps/v1beta2"),
    (Kind::DaemonSet, "extensions/v1beta1"),
    (Kind::DaemonSet, "apps/v1beta2"),
    (Kind::Ingress, "extensions/v1beta1"),
    (Kind::Ingress, "networking.k8s.io/v1beta1"),
    (Kind::NetworkPolicy, "extensions/v1beta1"),
    (
        Kind::CertificateSigningRequest,
        "certificates.k8s.io/v1beta1",
    ),
    (Kind::Role, "rbac.authorization.k8s.io/v1beta1"),
    (Kind::ClusterRole, "rbac.authorization.k8s.io/v1beta1"),
    (Kind::RoleBinding, "rbac.authorization.k8s.io/v1beta1"),
    (
        Kind::ClusterRoleBinding,
        "rbac.authorization.k8s.io/v1beta1",
    ),
    (Kind::StorageClass, "storage.k8s.io/v1beta1"),
    (Kind::Lease, "coordination.k8s.io/v1beta1"),
    (Kind::Job, "batch/v1beta1"),
    (Kind::CronJob, "batch/v1beta1"),
    (Kind::EndpointSlice, "discovery.k8s.io/v1beta1"),
];

impl Kind {
    /// Every kind, in registry order.
    pub fn all() -> impl Iterator<Item = Kind> {
        KIND_INFO.iter().map(|info| info.kind)
    }

    /// Static facts about the kind.
    pub fn info(self) -> &'static KindInfo {
        // The table is generated from the same list as the enum, in the same order.
        &KIND_INFO[self as usize]
    }

    /// The categories the kind belongs to (`all` for the workloads `kubectl get all`
    /// lists, as Kubernetes files them).
    pub fn categories(self) -> &'static [&'static str] {
        match self {
            Kind::Pod
            | Kind::Service
            | Kind::Deployment
            | Kind::ReplicaSet
            | Kind::DaemonSet
            | Kind::Job
            | Kind::CronJob => &["all"],
            _ => &[],
        }
    }

    /// The kind's name as written in manifests.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Looks up a kind by its exact manifest name (`Deployment`).
    pub fn from_name(name: &str) -> Result<Kind, KindError> {
        KIND_INFO
            .iter()
            .find(|info| info.name == name)
            .map(|info| info.kind)
            .ok_or_else(|| unknown_kind(name))
    }

    /// Resolves what a user typed on the command line: a kind name in any case, a plural,
    /// a singular, a short name, or `plural.group` (`deployments.apps`).
    pub fn resolve(typed: &str) -> Result<Kind, KindError> {
        let lower = typed.to_ascii_lowercase();
        let (resource, group) = match lower.split_once('.') {
            Some((resource, group)) => (resource.to_owned(), Some(group.to_owned())),
            None => (lower.clone(), None),
        };
        KIND_INFO
            .iter()
            .find(|info| {
                let name_matches = info.name.eq_ignore_ascii_case(&resource)
                    || info.plural == resource
                    || info.short_names.contains(&resource.as_str());
                let group_matches = group.as_deref().is_none_or(|g| g == info.group);
                name_matches && group_matches
            })
            .map(|info| info.kind)
            .ok_or_else(|| unknown_kind(typed))
    }

    /// Checks a manifest's `apiVersion` against the kind, with a message naming the
    /// served version when it is wrong.
    pub fn check_api_version(self, api_version: &str) -> Result<(), KindError> {
        let info = self.info();
        let served = info.api_version();
        if api_version == served {
            return Ok(());
        }
        let message = if REMOVED_VERSIONS.contains(&(self, api_version)) {
            format!(
                "{} in {api_version} is no longer served; use apiVersion: {served}",
                info.name
            )
        } else {
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let known_group = KIND_INFO.iter().any(|k| k.group == group);
            if known_group {
                format!(
                    "apiVersion {api_version:?} does not serve kind {}; use apiVersion: {served}",
                    info.name
                )
            } else {
                format!(
                    "unknown API group {group:?} in apiVersion {api_version:?}; {} is served as apiVersion: {served}",
                    info.name
                )
            }
        };
        Err(KindError::WrongApiVersion { message })
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn unknown_kind(name: &str) -> KindError {
    let hint = if name == "Config" {
        "; a kind: Config document is a client configuration file (kubeconfig), not an API object"
            .to_owned()
    } else if let Some(near) = KIND_INFO.iter().find(|info| {
        info.name
            .to_ascii_lowercase()
            .starts_with(&name.to_ascii_lowercase())
            && !name.is_empty()
    }) {
        format!("; did you mean {}?", near.name)
    } else {
        "; `rafter api-resources` lists the kinds".to_owned()
    };
    KindError::UnknownKind {
        name: name.to_owned(),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_order_matches_the_enum() {
        for (i, info) in KIND_INFO.iter().enumerate() {
            assert_eq!(info.kind as usize, i, "{} is out of order", info.name);
            assert_eq!(Kind::from_name(info.name).unwrap(), info.kind);
        }
    }

    #[test]
    fn users_may_type_plurals_short_names_and_groups() {
        assert_eq!(Kind::resolve("deploy").unwrap(), Kind::Deployment);
        assert_eq!(Kind::resolve("Deployments").unwrap(), Kind::Deployment);
        assert_eq!(Kind::resolve("deployments.apps").unwrap(), Kind::Deployment);
        assert_eq!(Kind::resolve("po").unwrap(), Kind::Pod);
        assert_eq!(
            Kind::resolve("csr").unwrap(),
            Kind::CertificateSigningRequest
        );
        assert!(Kind::resolve("deployments.batch").is_err());
        assert!(Kind::resolve("gadget").is_err());
    }

    #[test]
    fn removed_and_misspelled_groups_name_the_served_version() {
        let removed = Kind::Ingress
            .check_api_version("extensions/v1beta1")
            .unwrap_err();
        assert!(
            removed.to_string().contains("networking.k8s.io/v1"),
            "{removed}"
        );
        let typo = Kind::Ingress
            .check_api_version("extentions/v1beta1")
            .unwrap_err();
        assert!(
            typo.to_string()
                .contains("unknown API group \"extentions\""),
            "{typo}"
        );
        assert!(Kind::Deployment.check_api_version("apps/v1").is_ok());
        assert!(Kind::Pod.check_api_version("apps/v1").is_err());
    }

    #[test]
    fn objects_convert_to_and_from_the_wire_envelope() {
        let mut pod = v1::Pod::default();
        pod.metadata_mut_for_test().name = "p".into();
        let object = Object::from(pod);
        let typed = api::TypedObject::from(object.clone());
        assert_eq!(Object::try_from(typed).unwrap(), object);
        assert!(Object::try_from(api::TypedObject { kind: None }).is_err());
    }

    trait MetaForTest {
        fn metadata_mut_for_test(&mut self) -> &mut ObjectMeta;
    }

    impl MetaForTest for v1::Pod {
        fn metadata_mut_for_test(&mut self) -> &mut ObjectMeta {
            self.metadata.get_or_insert_with(ObjectMeta::default)
        }
    }

    #[test]
    fn unknown_kinds_get_a_hint() {
        let err = Kind::from_name("Config").unwrap_err().to_string();
        assert!(err.contains("kubeconfig"), "{err}");
        let err = Kind::from_name("Deploy").unwrap_err().to_string();
        assert!(err.contains("did you mean Deployment"), "{err}");
    }
}
