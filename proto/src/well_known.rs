//! Names that clients, agents and masters must agree on: the groups of the built-in
//! identities, the node user's prefix, the system namespaces, secret types, annotations
//! and gRPC metadata keys.
//!
//! Owns the spelling of each name, once. It must not say what a name grants: that is the
//! server's authorization.

/// Every authenticated caller is in this group.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// Cluster administrators: a certificate with this organization may do anything.
pub const MASTERS_GROUP: &str = "system:masters";
/// Holders of a bootstrap token, before they have a certificate.
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// Masters as Raft peers: the organization of the certificates members present on the Raft
/// port, and the only one that port accepts.
pub const PEERS_GROUP: &str = "system:rafter-peers";
/// Node agents: the organization of every node's certificate.
pub const NODES_GROUP: &str = "system:nodes";
/// The user name of node `n` is `system:node:n`.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The type of a Secret that holds a bootstrap token.
pub const BOOTSTRAP_TOKEN_SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The Node annotation where an agent advertises its log endpoint: `https://IP:PORT` when
/// it serves TLS with a kubelet-serving certificate, `http://IP:PORT` otherwise.
pub const AGENT_LOGS_ENDPOINT_ANNOTATION: &str = "rafter.io/agent-logs-endpoint";
/// The Node annotation where an agent advertises its cluster DNS server (`IP:PORT`, UDP
/// and TCP); the masters list these in the `kube-dns` Endpoints.
pub const CLUSTER_DNS_ENDPOINT_ANNOTATION: &str = "rafter.io/cluster-dns-endpoint";
/// Metadata a gateway puts on a status about the node's agent (not about the master):
/// another master would answer the same, so clients do not fail over on it.
pub const AGENT_STATUS_METADATA: &str = "rafter-agent-status";
/// Metadata a gateway puts on a `DEADLINE_EXCEEDED` status when the store does not know
/// whether the write was applied (its log entry was discarded by a new leader, a
/// forwarded write's reply was lost, no quorum answered in time after it was proposed).
/// A client must not send the write again as if it was never sent.
pub const OUTCOME_UNKNOWN_METADATA: &str = "rafter-outcome-unknown";

/// Metadata a gateway puts on a `RESOURCE_EXHAUSTED` status when the write was refused
/// because the leader's data disk is below its reserve (not because the request is too
/// large): nothing was written, and the same write is taken once space is freed.
pub const NO_SPACE_METADATA: &str = "rafter-no-space";

/// Metadata a gateway puts on a `RESOURCE_EXHAUSTED` status when a mutating request got no
/// seat (its user's queue was full, or it waited too long): HTTP's 429 Too Many Requests.
/// Its value is the seconds to wait before sending it again (HTTP's `Retry-After`);
/// nothing was written.
pub const TOO_MANY_REQUESTS_METADATA: &str = "rafter-retry-after";

/// The label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming the controller that manages an EndpointSlice.
pub const ENDPOINT_SLICE_MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The value of [`ENDPOINT_SLICE_MANAGED_BY_LABEL`] on the slices the endpoint slice
/// controller writes (Kubernetes' own, so tools that look for it find them).
pub const ENDPOINT_SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";
/// The value of [`ENDPOINT_SLICE_MANAGED_BY_LABEL`] on the slices mirrored from the
/// Endpoints of a Service without a selector.
pub const ENDPOINT_SLICE_MIRRORING_CONTROLLER: &str = "endpointslicemirroring-controller.k8s.io";
/// The label (`"true"`) that keeps an Endpoints from being mirrored into EndpointSlices.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// The label on Endpoints and EndpointSlices of a headless Service (`clusterIP: None`).
pub const HEADLESS_SERVICE_LABEL: &str = "service.kubernetes.io/headless";

/// Namespaces every cluster has, which cannot be deleted.
pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// The user name of node `node_name`'s agent (`system:node:<name>`).
pub fn node_user(node_name: &str) -> String {
    format!("{NODE_USER_PREFIX}{node_name}")
}

/// The node a user name belongs to, when it is a node's (`system:node:<name>`).
pub fn node_of_user(user: &str) -> Option<&str> {
    user.strip_prefix(NODE_USER_PREFIX)
        .filter(|n| !n.is_empty())
}

/// Every ServiceAccount's user is in this group.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// The prefix of a ServiceAccount's user name: `system:serviceaccount:<ns>:<name>`.
pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";
/// The ServiceAccount a pod runs as when it names none, which every namespace has.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Where a pod finds its ServiceAccount's token, the CA and its namespace.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Metadata a client sends to act as another user (kubectl's `--as`), authorized by the
/// `impersonate` verb on `users` (or `serviceaccounts`).
pub const IMPERSONATE_USER_METADATA: &str = "impersonate-user";
/// Metadata a client sends, once per group, to act in other groups (`--as-group`),
/// authorized by `impersonate` on `groups`.
pub const IMPERSONATE_GROUP_METADATA: &str = "impersonate-group";

/// The user name of ServiceAccount `namespace/name`
/// (`system:serviceaccount:<namespace>:<name>`).
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}")
}

/// The namespace and name of a ServiceAccount's user name, if `user` is one.
pub fn service_account_of_user(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(SERVICE_ACCOUNT_USER_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

/// The groups of ServiceAccount users in `namespace`: `system:serviceaccounts` and
/// `system:serviceaccounts:<namespace>`.
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        SERVICE_ACCOUNTS_GROUP.to_owned(),
        format!("{SERVICE_ACCOUNTS_GROUP}:{namespace}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_users_round_trip() {
        assert_eq!(node_user("w1"), "system:node:w1");
        assert_eq!(node_of_user(&node_user("w1")), Some("w1"));
        assert_eq!(node_of_user("system:node:"), None);
        assert_eq!(node_of_user("admin"), None);
    }

    #[test]
    fn service_account_users_round_trip() {
        let user = service_account_user("shop", "builder");
        assert_eq!(user, "system:serviceaccount:shop:builder");
        assert_eq!(service_account_of_user(&user), Some(("shop", "builder")));
        for not in [
            "admin",
            "system:serviceaccount:shop",
            "system:serviceaccount::x",
            "system:serviceaccount:a:b:c",
        ] {
            assert_eq!(service_account_of_user(not), None, "{not}");
        }
        assert_eq!(
            service_account_groups("shop"),
            ["system:serviceaccounts", "system:serviceaccounts:shop"]
        );
    }
}
