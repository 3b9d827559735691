//! Authorization: whether an authenticated caller may make a request. Every call of every
//! API passes one [`Authorizer`] with the request's [`Attributes`] (Kubernetes'
//! `authorizer.Attributes`: user, verb, API group, resource, subresource, namespace, name,
//! or a non-resource path) before anything is read or written.
//!
//! ```text
//!   request ─► authenticate (auth) ─► Attributes ─► Authorizer::authorize ─► Allow ─► registry
//!                                                                      └─► Deny(reason) ─► PermissionDenied
//! ```
//!
//! Owns the seam. [`Chain`] asks authorizers in order and the first with an opinion decides
//! (as kube-apiserver's `--authorization-mode=Node,RBAC`), and refuses what none allows
//! with Kubernetes' message (`User "jane" cannot list resource "secrets" in API group ""
//! in the namespace "prod"`). [`PrivilegedGroup`] lets cluster administrators
//! (`system:masters`) do anything, as kube-apiserver does before RBAC is consulted; the
//! Node authorizer (`node_authz`) and RBAC (`rbac`) are the others. It must not
//! authenticate, read the store per request, or filter what a caller sees inside an
//! allowed answer (that is the service's).

use rafter_proto::v1::PolicyRule;
use rafter_proto::well_known::MASTERS_GROUP;
use rafter_proto::{Kind, Object};

use crate::auth::UserInfo;

/// What is asked of the API in one request, as authorization sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attributes<'a> {
    /// Who asks.
    pub user: &'a UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete` ...
    pub verb: &'a str,
    /// A resource, or a non-resource path.
    pub target: Target<'a>,
    /// The object a create or update sends, for rules that look at it (a node may create
    /// only mirror pods bound to itself).
    pub object: Option<&'a Object>,
}

/// What a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// An API resource.
    Resource {
        /// The kind, which gives its API group and plural resource name.
        kind: Kind,
        /// `status`, `scale`, `log`, `binding`, `eviction`, `approval`, or "" for the object.
        subresource: &'a str,
        /// The namespace ("" for cluster-scoped kinds and for lists across namespaces).
        namespace: &'a str,
        /// The object's name ("" for lists, watches and creates with `generateName`).
        name: &'a str,
        /// A list's or watch's field selector as sent (`spec.nodeName=n1`), "" for none.
        field_selector: &'a str,
    },
    /// A user or group someone asks to act as (the `impersonate` verb): `users` or
    /// `groups` in the core API group, cluster-scoped, which the API does not store.
    Principal {
        /// `users` or `groups`.
        resource: &'a str,
        /// The user's or group's name.
        name: &'a str,
    },
    /// Something that is not a resource: a path such as `/cluster/members`.
    NonResource {
        /// The path.
        path: &'a str,
    },
}

impl<'a> Target<'a> {
    /// Objects of `kind` (add namespace, name, subresource after).
    pub fn resource(kind: Kind) -> Target<'a> {
        Target::Resource {
            kind,
            subresource: "",
            namespace: "",
            name: "",
            field_selector: "",
        }
    }

    /// The same target, listed or watched with field selector `value`.
    pub fn field_selector(mut self, value: &'a str) -> Target<'a> {
        if let Target::Resource { field_selector, .. } = &mut self {
            *field_selector = value;
        }
        self
    }

    /// The same target's `subresource`.
    pub fn subresource(mut self, value: &'a str) -> Target<'a> {
        if let Target::Resource { subresource, .. } = &mut self {
            *subresource = value;
        }
        self
    }

    /// The same target in namespace `value` ("" for all namespaces).
    pub fn namespace(mut self, value: &'a str) -> Target<'a> {
        if let Target::Resource { namespace, .. } = &mut self {
            *namespace = value;
        }
        self
    }

    /// The same target's object named `value`.
    pub fn name(mut self, value: &'a str) -> Target<'a> {
        if let Target::Resource { name, .. } = &mut self {
            *name = value;
        }
        self
    }
}

impl<'a> Attributes<'a> {
    /// `user` asks to `verb` objects of `kind` (add namespace, name, subresource after).
    pub fn resource(user: &'a UserInfo, verb: &'a str, kind: Kind) -> Attributes<'a> {
        Attributes {
            user,
            verb,
            target: Target::resource(kind),
            object: None,
        }
    }

    /// `user` asks to `verb` the non-resource `path`.
    pub fn non_resource(user: &'a UserInfo, verb: &'a str, path: &'a str) -> Attributes<'a> {
        Attributes {
            user,
            verb,
            target: Target::NonResource { path },
            object: None,
        }
    }

    /// The same request on `subresource` of the object.
    pub fn subresource(mut self, value: &'a str) -> Attributes<'a> {
        self.target = self.target.subresource(value);
        self
    }

    /// The same request in `value` ("" for all namespaces).
    pub fn namespace(mut self, value: &'a str) -> Attributes<'a> {
        self.target = self.target.namespace(value);
        self
    }

    /// The same request on the object named `value`.
    pub fn name(mut self, value: &'a str) -> Attributes<'a> {
        self.target = self.target.name(value);
        self
    }

    /// `verb resource[/subresource]` or `verb path`, as messages name a request.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Resource {
                kind,
                subresource,
                namespace,
                ..
            } => {
                let info = kind.info();
                let mut resource = info.plural.to_owned();
                if !info.group.is_empty() {
                    resource = format!("{resource}.{}", info.group);
                }
                if !subresource.is_empty() {
                    resource = format!("{resource}/{subresource}");
                }
                if namespace.is_empty() {
                    format!("{} {resource}", self.verb)
                } else {
                    format!("{} {resource} in namespace {namespace:?}", self.verb)
                }
            }
            Target::Principal { resource, name } => format!("{} {resource} {name:?}", self.verb),
            Target::NonResource { path } => format!("{} {path}", self.verb),
        }
    }
}

impl Attributes<'_> {
    /// Why the request is refused when no rule allows it, as Kubernetes says it:
    /// `User "jane" cannot list resource "secrets" in API group "" in the namespace "prod"`.
    pub fn forbidden(&self) -> String {
        let user = &self.user.name;
        let verb = self.verb;
        match &self.target {
            Target::Resource {
                kind,
                subresource,
                namespace,
                ..
            } => {
                let info = kind.info();
                let resource = if subresource.is_empty() {
                    info.plural.to_owned()
                } else {
                    format!("{}/{subresource}", info.plural)
                };
                let scope = if namespace.is_empty() {
                    "at the cluster scope".to_owned()
                } else {
                    format!("in the namespace {namespace:?}")
                };
                format!(
                    "User {user:?} cannot {verb} resource {resource:?} in API group {:?} {scope}",
                    info.group
                )
            }
            Target::Principal { resource, .. } => format!(
                "User {user:?} cannot {verb} resource {resource:?} in API group \"\" at the cluster scope"
            ),
            Target::NonResource { path } => {
                format!("User {user:?} cannot {verb} path {path:?}")
            }
        }
    }
}

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The request may go on.
    Allow,
    /// The request is refused, for this reason.
    Deny(String),
    /// This authorizer has no rule for the request; the next one decides.
    NoOpinion,
}

/// What a user may do in one namespace, as far as the authorizers can list it
/// (Kubernetes' SelfSubjectRulesReview).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleList {
    /// Rules over resources.
    pub resource_rules: Vec<PolicyRule>,
    /// Rules over non-resource paths.
    pub non_resource_rules: Vec<PolicyRule>,
    /// Why the lists may be short of what is allowed (an authorizer that cannot list its
    /// rules); empty: complete.
    pub incomplete: Vec<String>,
}

impl RuleList {
    /// Adds `rule` to the list it belongs to (a rule may hold both).
    pub fn push(&mut self, rule: &PolicyRule) {
        if !rule.resources.is_empty() {
            self.resource_rules.push(PolicyRule {
                non_resource_urls: Vec::new(),
                ..rule.clone()
            });
        }
        if !rule.non_resource_urls.is_empty() {
            self.non_resource_rules.push(PolicyRule {
                verbs: rule.verbs.clone(),
                non_resource_urls: rule.non_resource_urls.clone(),
                ..PolicyRule::default()
            });
        }
    }

    fn extend(&mut self, other: RuleList) {
        self.resource_rules.extend(other.resource_rules);
        self.non_resource_rules.extend(other.non_resource_rules);
        self.incomplete.extend(other.incomplete);
    }
}

/// Decides whether a request may go on. Called on every request: it must answer from
/// memory, without I/O.
pub trait Authorizer: Send + Sync + 'static {
    /// The decision for `attributes`.
    fn authorize(&self, attributes: &Attributes<'_>) -> Decision;

    /// The rules `user` has in `namespace` ("" for cluster-wide rules only); an authorizer
    /// that cannot list its rules says so in `incomplete`. By default: none.
    fn rules(&self, _user: &UserInfo, _namespace: &str) -> RuleList {
        RuleList::default()
    }
}

/// Authorizers asked in order; the first that allows or denies decides, and a request none
/// has an opinion on is denied.
pub struct Chain {
    authorizers: Vec<Box<dyn Authorizer>>,
}

impl Chain {
    /// The chain of `authorizers`, asked in this order.
    pub fn new(authorizers: Vec<Box<dyn Authorizer>>) -> Chain {
        Chain { authorizers }
    }
}

impl Authorizer for Chain {
    fn authorize(&self, attributes: &Attributes<'_>) -> Decision {
        for authorizer in &self.authorizers {
            match authorizer.authorize(attributes) {
                Decision::NoOpinion => continue,
                decided => return decided,
            }
        }
        Decision::Deny(attributes.forbidden())
    }

    fn rules(&self, user: &UserInfo, namespace: &str) -> RuleList {
        let mut all = RuleList::default();
        for authorizer in &self.authorizers {
            all.extend(authorizer.rules(user, namespace));
        }
        all
    }
}

/// Members of one group may do anything: `system:masters`, as kube-apiserver allows them
/// before any other authorizer is asked. Everyone else is `NoOpinion`.
#[derive(Debug, Clone)]
pub struct PrivilegedGroup {
    group: String,
}

impl PrivilegedGroup {
    /// Cluster administrators: `system:masters`.
    pub fn masters() -> PrivilegedGroup {
        PrivilegedGroup {
            group: MASTERS_GROUP.to_owned(),
        }
    }
}

impl Authorizer for PrivilegedGroup {
    fn authorize(&self, attributes: &Attributes<'_>) -> Decision {
        if attributes.user.in_group(&self.group) {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }

    fn rules(&self, user: &UserInfo, _namespace: &str) -> RuleList {
        let mut rules = RuleList::default();
        if user.in_group(&self.group) {
            let all = vec!["*".to_owned()];
            rules.push(&PolicyRule {
                verbs: all.clone(),
                api_groups: all.clone(),
                resources: all.clone(),
                resource_names: Vec::new(),
                non_resource_urls: all,
            });
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo::new(name, groups.iter().map(|g| (*g).to_owned()))
    }

    #[test]
    fn administrators_may_do_anything_and_others_get_no_opinion() {
        let admin = user("admin", &[MASTERS_GROUP]);
        let jane = user("jane", &[]);
        let masters = PrivilegedGroup::masters();
        let members = |u| Attributes::non_resource(u, "delete", "/cluster/members");
        assert_eq!(masters.authorize(&members(&admin)), Decision::Allow);
        assert_eq!(masters.authorize(&members(&jane)), Decision::NoOpinion);
    }

    #[test]
    fn refusals_name_the_user_the_verb_the_resource_and_the_scope() {
        let jane = user("jane", &[]);
        let secrets = Attributes::resource(&jane, "list", Kind::Secret).namespace("prod");
        assert_eq!(
            secrets.forbidden(),
            r#"User "jane" cannot list resource "secrets" in API group "" in the namespace "prod""#
        );
        let approval = Attributes::resource(&jane, "update", Kind::CertificateSigningRequest)
            .subresource("approval")
            .name("csr-1");
        assert_eq!(
            approval.forbidden(),
            r#"User "jane" cannot update resource "certificatesigningrequests/approval" in API group "certificates.k8s.io" at the cluster scope"#
        );
        let path = Attributes::non_resource(&jane, "get", "/cluster/members");
        assert_eq!(
            path.forbidden(),
            r#"User "jane" cannot get path "/cluster/members""#
        );
    }

    struct Fixed(Decision);

    impl Authorizer for Fixed {
        fn authorize(&self, _: &Attributes<'_>) -> Decision {
            self.0.clone()
        }
    }

    #[test]
    fn a_chain_takes_the_first_opinion_and_denies_when_none_has_one() {
        let jane = user("jane", &[]);
        let request = Attributes::resource(&jane, "get", Kind::Pod).namespace("default");
        let chain = Chain::new(vec![
            Box::new(Fixed(Decision::NoOpinion)),
            Box::new(Fixed(Decision::Deny("no".into()))),
            Box::new(Fixed(Decision::Allow)),
        ]);
        assert_eq!(chain.authorize(&request), Decision::Deny("no".into()));
        let silent = Chain::new(vec![Box::new(Fixed(Decision::NoOpinion))]);
        assert_eq!(
            silent.authorize(&request),
            Decision::Deny(
                r#"User "jane" cannot get resource "pods" in API group "" in the namespace "default""#
                    .into()
            )
        );
    }
}
