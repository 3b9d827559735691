//! Who a controller is when it writes: each controller acts as its own user,
//! `system:controller:<name>` (Kubernetes' controller-manager with
//! `--use-service-account-credentials` gives each controller its own identity in the same
//! way), and each [`Action`] is authorized as the API request it amounts to before the
//! registry carries it out. The default policy binds every such user to a ClusterRole of
//! the same name holding only what that controller writes, so a controller that goes wrong
//! cannot touch what is not its business (Secrets, RBAC, other controllers' kinds).
//!
//! ```text
//!   controller ─ Action ─► request_of(action) ─► Attributes{system:controller:<name>, verb, resource}
//!                                                   │ Authorizer (the gateway's chain)
//!                                     Allow ─► registry write     Deny ─► ApiError::Forbidden-ish (Other)
//! ```
//!
//! Owns the mapping from actions to requests and the identities; pure. It must not
//! decide policy (the ClusterRoles in the gateway's default policy do) nor write.

use actors::Action;
use api_gateway::{Attributes, Authorizer, Decision, Target, UserInfo};
use rafter_proto::{Kind, Object};

/// The user name prefix of controllers' identities.
pub const CONTROLLER_USER_PREFIX: &str = "system:controller:";

/// The identity `controller` writes as.
pub fn controller_user(controller: &str) -> UserInfo {
    UserInfo::new(format!("{CONTROLLER_USER_PREFIX}{controller}"), [])
}

/// Whether `authorizer` lets `controller` carry out `action`; the refusal's reason names
/// the controller's user and the request (`User "system:controller:…" cannot …`).
pub fn authorize(
    authorizer: &dyn Authorizer,
    controller: &str,
    action: &Action,
) -> Result<(), String> {
    let user = controller_user(controller);
    let request = request_of(action);
    let attributes = request.attributes(&user);
    match authorizer.authorize(&attributes) {
        Decision::Allow => Ok(()),
        Decision::Deny(reason) => Err(reason),
        Decision::NoOpinion => Err(attributes.forbidden()),
    }
}

/// One action as the API request it amounts to: verb, kind, subresource, namespace, name
/// and the object it sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Request<'a> {
    /// `create`, `update` or `delete`.
    pub verb: &'static str,
    /// The kind written.
    pub kind: Kind,
    /// `status`, `binding` or "".
    pub subresource: &'static str,
    /// The namespace ("" for cluster-scoped kinds).
    pub namespace: &'a str,
    /// The object's name ("" where the server names it).
    pub name: &'a str,
    /// The object a create or update sends.
    pub object: Option<&'a Object>,
}

impl<'a> Request<'a> {
    /// The attributes authorization sees for this request by `user`.
    pub fn attributes(&'a self, user: &'a UserInfo) -> Attributes<'a> {
        Attributes {
            user,
            verb: self.verb,
            target: Target::Resource {
                kind: self.kind,
                subresource: self.subresource,
                namespace: self.namespace,
                name: self.name,
                field_selector: "",
            },
            object: self.object,
        }
    }
}

/// The request `action` amounts to. An eviction is the delete the controller carries out
/// (as Kubernetes' node lifecycle controller deletes pods), a binding a create of
/// `pods/binding`, an event a create of an Event in the involved object's namespace.
pub fn request_of(action: &Action) -> Request<'_> {
    match action {
        Action::Create(o) => object_request("create", "", o),
        Action::Update(o) => object_request("update", "", o),
        Action::UpdateStatus(o) => object_request("update", "status", o),
        Action::Delete { key, .. } => Request {
            verb: "delete",
            kind: key.kind,
            subresource: "",
            namespace: &key.namespace,
            name: &key.name,
            object: None,
        },
        Action::Bind {
            namespace, name, ..
        } => Request {
            verb: "create",
            kind: Kind::Pod,
            subresource: "binding",
            namespace,
            name,
            object: None,
        },
        Action::Evict {
            namespace, name, ..
        } => Request {
            verb: "delete",
            kind: Kind::Pod,
            subresource: "",
            namespace,
            name,
            object: None,
        },
        Action::RecordEvent(record) => Request {
            verb: "create",
            kind: Kind::Event,
            subresource: "",
            // As `EventRecord::to_event`: cluster-scoped objects' events go to `default`.
            namespace: if record.involved.namespace.is_empty() {
                "default"
            } else {
                &record.involved.namespace
            },
            name: "",
            object: None,
        },
    }
}

fn object_request<'a>(
    verb: &'static str,
    subresource: &'static str,
    object: &'a Object,
) -> Request<'a> {
    Request {
        verb,
        kind: object.kind(),
        subresource,
        namespace: &object.metadata().namespace,
        name: &object.metadata().name,
        object: Some(object),
    }
}

#[cfg(test)]
#[path = "controller_identity_test.rs"]
mod tests;
