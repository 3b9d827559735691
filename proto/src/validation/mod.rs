//! Validation of typed objects, Kubernetes-style: every problem is reported at once, each
//! with the full field path (`spec.template.spec.containers[0].ports[0].containerPort`).
//!
//! Owns the rules an object must meet on its own: names, labels, required fields, enum
//! values, ranges and the consistency of fields within one object. It must not look at
//! other objects (whether a referenced ConfigMap exists is the API server's business),
//! must not change the object (see `defaults`), and does no I/O.
//!
//! ```text
//!   validate(&Object) ──► meta::object_meta   (name, namespace, labels, annotations)
//!                     └─► core / apps / rbac / cluster::<kind>(obj, &mut Errors)
//!                                │
//!                                ▼
//!                        Vec<FieldError>  (all of them, in field order)
//! ```
//!
//! | module | owns |
//! |---|---|
//! | `names` | the string formats: DNS-1123 labels and subdomains, label keys and values, env var names, IANA port names, config keys |
//! | `meta` | `metadata`, label selectors and the selector/template match |
//! | `pod` | pod specs, in Pods and in workload templates: containers, volumes, probes, tolerations, affinity |
//! | `core` | the other core kinds: Node, Service, ConfigMap, Secret, volumes and claims ... |
//! | `apps` | ReplicaSet, Deployment, DaemonSet, Job and CronJob |
//! | `rbac` | Role, ClusterRole and their bindings |
//! | `cluster` | CertificateSigningRequest, StorageClass, Lease, NetworkPolicy, Ingress |
//! | `discovery` | EndpointSlice |
//!
//! Validation accepts objects both before and after [`crate::apply_defaults`]: a field the
//! defaults fill in (restartPolicy, imagePullPolicy, protocol ...) may be empty, but when it
//! is set it must hold an allowed value.

mod apps;
mod cluster;
mod core;
mod discovery;
mod meta;
mod names;
mod pod;
mod rbac;

use std::fmt;

use crate::{Kind, Object};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {kind}{}", detail_suffix(.detail))]
pub struct FieldError {
    /// The full path of the field (`spec.containers[0].name`, `metadata.labels[app]`).
    pub path: String,
    /// What kind of problem it is, with the offending value where there is one.
    pub kind: FieldErrorKind,
    /// A human explanation, possibly empty.
    pub detail: String,
}

/// What is wrong with a field, as Kubernetes names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// The field must be set and is not.
    Required,
    /// The field holds a value that is not allowed; carries the value.
    Invalid(String),
    /// The field holds a value outside a fixed set.
    NotSupported {
        /// The value found.
        value: String,
        /// The values allowed.
        supported: Vec<&'static str>,
    },
    /// The value repeats one given earlier in the same list or map.
    Duplicate(String),
    /// The value refers to something that is not defined in the object (a volume mount
    /// naming no volume).
    NotFound(String),
    /// The value is longer than allowed.
    TooLong {
        /// The maximum length in bytes.
        max: usize,
    },
    /// The field may not be set here.
    Forbidden,
}

impl fmt::Display for FieldErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldErrorKind::Required => f.write_str("Required value"),
            FieldErrorKind::Invalid(value) => write!(f, "Invalid value: {}", quote(value)),
            FieldErrorKind::NotSupported { value, supported } => {
                write!(f, "Unsupported value: {}", quote(value))?;
                if !supported.is_empty() {
                    let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
                    write!(f, ": supported values: {}", list.join(", "))?;
                }
                Ok(())
            }
            FieldErrorKind::Duplicate(value) => write!(f, "Duplicate value: {}", quote(value)),
            FieldErrorKind::NotFound(value) => write!(f, "Not found: {}", quote(value)),
            FieldErrorKind::TooLong { max } => write!(f, "Too long: must have at most {max} bytes"),
            FieldErrorKind::Forbidden => f.write_str("Forbidden"),
        }
    }
}

/// Kubernetes prints numbers bare and strings quoted.
fn quote(value: &str) -> String {
    if value.parse::<i64>().is_ok() {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// Checks an object on its own and returns every problem found (empty when valid).
pub fn validate(object: &Object) -> Vec<FieldError> {
    let mut errs = Errors::default();
    meta::object_meta(object, &mut errs);
    match object {
        Object::Namespace(o) => core::namespace(o, &mut errs),
        Object::Node(o) => core::node(o, &mut errs),
        Object::Pod(o) => core::pod(o, &mut errs),
        Object::Binding(o) => core::binding(o, &mut errs),
        Object::Service(o) => core::service(o, &mut errs),
        Object::Endpoints(o) => core::endpoints(o, &mut errs),
        Object::ConfigMap(o) => core::config_map(o, &mut errs),
        Object::Secret(o) => core::secret(o, &mut errs),
        Object::ServiceAccount(o) => core::service_account(o, &mut errs),
        Object::ResourceQuota(o) => core::resource_quota(o, &mut errs),
        Object::PersistentVolume(o) => core::persistent_volume(o, &mut errs),
        Object::PersistentVolumeClaim(o) => core::persistent_volume_claim(o, &mut errs),
        Object::Event(o) => core::event(o, &mut errs),
        Object::ReplicaSet(o) => apps::replica_set(o, &mut errs),
        Object::Deployment(o) => apps::deployment(o, &mut errs),
        Object::DaemonSet(o) => apps::daemon_set(o, &mut errs),
        Object::Job(o) => apps::job(o, &mut errs),
        Object::CronJob(o) => apps::cron_job(o, &mut errs),
        Object::LimitRange(o) => core::limit_range(o, &mut errs),
        Object::CertificateSigningRequest(o) => cluster::certificate_signing_request(o, &mut errs),
        Object::Role(o) => rbac::role(o, &mut errs),
        Object::ClusterRole(o) => rbac::cluster_role(o, &mut errs),
        Object::RoleBinding(o) => rbac::role_binding(o, &mut errs),
        Object::ClusterRoleBinding(o) => rbac::cluster_role_binding(o, &mut errs),
        Object::StorageClass(o) => cluster::storage_class(o, &mut errs),
        Object::Lease(o) => cluster::lease(o, &mut errs),
        Object::NetworkPolicy(o) => cluster::network_policy(o, &mut errs),
        Object::Ingress(o) => cluster::ingress(o, &mut errs),
        Object::EndpointSlice(o) => discovery::endpoint_slice(o, &mut errs),
    }
    errs.0
}

/// Which name format a kind's `metadata.name` must have.
fn name_format(kind: Kind) -> fn(&str) -> Vec<String> {
    match kind {
        Kind::Namespace => names::dns1123_label,
        Kind::Service => names::dns1035_label,
        // Role and binding names are path segments in Kubernetes (`system:kube-scheduler`).
        Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding => {
            names::path_segment_name
        }
        _ => names::dns1123_subdomain,
    }
}

/// A field path under construction: `spec`, `.containers`, `[0]`, `[app]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path(String);

impl Path {
    /// The path of a top-level field.
    pub(crate) fn root(name: &str) -> Path {
        Path(name.to_owned())
    }

    /// The path of a field of this one.
    pub(crate) fn child(&self, name: &str) -> Path {
        Path(format!("{}.{name}", self.0))
    }

    /// The path of an element of this list.
    pub(crate) fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    /// The path of an entry of this map.
    pub(crate) fn key(&self, key: &str) -> Path {
        Path(format!("{}[{key}]", self.0))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The errors found so far, with one helper per kind of error.
#[derive(Debug, Default)]
pub(crate) struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: &Path, kind: FieldErrorKind, detail: impl Into<String>) {
        self.0.push(FieldError {
            path: path.0.clone(),
            kind,
            detail: detail.into(),
        });
    }

    pub(crate) fn required(&mut self, path: &Path, detail: impl Into<String>) {
        self.push(path, FieldErrorKind::Required, detail);
    }

    pub(crate) fn invalid(&mut self, path: &Path, value: impl ToString, detail: impl Into<String>) {
        self.push(path, FieldErrorKind::Invalid(value.to_string()), detail);
    }

    pub(crate) fn not_supported(&mut self, path: &Path, value: &str, supported: &[&'static str]) {
        let kind = FieldErrorKind::NotSupported {
            value: value.to_owned(),
            supported: supported.to_vec(),
        };
        self.push(path, kind, "");
    }

    pub(crate) fn duplicate(&mut self, path: &Path, value: impl ToString) {
        self.push(path, FieldErrorKind::Duplicate(value.to_string()), "");
    }

    pub(crate) fn not_found(&mut self, path: &Path, value: &str) {
        self.push(path, FieldErrorKind::NotFound(value.to_owned()), "");
    }

    pub(crate) fn too_long(&mut self, path: &Path, max: usize) {
        self.push(path, FieldErrorKind::TooLong { max }, "");
    }

    pub(crate) fn forbidden(&mut self, path: &Path, detail: impl Into<String>) {
        self.push(path, FieldErrorKind::Forbidden, detail);
    }

    /// A field that must hold one of `allowed`.
    pub(crate) fn enum_value(&mut self, path: &Path, value: &str, allowed: &[&'static str]) {
        if value.is_empty() {
            let list: Vec<String> = allowed.iter().map(|s| format!("{s:?}")).collect();
            self.required(path, format!("supported values: {}", list.join(", ")));
        } else if !allowed.contains(&value) {
            self.not_supported(path, value, allowed);
        }
    }

    /// A field that may be empty (the defaults fill it) but otherwise holds one of `allowed`.
    pub(crate) fn optional_enum_value(
        &mut self,
        path: &Path,
        value: &str,
        allowed: &[&'static str],
    ) {
        if !value.is_empty() && !allowed.contains(&value) {
            self.not_supported(path, value, allowed);
        }
    }

    /// A string that must be set.
    pub(crate) fn non_empty(&mut self, path: &Path, value: &str) -> bool {
        if value.is_empty() {
            self.required(path, "");
            false
        } else {
            true
        }
    }

    /// A string that must be set and match a name format (one error per message).
    pub(crate) fn name(&mut self, path: &Path, value: &str, format: fn(&str) -> Vec<String>) {
        if self.non_empty(path, value) {
            self.format(path, value, format);
        }
    }

    /// A string that, when set, must match a name format (one error per message).
    pub(crate) fn format(&mut self, path: &Path, value: &str, format: fn(&str) -> Vec<String>) {
        for msg in format(value) {
            self.invalid(path, value, msg);
        }
    }

    /// A count or a number of seconds, which may not be negative.
    pub(crate) fn non_negative(&mut self, path: &Path, value: i64) {
        if value < 0 {
            self.invalid(path, value, names::NON_NEGATIVE);
        }
    }

    /// A port number (1–65535).
    pub(crate) fn port_number(&mut self, path: &Path, value: i32) {
        if !(1..=65535).contains(&value) {
            self.invalid(path, value, names::PORT_RANGE);
        }
    }
}

#[cfg(test)]
#[path = "validation_test.rs"]
mod tests;
