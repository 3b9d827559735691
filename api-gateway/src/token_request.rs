//! serviceaccounts/token (Kubernetes' TokenRequest): a signed ServiceAccount token for an
//! already authorized caller, checked against what the store holds.
//!
//! ```text
//!   caller may `create serviceaccounts/token` (authz) ─► the ServiceAccount exists (its uid)
//!     ─► a bound pod exists in the namespace and runs as that ServiceAccount (its uid, node)
//!     ─► a node caller: the token must be bound to a pod on that node
//!     ─► TokenKeys::issue ─► { token, expirationTimestamp }
//! ```
//!
//! Owns those checks (NodeRestriction's share for tokens) and the answer's shape. It does
//! not authenticate or authorize the call (the service did) and never writes: a token is
//! not stored anywhere.

use rafter_proto::api;
use rafter_proto::v1::Pod;
use rafter_proto::well_known::{node_of_user, DEFAULT_SERVICE_ACCOUNT, NODES_GROUP};
use rafter_proto::{Kind, Object, ReadConsistency, Timestamp};
use tonic::Status;

use crate::auth::UserInfo;
use crate::registry::{Registry, RegistryError};
use crate::sa_token::{unix_now, BoundRef, TokenGrant, TokenKeys};
use crate::status::status_of;
use crate::store::KvStore;

/// The ServiceAccount a pod runs as.
pub(crate) fn pod_service_account(pod: &Pod) -> &str {
    match pod.spec.as_ref().map(|s| s.service_account_name.as_str()) {
        Some(name) if !name.is_empty() => name,
        _ => DEFAULT_SERVICE_ACCOUNT,
    }
}

/// A token for `request`, which `caller` was allowed to ask for.
pub(crate) async fn issue<S: KvStore>(
    registry: &Registry<S>,
    keys: Option<&TokenKeys>,
    caller: &UserInfo,
    request: &api::TokenRequest,
) -> Result<api::TokenResponse, Status> {
    let keys = keys.ok_or_else(|| {
        Status::failed_precondition(
            "this API server has no service account signing key (sa.key): it issues no tokens",
        )
    })?;
    let namespace = request.namespace.as_str();
    if namespace.is_empty() || request.service_account.is_empty() {
        return Err(Status::invalid_argument(
            "a token request names a namespace and a serviceAccount",
        ));
    }
    let service_account = match registry
        .get(
            Kind::ServiceAccount,
            namespace,
            &request.service_account,
            ReadConsistency::Linearizable,
        )
        .await
    {
        Ok(object) => object,
        Err(RegistryError::NotFound { .. }) => {
            return Err(Status::not_found(format!(
                "serviceaccount {namespace}/{} not found",
                request.service_account
            )))
        }
        Err(e) => return Err(status_of(e)),
    };
    let mut grant = TokenGrant {
        namespace: namespace.to_owned(),
        service_account: BoundRef {
            name: request.service_account.clone(),
            uid: service_account.metadata().uid.clone(),
        },
        pod: None,
        node: None,
        audiences: request.audiences.clone(),
        seconds: request.expiration_seconds,
    };
    let node_caller = caller
        .in_group(NODES_GROUP)
        .then(|| node_of_user(&caller.name))
        .flatten();
    if !request.bound_pod_name.is_empty() {
        let pod = match registry
            .get(
                Kind::Pod,
                namespace,
                &request.bound_pod_name,
                ReadConsistency::Linearizable,
            )
            .await
        {
            Ok(Object::Pod(pod)) => pod,
            Ok(_) => {
                return Err(Status::internal(
                    "the store returned another kind for a pod",
                ))
            }
            Err(RegistryError::NotFound { .. }) => {
                return Err(Status::not_found(format!(
                    "boundObjectRef: pod {namespace}/{} not found",
                    request.bound_pod_name
                )))
            }
            Err(e) => return Err(status_of(e)),
        };
        let uid = pod
            .metadata
            .as_ref()
            .map(|m| m.uid.clone())
            .unwrap_or_default();
        if !request.bound_pod_uid.is_empty() && request.bound_pod_uid != uid {
            return Err(Status::failed_precondition(format!(
                "boundObjectRef: pod {namespace}/{} has uid {uid}, not {}",
                request.bound_pod_name, request.bound_pod_uid
            )));
        }
        if pod_service_account(&pod) != request.service_account {
            return Err(Status::invalid_argument(format!(
                "boundObjectRef: pod {namespace}/{} runs as serviceaccount {:?}, not {:?}",
                request.bound_pod_name,
                pod_service_account(&pod),
                request.service_account
            )));
        }
        let node = pod
            .spec
            .as_ref()
            .map(|s| s.node_name.clone())
            .unwrap_or_default();
        if let Some(caller_node) = node_caller {
            if node != caller_node {
                return Err(Status::permission_denied(format!(
                    "node {caller_node:?} may only request tokens bound to pods on itself; pod {namespace}/{} is on {node:?}",
                    request.bound_pod_name
                )));
            }
        }
        grant.pod = Some(BoundRef {
            name: request.bound_pod_name.clone(),
            uid,
        });
        grant.node = (!node.is_empty()).then(|| BoundRef {
            name: node,
            uid: String::new(),
        });
    } else if let Some(caller_node) = node_caller {
        return Err(Status::permission_denied(format!(
            "node {caller_node:?} may only request tokens bound to one of its pods (boundPodName)"
        )));
    }
    let (token, claims) = keys
        .issue(&grant, unix_now())
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(api::TokenResponse {
        token,
        expiration_timestamp: Timestamp::from_unix_seconds(claims.exp).to_rfc3339(),
    })
}
