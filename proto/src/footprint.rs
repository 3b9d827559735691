//! What a decoded object costs in memory, estimated from the length of its encoding, for
//! caches that keep decoded objects under a byte budget; and giving back the room decoding
//! leaves in an object's lists, for caches that keep objects long.
//!
//! Owns [`decoded_bytes`] and [`Object::shrink_to_fit`]. The estimate is meant as an upper
//! bound for the objects a cluster holds (checked against a counting allocator in
//! `proto/tests/footprint.rs`); it must not decode or walk the object, so a cache can
//! charge it before decoding. Shrinking must never change an object's value.

use crate::v1;
use crate::Object;

/// Heap bytes per encoded byte of a decoded object, beyond the `Object` itself, at most
/// for the shapes objects have. Small fields cost many times their encoding: a map of one
/// label is a B-tree node of ~540 bytes, a container ~1 KB however little it sets.
const PER_ENCODED_BYTE: usize = 16;

/// The reference counts of the `Arc` an object is shared in.
const ARC_HEADER: usize = 16;

/// The memory an object whose encoding is `encoded_len` bytes takes once decoded and shared
/// behind an `Arc`, estimated from above.
pub fn decoded_bytes(encoded_len: usize) -> usize {
    std::mem::size_of::<Object>() + ARC_HEADER + PER_ENCODED_BYTE * encoded_len
}

impl Object {
    /// Gives back the spare room of the object's lists. Decoding pushes a list's elements
    /// one at a time, so a list of a few small elements keeps room for four: a pod's one
    /// condition holds 768 bytes for 192. Walks pods and nodes, the kinds a cluster holds
    /// by the thousand, and every kind's metadata; the value is unchanged.
    pub fn shrink_to_fit(&mut self) {
        let meta = self.metadata_mut();
        meta.labels.shrink_to_fit();
        meta.annotations.shrink_to_fit();
        meta.owner_references.shrink_to_fit();
        meta.finalizers.shrink_to_fit();
        meta.managed_fields.shrink_to_fit();
        match self {
            Object::Pod(pod) => {
                if let Some(spec) = pod.spec.as_mut() {
                    shrink_pod_spec(spec);
                }
                if let Some(status) = pod.status.as_mut() {
                    status.conditions.shrink_to_fit();
                    status.pod_ips.shrink_to_fit();
                    status.init_container_statuses.shrink_to_fit();
                    status.container_statuses.shrink_to_fit();
                }
            }
            Object::Node(node) => {
                if let Some(spec) = node.spec.as_mut() {
                    spec.taints.shrink_to_fit();
                    spec.pod_cidrs.shrink_to_fit();
                }
                if let Some(status) = node.status.as_mut() {
                    status.capacity.shrink_to_fit();
                    status.allocatable.shrink_to_fit();
                    status.conditions.shrink_to_fit();
                    status.addresses.shrink_to_fit();
                }
            }
            _ => {}
        }
    }
}

fn shrink_pod_spec(spec: &mut v1::PodSpec) {
    for container in spec.init_containers.iter_mut().chain(&mut spec.containers) {
        container.command.shrink_to_fit();
        container.args.shrink_to_fit();
        container.ports.shrink_to_fit();
        container.env_from.shrink_to_fit();
        container.env.shrink_to_fit();
        container.volume_mounts.shrink_to_fit();
        if let Some(resources) = container.resources.as_mut() {
            resources.requests.shrink_to_fit();
            resources.limits.shrink_to_fit();
        }
    }
    spec.node_selector.shrink_to_fit();
    spec.init_containers.shrink_to_fit();
    spec.containers.shrink_to_fit();
    spec.volumes.shrink_to_fit();
    spec.image_pull_secrets.shrink_to_fit();
    spec.tolerations.shrink_to_fit();
}
