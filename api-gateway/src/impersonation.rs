//! Impersonation: a caller acting as another user (kubectl's `--as` / `--as-group`), as
//! kube-apiserver allows it.
//!
//! ```text
//!   metadata impersonate-user: U, impersonate-group: G…
//!     ─► the real caller may `impersonate` users/U (serviceaccounts ns/name for
//!        system:serviceaccount:ns:name) and groups/G for each G?   no ─► Forbidden naming the real caller
//!     ─► the request goes on as U in G… (+ system:authenticated; a ServiceAccount's groups
//!        when no group is given); the audit record keeps both
//! ```
//!
//! Owns reading the metadata and the `impersonate` checks. It does not authenticate (the
//! real caller comes from `auth`) and does not decide the request itself (`authz`).

use rafter_proto::well_known::{
    service_account_groups, service_account_of_user, IMPERSONATE_GROUP_METADATA,
    IMPERSONATE_USER_METADATA,
};
use rafter_proto::Kind;
use tonic::{Request, Status};

use crate::audit::Audit;
use crate::auth::{Authenticator, UserInfo};
use crate::authz::{Attributes, Authorizer, Target};
use crate::status::authorize;
use crate::store::KvStore;

/// Whom a request asks to act as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Impersonation {
    /// The user.
    pub(crate) user: String,
    /// The groups.
    pub(crate) groups: Vec<String>,
}

/// The impersonation `request` asks for, if any. Groups without a user are refused, as
/// Kubernetes refuses them.
pub(crate) fn requested<T>(request: &Request<T>) -> Result<Option<Impersonation>, Status> {
    let metadata = request.metadata();
    let text = |value: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>| {
        value
            .to_str()
            .map(str::to_owned)
            .map_err(|_| Status::invalid_argument("impersonation metadata must be printable ASCII"))
    };
    let user = match metadata.get(IMPERSONATE_USER_METADATA) {
        Some(value) => Some(text(value)?),
        None => None,
    };
    let groups = metadata
        .get_all(IMPERSONATE_GROUP_METADATA)
        .iter()
        .map(text)
        .collect::<Result<Vec<_>, _>>()?;
    match user {
        Some(user) if user.trim().is_empty() => Err(Status::invalid_argument(
            "impersonate-user is empty: name the user to act as",
        )),
        Some(user) => Ok(Some(Impersonation { user, groups })),
        None if groups.is_empty() => Ok(None),
        None => Err(Status::invalid_argument(
            "impersonate-group needs impersonate-user: name the user to act as (--as)",
        )),
    }
}

/// The user `real` acts as under `wanted`, once `authorizer` allowed `real` to
/// `impersonate` that user and each group; Forbidden names the real caller otherwise.
pub(crate) fn impersonate(
    authorizer: &dyn Authorizer,
    real: &UserInfo,
    wanted: &Impersonation,
) -> Result<UserInfo, Status> {
    let user_target = match service_account_of_user(&wanted.user) {
        Some((namespace, name)) => Target::resource(Kind::ServiceAccount)
            .namespace(namespace)
            .name(name),
        None => Target::Principal {
            resource: "users",
            name: &wanted.user,
        },
    };
    authorize(
        authorizer,
        &Attributes {
            user: real,
            verb: "impersonate",
            target: user_target,
            object: None,
        },
    )?;
    for group in &wanted.groups {
        authorize(
            authorizer,
            &Attributes {
                user: real,
                verb: "impersonate",
                target: Target::Principal {
                    resource: "groups",
                    name: group,
                },
                object: None,
            },
        )?;
    }
    let groups = match service_account_of_user(&wanted.user) {
        Some((namespace, _)) if wanted.groups.is_empty() => service_account_groups(namespace),
        _ => wanted.groups.clone(),
    };
    Ok(UserInfo::new(wanted.user.clone(), groups))
}

/// Who a call acts as: the authenticated caller, or whom it impersonates once allowed.
/// `audit` records the caller as `user` and the impersonated user as `impersonatedUser`.
pub(crate) async fn caller<S: KvStore, T>(
    authenticator: &Authenticator<S>,
    authorizer: &dyn Authorizer,
    audit: &mut Audit,
    request: &Request<T>,
) -> Result<UserInfo, Status> {
    audit.anonymous();
    let real = authenticator.authenticate(request).await?;
    audit.user(&real);
    let Some(wanted) = requested(request)? else {
        return Ok(real);
    };
    let user = impersonate(authorizer, &real, &wanted)?;
    audit.impersonated(&user);
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::{Chain, PrivilegedGroup};
    use crate::rbac::{Policy, Rbac};
    use rafter_proto::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
    use rafter_proto::Object;
    use std::sync::Arc;

    fn meta(name: &str) -> Option<rafter_proto::v1::ObjectMeta> {
        Some(rafter_proto::v1::ObjectMeta {
            name: name.into(),
            ..Default::default()
        })
    }

    /// `support` may impersonate user `jane` and group `devs` only.
    fn authorizer() -> Chain {
        let mut policy = Policy::default();
        policy.put(&Object::ClusterRole(ClusterRole {
            metadata: meta("impersonate-jane"),
            rules: vec![
                PolicyRule {
                    verbs: vec!["impersonate".into()],
                    api_groups: vec!["".into()],
                    resources: vec!["users".into()],
                    resource_names: vec!["jane".into()],
                    ..Default::default()
                },
                PolicyRule {
                    verbs: vec!["impersonate".into()],
                    api_groups: vec!["".into()],
                    resources: vec!["groups".into()],
                    resource_names: vec!["devs".into()],
                    ..Default::default()
                },
            ],
            ..Default::default()
        }));
        policy.put(&Object::ClusterRoleBinding(ClusterRoleBinding {
            metadata: meta("support"),
            subjects: vec![Subject {
                kind: "User".into(),
                name: "support".into(),
                ..Default::default()
            }],
            role_ref: Some(RoleRef {
                kind: "ClusterRole".into(),
                name: "impersonate-jane".into(),
                ..Default::default()
            }),
            ..Default::default()
        }));
        let policy = Arc::new(policy);
        Chain::new(vec![
            Box::new(PrivilegedGroup::masters()),
            Box::new(Rbac::new(move || policy.clone())),
        ])
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo::new(name, groups.iter().map(|g| (*g).to_owned()))
    }

    fn wanted(name: &str, groups: &[&str]) -> Impersonation {
        Impersonation {
            user: name.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    #[test]
    fn a_caller_allowed_to_impersonate_acts_as_that_user_in_those_groups() {
        let support = user("support", &[]);
        let as_jane = impersonate(&authorizer(), &support, &wanted("jane", &["devs"])).unwrap();
        assert_eq!(as_jane.name, "jane");
        assert!(as_jane.in_group("devs") && as_jane.in_group("system:authenticated"));
        assert!(!as_jane.in_group("system:masters"));
    }

    #[test]
    fn impersonating_another_user_or_group_is_forbidden_naming_the_real_caller() {
        let support = user("support", &[]);
        let err = impersonate(&authorizer(), &support, &wanted("admin", &[])).unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert!(
            err.message()
                .contains(r#"User "support" cannot impersonate resource "users""#),
            "{}",
            err.message()
        );
        let err = impersonate(
            &authorizer(),
            &support,
            &wanted("jane", &["system:masters"]),
        )
        .unwrap_err();
        assert!(
            err.message()
                .contains(r#"User "support" cannot impersonate resource "groups""#),
            "{}",
            err.message()
        );
        let nobody = user("nobody", &[]);
        assert!(impersonate(&authorizer(), &nobody, &wanted("jane", &[])).is_err());
    }

    #[test]
    fn an_administrator_may_act_as_a_service_account_with_its_groups() {
        let admin = user("admin", &["system:masters"]);
        let sa = impersonate(
            &authorizer(),
            &admin,
            &wanted("system:serviceaccount:team-a:builder", &[]),
        )
        .unwrap();
        assert!(sa.in_group("system:serviceaccounts:team-a") && !sa.in_group("system:masters"));
        // Support may not: serviceaccounts are checked as themselves.
        let err = impersonate(
            &authorizer(),
            &user("support", &[]),
            &wanted("system:serviceaccount:team-a:builder", &[]),
        )
        .unwrap_err();
        assert!(
            err.message().contains("serviceaccounts"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn impersonation_metadata_is_read_and_groups_alone_are_refused() {
        let mut request = Request::new(());
        assert_eq!(requested(&request).unwrap(), None);
        request
            .metadata_mut()
            .append(IMPERSONATE_GROUP_METADATA, "devs".parse().unwrap());
        assert_eq!(
            requested(&request).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        request
            .metadata_mut()
            .insert(IMPERSONATE_USER_METADATA, "jane".parse().unwrap());
        request
            .metadata_mut()
            .append(IMPERSONATE_GROUP_METADATA, "ops".parse().unwrap());
        assert_eq!(
            requested(&request).unwrap(),
            Some(wanted("jane", &["devs", "ops"]))
        );
    }
}
